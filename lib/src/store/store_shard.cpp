// SPDX-License-Identifier: Apache-2.0
// Sharded saves into an object-store root (SPEC §10, §11): many writers, one
// checkpoint, no lock around the uploads.
//
//   .ckpt/pending/step-NNNNNNNNN/set.json              the attempt group, its shard
//                                                      count and retired groups
//   .ckpt/pending/step-NNNNNNNNN/SET-ID/shard-IIIII.json   one recorded shard: its
//                                                      files, digests and ETags
//   step-NNNNNNNNN/PATH                                each shard's objects, at their
//                                                      stored paths
//
// Each writer uploads its objects create-only, side by side with every other
// writer, then records its shard under the set's ID (a retired set's records
// are never read again). The writer whose record completes the set checks
// every recorded object's ETag against the store and writes the merged
// _checkpoint.json with a create-only PUT, which commits exactly once.
//
// An object a writer finds already stored at one of its keys (a retried
// shard, a retired group's late writer, a killed save) is removed only under
// the step's lease, and only while the step is uncommitted and no other
// shard's record claims it; the committer checks under the same lease. So
// no object of a committed checkpoint is ever removed or replaced by a
// writer, and an object replaced after it was recorded fails the check: that
// shard counts as missing until it is saved again.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <set>

#include <fmt/format.h>

#include "ckpt/atomic_file.hpp"
#include "ckpt/clock.hpp"
#include "ckpt/parallel.hpp"
#include "internal.hpp"
#include "save_parts.hpp"
#include "store/object_store.hpp"
#include "store/store_save.hpp"

namespace ckpt::detail {

namespace {

constexpr unsigned k_request_workers = 16;
constexpr int k_collision_retries = 4;

std::string pending_name(std::uint64_t step) {
  return fmt::format("{}/pending/{}", k_private_dir, step_dir_name(step));
}
std::string set_name(std::uint64_t step) { return pending_name(step) + "/set.json"; }
std::string records_name(std::uint64_t step, const std::string& id) {
  return fmt::format("{}/{}", pending_name(step), id);
}
std::string record_name(std::uint64_t step, const std::string& id, std::uint64_t index) {
  return fmt::format("{}/shard-{:05}.json", records_name(step, id), index);
}
std::optional<std::uint64_t> record_index(const std::string& leaf) {
  if (leaf.size() != 16 || leaf.rfind("shard-", 0) != 0 || leaf.compare(11, 5, ".json") != 0) {
    return std::nullopt;
  }
  std::uint64_t n = 0;
  for (std::size_t i = 6; i < 11; ++i) {
    if (leaf[i] < '0' || leaf[i] > '9') return std::nullopt;
    n = n * 10 + static_cast<std::uint64_t>(leaf[i] - '0');
  }
  return n;
}

// A step's lease that is deleted, not only let go, however its scope ends
// (a shard that finds the step committed by another, a refusal, a failure):
// eight writers of one step leave no lease behind.
class StepLease {
 public:
  explicit StepLease(std::unique_ptr<s3::Lease> lease) : m_lease(std::move(lease)) {}
  StepLease(StepLease&&) = default;
  ~StepLease() {
    if (!m_lease) return;
    try {
      m_lease->remove();
    } catch (...) {
      // It expires by itself; prune removes it.
    }
  }
  explicit operator bool() const { return m_lease != nullptr; }
  s3::Lease* operator->() const { return m_lease.get(); }
  s3::Lease& operator*() const { return *m_lease; }

