// SPDX-License-Identifier: Apache-2.0
// Helpers shared by the repository operations; not part of the public API.
#pragma once

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "ckpt/format.hpp"
#include "ckpt/lock.hpp"
#include "ckpt/repository.hpp"

namespace ckpt::detail {

class Store;

// A name only a ckpt root holds at its top: .ckpt, last, best.json,
// policy.json or step-*.
bool is_root_entry(const std::string& name);

std::string private_dir(const std::string& root);
std::string staging_dir(const std::string& root);
std::string trash_dir(const std::string& root);
// The root lock: its name in a root (an object store's lease), its path in a directory.
std::string lock_name();
std::string lock_path(const std::string& root);
// .ckpt/pending: one directory per pending sharded step (shard.cpp).
std::string pending_dir(const std::string& root);

// The `last` marker as read: the checkpoint name it designates, and whether
// it was in a legacy form (a symlink or a path) that the next change rewrites.
struct LastRead {
  std::string name;
  bool legacy = false;
};
// nullopt when absent; throws Error(integrity) when unreadable or pointing
// outside the root.
std::optional<LastRead> read_last(const Context& ctx, const std::string& root);
std::optional<LastRead> read_last(const Context& ctx, Store& store);
std::optional<BestMarker> read_best(const Context& ctx, const std::string& root);
std::optional<BestMarker> read_best(Store& store);
// The commit_seq counter: its name in a root, and its path in a directory.
std::string commit_counter_name();
std::string commit_counter_path(const std::string& root);
// The counter's text ("41\n"); nullopt when it is no number.
std::optional<std::uint64_t> parse_commit_counter(std::string text);
// .ckpt/commit_seq: the commit_seq of the newest commit a save began (written
// before its commit rename). nullopt when absent or unreadable.
std::optional<std::uint64_t> read_commit_counter(const Context& ctx, const std::string& root);
std::optional<std::uint64_t> read_commit_counter(Store& store);
std::optional<Policy> read_policy(const Context& ctx, const std::string& root);
std::optional<Policy> read_policy(Store& store);
// A checkpoint's manifest: throws not_found (reason no_checkpoint) when its
// _checkpoint.json is absent (never committed), integrity when it does not
// parse or records another step.
CheckpointMeta read_meta(const Context& ctx, const std::string& dir);
CheckpointMeta read_meta(Store& store, const std::string& name);
// A manifest's text as the checkpoint name (its step checked against the name).
CheckpointMeta parse_meta_of(const std::string& name, const std::string& text);

// The checkpoint a ref (SPEC §1) names, without reading its metadata: its
// name in the store, or its directory in a directory root.
std::string resolve_ref_name(const Context& ctx, Store& store, const std::string& ref);
std::string resolve_ref_dir(const Context& ctx, const std::string& root, const std::string& ref);
// resolve_ref over an open store: the checkpoint, its metadata and markers.
Checkpoint resolve_checkpoint(const Context& ctx, Store& store, const std::string& ref);

// The name of a step's checkpoint, whatever its zero-padding; or its directory.
std::optional<std::string> find_step(Store& store, std::uint64_t step);
std::optional<std::string> find_step_dir(const Context& ctx, const std::string& root,
                                         std::uint64_t step);

// Refuses (unsupported) a root whose .ckpt, .ckpt/staging or .ckpt/trash is a
// symbolic link or not a directory: ckpt never writes or deletes through one.
void check_private_dirs(const Context& ctx, const std::string& root);

// list_checkpoints without the Result. write_cache: .ckpt/manifests is
// rewritten when out of date; only prune (not its dry run) asks, so that a
// command that reads the root never changes it.
Listing list_root(const Context& ctx, const std::string& root, bool write_cache);
Listing list_root(const Context& ctx, Store& store, bool write_cache);

// Renames to a name that must not exist: RENAME_NOREPLACE, or where the file
// system has none (ceph-fuse: EINVAL) a plain rename after checking. Call
// under the root lock (every writer of the names it guards takes it).
void rename_into_place(FileSystem& fs, const std::string& from, const std::string& to);
// The error of a rename flag the file system does not implement.
bool no_atomic_rename(const Error& e);

// Takes the root lock, honouring ctx.lock_timeout.
FileLock lock_root(const Context& ctx, const std::string& root);
// Who holds a lock, as a JSON object: pid, host, command line, since.
std::string lock_holder_text();

// One stored file against its manifest entry: presence (never through a
// symbolic link), type, size and, with Hash::yes, its digest. nullopt when good.
// Digests computed so far in one run, by inode: a file that several
// checkpoints share (save --dedup hard-links it) is read once. Safe to use
// from several threads.
class InodeDigests {
 public:
  std::optional<TransferResult> find(const Stat& st) const {
    std::lock_guard<std::mutex> lock(m_mutex);
    auto it = m_seen.find({st.dev, st.ino});
    if (it == m_seen.end() || it->second.first.size != st.size ||
        it->second.second != st.mtime_ns) {
      return std::nullopt;
    }
    return it->second.first;
  }
  void add(const Stat& st, const TransferResult& r) {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_seen[{st.dev, st.ino}] = {r, st.mtime_ns};
  }

