// SPDX-License-Identifier: Apache-2.0
// The file-system interface every layer goes through, so tests can fail or record any operation.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ckpt {

class Error;

enum class FileType { file, dir, symlink, other };

struct Stat {
  FileType type = FileType::other;
  std::uint64_t size = 0;
  dev_t dev = 0;
  ino_t ino = 0;
  mode_t mode = 0;
  std::uint64_t nlink = 1;
  std::int64_t mtime_ns = 0;  // last data change
  std::int64_t ctime_ns = 0;  // last data or inode change
};

enum class RenameMode { replace, noreplace, exchange };

// Every method throws ckpt::Error (kind io, with errno) on failure, except
// where the comment says otherwise.
class FileSystem {
 public:
  virtual ~FileSystem() = default;

  virtual int open(const std::string& path, int flags, mode_t mode = 0644) = 0;
  // Returns the bytes read, 0 at end of file; retries EINTR.
  virtual std::size_t read(int fd, void* buf, std::size_t n) = 0;
  // Writes all n bytes.
  virtual void write(int fd, const void* buf, std::size_t n) = 0;
  virtual void fsync(int fd) = 0;
  // A hint: start writing fd's dirty data back now, without waiting, so a
  // later fsync finds less to do. Never fails; the default does nothing.
  virtual void start_writeback(int fd) { (void)fd; }
  virtual void close(int fd) = 0;
  // Makes dst share src's blocks (FICLONE); false when the file system cannot.
  virtual bool clone(int src_fd, int dst_fd) = 0;

  virtual void rename(const std::string& from, const std::string& to,
                      RenameMode mode = RenameMode::replace) = 0;
  virtual void mkdir(const std::string& path, mode_t mode = 0755) = 0;
  virtual void unlink(const std::string& path) = 0;
  virtual void rmdir(const std::string& path) = 0;
  virtual void link(const std::string& from, const std::string& to) = 0;
  // Sets path's permission bits (never through a symbolic link: a caller
  // names a file it created).
  virtual void chmod(const std::string& path, mode_t mode) = 0;
  virtual void fsync_dir(const std::string& path) = 0;

  // nullopt when the path does not exist (ENOENT, ENOTDIR, ENAMETOOLONG).
  virtual std::optional<Stat> lstat(const std::string& path) = 0;
  virtual std::optional<Stat> stat(const std::string& path) = 0;
  virtual Stat fstat(int fd) = 0;
  // Entry names without "." and "..", in no particular order.
  virtual std::vector<std::string> list_dir(const std::string& path) = 0;
  // The same with each entry's type as lstat gives it (a link is a symlink).
  // The default lstats each entry; the real file system takes the type from
  // the directory itself where it can.
  virtual std::vector<std::pair<std::string, FileType>> list_dir_types(const std::string& path);
  virtual std::string readlink(const std::string& path) = 0;

  // Removes a file or a whole tree without following any symbolic link; a
  // missing path is fine. The default walks by path through the methods
  // above (so wrappers see every step); the real file system walks by
  // directory descriptor, so a directory swapped for a link mid-walk is
  // never followed out of the tree.
  virtual void remove_tree(const std::string& path);
};

// The real file system. no_fsync turns every fsync into a no-op (--no-fsync).
class PosixFileSystem : public FileSystem {
 public:
  explicit PosixFileSystem(bool no_fsync = false) : m_no_fsync(no_fsync) {}

  int open(const std::string& path, int flags, mode_t mode = 0644) override;
  std::size_t read(int fd, void* buf, std::size_t n) override;
  void write(int fd, const void* buf, std::size_t n) override;
  void fsync(int fd) override;
  void start_writeback(int fd) override;
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
  std::vector<std::pair<std::string, FileType>> list_dir_types(const std::string& path) override;
  std::string readlink(const std::string& path) override;
  void remove_tree(const std::string& path) override;

 private:
  bool m_no_fsync;
};

// Closes a descriptor on scope exit (errors on that path are ignored; call
// release() and close explicitly where a close error matters).
class FdGuard {
 public:
  FdGuard(FileSystem& fs, int fd) : m_fs(&fs), m_fd(fd) {}
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  ~FdGuard();
  int get() const { return m_fd; }
  // Closes now, reporting errors.
  void close();

 private:
  FileSystem* m_fs;
  int m_fd;
};

std::string join_path(const std::string& a, const std::string& b);
std::string base_name(const std::string& path);
std::string parent_path(const std::string& path);

// True when a hard link failed because the file system or the files do not
// allow one (another device, no permission, too many links): copy instead.
bool link_refused(const Error& e);

// lstat of dir/rel that follows no symbolic link on the way: throws
// Error(integrity) when a component of rel's parent is not a real directory.
std::optional<Stat> lstat_beneath(FileSystem& fs, const std::string& dir, const std::string& rel);

// Reads a whole regular file (never through a symbolic link); refuses files larger than max_size (kind integrity).
std::string read_file(FileSystem& fs, const std::string& path, std::uint64_t max_size);
enum class Durable { no, yes };
// Creates path and its missing parents; with Durable::yes each new directory's
// entry is fsynced in its parent, so the path survives a crash.
void make_dirs(FileSystem& fs, const std::string& path, Durable durable = Durable::no);
// fs.remove_tree(path).
inline void remove_tree(FileSystem& fs, const std::string& path) { fs.remove_tree(path); }

}  // namespace ckpt