 private:
  std::unique_ptr<s3::Lease> m_lease;
};

StepLease step_lease_of(const Context& ctx, ObjectStore& store, std::uint64_t step) {
  return StepLease(store.lease(ctx, ObjectStore::saving_name(step)));
}

// set.json as stored: parsed (nullopt when absent or unreadable) and the
// version it was read at (empty when absent).
struct StoredSet {
  std::optional<ShardSet> set;
  std::string etag;
  std::string text;
  bool present = false;
};

StoredSet read_set(ObjectStore& store, std::uint64_t step) {
  StoredSet out;
  std::optional<ObjectStore::Versioned> v;
  try {
    v = store.read_versioned(set_name(step), k_max_meta_bytes);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::integrity) throw;
    // Too large to be a set: unreadable, replaced by the next writer.
    if (auto info = store.client().head(store.where().key(set_name(step)))) {
      out.present = true;
      out.etag = info->etag;
    }
    return out;
  }
  if (!v) return out;
  out.present = true;
  out.etag = v->etag;
  out.text = v->text;
  try {
    ShardSet s = parse_shard_set(v->text);
    if (s.step == step) out.set = std::move(s);
  } catch (const Error& e) {
    // Not a set (or of a newer format): replaced by the next writer.
    if (e.kind() != ErrorKind::integrity && e.kind() != ErrorKind::unsupported) throw;
  }
  return out;
}

// One pending step: the valid records of its set (this group, this count,
// this step, at their index) and the newest activity under it.
struct StoreState {
  std::map<std::uint64_t, ShardRecord> records;
  std::int64_t updated_ms = 0;
};

// The records stored under the set, by name only: (index, root-relative name).
std::vector<std::pair<std::uint64_t, std::string>> list_records(ObjectStore& store,
                                                                const ShardSet& set) {
  const std::string prefix = store.where().key(records_name(set.step, set.id)) + "/";
  const std::size_t top = store.where().key("").size();
  std::vector<std::pair<std::uint64_t, std::string>> found;
  for (const auto& o : store.client().list(prefix).objects) {
    auto index = record_index(o.key.substr(prefix.size()));
    if (!index || *index >= set.count) continue;
    found.emplace_back(*index, o.key.substr(top));
  }
  return found;
}

std::vector<std::uint64_t> recorded_indices(ObjectStore& store, const ShardSet& set) {
  std::vector<std::uint64_t> out;
  for (const auto& [i, n] : list_records(store, set)) out.push_back(i);
  return out;
}

StoreState read_records(const Context& ctx, ObjectStore& store, const ShardSet& set) {
  StoreState st;
  st.updated_ms = parse_rfc3339_ms(set.created).value_or(0);
  auto found = list_records(store, set);
  std::vector<std::optional<ShardRecord>> read(found.size());
  unsigned workers = ctx.threads ? std::min(ctx.threads, k_request_workers) : k_request_workers;
  for_each_parallel(found.size(), workers, [&](std::size_t k) {
    try {
      auto text = store.read(found[k].second, k_max_meta_bytes);
      if (!text) return;  // removed meanwhile (a retirement, an abort)
      ShardRecord r = parse_shard_record(*text);
      if (r.group == set.group && r.count == set.count && r.index == found[k].first &&
          r.step == set.step) {
        read[k] = std::move(r);
      }
    } catch (const Error& e) {
      // Only a record that is not one (too large, not a record, a newer
      // format) is passed over, as on a directory; a store that cannot be
      // read, or a stop, ends the command.
      if (e.kind() != ErrorKind::integrity && e.kind() != ErrorKind::unsupported) throw;
    }
  });
  for (std::size_t k = 0; k < found.size(); ++k) {
    if (!read[k]) continue;
    st.updated_ms = std::max(st.updated_ms, parse_rfc3339_ms(read[k]->updated).value_or(0));
    st.records.emplace(found[k].first, std::move(*read[k]));
  }
  return st;
}

ShardStatus status_of(const ShardSet& set, const std::map<std::uint64_t, ShardRecord>& records) {
  ShardStatus s;
  s.group = set.group;
  s.count = set.count;
  for (std::uint64_t i = 0; i < s.count; ++i) {
    (records.count(i) ? s.present : s.missing).push_back(i);
  }
  return s;
}

PendingStep pending_of(const ShardSet& set, const StoreState& st) {
  PendingStep p;
  p.step = set.step;
  p.name = step_dir_name(set.step);
  p.shards = status_of(set, st.records);
  p.force = set.force;
  p.updated_ms = st.updated_ms;
  p.updated = st.updated_ms > 0 ? format_rfc3339_ms(st.updated_ms) : std::string();
  return p;
}

// Removes the pending step's set.json (which unlists it) and then its
// records, of every set it had.
void remove_pending_objects(ObjectStore& store, std::uint64_t step) {
  store.client().remove(store.where().key(set_name(step)));
  std::vector<std::string> keys;
  for (const auto& o : store.client().list(store.where().key(pending_name(step)) + "/").objects) {
    keys.push_back(o.key);
  }
  store.client().remove_many(keys);
}

// The step was committed while this shard was being saved: the save then
// ends as a rerun of a committed step does (0 with the same files, else 4).
// uploaded: this shard's files as uploaded and hashed, once its sources
// may be gone (--move).
struct CommittedMeanwhile {
  std::optional<std::vector<FileEntry>> uploaded;  // sorted by path, with every SHA-256
  bool moved = false;                               // --move's sources removed
};

Error aborted_meanwhile(const ShardSpec& spec, std::uint64_t step) {
  return Error(ErrorKind::conflict,
               fmt::format("shard {}: the pending {} was aborted (or expired) while this shard "
                           "was uploaded; save it again",
                           shard_label(spec), step_dir_name(step)))
      .with_reason(k_reason_no_pending);
}

// The ID of the records of spec's group and count stored under the step
// with no set.json naming them, the newest first; nullopt when there are
// none.
std::optional<std::string> orphaned_set_id(const Context& ctx, ObjectStore& store,
                                           const ShardSpec& spec, std::uint64_t step) {
  const std::string prefix = store.where().key(pending_name(step)) + "/";
  std::map<std::string, std::string> newest;  // ID -> the time of its newest record
  for (const auto& o : store.client().list(prefix).objects) {
    std::string rel = o.key.substr(prefix.size());
    auto slash = rel.find('/');
    if (slash == std::string::npos || !record_index(rel.substr(slash + 1))) continue;
    std::string& t = newest[rel.substr(0, slash)];
    t = std::max(t, o.last_modified);
  }
  std::vector<std::pair<std::string, std::string>> ids;  // (time, ID)
  for (const auto& [id, t] : newest) ids.emplace_back(t, id);
  std::sort(ids.rbegin(), ids.rend());
  for (const auto& [t, id] : ids) {
    ShardSet probe{step, spec.group, spec.count, false, {}, std::string(), id};
    if (!read_records(ctx, store, probe).records.empty()) return id;
  }
  return std::nullopt;
}

// The set this shard belongs to, made or taken over as needed: a new
// set.json when there is none, a retirement of another group's set (under
// the step's lease, with its records removed).
ShardSet join_set(const Context& ctx, ObjectStore& store, const ShardSpec& spec,
                  std::uint64_t step) {
  const std::string name = step_dir_name(step);
  for (int attempt = 0; attempt < 50; ++attempt) {
    check_interrupt();
    StoredSet cur = read_set(store, step);
    if (cur.set && cur.set->group == spec.group) {
      if (cur.set->count != spec.count) {
        throw mismatch(fmt::format("shard {}: {} is pending as {} shards in group {:?}, not {}",
                                   shard_label(spec), name, cur.set->count, spec.group,
                                   spec.count));
      }
      return *cur.set;
    }
    if (cur.set && std::find(cur.set->retired.begin(), cur.set->retired.end(), spec.group) !=
                       cur.set->retired.end()) {
      throw superseded(spec, step, cur.set->group);
    }
    ShardSet set{step, spec.group, spec.count, false, {}, now_rfc3339_ms(), unique_suffix()};
    if (!cur.present) {
      // Committed since this shard looked (and its set removed): no new set.
      if (store.has_step(name)) throw CommittedMeanwhile{};
      // Made under the step's lease, as every other change of the set: a
      // prune that closed the set while it looked again, or was stopped
      // before it put the set back, is never answered by a new set that
      // leaves the recorded shards of the old one behind.
      auto lease = step_lease_of(ctx, store, step);
      if (read_set(store, step).present || store.has_step(name)) continue;
      // Records of this group with no set.json (a prune stopped between
      // closing the set and putting it back): the set is made again with
      // their ID, so that they count.
      if (auto id = orphaned_set_id(ctx, store, spec, step)) set.id = *id;
      lease->check();
      if (store.create(set_name(step), serialize_shard_set(set))) return set;
      continue;  // another shard made it first: join or retire that one
    }
    // Another group's set (or an unreadable one): this attempt retires it,
    // under the step's lease, so that no collision is being resolved for it
    // meanwhile.
    auto lease = step_lease_of(ctx, store, step);
    StoredSet again = read_set(store, step);
    if (again.etag != cur.etag) continue;
    if (cur.set) {
      set.retired = cur.set->retired;
      set.retired.push_back(cur.set->group);
    }
    if (!store.replace(set_name(step), serialize_shard_set(set), cur.etag)) continue;
    if (cur.set) {
      StoreState old = read_records(ctx, store, *cur.set);
      ctx.warning(fmt::format("{}: group {:?} retires the pending shards of group {:?} ({} of {} "
                              "were in)",
                              name, spec.group, cur.set->group, old.records.size(),
                              cur.set->count));
      std::vector<std::string> keys;
      const std::string prefix = store.where().key(records_name(step, cur.set->id)) + "/";
      for (const auto& o : store.client().list(prefix).objects) keys.push_back(o.key);
      store.client().remove_many(keys);
    }
    lease->remove();
    return set;
  }
  throw Error(ErrorKind::locked,
              fmt::format("{}: the pending set kept changing while shard {} joined it", name,
                          shard_label(spec)));
}


// The step must still be pending as this set: CommittedMeanwhile once it is
// committed, superseded when another group took it over, aborted when the
// set is gone.
void check_set(ObjectStore& store, const ShardSpec& spec, const ShardSet& set) {
  if (store.has_step(step_dir_name(set.step))) throw CommittedMeanwhile{};
  StoredSet cur = read_set(store, set.step);
  if (cur.set && cur.set->id == set.id) return;
  if (cur.set) throw superseded(spec, set.step, cur.set->group);
  throw aborted_meanwhile(spec, set.step);
}

// An object is stored where this shard uploads one (create-only refused
// it): removed, under the step's lease, when it is no committed
// checkpoint's and no other recorded shard's of the set.
void clear_collision(const Context& ctx, ObjectStore& store, const ShardSpec& spec,
                     const ShardSet& set, const std::string& path) {
  const std::string name = step_dir_name(set.step);
  auto lease = step_lease_of(ctx, store, set.step);
  check_set(store, spec, set);
  StoreState st = read_records(ctx, store, set);
  for (const auto& [i, r] : st.records) {
    if (i == spec.index) continue;
    if (r.etags.count(path)) {
      throw mismatch(fmt::format("shard {} would store {:?}, which shard {} already stores; the "
                                 "shards of one step must store disjoint paths",
                                 spec.index, path, i));
    }
  }
  lease->check();
  store.client().remove(store.where().key(name + "/" + path));
  lease->remove();
}

// Uploads one file of the shard create-only, clearing what an earlier
// writer left at its key.
s3::Moved upload_shard_file(const Context& ctx, ObjectStore& store, const ShardSpec& spec,
                            const ShardSet& set, const saving::PlannedFile& f,
                            const ProgressFn& progress) {
  const std::string object = step_dir_name(set.step) + "/" + f.dest;
  // A multipart upload is completed under the step's lease, while the step
  // is pending as this set: a store completes it whatever is at the key, and
  // the committer checks the objects under the same lease.
  auto completing = [&](const std::function<void()>& complete) {
    auto lease = step_lease_of(ctx, store, set.step);
    check_set(store, spec, set);
    lease->check();
    complete();
    lease->remove();
  };
  for (int attempt = 0;; ++attempt) {
    try {
      s3::Moved m = store.upload(ctx, f.source, object, progress, completing);
      if (m.etag.empty()) {
        // No ETag in the answer (a proxy dropped it): the committer needs one.
        if (auto info = store.client().head(store.where().key(object))) m.etag = info->etag;
      }
      return m;
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::interrupted) throw;
      if (e.kind() != ErrorKind::conflict || attempt == k_collision_retries) {
        // The step committed, taken over or aborted meanwhile says more
        // than the failure it caused (an upload aborted under it).
        check_set(store, spec, set);
        if (e.kind() != ErrorKind::io || e.message().find(f.source) != std::string::npos) throw;
        throw Error(e.kind(), fmt::format("storing {} as {}: {}", f.source, f.dest, e.message()),
                    e.sys_errno());
      }
    }
    clear_collision(ctx, store, spec, set, f.dest);
  }
}

