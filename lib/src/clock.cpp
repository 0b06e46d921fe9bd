// SPDX-License-Identifier: Apache-2.0
// Timestamp formatting and parsing, and retention durations.
#include "ckpt/clock.hpp"

#include <chrono>
#include <ctime>

#include <fmt/format.h>

namespace ckpt {

namespace {

std::string format_utc(std::int64_t ms, bool with_ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  std::string s = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", tm.tm_year + 1900,
                              tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  if (with_ms) s += fmt::format(".{:03}", ms % 1000);
  return s + "Z";
}

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

}  // namespace

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string format_rfc3339_ms(std::int64_t ms) { return format_utc(ms, true); }

std::string now_rfc3339_ms() { return format_utc(now_ms(), true); }
std::string now_rfc3339() { return format_utc(now_ms(), false); }

std::optional<std::int64_t> parse_rfc3339_ms(std::string_view s) {
  int y, mo, d, h, mi, se;
  if (!digits(s, 0, 4, y) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, mo) ||
      s[7] != '-' || !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't') ||
      !digits(s, 11, 2, h) || s[13] != ':' || !digits(s, 14, 2, mi) || s[16] != ':' ||
      !digits(s, 17, 2, se)) {
    return std::nullopt;
  }
  static const int days_in[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 60) return std::nullopt;
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (d > days_in[mo - 1] + (mo == 2 && leap ? 1 : 0)) return std::nullopt;
  std::size_t pos = 19;
  int ms = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int scale = 100;
    std::size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      ms += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
  }
  if (pos + 1 != s.size() || (s[pos] != 'Z' && s[pos] != 'z')) return std::nullopt;
  // Days since 1970-01-01 in the proleptic Gregorian calendar, by arithmetic
  // (timegm takes a lock and reads the time zone: listing 10,000 checkpoints
  // calls this 10,000 times). Years start in March, so the leap day is last.
  std::int64_t yy = y - (mo <= 2 ? 1 : 0);
  std::int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
  std::int64_t year_of_era = yy - era * 400;
  std::int64_t day_of_year = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  std::int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  std::int64_t days = era * 146097 + day_of_era - 719468;
  std::int64_t secs = ((days * 24 + h) * 60 + mi) * 60 + se;
  return secs * 1000 + ms;
}

std::optional<std::int64_t> parse_duration(std::string_view s) {
  if (s.empty()) return std::nullopt;
  std::int64_t total = 0;
  std::size_t pos = 0;
  while (pos < s.size()) {
    std::int64_t n = 0;
    std::size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (n > 1'000'000'000) return std::nullopt;
      n = n * 10 + (s[pos] - '0');
      ++pos;
    }
    if (pos == start || pos == s.size()) return std::nullopt;
    std::int64_t unit = 0;
    switch (s[pos]) {
      case 's': unit = 1; break;
      case 'm': unit = 60; break;
      case 'h': unit = 3600; break;
      case 'd': unit = 86400; break;
      case 'w': unit = 7 * 86400; break;
      default: return std::nullopt;
    }
    ++pos;
    total += n * unit;
    if (total > (std::int64_t{1} << 50)) return std::nullopt;
  }
  if (total <= 0) return std::nullopt;
  return total;
}

}  // namespace ckpt
