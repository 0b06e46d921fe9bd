// SPDX-License-Identifier: Apache-2.0
// The parts of a save that a sharded save shares: the plan of what to store,
// the staging directory and the stager that copies, hashes and fsyncs into it,
// and the steps of a commit. Private to the library.
#pragma once

#include <fcntl.h>

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "ckpt/atomic_file.hpp"
#include "ckpt/lock.hpp"
#include "ckpt/parallel.hpp"
#include "ckpt/paths.hpp"
#include "ckpt/repository.hpp"
#include "internal.hpp"

namespace ckpt::detail::saving {

// One file to store: where it comes from and its stored path.
struct PlannedFile {
  std::string source;
  std::string dest;
  std::uint64_t size = 0;
};

struct Plan {
  std::vector<PlannedFile> files;           // sorted by dest
  std::vector<std::string> source_dirs;     // directory sources, for --move cleanup
};

// The metrics as a manifest records them: a value that is not finite is null.
std::map<std::string, std::optional<double>> recorded_metrics(
    const std::map<std::string, double>& given);

// The files a save stores, checked (stored paths, reserved names, sources
// outside the root, unless root is empty: an object store), sorted by stored
// path; throws Error(usage) otherwise.
Plan make_plan(FileSystem& fs, const SaveOptions& opts, const std::string& root);
// The stored paths that --weights names; each pattern must match one.
std::vector<std::string> match_weights(const SaveOptions& opts, const Plan& plan);
// path is dir or inside it.
bool within(const std::string& path, const std::string& dir);

class Staging {
 public:
  Staging(const Context& ctx, const std::string& root, const std::string& name)
      : m_ctx(ctx), m_fs(ctx.file_system()) {
    std::string base = detail::staging_dir(root);
    // A cleaner probing a fresh lock file can win the flock; take another name then.
    for (int attempt = 0; !m_lock.held(); ++attempt) {
      if (attempt == 100) throw Error(ErrorKind::locked, "cannot lock a staging directory");
      m_dir = join_path(base, fmt::format("{}.{}", name, unique_suffix()));
      m_lock_file = m_dir + ".lock";
      m_lock = FileLock::try_acquire(m_lock_file);
    }
    m_fs.mkdir(m_dir, 0755);
  }
  Staging(const Staging&) = delete;
  Staging& operator=(const Staging&) = delete;
  ~Staging() {
    if (!m_journal.empty() && !m_keep_moved) {
      try {
        detail::restore_moved(m_ctx, m_dir, m_journal);
      } catch (const Error&) {
        return;  // the journal stays: the next save or prune puts the files back
      }
    }
    try {
      if (!m_adopted) remove_tree(m_fs, m_dir);
      if (!m_journal.empty()) m_fs.unlink(detail::move_journal_path(m_dir));
    } catch (const Error&) {
      // Left for the next prune; it is private and invisible.
    }
    try {
      m_fs.unlink(m_lock_file);
    } catch (const Error&) {
    }
  }
  const std::string& dir() const { return m_dir; }

  // Records durably, before the first rename, which sources --move takes.
  void write_journal(std::vector<MovedFile> files) {
    if (files.empty()) return;
    write_file_atomic(m_fs, detail::move_journal_path(m_dir), serialize_move_journal(files));
    m_journal = std::move(files);
  }
  // The moved files now belong to a committed checkpoint: never put them back.
  void keep_moved() { m_keep_moved = true; }
  // The directory was renamed away (a recorded shard owns it now): only the
  // lock file and the journal are left to remove.
  void adopted() {
    m_keep_moved = true;
    m_adopted = true;
  }

 private:
  const Context& m_ctx;
  FileSystem& m_fs;
  std::string m_dir;
  std::string m_lock_file;
  FileLock m_lock;
  std::vector<MovedFile> m_journal;
  bool m_keep_moved = false;
  bool m_adopted = false;
};

// --dedup: a committed file whose bytes a save stores again.
struct SharedFile {
  std::string path;    // in the newest checkpoint
  std::string sha256;  // recorded there, and the source's
};

class Stager {
 public:
  Stager(const Context& ctx, const SaveOptions& opts, const std::string& staging,
         std::uint64_t total, Hash hash)
      : m_ctx(ctx), m_fs(ctx.file_system()), m_opts(opts), m_staging(staging), m_total(total),
        m_hash(hash) {
    m_dirs.push_back(staging);
  }

