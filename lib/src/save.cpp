// SPDX-License-Identifier: Apache-2.0
// save: stage, hash, fsync, commit by rename under the root lock, then the markers.
#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>

#include <fmt/format.h>

#include "ckpt/atomic_file.hpp"
#include "ckpt/clock.hpp"
#include "ckpt/parallel.hpp"
#include "ckpt/paths.hpp"
#include "ckpt/repository.hpp"
#include "ckpt/retention.hpp"
#include "internal.hpp"
#include "store/store.hpp"
#include "save_parts.hpp"

namespace ckpt {

namespace detail::saving {

std::map<std::string, std::optional<double>> recorded_metrics(
    const std::map<std::string, double>& given) {
  std::map<std::string, std::optional<double>> out;
  for (const auto& [k, v] : given) {
    out[k] = std::isfinite(v) ? std::optional<double>(v) : std::nullopt;
  }
  return out;
}

namespace {

void add_planned(Plan& plan, std::set<std::string>& seen, std::string source, std::string dest,
                 std::uint64_t size) {
  if (auto why = stored_path_problem(dest)) {
    throw Error(ErrorKind::usage, fmt::format("refusing stored path {:?} (from {}): {}", dest,
                                              source, *why));
  }
  if (dest == k_meta_file || dest == k_sums_file) {
    throw Error(ErrorKind::usage,
                fmt::format("refusing stored path {:?} (from {}): the name is reserved by ckpt",
                            dest, source));
  }
  if (!seen.insert(dest).second) {
    throw Error(ErrorKind::usage, fmt::format("two sources would be stored as {:?}", dest));
  }
  plan.files.push_back(PlannedFile{std::move(source), std::move(dest), size});
}

// The type of path as save treats it: symbolic links followed only when allowed.
Stat source_stat(FileSystem& fs, const std::string& path, bool follow, bool top) {
  auto st = fs.lstat(path);
  if (!st) {
    Error e(top ? ErrorKind::not_found : ErrorKind::io,
            fmt::format("source {} does not exist", path), ENOENT);
    throw top ? std::move(e).with_reason(k_reason_no_source) : std::move(e);
  }
  if (st->type == FileType::symlink) {
    if (!follow) {
      throw Error(ErrorKind::usage,
                  fmt::format("source {} is a symbolic link; ckpt stores no links "
                              "(--follow-symlinks stores the target's content)",
                              path));
    }
    st = fs.stat(path);
    if (!st) {
      throw Error(top ? ErrorKind::not_found : ErrorKind::usage,
                  fmt::format("source {} is a dangling symbolic link", path));
    }
  }
  if (st->type == FileType::other) {
    throw Error(ErrorKind::usage,
                fmt::format("source {} is not a regular file or directory (FIFO, socket or "
                            "device); ckpt stores regular files only",
                            path));
  }
  return *st;
}

void walk_dir(FileSystem& fs, Plan& plan, std::set<std::string>& seen, const std::string& dir,
              const std::string& prefix, bool follow, int depth) {
  if (depth > 256) throw Error(ErrorKind::usage, fmt::format("{} is nested too deeply", dir));
  auto names = fs.list_dir(dir);
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    std::string path = join_path(dir, n);
    std::string dest = prefix.empty() ? n : prefix + "/" + n;
    Stat st = source_stat(fs, path, follow, false);
    if (st.type == FileType::dir) {
      walk_dir(fs, plan, seen, path, dest, follow, depth + 1);
    } else {
      add_planned(plan, seen, path, dest, st.size);
    }
  }
}

// Canonical form of path, symbolic links resolved as far as the path exists.
std::string canonical(const std::string& path) {
  std::error_code ec;
  auto p = std::filesystem::weakly_canonical(std::filesystem::absolute(path), ec);
  return ec ? absolute_path(path) : p.lexically_normal().string();
}

// Sources must not overlap the root: a source holding the root would store
// the root in itself, and moving or linking from inside the root would make
// the commit remove or share committed files.
void check_source_against_root(const SaveOptions& opts, const std::string& source,
                               const std::string& root) {
  std::string src = canonical(source);
  std::string r = canonical(root);
  if (within(r, src)) {
    throw Error(ErrorKind::usage,
                fmt::format("source {} contains the root {}; store a directory beside it", source,
                            root));
  }
  if (within(src, join_path(r, k_private_dir))) {
    throw Error(ErrorKind::usage, fmt::format("source {} is inside {}/.ckpt", source, root));
  }
  if (opts.transfer != Transfer::copy && within(src, r)) {
    throw Error(ErrorKind::usage,
                fmt::format("source {} is inside the root: --{} would take files from committed "
                            "checkpoints; use --copy",
                            source, opts.transfer == Transfer::move ? "move" : "link"));
  }
}

}  // namespace

bool within(const std::string& path, const std::string& dir) {
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         (dir.back() == '/' || path[dir.size()] == '/'));
}

