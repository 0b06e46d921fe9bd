// SPDX-License-Identifier: Apache-2.0
// save into an object-store root (SPEC §11). The data objects go first, each
// hashed as it streams, under a lease on the step, so that two writers of one
// step never overwrite each other's objects. Then, under the root's lease
// (the directory's root lock), the commit_seq counter, the create-only PUT of
// _checkpoint.json that commits, and the markers, each by compare-and-swap.
// A save killed before its commit leaves data objects without a manifest:
// invisible to every reader.
#include <algorithm>
#include <atomic>
#include <mutex>

#include <fmt/format.h>

#include "ckpt/clock.hpp"
#include "ckpt/parallel.hpp"
#include "ckpt/retention.hpp"
#include "internal.hpp"
#include "save_parts.hpp"
#include "store/object_store.hpp"
#include "store/store_save.hpp"

namespace ckpt::detail {

namespace {

using saving::NextSeq;
using saving::Plan;

// The commit_seq a checkpoint of name records; nullopt when it is not one.
std::optional<std::uint64_t> seq_of(ObjectStore& store, const std::string& name) {
  try {
    if (!parse_step_dir_name(name)) return std::nullopt;
    return read_meta(store, name).commit_seq;
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::io) throw;
    return std::nullopt;
  }
}

}  // namespace

void move_last(ObjectStore& store, const std::string& name, std::uint64_t seq) {
  store.update(k_last_file, [&](const std::optional<std::string>& cur) -> std::optional<std::string> {
    if (cur) {
      std::string named;
      try {
        named = parse_last_text(*cur);
      } catch (const Error&) {
        named.clear();  // unreadable: replaced
      }
      if (named == name) return std::nullopt;
      if (!named.empty()) {
        if (auto other = seq_of(store, named); other && *other > seq) return std::nullopt;
      }
    }
    return serialize_last(name);
  });
}