  // Called for several files at once, from several threads; make_parent
  // must have run for each file first.
  FileEntry stage(const PlannedFile& f, Overlap overlap) {
    try {
      return stage_file(f, overlap);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::io) throw;
      // Descriptor-level errors do not say which file: name it.
      throw Error(e.kind(), fmt::format("storing {} as {}: {}", f.source, f.dest, e.message()),
                  e.sys_errno());
    }
  }

 private:
  FileEntry stage_file(const PlannedFile& f, Overlap overlap) {
    std::string dst = join_path(m_staging, f.dest);
    FileEntry e = stage_content(f, dst, overlap);
    // A dedup root's files are read-only: one may be shared by several checkpoints.
    if (m_read_only) m_fs.chmod(dst, 0444);
    return e;
  }

  FileEntry stage_content(const PlannedFile& f, const std::string& dst, Overlap overlap) {
    TransferResult r;
    if (auto it = m_shared.find(f.dest); it != m_shared.end()) {
      if (auto shared = share(f, dst, it->second)) {
        if (m_opts.transfer == Transfer::move) copied(f.source);
        std::lock_guard<std::mutex> lock(m_mutex);
        ++m_shared_files;
        m_shared_bytes += shared->size;
        return *shared;
      }
    }
    if (m_opts.transfer == Transfer::move && m_moves.count(f.dest)) {
      r = move_in(f, dst, overlap);
    } else if (m_opts.transfer == Transfer::link) {
      try {
        m_fs.link(f.source, dst);
        r = hash_and_sync(f.source, dst, overlap);
      } catch (const Error& e) {
        if (!link_refused(e)) throw;
        {
          std::lock_guard<std::mutex> lock(m_mutex);
          if (!m_warned_link) {
            m_ctx.warning(fmt::format("cannot hard-link {} ({}); copying instead", f.source,
                                      e.message()));
            m_warned_link = true;
          }
        }
        r = copy(f.source, dst, overlap);
      }
    } else {
      r = copy(f.source, dst, overlap);
      if (m_opts.transfer == Transfer::move) copied(f.source);
    }
    FileEntry e;
    e.path = f.dest;
    e.size = r.size;
    e.sha256 = r.sha256;
    return e;
  }

  // --dedup: the source matched the newest checkpoint's file (same stored
  // path, size and SHA-256, hashed before staging), so that file's bytes are
  // stored: cloned where the file system can (a new inode sharing the
  // blocks), else hard-linked. nullopt when the committed file is no longer
  // what it was (then the source is copied as usual).
  std::optional<FileEntry> share(const PlannedFile& f, const std::string& dst,
                                 const SharedFile& committed) {
    FdGuard in(m_fs, m_fs.open(committed.path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK));
    Stat st = m_fs.fstat(in.get());
    if (st.type != FileType::file || st.size != f.size) return std::nullopt;
    FdGuard out(m_fs, m_fs.open(dst, O_WRONLY | O_CREAT | O_EXCL, 0444));
    if (m_fs.clone(in.get(), out.get())) {
      m_fs.fsync(out.get());
      out.close();
    } else {
      out.close();
      m_fs.unlink(dst);
      try {
        m_fs.link(committed.path, dst);
      } catch (const Error& e) {
        if (!link_refused(e)) throw;
        return std::nullopt;  // too many links, say: a copy of its own
      }
    }
    return FileEntry{f.dest, f.size, committed.sha256, std::nullopt};
  }