Plan make_plan(FileSystem& fs, const SaveOptions& opts, const std::string& root) {
  Plan plan;
  std::set<std::string> seen;
  for (const auto& src : opts.sources) {
    if (src.path.empty()) throw Error(ErrorKind::usage, "empty source path");
    Stat st = source_stat(fs, src.path, opts.follow_symlinks, true);
    if (!root.empty()) check_source_against_root(opts, src.path, root);
    if (src.contents) {
      if (st.type != FileType::dir) {
        throw Error(ErrorKind::usage, fmt::format("--from {}: not a directory", src.path));
      }
      walk_dir(fs, plan, seen, src.path, "", opts.follow_symlinks, 0);
      plan.source_dirs.push_back(src.path);
      continue;
    }
    std::string dest = src.dest.value_or(base_name(src.path));
    if (src.dest && dest.empty()) {
      throw Error(ErrorKind::usage, fmt::format("empty destination for {}", src.path));
    }
    if (st.type == FileType::dir) {
      if (auto why = stored_path_problem(dest)) {
        throw Error(ErrorKind::usage,
                    fmt::format("refusing stored path {:?} (from {}): {}", dest, src.path, *why));
      }
      walk_dir(fs, plan, seen, src.path, dest, opts.follow_symlinks, 0);
      plan.source_dirs.push_back(src.path);
    } else {
      add_planned(plan, seen, src.path, dest, st.size);
    }
  }
  if (plan.files.empty()) {
    throw Error(ErrorKind::usage, "nothing to save: give at least one file (SOURCE or --from DIR)");
  }
  std::sort(plan.files.begin(), plan.files.end(),
            [](const PlannedFile& a, const PlannedFile& b) { return a.dest < b.dest; });
  return plan;
}

std::vector<std::string> match_weights(const SaveOptions& opts, const Plan& plan) {
  std::set<std::string> out;
  for (const auto& pattern : opts.weights) {
    bool any = false;
    for (const auto& f : plan.files) {
      if (f.dest == pattern || glob_match(pattern, f.dest)) {
        out.insert(f.dest);
        any = true;
      }
    }
    if (!any) {
      throw Error(ErrorKind::usage,
                  fmt::format("--weights {:?} matches no stored file", pattern));
    }
  }
  return {out.begin(), out.end()};
}

// The staging directory and its lock; removed unless released to the commit.
// Under --move it also holds the user's files: they go back to their sources
// unless the commit took them (the journal beside it says which and where).


void write_and_sync(FileSystem& fs, const std::string& path, const std::string& data) {
  try {
    FdGuard fd(fs, fs.open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644));
    fs.write(fd.get(), data.data(), data.size());
    fs.fsync(fd.get());
    fd.close();
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::io) throw;
    throw Error(e.kind(), fmt::format("writing {}: {}", base_name(path), e.message()),
                e.sys_errno());
  }
}

// The next commit_seq: one more than the highest in the root. The counter in
// .ckpt/ saves a scan when `last` names the checkpoint it counts, and is
// never below it, so a copied or restored root cannot reuse a number. `last`
// naming an older commit than the counter means an earlier save stopped
// before its commit (the number was never seen) or between its commit and
// its markers: then the checkpoints decide.
NextSeq next_commit_seq(const Context& ctx, const std::string& root) {
  FileSystem& fs = ctx.file_system();
  std::optional<std::uint64_t> known = detail::read_commit_counter(ctx, root);
  NextSeq next;
  std::uint64_t highest = 0;
  if (known) {
    highest = *known;
    std::optional<std::uint64_t> last_seq;
    try {
      if (auto last = detail::read_last(ctx, root)) {
        std::string dir = join_path(root, last->name);
        if (fs.lstat(dir)) last_seq = detail::read_meta(ctx, dir).commit_seq;
      }
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::io) throw;
    }
    if (last_seq) highest = std::max(highest, *last_seq);
    next.markers_stale = !last_seq || *last_seq < *known;
  } else {
    next.markers_stale = true;
  }
  if (next.markers_stale) {
    // A save stopped between the counter and its markers: the checkpoints
    // decide. A number taken by a save killed before its commit was never
    // seen, so it is used now and commit_seq stays free of gaps.
    auto listing = list_checkpoints(ctx, root).value();
    highest = 0;
    for (const auto& c : listing.checkpoints) highest = std::max(highest, c.meta.commit_seq);
  }
  next.seq = highest + 1;
  return next;
}

void store_commit_seq(const Context& ctx, const std::string& root, std::uint64_t seq) {
  write_file_atomic(ctx.file_system(), detail::commit_counter_path(root), fmt::format("{}\n", seq));
}

detail::BestRule best_rule(const SaveOptions& opts, const std::optional<Policy>& policy,
                           const std::optional<BestMarker>& best) {
  return detail::best_rule(opts.policy.best_key, opts.policy.best_mode, policy, best);
}

