// SPDX-License-Identifier: Apache-2.0
// Sharded saves (SPEC §10): many writers, one checkpoint, no barrier.
//
// Layout, all under the root lock once written:
//
//   .ckpt/pending/step-NNNNNNNNN/      one pending step
//     set.json                         its attempt group, shard count, retired groups
//     shard-IIIII.json                 one recorded shard: its files, metrics, policy
//     IIIII.SUFFIX/                    that shard's files, at their stored paths
//     merge-ID/                        the checkpoint being assembled by the committer
//                                      (ID: the set's, from set.json)
//
// A writer copies, hashes and fsyncs its files in its own staging directory
// (.ckpt/staging, outside the lock, in parallel with every other writer).
// Under the lock it writes its record, then renames its staging directory to
// the name the record gives: a record whose directory is missing was
// interrupted in between and counts as absent, so a shard is recorded
// exactly when both are there. The writer whose record completes the set
// moves every shard's files into merge/ (a move that a rerun redoes from
// wherever each file is), writes the merged _checkpoint.json and SHA256SUMS
// and commits merge/ as a plain save commits its staging directory.
#include <fcntl.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <set>

#include <fmt/format.h>

#include "ckpt/atomic_file.hpp"
#include "ckpt/clock.hpp"
#include "ckpt/parallel.hpp"
#include "ckpt/paths.hpp"
#include "ckpt/repository.hpp"
#include "internal.hpp"
#include "save_parts.hpp"
#include "store/store.hpp"