  // --move: the source itself is renamed into staging, so no path the user
  // writes to can share the committed file's storage.
  TransferResult move_in(const PlannedFile& f, const std::string& dst, Overlap overlap) {
    const MovedFile& m = m_moves.at(f.dest);
    try {
      m_fs.rename(f.source, dst, RenameMode::noreplace);
    } catch (const Error& e) {
      int err = e.sys_errno();
      if (err != EXDEV && err != EINVAL && err != ENOSYS && err != EPERM) throw;
      // Another file system, or no atomic no-replace rename: copy, remove after the commit.
      TransferResult r = copy(f.source, dst, overlap);
      copied(f.source);
      return r;
    }
    auto st = m_fs.lstat(dst);
    if (!st || st->dev != m.dev || st->ino != m.ino) {
      // Replaced between planning and the rename: not the file the journal
      // names, so put it straight back rather than risk it.
      try {
        m_fs.rename(dst, f.source, RenameMode::noreplace);
      } catch (const Error&) {
      }
      throw Error(ErrorKind::conflict,
                  fmt::format("source {} was replaced while it was being saved; nothing was "
                              "saved",
                              f.source));
    }
    return hash_and_sync(f.source, dst, overlap);
  }

  // The data must be durable before the commit, whoever wrote it.
  TransferResult hash_and_sync(const std::string& source, const std::string& dst,
                               Overlap overlap) {
    FdGuard fd(m_fs, m_fs.open(dst, O_RDONLY | O_NOFOLLOW | O_NONBLOCK));
    Stat before = m_fs.fstat(fd.get());
    if (before.type != FileType::file) {
      throw Error(ErrorKind::integrity, dst + " is not a regular file");
    }
    TransferResult r = hash_fd(m_fs, fd.get(), m_hash, progress_fn(), overlap);
    sync(fd.get(), dst, r.size);
    check_unchanged(source, before, m_fs.fstat(fd.get()), r);
    fd.close();
    return r;
  }

 public:
  // --move: the sources renamed in rather than copied (by stored path).
  void set_moves(const std::vector<MovedFile>& moves) {
    for (const auto& m : moves) m_moves.emplace(m.dest, m);
  }
  // --move: the sources that were copied, to remove once committed.
  const std::vector<std::string>& copied_sources() const { return m_copied; }

  // --dedup: the files to share with the newest checkpoint (by stored path),
  // and whether the staged files are made read-only.
  void set_dedup(std::map<std::string, SharedFile> shared, bool read_only) {
    m_shared = std::move(shared);
    m_read_only = read_only;
  }
  std::size_t shared_files() const { return m_shared_files; }
  std::uint64_t shared_bytes() const { return m_shared_bytes; }

  // Creates the directories dest needs in staging (before any stage()).
  void make_parent(const std::string& dest) {
    std::size_t pos = 0;
    while ((pos = dest.find('/', pos)) != std::string::npos) {
      std::string rel = dest.substr(0, pos);
      if (m_made.insert(rel).second) {
        std::string p = join_path(m_staging, rel);
        m_fs.mkdir(p, 0755);
        m_dirs.push_back(p);
      }
      ++pos;
    }
  }

  // Fsyncs the directories created in staging below its top, side by side
  // (their entries are complete once every file is staged; the top one gets
  // _checkpoint.json later and is fsynced after it).
  void sync_subdirs() {
    for_each_parallel(m_dirs.size() - 1, sync_threads(),
                      [&](std::size_t i) { m_fs.fsync_dir(m_dirs[i + 1]); });
  }

 private:
  ProgressFn progress_fn() {
    if (!m_ctx.progress) return {};
    return [this](std::uint64_t n) {
      std::lock_guard<std::mutex> lock(m_mutex);
      m_done += n;
      m_ctx.progress(m_done, m_total);
    };
  }

  void copied(const std::string& source) {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_copied.push_back(source);
  }