void check_best_conflict(const SaveOptions& opts, const std::optional<BestMarker>& best) {
  if (!best || opts.force) return;
  if (opts.policy.best_key && *opts.policy.best_key != best->key) {
    throw Error(ErrorKind::conflict,
                fmt::format("best.json ranks by {:?} but this save names --best-key {:?}; "
                            "use --force to switch (best.json is then rebuilt)",
                            best->key, *opts.policy.best_key));
  }
  if (opts.policy.best_mode && *opts.policy.best_mode != best->mode &&
      (!opts.policy.best_key || *opts.policy.best_key == best->key)) {
    throw Error(ErrorKind::conflict,
                fmt::format("best.json ranks {:?} by {} but this save names --mode {}; "
                            "use --force to switch",
                            best->key, mode_name(best->mode), mode_name(*opts.policy.best_mode)));
  }
}

std::optional<BestMarker> read_best_tolerant(const Context& ctx, detail::Store& store) {
  try {
    return detail::read_best(store);
  } catch (const Error& e) {
    // A newer ckpt's file is not ours to downgrade.
    if (e.kind() == ErrorKind::io || e.kind() == ErrorKind::unsupported) throw;
    ctx.warning(fmt::format("{}; it will be rebuilt", e.message()));
    return std::nullopt;
  }
}

std::optional<BestMarker> read_best_tolerant(const Context& ctx, const std::string& root) {
  detail::DirStore store(ctx.file_system(), root);
  return read_best_tolerant(ctx, store);
}

Policy merged_policy(const std::optional<Policy>& current, const Policy& given);

void check_keep_best_key(const SaveOptions& opts, const std::optional<Policy>& policy,
                         const std::optional<BestMarker>& best) {
  if (merged_policy(policy, opts.policy).keep_best && !best_rule(opts, policy, best).key) {
    throw Error(ErrorKind::usage,
                "--keep-best needs a best key: give --best-key (nothing was saved)");
  }
}

// Takes the root lock for a commit and re-reads what another command may
// have changed while the files were copied: the policy and the best key.
FileLock lock_for_commit(const Context& ctx, const SaveOptions& opts, const std::string& root,
                         std::optional<Policy>& policy, std::optional<BestMarker>& best) {
  FileLock lock = detail::lock_root(ctx, root);
  check_interrupt();
  policy = detail::read_policy(ctx, root);
  best = read_best_tolerant(ctx, root);
  check_best_conflict(opts, best);
  check_keep_best_key(opts, policy, best);
  return lock;
}

Policy merged_policy(const std::optional<Policy>& current, const Policy& given) {
  Policy p = current.value_or(Policy{});
  if (given.best_key && given.best_key != p.best_key && !given.best_mode) p.best_mode.reset();
  if (given.best_key) p.best_key = given.best_key;
  if (given.best_mode) p.best_mode = given.best_mode;
  if (given.keep_last) p.keep_last = given.keep_last;
  if (given.keep_best) p.keep_best = given.keep_best;
  if (given.keep_every) p.keep_every = given.keep_every;
  if (given.keep_within) p.keep_within = given.keep_within;
  if (given.checksum) p.checksum = given.checksum;
  if (given.dedup) p.dedup = given.dedup;
  if (given.pending_expiry) p.pending_expiry = given.pending_expiry;
  return p;
}

// After a --move commit: the sources that had to be copied go, and so do the
// directories beneath a directory source once emptied. The directories named
// on the command line (SOURCE or --from DIR) stay, empty, so the job can
// write its next files there.
void finish_move(const Context& ctx, const Plan& plan, const std::vector<std::string>& copied) {
  FileSystem& fs = ctx.file_system();
  for (const auto& source : copied) {
    try {
      fs.unlink(source);
    } catch (const Error& e) {
      if (e.sys_errno() != ENOENT) ctx.warning(e.message());
    }
  }
  for (const auto& top : plan.source_dirs) {
    std::vector<std::string> dirs;
    std::set<std::string> seen;
    for (const auto& f : plan.files) {
      if (!within(f.source, top)) continue;
      for (std::string d = parent_path(f.source); d.size() > top.size() && within(d, top);
           d = parent_path(d)) {
        if (!seen.insert(d).second) break;
        dirs.push_back(d);
      }
    }
    std::sort(dirs.begin(), dirs.end(), [](const std::string& a, const std::string& b) {
      return a.size() > b.size();
    });
    for (const auto& d : dirs) {
      try {
        fs.rmdir(d);
      } catch (const Error&) {
        // Not empty (new content) or gone: it stays as it is.
      }
    }
  }
}

