// SPDX-License-Identifier: Apache-2.0
// policy.json (SPEC §6): parse_policy never throws anything but ckpt::Error; what it accepts is
// valid (non-empty best key, keep_every >= 1, keep_within a duration, known checksum) and
// survives serialize_policy unchanged.
#include <cstdint>
#include <string>

#include "ckpt/clock.hpp"
#include "ckpt/error.hpp"
#include "ckpt/format.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using ckpt_fuzz::check;
  using ckpt_fuzz::escaped;
  const std::string text = ckpt_fuzz::input(data, size);
  ckpt::Policy p;
  try {
    p = ckpt::parse_policy(text);
  } catch (const ckpt::Error&) {
    return 0;
  }
  auto where = [&](const std::string& what) { return what + " for \"" + escaped(text) + "\""; };
  check(!p.best_key || !p.best_key->empty(), where("empty best_key accepted"));
  check(!p.keep_every || *p.keep_every >= 1, where("keep_every 0 accepted"));
  check(!p.keep_within || ckpt::parse_duration(*p.keep_within).value_or(0) > 0,
        where("keep_within that is not a duration accepted"));
  check(!p.checksum || *p.checksum == "sha256" || *p.checksum == "none",
        where("unknown checksum accepted"));
  const std::string out = ckpt::serialize_policy(p);
  ckpt::Policy again;
  try {
    again = ckpt::parse_policy(out);
  } catch (const ckpt::Error& e) {
    ckpt_fuzz::fail(where("serialize_policy wrote what parse_policy refuses (" +
                          std::string(e.what()) + "); output \"" + escaped(out) + "\""));
  }
  check(again == p, where("round trip changed the policy"));
  check(ckpt::serialize_policy(again) == out, where("serialize_policy is not stable"));
  return 0;
}
