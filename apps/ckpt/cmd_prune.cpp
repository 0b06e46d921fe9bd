// SPDX-License-Identifier: Apache-2.0
// ckpt prune: the retention plan as a keep/remove table, and its execution.
#include <map>
#include <memory>

#include <fmt/format.h>

#include "cli.hpp"
#include "ckpt/retention.hpp"

namespace ckpt::cli {

namespace {

struct PruneArgs {
  std::string keep_last, keep_best, keep_every, keep_within;
  std::string pending_expiry;
  bool dry_run = false;
};

int run_prune(Cli& cli, const PruneArgs& a) {
  PruneOptions o;
  o.root = cli.root();
  o.rules.keep_last = parse_count("--keep-last", a.keep_last);
  o.rules.keep_best = parse_count("--keep-best", a.keep_best);
  o.rules.keep_every = parse_count("--keep-every", a.keep_every);
  if (!a.keep_within.empty()) o.rules.keep_within = a.keep_within;
  if (!a.pending_expiry.empty()) o.pending_expiry = a.pending_expiry;
  o.dry_run = a.dry_run;
  auto r = prune(cli.context(), o);
  if (!r) return cli.fail(r.error());
  if (cli.global.json) {
    std::string root = cli.root_path();
    json expired = json::array();
    for (const auto& p : r->expired) expired.push_back(pending_json(root, p));
    json kept = json::array();
    for (const auto& k : r->kept) {
      json entry = checkpoint_ref_json(root, k.name);
      entry["reasons"] = k.reasons;
      kept.push_back(entry);
    }
    json removed = json::array();
    for (const auto& name : r->removed) removed.push_back(checkpoint_ref_json(root, name));
    cli.print_json({{"root", root},
                    {"dry_run", r->dry_run},
                    {"kept", kept},
                    {"removed", removed},
                    {"cleaned", r->cleaned},
                    {"expired", expired}});
    return 0;
  }
  if (cli.global.quiet) return 0;
  for (const auto& p : r->expired) {
    fmt::print("{} pending {} (group {}, {} of {} shards in, idle since {})\n",
               r->dry_run ? "would remove" : "removed", p.name, p.shards.group,
               p.shards.present.size(), p.shards.count, p.updated.empty() ? "-" : p.updated);
  }
  if (r->checkpoints.empty()) {
    fmt::print("no checkpoints: nothing to prune\n");
    return 0;
  }
  // One row per checkpoint, in step order, as restic forget shows its plan.
  std::vector<std::vector<std::string>> rows;
  std::string metric_head = r->best_key ? *r->best_key : std::string("METRIC");
  rows.push_back({"ACTION", "NAME", "CREATED", metric_head, "REASONS"});
  std::map<std::string, const RetentionDecision*> kept;
  for (const auto& k : r->kept) kept[k.name] = &k;
  for (const auto& c : r->checkpoints) {
    std::string action = r->dry_run ? "remove" : "removed";
    std::string reasons;
    if (auto it = kept.find(c.name); it != kept.end()) {
      action = "keep";
      for (const auto& why : it->second->reasons) reasons += (reasons.empty() ? "" : ",") + why;
    }
    std::string metric = r->best_key && c.meta.metrics.count(*r->best_key)
                             ? format_metric(c.meta.metric(*r->best_key))
                             : "-";
    rows.push_back({action, c.name, c.meta.created, metric, reasons});
  }
  print_table(rows, {3});
  fmt::print("\n{} {} checkpoint{}, kept {}", r->dry_run ? "would remove" : "removed",
             r->removed.size(), r->removed.size() == 1 ? "" : "s", r->kept.size());
  if (!r->cleaned.empty()) {
    fmt::print("; {} {} leftover{} of interrupted commands", r->dry_run ? "would clean" : "cleaned",
               r->cleaned.size(), r->cleaned.size() == 1 ? "" : "s");
  }
  fmt::print("{}\n", r->dry_run ? " (dry run: nothing changed)" : "");
  return 0;
}

}  // namespace

void setup_prune(CLI::App& app, Cli& cli) {
  auto a = std::make_shared<PruneArgs>();
  auto* c = app.add_subcommand("prune", "Apply the retention policy (safe from cron)");
  c->footer(
      "A checkpoint is kept if any rule keeps it; last and best are always kept.\n"
      "Without rule options, the rules recorded in policy.json apply.\n"
      "Example (cron): ckpt -C runs/exp1 --lock-timeout 600 -q prune");
  c->add_option("--keep-last", a->keep_last, "Keep the N most recently committed")
      ->type_name("N");
  c->add_option("--keep-best", a->keep_best, "Keep the K best by the best key")
      ->type_name("K");
  c->add_option("--keep-every", a->keep_every, "Keep every checkpoint whose step is a multiple of S")
      ->type_name("S");
  c->add_option("--keep-within", a->keep_within,
                "Keep those created within DUR of the newest (30m, 12h, 7d, 2w, 1d12h)")
      ->type_name("DUR");
  c->add_option("--pending-expiry", a->pending_expiry,
                "Remove pending sharded steps (on an object-store root, a killed save's "
                "objects) idle longer than DUR (default: policy.json's, else 24h); alone, "
                "prune only does this and the cleanup")
      ->type_name("DUR");
  c->add_flag("-n,--dry-run", a->dry_run, "Show the plan; change nothing");
  c->callback([&cli, a]() { cli.run = [&cli, a]() { return run_prune(cli, *a); }; });
}

}  // namespace ckpt::cli
