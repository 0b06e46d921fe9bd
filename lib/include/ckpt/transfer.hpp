// Moving bytes into staging: the copy+hash loop, reflink, and hashing in place.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "ckpt/fs.hpp"

namespace ckpt {

// Called with the number of bytes just processed.
using ProgressFn = std::function<void(std::uint64_t)>;

struct TransferResult {
  std::uint64_t size = 0;
  std::optional<std::string> sha256;  // absent when hashing was not asked for
};

enum class Hash { no, yes };

// Copies src (an open descriptor at offset 0) into dst (none when negative),
// hashing the bytes in the same pass. This is the one loop a faster
// implementation replaces.
TransferResult copy_and_hash(FileSystem& fs, int src_fd, int dst_fd, Hash hash,
                             const ProgressFn& progress);

// Reads fd to its end, hashing; returns the size and digest.
TransferResult hash_fd(FileSystem& fs, int fd, Hash hash, const ProgressFn& progress);

// Hashes a file by path.
TransferResult hash_file(FileSystem& fs, const std::string& path, Hash hash,
                         const ProgressFn& progress);

// Set from a signal handler; long loops call check_interrupt().
void request_interrupt();
bool interrupt_requested();
// Throws Error(interrupted) once an interrupt was requested.
void check_interrupt();

}  // namespace ckpt
