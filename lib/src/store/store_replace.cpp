// SPDX-License-Identifier: Apache-2.0
// save --force over a committed step of an object-store root. A store has no
// rename, so a checkpoint cannot be swapped for another in one step; the
// replacement is staged and journaled instead, so that it is carried out
// whole once it is decided, whatever stops the save:
//
//   .ckpt/replacing/step-NNNNNNNNN/TOKEN/PATH   the new files of one attempt,
//                                               uploaded (and hashed) while the
//                                               old checkpoint stays
//   .ckpt/replacing/step-NNNNNNNNN/TOKEN.lease  that attempt's lease while it
//                                               uploads (prune leaves its files)
//   .ckpt/replacing/step-NNNNNNNNN.json         the journal: the attempt's TOKEN
//                                               and the new _checkpoint.json,
//                                               written create-only under the
//                                               root's lease and the step's
//
// Carrying it out: the old manifest goes (the step is absent, never partial,
// for a moment), then the old objects, then the staged files are copied into
// place inside the store (no byte is uploaded twice), then the manifest is
// created, then the staging and the journal go. Each part can be done again,
// so a save stopped after the journal is finished by the next command that
// takes the root's lease (ObjectStore::lock_root).
#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

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

// Every staged object and multipart upload under name (a staging prefix)
// removed.
void remove_under(ObjectStore& store, const std::string& name, bool cleanup) {
  s3::Client& client = store.client();
  const std::string under = store.where().key(name) + "/";
  for (const auto& u : client.list_uploads(under)) client.abort_upload(u.key, u.upload_id);
  std::vector<std::string> keys;
  for (const auto& o : client.list(under).objects) keys.push_back(o.key);
  client.remove_many(keys, cleanup);
}

// The journal's text: the attempt whose files it copies and the manifest.
std::string serialize_journal(const Journal& j) {
  nlohmann::json doc = {{"format", 1}, {"staged", j.token}, {"manifest", j.manifest}};
  return doc.dump(2) + "\n";
}

}  // namespace

std::string replacing_prefix(const std::string& name) {
  return fmt::format("{}/{}", replacing_dir(), name);
}

std::string staging_of(const std::string& name, const std::string& token) {
  return fmt::format("{}/{}", replacing_prefix(name), token);
}

std::string replacing_journal(const std::string& name) {
  return fmt::format("{}/{}.json", replacing_dir(), name);
}

void stage_discard(ObjectStore& store, const std::string& name, const std::string& token) {
  try {
    remove_under(store, staging_of(name, token), true);
  } catch (const Error&) {
    // Staged objects are nobody's checkpoint: prune removes them once idle.
  }
}

bool write_journal(ObjectStore& store, const Journal& j) {
  return store.create(replacing_journal(j.name), serialize_journal(j));
}

std::optional<Journal> read_journal(ObjectStore& store, const std::string& name) {
  auto text = store.read(replacing_journal(name), k_max_meta_bytes + (1u << 20));
  if (!text) return std::nullopt;
  Journal j;
  j.name = name;
  try {
    auto doc = nlohmann::json::parse(*text);
    if (!doc.is_object() || doc.value("format", 0) != 1 || !doc["staged"].is_string() ||
        !doc["manifest"].is_string()) {
      throw Error(ErrorKind::integrity, "not a replacement journal of format 1");
    }
    j.token = doc["staged"].get<std::string>();
    j.manifest = doc["manifest"].get<std::string>();
    j.meta = parse_meta_of(name, j.manifest);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::integrity, fmt::format("the journal of an interrupted replacement of {} "
                                                  "({}) is unreadable: {}",
                                                  name, store.path_of(replacing_journal(name)),
                                                  e.what()));
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::io || e.kind() == ErrorKind::interrupted) throw;
    throw Error(ErrorKind::integrity, fmt::format("the journal of an interrupted replacement of {} "
                                                  "({}) is unreadable: {}",
                                                  name, store.path_of(replacing_journal(name)),
                                                  e.message()));
  }
  if (j.token.empty() || j.token.find('/') != std::string::npos) {
    throw Error(ErrorKind::integrity,
                fmt::format("the journal of an interrupted replacement of {} ({}) names no staging",
                            name, store.path_of(replacing_journal(name))));
  }
  return j;
}

