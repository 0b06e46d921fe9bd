// SPDX-License-Identifier: Apache-2.0
// libcurl, loaded (dlopen) when the first object-store client is made, not
// linked. Linked, libcurl and the libraries it needs (TLS, Kerberos, LDAP,
// SSH, HTTP/2, IDN: about thirty) were loaded by every ckpt command and took
// as long as the rest of a short command's start-up, for the few commands
// that talk to a store.
#pragma once

#include <curl/curl.h>

namespace ckpt::s3 {

// The libcurl functions the client calls.
struct CurlApi {
  CURLcode (*global_init)(long flags);
  CURL* (*easy_init)();
  CURLcode (*easy_setopt)(CURL* handle, CURLoption option, ...);
  CURLcode (*easy_perform)(CURL* handle);
  void (*easy_reset)(CURL* handle);
  void (*easy_cleanup)(CURL* handle);
  const char* (*easy_strerror)(CURLcode code);
  curl_slist* (*slist_append)(curl_slist* list, const char* text);
  void (*slist_free_all)(curl_slist* list);
  curl_version_info_data* (*version_info)(CURLversion stamp);
};

// libcurl loaded and initialised (curl_global_init) once per process, on the
// first call; safe from several threads. Throws Error(unsupported) naming the
// library when it cannot be loaded or is older than 7.75 (the first to sign
// requests with AWS Signature V4: an older one would send the keys as HTTP
// Basic authentication instead).
const CurlApi& curl_api();

}  // namespace ckpt::s3