namespace {

void set_counter(ObjectStore& store, std::uint64_t seq) {
  store.update(commit_counter_name(), [&](const std::optional<std::string>& cur) -> std::optional<std::string> {
    if (cur) {
      if (auto n = parse_commit_counter(*cur); n && *n >= seq) return std::nullopt;
    }
    return fmt::format("{}\n", seq);
  });
}

// The step is committed with other files.
Error step_exists(const SaveOptions& opts, const std::string& name, const std::string& why) {
  return Error(ErrorKind::conflict,
               fmt::format("step {} already exists ({}) with other content ({}); use --force to "
                           "replace it",
                           opts.step, name, why));
}

Error removed_meanwhile(const SaveOptions& opts) {
  return Error(ErrorKind::conflict,
               fmt::format("step {} was removed while it was being saved again; retry",
                           opts.step));
}

// What a save reports of the checkpoint it committed, or found committed
// (under name, whatever width of the step's name it has).
SaveReport report_of(ObjectStore& store, const std::string& name, const CheckpointMeta& meta) {
  SaveReport r;
  r.name = name;
  r.path = store.path_of(name);
  r.step = meta.step;
  r.commit_seq = meta.commit_seq;
  r.files = meta.files.size();
  r.total_size = meta.total_size;
  return r;
}

// The markers after a commit, or after finding the step committed with the
// same files: `last`, best.json and policy.json. Under the root lease.
void update_markers(const Context& ctx, const SaveOptions& opts, ObjectStore& store,
                    const CheckpointMeta& meta, const std::optional<Policy>& policy,
                    std::optional<BestMarker> best, bool rescan, RootLock& lease,
                    SaveReport& report) {
  lease.check();
  move_last(store, meta.name, meta.commit_seq);
  detail::BestRule rule = saving::best_rule(opts, policy, best);
  if (rule.key) {
    report.best_key = rule.key;
    report.best_value = meta.metric(*rule.key);
    bool key_changed = best && (best->key != *rule.key || best->mode != rule.mode);
    std::optional<BestMarker> next;
    if (!best || key_changed || rescan) {
      // best.json changes only to name a strictly better checkpoint, or
      // when it names none that is there.
      auto listed = list_root(ctx, store, false).checkpoints;
      auto computed = compute_best(listed, *rule.key, rule.mode);
      bool dangling = best && std::none_of(listed.begin(), listed.end(), [&](const Checkpoint& c) {
                        return c.name == best->path;
                      });
      if (computed && (!best || key_changed || dangling ||
                       improves(rule.mode, computed->value, best->value))) {
        next = computed;
      }
    } else if (report.best_value && improves(rule.mode, *report.best_value, best->value)) {
      next = BestMarker{*rule.key, rule.mode, *report.best_value, meta.step, meta.name,
                        now_rfc3339()};
    }
    if (next && (!best || serialize_best(*next) != serialize_best(*best))) {
      lease.check();
      store.write_marker(k_best_file, serialize_best(*next));
      report.best_updated = next->path == meta.name && !report.existing;
      best = next;
    }
  }
  report.best = best;
  Policy merged = saving::merged_policy(policy, opts.policy);
  if (policy ? !(merged == *policy) : !(merged == Policy{})) {
    lease.check();
    store.write_marker(k_policy_file, serialize_policy(merged));
  }
}

// The next commit_seq, as on a directory (saving::next_commit_seq): the
// counter, unless `last` is behind it; then the checkpoints decide.
NextSeq next_seq(const Context& ctx, ObjectStore& store) {
  NextSeq next;
  std::optional<std::uint64_t> known = read_commit_counter(store);
  std::uint64_t highest = known.value_or(0);
  std::optional<std::uint64_t> last_seq;
  if (known) {
    try {
      if (auto last = read_last(ctx, store)) last_seq = seq_of(store, last->name);
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::io) throw;
    }
  }
  next.markers_stale = !known || !last_seq || *last_seq < *known;
  if (next.markers_stale) {
    highest = known.value_or(0);
    for (const auto& c : list_root(ctx, store, false).checkpoints) {
      highest = std::max(highest, c.meta.commit_seq);
    }
  }
  next.seq = highest + 1;
  return next;
}

// Applies the retention rules the save leaves in policy.json (under the
// root lease); returns the checkpoints removed.
std::vector<std::string> retain(const Context& ctx, const SaveOptions& opts, ObjectStore& store,
                                const std::optional<Policy>& policy) {
  Policy merged = saving::merged_policy(policy, opts.policy);
  if (!merged.has_retention_rule()) return {};
  return prune_locked(ctx, store, merged, false).removed;
}

}  // namespace

// The step is committed: the same files are a success that changes no
// checkpoint (a restarted job saving the step again); other files exit 4.
SaveReport complete_existing(const Context& ctx, const SaveOptions& opts, ObjectStore& store,
                             const std::string& name,
                             const std::function<void(const CheckpointMeta&)>& same) {
  const std::string manifest = name + "/" + k_meta_file;
  // The manifest as committed, compared with the sources.
  auto committed_as = [&](const std::optional<std::string>& text) {
    if (!text) throw removed_meanwhile(opts);
    CheckpointMeta m;
    try {
      m = parse_meta_of(name, *text);
    } catch (const Error& e) {
      throw step_exists(opts, name, e.message());
    }
    same(m);
    return m;
  };
  auto text = store.read(manifest, k_max_meta_bytes);
  CheckpointMeta committed = committed_as(text);
  auto lease = store.lock_root(ctx);
  // Removed (prune, rm, rollback) while the sources were hashed: nothing is
  // reported as saved, no marker names it, and --move keeps the sources.
  if (auto again = store.read(manifest, k_max_meta_bytes); again != text) {
    committed = committed_as(again);
  }
  auto policy = read_policy(store);
  auto best = saving::read_best_tolerant(ctx, store);
  saving::check_best_conflict(opts, best);
  SaveReport report = report_of(store, name, committed);
  report.existing = true;
  report.committed = false;
  if (saving::recorded_metrics(opts.metrics) != committed.metrics || opts.meta != committed.meta) {
    ctx.warning(fmt::format("{} is already committed with these files; its recorded metrics "
                            "and meta are kept",
                            name));
  }
  try {
    update_markers(ctx, opts, store, committed, policy, best, true, *lease, report);
    report.pruned = retain(ctx, opts, store, policy);
  } catch (const Error& e) {
    throw Error(e.kind(),
                fmt::format("{} is committed with these files, but bringing the markers and "
                            "retention up to date failed: {}",
                            name, e.message()),
                e.sys_errno());
  }
  return report;
}

