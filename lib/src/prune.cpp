// SPDX-License-Identifier: Apache-2.0
// prune: apply the retention policy; unlist by an atomic rename into trash, then delete.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <set>

#include <fmt/format.h>

#include "ckpt/atomic_file.hpp"
#include "ckpt/clock.hpp"
#include "ckpt/retention.hpp"
#include "internal.hpp"
#include "store/store.hpp"

namespace ckpt {

namespace detail {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::int64_t pending_expiry_seconds(const Policy& policy) {
  const std::string text = policy.pending_expiry.value_or(k_default_pending_expiry);
  auto seconds = parse_duration(text);
  if (!seconds) {
    throw Error(ErrorKind::usage,
                fmt::format("--pending-expiry {:?} is not a duration (30m, 12h, 7d, 2w, 1d12h)",
                            text));
  }
  return *seconds;
}

std::vector<std::string> clean_private(const Context& ctx, const std::string& root, bool dry_run,
                                       RootTemps root_temps) {
  FileSystem& fs = ctx.file_system();
  check_private_dirs(ctx, root);
  std::vector<std::string> cleaned;
  // The files of an interrupted --move go back to their owner before anything is removed.
  cleaned = recover_interrupted_moves(ctx, root, dry_run);
  std::string staging = staging_dir(root);
  if (auto st = fs.lstat(staging); st && st->type == FileType::dir) {
    auto names = fs.list_dir(staging);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
      // A journal left by a move that could not be put back is kept for its owner.
      if (ends_with(n, ".moves")) continue;
      std::string path = join_path(staging, n);
      bool is_lock = ends_with(n, ".lock");
      std::string lock_file = is_lock ? path : path + ".lock";
      if (!is_lock && fs.lstat(path + ".moves")) continue;  // its files are the user's
      if (is_lock && (fs.lstat(path.substr(0, path.size() - 5)) ||
                      fs.lstat(path.substr(0, path.size() - 5) + ".moves"))) {
        continue;  // handled with its dir
      }
      // A writer holds its staging lock for its whole life: a free lock means it is gone.
      if (FileLock::is_held(lock_file)) continue;
      if (!is_lock) cleaned.push_back(fmt::format("{}/staging/{}", k_private_dir, n));
      if (dry_run) continue;
      FileLock probe = FileLock::try_acquire(lock_file);
      if (!probe.held()) continue;  // a writer just started
      remove_tree(fs, path);
      if (!is_lock) remove_tree(fs, lock_file);
    }
  }
  // Temporary files of marker writes a crash interrupted (only written under
  // the root lock, which our caller holds, so none of them is live).
  for (const auto& [dir, rel] : {std::pair{root, std::string()},
                                 std::pair{private_dir(root), std::string(k_private_dir) + "/"}}) {
    if (dir == root && root_temps == RootTemps::no) continue;
    if (auto st = fs.lstat(dir); !st || st->type != FileType::dir) continue;
    auto names = fs.list_dir(dir);
    std::sort(names.begin(), names.end());
    static const std::vector<std::string> prefixes = [] {
      std::vector<std::string> p;
      for (const char* base : {k_last_file, k_best_file, k_policy_file, "commit_seq", "manifests"}) {
        p.push_back(fmt::format(".{}.tmp.", base));
      }
      return p;
    }();
    for (const auto& n : names) {
      if (n.empty() || n[0] != '.') continue;  // a root of 10,000 checkpoints: skip them fast
      bool temp = std::any_of(prefixes.begin(), prefixes.end(),
                              [&](const std::string& p) { return n.rfind(p, 0) == 0; });
      if (!temp) continue;
      auto st = fs.lstat(join_path(dir, n));
      if (!st || st->type != FileType::file) continue;
      cleaned.push_back(rel + n);
      if (!dry_run) fs.unlink(join_path(dir, n));
    }
  }
  std::string trash = trash_dir(root);
  if (auto st = fs.lstat(trash); st && st->type == FileType::dir) {
    auto names = fs.list_dir(trash);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
      cleaned.push_back(fmt::format("{}/trash/{}", k_private_dir, n));
      if (!dry_run) remove_tree(fs, join_path(trash, n));
    }
  }
  return cleaned;
}

