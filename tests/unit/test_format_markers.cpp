// SPDX-License-Identifier: Apache-2.0
// best.json, policy.json, last, and step directory names (SPEC §2, §4-§6).
#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

#include "ckpt/error.hpp"
#include "ckpt/format.hpp"

namespace {

using Edits = std::vector<std::pair<std::string, std::string>>;

std::string apply(std::string s, const Edits& edits) {
  for (const auto& [from, to] : edits) {
    auto pos = s.find(from);
    REQUIRE_MESSAGE(pos != std::string::npos, "edit target not found: " << from);
    s.replace(pos, from.size(), to);
  }
  return s;
}

template <class F>
void expect_error(F&& parse, const std::string& text, ckpt::ErrorKind kind) {
  bool threw = false;
  try {
    (void)parse(text);
  } catch (const ckpt::Error& e) {
    threw = true;
    INFO("message: " << e.message());
    CHECK(ckpt::kind_name(e.kind()) == std::string(ckpt::kind_name(kind)));
  } catch (const std::exception& e) {
    threw = true;
    FAIL_CHECK("threw a non-ckpt exception: " << e.what());
  }
  CHECK_MESSAGE(threw, "accepted: " << text);
}

const std::string k_best =
    "{\"schema_version\": 1, \"key\": \"val_loss\", \"mode\": \"min\", \"value\": 1.23, "
    "\"step\": 1200, \"path\": \"step-000001200\", \"updated\": \"2026-11-28T12:00:00Z\"}";

void best_rejects(const Edits& edits, ckpt::ErrorKind kind = ckpt::ErrorKind::integrity) {
  expect_error([](const std::string& t) { return ckpt::parse_best(t); }, apply(k_best, edits), kind);
}

const std::string k_policy =
    "{\"schema_version\": 1, \"best_key\": \"val_loss\", \"best_mode\": \"min\", "
    "\"keep_last\": 3, \"keep_best\": 1, \"keep_every\": 1000, \"keep_within\": \"7d\", "
    "\"checksum\": \"sha256\"}";

void policy_rejects(const Edits& edits, ckpt::ErrorKind kind = ckpt::ErrorKind::integrity) {
  expect_error([](const std::string& t) { return ckpt::parse_policy(t); }, apply(k_policy, edits),
               kind);
}

}  // namespace

TEST_CASE("format_markers: best.json of SPEC §5 parses") {
  auto b = ckpt::parse_best(k_best);
  CHECK(b.key == "val_loss");
  CHECK(b.mode == ckpt::Mode::min);
  CHECK(b.value == 1.23);
  CHECK(b.step == 1200);
  CHECK(b.path == "step-000001200");
  CHECK(b.updated == "2026-11-28T12:00:00Z");
}

TEST_CASE("format_markers: best.json round trip") {
  ckpt::BestMarker b;
  b.key = "acc";
  b.mode = ckpt::Mode::max;
  b.value = -0.125;
  b.step = 42;
  b.path = "step-000000042";
  b.updated = "2026-01-01T00:00:00Z";
  std::string text = ckpt::serialize_best(b);
  CAPTURE(text);
  CHECK(text.back() == '\n');
  CHECK(text.find("\"schema_version\":1") != std::string::npos);
  auto back = ckpt::parse_best(text);
  CHECK(back.key == b.key);
  CHECK(back.mode == b.mode);
  CHECK(back.value == b.value);
  CHECK(back.step == b.step);
  CHECK(back.path == b.path);
  CHECK(back.updated == b.updated);
  CHECK(ckpt::serialize_best(back) == text);

  b.mode = ckpt::Mode::min;
  b.value = 3.141592653589793;
  b.path = "step-42";  // a reader accepts any width
  auto back2 = ckpt::parse_best(ckpt::serialize_best(b));
  CHECK(back2.mode == ckpt::Mode::min);
  CHECK(back2.value == 3.141592653589793);
  CHECK(back2.path == "step-42");
}