std::unique_ptr<ObjectStore> store_for_save(const SaveOptions& opts) {
  auto store = std::make_unique<ObjectStore>(s3::load_config(s3::process_environment()),
                                             s3::parse_s3_url(opts.root));
  try {
    store->check_root();
  } catch (const Error& e) {
    // A new root is made by its first save; a missing bucket is not.
    if (e.kind() != ErrorKind::not_found) throw;
    store->client().check_bucket();
  }
  return store;
}

SaveReport commit_to_store(const Context& ctx, const SaveOptions& opts, ObjectStore& store,
                           CheckpointMeta& meta, s3::Lease& step_lease, StoreCommit& state) {
  const std::string& name = meta.name;
  auto lease = store.lock_root(ctx);
  auto policy = read_policy(store);
  auto best = saving::read_best_tolerant(ctx, store);
  saving::check_best_conflict(opts, best);
  saving::check_keep_best_key(opts, policy, best);
  step_lease.check();
  NextSeq seq = next_seq(ctx, store);
  meta.commit_seq = seq.seq;
  meta.created = now_rfc3339_ms();
  lease->check();
  set_counter(store, meta.commit_seq);
  step_lease.check();
  const std::string manifest = name + "/" + k_meta_file;
  const std::string manifest_text = serialize_checkpoint(meta);
  bool created = false;
  std::optional<Error> failed;
  try {
    created = store.create(manifest, manifest_text);
  } catch (const Error& e) {
    failed = e;
  }
  if (!created) {
    // A PUT the store applied but whose answer was lost is retried, and the
    // retry finds the object there (412), or the retries run out: the
    // manifest may be ours. It is if it is byte for byte what was sent
    // (its commit_seq and commit time make it unique).
    state.maybe_committed = true;
    std::optional<std::string> there;
    try {
      there = store.read(manifest, k_max_meta_bytes);
    } catch (const Error& e) {
      throw Error(e.kind() == ErrorKind::interrupted ? e.kind() : ErrorKind::io,
                  fmt::format("the commit of step {} may or may not have been stored ({}; then "
                              "{}); `ckpt info {}` shows whether it is there",
                              meta.step, failed ? failed->message() : "refused", e.message(),
                              meta.step));
    }
    if (there && *there == manifest_text) {
      created = true;
    } else if (there) {
      throw Error(ErrorKind::conflict,
                  fmt::format("step {} was committed by another writer while this save "
                              "uploaded it; nothing was saved",
                              meta.step));
    } else {
      state.maybe_committed = false;  // not there: nothing was committed
      if (failed) throw *failed;
      throw Error(ErrorKind::conflict,
                  fmt::format("the commit of step {} was refused and nothing is there; "
                              "nothing was saved: save again",
                              meta.step));
    }
  }
  state.committed = true;
  SaveReport report = report_of(store, name, meta);
  try {
    update_markers(ctx, opts, store, meta, policy, best, seq.markers_stale, *lease, report);
  } catch (const Error& e) {
    throw Error(e.kind(),
                fmt::format("{} is committed, but updating the markers failed: {}; "
                            "`ckpt verify` reads it, and the next save brings them up to date",
                            name, e.message()),
                e.sys_errno());
  }
  // Committed: nothing of the step is written again.
  step_lease.remove();
  try {
    report.pruned = retain(ctx, opts, store, policy);
  } catch (const Error& e) {
    throw Error(e.kind(), fmt::format("{} is committed, but retention failed: {}", name, e.message()),
                e.sys_errno());
  }
  return report;
}

