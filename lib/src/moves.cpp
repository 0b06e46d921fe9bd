// SPDX-License-Identifier: Apache-2.0
// save --move: the journal of files renamed into staging, and putting them back after an interruption.
#include <algorithm>
#include <cerrno>

#include <fmt/format.h>

#include "ckpt/atomic_file.hpp"
#include "ckpt/lock.hpp"
#include "internal.hpp"

namespace ckpt::detail {

std::string move_journal_path(const std::string& staging) { return staging + ".moves"; }

namespace {

// Renames from to to unless something is at to; false when something is.
// Falls back to link + unlink where the file system has no RENAME_NOREPLACE.
bool rename_if_free(FileSystem& fs, const std::string& from, const std::string& to) {
  try {
    fs.rename(from, to, RenameMode::noreplace);
    return true;
  } catch (const Error& e) {
    if (e.sys_errno() == EEXIST || e.sys_errno() == ENOTEMPTY) return false;
    if (e.sys_errno() != EINVAL && e.sys_errno() != ENOSYS) throw;
  }
  try {
    fs.link(from, to);
  } catch (const Error& e) {
    if (e.sys_errno() == EEXIST) return false;
    throw;
  }
  fs.unlink(from);
  return true;
}

}  // namespace

std::vector<std::string> restore_moved(const Context& ctx, const std::string& staging,
                                       const std::vector<MovedFile>& files) {
  FileSystem& fs = ctx.file_system();
  std::vector<std::string> restored;
  std::vector<std::string> parents;
  for (const auto& f : files) {
    std::string staged = join_path(staging, f.dest);
    std::optional<Stat> st;
    try {
      st = lstat_beneath(fs, staging, f.dest);
    } catch (const Error&) {
      continue;  // not a directory of ours on the way: nothing of ours there
    }
    // Only the very file that was moved: after a commit that swapped an old
    // checkpoint into this place, those files are not the user's.
    if (!st || st->type != FileType::file || st->dev != f.dev || st->ino != f.ino) continue;
    if (fs.lstat(f.source)) continue;  // rewritten since: the newer content stays
    std::string parent = parent_path(f.source);
    if (auto pst = fs.lstat(parent); !pst || pst->type != FileType::dir) {
      ctx.warning(fmt::format("cannot put {} back: {} is no longer a directory; its content "
                              "is dropped",
                              f.source, parent));
      continue;
    }
    try {
      if (!rename_if_free(fs, staged, f.source)) continue;
    } catch (const Error& e) {
      ctx.warning(fmt::format("cannot put {} back ({}); its content is dropped", f.source,
                              e.message()));
      continue;
    }
    restored.push_back(f.source);
    if (std::find(parents.begin(), parents.end(), parent) == parents.end()) {
      parents.push_back(parent);
    }
  }
  for (const auto& p : parents) {
    try {
      fs.fsync_dir(p);
    } catch (const Error&) {
    }
  }
  return restored;
}

std::vector<std::string> recover_interrupted_moves(const Context& ctx, const std::string& root,
                                                   bool dry_run) {
  FileSystem& fs = ctx.file_system();
  std::vector<std::string> restored;  // as clean_private reports: "PATH (put back)", dirs
  std::string staging_root = staging_dir(root);
  auto st = fs.lstat(staging_root);
  if (!st || st->type != FileType::dir) return restored;
  auto names = fs.list_dir(staging_root);
  std::sort(names.begin(), names.end());
  const std::string suffix = ".moves";
  for (const auto& n : names) {
    if (n.size() <= suffix.size() || n.compare(n.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    std::string dir = join_path(staging_root, n.substr(0, n.size() - suffix.size()));
    std::string lock_file = dir + ".lock";
    // The writer holds its staging lock for its whole life.
    if (fs.lstat(lock_file) && FileLock::is_held(lock_file)) continue;
    std::vector<MovedFile> files;
    try {
      files = parse_move_journal(read_file(fs, join_path(staging_root, n), k_max_meta_bytes));
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::io) throw;
      ctx.warning(fmt::format("{}/staging/{}: {}; the files it lists stay in {}", k_private_dir, n,
                              e.message(), dir));
      continue;
    }
    if (dry_run) {
      for (const auto& f : files) {
        auto s = fs.lstat(join_path(dir, f.dest));
        if (s && s->ino == f.ino && !fs.lstat(f.source)) {
          restored.push_back(fmt::format("{} (put back)", f.source));
        }
      }
      restored.push_back(fmt::format("{}/staging/{}", k_private_dir, base_name(dir)));
      continue;
    }
    FileLock probe = FileLock::try_acquire(lock_file);
    if (!probe.held()) continue;  // a writer just started
    for (const auto& s : restore_moved(ctx, dir, files)) {
      restored.push_back(fmt::format("{} (put back)", s));
    }
    restored.push_back(fmt::format("{}/staging/{}", k_private_dir, base_name(dir)));
    // The journal goes last: until then a crash here is recovered again.
    remove_tree(fs, dir);
    fs.unlink(join_path(staging_root, n));
    remove_tree(fs, lock_file);
  }
  return restored;
}

}  // namespace ckpt::detail
