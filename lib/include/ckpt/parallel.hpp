// SPDX-License-Identifier: Apache-2.0
// Running byte-moving work on every core: a bounded set of threads over a list of items.
#pragma once

#include <cstddef>
#include <functional>

namespace ckpt {

// The most threads one operation uses, whatever the core count: each may hold
// a read-ahead ring of buffers (transfer.hpp), and memory stays bounded.
inline constexpr unsigned k_max_workers = 12;

// Threads for an operation: `requested` when non-zero, else one per core;
// never more than k_max_workers, never fewer than 1.
unsigned worker_count(unsigned requested = 0);

// Calls fn(i) for every i in [0, n) on up to `workers` threads, the calling
// thread among them. Items start in index order (sort the biggest first), each
// on whichever thread is free. After an item throws, no new item starts; once
// the running ones have returned, the first exception is rethrown here.
void for_each_parallel(std::size_t n, unsigned workers, const std::function<void(std::size_t)>& fn);

}  // namespace ckpt