namespace {

// The sources' entries with the committed checkpoint's sizes, for a first
// comparison that reads no source.
std::vector<FileEntry> sized_entries(const Plan& plan, const CheckpointMeta& committed) {
  std::vector<FileEntry> out;
  for (const auto& f : plan.files) {
    FileEntry e{f.dest, f.size, std::string(), std::nullopt};
    for (const auto& c : committed.files) {
      if (c.path == f.dest) e.sha256 = c.sha256;
    }
    out.push_back(std::move(e));
  }
  return out;
}

// --dedup: what a save copies from the newest committed checkpoint.
struct Shared {
  std::string newest;    // that checkpoint's name
  std::string manifest;  // its _checkpoint.json as the copies were chosen by
  std::map<std::string, std::string> unchanged;  // stored path to SHA-256
};

// The sources the newest committed checkpoint holds with the same stored
// path, size and SHA-256. None when the root has no readable checkpoint yet.
Shared unchanged_in_newest(const Context& ctx, ObjectStore& store, const Plan& plan) {
  Context quiet = ctx;
  quiet.warn = nullptr;
  Shared out;
  CheckpointMeta meta;
  try {
    out.newest = resolve_ref_name(quiet, store, "latest");
    auto text = store.read(out.newest + "/" + k_meta_file, k_max_meta_bytes);
    if (!text) return {};
    out.manifest = *text;
    meta = parse_meta_of(out.newest, out.manifest);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::io || e.kind() == ErrorKind::interrupted) throw;
    return {};  // nothing committed yet, or nothing readable: every file is uploaded
  }
  out.unchanged = saving::unchanged_sources(ctx, plan, meta);
  return out;
}

// The copies were made from the checkpoint their manifest describes: it is
// still there byte for byte (a checkpoint removed, even saved again under
// its name, has another commit_seq), so no object was copied from another.
void check_shared_source(ObjectStore& store, const Shared& shared) {
  auto now = store.read(shared.newest + "/" + k_meta_file, k_max_meta_bytes);
  if (now && *now == shared.manifest) return;
  throw Error(ErrorKind::conflict,
              fmt::format("{}, whose unchanged files this save copied (--dedup), was removed or "
                          "replaced meanwhile; nothing was saved: save again",
                          shared.newest));
}

// Copies f from the newest checkpoint inside the store when it is unchanged
// there; false (and the file is uploaded) when it is not, or when that
// object is gone meanwhile (a prune).
bool copy_unchanged(const Context& ctx, ObjectStore& store, const Shared& shared,
                    const saving::PlannedFile& f, const std::string& object,
                    const ProgressFn& progress, s3::Moved& out) {
  auto it = shared.unchanged.find(f.dest);
  if (it == shared.unchanged.end()) return false;
  try {
    out.etag = store.copy_within(ctx, shared.newest + "/" + f.dest, object, f.size, progress);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::not_found) throw;
    return false;
  }
  out.size = f.size;
  out.sha256 = it->second;
  return true;
}

// What a save stored of its plan: the entries in plan order (a digest only
// with checksum sha256), every file's SHA-256 whatever checksum says, and
// what --dedup copied.
struct Stored {
  std::vector<FileEntry> files;
  std::vector<std::string> sha256s;
  std::uint64_t total_size = 0;
  std::size_t shared_files = 0;
  std::uint64_t shared_bytes = 0;
};