TEST_CASE("format_markers: best.json rejections") {
  best_rejects({{"\"key\": \"val_loss\", ", ""}});
  best_rejects({{"\"mode\": \"min\", ", ""}});
  best_rejects({{"\"value\": 1.23, ", ""}});
  best_rejects({{"\"step\": 1200, ", ""}});
  best_rejects({{", \"path\": \"step-000001200\"", ""}});
  best_rejects({{"\"schema_version\": 1, ", ""}});
  best_rejects({{"\"mode\": \"min\"", "\"mode\": \"avg\""}});
  best_rejects({{"\"mode\": \"min\"", "\"mode\": \"MIN\""}});
  best_rejects({{"\"value\": 1.23", "\"value\": \"1.23\""}});
  best_rejects({{"\"value\": 1.23", "\"value\": null"}});
  best_rejects({{"\"key\": \"val_loss\"", "\"key\": 5"}});
  best_rejects({{"\"key\": \"val_loss\"", "\"key\": \"\""}});
  best_rejects({{"\"step\": 1200", "\"step\": \"1200\""}});
  best_rejects({{"\"path\": \"step-000001200\"", "\"path\": \"model.safetensors\""}});
  best_rejects({{"\"path\": \"step-000001200\"", "\"path\": \"../x\""}});
  best_rejects({{"\"path\": \"step-000001200\"", "\"path\": \"../step-000001200\""}});
  best_rejects({{"\"path\": \"step-000001200\"", "\"path\": \"/tmp/step-000001200\""}});
  best_rejects({{"\"path\": \"step-000001200\"", "\"path\": \"x/step-000001200\""}});
  best_rejects({{"\"path\": \"step-000001200\"", "\"path\": \"step-000001201\""}});
  best_rejects({{"\"step\": 1200", "\"step\": 1201"}});
  best_rejects({{"{", "["}, {"}", "]"}});
  expect_error([](const std::string& t) { return ckpt::parse_best(t); }, "", ckpt::ErrorKind::integrity);
  expect_error([](const std::string& t) { return ckpt::parse_best(t); }, k_best.substr(0, 40),
               ckpt::ErrorKind::integrity);
  best_rejects({{"\"schema_version\": 1", "\"schema_version\": 2"}}, ckpt::ErrorKind::unsupported);
}

TEST_CASE("format_markers: policy.json round trip with every field") {
  ckpt::Policy p;
  p.best_key = "val_loss";
  p.best_mode = ckpt::Mode::max;
  p.keep_last = 3;
  p.keep_best = 1;
  p.keep_every = 1000;
  p.keep_within = "1d12h";
  p.checksum = "none";
  std::string text = ckpt::serialize_policy(p);
  CAPTURE(text);
  auto back = ckpt::parse_policy(text);
  CHECK(back == p);
  CHECK(back.best_key == std::optional<std::string>("val_loss"));
  CHECK(back.best_mode == std::optional<ckpt::Mode>(ckpt::Mode::max));
  CHECK(back.keep_last == std::optional<std::uint64_t>(3));
  CHECK(back.keep_best == std::optional<std::uint64_t>(1));
  CHECK(back.keep_every == std::optional<std::uint64_t>(1000));
  CHECK(back.keep_within == std::optional<std::string>("1d12h"));
  CHECK(back.checksum == std::optional<std::string>("none"));
  CHECK(back.has_retention_rule());

  auto spec = ckpt::parse_policy(k_policy);
  CHECK(spec.best_key == std::optional<std::string>("val_loss"));
  CHECK(spec.best_mode == std::optional<ckpt::Mode>(ckpt::Mode::min));
  CHECK(spec.keep_within == std::optional<std::string>("7d"));
  CHECK(spec.checksum == std::optional<std::string>("sha256"));
}

TEST_CASE("format_markers: an empty policy round trips and has no rule") {
  ckpt::Policy p;
  std::string text = ckpt::serialize_policy(p);
  CAPTURE(text);
  CHECK(text.find("schema_version") != std::string::npos);
  CHECK(text.find("keep") == std::string::npos);
  CHECK(text.find("best") == std::string::npos);
  auto back = ckpt::parse_policy(text);
  CHECK(back == ckpt::Policy{});
  CHECK_FALSE(back.has_retention_rule());
  CHECK(ckpt::parse_policy("{\"schema_version\": 1}") == ckpt::Policy{});

  ckpt::Policy only_last;
  only_last.keep_last = 0;
  auto back2 = ckpt::parse_policy(ckpt::serialize_policy(only_last));
  CHECK(back2 == only_last);
  CHECK(back2.has_retention_rule());
}

TEST_CASE("format_markers: policy.json rejections") {
  policy_rejects({{"\"keep_every\": 1000", "\"keep_every\": 0"}});
  policy_rejects({{"\"keep_within\": \"7d\"", "\"keep_within\": \"forever\""}});
  policy_rejects({{"\"keep_within\": \"7d\"", "\"keep_within\": \"0d\""}});
  policy_rejects({{"\"keep_within\": \"7d\"", "\"keep_within\": 7"}});
  policy_rejects({{"\"checksum\": \"sha256\"", "\"checksum\": \"md5\""}});
  policy_rejects({{"\"keep_last\": 3", "\"keep_last\": -1"}});
  policy_rejects({{"\"keep_last\": 3", "\"keep_last\": \"3\""}});
  policy_rejects({{"\"keep_last\": 3", "\"keep_last\": 2.5"}});
  policy_rejects({{"\"keep_best\": 1", "\"keep_best\": -1"}});
  policy_rejects({{"\"best_mode\": \"min\"", "\"best_mode\": \"avg\""}});
  policy_rejects({{"\"best_key\": \"val_loss\"", "\"best_key\": \"\""}});
  policy_rejects({{"\"best_key\": \"val_loss\"", "\"best_key\": 3"}});
  policy_rejects({{"\"schema_version\": 1, ", ""}});
  policy_rejects({{"{", "["}, {"}", "]"}});
  policy_rejects({{"\"schema_version\": 1", "\"schema_version\": 2"}}, ckpt::ErrorKind::unsupported);
}

