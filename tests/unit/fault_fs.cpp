// SPDX-License-Identifier: Apache-2.0
// Counting and failing file-system operations on purpose.
#include "fault_fs.hpp"

#include <fmt/format.h>

#include "ckpt/error.hpp"

namespace ckpt {

void FaultInjectingFileSystem::step(const char* op, const std::string& what, bool is_write) {
  std::lock_guard<std::mutex> lock(m_mutex);
  ++m_count;
  if (m_record) m_log.push_back(op);
  if (m_count == m_fail_at) {
    m_fired = true;
    m_fired_op = op;
    m_fired_target = what;
    int err = is_write && m_write_errno != 0 ? m_write_errno : m_errno;
    throw io_error(err, fmt::format("injected failure of {}:", op), what);
  }
}

std::string FaultInjectingFileSystem::fd_name(int fd) const {
  std::lock_guard<std::mutex> lock(m_mutex);
  auto it = m_open.find(fd);
  return it == m_open.end() ? fmt::format("fd {}", fd) : it->second;
}

int FaultInjectingFileSystem::open(const std::string& path, int flags, mode_t mode) {
  step("open", path);
  int fd = m_base.open(path, flags, mode);
  std::lock_guard<std::mutex> lock(m_mutex);
  m_open[fd] = path;
  return fd;
}
std::size_t FaultInjectingFileSystem::read(int fd, void* buf, std::size_t n) {
  step("read", fd_name(fd));
  return m_base.read(fd, buf, n);
}
void FaultInjectingFileSystem::write(int fd, const void* buf, std::size_t n) {
  step("write", fd_name(fd), true);
  m_base.write(fd, buf, n);
}
void FaultInjectingFileSystem::fsync(int fd) {
  step("fsync", fd_name(fd));
  m_base.fsync(fd);
}
void FaultInjectingFileSystem::close(int fd) {
  // The descriptor is released whatever happens, as close(2) does on Linux.
  std::string name = fd_name(fd);
  {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_open.erase(fd);
  }
  try {
    step("close", name);
  } catch (...) {
    m_base.close(fd);
    throw;
  }
  m_base.close(fd);
}
bool FaultInjectingFileSystem::clone(int src_fd, int dst_fd) {
  step("clone", fd_name(dst_fd), true);
  return m_base.clone(src_fd, dst_fd);
}
void FaultInjectingFileSystem::rename(const std::string& from, const std::string& to,
                                      RenameMode mode) {
  step("rename", from);
  m_base.rename(from, to, mode);
}
void FaultInjectingFileSystem::mkdir(const std::string& path, mode_t mode) {
  step("mkdir", path, true);
  m_base.mkdir(path, mode);
}
void FaultInjectingFileSystem::unlink(const std::string& path) {
  step("unlink", path);
  m_base.unlink(path);
}
void FaultInjectingFileSystem::rmdir(const std::string& path) {
  step("rmdir", path);
  m_base.rmdir(path);
}
void FaultInjectingFileSystem::link(const std::string& from, const std::string& to) {
  step("link", to, true);
  m_base.link(from, to);
}
void FaultInjectingFileSystem::chmod(const std::string& path, mode_t mode) {
  step("chmod", path);
  m_base.chmod(path, mode);
}
void FaultInjectingFileSystem::fsync_dir(const std::string& path) {
  step("fsync_dir", path);
  m_base.fsync_dir(path);
}
std::optional<Stat> FaultInjectingFileSystem::lstat(const std::string& path) {
  step("lstat", path);
  return m_base.lstat(path);
}
std::optional<Stat> FaultInjectingFileSystem::stat(const std::string& path) {
  step("stat", path);
  return m_base.stat(path);
}
Stat FaultInjectingFileSystem::fstat(int fd) {
  step("fstat", fd_name(fd));
  return m_base.fstat(fd);
}
std::vector<std::string> FaultInjectingFileSystem::list_dir(const std::string& path) {
  step("list_dir", path);
  return m_base.list_dir(path);
}
std::string FaultInjectingFileSystem::readlink(const std::string& path) {
  step("readlink", path);
  return m_base.readlink(path);
}

}  // namespace ckpt
