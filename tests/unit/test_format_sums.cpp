// SPDX-License-Identifier: Apache-2.0
// SHA256SUMS: the coreutils "<hex>  <path>" format, written and read.
#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "ckpt/error.hpp"
#include "ckpt/format.hpp"

namespace {

const std::string k_a = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
const std::string k_b = "711e9609339e92b03ddc0a211827dba421f38f9ed8b9d806e1ffdd8c15ffa03d";
const std::string k_c = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

void expect_integrity(const std::string& text) {
  bool threw = false;
  try {
    (void)ckpt::parse_sums(text);
  } catch (const ckpt::Error& e) {
    threw = true;
    INFO("message: " << e.message());
    CHECK(e.kind() == ckpt::ErrorKind::integrity);
  } catch (const std::exception& e) {
    threw = true;
    FAIL_CHECK("threw a non-ckpt exception: " << e.what());
  }
  CHECK_MESSAGE(threw, "accepted: " << text);
}

}  // namespace

TEST_CASE("format_sums: serialize_sums writes sha256sum lines in the order given") {
  std::vector<ckpt::FileEntry> files = {
      {"a.bin", 5, k_a, std::nullopt}, {"model.safetensors", 6, k_b, std::nullopt}, {"optim/shard-0.pt", 0, k_c, std::nullopt}};
  std::string text = ckpt::serialize_sums(files);
  CHECK(text == k_a + "  a.bin\n" + k_b + "  model.safetensors\n" + k_c + "  optim/shard-0.pt\n");

  // The order is the caller's (files are kept sorted by path upstream).
  std::vector<ckpt::FileEntry> reversed(files.rbegin(), files.rend());
  CHECK(ckpt::serialize_sums(reversed) ==
        k_c + "  optim/shard-0.pt\n" + k_b + "  model.safetensors\n" + k_a + "  a.bin\n");
  CHECK(ckpt::serialize_sums({}).empty());
}

TEST_CASE("format_sums: parse_sums round trip") {
  std::vector<ckpt::FileEntry> files = {
      {"a.bin", 5, k_a, std::nullopt}, {"dir with space/x y.pt", 6, k_b, std::nullopt}, {"optim/shard-0.pt", 0, k_c, std::nullopt}};
  auto parsed = ckpt::parse_sums(ckpt::serialize_sums(files));
  std::map<std::string, std::string> expected = {
      {"a.bin", k_a}, {"dir with space/x y.pt", k_b}, {"optim/shard-0.pt", k_c}};
  CHECK(parsed == expected);
  CHECK(ckpt::parse_sums("").empty());
}

TEST_CASE("format_sums: parse_sums rejects malformed files") {
  // A short line, and a line without the two-space separator.
  expect_integrity(k_a + "\n");
  expect_integrity(k_a + "  \n");
  expect_integrity("abc  a.bin\n");
  expect_integrity(k_a + " a.bin\n");
  expect_integrity(k_a + "\ta.bin\n");
  expect_integrity(k_a + "a.bin\n");
  expect_integrity("\n");
  expect_integrity(k_a + "  a.bin\n\n");  // an empty line
  // Bad hex: a non-hex digit, one digit short, one digit too many.
  expect_integrity(k_a.substr(0, 63) + "g  a.bin\n");
  expect_integrity(k_a.substr(0, 63) + "  a.bin\n");
  expect_integrity(k_a + "0  a.bin\n");
  // Uppercase hex.
  std::string upper = k_a;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  expect_integrity(upper + "  a.bin\n");
  // The last line without its newline.
  expect_integrity(k_a + "  a.bin");
  expect_integrity(k_a + "  a.bin\n" + k_b + "  b.bin");
  // The same path twice.
  expect_integrity(k_a + "  a.bin\n" + k_b + "  a.bin\n");
  // Unsafe stored paths.
  for (const char* p : {"../x", "/etc/passwd", "a//b", "a/./b", "a/../b", "a/", "./a", "a\\b"}) {
    CAPTURE(p);
    expect_integrity(k_a + "  " + p + "\n");
  }
}
