// SPDX-License-Identifier: Apache-2.0
// The threads under save, verify and load: for_each_parallel, and copy_and_hash
// with its read-ahead ring (reader, hasher and writer on threads of their own).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cerrno>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ckpt/error.hpp"
#include "fault_fs.hpp"
#include "ckpt/hash.hpp"
#include "ckpt/parallel.hpp"
#include "ckpt/transfer.hpp"
#include "test_support.hpp"

namespace {

constexpr std::size_t k_mib = 1 << 20;

// Bytes that differ from block to block, so a chunk written twice or out of
// order changes the digest.
std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  std::uint32_t x = 2463534242u;
  for (std::size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    s[i] = static_cast<char>(x);
  }
  return s;
}

struct Copied {
  ckpt::TransferResult result;
  std::string written;
};

Copied copy_file(ckpt::FileSystem& fs, const std::string& dir, const std::string& data,
                 ckpt::Hash hash, ckpt::Overlap overlap, bool write = true) {
  std::string src = dir + "/src";
  std::string dst = dir + "/dst";
  ckpt_test::write_text(src, data);
  ::unlink(dst.c_str());
  ckpt::FdGuard in(fs, fs.open(src, O_RDONLY));
  int out_fd = write ? fs.open(dst, O_WRONLY | O_CREAT | O_EXCL, 0644) : -1;
  std::uint64_t progressed = 0;
  Copied c;
  try {
    c.result = ckpt::copy_and_hash(fs, in.get(), out_fd, hash,
                                   [&](std::uint64_t n) { progressed += n; }, overlap);
  } catch (...) {
    if (out_fd >= 0) fs.close(out_fd);
    throw;
  }
  if (out_fd >= 0) {
    fs.close(out_fd);
    c.written = ckpt_test::read_text(dst);
  }
  CHECK(progressed == data.size());
  return c;
}

}  // namespace

TEST_CASE("parallel: worker_count is one per core, bounded") {
  CHECK(ckpt::worker_count(3) == 3);
  CHECK(ckpt::worker_count(1) == 1);
  CHECK(ckpt::worker_count(1000) == ckpt::k_max_workers);
  unsigned automatic = ckpt::worker_count(0);
  CHECK(automatic >= 1);
  CHECK(automatic <= ckpt::k_max_workers);
}

TEST_CASE("parallel: for_each_parallel runs every item exactly once") {
  for (unsigned workers : {1u, 2u, 3u, 12u}) {
    for (std::size_t n : {0u, 1u, 2u, 5u, 1000u}) {
      std::vector<std::atomic<int>> seen(n);
      ckpt::for_each_parallel(n, workers, [&](std::size_t i) { seen[i].fetch_add(1); });
      for (std::size_t i = 0; i < n; ++i) {
        INFO("workers " << workers << ", n " << n << ", item " << i);
        CHECK(seen[i].load() == 1);
      }
    }
  }
}

TEST_CASE("parallel: for_each_parallel uses several threads when asked") {
  // Two items that each wait for the other to have started can only both
  // finish when they run at the same time.
  std::atomic<int> started{0};
  ckpt::for_each_parallel(2, 2, [&](std::size_t) {
    started.fetch_add(1);
    for (int spin = 0; started.load() < 2; ++spin) {
      if (spin > 50'000'000) throw std::runtime_error("the other item never started");
      std::this_thread::yield();
    }
  });
  CHECK(started.load() == 2);
}

TEST_CASE("parallel: an item's exception is rethrown, and the items not yet started never start") {
  for (unsigned workers : {1u, 2u, 4u}) {
    std::atomic<int> ran{0};
    CHECK_THROWS_WITH_AS(ckpt::for_each_parallel(200, workers,
                                                 [&](std::size_t i) {
                                                   ran.fetch_add(1);
                                                   if (i == 3) {
                                                     throw ckpt::Error(ckpt::ErrorKind::io,
                                                                       "item 3 failed");
                                                   }
                                                   std::this_thread::sleep_for(
                                                       std::chrono::milliseconds(2));
                                                 }),
                         "item 3 failed", ckpt::Error);
    INFO("workers " << workers);
    // Item 3, the ones before it, and those the other threads took meanwhile.
    CHECK(ran.load() >= 4);
    CHECK(ran.load() < 100);
  }
}