  TransferResult copy(const std::string& src, const std::string& dst, Overlap overlap) {
    FdGuard in(m_fs, m_fs.open(src, O_RDONLY | O_NONBLOCK));
    Stat st = m_fs.fstat(in.get());
    if (st.type != FileType::file) {
      throw Error(ErrorKind::usage, fmt::format("source {} is not a regular file", src));
    }
    FdGuard out(m_fs, m_fs.open(dst, O_WRONLY | O_CREAT | O_EXCL, 0644));
    TransferResult r;
    if (m_fs.clone(in.get(), out.get())) {
      r = hash_fd(m_fs, in.get(), m_hash, progress_fn(), overlap);
    } else {
      r = copy_and_hash(m_fs, in.get(), out.get(), m_hash, progress_fn(), overlap);
    }
    check_unchanged(src, st, m_fs.fstat(in.get()), r);
    sync(out.get(), dst, r.size);
    out.close();
    return r;
  }

  // A large file is fsynced at once, on its worker, while the others copy.
  // A small one's writeback only starts here: its fsync waits for
  // sync_small(), where many are issued side by side (one file system journal
  // commit can then cover many of them, where one after another each waits
  // for its own).
  void sync(int fd, const std::string& dst, std::uint64_t size) {
    if (size >= k_inline_sync_min) {
      m_fs.fsync(fd);
      return;
    }
    m_fs.start_writeback(fd);
    std::lock_guard<std::mutex> lock(m_mutex);
    m_unsynced.push_back(dst);
  }

 public:
  // The fsyncs sync() left for later, sync_threads() at a time.
  void sync_small() {
    for_each_parallel(m_unsynced.size(), sync_threads(), [&](std::size_t i) {
      FdGuard fd(m_fs, m_fs.open(m_unsynced[i], O_RDONLY | O_NOFOLLOW | O_NONBLOCK));
      m_fs.fsync(fd.get());
      fd.close();
    });
    m_unsynced.clear();
  }

 private:
  static constexpr std::uint64_t k_inline_sync_min = 1 << 20;
  // Waiting on the disk, not computing: more threads than cores, unless the
  // caller set a number.
  static constexpr unsigned k_sync_threads = 32;
  unsigned sync_threads() const { return m_ctx.threads ? m_ctx.threads : k_sync_threads; }

  // A source written while it was read (a job rewriting its work files while
  // an earlier save of them still runs) would be stored torn, under a digest
  // that matches the torn bytes: refuse it. Size, modification and change
  // times taken before and after the read must agree.
  static void check_unchanged(const std::string& src, const Stat& before, const Stat& after,
                              const TransferResult& r) {
    if (before.size == after.size && r.size == before.size && before.mtime_ns == after.mtime_ns &&
        before.ctime_ns == after.ctime_ns) {
      return;
    }
    throw Error(ErrorKind::conflict,
                fmt::format("source {} changed while it was being saved (is another process "
                            "writing it?); nothing was saved: save again once it is complete",
                            src));
  }

  const Context& m_ctx;
  FileSystem& m_fs;
  const SaveOptions& m_opts;
  std::string m_staging;
  std::uint64_t m_total;
  std::uint64_t m_done = 0;
  Hash m_hash;
  std::set<std::string> m_made;
  std::vector<std::string> m_dirs;
  bool m_warned_link = false;
  std::map<std::string, MovedFile> m_moves;
  std::vector<std::string> m_copied;
  std::vector<std::string> m_unsynced;  // staged files whose fsync sync_small() issues
  std::map<std::string, SharedFile> m_shared;
  bool m_read_only = false;
  std::size_t m_shared_files = 0;
  std::uint64_t m_shared_bytes = 0;
  std::mutex m_mutex;  // m_done, m_warned_link, m_copied and the callbacks: stage() runs on several threads
};


// What a save (or a shard of one) works from: the absolute root, checked,
// with an interrupted --move put back and the private directories made; the
// plan; the stored paths --weights names; the step's directory name.
struct Prepared {
  std::string root;
  Plan plan;
  std::vector<std::string> weights;
  std::string name;
};
Prepared prepare_save(const Context& ctx, const SaveOptions& opts);

// The checks every save makes before reading a source: step range, durations,
// metric names (non-finite metrics are warned about).
void check_save_options(const Context& ctx, const SaveOptions& opts);

void write_and_sync(FileSystem& fs, const std::string& path, const std::string& data);