// The sources --move renames into staging: regular files (not links) on
// staging's file system with no other hard link, since another name would
// keep sharing the committed file. Any other source is copied, and removed
// after the commit.
std::vector<MovedFile> plan_moves(FileSystem& fs, const Plan& plan, const std::string& staging) {
  std::vector<MovedFile> moves;
  auto target = fs.lstat(staging);
  if (!target) return moves;
  for (const auto& f : plan.files) {
    auto st = fs.lstat(f.source);
    if (!st || st->type != FileType::file || st->nlink != 1 || st->dev != target->dev) continue;
    moves.push_back(MovedFile{absolute_path(f.source), f.dest, static_cast<std::uint64_t>(st->dev),
                              static_cast<std::uint64_t>(st->ino)});
  }
  return moves;
}

std::map<std::string, std::string> unchanged_sources(const Context& ctx, const Plan& plan,
                                                     const CheckpointMeta& newest) {
  FileSystem& fs = ctx.file_system();
  std::map<std::string, const FileEntry*> by_path;
  for (const auto& f : newest.files) by_path[f.path] = &f;
  std::vector<const PlannedFile*> candidates;
  for (const auto& f : plan.files) {
    auto it = by_path.find(f.dest);
    if (it != by_path.end() && it->second->size == f.size && it->second->sha256) {
      candidates.push_back(&f);
    }
  }
  std::vector<std::optional<std::string>> digests(candidates.size());
  std::vector<PlannedFile> sized;
  for (const auto* c : candidates) sized.push_back(*c);
  auto order = detail::biggest_first(sized);
  unsigned workers = worker_count(ctx.threads);
  for_each_parallel(order.size(), workers, [&](std::size_t k) {
    const PlannedFile& f = *candidates[order[k]];
    FdGuard in(fs, fs.open(f.source, O_RDONLY | O_NONBLOCK));
    Stat before = fs.fstat(in.get());
    if (before.type != FileType::file) return;  // staging says why
    TransferResult r = hash_fd(fs, in.get(), Hash::yes, {}, overlap_for(k, order.size(), workers));
    Stat after = fs.fstat(in.get());
    // Written while hashed: not known to be the same; copied (and checked) as usual.
    if (r.size != f.size || after.size != before.size || after.mtime_ns != before.mtime_ns ||
        after.ctime_ns != before.ctime_ns) {
      return;
    }
    digests[order[k]] = r.sha256;
  });
  std::map<std::string, std::string> out;
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    const FileEntry* committed = by_path.at(candidates[i]->dest);
    if (digests[i] && *digests[i] == *committed->sha256) {
      out.emplace(candidates[i]->dest, *digests[i]);
    }
  }
  return out;
}

// --dedup on a directory root: the files to share with the newest committed
// checkpoint, whose name newest_name is set to. Nothing is shared when the
// root has no readable checkpoint yet.
std::map<std::string, SharedFile> find_shared(const Context& ctx, const Plan& plan,
                                              const std::string& root, std::string& newest_name) {
  std::map<std::string, SharedFile> out;
  Context quiet = ctx;
  quiet.warn = nullptr;
  std::string dir;
  CheckpointMeta newest;
  try {
    dir = detail::resolve_ref_dir(quiet, root, "latest");
    newest = detail::read_meta(quiet, dir);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::io && e.sys_errno() != ENOENT) throw;
    return out;
  }
  for (auto& [dest, sha256] : unchanged_sources(ctx, plan, newest)) {
    out.emplace(dest, SharedFile{join_path(dir, dest), sha256});
  }
  newest_name = base_name(dir);
  return out;
}

// What differs between a committed checkpoint's files and the files of a
// save of the same step, or nullopt when they are the same (paths, sizes,
// SHA-256). Without digests on both sides nothing can be shown identical.
std::optional<std::string> content_difference(const CheckpointMeta& committed,
                                              const std::vector<FileEntry>& files) {
  if (committed.files.size() != files.size()) {
    return fmt::format("{} files against {} committed", files.size(), committed.files.size());
  }
  for (std::size_t i = 0; i < files.size(); ++i) {
    const FileEntry& a = committed.files[i];
    const FileEntry& b = files[i];
    if (a.path != b.path) return fmt::format("{} is not in the committed checkpoint", b.path);
    if (a.size != b.size) return fmt::format("{} has another size", b.path);
    if (!a.sha256 || !b.sha256) {
      return fmt::format("{} has no SHA-256 to compare (--checksum none)", b.path);
    }
    if (*a.sha256 != *b.sha256) return fmt::format("{} has other content", b.path);
  }
  return std::nullopt;
}

void check_expected(const SaveOptions& opts, const std::vector<FileEntry>& stored) {
  if (!opts.expected_files) return;
  std::map<std::string, const FileEntry*> got;
  for (const auto& f : stored) got[f.path] = &f;
  for (const auto& want : *opts.expected_files) {
    auto it = got.find(want.path);
    if (it == got.end()) {
      throw Error(ErrorKind::integrity,
                  fmt::format("{}: recorded in the source checkpoint but not stored; nothing was "
                              "committed",
                              want.path));
    }
    const FileEntry& g = *it->second;
    if (g.size != want.size) {
      throw Error(ErrorKind::integrity,
                  fmt::format("{}: {} bytes read but the source checkpoint records {}; nothing "
                              "was committed",
                              want.path, g.size, want.size));
    }
    if (want.sha256 && g.sha256 && *g.sha256 != *want.sha256) {
      throw Error(ErrorKind::integrity,
                  fmt::format("{}: sha256 {} read but the source checkpoint records {}; nothing "
                              "was committed",
                              want.path, *g.sha256, *want.sha256));
    }
  }
}

