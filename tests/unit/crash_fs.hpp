// SPDX-License-Identifier: Apache-2.0
// A FileSystem that models what survives a power cut: a durable state that only fsync advances.
//
// The real operations run on the real disk (the volatile state). Beside it,
// the model keeps, per inode, the content as of its last fsync and, per
// directory, the entries as of its last directory fsync. A crash state is
// built from that model:
//  - strict: only what was fsynced (entries and data) survives;
//  - eager: every metadata operation so far survived (the tree as it is now),
//    but file data only as of its last fsync (never-synced files are empty).
// Between them they catch a missing directory fsync and a rename made before
// the data it publishes was synced.
//
// Operations may come from several threads (save and verify spread files over
// the cores): each change and its hook run under one lock, so a crash state
// is always taken between two whole operations.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "ckpt/error.hpp"
#include "ckpt/fs.hpp"

namespace ckpt_test {

class CrashModelFileSystem : public ckpt::FileSystem {
 public:
  using Key = std::pair<dev_t, ino_t>;
  enum class State { strict, eager };
  // Called after each operation that can change the disk, with its number and name.
  using Hook = std::function<void(std::uint64_t op, const std::string& name)>;

  // Everything under anchor counts as durable now.
  CrashModelFileSystem(ckpt::FileSystem& base, std::string anchor)
      : m_base(base), m_anchor(std::move(anchor)) {
    capture_tree(m_anchor);
  }

  void set_hook(Hook h) { m_hook = std::move(h); }
  // Sabotage, to prove the checks can fail: ignore directory fsyncs of paths
  // containing this text, or every file fsync.
  void drop_dir_fsyncs_containing(std::string s) { m_drop_dir = std::move(s); }
  void drop_file_fsyncs(bool on) { m_drop_file = on; }
  std::uint64_t ops() const {
    std::lock_guard<std::recursive_mutex> lock(m_mutex);
    return m_ops;
  }

  // Writes the crash state into dest (an empty existing directory).
  void materialise(State state, const std::string& dest) {
    auto root = m_base.lstat(m_anchor);
    if (!root) return;
    if (state == State::strict) {
      strict_into({root->dev, root->ino}, dest, 0);
    } else {
      eager_into(m_anchor, dest);
    }
  }

  int open(const std::string& path, int flags, mode_t mode = 0644) override {
    std::unique_lock<std::recursive_mutex> lock(m_mutex, std::defer_lock);
    if (flags & O_CREAT) lock.lock();
    int fd = m_base.open(path, flags, mode);
    if (flags & O_CREAT) after("open");
    return fd;
  }
  std::size_t read(int fd, void* buf, std::size_t n) override { return m_base.read(fd, buf, n); }
  void write(int fd, const void* buf, std::size_t n) override {
    std::lock_guard<std::recursive_mutex> lock(m_mutex);
    m_base.write(fd, buf, n);
    after("write");
  }
  void fsync(int fd) override {
    std::lock_guard<std::recursive_mutex> lock(m_mutex);
    m_base.fsync(fd);
    if (!m_drop_file) capture_data(fd);
    after("fsync");
  }
  void close(int fd) override { m_base.close(fd); }
  bool clone(int, int) override { return false; }  // keep every byte a write
  void rename(const std::string& from, const std::string& to,
              ckpt::RenameMode mode = ckpt::RenameMode::replace) override {
    std::lock_guard<std::recursive_mutex> lock(m_mutex);
    m_base.rename(from, to, mode);
    after("rename");
  }
  void mkdir(const std::string& path, mode_t mode = 0755) override {
    std::lock_guard<std::recursive_mutex> lock(m_mutex);
    m_base.mkdir(path, mode);
    after("mkdir");
  }
  void unlink(const std::string& path) override {
    std::lock_guard<std::recursive_mutex> lock(m_mutex);
    m_base.unlink(path);
    after("unlink");
  }
  void rmdir(const std::string& path) override {
    std::lock_guard<std::recursive_mutex> lock(m_mutex);
    m_base.rmdir(path);
    after("rmdir");
  }
  void link(const std::string& from, const std::string& to) override {
    std::lock_guard<std::recursive_mutex> lock(m_mutex);
    m_base.link(from, to);
    after("link");
  }
  void chmod(const std::string& path, mode_t mode) override { m_base.chmod(path, mode); }
  void fsync_dir(const std::string& path) override {
    std::lock_guard<std::recursive_mutex> lock(m_mutex);
    m_base.fsync_dir(path);
    if (m_drop_dir.empty() || path.find(m_drop_dir) == std::string::npos) capture_entries(path);
    after("fsync_dir");
  }
  std::optional<ckpt::Stat> lstat(const std::string& path) override { return m_base.lstat(path); }
  std::optional<ckpt::Stat> stat(const std::string& path) override { return m_base.stat(path); }
  ckpt::Stat fstat(int fd) override { return m_base.fstat(fd); }
  std::vector<std::string> list_dir(const std::string& path) override {
    return m_base.list_dir(path);
  }
  std::string readlink(const std::string& path) override { return m_base.readlink(path); }

