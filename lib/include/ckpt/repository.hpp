// SPDX-License-Identifier: Apache-2.0
// The operations on a root: one function a verb (save, info, verify, load).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ckpt/error.hpp"
#include "ckpt/format.hpp"
#include "ckpt/fs.hpp"
#include "ckpt/transfer.hpp"

namespace ckpt {

std::string tool_version();  // "ckpt " CKPT_VERSION: "ckpt 0.2.0"

struct Context {
  FileSystem* fs = nullptr;  // nullptr: the real file system
  double lock_timeout = 60;
  // Called with each warning line (without the "ckpt: warning: " prefix).
  std::function<void(const std::string&)> warn;
  // Called as bytes are copied or hashed by a save, verify or load: (done,
  // total), the bytes of this operation so far (only ever growing) and all
  // it will copy or hash (0 when not known; never below done). Both
  // callbacks may be called from a worker thread, never from two threads at
  // once.
  std::function<void(std::uint64_t, std::uint64_t)> progress;
  // Threads that copy, hash and fsync: 0 is one per core for copying and
  // hashing (at most k_max_workers, parallel.hpp) and more for fsyncs, which
  // wait on the disk; n caps both at n.
  unsigned threads = 0;

  FileSystem& file_system() const;
  void warning(const std::string& message) const;
};

// ---- roots and refs -------------------------------------------------------

// Checks that path is an existing ckpt root (SPEC §1): not_found when it does
// not exist, unsupported when it is a directory holding something else.
// Returns the absolute path.
std::string open_root(const Context& ctx, const std::string& path);

// A root as output shows it: a directory's absolute path, or an object
// store's s3://BUCKET/PREFIX (SPEC §11) without a trailing slash. Throws
// Error(usage) on a malformed s3:// address.
std::string canonical_root(const std::string& root);

// Where a sharded step stands: which shards of how many are recorded.
struct ShardStatus {
  std::string group;
  std::uint64_t count = 0;
  std::vector<std::uint64_t> present;
  std::vector<std::uint64_t> missing;
};

// A sharded step whose shards are not all in yet (SPEC §10).
struct PendingStep {
  std::string name;  // the checkpoint's name once committed
  std::uint64_t step = 0;
  ShardStatus shards;
  bool force = false;   // the set replaces a committed step
  std::string updated;  // RFC 3339: the newest shard activity
  std::optional<std::int64_t> updated_ms;
};
struct Checkpoint {
  std::string name;
  std::string path;  // absolute
  CheckpointMeta meta;
  std::vector<std::string> markers;  // "last", "best"
};

struct Listing {
  std::string root;
  // The checkpoint `latest` names: the newest committed (highest commit_seq).
  std::optional<std::string> last;
  // What the `last` file says; older than `last` after a save was killed
  // between its commit and its marker update.
  std::optional<std::string> last_marker;
  std::optional<BestMarker> best;
  std::optional<Policy> policy;
  std::vector<Checkpoint> checkpoints;  // by step
  std::vector<PendingStep> pending;     // sharded steps not yet committed, by step
  // step-* directories that are not valid checkpoints, with the reason.
  std::vector<std::pair<std::string, std::string>> invalid;
};
Result<Listing> list_checkpoints(const Context& ctx, const std::string& root);

// Resolves a ref (SPEC §1) and reads that checkpoint's metadata. latest and
// a step read no more than the markers and one _checkpoint.json.
Result<Checkpoint> resolve_ref(const Context& ctx, const std::string& root, const std::string& ref);

// ---- rm and rollback ------------------------------------------------------

// What rm and rollback removed, and the markers afterwards.
struct RemoveReport {
  bool dry_run = false;
  std::vector<std::string> removed;  // by step
  std::optional<std::string> last;   // what `last` names afterwards; nullopt: none left
  std::optional<BestMarker> best;    // best.json afterwards; nullopt: none
};

struct RemoveOptions {
  std::string root;
  std::vector<std::string> refs;
  // Also the checkpoint `last` or best.json names (or the newest, or the
  // best by the metrics): the markers then move to what is left.
  bool force = false;
  bool dry_run = false;
};
// Removes the checkpoints refs name, crash-safe as prune: each is unlisted by
// one rename into .ckpt/trash, then deleted; then `last` and best.json are
// brought up to date (removed when nothing is left for them to name). Every
// ref is resolved before anything is removed: one that names nothing is
// not_found and removes nothing. Refused (conflict) for a checkpoint a
// marker protects, unless force.
Result<RemoveReport> remove_checkpoints(const Context& ctx, const RemoveOptions& opts);

struct RollbackOptions {
  std::string root;
  std::string ref;
  bool dry_run = false;
};
// Makes ref the latest again: removes every checkpoint committed after it and
// every checkpoint of a later step (so that a resumed job's next saves find
// their steps free), as remove_checkpoints does; `last` then names ref and
// best.json is recomputed if it named a removed one.
Result<RemoveReport> rollback(const Context& ctx, const RollbackOptions& opts);

// ---- diff -----------------------------------------------------------------

// Two checkpoints compared by their manifests (no file is read: verify
// proves the files match them).
struct DiffReport {
  Checkpoint a, b;
  std::vector<FileEntry> added;    // in b only, by path
  std::vector<FileEntry> removed;  // in a only, by path
  std::vector<std::pair<FileEntry, FileEntry>> changed;  // (a's, b's), by path
  std::size_t unchanged = 0;
  // false when either was saved with --checksum none: files are then
  // compared by size alone.
  bool by_digest = true;
  bool differ() const { return !added.empty() || !removed.empty() || !changed.empty(); }
};
Result<DiffReport> diff(const Context& ctx, const std::string& root, const std::string& a,
                        const std::string& b);

// ---- save -----------------------------------------------------------------

enum class Transfer { copy, move, link };

struct Source {
  std::string path;
  std::optional<std::string> dest;  // stored name; default: base name
  bool contents = false;            // --from DIR: the contents at the top level
};

// Sharded saves (SPEC §10): this writer is shard `index` of `count`, in the
// attempt group `group`.
struct ShardSpec {
  std::uint64_t index = 0;
  std::uint64_t count = 1;
  std::string group = "default";
};

// Reads an environment variable; nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const char*)>;
// The process environment.
std::optional<std::string> process_env(const char* name);

// "I/N", or "env": I and N from RANK/WORLD_SIZE (torchrun), else
// SLURM_PROCID/SLURM_NTASKS. group: the one given, else the default from the
// environment (TORCHELASTIC_RUN_ID:TORCHELASTIC_RESTART_COUNT, else
// SLURM_JOB_ID:SLURM_RESTART_COUNT, else "default"). Error(usage) when
// malformed, out of range or the variables are missing.
Result<ShardSpec> parse_shard(const std::string& text, const std::optional<std::string>& group,
                              const EnvLookup& env = process_env);

struct SaveOptions {
  std::string root;
  std::uint64_t step = 0;
  std::vector<Source> sources;
  std::map<std::string, double> metrics;  // non-finite values are stored as null
  std::map<std::string, std::string> meta;
  std::vector<std::string> weights;  // stored paths or globs
  Policy policy;                     // what this call was given; recorded in policy.json
  Transfer transfer = Transfer::copy;
  bool force = false;
  bool follow_symlinks = false;
  // Set: one shard of a sharded save. Its files are recorded in the pending
  // step; the writer that records the last missing shard commits them all.
  std::optional<ShardSpec> shard;
  // Set (ckpt copy): the files the save must store, as another checkpoint's
  // manifest records them. Stored bytes whose size or SHA-256 differ fail the
  // save (integrity) before anything is committed.
  std::optional<std::vector<FileEntry>> expected_files;
};

struct SaveReport {
  std::string name;
  std::string path;
  std::uint64_t step = 0;
  std::uint64_t commit_seq = 0;
  std::size_t files = 0;
  std::uint64_t total_size = 0;
  // The metrics this call was given, as a manifest records them (not finite:
  // nullopt).
  std::map<std::string, std::optional<double>> metrics;
  bool best_updated = false;
  std::optional<std::string> best_key;
  std::optional<double> best_value;  // this checkpoint's value of best_key
  // best.json after the save (read under the lock by the save that commits);
  // nullopt when there is none.
  std::optional<BestMarker> best;
  std::vector<std::string> pruned;
  // The step was already committed with the same files: nothing new was
  // committed (the markers, policy and retention were brought up to date).
  bool existing = false;
  // --dedup: files stored by sharing the newest checkpoint's (clone or hard
  // link) instead of writing them again, their bytes, and that checkpoint.
  std::size_t shared_files = 0;
  std::uint64_t shared_bytes = 0;
  std::optional<std::string> shared_with;
  // False for a shard that was recorded but did not complete the step (the
  // step stays pending; commit_seq is 0, files and total_size are the shard's),
  // and for a step found `existing` (committed before, not by this call).
  bool committed = true;
  std::optional<ShardStatus> shards;  // sharded saves only
};
Result<SaveReport> save(const Context& ctx, const SaveOptions& opts);

// ---- copy -----------------------------------------------------------------

// One committed checkpoint of root (a directory or s3://) committed again at
// another root: every byte read, hashed and checked against the source's
// manifest before the commit, with the same step (unless step is given),
// metrics, meta and weights. The destination's own policy applies (best.json,
// retention). The same files already committed there are a success
// (SaveReport::existing).
struct CopyOptions {
  std::string root;
  std::string ref;
  std::string to;
  std::optional<std::uint64_t> step;
};
struct CopyReport {
  Checkpoint source;
  SaveReport saved;
};
Result<CopyReport> copy(const Context& ctx, const CopyOptions& opts);

// ---- pending sharded steps ----------------------------------------------------

// The pending steps of a root, by step (no lock: a snapshot).
Result<std::vector<PendingStep>> list_pending(const Context& ctx, const std::string& root);

// Removes a pending step and every shard recorded for it (not_found when none).
Result<PendingStep> abort_pending(const Context& ctx, const std::string& root,
                                  std::uint64_t step);

// ---- verify ---------------------------------------------------------------

enum class Severity { failure, warning };

struct Problem {
  std::string path;
  std::string kind;
  std::string detail;
  Severity severity = Severity::failure;
};

struct CheckpointCheck {
  std::string name;
  bool ok = true;
  std::vector<Problem> problems;
  std::vector<std::string> verified_files;  // stored paths that passed
};

struct VerifyOptions {
  std::string root;
  std::vector<std::string> refs;  // empty: every checkpoint and the markers
  bool quick = false;
  bool strict = false;
  bool repair = false;
};

struct VerifyReport {
  bool ok = true;
  std::vector<CheckpointCheck> checkpoints;
  bool markers_checked = false;
  bool markers_ok = true;
  std::vector<Problem> marker_problems;
  std::vector<std::string> repaired;  // marker files rewritten by --repair
};
Result<VerifyReport> verify(const Context& ctx, const VerifyOptions& opts);

// ---- load -----------------------------------------------------------------

struct LoadOptions {
  std::string root;
  std::string ref;
  std::vector<std::string> only;  // globs over stored paths
  bool weights_only = false;
  std::optional<std::string> to;
  bool link = false;  // with `to`: hard links instead of copies (never modify them)
  bool verify = true;
};

struct LoadReport {
  std::string name;
  std::string path;
  CheckpointMeta meta;
  // The directory holding the verified files: the checkpoint's, or `to`.
  std::string dir;
  std::vector<std::pair<std::string, std::string>> files;  // stored path, absolute path
};
Result<LoadReport> load(const Context& ctx, const LoadOptions& opts);

}  // namespace ckpt