std::string checksum_of(const SaveOptions& opts, const std::optional<Policy>& policy) {
  // A copy keeps the digests it checks against.
  if (opts.expected_files) return "sha256";
  return opts.policy.checksum.value_or(policy && policy->checksum ? *policy->checksum
                                                                  : std::string("sha256"));
}

CheckpointMeta new_meta(const SaveOptions& opts, const std::string& name,
                        const std::vector<std::string>& weights, const std::string& checksum) {
  CheckpointMeta meta;
  meta.name = name;
  meta.step = opts.step;
  meta.metrics = recorded_metrics(opts.metrics);
  meta.meta = opts.meta;
  meta.checksum = checksum;
  meta.weights = weights;
  meta.tool = tool_version();
  return meta;
}

void finish_move_all(const Context& ctx, const SaveOptions& opts, const Plan& plan) {
  if (opts.transfer != Transfer::move) return;
  std::vector<std::string> sources;
  for (const auto& f : plan.files) sources.push_back(f.source);
  finish_move(ctx, plan, sources);
}

Error step_exists(const SaveOptions& opts, const std::string& name, const std::string& why) {
  return Error(ErrorKind::conflict,
               fmt::format("step {} already exists ({}) with other content ({}); use --force "
                           "to replace it",
                           opts.step, name, why));
}

// The committed checkpoint at dir, for a save of the same step; one that
// cannot be read is another content.
CheckpointMeta read_committed(const Context& ctx, const SaveOptions& opts, const std::string& dir) {
  try {
    return detail::read_meta(ctx, dir);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::io) throw;
    throw step_exists(opts, base_name(dir), e.message());
  }
}

// The sources' entries as a save would record them, hashed in place (no copy).
std::vector<FileEntry> hash_sources(const Context& ctx, const Plan& plan) {
  FileSystem& fs = ctx.file_system();
  std::vector<FileEntry> out(plan.files.size());
  auto order = detail::biggest_first(plan.files);
  unsigned workers = worker_count(ctx.threads);
  for_each_parallel(order.size(), workers, [&](std::size_t k) {
    const PlannedFile& f = plan.files[order[k]];
    FdGuard in(fs, fs.open(f.source, O_RDONLY | O_NONBLOCK));
    if (fs.fstat(in.get()).type != FileType::file) {
      throw Error(ErrorKind::usage, fmt::format("source {} is not a regular file", f.source));
    }
    TransferResult r = hash_fd(fs, in.get(), Hash::yes, {}, overlap_for(k, order.size(), workers));
    out[order[k]] = FileEntry{f.dest, r.size, r.sha256, std::nullopt};
  });
  return out;
}

// A save of a step that is committed with the same files is a success that
// changes no checkpoint (a restarted job re-saving the step it was killed
// in): it finishes what an interrupted save of it may have left undone, the
// markers, policy.json and retention. Call under the root lock.
void complete_existing(const Context& ctx, const SaveOptions& opts, const std::string& dir,
                       const CheckpointMeta& committed, const std::optional<Policy>& policy,
                       const std::optional<BestMarker>& best, SaveReport& report) {
  FileSystem& fs = ctx.file_system();
  std::string root = parent_path(dir);
  report.name = base_name(dir);
  report.path = dir;
  report.step = committed.step;
  report.commit_seq = committed.commit_seq;
  report.files = committed.files.size();
  report.total_size = committed.total_size;
  report.existing = true;
  report.committed = false;  // committed before, not by this call
  if (recorded_metrics(opts.metrics) != committed.metrics || opts.meta != committed.meta) {
    ctx.warning(fmt::format("{} is already committed with these files; its recorded metrics "
                            "and meta are kept (--force replaces the checkpoint)",
                            committed.name));
  }
  auto listing = list_checkpoints(ctx, root).value();
  detail::BestRule rule = best_rule(opts, policy, best);
  if (rule.key) {
    report.best_key = rule.key;
    report.best_value = committed.metric(*rule.key);
  }
  try {
    detail::refresh_markers(ctx, root, listing.checkpoints, rule.key, rule.mode);
    Policy merged = merged_policy(policy, opts.policy);
    if (policy ? !(merged == *policy) : !(merged == Policy{})) {
      write_file_atomic(fs, join_path(root, k_policy_file), serialize_policy(merged));
    }
    if (merged.has_retention_rule()) {
      report.pruned = detail::prune_locked(ctx, root, merged, false).removed;
    } else {
      detail::clean_private(ctx, root, false, detail::RootTemps::no);
    }
  } catch (const Error& e) {
    throw Error(e.kind(),
                fmt::format("{} is committed with these files, but bringing the markers and "
                            "retention up to date failed: {}",
                            committed.name, e.message()),
                e.sys_errno());
  }
}

