// SPDX-License-Identifier: Apache-2.0
// SHA-256 through OpenSSL EVP, incrementally.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ckpt {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, std::size_t n);
  // Lowercase hex of the digest; the object cannot be updated afterwards.
  std::string hex_digest();

 private:
  void* m_ctx;
};

std::string sha256_hex(std::string_view data);
bool is_sha256_hex(std::string_view s);

}  // namespace ckpt
