// SPDX-License-Identifier: Apache-2.0
// SHA256SUMS (SPEC §2-§3): parse_sums never throws anything but ckpt::Error; what it accepts
// is valid (64 lowercase hex digits, valid stored paths) and survives serialize_sums.
#include <cstdint>
#include <string>
#include <vector>

#include "ckpt/error.hpp"
#include "ckpt/format.hpp"
#include "ckpt/hash.hpp"
#include "ckpt/paths.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using ckpt_fuzz::check;
  using ckpt_fuzz::escaped;
  const std::string text = ckpt_fuzz::input(data, size);
  std::map<std::string, std::string> sums;
  try {
    sums = ckpt::parse_sums(text);
  } catch (const ckpt::Error&) {
    return 0;
  }
  std::vector<ckpt::FileEntry> files;
  for (const auto& [path, digest] : sums) {
    check(!ckpt::stored_path_problem(path), "bad stored path accepted: \"" + escaped(path) + "\"");
    check(ckpt::is_sha256_hex(digest), "bad digest accepted: \"" + escaped(digest) + "\"");
    files.push_back(ckpt::FileEntry{path, 0, digest, std::nullopt});
  }
  const std::string out = ckpt::serialize_sums(files);
  std::map<std::string, std::string> again;
  try {
    again = ckpt::parse_sums(out);
  } catch (const ckpt::Error& e) {
    ckpt_fuzz::fail("serialize_sums wrote what parse_sums refuses (" + std::string(e.what()) +
                    "); input \"" + escaped(text) + "\"");
  }
  check(again == sums, "parse_sums(serialize_sums(x)) != x for \"" + escaped(text) + "\"");
  // Every line parse_sums accepted is one entry: the canonical form has as many lines.
  std::size_t lines = 0;
  for (char c : text) lines += c == '\n';
  check(lines == sums.size(), "line count and entry count differ for \"" + escaped(text) + "\"");
  return 0;
}
