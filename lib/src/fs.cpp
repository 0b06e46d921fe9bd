// SPDX-License-Identifier: Apache-2.0
// The POSIX implementation of FileSystem and the helpers built on the interface.
#include "ckpt/fs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <algorithm>

#include <fmt/format.h>

#include "ckpt/error.hpp"

namespace ckpt {

namespace {

Stat to_stat(const struct stat& st) {
  Stat s;
  if (S_ISREG(st.st_mode)) {
    s.type = FileType::file;
  } else if (S_ISDIR(st.st_mode)) {
    s.type = FileType::dir;
  } else if (S_ISLNK(st.st_mode)) {
    s.type = FileType::symlink;
  } else {
    s.type = FileType::other;
  }
  s.size = static_cast<std::uint64_t>(st.st_size);
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.mode = st.st_mode;
  s.nlink = static_cast<std::uint64_t>(st.st_nlink);
  s.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  s.ctime_ns = static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
  return s;
}

}  // namespace

int PosixFileSystem::open(const std::string& path, int flags, mode_t mode) {
  for (;;) {
    int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
    if (fd >= 0) return fd;
    if (errno != EINTR) throw io_error(errno, "cannot open", path);
  }
}

std::size_t PosixFileSystem::read(int fd, void* buf, std::size_t n) {
  for (;;) {
    ssize_t r = ::read(fd, buf, n);
    if (r >= 0) return static_cast<std::size_t>(r);
    if (errno != EINTR) throw io_error(errno, "cannot read", fmt::format("fd {}", fd));
  }
}

void PosixFileSystem::write(int fd, const void* buf, std::size_t n) {
  const char* p = static_cast<const char*>(buf);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw io_error(errno, "cannot write", fmt::format("fd {}", fd));
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

void PosixFileSystem::fsync(int fd) {
  if (m_no_fsync) return;
  if (::fsync(fd) != 0) throw io_error(errno, "cannot fsync", fmt::format("fd {}", fd));
}

void PosixFileSystem::start_writeback(int fd) {
  if (!m_no_fsync) ::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}

void PosixFileSystem::close(int fd) {
  // Linux releases the descriptor even when close fails; never retry.
  if (::close(fd) != 0 && errno != EINTR) {
    throw io_error(errno, "cannot close", fmt::format("fd {}", fd));
  }
}

bool PosixFileSystem::clone(int src_fd, int dst_fd) {
  return ::ioctl(dst_fd, FICLONE, src_fd) == 0;
}

void PosixFileSystem::rename(const std::string& from, const std::string& to, RenameMode mode) {
  unsigned flags = 0;
  if (mode == RenameMode::noreplace) flags = RENAME_NOREPLACE;
  if (mode == RenameMode::exchange) flags = RENAME_EXCHANGE;
  int rc = flags == 0 ? ::rename(from.c_str(), to.c_str())
                      : ::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), flags);
  if (rc != 0) throw io_error(errno, "cannot rename", fmt::format("{} to {}", from, to));
}

void PosixFileSystem::mkdir(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) != 0) throw io_error(errno, "cannot create directory", path);
}

void PosixFileSystem::unlink(const std::string& path) {
  if (::unlink(path.c_str()) != 0) throw io_error(errno, "cannot remove", path);
}

void PosixFileSystem::rmdir(const std::string& path) {
  if (::rmdir(path.c_str()) != 0) throw io_error(errno, "cannot remove directory", path);
}

void PosixFileSystem::link(const std::string& from, const std::string& to) {
  // Link what a symbolic link points to (save --follow-symlinks), never the link itself.
  if (::linkat(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), AT_SYMLINK_FOLLOW) != 0) {
    throw io_error(errno, "cannot hard-link", fmt::format("{} to {}", from, to));
  }
}

void PosixFileSystem::chmod(const std::string& path, mode_t mode) {
  if (::fchmodat(AT_FDCWD, path.c_str(), mode, 0) != 0) {
    throw io_error(errno, "cannot change the mode of", path);
  }
}

void PosixFileSystem::fsync_dir(const std::string& path) {
  if (m_no_fsync) return;
  int fd = open(path, O_RDONLY | O_DIRECTORY);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL) throw io_error(err, "cannot fsync directory", path);
}