// Stores the plan's files under the name `under` (the step, or a replacement's
// staging), biggest first, on up to four workers, each hashed as it
// streams; a file --dedup finds unchanged is copied inside the store. The
// keys are added to written as they start, for the clean-up of a failure.
Stored store_files(const Context& ctx, ObjectStore& store, const Plan& plan,
                   const std::string& under, const std::string& checksum, const Shared& shared,
                   s3::Lease& step_lease, std::vector<std::string>& written) {
  Stored out;
  out.files.resize(plan.files.size());
  out.sha256s.resize(plan.files.size());
  std::uint64_t total = 0;
  for (const auto& f : plan.files) total += f.size;
  UploadProgress progress(ctx, total);
  std::atomic<std::size_t> shared_files{0};
  std::atomic<std::uint64_t> shared_bytes{0};
  std::mutex written_mutex;
  auto order = biggest_first(plan.files);
  unsigned workers = std::min(worker_count(ctx.threads), 4u);
  for_each_parallel(order.size(), workers, [&](std::size_t k) {
    const saving::PlannedFile& f = plan.files[order[k]];
    step_lease.check();
    std::string object = under + "/" + f.dest;
    {
      std::lock_guard<std::mutex> lock(written_mutex);
      written.push_back(object);
    }
    s3::Moved m;
    try {
      if (copy_unchanged(ctx, store, shared, f, object, progress.fn(), m)) {
        ++shared_files;
        shared_bytes += m.size;
      } else {
        m = store.upload(ctx, f.source, object, progress.fn());
      }
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::io || e.message().find(f.source) != std::string::npos) throw;
      throw Error(e.kind(), fmt::format("storing {} as {}: {}", f.source, f.dest, e.message()),
                  e.sys_errno());
    }
    FileEntry e;
    e.path = f.dest;
    e.size = m.size;
    if (checksum == "sha256") e.sha256 = m.sha256;
    out.sha256s[order[k]] = m.sha256;
    out.files[order[k]] = std::move(e);
  });
  for (const auto& e : out.files) out.total_size += e.size;
  out.shared_files = shared_files;
  out.shared_bytes = shared_bytes;
  return out;
}

// The digests were computed whatever checksum says: --expect checks them.
void check_stored(const SaveOptions& opts, const Stored& stored) {
  std::vector<FileEntry> hashed = stored.files;
  for (std::size_t i = 0; i < hashed.size(); ++i) hashed[i].sha256 = stored.sha256s[i];
  saving::check_expected(opts, hashed);
}