 private:
  mutable std::mutex m_mutex;
  std::map<std::pair<dev_t, ino_t>, std::pair<TransferResult, std::int64_t>> m_seen;
};

// The progress of one operation (a save, a verify, a load): adds up the bytes
// every worker copies or hashes and reports them through ctx.progress as
// (done, total), one call at a time.
class Progress {
 public:
  Progress(const Context& ctx, std::uint64_t total) : m_ctx(ctx), m_total(total) {}
  // A per-transfer callback taking the bytes just done; empty when the
  // context has no progress callback.
  ProgressFn counter() {
    if (!m_ctx.progress) return {};
    return [this](std::uint64_t n) {
      std::lock_guard<std::mutex> lock(m_mutex);
      m_done += n;
      m_ctx.progress(m_done, std::max(m_total, m_done));
    };
  }

 private:
  const Context& m_ctx;
  std::uint64_t m_total;
  std::uint64_t m_done = 0;
  std::mutex m_mutex;
};

std::optional<Problem> check_stored_file(const Context& ctx, const std::string& dir,
                                         const FileEntry& f, Hash hash,
                                         Overlap overlap = Overlap::yes,
                                         InodeDigests* seen = nullptr,
                                         const ProgressFn& progress = {});

// Indexes of files (anything with a size), the biggest first, so that the
// longest work starts first when files are spread over threads.
template <typename File>
std::vector<std::size_t> biggest_first(const std::vector<File>& files) {
  std::vector<std::size_t> order(files.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return files[a].size > files[b].size; });
  return order;
}

// A copy of a Context whose callbacks take one lock, for work spread over
// threads: the caller's callbacks are never entered twice at once.
class SerialCallbacks {
 public:
  explicit SerialCallbacks(const Context& ctx) : m_ctx(ctx) {
    auto m = m_mutex;
    if (ctx.warn) {
      m_ctx.warn = [m, f = ctx.warn](const std::string& s) {
        std::lock_guard<std::mutex> lock(*m);
        f(s);
      };
    }
    if (ctx.progress) {
      m_ctx.progress = [m, f = ctx.progress](std::uint64_t done, std::uint64_t total) {
        std::lock_guard<std::mutex> lock(*m);
        f(done, total);
      };
    }
  }
  const Context& context() const { return m_ctx; }

 private:
  std::shared_ptr<std::mutex> m_mutex = std::make_shared<std::mutex>();
  Context m_ctx;
};

// The best key and mode in force: the ones given, else policy.json's (the
// recorded intent), else best.json's. A mode belongs to its key and never
// carries over to another one; the default is min.
struct BestRule {
  std::optional<std::string> key;
  Mode mode = Mode::min;
};
BestRule best_rule(const std::optional<std::string>& key, const std::optional<Mode>& mode,
                   const std::optional<Policy>& policy, const std::optional<BestMarker>& best);

// The best checkpoint by key/mode among the valid checkpoints (ties: lower commit_seq).
std::optional<BestMarker> compute_best(const std::vector<Checkpoint>& checkpoints,
                                       const std::string& key, Mode mode);
// The valid checkpoint with the highest commit_seq.
const Checkpoint* newest(const std::vector<Checkpoint>& checkpoints);

// The checkpoints `last` and `best` protect from removal (prune, rm): as the
// markers say and as the checkpoints say, so that a marker left stale by a
// crash does not expose the real newest or best.
struct MarkerProtection {
  std::vector<std::string> last;
  std::vector<std::string> best;
};
MarkerProtection marker_protection(const Listing& listing, const std::optional<std::string>& key,
                                   Mode mode);

std::string format_number(double v);

}  // namespace ckpt::detail

namespace ckpt {
struct PruneReport;
}

