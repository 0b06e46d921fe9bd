// SPDX-License-Identifier: Apache-2.0
// Small text parsers: parse_duration (SPEC §6 keep_within), parse_rfc3339_ms (SPEC §3 created),
// stored_path_problem (SPEC §2) and glob_match (load --only, save --weights). None may crash;
// each is checked against a simple reference where one is cheap to write.
#include <time.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ckpt/clock.hpp"
#include "ckpt/paths.hpp"
#include "fuzz_support.hpp"

namespace {

using ckpt_fuzz::check;
using ckpt_fuzz::escaped;

// Wide enough that the reference never overflows (__extension__: not ISO C++, no -Wpedantic).
__extension__ typedef __int128 i128;

// Groups of <digits><unit>; nullopt when malformed. Numbers are capped (no overflow): the cap
// is far above every limit the library applies.
struct RefDuration {
  i128 total = 0;
  i128 largest_number = 0;
};
std::optional<RefDuration> reference_duration(std::string_view s) {
  if (s.empty()) return std::nullopt;
  RefDuration r;
  const i128 cap = static_cast<i128>(1) << 100;
  std::size_t pos = 0;
  while (pos < s.size()) {
    i128 n = 0;
    std::size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      n = n * 10 + (s[pos] - '0');
      if (n > cap) n = cap;
      ++pos;
    }
    if (pos == start || pos == s.size()) return std::nullopt;
    i128 unit = 0;
    switch (s[pos]) {
      case 's': unit = 1; break;
      case 'm': unit = 60; break;
      case 'h': unit = 3600; break;
      case 'd': unit = 86400; break;
      case 'w': unit = 7 * 86400; break;
      default: return std::nullopt;
    }
    ++pos;
    r.total += n * unit;
    if (r.total > cap) r.total = cap;
    if (n > r.largest_number) r.largest_number = n;
  }
  return r;
}

void check_duration(const std::string& s) {
  auto got = ckpt::parse_duration(s);
  auto ref = reference_duration(s);
  auto where = [&](const std::string& what) { return what + " for \"" + escaped(s) + "\""; };
  if (got) {
    check(*got > 0, where("parse_duration returned a non-positive duration"));
    check(ref && ref->total == *got, where("parse_duration disagrees with the reference"));
  } else if (ref && ref->total > 0) {
    // Refusing is allowed only for absurd values (numbers past 10^9 or totals past 2^50 s).
    check(ref->largest_number > 1'000'000'000 || ref->total > (static_cast<i128>(1) << 50),
          where("parse_duration refused a well-formed duration"));
  }
}

void check_rfc3339(const std::string& s) {
  auto got = ckpt::parse_rfc3339_ms(s);
  if (!got) return;
  auto where = [&](const std::string& what) { return what + " for \"" + escaped(s) + "\""; };
  // Accepted: "YYYY-MM-DDTHH:MM:SS[.fff...]Z"; the value must decode to those fields.
  check(s.size() >= 20 && (s.back() == 'Z' || s.back() == 'z'), where("accepted a malformed time"));
  auto num = [&](std::size_t pos, std::size_t n) {
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) v = v * 10 + (s[i] - '0');
    return v;
  };
  int sec = num(17, 2);
  if (sec == 60) return;  // a leap second normalises into the next minute
  std::int64_t ms = *got;
  std::int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
  std::int64_t frac = ms - secs * 1000;
  time_t t = static_cast<time_t>(secs);
  struct tm tm {};
  check(::gmtime_r(&t, &tm) != nullptr, where("value out of range"));
  check(tm.tm_year + 1900 == num(0, 4) && tm.tm_mon + 1 == num(5, 2) && tm.tm_mday == num(8, 2) &&
            tm.tm_hour == num(11, 2) && tm.tm_min == num(14, 2) && tm.tm_sec == sec,
        where("parse_rfc3339_ms value decodes to another time"));
  int want_frac = 0;
  if (s[19] == '.') {
    int scale = 100;
    for (std::size_t i = 20; i < s.size() && s[i] >= '0' && s[i] <= '9' && scale > 0; ++i) {
      want_frac += (s[i] - '0') * scale;
      scale /= 10;
    }
  }
  check(frac == want_frac, where("parse_rfc3339_ms lost the milliseconds"));
}

void check_stored_path(const std::string& p) {
  bool ok = !ckpt::stored_path_problem(p).has_value();
  bool want = !p.empty() && p.front() != '/';
  for (char c : p) {
    if (c == '\0' || c == '\n' || c == '\r' || c == '\\') want = false;
  }
  std::size_t start = 0;
  while (want && start <= p.size()) {
    std::size_t end = p.find('/', start);
    if (end == std::string::npos) end = p.size();
    std::string_view seg(p.data() + start, end - start);
    if (seg.empty() || seg == "." || seg == "..") want = false;
    start = end + 1;
  }
  check(ok == want, (ok ? "stored_path_problem accepted \"" : "stored_path_problem refused \"") +
                        escaped(p) + "\"");
}

void check_glob(const std::string& pattern, const std::string& path) {
  bool m = ckpt::glob_match(pattern, path);
  // Without special characters (and NULs, which end the C strings), a glob is a literal.
  if (pattern.find_first_of(std::string("*?[\\\0", 5)) == std::string::npos &&
      path.find('\0') == std::string::npos) {
    check(m == (pattern == path),
          "glob_match(\"" + escaped(pattern) + "\", \"" + escaped(path) + "\") is not literal");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string s = ckpt_fuzz::input(data, size);
  check_duration(s);
  check_rfc3339(s);
  check_stored_path(s);
  // glob_match: the first line is the pattern, the rest the path.
  std::size_t nl = s.find('\n');
  if (nl == std::string::npos) {
    check_glob(s, s);
  } else {
    check_glob(s.substr(0, nl), s.substr(nl + 1));
  }
  return 0;
}
