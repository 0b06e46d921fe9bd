// SPDX-License-Identifier: Apache-2.0
// A root in an object store (SPEC §11): the store seam over s3::Client. The
// layout mirrors a directory's: PREFIX/last, PREFIX/best.json,
// PREFIX/step-000000001/_checkpoint.json and the stored files beside it.
// A step is committed exactly when its _checkpoint.json exists; data
// objects without one are invisible.
#pragma once

#include <functional>
#include <memory>
#include <set>
#include <string>

#include "s3/client.hpp"
#include "s3/config.hpp"
#include "s3/lease.hpp"
#include "s3/transfer.hpp"
#include "store/store.hpp"

namespace ckpt::detail {

class ObjectStore final : public Store {
 public:
  ObjectStore(s3::Config config, s3::Location where);
  std::string path_of(const std::string& name) const override;
  bool local() const override { return false; }
  std::optional<std::string> read(const std::string& name, std::size_t max) override;
  std::optional<std::string> read_link(const std::string&) override { return std::nullopt; }
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
  // Each checkpoint under its step's lease: _checkpoint.json first (which
  // unlists it), then every object and multipart upload under it.
  void discard(const Context& ctx, const std::vector<std::string>& names) override;
  // Data objects and multipart uploads of uncommitted steps idle for longer
  // than max_idle_seconds whose step's lease is free (a killed save), and
  // step leases left free; each under the step's lease.
  Cleaned clean(const Context& ctx, std::int64_t max_idle_seconds, bool dry_run) override;
  // store/store_shard.cpp: the pending sets under .ckpt/pending/.
  std::vector<PendingStep> pending(const Context& ctx) override;

  // Throws not_found (reason no_root) when nothing is stored under the
  // prefix, unsupported when what is there is not a ckpt root.
  void check_root();

  // ---- writing (SPEC §11) ----
  // A small object and the version it was read at; nullopt when absent.
  struct Versioned {
    std::string text;
    std::string etag;
  };
  std::optional<Versioned> read_versioned(const std::string& name, std::size_t max);
  // Writes name only if it does not exist (If-None-Match: *); false when it does.
  bool create(const std::string& name, const std::string& text);
  // Writes name only if it is still the version etag (If-Match), or only if
  // it is absent when etag is empty; false when another writer changed it.
  bool replace(const std::string& name, const std::string& text, const std::string& etag);
  // Sets name by compare-and-swap: next maps what is there (nullopt: absent)
  // to what should be, or to nullopt to leave it. Retried while another
  // writer changes it in between.
  void update(const std::string& name,
              const std::function<std::optional<std::string>(const std::optional<std::string>&)>& next);
  // Writes name whatever is there.
  void put(const std::string& name, const std::string& text);
  // Uploads the local file path as name, parts in parallel, hashing it.
  // completing: see s3::Tuning::completing.
  s3::Moved upload(const Context& ctx, const std::string& path, const std::string& name,
                   const ProgressFn& progress,
                   const std::function<void(const std::function<void()>&)>& completing = {});
  // Copies the object from_name (size bytes) to to_name inside the store
  // (s3::copy_within); the new object's ETag.
  std::string copy_within(const Context& ctx, const std::string& from_name,
                          const std::string& to_name, std::uint64_t size,
                          const ProgressFn& progress);
  // Refuses (unsupported, exit 7) a store that ignores If-None-Match: a
  // create-only PUT there could commit one step twice.
  void require_conditional_put();
  // Takes the lease at name (.ckpt/lock for the root), waiting up to
  // ctx.lock_timeout; Error(locked) when another holder keeps it.
  std::unique_ptr<s3::Lease> lease(const Context& ctx, const std::string& name);
  std::unique_ptr<s3::Lease> lease(const std::string& name, double timeout_seconds);
  // The lease at name in one try; nullptr when another holder has it.
  std::unique_ptr<s3::Lease> try_lease(const std::string& name);
  // The lease a save of one step holds while it uploads (any width of the
  // step's name): .ckpt/saving/step-N.
  static std::string saving_name(std::uint64_t step);
  // Removes what an earlier save of the uncommitted step name left (a writer
  // killed mid-upload): its objects, and its multipart uploads, which the
  // store would keep (and bill) forever. Call holding the step's lease.
  // Error(conflict), touching nothing, when the step is committed.
  void clear_uncommitted(const std::string& name);

  // Finishes every replacement (save --force) that was interrupted after it
  // was decided and whose step's lease is free (store/store_replace.cpp);
  // the checkpoints finished. lock_root does, so that every command that
  // changes the root sees it whole first. Under lock_root.
  std::vector<std::string> recover(const Context& ctx);
  // The root lease lock_root took, while it is held: checked before each
  // change (nothing when it is not held).
  void check_lock() const;

  s3::Client& client() { return m_client; }
  const s3::Location& where() const { return m_where; }

 private:
  std::string key(const std::string& name) const { return m_where.key(name); }
  // "PREFIX/" ("" at the bucket's top), and one listing of what is directly
  // under it, named as in the root ("step-000000001", "last").
  std::string top() const;
  s3::Listing list_top();
  // The transfer tuning of one file among those moved at once.
  s3::Tuning tuning(const Context& ctx) const;

  // Under clean(): removes the pending steps idle for longer than
  // max_idle_seconds (dry_run: lists them) and the pending sets of committed
  // steps; skip gets the steps whose objects clean() must leave alone (a
  // live pending step, or one listed in a dry run).
  std::vector<PendingStep> expire_pending(const Context& ctx, std::int64_t max_idle_seconds,
                                          bool dry_run, std::set<std::uint64_t>& skip);

  // Under clean(): removes (dry_run: lists) the files a save --force staged
  // and left without a journal (killed before it decided), idle for longer
  // than max_idle_seconds and with their step's lease free.
  void clean_staged(std::int64_t max_idle_seconds, bool dry_run, Cleaned& out);

  friend class StoreLease;

  s3::Location m_where;
  s3::Lease* m_root_lease = nullptr;
  bool m_conditional_put = false;  // require_conditional_put found it honoured
  s3::Client m_client;
  s3::Tuning m_tuning;
};

// The ObjectStore of an s3:// root, its bucket and prefix checked.
std::unique_ptr<Store> open_object_store(const Context& ctx, const std::string& root);

}  // namespace ckpt::detail