// The objects the records name, against the store: the shards whose objects
// are all there as recorded, and a warning for each of the others.
std::set<std::uint64_t> stale_shards(const Context& ctx, ObjectStore& store, const ShardSet& set,
                                     const std::map<std::uint64_t, ShardRecord>& records) {
  std::vector<std::pair<std::uint64_t, const FileEntry*>> all;
  for (const auto& [i, r] : records) {
    for (const auto& f : r.files) all.emplace_back(i, &f);
  }
  std::vector<std::string> problems(all.size());
  const std::string name = step_dir_name(set.step);
  for_each_parallel(all.size(), k_request_workers, [&](std::size_t k) {
    const auto& [i, f] = all[k];
    const ShardRecord& r = records.at(i);
    auto info = store.client().head(store.where().key(name + "/" + f->path));
    auto want = r.etags.find(f->path);
    if (!info) {
      problems[k] = "is missing";
    } else if (info->size != f->size) {
      problems[k] = fmt::format("is {} bytes, not {}", info->size, f->size);
    } else if (want == r.etags.end() || want->second != info->etag) {
      problems[k] = "was replaced since the shard was recorded";
    }
  });
  std::set<std::uint64_t> stale;
  for (std::size_t k = 0; k < all.size(); ++k) {
    if (problems[k].empty() || !stale.insert(all[k].first).second) continue;
    ctx.warning(fmt::format("{}: shard {}'s {} {}; that shard counts as missing until it is "
                            "saved again",
                            name, all[k].first, all[k].second->path, problems[k]));
  }
  return stale;
}

