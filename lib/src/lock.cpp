// SPDX-License-Identifier: Apache-2.0
// flock-based locks. Locks are not file data, so they bypass the FileSystem interface.
#include "ckpt/lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>

#include <fmt/format.h>

#include "ckpt/error.hpp"
#include "ckpt/transfer.hpp"

namespace ckpt {

FileLock::FileLock(FileLock&& other) noexcept
    : m_fd(other.m_fd), m_holder(std::move(other.m_holder)) {
  other.m_fd = -1;
  other.m_holder.clear();
}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    release();
    m_fd = other.m_fd;
    m_holder = std::move(other.m_holder);
    other.m_fd = -1;
    other.m_holder.clear();
  }
  return *this;
}

FileLock::~FileLock() { release(); }

void FileLock::release() {
  if (m_fd >= 0) {
    // While still held: the next holder's announcement is never the one removed.
    if (!m_holder.empty()) ::unlink(m_holder.c_str());
    ::close(m_fd);
    m_fd = -1;
  }
  m_holder.clear();
}

void FileLock::announce(const std::string& holder_path, const std::string& text) {
  if (m_fd < 0) return;
  // Created afresh, never through a name planted there (a link is removed,
  // not followed or truncated), and written in place: a reader may see it
  // half-written, and ignores what it cannot parse.
  ::unlink(holder_path.c_str());
  int fd = ::open(holder_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return;
  m_holder = holder_path;
  [[maybe_unused]] auto n = ::write(fd, text.data(), text.size());
  ::close(fd);
}

FileLock FileLock::try_acquire(const std::string& path) {
  for (;;) {
    // Never through a symbolic link: a planted link would make us create files elsewhere.
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) throw io_error(errno, "cannot open lock file", path);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int err = errno;
      ::close(fd);
      if (err != EWOULDBLOCK) throw io_error(err, "cannot lock", path);
      return FileLock();
    }
    // A cleaner may have removed the file between our open and our flock:
    // a lock on an unlinked inode protects nothing, so start over.
    struct stat by_fd, by_path;
    if (::fstat(fd, &by_fd) == 0 && ::stat(path.c_str(), &by_path) == 0 &&
        by_fd.st_dev == by_path.st_dev && by_fd.st_ino == by_path.st_ino) {
      return FileLock(fd);
    }
    ::close(fd);
  }
}

FileLock FileLock::acquire(const std::string& path, double timeout_seconds,
                           const std::string& what) {
  using clock = std::chrono::steady_clock;
  auto deadline = clock::now() + std::chrono::duration<double>(timeout_seconds);
  auto pause = std::chrono::milliseconds(5);
  for (;;) {
    FileLock lock = try_acquire(path);
    if (lock.held()) return lock;
    check_interrupt();
    if (clock::now() >= deadline) {
      throw Error(ErrorKind::locked,
                  fmt::format("{} is locked by another ckpt process (waited {}s); retry later",
                              what, timeout_seconds));
    }
    std::this_thread::sleep_for(pause);
    if (pause < std::chrono::milliseconds(100)) pause *= 2;
  }
}

bool FileLock::is_held(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);
  return held;
}

}  // namespace ckpt
