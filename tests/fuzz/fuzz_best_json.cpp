// SPDX-License-Identifier: Apache-2.0
// best.json (SPEC §5): parse_best never throws anything but ckpt::Error; what it accepts names a
// checkpoint directory (no '/') of the recorded step, and survives serialize_best unchanged.
#include <cstdint>
#include <string>

#include "ckpt/error.hpp"
#include "ckpt/format.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using ckpt_fuzz::check;
  using ckpt_fuzz::escaped;
  const std::string text = ckpt_fuzz::input(data, size);
  ckpt::BestMarker b;
  try {
    b = ckpt::parse_best(text);
  } catch (const ckpt::Error&) {
    return 0;
  }
  auto where = [&](const std::string& what) { return what + " for \"" + escaped(text) + "\""; };
  check(!b.key.empty(), where("empty key accepted"));
  auto step = ckpt::parse_step_dir_name(b.path);
  check(step && *step == b.step && b.path.find('/') == std::string::npos,
        where("path is not the step's directory name"));
  const std::string out = ckpt::serialize_best(b);
  ckpt::BestMarker again;
  try {
    again = ckpt::parse_best(out);
  } catch (const ckpt::Error& e) {
    ckpt_fuzz::fail(where("serialize_best wrote what parse_best refuses (" + std::string(e.what()) +
                          "); output \"" + escaped(out) + "\""));
  }
  check(again.key == b.key, where("round trip changed key"));
  check(again.mode == b.mode, where("round trip changed mode"));
  check(again.value == b.value, where("round trip changed value"));
  check(again.step == b.step, where("round trip changed step"));
  check(again.path == b.path, where("round trip changed path"));
  check(again.updated == b.updated, where("round trip changed updated"));
  check(ckpt::serialize_best(again) == out, where("serialize_best is not stable"));
  return 0;
}