// What a shard that did not commit reports: its own files, and best.json
// as it is now.
SaveReport staged_report(const Context& ctx, const std::string& name, ObjectStore& store,
                         const SaveOptions& opts, const ShardRecord& mine) {
  SaveReport report;
  report.best = saving::read_best_tolerant(ctx, store);
  report.name = name;
  report.path = store.path_of(name);
  report.step = opts.step;
  report.files = mine.files.size();
  for (const auto& f : mine.files) report.total_size += f.size;
  report.committed = false;
  return report;
}

// The objects under the committed step name that its manifest does not list
// (a retired attempt's, a killed writer's), idle for longer than
// max_idle_ms when that is not negative. Under the step's lease.
void remove_strays(ObjectStore& store, const std::string& name, const CheckpointMeta& meta,
                   std::int64_t max_idle_ms) {
  std::set<std::string> keep = {k_meta_file, k_sums_file};
  for (const auto& f : meta.files) keep.insert(f.path);
  const std::string under = store.where().key(name) + "/";
  const std::int64_t now = now_ms();
  std::vector<std::string> strays;
  for (const auto& o : store.client().list(under).objects) {
    if (keep.count(o.key.substr(under.size()))) continue;
    auto t = parse_rfc3339_ms(o.last_modified);
    if (max_idle_ms >= 0 && (!t || now - *t <= max_idle_ms)) continue;
    strays.push_back(o.key);
  }
  store.client().remove_many(strays);
}