void refresh_markers(const Context& ctx, Store& store, const std::vector<Checkpoint>& checkpoints,
                     const std::optional<std::string>& key, Mode mode) {
  std::optional<LastRead> last;
  try {
    last = read_last(ctx, store);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::io) throw;
  }
  const Checkpoint* n = newest(checkpoints);
  // `last` naming a checkpoint that is there but not readable as one (a
  // newer ckpt's, or damaged) is left for verify to report, not moved back.
  bool names_other =
      last && (store.exists(last->name) || store.has_step(last->name)) &&
      std::none_of(checkpoints.begin(), checkpoints.end(),
                   [&](const Checkpoint& c) { return c.name == last->name; });
  if (n && !names_other && (!last || last->legacy || last->name != n->name)) {
    store.write_marker(k_last_file, serialize_last(n->name));
  }
  if (!key) return;
  std::optional<BestMarker> current;
  bool unreadable = false;
  try {
    current = read_best(store);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::io || e.kind() == ErrorKind::unsupported) throw;
    unreadable = true;
  }
  auto computed = compute_best(checkpoints, *key, mode);
  if (!computed) return;
  bool dangling = current && std::none_of(checkpoints.begin(), checkpoints.end(),
                                          [&](const Checkpoint& c) { return c.name == current->path; });
  bool other_rule = current && (current->key != *key || current->mode != mode);
  if (!current || unreadable || dangling || other_rule ||
      improves(mode, computed->value, current->value)) {
    store.write_marker(k_best_file, serialize_best(*computed));
  }
}

void refresh_markers(const Context& ctx, const std::string& root,
                     const std::vector<Checkpoint>& checkpoints,
                     const std::optional<std::string>& key, Mode mode) {
  DirStore store(ctx.file_system(), root);
  refresh_markers(ctx, store, checkpoints, key, mode);
}

void discard_checkpoints(const Context& ctx, const std::string& root,
                         const std::vector<std::string>& names) {
  if (names.empty()) return;
  FileSystem& fs = ctx.file_system();
  make_dirs(fs, trash_dir(root));
  std::vector<std::string> unlisted;
  for (const auto& name : names) {
    std::string to = join_path(trash_dir(root), fmt::format("{}.{}", name, unique_suffix()));
    try {
      fs.rename(join_path(root, name), to, RenameMode::noreplace);
      unlisted.push_back(to);
    } catch (const Error& e) {
      if (e.sys_errno() != ENOENT) throw;  // another cleaner got there first
    }
  }
  fs.fsync_dir(root);
  fs.fsync_dir(trash_dir(root));
  for (const auto& t : unlisted) remove_tree(fs, t);
}

MarkerProtection marker_protection(const Listing& listing, const std::optional<std::string>& key,
                                   Mode mode) {
  MarkerProtection p;
  if (listing.last_marker) p.last.push_back(*listing.last_marker);
  if (const Checkpoint* n = newest(listing.checkpoints)) p.last.push_back(n->name);
  if (listing.best) p.best.push_back(listing.best->path);
  if (key) {
    if (auto b = compute_best(listing.checkpoints, *key, mode)) p.best.push_back(b->path);
  }
  return p;
}

