// SPDX-License-Identifier: Apache-2.0
// Stored-path validation and globbing.
#include "ckpt/paths.hpp"

#include <fnmatch.h>

#include <filesystem>

#include <fmt/format.h>

namespace ckpt {

std::optional<std::string> stored_path_problem(std::string_view path) {
  if (path.empty()) return "empty path";
  if (path.front() == '/') return "absolute path";
  for (char c : path) {
    if (c == '\0') return "contains a NUL byte";
    if (c == '\n' || c == '\r') return "contains a newline";
    if (c == '\\') return "contains a backslash";
  }
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view seg = path.substr(start, end - start);
    if (seg.empty()) return "empty path segment";
    if (seg == ".") return "'.' segment";
    if (seg == "..") return "'..' segment";
    start = end + 1;
  }
  return std::nullopt;
}

bool glob_match(const std::string& pattern, const std::string& path) {
  return ::fnmatch(pattern.c_str(), path.c_str(), 0) == 0;
}

std::string absolute_path(const std::string& path) {
  std::error_code ec;
  auto p = std::filesystem::absolute(path, ec);
  if (ec) return path;
  std::string s = p.lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

}  // namespace ckpt
