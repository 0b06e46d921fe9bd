// SPDX-License-Identifier: Apache-2.0
// rm and rollback: remove named checkpoints, crash-safe as prune, and bring
// the markers up to date.
#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "ckpt/repository.hpp"
#include "internal.hpp"
#include "store/store.hpp"

namespace ckpt {

namespace {

// The checkpoints a marker protects: what `last` and best.json say, and
// what they would say after a crash left them stale (the newest by commit,
// the best by the metrics).
std::set<std::string> protected_names(const Listing& l, const std::optional<std::string>& key,
                                      Mode mode) {
  detail::MarkerProtection p = detail::marker_protection(l, key, mode);
  std::set<std::string> out(p.last.begin(), p.last.end());
  out.insert(p.best.begin(), p.best.end());
  return out;
}

// Removes names (under the lock unless dry) and brings the markers up to date.
RemoveReport remove_names(const Context& ctx, detail::Store& store, const Listing& l,
                          const std::vector<std::string>& names,
                          const std::optional<std::string>& key, Mode mode, bool dry_run) {
  RemoveReport r;
  r.dry_run = dry_run;
  std::set<std::string> gone(names.begin(), names.end());
  std::vector<Checkpoint> kept;
  for (const auto& c : l.checkpoints) {
    if (gone.count(c.name)) {
      r.removed.push_back(c.name);
    } else {
      kept.push_back(c);
    }
  }
  if (!dry_run && !r.removed.empty()) {
    // The markers first, so that they never name what is about to go: killed
    // before the removal, the root has every checkpoint and valid markers,
    // and running the command again finishes it.
    detail::refresh_markers(ctx, store, kept, key, mode);
    std::optional<detail::LastRead> last;
    std::optional<BestMarker> best;
    try {
      last = detail::read_last(ctx, store);
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::io) throw;
    }
    try {
      best = detail::read_best(store);
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::io) throw;
    }
    if (last && gone.count(last->name)) {
      if (const Checkpoint* n = detail::newest(kept)) {
        store.write_marker(k_last_file, serialize_last(n->name));
      } else {
        store.remove_marker(k_last_file);  // nothing left to name
      }
    }
    // Still naming a removed one: no checkpoint left has the metric.
    if (best && gone.count(best->path)) {
      store.remove_marker(k_best_file);
      best.reset();
    }
    store.discard(ctx, r.removed);
    r.best = best;
  } else if (l.best && !gone.count(l.best->path)) {
    // What best.json would say: itself when what it names stays (it only
    // moves on strict improvement), else the best of what is left.
    r.best = l.best;
  } else if (key) {
    r.best = detail::compute_best(kept, *key, mode);
  }
  if (const Checkpoint* n = detail::newest(kept)) r.last = n->name;
  return r;
}

detail::BestRule rule_of(const Listing& l) {
  return detail::best_rule(std::nullopt, std::nullopt, l.policy, l.best);
}

}  // namespace

Result<RemoveReport> remove_checkpoints(const Context& ctx, const RemoveOptions& opts) {
  return capture([&]() -> RemoveReport {
    if (opts.refs.empty()) throw Error(ErrorKind::usage, "give the checkpoints to remove");
    auto store = detail::open_store(ctx, opts.root);
    std::unique_ptr<detail::RootLock> lock;
    if (!opts.dry_run) lock = store->lock_root(ctx);
    Listing l = detail::list_root(ctx, *store, false);
    detail::BestRule rule = rule_of(l);
    // Every ref first: one that names nothing removes nothing.
    std::vector<std::string> names;
    for (const auto& ref : opts.refs) {
      Checkpoint c = detail::resolve_checkpoint(ctx, *store, ref);
      if (std::find(names.begin(), names.end(), c.name) == names.end()) names.push_back(c.name);
    }
    if (!opts.force) {
      auto kept_by_marker = protected_names(l, rule.key, rule.mode);
      for (const auto& n : names) {
        if (kept_by_marker.count(n)) {
          throw Error(ErrorKind::conflict,
                      fmt::format("{} is the checkpoint `last` or best.json names (or would "
                                  "name); give --force to remove it, and the markers move to "
                                  "what is left",
                                  n))
              .with_reason(k_reason_protected);
        }
      }
    }
    return remove_names(ctx, *store, l, names, rule.key, rule.mode, opts.dry_run);
  });
}

Result<RemoveReport> rollback(const Context& ctx, const RollbackOptions& opts) {
  return capture([&]() -> RemoveReport {
    auto store = detail::open_store(ctx, opts.root);
    std::unique_ptr<detail::RootLock> lock;
    if (!opts.dry_run) lock = store->lock_root(ctx);
    Listing l = detail::list_root(ctx, *store, false);
    Checkpoint to = detail::resolve_checkpoint(ctx, *store, opts.ref);
    std::vector<std::string> names;
    for (const auto& c : l.checkpoints) {
      if (c.name == to.name) continue;
      if (c.meta.commit_seq > to.meta.commit_seq || c.meta.step > to.meta.step) {
        names.push_back(c.name);
      }
    }
    detail::BestRule rule = rule_of(l);
    return remove_names(ctx, *store, l, names, rule.key, rule.mode, opts.dry_run);
  });
}

}  // namespace ckpt
