// SPDX-License-Identifier: Apache-2.0
// The copy+hash loop and hashing of files already in place.
//
// A file of at least k_overlap_min bytes is read on the calling thread into a
// ring of buffers while other threads hash and write each buffer, so reading,
// hashing and writing overlap: the time is that of the slowest of the three
// rather than their sum. Smaller files take one loop on one thread (the
// threads would cost more than they save); callers spread many files over the
// cores (parallel.hpp).
#include "ckpt/transfer.hpp"

#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "ckpt/error.hpp"
#include "ckpt/hash.hpp"

namespace ckpt {

namespace {

constexpr std::size_t k_chunk = 1 << 20;
constexpr std::size_t k_slots = 4;
constexpr std::uint64_t k_overlap_min = 4 * k_chunk;

// Lock-free, so a signal handler may set it; atomic, so every thread sees it.
std::atomic<int> g_interrupted{0};
static_assert(std::atomic<int>::is_always_lock_free);

// This thread's buffer for the one-thread loop, kept from file to file.
char* thread_buffer() {
  thread_local std::unique_ptr<char[]> buf(new char[k_chunk]);
  return buf.get();
}

// One reader filling a ring of k_slots buffers; each consumer takes every
// buffer in order on a thread of its own; a buffer is refilled once all
// consumers are done with it. The first error stops everyone and is rethrown
// by run().
class ReadAhead {
 public:
  using Consumer = std::function<void(const char*, std::size_t)>;

  explicit ReadAhead(std::vector<Consumer> consumers)
      : m_consumers(std::move(consumers)), m_consumed(m_consumers.size(), 0) {
    for (std::size_t i = 0; i < k_slots; ++i) m_buffers.emplace_back(new char[k_chunk]);
  }

  // Reads fd to its end on this thread; returns the bytes read.
  std::uint64_t run(FileSystem& fs, int fd, const ProgressFn& progress) {
    std::vector<std::thread> threads;
    std::uint64_t total = 0;
    try {
      for (std::size_t c = 0; c < m_consumers.size(); ++c) {
        threads.emplace_back([this, c] { consume(c); });
      }
      for (;;) {
        check_interrupt();
        std::size_t slot = 0;
        {
          std::unique_lock<std::mutex> lock(m_mutex);
          m_cv.wait(lock, [&] { return m_stop || m_produced - slowest() < k_slots; });
          if (m_stop) break;
          slot = m_produced % k_slots;
        }
        std::size_t n = fs.read(fd, m_buffers[slot].get(), k_chunk);
        {
          std::lock_guard<std::mutex> lock(m_mutex);
          if (n == 0) {
            m_eof = true;
          } else {
            m_length[slot] = n;
            ++m_produced;
          }
        }
        m_cv.notify_all();
        if (n == 0) break;
        total += n;
        if (progress) progress(n);
      }
    } catch (...) {
      fail(std::current_exception());
    }
    for (auto& t : threads) t.join();
    if (m_error) std::rethrow_exception(m_error);
    return total;
  }

 private:
  std::uint64_t slowest() const { return *std::min_element(m_consumed.begin(), m_consumed.end()); }

  void consume(std::size_t c) {
    std::uint64_t i = 0;
    try {
      for (;;) {
        std::size_t slot = 0;
        std::size_t n = 0;
        {
          std::unique_lock<std::mutex> lock(m_mutex);
          m_cv.wait(lock, [&] { return m_stop || i < m_produced || m_eof; });
          if (m_stop || i == m_produced) return;
          slot = i % k_slots;
          n = m_length[slot];
        }
        m_consumers[c](m_buffers[slot].get(), n);
        {
          std::lock_guard<std::mutex> lock(m_mutex);
          m_consumed[c] = ++i;
        }
        m_cv.notify_all();
      }
    } catch (...) {
      fail(std::current_exception());
    }
  }

  void fail(std::exception_ptr e) {
    {
      std::lock_guard<std::mutex> lock(m_mutex);
      if (!m_error) m_error = std::move(e);
      m_stop = true;
    }
    m_cv.notify_all();
  }

  std::vector<Consumer> m_consumers;
  std::vector<std::unique_ptr<char[]>> m_buffers;
  std::size_t m_length[k_slots] = {};
  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::uint64_t m_produced = 0;
  std::vector<std::uint64_t> m_consumed;
  bool m_eof = false;
  bool m_stop = false;
  std::exception_ptr m_error;
};

}  // namespace

void request_interrupt() { g_interrupted.store(1, std::memory_order_relaxed); }
bool interrupt_requested() { return g_interrupted.load(std::memory_order_relaxed) != 0; }
void clear_interrupt() { g_interrupted.store(0, std::memory_order_relaxed); }
void check_interrupt() {
  if (interrupt_requested()) throw Error(ErrorKind::interrupted, "interrupted");
}

TransferResult copy_and_hash(FileSystem& fs, int src_fd, int dst_fd, Hash hash,
                             const ProgressFn& progress, Overlap overlap) {
  std::optional<Sha256> sha;
  if (hash == Hash::yes) sha.emplace();
  TransferResult result;
  // A hint: the kernel reads ahead further for a file read from start to end.
  ::posix_fadvise(src_fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  bool work = sha || dst_fd >= 0;
  if (overlap == Overlap::yes && work && fs.fstat(src_fd).size >= k_overlap_min) {
    std::vector<ReadAhead::Consumer> consumers;
    if (sha) consumers.emplace_back([&](const char* p, std::size_t n) { sha->update(p, n); });
    if (dst_fd >= 0) {
      consumers.emplace_back([&](const char* p, std::size_t n) { fs.write(dst_fd, p, n); });
    }
    ReadAhead pipe(std::move(consumers));
    result.size = pipe.run(fs, src_fd, progress);
  } else {
    char* buf = thread_buffer();
    for (;;) {
      check_interrupt();
      std::size_t n = fs.read(src_fd, buf, k_chunk);
      if (n == 0) break;
      if (sha) sha->update(buf, n);
      if (dst_fd >= 0) fs.write(dst_fd, buf, n);
      result.size += n;
      if (progress) progress(n);
    }
  }
  if (sha) result.sha256 = sha->hex_digest();
  return result;
}

TransferResult hash_fd(FileSystem& fs, int fd, Hash hash, const ProgressFn& progress,
                       Overlap overlap) {
  return copy_and_hash(fs, fd, -1, hash, progress, overlap);
}

TransferResult hash_file(FileSystem& fs, const std::string& path, Hash hash,
                         const ProgressFn& progress, Overlap overlap) {
  FdGuard fd(fs, fs.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK));
  if (fs.fstat(fd.get()).type != FileType::file) {
    throw Error(ErrorKind::integrity, path + " is not a regular file");
  }
  return hash_fd(fs, fd.get(), hash, progress, overlap);
}

}  // namespace ckpt