Prepared prepare_save(const Context& ctx, const SaveOptions& opts) {
  FileSystem& fs = ctx.file_system();
  Prepared p;
  detail::require_directory_root(opts.root);
  p.root = absolute_path(opts.root.empty() ? "." : opts.root);
  if (auto st = fs.lstat(p.root); st && st->type == FileType::dir) {
    // An interrupted --move's files go back to their sources first, as if
    // that save had copied them.
    detail::check_private_dirs(ctx, p.root);
    detail::recover_interrupted_moves(ctx, p.root, false);
  }
  p.plan = make_plan(fs, opts, p.root);
  p.weights = match_weights(opts, p.plan);
  p.name = step_dir_name(opts.step);
  if (auto st = fs.stat(p.root); st && st->type != FileType::dir) {
    throw Error(ErrorKind::io, fmt::format("root {} exists and is not a directory", p.root),
                ENOTDIR);
  }
  detail::check_private_dirs(ctx, p.root);
  make_dirs(fs, detail::staging_dir(p.root), Durable::yes);
  make_dirs(fs, detail::trash_dir(p.root), Durable::yes);
  return p;
}

void check_save_options(const Context& ctx, const SaveOptions& opts) {
  if (opts.step > k_max_step) throw Error(ErrorKind::usage, "step must be below 2^63");
  if (opts.policy.keep_within && !parse_duration(*opts.policy.keep_within)) {
    throw Error(ErrorKind::usage,
                fmt::format("--keep-within {:?} is not a duration (30m, 12h, 7d, 2w, 1d12h)",
                            *opts.policy.keep_within));
  }
  if (opts.policy.keep_every && *opts.policy.keep_every == 0) {
    throw Error(ErrorKind::usage, "--keep-every must be at least 1");
  }
  if (opts.policy.pending_expiry && !parse_duration(*opts.policy.pending_expiry)) {
    throw Error(ErrorKind::usage,
                fmt::format("--pending-expiry {:?} is not a duration (30m, 12h, 7d, 2w, 1d12h)",
                            *opts.policy.pending_expiry));
  }
  for (const auto& [k, v] : opts.metrics) {
    if (k.empty()) throw Error(ErrorKind::usage, "a metric needs a name (KEY=VALUE)");
    if (!std::isfinite(v)) {
      ctx.warning(fmt::format("metric {} is not finite ({}); stored as null, never best", k, v));
    }
  }
}