namespace ckpt {

std::optional<std::string> process_env(const char* name) {
  const char* v = std::getenv(name);
  if (!v) return std::nullopt;
  return std::string(v);
}

namespace {

std::optional<std::uint64_t> parse_whole(const std::string& s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  std::uint64_t n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return n;
}

ShardSpec checked_shard(const std::string& what, const std::string& index_text,
                        const std::string& count_text) {
  auto index = parse_whole(index_text);
  auto count = parse_whole(count_text);
  if (!index || !count) {
    throw Error(ErrorKind::usage,
                fmt::format("{}: want two whole numbers I/N, shard I of N (0 <= I < N)", what));
  }
  if (*count == 0 || *count > k_max_shards) {
    throw Error(ErrorKind::usage,
                fmt::format("{}: N must be from 1 to {}", what, k_max_shards));
  }
  if (*index >= *count) {
    throw Error(ErrorKind::usage,
                fmt::format("{}: shard {} is out of range; shards of {} are numbered 0 to {}",
                            what, *index, *count, *count - 1));
  }
  ShardSpec s;
  s.index = *index;
  s.count = *count;
  return s;
}

std::string default_group(const EnvLookup& env) {
  auto set = [&](const char* name) -> std::optional<std::string> {
    auto v = env(name);
    if (v && !v->empty()) return v;
    return std::nullopt;
  };
  if (auto run = set("TORCHELASTIC_RUN_ID")) {
    return fmt::format("{}:{}", *run, set("TORCHELASTIC_RESTART_COUNT").value_or("0"));
  }
  if (auto job = set("SLURM_JOB_ID")) {
    return fmt::format("{}:{}", *job, set("SLURM_RESTART_COUNT").value_or("0"));
  }
  return "default";
}

}  // namespace

Result<ShardSpec> parse_shard(const std::string& text, const std::optional<std::string>& group,
                              const EnvLookup& env) {
  return capture([&]() -> ShardSpec {
    ShardSpec s;
    if (text == "env") {
      auto rank = env("RANK");
      auto world = env("WORLD_SIZE");
      const char* from = "RANK/WORLD_SIZE";
      if (!rank && !world) {
        rank = env("SLURM_PROCID");
        world = env("SLURM_NTASKS");
        from = "SLURM_PROCID/SLURM_NTASKS";
      }
      if (!rank || !world) {
        throw Error(ErrorKind::usage,
                    rank || world
                        ? fmt::format("--shard env: {} is set but not both", from)
                        : std::string("--shard env: neither RANK/WORLD_SIZE (torchrun) nor "
                                      "SLURM_PROCID/SLURM_NTASKS (srun) is set; give --shard "
                                      "I/N"));
      }
      s = checked_shard(fmt::format("--shard env ({}={}/{})", from, *rank, *world), *rank, *world);
    } else {
      auto slash = text.find('/');
      if (slash == std::string::npos) {
        throw Error(ErrorKind::usage,
                    fmt::format("--shard {:?}: want I/N (shard I of N, 0 <= I < N) or env", text));
      }
      s = checked_shard(fmt::format("--shard {:?}", text), text.substr(0, slash),
                        text.substr(slash + 1));
    }
    s.group = group ? *group : default_group(env);
    if (auto why = group_problem(s.group)) {
      throw Error(ErrorKind::usage, fmt::format("--group {:?}: {}", s.group, *why));
    }
    return s;
  });
}

namespace detail {

std::string pending_dir(const std::string& root) { return join_path(private_dir(root), "pending"); }

namespace {

constexpr const char* k_set_file = "set.json";
// The directory the committer assembles the checkpoint in; named after the
// set, so that nothing of a retired set's merge is ever taken into another.
std::string merge_name(const ShardSet& set) { return "merge-" + set.id; }

std::string record_name(std::uint64_t index) { return fmt::format("shard-{:05}.json", index); }

std::optional<std::uint64_t> record_index(const std::string& name) {
  if (name.size() < 11 || name.rfind("shard-", 0) != 0 ||
      name.compare(name.size() - 5, 5, ".json") != 0) {
    return std::nullopt;
  }
  return parse_whole(name.substr(6, name.size() - 11));
}

// One pending step as found on disk.
struct PendingState {
  std::string dir;
  std::optional<ShardSet> set;
  std::map<std::uint64_t, ShardRecord> records;  // valid: this group, this N, data present
  std::vector<std::string> garbage;              // entries of no use (names in dir)
  std::int64_t updated_ms = 0;
};

template <typename T>
std::optional<T> read_json_file(FileSystem& fs, const std::string& path,
                                T (*parse)(std::string_view)) {
  try {
    return parse(read_file(fs, path, k_max_meta_bytes));
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::io && e.sys_errno() != ENOENT) throw;
    return std::nullopt;  // absent, or torn by a crash before the rename (never: atomic), or bad
  }
}

PendingState read_state(FileSystem& fs, const std::string& dir) {
  PendingState st;
  st.dir = dir;
  st.set = read_json_file<ShardSet>(fs, join_path(dir, k_set_file), parse_shard_set);
  if (st.set) st.updated_ms = parse_rfc3339_ms(st.set->created).value_or(0);
  std::vector<std::pair<std::string, FileType>> entries;
  try {
    entries = fs.list_dir_types(dir);
  } catch (const Error& e) {
    if (e.sys_errno() != ENOENT) throw;
    return st;
  }
  std::set<std::string> names;
  for (const auto& [n, t] : entries) names.insert(n);
  std::set<std::string> used = {k_set_file};
  if (st.set) used.insert(merge_name(*st.set));
  for (const auto& [n, t] : entries) {
    auto index = record_index(n);
    if (!index) continue;
    auto r = read_json_file<ShardRecord>(fs, join_path(dir, n), parse_shard_record);
    if (!r || !st.set || r->group != st.set->group || r->count != st.set->count ||
        r->index != *index || r->step != st.set->step || !names.count(r->dir)) {
      continue;  // another group's, or its data never arrived: garbage
    }
    used.insert(n);
    used.insert(r->dir);
    st.updated_ms = std::max(st.updated_ms, parse_rfc3339_ms(r->updated).value_or(0));
    st.records.emplace(*index, std::move(*r));
  }
  for (const auto& [n, t] : entries) {
    if (!used.count(n)) st.garbage.push_back(n);
  }
  return st;
}

ShardStatus status_of(const PendingState& st) {
  ShardStatus s;
  if (!st.set) return s;
  s.group = st.set->group;
  s.count = st.set->count;
  for (std::uint64_t i = 0; i < s.count; ++i) {
    (st.records.count(i) ? s.present : s.missing).push_back(i);
  }
  return s;
}

std::string format_ms(std::int64_t ms) {
  if (ms <= 0) return std::string();
  return format_rfc3339_ms(ms);
}

PendingStep pending_of(const PendingState& st) {
  PendingStep p;
  p.step = st.set->step;
  p.name = step_dir_name(p.step);
  p.shards = status_of(st);
  p.force = st.set->force;
  p.updated_ms = st.updated_ms;
  p.updated = format_ms(st.updated_ms);
  return p;
}

// The committed checkpoint of the step, when it was committed from this
// very set (its committer was stopped before it removed the pending step).
bool committed_from(const Context& ctx, const std::string& root, const PendingState& st) {
  if (!st.set) return false;
  auto dir = find_step_dir(ctx, root, st.set->step);
  if (!dir) return false;
  try {
    CheckpointMeta m = read_meta(ctx, *dir);
    return m.shard_group && *m.shard_group == st.set->group && m.shards &&
           *m.shards == st.set->count &&
           !ctx.file_system().lstat(join_path(st.dir, merge_name(*st.set))) &&
           !st.set->force;
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::io) throw;
    return false;
  }
}

// Unlists a pending step (one rename into trash), then deletes it.
void remove_pending(FileSystem& fs, const std::string& root, const std::string& dir) {
  if (!fs.lstat(dir)) return;  // removed already (retention after the commit does)
  make_dirs(fs, trash_dir(root), Durable::yes);
  std::string to = join_path(trash_dir(root), fmt::format("pending-{}.{}", base_name(dir),
                                                          unique_suffix()));
  rename_into_place(fs, dir, to);
  fs.fsync_dir(pending_dir(root));
  remove_tree(fs, to);
}

void remove_garbage(FileSystem& fs, PendingState& st) {
  for (const auto& n : st.garbage) remove_tree(fs, join_path(st.dir, n));
  st.garbage.clear();
}

}  // namespace

