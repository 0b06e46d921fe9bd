// SPDX-License-Identifier: Apache-2.0
// SHA-256 against the FIPS 180-2 test vectors, and the hex-digest predicate.
#include <doctest/doctest.h>

#include <string>

#include "ckpt/hash.hpp"

namespace {

constexpr const char* k_empty =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr const char* k_abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr const char* k_448 = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
constexpr const char* k_million_a =
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
constexpr const char* k_448_input = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

}  // namespace

TEST_CASE("hash: sha256_hex of the FIPS 180 short vectors") {
  CHECK(ckpt::sha256_hex("") == k_empty);
  CHECK(ckpt::sha256_hex("abc") == k_abc);
  CHECK(ckpt::sha256_hex(k_448_input) == k_448);
}

TEST_CASE("hash: Sha256 with no update is the empty digest") {
  ckpt::Sha256 h;
  CHECK(h.hex_digest() == k_empty);
}

TEST_CASE("hash: Sha256::update in pieces equals one pass") {
  ckpt::Sha256 h;
  h.update("a", 1);
  h.update("", 0);
  h.update("bc", 2);
  CHECK(h.hex_digest() == k_abc);

  std::string in = k_448_input;
  ckpt::Sha256 g;
  for (char c : in) g.update(&c, 1);  // one byte at a time, across the 64-byte block
  CHECK(g.hex_digest() == k_448);
}

TEST_CASE("hash: one million 'a' fed in uneven chunks") {
  const std::size_t total = 1'000'000;
  const std::string buf(70'001, 'a');
  // Chunk sizes that straddle block boundaries in every way.
  const std::size_t sizes[] = {1, 63, 64, 65, 127, 1000, 4095, 70'001, 33'333, 7};
  ckpt::Sha256 h;
  std::size_t done = 0;
  std::size_t i = 0;
  while (done < total) {
    std::size_t n = sizes[i++ % (sizeof sizes / sizeof sizes[0])];
    if (n > total - done) n = total - done;
    h.update(buf.data(), n);
    done += n;
  }
  CHECK(done == total);
  CHECK(h.hex_digest() == k_million_a);
  CHECK(ckpt::sha256_hex(std::string(total, 'a')) == k_million_a);
}

TEST_CASE("hash: is_sha256_hex accepts 64 lowercase hex digits only") {
  CHECK(ckpt::is_sha256_hex(k_empty));
  CHECK(ckpt::is_sha256_hex(std::string(64, '0')));
  CHECK(ckpt::is_sha256_hex(std::string(64, 'f')));
  CHECK(ckpt::is_sha256_hex("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));

  CHECK_FALSE(ckpt::is_sha256_hex(""));
  CHECK_FALSE(ckpt::is_sha256_hex(std::string(63, 'a')));
  CHECK_FALSE(ckpt::is_sha256_hex(std::string(65, 'a')));
  CHECK_FALSE(ckpt::is_sha256_hex(std::string(128, 'a')));
  CHECK_FALSE(ckpt::is_sha256_hex(std::string(63, 'a') + "A"));  // uppercase
  CHECK_FALSE(ckpt::is_sha256_hex("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"));
  CHECK_FALSE(ckpt::is_sha256_hex(std::string(63, 'a') + "g"));
  CHECK_FALSE(ckpt::is_sha256_hex(std::string(63, 'a') + " "));
  CHECK_FALSE(ckpt::is_sha256_hex(" " + std::string(63, 'a')));
  CHECK_FALSE(ckpt::is_sha256_hex(std::string(63, 'a') + '\0'));
  CHECK_FALSE(ckpt::is_sha256_hex(std::string(63, 'a') + "\n"));
}
