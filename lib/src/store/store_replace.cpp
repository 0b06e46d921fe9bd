// SPDX-License-Identifier: Apache-2.0
// save --force over a committed step of an object-store root. A store has no
// rename, so a checkpoint cannot be swapped for another in one step; the
// replacement is staged and journaled instead, so that it is carried out
// whole once it is decided, whatever stops the save:
//
//   .ckpt/replacing/step-NNNNNNNNN/PATH    the new files, uploaded (and hashed)
//                                          while the old checkpoint stays
//   .ckpt/replacing/step-NNNNNNNNN.json    the journal: the new _checkpoint.json,
//                                          written create-only under the root's
//                                          lease once every file is staged
//
// Carrying it out: the old manifest goes (the step is absent, never partial,
// for a moment), then the old objects, then the staged files are copied into
// place inside the store (no byte is uploaded twice), then the manifest is
// created, then the staging and the journal go. Each step can be done again,
// so a save killed after the journal is finished by the next save of the step
// or by prune (both hold the step's lease and the root's).
#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "ckpt/clock.hpp"
#include "ckpt/parallel.hpp"
#include "internal.hpp"
#include "save_parts.hpp"
#include "store/object_store.hpp"
#include "store/store_save.hpp"

namespace ckpt::detail {

namespace {

constexpr unsigned k_copy_workers = 8;

std::string replacing_dir() { return fmt::format("{}/replacing", k_private_dir); }

// The step-* names at the top of the root, committed or not, that are step's
// (every width of its name).
std::vector<std::string> names_of_step(ObjectStore& store, std::uint64_t step) {
  std::vector<std::string> out;
  for (const auto& n : store.step_names()) {
    if (parse_step_dir_name(n) == step) out.push_back(n);
  }
  return out;
}

// Every staged object and multipart upload of name's replacement removed.
void remove_staged(ObjectStore& store, const std::string& name, bool cleanup) {
  s3::Client& client = store.client();
  const std::string under = store.where().key(replacing_prefix(name)) + "/";
  for (const auto& u : client.list_uploads(under)) client.abort_upload(u.key, u.upload_id);
  std::vector<std::string> keys;
  for (const auto& o : client.list(under).objects) keys.push_back(o.key);
  client.remove_many(keys, cleanup);
}

}  // namespace

std::string replacing_prefix(const std::string& name) {
  return fmt::format("{}/{}", replacing_dir(), name);
}

std::string replacing_journal(const std::string& name) {
  return fmt::format("{}/{}.json", replacing_dir(), name);
}

void stage_clear(ObjectStore& store, const std::string& name) { remove_staged(store, name, false); }

void stage_discard(ObjectStore& store, const std::string& name) {
  try {
    remove_staged(store, name, true);
  } catch (const Error&) {
    // Staged objects are nobody's checkpoint: prune removes them once idle.
  }
}

void roll_forward(const Context& ctx, ObjectStore& store, const std::string& name,
                  const std::string& manifest, s3::Lease& step_lease) {
  const CheckpointMeta meta = parse_meta_of(name, manifest);
  const std::string manifest_name = name + "/" + k_meta_file;
  auto check = [&] {
    check_interrupt();
    store.check_lock();
    step_lease.check();
  };
  if (store.read(manifest_name, k_max_meta_bytes) != manifest) {
    // The checkpoint it replaces goes, under every width of the step's name:
    // first its manifests, so that no reader sees it partly removed.
    std::vector<std::string> olds = names_of_step(store, meta.step);
    if (std::find(olds.begin(), olds.end(), name) == olds.end()) olds.push_back(name);
    for (const auto& n : olds) {
      check();
      store.client().remove(store.where().key(n + "/" + k_meta_file));
    }
    for (const auto& n : olds) {
      check();
      store.clear_uncommitted(n);
    }
    std::vector<FileEntry> files = meta.files;
    for_each_parallel(files.size(), std::min(worker_count(ctx.threads) * 2, k_copy_workers),
                      [&](std::size_t i) {
                        check();
                        store.copy_within(ctx, replacing_prefix(name) + "/" + files[i].path,
                                          name + "/" + files[i].path, files[i].size, {});
                      });
    check();
    if (meta.checksum == "sha256") store.put(name + "/" + k_sums_file, serialize_sums(meta.files));
    check();
    if (!store.create(manifest_name, manifest) &&
        store.read(manifest_name, k_max_meta_bytes) != manifest) {
      throw Error(ErrorKind::conflict,
                  fmt::format("{} was committed by another writer while it was being replaced",
                              name));
    }
  }
  // Done: what was staged goes, the journal last.
  remove_staged(store, name, false);
  store.client().remove(store.where().key(replacing_journal(name)));
}

void markers_after_replacement(const Context& ctx, ObjectStore& store, const CheckpointMeta& meta,
                               std::optional<BestMarker>& best) {
  store.check_lock();
  move_last(store, meta.name, meta.commit_seq);
  if (!best || parse_step_dir_name(best->path) != meta.step) return;
  // best.json named the checkpoint replaced: it is rebuilt by its rule from
  // the checkpoints there now, the replacement with its own metrics among
  // them (or removed when none has the key).
  auto listed = list_root(ctx, store, false).checkpoints;
  auto computed = compute_best(listed, best->key, best->mode);
  store.check_lock();
  if (computed) {
    store.write_marker(k_best_file, serialize_best(*computed));
  } else {
    store.remove_marker(k_best_file);
  }
  best = computed;
}

std::optional<CheckpointMeta> finish_replacement(const Context& ctx, ObjectStore& store,
                                                 const std::string& name, s3::Lease& step_lease) {
  auto journal = store.read(replacing_journal(name), k_max_meta_bytes);
  if (!journal) return std::nullopt;
  CheckpointMeta meta;
  try {
    meta = parse_meta_of(name, *journal);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::io || e.kind() == ErrorKind::interrupted) throw;
    throw Error(ErrorKind::integrity,
                fmt::format("the journal of an interrupted replacement of {} ({}) is unreadable: "
                            "{}; remove it to keep the checkpoint as it is",
                            name, store.path_of(replacing_journal(name)), e.message()));
  }
  ctx.warning(fmt::format("finishing the replacement of {} (save --force) that was interrupted",
                          name));
  auto best = saving::read_best_tolerant(ctx, store);
  roll_forward(ctx, store, name, *journal, step_lease);
  markers_after_replacement(ctx, store, meta, best);
  return meta;
}

