// SPDX-License-Identifier: Apache-2.0
// Advisory whole-file locks (flock) with a timeout; released when the holder dies.
#pragma once

#include <string>

namespace ckpt {

class FileLock {
 public:
  FileLock() = default;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;
  ~FileLock();

  // Waits up to timeout_seconds (0: one try) for an exclusive lock on path,
  // creating the file if needed. Throws Error(locked) on timeout.
  static FileLock acquire(const std::string& path, double timeout_seconds,
                          const std::string& what);
  // One non-blocking try; an unheld lock when another process holds it.
  static FileLock try_acquire(const std::string& path);
  // True when some process holds a lock on path (the file must exist).
  static bool is_held(const std::string& path);

  bool held() const { return m_fd >= 0; }
  void release();

  // Writes text to holder_path (no fsync: it is advice, not data) for those
  // who time out waiting to name who holds the lock; the file goes before
  // the lock is released. Failures are ignored.
  void announce(const std::string& holder_path, const std::string& text);

 private:
  explicit FileLock(int fd) : m_fd(fd) {}
  int m_fd = -1;
  std::string m_holder;
};

}  // namespace ckpt
