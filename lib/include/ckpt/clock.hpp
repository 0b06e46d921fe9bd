// SPDX-License-Identifier: Apache-2.0
// Timestamps (RFC 3339, UTC) and retention durations.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ckpt {

// Milliseconds since the epoch, now.
std::int64_t now_ms();
// "2026-11-28T12:00:00.123Z" for a time in milliseconds since the epoch.
std::string format_rfc3339_ms(std::int64_t ms);
// "2026-11-28T12:00:00.123Z" for now.
std::string now_rfc3339_ms();
// "2026-11-28T12:00:00Z" for now.
std::string now_rfc3339();

// Milliseconds since the epoch for an RFC 3339 UTC timestamp with optional
// fraction ("...Z"); nullopt when malformed.
std::optional<std::int64_t> parse_rfc3339_ms(std::string_view s);

// Seconds in a duration such as "30m", "12h", "7d", "2w", "1d12h", "90s";
// nullopt when malformed or zero-length.
std::optional<std::int64_t> parse_duration(std::string_view s);

}  // namespace ckpt