// The set is complete as far as this writer saw: under the step's lease,
// checks every record and object and commits the merged checkpoint.
SaveReport commit_set(const Context& ctx, const SaveOptions& opts, ObjectStore& store,
                      const ShardSpec& spec, const ShardSet& set, const ShardRecord& mine) {
  const std::string name = step_dir_name(set.step);
  SaveReport report = staged_report(ctx, name, store, opts, mine);
  StoreCommit state;
  CheckpointMeta meta;
  SaveReport full;
  try {
    auto step_lease = step_lease_of(ctx, store, set.step);
    check_set(store, spec, set);  // committed by another shard of the set first: as a rerun
    if (find_step(store, set.step)) throw CommittedMeanwhile{};  // at another width
    StoreState st = read_records(ctx, store, set);
    for (const auto& [i, r] : st.records) check_against(r, st.records);
    for (std::uint64_t i : stale_shards(ctx, store, set, st.records)) st.records.erase(i);
    report.shards = status_of(set, st.records);
    if (!report.shards->missing.empty()) {
      step_lease->remove();
      return report;
    }

    SaveOptions merged;
    merged.root = opts.root;
    merged.step = set.step;
    merged.transfer = Transfer::copy;
    meta.name = name;
    meta.step = set.step;
    meta.checksum = mine.checksum;
    meta.tool = tool_version();
    meta.shards = set.count;
    meta.shard_group = set.group;
    meta.shard_retired = set.retired;
    merge_records(st.records, meta, merged);
    for (const auto& [i, r] : st.records) {
      meta.files.insert(meta.files.end(), r.files.begin(), r.files.end());
    }
    std::sort(meta.files.begin(), meta.files.end(),
              [](const FileEntry& a, const FileEntry& b) { return a.path < b.path; });
    for (const auto& f : meta.files) meta.total_size += f.size;
    if (meta.checksum == "sha256") {
      step_lease->check();
      store.put(name + "/" + k_sums_file, serialize_sums(meta.files));
    }
    full = commit_to_store(ctx, merged, store, meta, *step_lease, state);
  } catch (const Error& e) {
    // Refusals stand as they are; any other failure before the commit
    // leaves the set complete and pending.
    if (state.committed || state.maybe_committed || e.kind() == ErrorKind::interrupted ||
        e.reason() == k_reason_superseded || e.reason() == k_reason_shard_mismatch ||
        e.reason() == k_reason_no_pending) {
      throw;
    }
    throw Error(e.kind(),
                fmt::format("shard {} is recorded and completes {}, but the commit failed: {}; "
                            "the step stays pending: run any one shard again to commit it",
                            shard_label(spec), name, e.message()),
                e.sys_errno())
        .with_reason(e.reason());
  }
  full.committed = true;
  full.shards = report.shards;
  // Committed: objects under the step that are not the checkpoint's go, then
  // the pending set (a prune finishes either when this is stopped).
  try {
    StepLease step_lease(store.lease(ObjectStore::saving_name(set.step), 0));
    remove_strays(store, name, meta, -1);
    remove_pending_objects(store, set.step);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::interrupted) throw;
    ctx.warning(fmt::format("{} is committed; removing its pending set failed ({}); the next "
                            "prune removes it",
                            name, e.message()));
  }
  return full;
}

SaveReport save_into_set(const Context& ctx, const SaveOptions& opts, ObjectStore& store,
                         const saving::Plan& plan, const std::vector<std::string>& weights,
                         const std::string& checksum);
SaveReport record_and_commit(const Context& ctx, const SaveOptions& opts, ObjectStore& store,
                             const saving::Plan& plan, const ShardSet& set, ShardRecord& mine,
                             const std::vector<std::string>& etags,
                             const std::vector<std::string>& weights, bool& moved);

}  // namespace