std::optional<Stat> PosixFileSystem::lstat(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    // A name too long to exist does not exist.
    if (errno == ENOENT || errno == ENOTDIR || errno == ENAMETOOLONG) return std::nullopt;
    throw io_error(errno, "cannot stat", path);
  }
  return to_stat(st);
}

std::optional<Stat> PosixFileSystem::stat(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    // A name too long to exist does not exist.
    if (errno == ENOENT || errno == ENOTDIR || errno == ENAMETOOLONG) return std::nullopt;
    throw io_error(errno, "cannot stat", path);
  }
  return to_stat(st);
}

Stat PosixFileSystem::fstat(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) throw io_error(errno, "cannot stat", fmt::format("fd {}", fd));
  return to_stat(st);
}

std::vector<std::string> PosixFileSystem::list_dir(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) throw io_error(errno, "cannot list", path);
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
    errno = 0;
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) throw io_error(err, "cannot list", path);
  return names;
}

std::vector<std::pair<std::string, FileType>> PosixFileSystem::list_dir_types(
    const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) throw io_error(errno, "cannot list", path);
  std::vector<std::pair<std::string, FileType>> out;
  errno = 0;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") {
      errno = 0;
      continue;
    }
    FileType type = FileType::other;
    switch (e->d_type) {
      case DT_REG: type = FileType::file; break;
      case DT_DIR: type = FileType::dir; break;
      case DT_LNK: type = FileType::symlink; break;
      case DT_UNKNOWN: {
        // Some file systems leave the type out: ask.
        struct stat st;
        if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
          type = to_stat(st).type;
        }
        break;
      }
      default: break;
    }
    out.emplace_back(std::move(name), type);
    errno = 0;
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) throw io_error(err, "cannot list", path);
  return out;
}

std::vector<std::pair<std::string, FileType>> FileSystem::list_dir_types(const std::string& path) {
  std::vector<std::pair<std::string, FileType>> out;
  for (auto& name : list_dir(path)) {
    auto st = lstat(join_path(path, name));
    if (!st) continue;  // gone meanwhile
    out.emplace_back(std::move(name), st->type);
  }
  return out;
}

std::string PosixFileSystem::readlink(const std::string& path) {
  std::string buf(4096, '\0');
  ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
  if (n < 0) throw io_error(errno, "cannot read link", path);
  buf.resize(static_cast<std::size_t>(n));
  return buf;
}

FdGuard::~FdGuard() {
  if (m_fd >= 0) {
    try {
      m_fs->close(m_fd);
    } catch (const Error&) {
      // Already failing or only reading: the close error adds nothing.
    }
  }
}

void FdGuard::close() {
  int fd = m_fd;
  m_fd = -1;
  if (fd >= 0) m_fs->close(fd);
}

std::string join_path(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  if (a.back() == '/') return a + b;
  return a + "/" + b;
}

std::string base_name(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  auto pos = p.rfind('/');
  return pos == std::string::npos ? p : p.substr(pos + 1);
}