bool roll_forward(const Context& ctx, ObjectStore& store, const Journal& j, s3::Lease& step_lease) {
  const std::string& name = j.name;
  const std::string manifest_name = name + "/" + k_meta_file;
  const std::string staged = staging_of(name, j.token);
  auto check = [&] {
    check_interrupt();
    store.check_lock();
    step_lease.check();
  };
  // Whatever is dropped, the journal goes last.
  auto drop = [&] {
    check();
    remove_under(store, staged, false);
    store.client().remove(store.where().key(replacing_journal(name)));
  };
  if (store.read(manifest_name, k_max_meta_bytes) == j.manifest) {
    drop();  // carried out; what was staged is left to remove
    return true;
  }
  std::vector<std::string> olds = names_of_step(store, j.meta.step);
  // A checkpoint of the step committed after the replacement was decided is
  // newer than it: the replacement is dropped, never that checkpoint.
  for (const auto& n : olds) {
    std::optional<CheckpointMeta> there;
    try {
      there = read_meta(store, n);
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::io || e.kind() == ErrorKind::interrupted) throw;
    }
    if (there && there->commit_seq > j.meta.commit_seq) {
      ctx.warning(fmt::format("{} was committed again (commit_seq {}) after its replacement "
                              "(commit_seq {}) was decided; the replacement is dropped",
                              n, there->commit_seq, j.meta.commit_seq));
      drop();
      return false;
    }
  }
  // Every staged file there, before anything of the old checkpoint goes.
  std::vector<FileEntry> files = j.meta.files;
  std::vector<char> present(files.size(), 0);
  for_each_parallel(files.size(), k_copy_workers, [&](std::size_t i) {
    auto info = store.client().head(store.where().key(staged + "/" + files[i].path));
    present[i] = info && info->size == files[i].size ? 1 : 0;
  });
  if (std::find(present.begin(), present.end(), 0) != present.end()) {
    bool old_there = std::any_of(olds.begin(), olds.end(),
                                 [&](const std::string& n) { return store.has_step(n); });
    ctx.warning(fmt::format("the files staged for the replacement of {} ({}) are not all there; "
                            "the replacement is dropped{}",
                            name, store.path_of(staged + "/"),
                            old_there ? " and the checkpoint stays as it was" : ""));
    drop();
    return false;
  }
  // The checkpoint it replaces goes, under every width of the step's name:
  // first its manifests, so that no reader sees it partly removed.
  if (std::find(olds.begin(), olds.end(), name) == olds.end()) olds.push_back(name);
  for (const auto& n : olds) {
    check();
    store.client().remove(store.where().key(n + "/" + k_meta_file));
  }
  for (const auto& n : olds) {
    check();
    store.clear_uncommitted(n);
  }
  for_each_parallel(files.size(), std::min(worker_count(ctx.threads) * 2, k_copy_workers),
                    [&](std::size_t i) {
                      check();
                      store.copy_within(ctx, staged + "/" + files[i].path, name + "/" + files[i].path,
                                        files[i].size, {});
                    });
  check();
  if (j.meta.checksum == "sha256") store.put(name + "/" + k_sums_file, serialize_sums(j.meta.files));
  check();
  if (!store.create(manifest_name, j.manifest) &&
      store.read(manifest_name, k_max_meta_bytes) != j.manifest) {
    throw Error(ErrorKind::conflict,
                fmt::format("{} was committed by another writer while it was being replaced; its "
                            "replacement is left to `ckpt prune`",
                            name));
  }
  drop();
  return true;
}

void markers_after_replacement(const Context& ctx, ObjectStore& store, const CheckpointMeta& meta,
                               std::optional<BestMarker>& best) {
  store.check_lock();
  move_last(store, meta.name, meta.commit_seq);
  if (!best) return;
  std::optional<BestMarker> next;
  if (parse_step_dir_name(best->path) == meta.step) {
    // best.json named the checkpoint replaced: it is rebuilt by its rule from
    // the checkpoints there now, the replacement with its own metrics among
    // them (or removed when none has the key).
    auto listed = list_root(ctx, store, false).checkpoints;
    next = compute_best(listed, best->key, best->mode);
    store.check_lock();
    if (!next) {
      store.remove_marker(k_best_file);
      best = std::nullopt;
      return;
    }
  } else if (auto value = meta.metric(best->key); value && improves(best->mode, *value, best->value)) {
    next = BestMarker{best->key, best->mode, *value, meta.step, meta.name, now_rfc3339()};
  }
  if (next && serialize_best(*next) != serialize_best(*best)) {
    store.check_lock();
    store.write_marker(k_best_file, serialize_best(*next));
    best = next;
  }
}

std::optional<CheckpointMeta> finish_replacement(const Context& ctx, ObjectStore& store,
                                                 const std::string& name, s3::Lease& step_lease) {
  auto journal = read_journal(store, name);
  if (!journal) return std::nullopt;
  ctx.warning(fmt::format("finishing the replacement of {} (save --force) that was stopped", name));
  auto best = saving::read_best_tolerant(ctx, store);
  if (!roll_forward(ctx, store, *journal, step_lease)) return std::nullopt;
  markers_after_replacement(ctx, store, journal->meta, best);
  return journal->meta;
}

