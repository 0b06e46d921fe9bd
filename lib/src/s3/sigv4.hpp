// SPDX-License-Identifier: Apache-2.0
// AWS Signature Version 4 (service s3), for the one request libcurl cannot
// sign: UploadPartCopy. libcurl 7.88 (CURLOPT_AWS_SIGV4) sorts the signed
// headers as "name:value" strings, so x-amz-copy-source-range comes before
// x-amz-copy-source ('-' sorts before ':'), and the store computes another
// signature (403 SignatureDoesNotMatch). Every other request is signed by
// libcurl.
#pragma once

#include <string>
#include <vector>

namespace ckpt::s3 {

struct SigV4Request {
  std::string method;                // "PUT"
  std::string path;                  // the canonical URI: the URL's path, URI-encoded as sent
  std::string query;                 // the canonical query string: sorted name=value pairs, encoded
  std::vector<std::string> headers;  // every header to sign, "Name: value" (host and x-amz-date too)
  std::string payload_hash;          // "UNSIGNED-PAYLOAD", or the hex SHA-256 of the body
  std::string amz_date;              // YYYYMMDDTHHMMSSZ, as the x-amz-date header has it
  std::string access_key;
  std::string secret_key;
  std::string region;
};

// The Authorization header's value for r.
std::string sigv4_authorization(const SigV4Request& r);

// Now as x-amz-date writes it (UTC): YYYYMMDDTHHMMSSZ.
std::string amz_date_now();

}  // namespace ckpt::s3
