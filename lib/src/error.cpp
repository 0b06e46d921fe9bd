// SPDX-License-Identifier: Apache-2.0
// Exit codes and error construction.
#include "ckpt/error.hpp"

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace ckpt {

int exit_code(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::integrity: return 1;
    case ErrorKind::usage: return 2;
    case ErrorKind::not_found: return 3;
    case ErrorKind::conflict: return 4;
    case ErrorKind::locked: return 5;
    case ErrorKind::io: return 6;
    case ErrorKind::unsupported: return 7;
    case ErrorKind::interrupted: return 130;
  }
  return 6;
}

const char* kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::integrity: return "integrity";
    case ErrorKind::usage: return "usage";
    case ErrorKind::not_found: return "not_found";
    case ErrorKind::conflict: return "conflict";
    case ErrorKind::locked: return "locked";
    case ErrorKind::io: return "io";
    case ErrorKind::unsupported: return "unsupported";
    case ErrorKind::interrupted: return "interrupted";
  }
  return "io";
}

Error io_error(int err, const std::string& what, const std::string& path) {
  if (err == ENOSPC || err == EDQUOT) {
    return Error(ErrorKind::io, fmt::format("{} {}: no space left on device (disk full)", what, path), err);
  }
  if (err == EROFS) {
    return Error(ErrorKind::io, fmt::format("{} {}: read-only file system", what, path), err);
  }
  return Error(ErrorKind::io, fmt::format("{} {}: {}", what, path, std::strerror(err)), err);
}

}  // namespace ckpt
