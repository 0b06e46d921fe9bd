// SPDX-License-Identifier: Apache-2.0
// _checkpoint.json (SPEC §3): parse_checkpoint never throws anything but ckpt::Error, and
// whatever it accepts survives serialize_checkpoint -> parse_checkpoint unchanged.
#include <cmath>
#include <cstdint>
#include <string>

#include "ckpt/error.hpp"
#include "ckpt/format.hpp"
#include "ckpt/paths.hpp"
#include "fuzz_support.hpp"

namespace {

using ckpt_fuzz::check;
using ckpt_fuzz::escaped;

bool same_metric(const std::optional<double>& a, const std::optional<double>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || *a == *b;
}

bool same_file(const ckpt::FileEntry& a, const ckpt::FileEntry& b) {
  return a.path == b.path && a.size == b.size && a.sha256 == b.sha256;
}

void compare(const ckpt::CheckpointMeta& a, const ckpt::CheckpointMeta& b, const std::string& text) {
  auto where = [&](const char* field) {
    return std::string("round trip changed ") + field + " of \"" + escaped(text) + "\"";
  };
  check(a.name == b.name, where("name"));
  check(a.step == b.step, where("step"));
  check(a.commit_seq == b.commit_seq, where("commit_seq"));
  check(a.created == b.created, where("created"));
  check(a.metrics.size() == b.metrics.size(), where("metrics"));
  for (const auto& [k, v] : a.metrics) {
    auto it = b.metrics.find(k);
    check(it != b.metrics.end() && same_metric(v, it->second),
          where("metrics") + " (key \"" + escaped(k) + "\")");
  }
  check(a.meta == b.meta, where("meta"));
  check(a.checksum == b.checksum, where("checksum"));
  check(a.weights == b.weights, where("weights"));
  check(a.files.size() == b.files.size(), where("files"));
  for (std::size_t i = 0; i < a.files.size(); ++i) {
    check(same_file(a.files[i], b.files[i]), where("files") + " (entry " + std::to_string(i) + ")");
  }
  check(a.total_size == b.total_size, where("total_size"));
  check(a.tool == b.tool, where("tool"));
}

// What parse_checkpoint promises about anything it accepts.
void check_invariants(const ckpt::CheckpointMeta& m, const std::string& text) {
  auto where = [&](const std::string& what) { return what + " in \"" + escaped(text) + "\""; };
  auto step = ckpt::parse_step_dir_name(m.name);
  check(step && *step == m.step, where("name/step disagree"));
  check(m.step <= ckpt::k_max_step, where("step out of range"));
  check(m.checksum == "sha256" || m.checksum == "none", where("bad checksum"));
  std::uint64_t total = 0;
  for (const auto& f : m.files) {
    check(!ckpt::stored_path_problem(f.path), where("bad stored path accepted"));
    check(m.checksum == "none" || f.sha256.has_value(), where("file without sha256 accepted"));
    total += f.size;
  }
  check(total == m.total_size, where("total_size is not the sum"));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text = ckpt_fuzz::input(data, size);
  ckpt::CheckpointMeta m;
  try {
    m = ckpt::parse_checkpoint(text);
  } catch (const ckpt::Error&) {
    return 0;  // refused: fine, as long as it is a ckpt::Error
  }
  check_invariants(m, text);
  const std::string out = ckpt::serialize_checkpoint(m);
  ckpt::CheckpointMeta again;
  try {
    again = ckpt::parse_checkpoint(out);
  } catch (const ckpt::Error& e) {
    ckpt_fuzz::fail("serialize_checkpoint wrote what parse_checkpoint refuses (" +
                    std::string(e.what()) + "); input \"" + escaped(text) + "\", output \"" +
                    escaped(out) + "\"");
  }
  compare(m, again, text);
  // Serialising is deterministic: the second output is the first.
  check(ckpt::serialize_checkpoint(again) == out,
        "serialize_checkpoint is not stable for \"" + escaped(text) + "\"");
  return 0;
}