namespace ckpt::detail {

// save --move writes a journal beside its staging directory (STAGING.moves)
// before it renames the first source in.
std::string move_journal_path(const std::string& staging);
// Puts each journalled file still in staging (the same inode) back at its
// source path when that path is free; returns the sources put back.
std::vector<std::string> restore_moved(const Context& ctx, const std::string& staging,
                                       const std::vector<MovedFile>& files);
// For every abandoned staging directory with a move journal: puts its files
// back, then removes it. Needs only the staging locks; returns "SOURCE (put
// back)" for each file and the root-relative staging directory (dry_run:
// what it would do).
std::vector<std::string> recover_interrupted_moves(const Context& ctx, const std::string& root,
                                                   bool dry_run);

// Removes (or, dry, lists) abandoned staging directories (nobody holds their
// lock), trash leftovers and, with RootTemps::yes, the temporary files of
// marker writes a crash left in the root itself (which takes listing the
// root: prune does, save does not); returns root-relative paths. Call under
// the root lock.
enum class RootTemps { no, yes };
std::vector<std::string> clean_private(const Context& ctx, const std::string& root, bool dry_run,
                                       RootTemps root_temps = RootTemps::yes);

// How long a pending sharded step may stay idle before prune removes it:
// policy.pending_expiry, else k_default_pending_expiry; Error(usage) when
// it is not a duration.
inline constexpr const char* k_default_pending_expiry = "24h";
std::int64_t pending_expiry_seconds(const Policy& policy);

// Unlists each named checkpoint by one rename into .ckpt/trash (one already
// gone is skipped), fsyncs, then deletes them. Call under the root lock.
void discard_checkpoints(const Context& ctx, const std::string& root,
                         const std::vector<std::string>& names);

// Applies the retention rules of policy to the root; the caller holds the
// root lock unless dry_run.
PruneReport prune_locked(const Context& ctx, const std::string& root, const Policy& policy,
                         bool dry_run);
PruneReport prune_locked(const Context& ctx, Store& store, const Policy& policy, bool dry_run);

// Brings `last` and best.json up to date with checkpoints (after a crash
// between a commit and its marker update): `last` names the newest, best.json
// moves when it is dangling, unreadable or a checkpoint is strictly better.
// Call under the root lock.
void refresh_markers(const Context& ctx, const std::string& root,
                     const std::vector<Checkpoint>& checkpoints,
                     const std::optional<std::string>& key, Mode mode);
void refresh_markers(const Context& ctx, Store& store, const std::vector<Checkpoint>& checkpoints,
                     const std::optional<std::string>& key, Mode mode);

}  // namespace ckpt::detail

namespace ckpt::detail {

// save() of one shard of a sharded save (count > 1).
SaveReport save_shard(const Context& ctx, const SaveOptions& opts);
// save into an object-store root (SPEC §11; store/store_save.cpp), and one
// shard of a sharded save there (store/store_shard.cpp).
SaveReport save_to_store(const Context& ctx, const SaveOptions& opts);
SaveReport save_shard_to_store(const Context& ctx, const SaveOptions& opts);

// Shared by the sharded saves of both kinds of root (shard.cpp).
// The checkpoint the records make, but for its files: metrics, meta and
// weights into meta, and into merged the metrics, meta and policy a save
// of it applies.
void merge_records(const std::map<std::uint64_t, ShardRecord>& records, CheckpointMeta& meta,
                   SaveOptions& merged);
std::string shard_label(const ShardSpec& s);
// A late shard of a retired attempt group (exit 4).
Error superseded(const ShardSpec& s, std::uint64_t step, const std::string& by);
// Shards that disagree (exit 4).
Error mismatch(std::string message);
// The recorded shards must agree with mine: disjoint stored paths, one
// value per metric, meta key and policy option, one checksum. Throws mismatch.
void check_against(const ShardRecord& mine, const std::map<std::uint64_t, ShardRecord>& records);
// The committed step against shard s, with no --force: true when the same
// shard of the same attempt stored files (nullptr: not compared yet);
// throws the conflict (or superseded) anything else is.
bool same_as_committed(const CheckpointMeta& committed, const ShardSpec& s,
                       const std::vector<FileEntry>* files, std::uint64_t step);
// Object-store roots (store/store_shard.cpp): abort.
PendingStep store_abort_pending(const Context& ctx, const std::string& root, std::uint64_t step);

// The pending sharded step of that step, if any; refuse_if_pending throws
// the conflict a plain save of such a step is (its shards would never commit).
std::optional<PendingStep> pending_step(const Context& ctx, const std::string& root,
                                        std::uint64_t step);
void refuse_if_pending(const Context& ctx, const std::string& root, std::uint64_t step);

// The pending sharded steps, read without the lock (a snapshot; a step
// being changed meanwhile may be left out).
std::vector<PendingStep> read_pending(const Context& ctx, const std::string& root);

// Removes (dry_run: lists) the pending steps idle for longer than
// max_idle_seconds, and the leftovers of committed ones. Call under the root
// lock unless dry_run.
std::vector<PendingStep> expire_pending(const Context& ctx, const std::string& root,
                                        std::int64_t max_idle_seconds, bool dry_run);

}  // namespace ckpt::detail