// save --force over a committed checkpoint (store_replace.cpp): the files
// are staged by this attempt (under its own lease, so that prune, rm and
// rollback are not held up while it uploads), then, under the root's lease
// and the step's, the replacement is journaled and carried out.
SaveReport replace_committed(const Context& ctx, const SaveOptions& opts, ObjectStore& store,
                             const Plan& plan, const std::vector<std::string>& weights) {
  const std::string name = step_dir_name(opts.step);
  auto policy = read_policy(store);
  const std::string checksum = saving::checksum_of(opts, policy);
  CheckpointMeta meta = saving::new_meta(opts, name, weights, checksum);
  Journal journal;
  journal.name = name;
  journal.token = unique_suffix();
  const std::string staged = staging_of(name, journal.token);
  auto staging_lease = store.lease(ctx, staged + ".lease");
  std::vector<std::string> written;
  bool keep_staged = false;  // the journal may be there: the staging is the replacement's
  try {
    Stored stored =
        store_files(ctx, store, plan, staged, checksum, Shared{}, *staging_lease, written);
    check_stored(opts, stored);
    meta.files = std::move(stored.files);
    meta.total_size = stored.total_size;

    auto lease = store.lock_root(ctx);
    auto step_lease = store.lease(ctx, ObjectStore::saving_name(opts.step));
    // Another writer's replacement decided meanwhile goes first: this one
    // replaces what it made.
    finish_replacement(ctx, store, name, *step_lease);
    policy = read_policy(store);
    auto best = saving::read_best_tolerant(ctx, store);
    saving::check_best_conflict(opts, best);
    saving::check_keep_best_key(opts, policy, best);
    NextSeq seq = next_seq(ctx, store);
    meta.commit_seq = seq.seq;
    meta.created = now_rfc3339_ms();
    lease->check();
    set_counter(store, meta.commit_seq);
    step_lease->check();
    staging_lease->check();
    journal.manifest = serialize_checkpoint(meta);
    journal.meta = meta;
    keep_staged = true;
    std::optional<Error> failed;
    bool written_now = false;
    try {
      written_now = write_journal(store, journal);
    } catch (const Error& e) {
      failed = e;
    }
    if (!written_now) {
      // Refused, or its answer lost: the journal read back tells whether
      // this replacement is decided.
      std::optional<Journal> there;
      try {
        there = read_journal(store, name);
      } catch (const Error& e) {
        throw Error(e.kind() == ErrorKind::interrupted ? e.kind() : ErrorKind::io,
                    fmt::format("the replacement of step {} may or may not have been decided ({}; "
                                "then {}); the next prune or save of the step carries it out if it "
                                "was",
                                opts.step, failed ? failed->message() : "refused", e.message()));
      }
      if (!there || there->token != journal.token || there->manifest != journal.manifest) {
        keep_staged = false;
        if (failed && !there) throw *failed;
        throw Error(ErrorKind::conflict,
                    fmt::format("the replacement of step {} was refused ({}); nothing was saved: "
                                "save again",
                                opts.step,
                                there ? "another replacement was decided meanwhile"
                                      : "and nothing is there"));
      }
    }
    staging_lease->remove();
    // Decided: from here on the replacement is finished, by this save or,
    // if it stops, by the next command that takes the root's lease.
    try {
      if (!roll_forward(ctx, store, journal, *step_lease)) {
        throw Error(ErrorKind::conflict, "it was dropped");
      }
    } catch (const Error& e) {
      throw Error(e.kind(),
                  fmt::format("the replacement of {} was decided but is not finished ({}); "
                              "`ckpt prune` or saving step {} again finishes it",
                              name, e.message(), opts.step),
                  e.sys_errno());
    }
    SaveReport report = report_of(store, name, meta);
    try {
      std::optional<BestMarker> before = best;
      markers_after_replacement(ctx, store, meta, best);
      update_markers(ctx, opts, store, meta, policy, best, true, *lease, report);
      if (report.best && report.best->path == name &&
          (!before || serialize_best(*before) != serialize_best(*report.best))) {
        report.best_updated = true;
      }
    } catch (const Error& e) {
      throw Error(e.kind(),
                  fmt::format("{} is replaced, but updating the markers failed: {}; the next save "
                              "brings them up to date",
                              name, e.message()),
                  e.sys_errno());
    }
    step_lease->remove();
    try {
      report.pruned = retain(ctx, opts, store, policy);
    } catch (const Error& e) {
      throw Error(e.kind(), fmt::format("{} is replaced, but retention failed: {}", name, e.message()),
                  e.sys_errno());
    }
    saving::finish_move_all(ctx, opts, plan);
    return report;
  } catch (...) {
    if (!keep_staged && staging_lease->confirm()) stage_discard(store, name, journal.token);
    staging_lease->remove();  // when still ours
    throw;
  }
}

}  // namespace