std::string parent_path(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  auto pos = p.rfind('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return p.substr(0, pos);
}

std::string read_file(FileSystem& fs, const std::string& path, std::uint64_t max_size) {
  // Never through a symbolic link (O_NOFOLLOW), never blocking on a FIFO
  // planted in its place (O_NONBLOCK), then only a regular file: one open,
  // one fstat and, for a small file, one read.
  int raw = -1;
  try {
    raw = fs.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (const Error& e) {
    if (e.sys_errno() != ELOOP) throw;
    throw Error(ErrorKind::integrity,
                fmt::format("{} is not a regular file (a symbolic link)", path));
  }
  FdGuard fd(fs, raw);
  Stat st = fs.fstat(fd.get());
  if (st.type != FileType::file) {
    throw Error(ErrorKind::integrity,
                fmt::format("{} is not a regular file (a FIFO, device or directory)", path));
  }
  if (st.size > max_size) {
    throw Error(ErrorKind::integrity,
                fmt::format("{} is too large ({} bytes, at most {})", path, st.size, max_size));
  }
  // Room for one byte more than fstat saw, so a file that grew is still read whole.
  std::string out(static_cast<std::size_t>(st.size) + 1, '\0');
  std::size_t used = 0;
  for (;;) {
    if (used == out.size()) {
      if (out.size() > max_size) {
        throw Error(ErrorKind::integrity, fmt::format("{} is too large", path));
      }
      out.resize(std::min<std::size_t>(out.size() * 2, max_size + 1));
    }
    std::size_t want = out.size() - used;
    std::size_t n = fs.read(fd.get(), out.data() + used, want);
    used += n;
    // A regular file's short read is its end: a small file takes one read.
    if (n < want) break;
  }
  if (used > max_size) throw Error(ErrorKind::integrity, fmt::format("{} is too large", path));
  out.resize(used);
  return out;
}

bool link_refused(const Error& e) {
  int err = e.sys_errno();
  return err == EXDEV || err == EPERM || err == EMLINK || err == EACCES;
}

std::optional<Stat> lstat_beneath(FileSystem& fs, const std::string& dir, const std::string& rel) {
  std::size_t pos = 0;
  while ((pos = rel.find('/', pos)) != std::string::npos) {
    std::string part = rel.substr(0, pos);
    auto st = fs.lstat(join_path(dir, part));
    if (!st) return std::nullopt;
    if (st->type != FileType::dir) {
      throw Error(ErrorKind::integrity,
                  fmt::format("{} is {}, not a directory", part,
                              st->type == FileType::symlink ? "a symbolic link" : "a file"));
    }
    ++pos;
  }
  return fs.lstat(join_path(dir, rel));
}

void make_dirs(FileSystem& fs, const std::string& path, Durable durable) {
  if (path.empty() || path == "/" || path == ".") return;
  if (auto st = fs.stat(path)) {
    if (st->type == FileType::dir) return;
    throw Error(ErrorKind::io, fmt::format("{} exists and is not a directory", path), ENOTDIR);
  }
  make_dirs(fs, parent_path(path), durable);
  try {
    fs.mkdir(path);
  } catch (const Error& e) {
    if (e.sys_errno() != EEXIST) throw;
    return;
  }
  if (durable == Durable::yes) fs.fsync_dir(parent_path(path));
}

void FileSystem::remove_tree(const std::string& path) {
  auto st = lstat(path);
  if (!st) return;
  try {
    if (st->type == FileType::dir) {
      for (const auto& name : list_dir(path)) remove_tree(join_path(path, name));
      rmdir(path);
    } else {
      unlink(path);
    }
  } catch (const Error& e) {
    // Another cleaner may have got there first.
    if (e.sys_errno() != ENOENT) throw;
  }
}

namespace {

// Empties the directory open as dfd (named path, for messages) and closes dfd.
void remove_contents_at(int dfd, const std::string& path) {
  DIR* d = ::fdopendir(dfd);
  if (d == nullptr) {
    int err = errno;
    ::close(dfd);
    throw io_error(err, "cannot list", path);
  }
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(std::move(n));
    errno = 0;
  }
  if (errno != 0) {
    int err = errno;
    ::closedir(d);
    throw io_error(err, "cannot list", path);
  }
  try {
    for (const auto& n : names) {
      if (::unlinkat(dfd, n.c_str(), 0) == 0 || errno == ENOENT) continue;
      if (errno != EISDIR && errno != EPERM) throw io_error(errno, "cannot remove", join_path(path, n));
      // A directory: open it relative to its parent, refusing a symbolic link.
      int child = ::openat(dfd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (child < 0) {
        if (errno == ENOENT) continue;
        throw io_error(errno, "cannot open directory", join_path(path, n));
      }
      remove_contents_at(child, join_path(path, n));
      if (::unlinkat(dfd, n.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
        throw io_error(errno, "cannot remove directory", join_path(path, n));
      }
    }
  } catch (...) {
    ::closedir(d);
    throw;
  }
  ::closedir(d);
}

}  // namespace

void PosixFileSystem::remove_tree(const std::string& path) {
  auto st = lstat(path);
  if (!st) return;
  if (st->type != FileType::dir) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw io_error(errno, "cannot remove", path);
    return;
  }
  int dfd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0) {
    if (errno == ENOENT) return;
    throw io_error(errno, "cannot open directory", path);
  }
  remove_contents_at(dfd, path);
  if (::rmdir(path.c_str()) != 0 && errno != ENOENT) {
    throw io_error(errno, "cannot remove directory", path);
  }
}

}  // namespace ckpt