void commit_staged(const Context& ctx, const SaveOptions& opts, const std::string& root,
                   const std::string& staging_dir, CheckpointMeta& meta,
                   const std::optional<std::string>& existing, std::optional<Policy> policy,
                   std::optional<BestMarker> best, const std::function<void()>& on_visible,
                   const std::function<void()>& before_retention, SaveReport& report) {
  FileSystem& fs = ctx.file_system();
  const std::string& name = meta.name;
  NextSeq seq = next_commit_seq(ctx, root);
  meta.commit_seq = seq.seq;
  // The commit time (ckpt-format(5)): under the lock, just before the
  // rename, so that `created` orders checkpoints as commit_seq does.
  meta.created = now_rfc3339_ms();
  write_and_sync(fs, join_path(staging_dir, k_meta_file), serialize_checkpoint(meta));
  fs.fsync_dir(staging_dir);
  store_commit_seq(ctx, root, meta.commit_seq);

  std::string target = join_path(root, name);
  bool replaced_best = false;
  std::optional<std::string> old_width;  // the replaced step under another zero-padding
  if (existing) {
    replaced_best = best && best->path == base_name(*existing);
    std::optional<BestMarker> dropped;
    if (replaced_best) {
      // best.json would disagree with the replacement's metrics until it is
      // rebuilt below; absent is the state a crash may leave instead.
      fs.unlink(join_path(root, k_best_file));
      fs.fsync_dir(root);
      dropped = best;
      best.reset();
    }
    try {
      if (*existing == target) {
        // Swap atomically; the old checkpoint lands in staging and goes with it.
        try {
          fs.rename(staging_dir, target, RenameMode::exchange);
        } catch (const Error& e) {
          if (!no_atomic_rename(e)) throw;
          // No exchange on this file system (ceph-fuse): the old one goes to
          // trash first, so for a moment the step is absent, never partial.
          std::string retired = join_path(detail::trash_dir(root),
                                          fmt::format("{}.{}", name, unique_suffix()));
          fs.rename(target, retired, RenameMode::replace);
          rename_into_place(fs, staging_dir, target);
          fs.rename(retired, staging_dir, RenameMode::replace);
        }
      } else {
        // Another zero-padding: commit the new one first, then retire the old.
        rename_into_place(fs, staging_dir, target);
        old_width = *existing;
      }
    } catch (const Error&) {
      // Nothing was replaced: put the old best.json back.
      if (dropped) write_file_atomic(fs, join_path(root, k_best_file), serialize_best(*dropped));
      throw;
    }
  } else {
    rename_into_place(fs, staging_dir, target);
  }
  // From here on the checkpoint is visible: a failure must say so.
  on_visible();

  report.name = name;
  report.path = target;
  report.step = opts.step;
  report.commit_seq = meta.commit_seq;
  report.files = meta.files.size();
  report.total_size = meta.total_size;

  try {
    fs.fsync_dir(root);
    // `last` moves to the new checkpoint before the old one goes, so it never dangles.
    write_file_atomic(fs, join_path(root, k_last_file), serialize_last(name));
    if (old_width) {
      std::string retired = join_path(
          detail::trash_dir(root), fmt::format("{}.{}", base_name(*old_width), unique_suffix()));
      fs.rename(*old_width, retired, RenameMode::noreplace);
      fs.fsync_dir(root);
      remove_tree(fs, retired);
    }

    detail::BestRule rule = best_rule(opts, policy, best);
    if (rule.key) {
      report.best_key = rule.key;
      report.best_value = meta.metric(*rule.key);
      bool key_changed = best && (best->key != *rule.key || best->mode != rule.mode);
      std::optional<BestMarker> next;
      if (!best || key_changed || replaced_best || seq.markers_stale) {
        auto listing = list_checkpoints(ctx, root).value();
        next = detail::compute_best(listing.checkpoints, *rule.key, rule.mode);
      } else if (report.best_value && improves(rule.mode, *report.best_value, best->value)) {
        next = BestMarker{*rule.key, rule.mode, *report.best_value, opts.step, name,
                          now_rfc3339()};
      }
      if (next && (!best || serialize_best(*next) != serialize_best(*best))) {
        write_file_atomic(fs, join_path(root, k_best_file), serialize_best(*next));
        report.best_updated = next->path == name;
        best = next;
      }
    }
    report.best = best;

    Policy merged = merged_policy(policy, opts.policy);
    if (policy ? !(merged == *policy) : !(merged == Policy{})) {
      write_file_atomic(fs, join_path(root, k_policy_file), serialize_policy(merged));
    }
    policy = merged;
  } catch (const Error& e) {
    throw Error(e.kind(),
                fmt::format("{} is committed, but updating the markers failed: {}; "
                            "`ckpt verify --repair` brings them up to date",
                            name, e.message()),
                e.sys_errno());
  }
  before_retention();
  try {
    if (policy->has_retention_rule()) {
      report.pruned = detail::prune_locked(ctx, root, *policy, false).removed;
    } else {
      detail::clean_private(ctx, root, false, detail::RootTemps::no);
    }
  } catch (const Error& e) {
    throw Error(e.kind(),
                fmt::format("{} is committed, but retention failed: {}", name, e.message()),
                e.sys_errno());
  }
}

}  // namespace

