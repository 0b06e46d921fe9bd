// SPDX-License-Identifier: Apache-2.0
// A FileSystem wrapper that counts operations and fails the Nth one, for fault-injection tests.
#pragma once

#include <cerrno>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "ckpt/fs.hpp"

namespace ckpt {

// Safe to use from several threads at once (the operations are counted in
// the order they reach it).
class FaultInjectingFileSystem : public FileSystem {
 public:
  explicit FaultInjectingFileSystem(FileSystem& base) : m_base(base) {}

  // Fail operation number n (1-based; 0 = never) with errno err. Writes fail
  // with write_errno instead when it is set (ENOSPC for disk-full runs).
  void fail_at(std::uint64_t n, int err = EIO, int write_errno = 0) {
    m_fail_at = n;
    m_errno = err;
    m_write_errno = write_errno;
  }
  std::uint64_t count() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_count;
  }
  bool fired() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_fired;
  }
  // The name of the operation that was failed ("" before it fired). With
  // threads the Nth operation is not always the same one from run to run.
  std::string fired_op() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_fired_op;
  }
  // The path it was failed on (for a descriptor, the path it was opened by).
  std::string fired_target() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_fired_target;
  }
  // The name of each operation so far ("write", "rename", ...), when recording.
  void record(bool on) { m_record = on; }
  const std::vector<std::string>& log() const { return m_log; }
  void reset() {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_count = 0;
    m_fired = false;
    m_log.clear();
  }

  int open(const std::string& path, int flags, mode_t mode = 0644) override;
  std::size_t read(int fd, void* buf, std::size_t n) override;
  void write(int fd, const void* buf, std::size_t n) override;
  void fsync(int fd) override;
  void start_writeback(int fd) override { m_base.start_writeback(fd); }  // a hint: not counted
  void close(int fd) override;
  bool clone(int src_fd, int dst_fd) override;
  void rename(const std::string& from, const std::string& to,
              RenameMode mode = RenameMode::replace) override;
  void mkdir(const std::string& path, mode_t mode = 0755) override;
  void unlink(const std::string& path) override;
  void rmdir(const std::string& path) override;
  void link(const std::string& from, const std::string& to) override;
  void chmod(const std::string& path, mode_t mode) override;
  void fsync_dir(const std::string& path) override;
  std::optional<Stat> lstat(const std::string& path) override;
  std::optional<Stat> stat(const std::string& path) override;
  Stat fstat(int fd) override;
  std::vector<std::string> list_dir(const std::string& path) override;
  std::string readlink(const std::string& path) override;

 private:
  // Counts one operation; throws the injected error when it is the chosen one.
  void step(const char* op, const std::string& what, bool is_write = false);
  std::string fd_name(int fd) const;

  FileSystem& m_base;
  mutable std::mutex m_mutex;
  std::uint64_t m_count = 0;
  std::uint64_t m_fail_at = 0;
  int m_errno = EIO;
  int m_write_errno = 0;
  bool m_fired = false;
  std::string m_fired_op;
  std::string m_fired_target;
  std::map<int, std::string> m_open;  // descriptor -> the path it was opened by
  bool m_record = false;
  std::vector<std::string> m_log;
};

}  // namespace ckpt