SaveReport save_shard_to_store(const Context& ctx, const SaveOptions& opts) {
  FileSystem& fs = ctx.file_system();
  const ShardSpec& spec = *opts.shard;
  auto opened = store_for_save(opts);
  ObjectStore& store = *opened;
  // A replacement of the step (save --force) decided, then stopped, is
  // finished first: until then the step is absent or the checkpoint it
  // replaces.
  finish_replacement_of_step(ctx, store, opts.step);
  // --force of a step not committed is a plain sharded save.
  if (opts.force) {
    if (auto existing = find_step(store, opts.step)) {
      throw Error(ErrorKind::unsupported,
                  fmt::format("replacing committed step {} ({}) with a sharded save (--force "
                              "--shard) is not supported on an object-store root yet; nothing was "
                              "saved: remove it with `ckpt rm {}`, then save the shards",
                              opts.step, *existing, opts.step));
    }
  }
  saving::Plan plan = saving::make_plan(fs, opts, std::string());
  std::vector<std::string> weights = saving::match_weights(opts, plan);
  const std::string name = step_dir_name(opts.step);
  auto policy = read_policy(store);
  auto best = saving::read_best_tolerant(ctx, store);
  saving::check_best_conflict(opts, best);
  if (opts.policy.dedup.value_or(false)) {
    ctx.warning("--dedup is not used by sharded saves; every shard writes its files");
  }
  if (opts.transfer == Transfer::link) {
    ctx.warning(fmt::format("cannot hard-link into an object store ({}); copying instead",
                            store.location()));
  }
  store.require_conditional_put();

  // A rerun of a shard of a step committed with its files: a success that
  // changes no checkpoint; other files exit 4.
  auto as_rerun = [&](const CommittedMeanwhile& meanwhile) -> SaveReport {
    auto existing = find_step(store, opts.step);
    CheckpointMeta committed;
    try {
      if (!existing) throw Error(ErrorKind::not_found, "gone");
      committed = read_meta(store, *existing);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::not_found) throw;
      throw Error(ErrorKind::conflict,
                  fmt::format("step {} was removed while it was being saved again; retry",
                              opts.step));
    }
    same_as_committed(committed, spec, nullptr, opts.step);
    std::vector<FileEntry> hashed;
    if (meanwhile.uploaded) {
      hashed = *meanwhile.uploaded;
    } else {
      hashed = saving::hash_sources(ctx, plan);
      std::sort(hashed.begin(), hashed.end(),
                [](const FileEntry& a, const FileEntry& b) { return a.path < b.path; });
    }
    SaveOptions as_committed = opts;
    as_committed.metrics.clear();
    for (const auto& [k, v] : committed.metrics) as_committed.metrics[k] = v ? *v : std::nan("");
    as_committed.meta = committed.meta;
    SaveReport report = complete_existing(ctx, as_committed, store, *existing,
                                          [&](const CheckpointMeta& m) {
                                            same_as_committed(m, spec, &hashed, opts.step);
                                          });
    if (!meanwhile.moved) saving::finish_move_all(ctx, opts, plan);
    report.shards = ShardStatus{spec.group, spec.count, {}, {}};
    for (std::uint64_t i = 0; i < spec.count; ++i) report.shards->present.push_back(i);
    return report;
  };
  if (find_step(store, opts.step)) return as_rerun(CommittedMeanwhile{});
  try {
    return save_into_set(ctx, opts, store, plan, weights, saving::checksum_of(opts, policy));
  } catch (const CommittedMeanwhile& meanwhile) {
    return as_rerun(meanwhile);
  }
}

namespace {

// Uploads, records and (the last one in) commits one shard.
SaveReport save_into_set(const Context& ctx, const SaveOptions& opts, ObjectStore& store,
                         const saving::Plan& plan, const std::vector<std::string>& weights,
                         const std::string& checksum) {
  const ShardSpec& spec = *opts.shard;
  const std::string name = step_dir_name(opts.step);
  ShardSet set = join_set(ctx, store, spec, opts.step);

  ShardRecord mine;
  mine.step = opts.step;
  mine.group = spec.group;
  mine.index = spec.index;
  mine.count = spec.count;
  mine.checksum = checksum;
  mine.dir = unique_suffix();  // this attempt
  mine.files.resize(plan.files.size());
  std::uint64_t total = 0;
  for (const auto& f : plan.files) total += f.size;
  UploadProgress progress(ctx, total);
  auto order = biggest_first(plan.files);
  std::vector<std::string> etags(plan.files.size());
  std::vector<std::string> sha256s(plan.files.size());
  unsigned workers = std::min(worker_count(ctx.threads), 4u);
  for_each_parallel(order.size(), workers, [&](std::size_t k) {
    const saving::PlannedFile& f = plan.files[order[k]];
    s3::Moved m = upload_shard_file(ctx, store, spec, set, f, progress.fn());
    FileEntry e;
    e.path = f.dest;
    e.size = m.size;
    e.shard = spec.index;
    if (checksum == "sha256") e.sha256 = m.sha256;
    sha256s[order[k]] = m.sha256;
    etags[order[k]] = m.etag;
    mine.files[order[k]] = std::move(e);
  });
  std::vector<FileEntry> hashed = mine.files;
  for (std::size_t i = 0; i < hashed.size(); ++i) hashed[i].sha256 = sha256s[i];
  saving::check_expected(opts, hashed);
  std::sort(hashed.begin(), hashed.end(),
            [](const FileEntry& a, const FileEntry& b) { return a.path < b.path; });
  bool moved = false;
  try {
    return record_and_commit(ctx, opts, store, plan, set, mine, etags, weights, moved);
  } catch (CommittedMeanwhile& c) {
    // Committed by another writer meanwhile: compared as uploaded, not read
    // again from sources --move may have removed.
    c.uploaded = std::move(hashed);
    c.moved = moved;
    throw;
  }
}

// Records the uploaded shard and, when it is the last one in, commits.
SaveReport record_and_commit(const Context& ctx, const SaveOptions& opts, ObjectStore& store,
                             const saving::Plan& plan, const ShardSet& set, ShardRecord& mine,
                             const std::vector<std::string>& etags,
                             const std::vector<std::string>& weights, bool& moved) {
  const ShardSpec& spec = *opts.shard;
  const std::string name = step_dir_name(opts.step);
  for (std::size_t i = 0; i < mine.files.size(); ++i) mine.etags[mine.files[i].path] = etags[i];
  std::sort(mine.files.begin(), mine.files.end(),
            [](const FileEntry& a, const FileEntry& b) { return a.path < b.path; });
  for (const auto& [k, v] : opts.metrics) {
    mine.metrics[k] = std::isfinite(v) ? std::optional<double>(v) : std::nullopt;
  }
  mine.meta = opts.meta;
  mine.weights = weights;
  mine.policy = opts.policy;
  mine.policy.checksum.reset();
  mine.policy.dedup.reset();

  // Record: the set must still be this group's, and agree with this shard.
  check_set(store, spec, set);
  StoreState st = read_records(ctx, store, set);
  check_against(mine, st.records);
  mine.updated = now_rfc3339_ms();
  store.put(record_name(opts.step, set.id, spec.index), serialize_shard_record(mine));
  // Recorded, then the set read again: an abort or a prune removes set.json
  // before it looks for records, so either it sees this record or this
  // writer sees the set gone (and stops, sources kept).
  check_set(store, spec, set);
  saving::finish_move_all(ctx, opts, plan);
  moved = true;
  // Which shards are in now, listed after this record was stored: of the
  // writers that record last at once, at least one sees the set complete
  // (the store lists what it stored, in order), and commit_set lets exactly
  // one of them commit.
  std::set<std::uint64_t> in;
  for (std::uint64_t i : recorded_indices(store, set)) in.insert(i);
  in.insert(spec.index);
  SaveReport report = staged_report(ctx, name, store, opts, mine);
  report.shards = ShardStatus{set.group, set.count, {}, {}};
  for (std::uint64_t i = 0; i < set.count; ++i) {
    (in.count(i) ? report.shards->present : report.shards->missing).push_back(i);
  }
  if (!report.shards->missing.empty()) return report;
  try {
    return commit_set(ctx, opts, store, spec, set, mine);
  } catch (const Error& e) {
    if (e.reason() != k_reason_no_pending || opts.transfer != Transfer::move) throw;
    // Recorded, its sources moved, and the set then aborted or expired: the
    // shard's files went with the pending step.
    throw Error(ErrorKind::conflict,
                fmt::format("shard {} was recorded (its sources moved by --move), but the "
                            "pending {} was aborted (or expired) before it was committed, and "
                            "the shard's files with it",
                            shard_label(spec), name))
        .with_reason(k_reason_no_pending);
  }
}

}  // namespace