SaveReport save_to_store(const Context& ctx, const SaveOptions& opts) {
  if (opts.shard && opts.shard->count > 1) return save_shard_to_store(ctx, opts);
  FileSystem& fs = ctx.file_system();
  auto opened = store_for_save(opts);
  ObjectStore& store = *opened;
  const s3::Location& where = store.where();
  Plan plan = saving::make_plan(fs, opts, std::string());
  std::vector<std::string> weights = saving::match_weights(opts, plan);
  const std::string name = step_dir_name(opts.step);
  auto policy = read_policy(store);
  auto best = saving::read_best_tolerant(ctx, store);
  saving::check_best_conflict(opts, best);
  saving::check_keep_best_key(opts, policy, best);
  if (opts.transfer == Transfer::link) {
    ctx.warning(fmt::format("cannot hard-link into an object store ({}); copying instead",
                            store.location()));
  }
  store.require_conditional_put();

  // Whoever holds the step's lease is the only writer of its objects.
  auto step_lease = store.lease(ctx, ObjectStore::saving_name(opts.step));
  // A replacement of the step that was decided, then stopped, is finished
  // first: until then the step is absent or the checkpoint it replaces.
  if (store.exists(replacing_journal(name))) {
    auto lease = store.lock_root(ctx);
    finish_replacement(ctx, store, name, *step_lease);
  }
  if (auto existing = find_step(store, opts.step)) {
    // Committed, its objects are the checkpoint's: nothing of them is
    // written again, and prune takes the lease to remove them.
    step_lease->remove();
    if (opts.force) return replace_committed(ctx, opts, store, plan, weights);
    CheckpointMeta committed;
    try {
      committed = read_meta(store, *existing);
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::io) throw;
      if (e.kind() == ErrorKind::not_found) throw removed_meanwhile(opts);
      throw step_exists(opts, *existing, e.message());
    }
    if (auto why = saving::content_difference(committed, sized_entries(plan, committed))) {
      throw step_exists(opts, *existing, *why);
    }
    std::vector<FileEntry> hashed = saving::hash_sources(ctx, plan);
    saving::check_expected(opts, hashed);
    SaveReport report =
        complete_existing(ctx, opts, store, *existing, [&](const CheckpointMeta& m) {
          if (auto why = saving::content_difference(m, hashed)) {
            throw step_exists(opts, *existing, *why);
          }
        });
    saving::finish_move_all(ctx, opts, plan);
    return report;
  }

  // A pending sharded step is its shards' (their objects are under it).
  refuse_if_pending(ctx, store, opts.step);
  const std::string checksum = saving::checksum_of(opts, policy);
  CheckpointMeta meta = saving::new_meta(opts, name, weights, checksum);
  // --dedup (given, or recorded in policy.json): a source the newest
  // checkpoint holds as it is is copied there by the store, not uploaded.
  Shared shared;
  if (saving::merged_policy(policy, opts.policy).dedup.value_or(false) && checksum == "sha256") {
    shared = unchanged_in_newest(ctx, store, plan);
  }
  try {
    store.clear_uncommitted(name);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::conflict) throw;
    throw Error(ErrorKind::conflict, fmt::format("{}; nothing was saved", e.message()));
  }
  std::vector<std::string> written;  // keys to remove when the save fails before its commit
  StoreCommit state;
  try {
    Stored stored = store_files(ctx, store, plan, name, checksum, shared, *step_lease, written);
    if (stored.shared_files > 0) check_shared_source(store, shared);
    check_stored(opts, stored);
    meta.files = std::move(stored.files);
    meta.total_size = stored.total_size;
    if (checksum == "sha256") {
      std::string sums = name + "/" + k_sums_file;
      written.push_back(sums);
      step_lease->check();
      store.put(sums, serialize_sums(meta.files));
    }

    SaveReport report = commit_to_store(ctx, opts, store, meta, *step_lease, state);
    report.shared_files = stored.shared_files;
    report.shared_bytes = stored.shared_bytes;
    if (report.shared_files > 0) report.shared_with = shared.newest;
    saving::finish_move_all(ctx, opts, plan);
    return report;
  } catch (...) {
    // The objects uploaded go, unless the step may be committed, or the
    // step's lease is no longer ours (confirmed with the store now: another
    // writer may have taken it over and be uploading the same keys).
    if (!state.committed && !state.maybe_committed && !written.empty() &&
        step_lease->confirm()) {
      try {
        std::vector<std::string> keys;
        for (const auto& n : written) keys.push_back(where.key(n));
        store.client().remove_many(keys, true);
      } catch (const Error&) {
        // Invisible without a manifest; the next save of the step removes them.
      }
    }
    throw;
  }
}

}  // namespace ckpt::detail
