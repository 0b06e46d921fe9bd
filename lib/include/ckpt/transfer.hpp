// SPDX-License-Identifier: Apache-2.0
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
// Whether a large file's reading, hashing and writing run on threads of their
// own, overlapping (yes), or one after another on the calling thread (no).
enum class Overlap { no, yes };

// Copies src (an open descriptor at offset 0) into dst (none when negative),
// hashing the bytes in the same pass: each byte is read once. progress is called
// on the calling thread.
TransferResult copy_and_hash(FileSystem& fs, int src_fd, int dst_fd, Hash hash,
                             const ProgressFn& progress, Overlap overlap = Overlap::yes);

// Reads fd to its end, hashing; returns the size and digest.
TransferResult hash_fd(FileSystem& fs, int fd, Hash hash, const ProgressFn& progress,
                       Overlap overlap = Overlap::yes);

// Hashes a file by path.
TransferResult hash_file(FileSystem& fs, const std::string& path, Hash hash,
                         const ProgressFn& progress, Overlap overlap = Overlap::yes);

// For file k of n spread over `workers` threads (for_each_parallel): a file
// overlaps its own reading, hashing and writing only once fewer than
// `workers` files remain, when cores would otherwise idle. Before that every
// core has a file of its own, and more threads would only take turns.
inline Overlap overlap_for(std::size_t k, std::size_t n, unsigned workers) {
  return n - k < workers ? Overlap::yes : Overlap::no;
}

// Set from a signal handler; long loops call check_interrupt().
void request_interrupt();
bool interrupt_requested();
// Throws Error(interrupted) once an interrupt was requested.
void check_interrupt();
// Forgets a requested interrupt: for a program that goes on after handling one.
void clear_interrupt();

}  // namespace ckpt
