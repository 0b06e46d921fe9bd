// SPDX-License-Identifier: Apache-2.0
#include "s3/curl_api.hpp"

#include <dlfcn.h>

#include <string>

#include <fmt/format.h>

#include "ckpt/error.hpp"

namespace ckpt::s3 {

namespace {

// The OpenSSL build first (the one ckpt is built against), then the GnuTLS
// one: the same interface.
constexpr const char* k_names[] = {"libcurl.so.4", "libcurl-gnutls.so.4"};
// 7.75.0: CURLOPT_AWS_SIGV4.
constexpr unsigned k_min_version = 0x074B00;

template <typename Fn>
void bind(void* lib, const char* symbol, Fn& out, const char* file) {
  void* p = dlsym(lib, symbol);
  if (p == nullptr) {
    throw Error(ErrorKind::unsupported,
                fmt::format("{} has no {}: it is not a libcurl ckpt can use", file, symbol));
  }
  out = reinterpret_cast<Fn>(p);
}

CurlApi load() {
  void* lib = nullptr;
  const char* file = nullptr;
  std::string why;
  for (const char* n : k_names) {
    // Never closed: the handles live as long as the process.
    lib = dlopen(n, RTLD_NOW | RTLD_LOCAL);
    if (lib != nullptr) {
      file = n;
      break;
    }
    if (why.empty()) why = dlerror();
  }
  if (lib == nullptr) {
    throw Error(ErrorKind::unsupported,
                fmt::format("object-store roots need libcurl, which cannot be loaded ({}); install "
                            "it (Debian: apt-get install libcurl4)",
                            why));
  }
  CurlApi api{};
  bind(lib, "curl_global_init", api.global_init, file);
  bind(lib, "curl_easy_init", api.easy_init, file);
  bind(lib, "curl_easy_setopt", api.easy_setopt, file);
  bind(lib, "curl_easy_perform", api.easy_perform, file);
  bind(lib, "curl_easy_reset", api.easy_reset, file);
  bind(lib, "curl_easy_cleanup", api.easy_cleanup, file);
  bind(lib, "curl_easy_strerror", api.easy_strerror, file);
  bind(lib, "curl_slist_append", api.slist_append, file);
  bind(lib, "curl_slist_free_all", api.slist_free_all, file);
  bind(lib, "curl_version_info", api.version_info, file);
  const curl_version_info_data* v = api.version_info(CURLVERSION_NOW);
  if (v == nullptr || v->version_num < k_min_version) {
    throw Error(ErrorKind::unsupported,
                fmt::format("object-store roots need libcurl 7.75 or newer (AWS Signature V4); "
                            "{} is {}",
                            file, v && v->version ? v->version : "of an unknown version"));
  }
  if (api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    throw Error(ErrorKind::io, fmt::format("cannot initialise {} (curl_global_init)", file));
  }
  return api;
}

}  // namespace

const CurlApi& curl_api() {
  // A failed load throws out of the initialiser, and the next call tries again.
  static const CurlApi api = load();
  return api;
}

}  // namespace ckpt::s3
