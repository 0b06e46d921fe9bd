// SPDX-License-Identifier: Apache-2.0
// Atomic file replacement: temp file, fsync, rename, directory fsync.
#include "ckpt/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <random>

#include <fmt/format.h>

#include "ckpt/error.hpp"

namespace ckpt {

std::string unique_suffix() {
  static std::atomic<unsigned> counter{0};
  static const unsigned seed = std::random_device{}();
  return fmt::format("{}.{}.{:08x}", ::getpid(), counter++, seed);
}

AtomicFile::AtomicFile(FileSystem& fs, std::string path)
    : m_fs(fs), m_path(std::move(path)) {
  m_tmp = fmt::format("{}/.{}.tmp.{}", parent_path(m_path), base_name(m_path), unique_suffix());
  m_fd = m_fs.open(m_tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
}

AtomicFile::~AtomicFile() {
  if (m_fd >= 0) {
    try {
      m_fs.close(m_fd);
    } catch (const Error&) {
    }
  }
  if (!m_committed) {
    try {
      m_fs.unlink(m_tmp);
    } catch (const Error&) {
    }
  }
}

void AtomicFile::write(std::string_view data) { m_fs.write(m_fd, data.data(), data.size()); }

void AtomicFile::finish() {
  if (m_fd < 0) return;
  m_fs.fsync(m_fd);
  int fd = m_fd;
  m_fd = -1;
  m_fs.close(fd);
}

void AtomicFile::commit() {
  finish();
  m_fs.rename(m_tmp, m_path);
  m_committed = true;
  m_fs.fsync_dir(parent_path(m_path));
}

void write_file_atomic(FileSystem& fs, const std::string& path, std::string_view data) {
  try {
    AtomicFile f(fs, path);
    f.write(data);
    f.commit();
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::io) throw;
    throw Error(e.kind(), fmt::format("writing {}: {}", path, e.message()), e.sys_errno());
  }
}

}  // namespace ckpt