TEST_CASE("format_markers: parse_last_text") {
  CHECK(ckpt::parse_last_text("step-000000001\n") == "step-000000001");
  CHECK(ckpt::parse_last_text("step-000000001") == "step-000000001");
  CHECK(ckpt::parse_last_text("step-000000001\r\n") == "step-000000001");
  CHECK(ckpt::parse_last_text("step-000000002\nignored\n") == "step-000000002");
  CHECK(ckpt::serialize_last("step-000000003") == "step-000000003\n");
  CHECK(ckpt::parse_last_text(ckpt::serialize_last("step-000000003")) == "step-000000003");
  for (const std::string& bad : {std::string(""), std::string("\n"), std::string("\r\n"),
                                std::string("step-1\0x\n", 9)}) {
    CAPTURE(bad);
    expect_error([](const std::string& t) { return ckpt::parse_last_text(t); }, bad,
                 ckpt::ErrorKind::integrity);
  }
}

TEST_CASE("format_markers: step directory names") {
  CHECK(ckpt::step_dir_name(1200) == "step-000001200");
  CHECK(ckpt::step_dir_name(0) == "step-000000000");
  CHECK(ckpt::step_dir_name(123456789) == "step-123456789");
  CHECK(ckpt::step_dir_name(1234567890) == "step-1234567890");
  CHECK(ckpt::step_dir_name(ckpt::k_max_step) == "step-9223372036854775807");

  CHECK(ckpt::parse_step_dir_name("step-5") == std::optional<std::uint64_t>(5));
  CHECK(ckpt::parse_step_dir_name("step-000000005") == std::optional<std::uint64_t>(5));
  CHECK(ckpt::parse_step_dir_name("step-0000000000000005") == std::optional<std::uint64_t>(5));
  CHECK(ckpt::parse_step_dir_name("step-0") == std::optional<std::uint64_t>(0));
  CHECK(ckpt::parse_step_dir_name("step-000001200") == std::optional<std::uint64_t>(1200));
  CHECK(ckpt::parse_step_dir_name("step-9223372036854775807") ==
        std::optional<std::uint64_t>(ckpt::k_max_step));
  for (std::uint64_t s : {std::uint64_t{0}, std::uint64_t{7}, std::uint64_t{1200},
                          std::uint64_t{999999999}, std::uint64_t{1000000000}, ckpt::k_max_step}) {
    CAPTURE(s);
    CHECK(ckpt::parse_step_dir_name(ckpt::step_dir_name(s)) == std::optional<std::uint64_t>(s));
  }
  for (const char* bad : {"step-", "step-abc", "step--1", "step-99999999999999999999", "xstep-1",
                          "step", "", "step-1a", "step-+1", "step- 1", "Step-1", "step-1/",
                          "step-9223372036854775808"}) {
    CAPTURE(bad);
    CHECK_FALSE(ckpt::parse_step_dir_name(bad).has_value());
  }
}

TEST_CASE("format_markers: parse_step accepts 0 <= step < 2^63") {
  CHECK(ckpt::parse_step("0") == std::optional<std::uint64_t>(0));
  CHECK(ckpt::parse_step("1200") == std::optional<std::uint64_t>(1200));
  CHECK(ckpt::parse_step("9223372036854775807") == std::optional<std::uint64_t>(ckpt::k_max_step));
  CHECK(ckpt::k_max_step == 9223372036854775807ull);
  for (const char* bad : {"9223372036854775808", "18446744073709551615", "18446744073709551616",
                          "99999999999999999999", "", "-1", "+1", "1 ", " 1", "1e3", "0x10", "abc"}) {
    CAPTURE(bad);
    CHECK_FALSE(ckpt::parse_step(bad).has_value());
  }
}

TEST_CASE("format_markers: parse_mode and mode_name") {
  CHECK(ckpt::parse_mode("min") == std::optional<ckpt::Mode>(ckpt::Mode::min));
  CHECK(ckpt::parse_mode("max") == std::optional<ckpt::Mode>(ckpt::Mode::max));
  CHECK_FALSE(ckpt::parse_mode("avg").has_value());
  CHECK_FALSE(ckpt::parse_mode("").has_value());
  CHECK(std::string(ckpt::mode_name(ckpt::Mode::min)) == "min");
  CHECK(std::string(ckpt::mode_name(ckpt::Mode::max)) == "max");
}