PruneReport prune_locked(const Context& ctx, Store& store, const Policy& policy, bool dry_run) {
  PruneReport report;
  report.dry_run = dry_run;
  Listing listing = list_root(ctx, store, !dry_run);
  for (const auto& [name, why] : listing.invalid) {
    ctx.warning(fmt::format("{} is not a valid checkpoint ({}); prune leaves it alone", name, why));
  }

  detail::BestRule rule = best_rule(std::nullopt, std::nullopt, policy, listing.best);
  std::optional<std::string> key = rule.key;
  Mode mode = rule.mode;
  if (!key && store.exists(k_best_file)) {
    // The best checkpoint cannot be told apart: deleting now could delete it.
    throw Error(ErrorKind::integrity,
                "best.json is unreadable and policy.json names no best key, so the best "
                "checkpoint cannot be protected; run `ckpt verify --repair` or `ckpt "
                "promote-best --key KEY --force` first");
  }
  RetentionRules rules = rules_from_policy(policy);
  rules.mode = mode;
  if (rules.keep_best && !key) {
    throw Error(ErrorKind::usage,
                "--keep-best needs a best key: give --best-key at save, or record best_key in "
                "policy.json");
  }

  std::vector<RetentionItem> items;
  for (const auto& c : listing.checkpoints) {
    RetentionItem it;
    it.name = c.name;
    it.step = c.meta.step;
    it.commit_seq = c.meta.commit_seq;
    it.created_ms = parse_rfc3339_ms(c.meta.created);
    if (key) it.metric = c.meta.metric(*key);
    items.push_back(std::move(it));
  }
  MarkerProtection protect = marker_protection(listing, key, mode);
  auto decisions = apply_retention(items, rules, protect.last, protect.best);
  for (auto& d : decisions) {
    if (d.keep) {
      report.kept.push_back(d);
    } else {
      report.removed.push_back(d.name);
    }
  }
  report.checkpoints = std::move(listing.checkpoints);
  report.best_key = key;

  if (!dry_run) store.discard(ctx, report.removed);
  Cleaned cleaned = store.clean(ctx, pending_expiry_seconds(policy), dry_run);
  report.cleaned = std::move(cleaned.cleaned);
  report.expired = std::move(cleaned.expired);
  if (!dry_run) {
    std::set<std::string> removed(report.removed.begin(), report.removed.end());
    std::vector<Checkpoint> kept;
    for (const auto& c : report.checkpoints) {
      if (!removed.count(c.name)) kept.push_back(c);
    }
    refresh_markers(ctx, store, kept, key, mode);
  }
  return report;
}

PruneReport prune_locked(const Context& ctx, const std::string& root, const Policy& policy,
                         bool dry_run) {
  DirStore store(ctx.file_system(), root);
  return prune_locked(ctx, store, policy, dry_run);
}

}  // namespace detail

Result<PruneReport> prune(const Context& ctx, const PruneOptions& opts) {
  return capture([&]() -> PruneReport {
    auto store_ptr = detail::open_store(ctx, opts.root);
    detail::Store& store = *store_ptr;
    std::optional<Policy> recorded = detail::read_policy(store);
    Policy effective;
    if (opts.rules.has_retention_rule()) {
      effective = opts.rules;
      if (recorded) {
        if (!effective.best_key) effective.best_key = recorded->best_key;
        if (!effective.best_mode) effective.best_mode = recorded->best_mode;
      }
    } else if (recorded) {
      effective = *recorded;
    }
    if (opts.pending_expiry) {
      effective.pending_expiry = opts.pending_expiry;
    } else if (recorded && recorded->pending_expiry) {
      effective.pending_expiry = recorded->pending_expiry;
    }
    detail::pending_expiry_seconds(effective);  // a bad duration is refused before the lock
    if (!effective.has_retention_rule() && opts.pending_expiry) {
      // Only the pending steps and the leftovers of writers gone.
      PruneReport report;
      report.dry_run = opts.dry_run;
      std::unique_ptr<detail::RootLock> lock;
      if (!opts.dry_run) lock = store.lock_root(ctx);
      detail::Cleaned cleaned =
          store.clean(ctx, detail::pending_expiry_seconds(effective), opts.dry_run);
      report.cleaned = std::move(cleaned.cleaned);
      report.expired = std::move(cleaned.expired);
      report.checkpoints = detail::list_root(ctx, store, false).checkpoints;
      for (const auto& c : report.checkpoints) {
        report.kept.push_back(RetentionDecision{c.name, true, {"no-rule"}});
      }
      return report;
    }
    if (!effective.has_retention_rule()) {
      throw Error(ErrorKind::usage,
                  "no retention rule given and none in policy.json: give --keep-last, "
                  "--keep-best, --keep-every or --keep-within; prune never deletes everything "
                  "by accident");
    }
    rules_from_policy(effective);  // reject a bad rule before taking the lock
    if (opts.dry_run) return detail::prune_locked(ctx, store, effective, true);
    auto lock = store.lock_root(ctx);
    return detail::prune_locked(ctx, store, effective, false);
  });
}

}  // namespace ckpt