TEST_CASE("transfer: copy_and_hash gives the same bytes and digest with and without overlap") {
  CKPT_TEMP_DIR(tmp);
  ckpt::PosixFileSystem fs;
  // Around the chunk size and the size from which a file overlaps (4 chunks).
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, k_mib - 1, k_mib, 4 * k_mib - 1,
                           4 * k_mib, 4 * k_mib + 1, 9 * k_mib + 123}) {
    std::string data = pattern(size);
    std::string want = ckpt::sha256_hex(data);
    for (auto overlap : {ckpt::Overlap::no, ckpt::Overlap::yes}) {
      INFO("size " << size << ", overlap " << (overlap == ckpt::Overlap::yes));
      Copied both = copy_file(fs, tmp.path(), data, ckpt::Hash::yes, overlap);
      CHECK(both.result.size == size);
      REQUIRE(both.result.sha256);
      CHECK(*both.result.sha256 == want);
      CHECK(both.written == data);

      Copied copy_only = copy_file(fs, tmp.path(), data, ckpt::Hash::no, overlap);
      CHECK_FALSE(copy_only.result.sha256);
      CHECK(copy_only.written == data);

      Copied hash_only = copy_file(fs, tmp.path(), data, ckpt::Hash::yes, overlap, false);
      CHECK(hash_only.result.sha256 == want);
      CHECK(hash_only.result.size == size);
    }
  }
}

TEST_CASE("transfer: a failing read or write on any thread of the overlap ends the copy cleanly") {
  CKPT_TEMP_DIR(tmp);
  ckpt::PosixFileSystem real;
  std::string data = pattern(12 * k_mib + 7);
  std::uint64_t ops = 0;
  {
    ckpt::FaultInjectingFileSystem counting(real);
    counting.record(true);
    copy_file(counting, tmp.path(), data, ckpt::Hash::yes, ckpt::Overlap::yes);
    ops = counting.count();
  }
  REQUIRE(ops > 20);  // 13 reads and 13 writes at least
  int reads = 0, writes = 0;
  for (std::uint64_t n = 1; n <= ops; ++n) {
    for (int write_errno : {0, ENOSPC}) {
      ckpt::FaultInjectingFileSystem fault(real);
      fault.fail_at(n, EIO, write_errno);
      INFO("operation " << n);
      bool threw = false;
      try {
        copy_file(fault, tmp.path(), data, ckpt::Hash::yes, ckpt::Overlap::yes);
      } catch (const ckpt::Error& e) {
        threw = true;
        CHECK(e.kind() == ckpt::ErrorKind::io);
        CHECK(std::string(e.what()).find("injected") != std::string::npos);
        if (fault.fired_op() == "write" && write_errno == ENOSPC) {
          CHECK(e.sys_errno() == ENOSPC);
        }
      }
      CHECK(fault.fired());
      // The source's descriptor is closed by a guard that ignores errors.
      if (fault.fired_op() != "close") CHECK(threw);
      if (fault.fired_op() == "read") ++reads;
      if (fault.fired_op() == "write") ++writes;
    }
  }
  CHECK(reads > 10);
  CHECK(writes > 10);
}

namespace {

// Asks for an interrupt (as the SIGINT handler does) at the Nth read.
class InterruptingFileSystem : public ckpt::FaultInjectingFileSystem {
 public:
  InterruptingFileSystem(ckpt::FileSystem& base, int at) : FaultInjectingFileSystem(base), m_at(at) {}
  std::size_t read(int fd, void* buf, std::size_t n) override {
    if (++m_reads == m_at) ckpt::request_interrupt();
    return FaultInjectingFileSystem::read(fd, buf, n);
  }

 private:
  int m_at;
  std::atomic<int> m_reads{0};
};

}  // namespace

TEST_CASE("transfer: an interrupt stops the overlapped copy with Error(interrupted)") {
  CKPT_TEMP_DIR(tmp);
  ckpt::PosixFileSystem real;
  std::string data = pattern(10 * k_mib);
  for (int at : {1, 3, 8}) {
    InterruptingFileSystem fs(real, at);
    INFO("interrupt at read " << at);
    CHECK_THROWS_WITH_AS(copy_file(fs, tmp.path(), data, ckpt::Hash::yes, ckpt::Overlap::yes),
                         "interrupted", ckpt::Error);
    CHECK(ckpt::interrupt_requested());
    ckpt::clear_interrupt();
    CHECK_FALSE(ckpt::interrupt_requested());
  }
  // Once cleared, the same copy completes.
  ckpt::PosixFileSystem fs;
  CHECK(copy_file(fs, tmp.path(), data, ckpt::Hash::yes, ckpt::Overlap::yes).written == data);
}