std::vector<PendingStep> ObjectStore::pending(const Context& ctx) {
  std::vector<PendingStep> out;
  const std::string base = key(std::string(k_private_dir) + "/pending/");
  std::vector<std::uint64_t> steps;
  for (const auto& p : m_client.list(base, "/").prefixes) {
    std::string leaf = p.substr(base.size());
    if (!leaf.empty() && leaf.back() == '/') leaf.pop_back();
    if (auto step = parse_step_dir_name(leaf)) steps.push_back(*step);
  }
  for (std::uint64_t step : steps) {
    StoredSet cur = read_set(*this, step);
    if (!cur.set) continue;
    // A committed step's set is the leftover of a committer stopped before
    // it removed it: no pending step.
    if (has_step(step_dir_name(step))) continue;
    out.push_back(pending_of(*cur.set, read_records(ctx, *this, *cur.set)));
  }
  std::sort(out.begin(), out.end(),
            [](const PendingStep& a, const PendingStep& b) { return a.step < b.step; });
  return out;
}

std::vector<PendingStep> ObjectStore::expire_pending(const Context& ctx,
                                                     std::int64_t max_idle_seconds, bool dry_run,
                                                     std::set<std::uint64_t>& skip) {
  std::vector<PendingStep> out;
  const std::string base = key(std::string(k_private_dir) + "/pending/");
  const std::int64_t max_idle_ms = max_idle_seconds * 1000;
  auto newest_of = [](const std::vector<s3::ObjectInfo>& objects, std::int64_t n) {
    for (const auto& o : objects) n = std::max(n, parse_rfc3339_ms(o.last_modified).value_or(0));
    return n;
  };
  std::map<std::uint64_t, std::vector<s3::ObjectInfo>> by_step;
  for (auto& o : m_client.list(base).objects) {
    std::string rel = o.key.substr(base.size());
    if (auto step = parse_step_dir_name(rel.substr(0, rel.find('/')))) {
      by_step[*step].push_back(std::move(o));
    }
  }
  for (const auto& [step, objects] : by_step) {
    check_interrupt();
    const std::string name = step_dir_name(step);
    const bool committed = has_step(name);
    if (!committed && now_ms() - newest_of(objects, 0) <= max_idle_ms) {
      skip.insert(step);  // a live pending step: its objects are its shards'
      continue;
    }
    if (dry_run) {
      if (!committed) {
        StoredSet cur = read_set(*this, step);
        if (cur.set) out.push_back(pending_of(*cur.set, read_records(ctx, *this, *cur.set)));
        skip.insert(step);  // listed as a pending step, not again as a leftover
      }
      continue;
    }
    // Under the step's lease: no shard is retiring a set, clearing a
    // collision, completing an upload or committing meanwhile, and no other
    // prune or abort is at it. Held: left to the next prune.
    check_lock();
    StepLease step_lease(try_lease(saving_name(step)));
    if (!step_lease) {
      if (!committed) skip.insert(step);
      continue;
    }
    if (has_step(name)) {
      // A committer stopped after its commit (or one finished since this
      // looked): every object under the step that its manifest does not
      // list goes with the pending set, or nothing would list them again.
      CheckpointMeta meta = read_meta(*this, name);
      step_lease->check();
      remove_strays(*this, name, meta, -1);
      remove_pending_objects(*this, step);
      continue;
    }
    // Everything of the step, idle? The set's records, its objects, its
    // multipart uploads.
    struct Seen {
      std::vector<s3::ObjectInfo> records, stored;
      std::vector<s3::Upload> uploads;
      bool idle = false;
    };
    auto look = [&] {
      Seen s;
      s.records = m_client.list(base + name + "/").objects;
      s.stored = m_client.list(key(name) + "/").objects;
      s.uploads = m_client.list_uploads(key(name) + "/");
      std::int64_t newest = newest_of(s.stored, newest_of(s.records, 0));
      for (const auto& u : s.uploads) {
        newest = std::max(newest, parse_rfc3339_ms(u.initiated).value_or(0));
      }
      s.idle = now_ms() - newest > max_idle_ms && !has_step(name);
      return s;
    };
    if (!look().idle) {
      skip.insert(step);  // a shard at work
      continue;
    }
    // Idle: the set (as it is now, under the lease: it is made, replaced or
    // removed only under it) goes first, so that a shard that records after
    // this sees it gone and stops. Then everything is looked at again;
    // anything that moved meanwhile puts the set back.
    StoredSet cur = read_set(*this, step);
    std::optional<PendingStep> expired;
    if (cur.set) expired = pending_of(*cur.set, read_records(ctx, *this, *cur.set));
    step_lease->check();
    if (cur.present) m_client.remove(key(set_name(step)));
    Seen again = look();
    if (!again.idle) {
      if (cur.present && !cur.text.empty() && !create(set_name(step), cur.text)) {
        ctx.warning(fmt::format("{}: its pending set changed while prune closed it; the set "
                                "there now is kept",
                                name));
      }
      skip.insert(step);
      continue;
    }
    auto& records = again.records;
    auto& stored = again.stored;
    auto& uploads = again.uploads;
    check_lock();
    step_lease->check();
    // Exactly what was listed, all of it idle: a set a new shard makes from
    // here on, and what it uploads, are not touched.
    std::vector<std::string> keys;
    for (const auto& o : records) keys.push_back(o.key);
    for (const auto& o : stored) keys.push_back(o.key);
    for (const auto& u : uploads) m_client.abort_upload(u.key, u.upload_id);
    m_client.remove_many(keys);
    if (expired) out.push_back(*expired);
  }
  return out;
}