 private:
  struct Node {
    ckpt::FileType type = ckpt::FileType::other;
    std::optional<std::string> data;         // files: content at the last fsync
    std::map<std::string, Key> entries;      // directories: entries at the last fsync
    std::string target;                      // symbolic links
  };

  void after(const char* name) {
    ++m_ops;
    if (m_hook) m_hook(m_ops, name);
  }

  static std::string slurp_fd(int fd) {
    // The descriptor may be write-only: read through /proc instead.
    std::string proc = "/proc/self/fd/" + std::to_string(fd);
    int rfd = ::open(proc.c_str(), O_RDONLY | O_CLOEXEC);
    if (rfd < 0) throw ckpt::Error(ckpt::ErrorKind::io, "crash model: cannot reopen " + proc);
    std::string out;
    char buf[65536];
    ssize_t n;
    while ((n = ::read(rfd, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
    ::close(rfd);
    return out;
  }

  static std::string slurp_path(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return {};
    std::string out;
    char buf[65536];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
    return out;
  }

  Node& node(const ckpt::Stat& st) {
    Node& n = m_nodes[{st.dev, st.ino}];
    n.type = st.type;
    return n;
  }

  void capture_data(int fd) {
    ckpt::Stat st = m_base.fstat(fd);
    if (st.type == ckpt::FileType::file) node(st).data = slurp_fd(fd);
  }

  void capture_entries(const std::string& dir) {
    auto st = m_base.lstat(dir);
    if (!st || st->type != ckpt::FileType::dir) return;
    std::map<std::string, Key> entries;
    for (const auto& name : m_base.list_dir(dir)) {
      std::string p = ckpt::join_path(dir, name);
      auto cst = m_base.lstat(p);
      if (!cst) continue;
      Node& child = node(*cst);
      if (cst->type == ckpt::FileType::symlink) child.target = m_base.readlink(p);
      entries[name] = {cst->dev, cst->ino};
    }
    node(*st).entries = std::move(entries);
  }

  // The starting state: all of it durable.
  void capture_tree(const std::string& path) {
    auto st = m_base.lstat(path);
    if (!st) return;
    if (st->type == ckpt::FileType::dir) {
      capture_entries(path);
      for (const auto& name : m_base.list_dir(path)) capture_tree(ckpt::join_path(path, name));
    } else if (st->type == ckpt::FileType::file) {
      node(*st).data = slurp_path(path);
    }
  }

  static void put_file(const std::string& path, const std::string& data) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw ckpt::Error(ckpt::ErrorKind::io, "crash model: cannot create " + path);
    if (!data.empty() && ::write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) {
      ::close(fd);
      throw ckpt::Error(ckpt::ErrorKind::io, "crash model: cannot write " + path);
    }
    ::close(fd);
  }

  void strict_into(const Key& key, const std::string& dest, int depth) {
    auto it = m_nodes.find(key);
    if (it == m_nodes.end() || depth > 64) return;
    for (const auto& [name, child_key] : it->second.entries) {
      auto c = m_nodes.find(child_key);
      if (c == m_nodes.end()) continue;
      std::string p = ckpt::join_path(dest, name);
      switch (c->second.type) {
        case ckpt::FileType::dir:
          ::mkdir(p.c_str(), 0755);
          strict_into(child_key, p, depth + 1);
          break;
        case ckpt::FileType::file:
          put_file(p, c->second.data.value_or(""));
          break;
        case ckpt::FileType::symlink:
          if (::symlink(c->second.target.c_str(), p.c_str()) != 0) {
            throw ckpt::Error(ckpt::ErrorKind::io, "crash model: cannot link " + p);
          }
          break;
        default:
          break;
      }
    }
  }

  void eager_into(const std::string& src, const std::string& dest) {
    for (const auto& name : m_base.list_dir(src)) {
      std::string s = ckpt::join_path(src, name);
      std::string p = ckpt::join_path(dest, name);
      auto st = m_base.lstat(s);
      if (!st) continue;
      if (st->type == ckpt::FileType::dir) {
        ::mkdir(p.c_str(), 0755);
        eager_into(s, p);
      } else if (st->type == ckpt::FileType::file) {
        auto n = m_nodes.find({st->dev, st->ino});
        put_file(p, n == m_nodes.end() ? std::string() : n->second.data.value_or(""));
      } else if (st->type == ckpt::FileType::symlink) {
        if (::symlink(m_base.readlink(s).c_str(), p.c_str()) != 0) {
          throw ckpt::Error(ckpt::ErrorKind::io, "crash model: cannot link " + p);
        }
      }
    }
  }

  ckpt::FileSystem& m_base;
  mutable std::recursive_mutex m_mutex;
  std::string m_anchor;
  std::map<Key, Node> m_nodes;
  Hook m_hook;
  std::string m_drop_dir;
  bool m_drop_file = false;
  std::uint64_t m_ops = 0;
};

}  // namespace ckpt_test