void merge_records(const std::map<std::uint64_t, ShardRecord>& records, CheckpointMeta& meta,
                   SaveOptions& merged) {
  std::set<std::string> all_weights;
  for (const auto& [i, r] : records) {
    for (const auto& [k, v] : r.metrics) {
      meta.metrics[k] = v;
      merged.metrics[k] = v ? *v : std::nan("");
    }
    for (const auto& [k, v] : r.meta) meta.meta[k] = v;
    all_weights.insert(r.weights.begin(), r.weights.end());
    merged.policy = saving::merged_policy(merged.policy, r.policy);
  }
  merged.meta = meta.meta;
  meta.weights.assign(all_weights.begin(), all_weights.end());
}

std::string shard_label(const ShardSpec& s) { return fmt::format("{}/{}", s.index, s.count); }

Error superseded(const ShardSpec& s, std::uint64_t step, const std::string& by) {
  return Error(ErrorKind::conflict,
               fmt::format("shard {} of {} (group {:?}) is superseded: group {:?} took over the "
                           "step; a shard of a retired attempt is never mixed into it",
                           shard_label(s), step_dir_name(step), s.group, by))
      .with_reason(k_reason_superseded);
}

Error mismatch(std::string message) {
  return Error(ErrorKind::conflict, std::move(message)).with_reason(k_reason_shard_mismatch);
}

namespace {
std::string value_text(const std::optional<double>& v) {
  return v ? fmt::format("{}", *v) : std::string("null");
}
}  // namespace

// The recorded shards must agree with the new one: disjoint stored paths,
// one value per metric, meta key and policy option, one checksum.
void check_against(const ShardRecord& mine, const std::map<std::uint64_t, ShardRecord>& records) {
  for (const auto& [i, r] : records) {
    if (i == mine.index) continue;
    std::size_t a = 0, b = 0;
    while (a < mine.files.size() && b < r.files.size()) {
      int c = mine.files[a].path.compare(r.files[b].path);
      if (c == 0) {
        throw mismatch(fmt::format("shard {} would store {:?}, which shard {} already stores; "
                                   "the shards of one step must store disjoint paths",
                                   mine.index, mine.files[a].path, i));
      }
      if (c < 0) ++a; else ++b;
    }
    // A file of one shard where another stores a directory ("d/sub" and "d/sub/x").
    auto names_dir_of = [](const std::vector<FileEntry>& files, const std::string& path) {
      std::string prefix = path + "/";
      auto it = std::lower_bound(files.begin(), files.end(), prefix,
                                 [](const FileEntry& f, const std::string& p) { return f.path < p; });
      return it != files.end() && it->path.compare(0, prefix.size(), prefix) == 0;
    };
    for (const auto& f : mine.files) {
      if (names_dir_of(r.files, f.path)) {
        throw mismatch(fmt::format("shard {} would store a file at {:?}, where shard {} stores a "
                                   "directory; the shards of one step must store disjoint paths",
                                   mine.index, f.path, i));
      }
    }
    for (const auto& f : r.files) {
      if (names_dir_of(mine.files, f.path)) {
        throw mismatch(fmt::format("shard {} would store a directory at {:?}, where shard {} "
                                   "stores a file; the shards of one step must store disjoint "
                                   "paths",
                                   mine.index, f.path, i));
      }
    }
    if (r.checksum != mine.checksum) {
      throw mismatch(fmt::format("shard {} uses --checksum {} but shard {} used {}", mine.index,
                                 mine.checksum, i, r.checksum));
    }
    for (const auto& [k, v] : mine.metrics) {
      auto it = r.metrics.find(k);
      if (it != r.metrics.end() && it->second != v) {
        throw mismatch(fmt::format("--metric {}: shard {} says {}, shard {} said {}", k,
                                   mine.index, value_text(v), i, value_text(it->second)));
      }
    }
    for (const auto& [k, v] : mine.meta) {
      auto it = r.meta.find(k);
      if (it != r.meta.end() && it->second != v) {
        throw mismatch(fmt::format("--meta {}: shard {} says {:?}, shard {} said {:?}", k,
                                   mine.index, v, i, it->second));
      }
    }
    const Policy& p = mine.policy;
    const Policy& q = r.policy;
    std::uint64_t other = i;  // a lambda may not capture a structured binding (C++17)
    auto clash = [&](const char* option, bool differ) {
      if (differ) {
        throw mismatch(fmt::format("{}: shard {} and shard {} give different values", option,
                                   mine.index, other));
      }
    };
    clash("--best-key", p.best_key && q.best_key && *p.best_key != *q.best_key);
    clash("--mode", p.best_mode && q.best_mode && *p.best_mode != *q.best_mode);
    clash("--keep-last", p.keep_last && q.keep_last && *p.keep_last != *q.keep_last);
    clash("--keep-best", p.keep_best && q.keep_best && *p.keep_best != *q.keep_best);
    clash("--keep-every", p.keep_every && q.keep_every && *p.keep_every != *q.keep_every);
    clash("--keep-within", p.keep_within && q.keep_within && *p.keep_within != *q.keep_within);
    clash("--pending-expiry",
          p.pending_expiry && q.pending_expiry && *p.pending_expiry != *q.pending_expiry);
  }
}