void refuse_if_pending(const Context& ctx, ObjectStore& store, std::uint64_t step) {
  StoredSet cur = read_set(store, step);
  if (!cur.set) return;
  PendingStep p = pending_of(*cur.set, read_records(ctx, store, *cur.set));
  throw Error(ErrorKind::conflict,
              fmt::format("{} is pending as a sharded save ({} of {} shards of group {:?} in); "
                          "save it with --shard, or remove it first with `ckpt abort {}`",
                          p.name, p.shards.present.size(), p.shards.count, p.shards.group, step))
      .with_reason(k_reason_shard_mismatch);
}

PendingStep store_abort_pending(const Context& ctx, const std::string& root, std::uint64_t step) {
  auto opened = open_object_store(ctx, root);
  auto& store = static_cast<ObjectStore&>(*opened);
  const std::string name = step_dir_name(step);
  auto none = [&] {
    return Error(ErrorKind::not_found,
                 fmt::format("no pending step {} in {} (`ckpt info` lists the pending steps)",
                             step, store.location()))
        .with_reason(k_reason_no_pending);
  };
  if (!read_set(store, step).present) throw none();  // nothing written
  store.require_conditional_put();
  auto lease = step_lease_of(ctx, store, step);
  StoredSet cur = read_set(store, step);
  bool committed = store.has_step(name);
  if (!cur.set || committed) {
    // A committed step's set is a stopped committer's leftover: it goes.
    if (cur.present && committed) remove_pending_objects(store, step);
    lease->remove();
    throw none();
  }
  PendingStep p = pending_of(*cur.set, read_records(ctx, store, *cur.set));
  remove_pending_objects(store, step);
  store.clear_uncommitted(name);
  lease->remove();
  return p;
}

}  // namespace ckpt::detail
