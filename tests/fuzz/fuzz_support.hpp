// SPDX-License-Identifier: Apache-2.0
// Shared helpers of the fuzz targets: reporting a broken property, temporary roots.
#pragma once

#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "ckpt/error.hpp"

namespace ckpt_fuzz {

// The bytes of a fuzz input as a string (may hold NUL bytes, invalid UTF-8).
inline std::string input(const std::uint8_t* data, std::size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

// A printable, C-escaped form of s (for property-violation messages).
inline std::string escaped(std::string_view s, std::size_t max = 400) {
  static const char hex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < s.size() && i < max; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '\\' || c == '"') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

// A broken property: report it and abort, so that libFuzzer keeps the input as a
// crash and the replay test fails.
[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "\nckpt fuzz: property violated: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

inline void check(bool ok, const std::string& what) {
  if (!ok) fail(what);
}

// A fresh directory under $TMPDIR (default /tmp), removed at exit.
class TempTree {
 public:
  explicit TempTree(const char* tag) {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/ckpt-fuzz-" + tag + "-XXXXXX";
    char* p = ::mkdtemp(templ.data());
    if (p == nullptr) fail("mkdtemp " + templ + " failed");
    // The canonical path, so that it compares equal to what the library computes.
    m_path = std::filesystem::canonical(templ).string();
  }
  TempTree(const TempTree&) = delete;
  TempTree& operator=(const TempTree&) = delete;
  ~TempTree() {
    std::error_code ec;
    std::filesystem::remove_all(m_path, ec);
  }
  const std::string& path() const { return m_path; }

 private:
  std::string m_path;
};

inline const char* kind_or_none(const ckpt::Error& e) { return ckpt::kind_name(e.kind()); }

}  // namespace ckpt_fuzz