// The committed step against this shard, with no --force: the same shard
// of the same attempt with the same files is a success that changes
// nothing; anything else is refused.
bool same_as_committed(const CheckpointMeta& committed, const ShardSpec& s,
                       const std::vector<FileEntry>* files, std::uint64_t step) {
  auto exists = [&](const std::string& why) {
    return Error(ErrorKind::conflict,
                 fmt::format("{} is already committed ({}); use --force to replace it with a new, "
                             "complete set of shards",
                             committed.name, why))
        .with_reason(k_reason_step_exists);
  };
  if (!committed.shards) throw exists("by a save that was not sharded");
  if (committed.shard_group && *committed.shard_group != s.group) {
    const auto& retired = committed.shard_retired;
    if (std::find(retired.begin(), retired.end(), s.group) != retired.end()) {
      throw superseded(s, step, *committed.shard_group);
    }
    throw exists(fmt::format("by the shards of group {:?}", *committed.shard_group));
  }
  if (*committed.shards != s.count) {
    throw exists(fmt::format("from {} shards, not {}", *committed.shards, s.count));
  }
  if (!files) return false;
  std::vector<FileEntry> theirs;
  for (const auto& f : committed.files) {
    if (f.shard && *f.shard == s.index) theirs.push_back(f);
  }
  // Path, size and, where the checkpoint has one (not under --checksum
  // none), the SHA-256.
  bool same = theirs.size() == files->size();
  for (std::size_t i = 0; same && i < theirs.size(); ++i) {
    same = theirs[i].path == (*files)[i].path && theirs[i].size == (*files)[i].size &&
           (!theirs[i].sha256 || theirs[i].sha256 == (*files)[i].sha256);
  }
  if (!same) throw exists(fmt::format("shard {} stored other files", s.index));
  return true;
}

