// SPDX-License-Identifier: Apache-2.0
// The seam between the repository's operations and where a root lives: a
// directory (DirStore, over FileSystem) or an object store (ObjectStore, over
// s3::Client, SPEC §11). The operations that read a root (the listing,
// `latest` and the other refs, a checkpoint's manifest and files) are written
// once, over this interface.
//
// Names are root-relative and '/'-separated: "last", "best.json",
// "policy.json", ".ckpt/commit_seq", "step-000000001/_checkpoint.json".
// A checkpoint's files are named by the checkpoint and the stored path.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ckpt/repository.hpp"
#include "ckpt/transfer.hpp"

namespace ckpt::detail {

class InodeDigests;
class ManifestCache;

// Held while a command changes the root: the directory's lock file, or the
// object store's lease (SPEC §11).
class RootLock {
 public:
  virtual ~RootLock() = default;
  // Throws Error(locked) when the lock was lost (a lease that could not be
  // renewed in time, or was taken over): call before each change.
  virtual void check() const {}
};

// What prune cleans besides checkpoints: the leftovers of writers gone
// (root-relative names, as reported), and the pending sharded steps removed
// as idle.
struct Cleaned {
  std::vector<std::string> cleaned;
  std::vector<PendingStep> expired;
};

// What a step-* name holds, as a listing reads it.
struct ManifestRead {
  std::optional<CheckpointMeta> meta;
  std::optional<std::string> invalid;  // why it is no checkpoint
};

class Store {
 public:
  explicit Store(std::string location) : m_location(std::move(location)) {}
  virtual ~Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // The root as output and messages show it: an absolute directory, or
  // s3://BUCKET/PREFIX.
  const std::string& location() const { return m_location; }
  // Where a name of the root is, for output: the location joined with name.
  virtual std::string path_of(const std::string& name) const = 0;
  virtual bool local() const = 0;

  // ---- small objects (markers, counters, manifests, policy) ----
  // The whole object; nullopt when absent. Throws Error(integrity) when it
  // is larger than max or (a directory) not a regular file, Error(io) when
  // it cannot be read.
  virtual std::optional<std::string> read(const std::string& name, std::size_t max) = 0;
  // A directory's symbolic link: its target (the legacy form of `last`);
  // nullopt when name is no symbolic link (and always in an object store).
  virtual std::optional<std::string> read_link(const std::string& name) = 0;

  // ---- checkpoints ----
  // The step-* names at the top of the root that may hold a checkpoint.
  virtual std::vector<std::string> step_names() = 0;
  // Whether a checkpoint may be stored under the name: a directory, or (in
  // an object store, where data objects are uploaded first) a committed
  // _checkpoint.json.
  virtual bool has_step(const std::string& name) = 0;
  // The manifests of names, read on every core; absent or unparsable ones
  // say why. A name with nothing left under it (removed meanwhile, or data
  // objects not yet committed) has neither meta nor invalid.
  virtual std::vector<ManifestRead> read_manifests(const Context& ctx,
                                                   const std::vector<std::string>& names) = 0;
  // Every stored file of a checkpoint (not the directories), relative to it.
  virtual std::vector<std::string> files(const std::string& name) = 0;
  // One stored file against its manifest entry: presence, type, size and,
  // with Hash::yes, its digest. nullopt when good.
  virtual std::optional<Problem> check_file(const Context& ctx, const std::string& name,
                                            const FileEntry& f, Hash hash, Overlap overlap,
                                            InodeDigests* seen, const ProgressFn& progress) = 0;
  // Copies a stored file into out_fd (a new, empty file), hashing it with
  // Hash::yes. Returns what was copied; a size other than the manifest's
  // (the caller checks) may come back without the bytes having been read.
  virtual TransferResult copy_to(const Context& ctx, const std::string& name,
                                 const std::string& path, int out_fd, Hash hash, Overlap overlap,
                                 const ProgressFn& progress) = 0;