std::vector<std::string> ObjectStore::recover(const Context& ctx) {
  std::vector<std::string> out;
  const std::string under = key(replacing_dir()) + "/";
  for (const auto& o : m_client.list(under, "/").objects) {
    std::string leaf = o.key.substr(under.size());
    if (leaf.size() < 5 || leaf.compare(leaf.size() - 5, 5, ".json") != 0) continue;
    std::string name = leaf.substr(0, leaf.size() - 5);
    auto step = parse_step_dir_name(name);
    if (!step || name != step_dir_name(*step)) continue;
    check_interrupt();
    check_lock();
    // A save holding the step's lease is carrying it out now.
    auto step_lease = try_lease(saving_name(*step));
    if (!step_lease) continue;
    try {
      if (finish_replacement(ctx, *this, name, *step_lease)) out.push_back(name);
    } catch (const Error& e) {
      // A journal that is no manifest blocks no command: it is reported.
      if (e.kind() != ErrorKind::integrity && e.kind() != ErrorKind::unsupported) throw;
      ctx.warning(e.message());
      continue;
    }
    step_lease->remove();
  }
  return out;
}

void ObjectStore::clean_staged(std::int64_t max_idle_seconds, bool dry_run, Cleaned& out) {
  const std::int64_t now = now_ms();
  auto idle = [&](const std::string& when) {
    auto t = parse_rfc3339_ms(when);
    return t && now - *t > max_idle_seconds * 1000;
  };
  const std::string under = key(replacing_dir()) + "/";
  // Staged files by the step they were for.
  std::map<std::string, std::vector<std::string>> keys;
  std::map<std::string, bool> recent;
  std::set<std::string> journaled;
  for (const auto& o : m_client.list(under).objects) {
    std::string rel = o.key.substr(under.size());
    auto slash = rel.find('/');
    if (slash == std::string::npos) {
      if (rel.size() > 5 && rel.compare(rel.size() - 5, 5, ".json") == 0) {
        journaled.insert(rel.substr(0, rel.size() - 5));
      }
      continue;
    }
    std::string name = rel.substr(0, slash);
    keys[name].push_back(o.key);
    recent[name] = recent[name] || !idle(o.last_modified);
  }
  std::map<std::string, std::vector<s3::Upload>> uploads;
  for (auto& u : m_client.list_uploads(under)) {
    std::string rel = u.key.substr(under.size());
    auto slash = rel.find('/');
    if (slash == std::string::npos) continue;
    std::string name = rel.substr(0, slash);
    recent[name] = recent[name] || !idle(u.initiated);
    uploads[name].push_back(std::move(u));
  }
  for (const auto& [name, is_recent] : recent) {
    check_interrupt();
    auto step = parse_step_dir_name(name);
    // A journaled replacement is carried out, never cleaned; a recent one
    // may be a save at work.
    if (!step || journaled.count(name) || is_recent) continue;
    if (dry_run && !s3::lease_takeable(read(saving_name(*step), k_max_marker_bytes), now)) continue;
    std::string what = replacing_prefix(name) + "/";
    if (!dry_run) {
      check_lock();
      auto step_lease = try_lease(saving_name(*step));
      if (!step_lease) continue;  // a save of the step took it up meanwhile
      if (m_client.head(key(replacing_journal(name)))) continue;  // journaled meanwhile
      for (const auto& u : uploads[name]) m_client.abort_upload(u.key, u.upload_id);
      m_client.remove_many(keys[name]);
      step_lease->remove();
    }
    out.cleaned.push_back(what);
  }
}

}  // namespace ckpt::detail