namespace {

// Moves every recorded shard's files into merge/, from wherever a stopped
// committer left each one; returns the merged file list (sorted by path).
std::vector<FileEntry> assemble(const Context& ctx, const PendingState& st,
                                const std::string& merge) {
  FileSystem& fs = ctx.file_system();
  if (!fs.lstat(merge)) fs.mkdir(merge, 0755);
  std::vector<FileEntry> files;
  std::set<std::string> made;
  std::vector<std::string> dirs = {merge};
  for (const auto& [i, r] : st.records) {
    for (const auto& f : r.files) {
      files.push_back(f);
      std::size_t pos = 0;
      while ((pos = f.path.find('/', pos)) != std::string::npos) {
        std::string rel = f.path.substr(0, pos);
        if (made.insert(rel).second) {
          std::string p = join_path(merge, rel);
          if (auto s = fs.lstat(p); !s) {
            fs.mkdir(p, 0755);
          } else if (s->type != FileType::dir) {
            throw Error(ErrorKind::integrity, fmt::format("{} is not a directory", p));
          }
          dirs.push_back(p);
        }
        ++pos;
      }
    }
  }
  std::vector<std::pair<const ShardRecord*, const FileEntry*>> moves;
  for (const auto& [i, r] : st.records) {
    for (const auto& f : r.files) moves.emplace_back(&r, &f);
  }
  for_each_parallel(moves.size(), worker_count(ctx.threads), [&](std::size_t k) {
    const auto& [r, f] = moves[k];
    std::string from = join_path(join_path(st.dir, r->dir), f->path);
    std::string to = join_path(merge, f->path);
    auto src = fs.lstat(from);
    if (src && src->type == FileType::file) {
      fs.rename(from, to, RenameMode::replace);
      return;
    }
    auto dst = fs.lstat(to);
    if (dst && dst->type == FileType::file && dst->size == f->size) return;  // moved before
    throw Error(ErrorKind::integrity,
                fmt::format("{}: shard {}'s {} is missing from the pending step; run that shard "
                            "again (or `ckpt abort {}`)",
                            base_name(st.dir), r->index, f->path, st.set->step));
  });
  std::sort(files.begin(), files.end(),
            [](const FileEntry& a, const FileEntry& b) { return a.path < b.path; });
  // The entries of every directory below merge/; merge/ itself gets
  // _checkpoint.json next and is fsynced then.
  for_each_parallel(dirs.size() - 1, ctx.threads ? ctx.threads : 32,
                    [&](std::size_t k) { fs.fsync_dir(dirs[k + 1]); });
  return files;
}

}  // namespace

std::optional<PendingStep> pending_step(const Context& ctx, const std::string& root,
                                        std::uint64_t step) {
  FileSystem& fs = ctx.file_system();
  std::string dir = join_path(pending_dir(root), step_dir_name(step));
  if (!fs.lstat(dir)) return std::nullopt;
  PendingState st = read_state(fs, dir);
  if (!st.set || st.set->step != step || committed_from(ctx, root, st)) return std::nullopt;
  return pending_of(st);
}

void refuse_if_pending(const Context& ctx, const std::string& root, std::uint64_t step) {
  if (auto p = pending_step(ctx, root, step)) {
    throw Error(ErrorKind::conflict,
                fmt::format("{} is pending as a sharded save ({} of {} shards of group {:?} in); "
                            "save it with --shard, or remove it first with `ckpt abort {}`",
                            p->name, p->shards.present.size(), p->shards.count, p->shards.group,
                            step))
        .with_reason(k_reason_shard_mismatch);
  }
}

std::vector<PendingStep> read_pending(const Context& ctx, const std::string& root) {
  FileSystem& fs = ctx.file_system();
  std::vector<PendingStep> out;
  std::string base = pending_dir(root);
  if (auto st = fs.lstat(base); !st || st->type != FileType::dir) return out;
  std::vector<std::string> names;
  try {
    names = fs.list_dir(base);
  } catch (const Error& e) {
    if (e.sys_errno() != ENOENT) throw;
    return out;
  }
  for (const auto& n : names) {
    auto step = parse_step_dir_name(n);
    if (!step) continue;
    PendingState st = read_state(fs, join_path(base, n));
    if (!st.set || st.set->step != *step || committed_from(ctx, root, st)) continue;
    out.push_back(pending_of(st));
  }
  std::sort(out.begin(), out.end(),
            [](const PendingStep& a, const PendingStep& b) { return a.step < b.step; });
  return out;
}

std::vector<PendingStep> expire_pending(const Context& ctx, const std::string& root,
                                        std::int64_t max_idle_seconds, bool dry_run) {
  FileSystem& fs = ctx.file_system();
  std::vector<PendingStep> out;
  std::string base = pending_dir(root);
  if (auto st = fs.lstat(base); !st || st->type != FileType::dir) return out;
  std::int64_t now = now_ms();
  auto names = fs.list_dir(base);
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    std::string dir = join_path(base, n);
    auto step = parse_step_dir_name(n);
    PendingState st = read_state(fs, dir);
    if (!step || !st.set || st.set->step != *step || committed_from(ctx, root, st)) {
      // Not a pending step (a leftover of a commit or of a crash before its
      // set.json): nothing recorded in it counts.
      if (!dry_run) remove_pending(fs, root, dir);
      continue;
    }
    if (now - st.updated_ms <= max_idle_seconds * 1000) {
      if (!dry_run) remove_garbage(fs, st);
      continue;
    }
    out.push_back(pending_of(st));
    if (!dry_run) remove_pending(fs, root, dir);
  }
  return out;
}

