// SPDX-License-Identifier: Apache-2.0
// SHA-256 through OpenSSL EVP.
#include "ckpt/hash.hpp"

#include <openssl/evp.h>

#include <new>

#include "ckpt/error.hpp"

namespace ckpt {

Sha256::Sha256() : m_ctx(EVP_MD_CTX_new()) {
  if (m_ctx == nullptr) throw std::bad_alloc();
  if (EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(m_ctx), EVP_sha256(), nullptr) != 1) {
    EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(m_ctx));
    throw Error(ErrorKind::io, "cannot initialise SHA-256");
  }
}

Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(m_ctx)); }

void Sha256::update(const void* data, std::size_t n) {
  if (EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(m_ctx), data, n) != 1) {
    throw Error(ErrorKind::io, "SHA-256 update failed");
  }
}

std::string Sha256::hex_digest() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(m_ctx), md, &len) != 1) {
    throw Error(ErrorKind::io, "SHA-256 final failed");
  }
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(digits[md[i] >> 4]);
    out.push_back(digits[md[i] & 0xf]);
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  Sha256 h;
  h.update(data.data(), data.size());
  return h.hex_digest();
}

bool is_sha256_hex(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace ckpt
