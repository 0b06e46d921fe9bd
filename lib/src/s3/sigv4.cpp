// SPDX-License-Identifier: Apache-2.0
#include "s3/sigv4.hpp"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <map>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ckpt/error.hpp"
#include "ckpt/hash.hpp"

namespace ckpt::s3 {

namespace {

std::string hmac_sha256(const std::string& key, const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len) == nullptr) {
    throw Error(ErrorKind::io, "HMAC-SHA256 failed");
  }
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 0xf];
  }
  return out;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Leading and trailing blanks gone, inner runs of blanks one space.
std::string trimmed(const std::string& s) {
  std::string out;
  bool blank = false;
  for (char c : s) {
    if (c == ' ' || c == '\t') {
      blank = !out.empty();
      continue;
    }
    if (blank) out += ' ';
    blank = false;
    out += c;
  }
  return out;
}

}  // namespace

std::string sigv4_authorization(const SigV4Request& r) {
  // Canonical headers: lowercase names, sorted by name (not by "name:value").
  std::map<std::string, std::string> headers;
  for (const auto& h : r.headers) {
    auto colon = h.find(':');
    if (colon == std::string::npos) continue;
    std::string name = lower(trimmed(h.substr(0, colon)));
    std::string value = trimmed(h.substr(colon + 1));
    auto [it, fresh] = headers.emplace(name, value);
    if (!fresh) it->second += "," + value;
  }
  std::string canonical_headers, signed_headers;
  for (const auto& [name, value] : headers) {
    canonical_headers += name + ":" + value + "\n";
    if (!signed_headers.empty()) signed_headers += ';';
    signed_headers += name;
  }
  const std::string canonical = r.method + "\n" + r.path + "\n" + r.query + "\n" + canonical_headers +
                                "\n" + signed_headers + "\n" + r.payload_hash;
  const std::string date = r.amz_date.substr(0, 8);
  const std::string scope = date + "/" + r.region + "/s3/aws4_request";
  const std::string to_sign = "AWS4-HMAC-SHA256\n" + r.amz_date + "\n" + scope + "\n" + sha256_hex(canonical);
  std::string key = hmac_sha256("AWS4" + r.secret_key, date);
  key = hmac_sha256(key, r.region);
  key = hmac_sha256(key, "s3");
  key = hmac_sha256(key, "aws4_request");
  return "AWS4-HMAC-SHA256 Credential=" + r.access_key + "/" + scope + ", SignedHeaders=" + signed_headers +
         ", Signature=" + hex(hmac_sha256(key, to_sign));
}

std::string amz_date_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

}  // namespace ckpt::s3