SaveReport save_shard(const Context& ctx, const SaveOptions& opts) {
  using namespace saving;
  FileSystem& fs = ctx.file_system();
  const ShardSpec& spec = *opts.shard;
  Prepared prepared = prepare_save(ctx, opts);
  const std::string& root = prepared.root;
  const Plan& plan = prepared.plan;
  const std::string& name = prepared.name;
  make_dirs(fs, pending_dir(root), Durable::yes);

  auto policy = read_policy(ctx, root);
  auto best = read_best_tolerant(ctx, root);
  check_best_conflict(opts, best);
  if (opts.policy.dedup && *opts.policy.dedup) {
    ctx.warning("--dedup is not used by sharded saves; every shard writes its files");
  }
  std::string checksum = opts.policy.checksum.value_or(
      policy && policy->checksum ? *policy->checksum : std::string("sha256"));
  Hash hash = checksum == "sha256" ? Hash::yes : Hash::no;
  std::string pdir = join_path(pending_dir(root), name);

  // Refusals that need no copy first (made again under the lock). A shard
  // joining a pending --force set of its group replaces the step with it.
  auto pending_set = read_json_file<ShardSet>(fs, join_path(pdir, k_set_file), parse_shard_set);
  bool joins_force = pending_set && pending_set->force && pending_set->group == spec.group;
  if (!opts.force && !joins_force) {
    if (auto existing = find_step_dir(ctx, root, opts.step)) {
      CheckpointMeta committed = read_committed(ctx, opts, *existing);
      same_as_committed(committed, spec, nullptr, opts.step);
    }
  }
  if (const auto& set = pending_set) {
    if (std::find(set->retired.begin(), set->retired.end(), spec.group) != set->retired.end()) {
      throw superseded(spec, opts.step, set->group);
    }
    if (set->group == spec.group && set->count != spec.count) {
      throw mismatch(fmt::format("shard {}: {} is pending as {} shards in group {:?}, not {}",
                                 shard_label(spec), name, set->count, spec.group, spec.count));
    }
  }

  // The slow part, outside the lock: copy, hash and fsync this shard's files.
  Staging staging(ctx, root, fmt::format("{}.shard-{}", name, spec.index));
  std::uint64_t total = 0;
  for (const auto& f : plan.files) total += f.size;
  Stager stager(ctx, opts, staging.dir(), total, hash);
  if (opts.transfer == Transfer::move) {
    auto moves = plan_moves(fs, plan, staging.dir());
    staging.write_journal(moves);
    stager.set_moves(moves);
  }
  for (const auto& f : plan.files) stager.make_parent(f.dest);
  ShardRecord mine;
  mine.step = opts.step;
  mine.group = spec.group;
  mine.index = spec.index;
  mine.count = spec.count;
  mine.checksum = checksum;
  mine.files.resize(plan.files.size());
  auto order = biggest_first(plan.files);
  unsigned workers = worker_count(ctx.threads);
  for_each_parallel(order.size(), workers, [&](std::size_t k) {
    mine.files[order[k]] = stager.stage(plan.files[order[k]], overlap_for(k, order.size(), workers));
  });
  stager.sync_small();
  stager.sync_subdirs();
  fs.fsync_dir(staging.dir());
  std::uint64_t shard_size = 0;
  for (auto& e : mine.files) {
    e.shard = spec.index;
    shard_size += e.size;
  }
  for (const auto& [k, v] : opts.metrics) {
    mine.metrics[k] = std::isfinite(v) ? std::optional<double>(v) : std::nullopt;
  }
  mine.meta = opts.meta;
  mine.weights = prepared.weights;
  mine.policy = opts.policy;
  mine.policy.checksum.reset();
  mine.policy.dedup.reset();

  SaveReport report;
  report.name = name;
  report.path = join_path(root, name);
  report.step = opts.step;
  report.files = mine.files.size();
  report.total_size = shard_size;
  report.committed = false;

  FileLock lock = lock_root(ctx, root);
  check_interrupt();
  policy = read_policy(ctx, root);
  best = read_best_tolerant(ctx, root);
  check_best_conflict(opts, best);
  auto existing = find_step_dir(ctx, root, opts.step);
  pending_set = read_json_file<ShardSet>(fs, join_path(pdir, k_set_file), parse_shard_set);
  joins_force = pending_set && pending_set->force && pending_set->group == spec.group;
  if (existing && !opts.force && !joins_force) {
    CheckpointMeta committed = read_committed(ctx, opts, *existing);
    if (same_as_committed(committed, spec, &mine.files, opts.step)) {
      // A rerun of a shard of a step that is committed with its files.
      bool other = false;
      for (const auto& [k, v] : mine.metrics) {
        auto it = committed.metrics.find(k);
        other = other || it == committed.metrics.end() || it->second != v;
      }
      for (const auto& [k, v] : mine.meta) {
        auto it = committed.meta.find(k);
        other = other || it == committed.meta.end() || it->second != v;
      }
      if (other) {
        ctx.warning(fmt::format("{} is already committed with the files of shard {}; its "
                                "recorded metrics and meta are kept",
                                name, spec.index));
      }
      staging.keep_moved();
      // Finish what a committer stopped after its commit left undone: the
      // pending leftover, the markers, policy.json and retention.
      {
        PendingState left = read_state(fs, pdir);
        if (left.set && committed_from(ctx, root, left)) remove_pending(fs, root, pdir);
      }
      SaveOptions as_committed = opts;
      as_committed.metrics.clear();
      for (const auto& [k, v] : committed.metrics) as_committed.metrics[k] = v ? *v : std::nan("");
      as_committed.meta = committed.meta;
      complete_existing(ctx, as_committed, *existing, committed, policy, best, report);
      if (opts.transfer == Transfer::move) finish_move(ctx, plan, stager.copied_sources());
      report.committed = false;
      report.existing = true;
      report.commit_seq = committed.commit_seq;
      report.shards = ShardStatus{spec.group, spec.count, {}, {}};
      for (std::uint64_t i = 0; i < spec.count; ++i) report.shards->present.push_back(i);
      return report;
    }
  }

  make_dirs(fs, pdir, Durable::yes);
  PendingState st = read_state(fs, pdir);
  if (st.set && committed_from(ctx, root, st)) {
    // The leftover of a commit that was stopped before it removed it.
    remove_pending(fs, root, pdir);
    make_dirs(fs, pdir, Durable::yes);
    st = read_state(fs, pdir);
  }
  ShardSet set;
  bool write_set = false;
  if (!st.set) {
    set = ShardSet{opts.step, spec.group, spec.count, opts.force, {}, now_rfc3339_ms(),
                   unique_suffix()};
    write_set = true;
  } else if (st.set->group != spec.group) {
    if (std::find(st.set->retired.begin(), st.set->retired.end(), spec.group) !=
        st.set->retired.end()) {
      throw superseded(spec, opts.step, st.set->group);
    }
    // A new attempt: the old group's shards will never be mixed with it.
    set = ShardSet{opts.step, spec.group, spec.count, opts.force, st.set->retired,
                   now_rfc3339_ms(), unique_suffix()};
    set.retired.push_back(st.set->group);
    if (!st.records.empty() || st.set->count != 0) {
      ctx.warning(fmt::format("{}: group {:?} retires the pending shards of group {:?} ({} of "
                              "{} were in)",
                              name, spec.group, st.set->group, st.records.size(),
                              st.set->count));
    }
    write_set = true;
  } else {
    set = *st.set;
    if (set.count != spec.count) {
      throw mismatch(fmt::format("shard {}: {} is pending as {} shards in group {:?}, not {}",
                                 shard_label(spec), name, set.count, spec.group, spec.count));
    }
    if (opts.force && !set.force) {
      set.force = true;
      write_set = true;
    }
  }
  if (write_set) {
    // Another group's records stop counting the moment set.json names this one.
    write_file_atomic(fs, join_path(pdir, k_set_file), serialize_shard_set(set));
    if (st.set && st.set->id != set.id) {
      for (const auto& [i, r] : st.records) {
        st.garbage.push_back(record_name(i));
        st.garbage.push_back(r.dir);
      }
      st.records.clear();
      if (fs.lstat(join_path(pdir, merge_name(*st.set)))) st.garbage.push_back(merge_name(*st.set));
    }
    st.set = set;
  }
  check_against(mine, st.records);

  // Record: the record first, then the data under the name it gives.
  mine.dir = fmt::format("{:05}.{}", spec.index, unique_suffix());
  mine.updated = now_rfc3339_ms();
  std::optional<ShardRecord> replaced;
  if (auto it = st.records.find(spec.index); it != st.records.end()) replaced = it->second;
  write_file_atomic(fs, join_path(pdir, record_name(spec.index)), serialize_shard_record(mine));
  rename_into_place(fs, staging.dir(), join_path(pdir, mine.dir));
  staging.adopted();
  fs.fsync_dir(pdir);
  fs.fsync_dir(staging_dir(root));
  if (replaced) {
    // A retried writer: the earlier attempt's files go, from merge/ too.
    std::string merge = join_path(pdir, merge_name(*st.set));
    if (fs.lstat(merge)) {
      for (const auto& f : replaced->files) {
        if (auto s = fs.lstat(join_path(merge, f.path)); s && s->type == FileType::file) {
          fs.unlink(join_path(merge, f.path));
        }
      }
    }
  }
  if (opts.transfer == Transfer::move) finish_move(ctx, plan, stager.copied_sources());
  // The state as it is now, without reading every record again (a step of
  // 1,024 shards would read a million records in all).
  std::string mine_name = record_name(spec.index);
  std::erase_if(st.garbage, [&](const std::string& n) { return n == mine_name || n == mine.dir; });
  if (replaced) st.garbage.push_back(replaced->dir);
  st.records[spec.index] = mine;
  remove_garbage(fs, st);
  report.shards = status_of(st);
  if (!report.shards->missing.empty()) return report;

  // The last shard in: merge and commit, as exactly this one writer.
  SaveReport full;
  bool visible = false;
  try {
    SaveOptions merged;
    merged.root = root;
    merged.step = opts.step;
    merged.force = st.set->force;
    merged.transfer = Transfer::copy;
    CheckpointMeta meta;
    meta.name = name;
    meta.step = opts.step;
    meta.checksum = checksum;
    meta.tool = tool_version();
    meta.shards = spec.count;
    meta.shard_group = spec.group;
    meta.shard_retired = st.set->retired;
    merge_records(st.records, meta, merged);
    check_best_conflict(merged, best);
    check_keep_best_key(merged, policy, best);

    std::string merge = join_path(pdir, merge_name(*st.set));
    meta.files = assemble(ctx, st, merge);
    for (const auto& f : meta.files) meta.total_size += f.size;
    if (hash == Hash::yes) {
      write_and_sync(fs, join_path(merge, k_sums_file), serialize_sums(meta.files));
    }
    existing = find_step_dir(ctx, root, opts.step);
    if (existing && !merged.force) {
      throw Error(ErrorKind::conflict,
                  fmt::format("{} was committed meanwhile; the pending set stays (ckpt abort {})",
                              name, opts.step))
          .with_reason(k_reason_step_exists);
    }
    commit_staged(ctx, merged, root, merge, meta, existing, policy, best, [&] { visible = true; },
                  [] {}, full);
    full.committed = true;
    full.shards = report.shards;
  } catch (const Error& e) {
    if (visible || e.kind() == ErrorKind::interrupted) throw;
    throw Error(e.kind(),
                fmt::format("shard {} is recorded and completes {}, but the commit failed: {}; "
                            "the step stays pending: run any one shard again to commit it",
                            shard_label(spec), name, e.message()),
                e.sys_errno())
        .with_reason(e.reason());
  }
  // The step is committed; the pending directory (now without merge/) goes.
  try {
    remove_pending(fs, root, pdir);
  } catch (const Error& e) {
    ctx.warning(fmt::format("{} is committed; removing its pending directory failed ({}); the "
                            "next prune removes it",
                            name, e.message()));
  }
  return full;
}

}  // namespace detail

