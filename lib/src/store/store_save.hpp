// SPDX-License-Identifier: Apache-2.0
// The pieces of a save into an object-store root (store/store_save.cpp) that
// a sharded save there (store/store_shard.cpp) commits with too.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "ckpt/repository.hpp"
#include "s3/lease.hpp"
#include "store/object_store.hpp"

namespace ckpt::detail {

// Parts as they are stored, summed over the files uploaded at once.
class UploadProgress {
 public:
  UploadProgress(const Context& ctx, std::uint64_t total) : m_ctx(ctx), m_total(total) {}
  ProgressFn fn() {
    if (!m_ctx.progress) return {};
    return [this](std::uint64_t n) {
      std::lock_guard<std::mutex> lock(m_mutex);
      m_done += n;
      m_ctx.progress(m_done, std::max(m_done, m_total));
    };
  }

 private:
  const Context& m_ctx;
  std::uint64_t m_total;
  std::uint64_t m_done = 0;
  std::mutex m_mutex;
};

// The store of a save's root: its bucket checked, its prefix a root or
// nothing yet (a save makes it).
std::unique_ptr<ObjectStore> store_for_save(const SaveOptions& opts);

// How far a commit got, for the clean-up of a save that failed.
struct StoreCommit {
  bool committed = false;
  bool maybe_committed = false;  // the commit's outcome is not known: remove nothing
};

// Commits meta, whose objects (and SHA256SUMS) are stored under meta.name:
// under the root's lease, the next commit_seq, the create-only PUT of
// _checkpoint.json that commits, and the markers; then step_lease goes and
// retention runs. Sets meta.commit_seq and meta.created.
SaveReport commit_to_store(const Context& ctx, const SaveOptions& opts, ObjectStore& store,
                           CheckpointMeta& meta, s3::Lease& step_lease, StoreCommit& state);

// The step name is committed: same throws the conflict when its manifest is
// not what this save would have written. Then, under the root's lease, the
// markers and retention are brought up to date as after a commit; the
// report says existing. A step removed meanwhile is a conflict (retry).
SaveReport complete_existing(const Context& ctx, const SaveOptions& opts, ObjectStore& store,
                             const std::string& name,
                             const std::function<void(const CheckpointMeta&)>& same);

// `last` to name, never to an older commit than the checkpoint it names.
void move_last(ObjectStore& store, const std::string& name, std::uint64_t seq);

// ---- save --force over a committed step (store/store_replace.cpp) ----
// A replacement decided: the attempt whose staged files it copies into place,
// and the new _checkpoint.json (byte for byte) with its meta.
struct Journal {
  std::string name;      // the checkpoint's name (step_dir_name)
  std::string token;     // the attempt
  std::string manifest;  // the new _checkpoint.json
  CheckpointMeta meta;   // as parsed
};
// .ckpt/replacing/NAME: the attempts at replacing the checkpoint name, each
// staging its files under NAME/TOKEN (its lease NAME/TOKEN.lease while it
// uploads); NAME.json: the journal of the one decided.
std::string replacing_prefix(const std::string& name);
std::string staging_of(const std::string& name, const std::string& token);
std::string replacing_journal(const std::string& name);
// Removes an attempt's staged files after a failure (errors ignored;
// requests sent even after an interrupt).
void stage_discard(ObjectStore& store, const std::string& name, const std::string& token);
// The journal, create-only: false when one is there.
bool write_journal(ObjectStore& store, const Journal& j);
// The journal of name's replacement; nullopt when there is none. Throws
// Error(integrity) when it is unreadable.
std::optional<Journal> read_journal(ObjectStore& store, const std::string& name);
// Carries out the replacement j: every manifest of the step goes (any width
// of its name), then its objects, the staged files are copied into place
// inside the store, SHA256SUMS is written and the manifest created; then the
// staging and the journal go. Each part can be done again: after any
// failure, a rerun finishes it. It is dropped instead (false, with a
// warning, the journal and staging removed) when a checkpoint of the step
// was committed after it was decided, or when its staged files are not all
// there (then nothing of the old checkpoint is touched). Under the root's
// lease and step_lease.
bool roll_forward(const Context& ctx, ObjectStore& store, const Journal& j, s3::Lease& step_lease);
// After a replacement: `last` names it (the newest commit); best.json, when
// it named the step, is rebuilt by its rule (removed when no checkpoint has
// its key), else moves to the replacement when it strictly improves on it.
// best is updated. Under the root's lease.
void markers_after_replacement(const Context& ctx, ObjectStore& store, const CheckpointMeta& meta,
                               std::optional<BestMarker>& best);
// The stopped replacement of name, when its journal is there, carried out
// with its markers; its manifest (nullopt: none, or dropped). Under the
// root's lease and step_lease.
std::optional<CheckpointMeta> finish_replacement(const Context& ctx, ObjectStore& store,
                                                 const std::string& name, s3::Lease& step_lease);
// A writer about to save step (a shard) first finishes its stopped
// replacement, when there is one: under the step's lease, then the root's.
void finish_replacement_of_step(const Context& ctx, ObjectStore& store, std::uint64_t step);

// The conflict a plain save of a step pending as a sharded save is
// (store/store_shard.cpp).
void refuse_if_pending(const Context& ctx, ObjectStore& store, std::uint64_t step);

}  // namespace ckpt::detail
