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

// The conflict a plain save of a step pending as a sharded save is
// (store/store_shard.cpp).
void refuse_if_pending(const Context& ctx, ObjectStore& store, std::uint64_t step);

}  // namespace ckpt::detail