Result<std::vector<PendingStep>> list_pending(const Context& ctx, const std::string& root_arg) {
  return capture([&] {
    if (detail::is_store_root(root_arg)) return detail::open_store(ctx, root_arg)->pending(ctx);
    std::string root = open_root(ctx, root_arg);
    return detail::read_pending(ctx, root);
  });
}

Result<PendingStep> abort_pending(const Context& ctx, const std::string& root_arg,
                                  std::uint64_t step) {
  return capture([&]() -> PendingStep {
    if (detail::is_store_root(root_arg)) return detail::store_abort_pending(ctx, root_arg, step);
    FileSystem& fs = ctx.file_system();
    std::string root = open_root(ctx, root_arg);
    detail::check_private_dirs(ctx, root);
    FileLock lock = detail::lock_root(ctx, root);
    std::string dir = join_path(detail::pending_dir(root), step_dir_name(step));
    detail::PendingState st = detail::read_state(fs, dir);
    if (!st.set || detail::committed_from(ctx, root, st)) {
      if (fs.lstat(dir)) detail::remove_pending(fs, root, dir);
      throw Error(ErrorKind::not_found,
                  fmt::format("no pending step {} in {} (`ckpt info` lists the pending steps)",
                              step, root))
          .with_reason(k_reason_no_pending);
    }
    PendingStep p = detail::pending_of(st);
    detail::remove_pending(fs, root, dir);
    return p;
  });
}

}  // namespace ckpt