void finish_replacement_of_step(const Context& ctx, ObjectStore& store, std::uint64_t step) {
  const std::string name = step_dir_name(step);
  if (!store.exists(replacing_journal(name))) return;
  auto step_lease = store.lease(ctx, ObjectStore::saving_name(step));
  auto lease = store.lock_root(ctx);  // finishes it, unless another holds the step
  finish_replacement(ctx, store, name, *step_lease);
  step_lease->remove();
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
    // A writer holding the step's lease carries it out itself.
    auto step_lease = try_lease(saving_name(*step));
    if (!step_lease) continue;
    try {
      if (finish_replacement(ctx, *this, name, *step_lease)) out.push_back(name);
    } catch (const Error& e) {
      // One step's replacement that cannot be finished now blocks no
      // command on the others: it is reported, and tried again by the next.
      if (e.kind() == ErrorKind::interrupted || (e.kind() == ErrorKind::locked && m_root_lease &&
                                                 m_root_lease->lost())) {
        throw;
      }
      ctx.warning(fmt::format("the stopped replacement of {} is not finished: {}", name, e.message()));
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
  // By attempt ("step-N/TOKEN"): its objects, whether any is recent, its
  // lease; and the attempt each journal names.
  std::map<std::string, std::vector<std::string>> keys;
  std::map<std::string, bool> recent;
  std::set<std::string> leases;
  std::set<std::string> journaled;
  std::set<std::string> journals;
  for (const auto& o : m_client.list(under).objects) {
    std::string rel = o.key.substr(under.size());
    auto slash = rel.find('/');
    if (slash == std::string::npos) {
      if (rel.size() > 5 && rel.compare(rel.size() - 5, 5, ".json") == 0) {
        journals.insert(rel.substr(0, rel.size() - 5));
      }
      continue;
    }
    std::string name = rel.substr(0, slash);
    std::string rest = rel.substr(slash + 1);
    auto next = rest.find('/');
    if (next == std::string::npos) {
      if (rest.size() > 6 && rest.compare(rest.size() - 6, 6, ".lease") == 0) {
        leases.insert(name + "/" + rest.substr(0, rest.size() - 6));
      }
      continue;
    }
    std::string attempt = name + "/" + rest.substr(0, next);
    keys[attempt].push_back(o.key);
    recent[attempt] = recent[attempt] || !idle(o.last_modified);
  }
  std::map<std::string, std::vector<s3::Upload>> uploads;
  for (auto& u : m_client.list_uploads(under)) {
    std::string rel = u.key.substr(under.size());
    auto slash = rel.find('/');
    auto next = slash == std::string::npos ? slash : rel.find('/', slash + 1);
    if (next == std::string::npos) continue;
    std::string attempt = rel.substr(0, next);
    recent[attempt] = recent[attempt] || !idle(u.initiated);
    uploads[attempt].push_back(std::move(u));
  }
  for (const auto& name : journals) {
    try {
      if (auto j = read_journal(*this, name)) journaled.insert(name + "/" + j->token);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::integrity) throw;
      // Unreadable: nothing staged of the step is removed.
      for (const auto& [attempt, _] : recent) {
        if (attempt.rfind(name + "/", 0) == 0) journaled.insert(attempt);
      }
    }
  }
  for (const auto& [attempt, is_recent] : recent) {
    check_interrupt();
    // A journaled attempt is carried out, never cleaned; a recent one may be
    // a save at work, and so is one whose lease is held.
    if (journaled.count(attempt) || is_recent) continue;
    const std::string lease_name = replacing_dir() + "/" + attempt + ".lease";
    if (dry_run && !s3::lease_takeable(read(lease_name, k_max_marker_bytes), now)) continue;
    std::unique_ptr<s3::Lease> held;
    if (!dry_run) {
      check_lock();
      held = try_lease(lease_name);
      if (!held) continue;  // the attempt's save is alive
      auto name = attempt.substr(0, attempt.find('/'));
      auto j = m_client.head(key(replacing_journal(name)));
      if (j) continue;  // journaled meanwhile: left to the next prune to tell
      for (const auto& u : uploads[attempt]) m_client.abort_upload(u.key, u.upload_id);
      m_client.remove_many(keys[attempt]);
      held->remove();
    }
    out.cleaned.push_back(replacing_dir() + "/" + attempt + "/");
  }
  // Leases of attempts with nothing staged (killed before their first
  // upload, or after their journal): removed while held.
  if (dry_run) return;
  for (const auto& attempt : leases) {
    if (recent.count(attempt)) continue;
    if (auto held = try_lease(replacing_dir() + "/" + attempt + ".lease")) held->remove();
  }
}

}  // namespace ckpt::detail