struct NextSeq {
  std::uint64_t seq = 1;
  bool markers_stale = false;
};
NextSeq next_commit_seq(const Context& ctx, const std::string& root);
void store_commit_seq(const Context& ctx, const std::string& root, std::uint64_t seq);

void check_best_conflict(const SaveOptions& opts, const std::optional<BestMarker>& best);
// best.json, or nullopt with a warning when it is damaged (rebuilt by the
// save); a newer ckpt's file, or an I/O error, is thrown.
std::optional<BestMarker> read_best_tolerant(const Context& ctx, detail::Store& store);
std::optional<BestMarker> read_best_tolerant(const Context& ctx, const std::string& root);
Policy merged_policy(const std::optional<Policy>& current, const Policy& given);
void check_keep_best_key(const SaveOptions& opts, const std::optional<Policy>& policy,
                         const std::optional<BestMarker>& best);
FileLock lock_for_commit(const Context& ctx, const SaveOptions& opts, const std::string& root,
                         std::optional<Policy>& policy, std::optional<BestMarker>& best);
void finish_move(const Context& ctx, const Plan& plan, const std::vector<std::string>& copied);
std::vector<MovedFile> plan_moves(FileSystem& fs, const Plan& plan, const std::string& staging);

detail::BestRule best_rule(const SaveOptions& opts, const std::optional<Policy>& policy,
                           const std::optional<BestMarker>& best);
// The sources' entries as a save would record them, hashed in place.
std::vector<FileEntry> hash_sources(const Context& ctx, const Plan& plan);
// --dedup: the planned files whose stored path, size and SHA-256 equal a
// file of newest (by stored path, with its SHA-256), each source hashed in
// place on every core; only sources of a committed file's size are read.
std::map<std::string, std::string> unchanged_sources(const Context& ctx, const Plan& plan,
                                                     const CheckpointMeta& newest);

std::optional<std::string> content_difference(const CheckpointMeta& committed,
                                              const std::vector<FileEntry>& files);
// The checksum a new checkpoint records: the option's, policy.json's, or
// sha256 (always for a copy).
std::string checksum_of(const SaveOptions& opts, const std::optional<Policy>& policy);
// A new checkpoint's manifest before its files: name, step, metrics, meta,
// checksum, weights, tool.
CheckpointMeta new_meta(const SaveOptions& opts, const std::string& name,
                        const std::vector<std::string>& weights, const std::string& checksum);
// --move, once the step's content is committed: every source goes.
void finish_move_all(const Context& ctx, const SaveOptions& opts, const Plan& plan);
Error step_exists(const SaveOptions& opts, const std::string& name, const std::string& why);
// opts.expected_files (ckpt copy) against the stored files: Error(integrity)
// naming the first that differs.
void check_expected(const SaveOptions& opts, const std::vector<FileEntry>& stored);
CheckpointMeta read_committed(const Context& ctx, const SaveOptions& opts, const std::string& dir);

// A save of a step that is committed with the same files: brings the
// markers, policy.json and retention up to date (what an interrupted save of
// it may have left undone) and fills report. Call under the root lock.
void complete_existing(const Context& ctx, const SaveOptions& opts, const std::string& dir,
                       const CheckpointMeta& committed, const std::optional<Policy>& policy,
                       const std::optional<BestMarker>& best, SaveReport& report);

// The commit of a staged checkpoint, under the root lock: _checkpoint.json
// (meta gets its commit_seq) and the commit_seq counter, the rename into
// place (replacing `existing`, with --force), then `last`, best.json,
// policy.json and retention, as SPEC §7 orders them. on_visible runs as soon
// as the checkpoint is visible, before_retention after the markers.
void commit_staged(const Context& ctx, const SaveOptions& opts, const std::string& root,
                   const std::string& staging_dir, CheckpointMeta& meta,
                   const std::optional<std::string>& existing, std::optional<Policy> policy,
                   std::optional<BestMarker> best, const std::function<void()>& on_visible,
                   const std::function<void()>& before_retention, SaveReport& report);

}  // namespace ckpt::detail::saving