  // ---- changing the root (prune, rm, rollback, promote-best) ----
  // Takes the root's lock, waiting up to ctx.lock_timeout; Error(locked)
  // naming the holder when it stays held.
  virtual std::unique_ptr<RootLock> lock_root(const Context& ctx) = 0;
  // Whether anything is stored at name (a marker, a counter).
  virtual bool exists(const std::string& name) = 0;
  // Replaces (or creates) the small object name with text, atomically and
  // durably. Under lock_root.
  virtual void write_marker(const std::string& name, const std::string& text) = 0;
  // Removes the small object name (absent is fine), durably. Under lock_root.
  virtual void remove_marker(const std::string& name) = 0;
  // Unlists the named checkpoints (one already gone is skipped), then
  // deletes what they stored. Under lock_root.
  virtual void discard(const Context& ctx, const std::vector<std::string>& names) = 0;
  // Removes (dry_run: lists) what writers that are gone left behind, and
  // the pending steps idle for longer than max_idle_seconds. Under
  // lock_root unless dry_run.
  virtual Cleaned clean(const Context& ctx, std::int64_t max_idle_seconds, bool dry_run) = 0;
  // The pending steps of sharded saves (SPEC §10), by step.
  virtual std::vector<PendingStep> pending(const Context& ctx) = 0;

 private:
  std::string m_location;
};

// A root that is a directory.
class DirStore final : public Store {
 public:
  // root: the absolute directory (open_root checked it).
  DirStore(FileSystem& fs, std::string root);
  ~DirStore() override;
  std::string path_of(const std::string& name) const override;
  bool local() const override { return true; }
  std::optional<std::string> read(const std::string& name, std::size_t max) override;
  std::optional<std::string> read_link(const std::string& name) override;
  std::vector<std::string> step_names() override;
  bool has_step(const std::string& name) override;
  std::vector<ManifestRead> read_manifests(const Context& ctx,
                                           const std::vector<std::string>& names) override;
  std::vector<std::string> files(const std::string& name) override;
  std::optional<Problem> check_file(const Context& ctx, const std::string& name,
                                    const FileEntry& f, Hash hash, Overlap overlap,
                                    InodeDigests* seen, const ProgressFn& progress) override;
  TransferResult copy_to(const Context& ctx, const std::string& name, const std::string& path,
                         int out_fd, Hash hash, Overlap overlap,
                         const ProgressFn& progress) override;
  std::unique_ptr<RootLock> lock_root(const Context& ctx) override;
  bool exists(const std::string& name) override;
  void write_marker(const std::string& name, const std::string& text) override;
  void remove_marker(const std::string& name) override;
  void discard(const Context& ctx, const std::vector<std::string>& names) override;
  Cleaned clean(const Context& ctx, std::int64_t max_idle_seconds, bool dry_run) override;
  std::vector<PendingStep> pending(const Context& ctx) override;

  // Writes .ckpt/manifests back when the last read_manifests found it out of
  // date, from the listing's checkpoints (prune only: a command that reads
  // the root never changes it). Never fails.
  void store_cache(const Context& ctx, const std::vector<Checkpoint>& listed);

 private:
  FileSystem& m_fs;
  std::unique_ptr<ManifestCache> m_cache;  // of the last read_manifests
};

// Whether a --root names an object store (s3://…).
bool is_store_root(const std::string& root);
// Refuses (unsupported) an object-store root where only a directory will
// do (open_root: a directory root's path).
void require_directory_root(const std::string& root);

// The store of a root: an ObjectStore for s3://…, else a DirStore over the
// directory open_root checks. Throws not_found (reason no_root) when the root
// does not exist, unsupported when it is something other than a ckpt root.
std::unique_ptr<Store> open_store(const Context& ctx, const std::string& root);

// A checkpoint's manifest from its text: parsed, and its step checked
// against the name. Errors name the checkpoint.
CheckpointMeta parse_meta_of(const std::string& name, const std::string& text);

}  // namespace ckpt::detail
