// SPDX-License-Identifier: Apache-2.0
// Retention durations and RFC 3339 timestamps.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "ckpt/clock.hpp"

TEST_CASE("clock: parse_duration of valid durations") {
  CHECK(ckpt::parse_duration("30m") == std::optional<std::int64_t>(1800));
  CHECK(ckpt::parse_duration("12h") == std::optional<std::int64_t>(12 * 3600));
  CHECK(ckpt::parse_duration("7d") == std::optional<std::int64_t>(7 * 86400));
  CHECK(ckpt::parse_duration("2w") == std::optional<std::int64_t>(14 * 86400));
  CHECK(ckpt::parse_duration("1d12h") == std::optional<std::int64_t>(129600));
  CHECK(ckpt::parse_duration("90s") == std::optional<std::int64_t>(90));
  CHECK(ckpt::parse_duration("1s") == std::optional<std::int64_t>(1));
  CHECK(ckpt::parse_duration("1h30m") == std::optional<std::int64_t>(5400));
  CHECK(ckpt::parse_duration("1w1d1h1m1s") ==
        std::optional<std::int64_t>(7 * 86400 + 86400 + 3600 + 60 + 1));
}

TEST_CASE("clock: parse_duration refuses malformed or zero durations") {
  const std::vector<std::string> bad = {"",   "d",   "5",    "5x",  "-1d", "0d",   "0s",
                                        "0h0m", "1.5h", " 1d", "1d ", "1D",  "1dd", "d1",
                                        "1d-", "+1d", "1 d"};
  for (const auto& s : bad) {
    CAPTURE(s);
    CHECK_FALSE(ckpt::parse_duration(s).has_value());
  }
}

TEST_CASE("clock: parse_rfc3339_ms of known instants") {
  CHECK(ckpt::parse_rfc3339_ms("1970-01-01T00:00:00Z") == std::optional<std::int64_t>(0));
  CHECK(ckpt::parse_rfc3339_ms("1970-01-01T00:00:01.5Z") == std::optional<std::int64_t>(1500));
  // date -u -d 2026-11-28T12:00:00Z +%s = 1795867200
  CHECK(ckpt::parse_rfc3339_ms("2026-11-28T12:00:00Z") ==
        std::optional<std::int64_t>(1795867200000));
  CHECK(ckpt::parse_rfc3339_ms("2026-11-28T12:00:00.123Z") ==
        std::optional<std::int64_t>(1795867200123));
  CHECK(ckpt::parse_rfc3339_ms("2026-11-28T12:00:00.000Z") ==
        std::optional<std::int64_t>(1795867200000));
  // A leap day: date -u -d 2000-02-29T23:59:59Z +%s = 951868799
  CHECK(ckpt::parse_rfc3339_ms("2000-02-29T23:59:59.999Z") ==
        std::optional<std::int64_t>(951868799999));
}

TEST_CASE("clock: now_rfc3339_ms has the shape YYYY-MM-DDTHH:MM:SS.mmmZ and round trips") {
  using namespace std::chrono;
  auto before = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  std::string s = ckpt::now_rfc3339_ms();
  auto after = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  CAPTURE(s);
  REQUIRE(s.size() == 24);
  for (std::size_t i = 0; i < s.size(); ++i) {
    CAPTURE(i);
    switch (i) {
      case 4: case 7: CHECK(s[i] == '-'); break;
      case 10: CHECK(s[i] == 'T'); break;
      case 13: case 16: CHECK(s[i] == ':'); break;
      case 19: CHECK(s[i] == '.'); break;
      case 23: CHECK(s[i] == 'Z'); break;
      default: CHECK((s[i] >= '0' && s[i] <= '9')); break;
    }
  }
  auto ms = ckpt::parse_rfc3339_ms(s);
  REQUIRE(ms.has_value());
  CHECK(*ms >= before);
  CHECK(*ms <= after);
}

TEST_CASE("clock: now_rfc3339 has the shape YYYY-MM-DDTHH:MM:SSZ") {
  using namespace std::chrono;
  auto before = duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
  std::string s = ckpt::now_rfc3339();
  auto after = duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
  CAPTURE(s);
  REQUIRE(s.size() == 20);
  CHECK(s[10] == 'T');
  CHECK(s[19] == 'Z');
  auto ms = ckpt::parse_rfc3339_ms(s);
  REQUIRE(ms.has_value());
  CHECK(*ms % 1000 == 0);
  CHECK(*ms / 1000 >= before);
  CHECK(*ms / 1000 <= after);
}

TEST_CASE("clock: parse_rfc3339_ms refuses malformed timestamps") {
  const std::vector<std::string> bad = {
      "",
      "2026",
      "2026-11-28",
      "2026-11-28T12:00:00",         // no zone
      "2026-11-28T12:00:00+01:00",   // not UTC
      "2026-11-28T12:00:00.123",     // no zone
      "2026-11-28T12:00:00.Z",       // empty fraction
      "2026-11-28T12:00:00ZZ",
      "2026-11-28T12:00:00Z ",
      " 2026-11-28T12:00:00Z",
      "2026-11-28X12:00:00Z",
      "2026/11/28T12:00:00Z",
      "2026-11-28T12.00.00Z",
      "26-11-28T12:00:00Z",
      "2026-1-28T12:00:00Z",
      "2026-11-2T12:00:00Z",
      "2026-13-01T00:00:00Z",        // month 13
      "2026-00-01T00:00:00Z",        // month 0
      "2026-11-00T00:00:00Z",        // day 0
      "2026-11-32T00:00:00Z",        // day 32
      "2026-11-28T24:00:00Z",        // hour 24
      "2026-11-28T12:60:00Z",        // minute 60
      "2026-11-28T12:00:61Z",        // second 61
      "2026-02-30T00:00:00Z",        // no 30 February
      "2026-04-31T00:00:00Z",        // April has 30 days
      "2025-02-29T00:00:00Z",        // not a leap year
      "2026-1a-28T12:00:00Z",
      "abcd-11-28T12:00:00Z",
      "2026-11-28T12:00:00.12aZ",
  };
  for (const auto& s : bad) {
    CAPTURE(s);
    CHECK_FALSE(ckpt::parse_rfc3339_ms(s).has_value());
  }
}
