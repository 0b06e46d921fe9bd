// SPDX-License-Identifier: Apache-2.0
// A bounded set of threads over a list of items, with the first error rethrown.
#include "ckpt/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace ckpt {

unsigned worker_count(unsigned requested) {
  unsigned n = requested;
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  return std::clamp(n, 1u, k_max_workers);
}

void for_each_parallel(std::size_t n, unsigned workers, const std::function<void(std::size_t)>& fn) {
  if (n == 0) return;
  std::size_t threads = std::min<std::size_t>(std::max(1u, workers), n);
  if (threads == 1) {
    for (std::size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex m;
  std::exception_ptr first;
  auto work = [&] {
    for (;;) {
      if (failed.load(std::memory_order_acquire)) return;
      std::size_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= n) return;
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(m);
        if (!first) first = std::current_exception();
        failed.store(true, std::memory_order_release);
        return;
      }
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  try {
    for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(work);
  } catch (...) {
    // No more threads to be had: the ones started and this one do the work.
  }
  work();
  for (auto& t : pool) t.join();
  if (first) std::rethrow_exception(first);
}

}  // namespace ckpt