namespace detail::saving {

SaveReport save_one(const Context& ctx, const SaveOptions& opts) {
  FileSystem& fs = ctx.file_system();
  check_save_options(ctx, opts);
  if (detail::is_store_root(opts.root)) return detail::save_to_store(ctx, opts);
  if (opts.shard && opts.shard->count > 1) return detail::save_shard(ctx, opts);
  Prepared prepared = prepare_save(ctx, opts);
  const std::string& root = prepared.root;
  const Plan& plan = prepared.plan;
  const std::vector<std::string>& weights = prepared.weights;
  const std::string& name = prepared.name;

  auto policy = detail::read_policy(ctx, root);
  auto best = read_best_tolerant(ctx, root);
  check_best_conflict(opts, best);
  detail::refuse_if_pending(ctx, root, opts.step);
  if (auto st = fs.lstat(join_path(root, name)); st && st->type != FileType::dir) {
    throw Error(ErrorKind::conflict,
                fmt::format("{} exists and is not a checkpoint directory; move it away first",
                            join_path(root, name)));
  }
  check_keep_best_key(opts, policy, best);
  if (auto existing = opts.force ? std::nullopt : detail::find_step_dir(ctx, root, opts.step)) {
    CheckpointMeta committed = read_committed(ctx, opts, *existing);
    // Sizes first: a different save is refused without reading its files.
    std::vector<FileEntry> sized;
    for (const auto& f : plan.files) sized.push_back(FileEntry{f.dest, f.size, std::string(), std::nullopt});
    for (auto& e : sized) {
      auto c = std::find_if(committed.files.begin(), committed.files.end(),
                            [&](const FileEntry& x) { return x.path == e.path; });
      if (c != committed.files.end()) e.sha256 = c->sha256;
    }
    if (auto why = content_difference(committed, sized)) {
      throw step_exists(opts, base_name(*existing), *why);
    }
    std::vector<FileEntry> hashed = hash_sources(ctx, plan);
    check_expected(opts, hashed);
    if (auto why = content_difference(committed, hashed)) {
      throw step_exists(opts, base_name(*existing), *why);
    }
    SaveReport report;
    FileLock lock = lock_for_commit(ctx, opts, root, policy, best);
    detail::refuse_if_pending(ctx, root, opts.step);
    auto again = detail::find_step_dir(ctx, root, opts.step);
    if (!again) {
      throw Error(ErrorKind::conflict,
                  fmt::format("step {} was removed while it was being saved again; retry",
                              opts.step));
    }
    committed = detail::read_meta(ctx, *again);
    if (auto why = content_difference(committed, hashed)) {
      throw step_exists(opts, base_name(*again), *why);
    }
    complete_existing(ctx, opts, *again, committed, policy, best, report);
    finish_move_all(ctx, opts, plan);
    return report;
  }
  std::string checksum = checksum_of(opts, policy);
  Hash hash = checksum == "sha256" ? Hash::yes : Hash::no;
  CheckpointMeta meta = new_meta(opts, name, weights, checksum);

  // --dedup (given, or recorded in policy.json): what the newest checkpoint already holds.
  bool dedup = merged_policy(policy, opts.policy).dedup.value_or(false) &&
               opts.transfer != Transfer::link;
  std::string shared_with;
  std::map<std::string, SharedFile> shared;
  if (dedup && hash == Hash::yes) shared = find_shared(ctx, plan, root, shared_with);

  Staging staging(ctx, root, name);
  std::uint64_t total = 0;
  for (const auto& f : plan.files) total += f.size;
  Stager stager(ctx, opts, staging.dir(), total, hash);
  if (opts.transfer == Transfer::move) {
    auto moves = plan_moves(fs, plan, staging.dir());
    // A source shared with the newest checkpoint stays where it is, and goes after the commit.
    std::erase_if(moves, [&](const MovedFile& m) { return shared.count(m.dest) > 0; });
    staging.write_journal(moves);
    stager.set_moves(moves);
  }
  stager.set_dedup(std::move(shared), dedup);
  // The directories first, in order; then the files, the biggest first, on every core.
  for (const auto& f : plan.files) stager.make_parent(f.dest);
  meta.files.resize(plan.files.size());
  auto order = detail::biggest_first(plan.files);
  unsigned workers = worker_count(ctx.threads);
  for_each_parallel(order.size(), workers, [&](std::size_t k) {
    meta.files[order[k]] =
        stager.stage(plan.files[order[k]], overlap_for(k, order.size(), workers));
  });
  stager.sync_small();
  stager.sync_subdirs();
  for (const auto& e : meta.files) meta.total_size += e.size;
  check_expected(opts, meta.files);
  if (hash == Hash::yes) {
    write_and_sync(fs, join_path(staging.dir(), k_sums_file), serialize_sums(meta.files));
  }

  SaveReport report;
  {
    FileLock lock = lock_for_commit(ctx, opts, root, policy, best);
    detail::refuse_if_pending(ctx, root, opts.step);
    auto existing = detail::find_step_dir(ctx, root, opts.step);
    if (existing && !opts.force) {
      // Committed by another writer while we copied: the same files are a success.
      CheckpointMeta committed = read_committed(ctx, opts, *existing);
      if (auto why = content_difference(committed, meta.files)) {
        throw step_exists(opts, base_name(*existing), *why);
      }
      staging.keep_moved();  // the same content is committed: nothing to put back
      complete_existing(ctx, opts, *existing, committed, policy, best, report);
      if (opts.transfer == Transfer::move) finish_move(ctx, plan, stager.copied_sources());
      return report;
    }
    commit_staged(ctx, opts, root, staging.dir(), meta, existing, policy, best,
                  [&] { staging.keep_moved(); },
                  [&] {
                    if (opts.transfer == Transfer::move) {
                      finish_move(ctx, plan, stager.copied_sources());
                    }
                  },
                  report);
    report.shared_files = stager.shared_files();
    report.shared_bytes = stager.shared_bytes();
    if (report.shared_files > 0) report.shared_with = shared_with;
  }
  return report;
}

}  // namespace detail::saving

Result<SaveReport> save(const Context& ctx, const SaveOptions& opts) {
  using namespace detail::saving;
  return capture([&]() -> SaveReport {
    SaveReport report = save_one(ctx, opts);
    report.metrics = recorded_metrics(opts.metrics);
    // The committing save took best.json's state under the lock; a shard that
    // did not complete its set, or a step already committed, reads it now.
    if (!report.committed && !detail::is_store_root(opts.root)) {
      report.best = read_best_tolerant(ctx, parent_path(report.path));
    }
    if (opts.shard && !report.shards) {
      // --shard 0/1: a plain save, reported as a set of one.
      report.shards = ShardStatus{opts.shard->group, 1, {0}, {}};
    }
    return report;
  });
}

}  // namespace ckpt
