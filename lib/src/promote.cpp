// SPDX-License-Identifier: Apache-2.0
// promote-best: offer one checkpoint as best (strict improvement), or rebuild best.json.
#include <cmath>

#include <fmt/format.h>

#include "ckpt/clock.hpp"
#include "ckpt/retention.hpp"
#include "internal.hpp"
#include "store/store.hpp"

namespace ckpt {

namespace {

void write_best(detail::Store& store, const BestMarker& b) {
  store.write_marker(k_best_file, serialize_best(b));
}

// Records a switched best key/mode in policy.json so later saves and prunes follow it.
void record_key(detail::Store& store, const std::optional<Policy>& policy,
                const std::string& key, Mode mode) {
  Policy p = policy.value_or(Policy{});
  if (p.best_key == key && p.best_mode.value_or(Mode::min) == mode) return;
  p.best_key = key;
  p.best_mode = mode;
  store.write_marker(k_policy_file, serialize_policy(p));
}

}  // namespace

Result<PromoteReport> promote_best(const Context& ctx, const PromoteOptions& opts) {
  return capture([&]() -> PromoteReport {
    auto store_ptr = detail::open_store(ctx, opts.root);
    detail::Store& store = *store_ptr;
    if (opts.value && !std::isfinite(*opts.value)) {
      throw Error(ErrorKind::usage, "--value must be a finite number");
    }
    if (opts.value && !opts.ref) {
      throw Error(ErrorKind::usage, "--value needs a REF: it names one checkpoint's value");
    }
    auto lock = store.lock_root(ctx);
    auto policy = detail::read_policy(store);
    std::optional<BestMarker> current;
    try {
      current = detail::read_best(store);
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::io || e.kind() == ErrorKind::unsupported) throw;
      ctx.warning(fmt::format("{}; it will be replaced", e.message()));
    }

    detail::BestRule rule = detail::best_rule(opts.key, opts.mode, policy, current);
    if (!rule.key) {
      throw Error(ErrorKind::usage,
                  "no best key: give --key (none in best.json or policy.json)");
    }
    const std::optional<std::string>& key = rule.key;
    Mode mode = rule.mode;
    bool switching = current && (current->key != *key || current->mode != mode);
    if (switching && !opts.force) {
      throw Error(ErrorKind::conflict,
                  fmt::format("best.json ranks by {} ({}); switching to {} ({}) needs --force",
                              current->key, mode_name(current->mode), *key, mode_name(mode)));
    }
    // Like every command that changes the root, bring `last` up to date.
    Listing listing = detail::list_root(ctx, store, false);
    detail::refresh_markers(ctx, store, listing.checkpoints, std::nullopt, mode);

    PromoteReport report;
    report.best = current;
    if (!opts.ref) {
      auto rebuilt = detail::compute_best(listing.checkpoints, *key, mode);
      if (!rebuilt) {
        report.reason = fmt::format("no checkpoint records a finite {}", *key);
        return report;
      }
      if (current && !switching && current->path == rebuilt->path &&
          current->value == rebuilt->value) {
        report.reason = fmt::format("{} is already the best by {}", current->path, *key);
        return report;
      }
      write_best(store, *rebuilt);
      if (switching || !policy || !policy->best_key) record_key(store, policy, *key, mode);
      report.promoted = true;
      report.reason = fmt::format("rebuilt from {} checkpoint{}", listing.checkpoints.size(),
                                  listing.checkpoints.size() == 1 ? "" : "s");
      report.best = rebuilt;
      return report;
    }

    Checkpoint c = detail::resolve_checkpoint(ctx, store, *opts.ref);
    std::optional<double> recorded = c.meta.metric(*key);
    std::optional<double> value = opts.value ? opts.value : recorded;
    if (opts.value && c.meta.metrics.count(*key) && (!recorded || *recorded != *opts.value)) {
      throw Error(ErrorKind::usage,
                  fmt::format("{} records {} = {}; --value {} disagrees (best.json must agree "
                              "with the checkpoint's metrics)",
                              c.name, *key, recorded ? fmt::format("{}", *recorded) : "null",
                              *opts.value));
    }
    if (!value || !std::isfinite(*value)) {
      report.reason = fmt::format("{} records no finite {} (give --value)", c.name, *key);
      return report;
    }
    if (current && !switching && !opts.force && current->path == c.name) {
      report.reason = fmt::format("{} is already best", c.name);
      return report;
    }
    if (current && !switching && !opts.force && !improves(mode, *value, current->value)) {
      report.reason = fmt::format("{} = {} is not strictly better than {} = {} ({})", *key,
                                  *value, *key, current->value, current->path);
      return report;
    }
    BestMarker b{*key, mode, *value, c.meta.step, c.name, now_rfc3339()};
    write_best(store, b);
    if (switching || !policy || !policy->best_key) record_key(store, policy, *key, mode);
    report.promoted = true;
    report.reason = current ? (opts.force && !improves(mode, *value, current->value)
                                   ? std::string("forced")
                                   : fmt::format("improves on {} = {} ({})", key->c_str(),
                                                 current->value, current->path))
                            : std::string("first checkpoint with the key");
    report.best = b;
    return report;
  });
}

}  // namespace ckpt
