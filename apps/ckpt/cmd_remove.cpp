// SPDX-License-Identifier: Apache-2.0
// ckpt rm and ckpt rollback: remove checkpoints by name, or everything after one.
#include <memory>

#include <fmt/format.h>

#include "cli.hpp"

namespace ckpt::cli {

namespace {

struct RmArgs {
  std::vector<std::string> refs;
  bool force = false;
  bool dry_run = false;
};

struct RollbackArgs {
  std::string ref;
  bool dry_run = false;
};

int report(Cli& cli, const RemoveReport& r, const std::string& what) {
  if (cli.global.json) {
    std::string root = cli.root_path();
    json removed = json::array();
    for (const auto& name : r.removed) removed.push_back(checkpoint_ref_json(root, name));
    cli.print_json({{"root", root},
                    {"dry_run", r.dry_run},
                    {"removed", removed},
                    {"last", last_json(root, r.last)},
                    {"best", best_marker_json(root, r.best)}});
    return 0;
  }
  if (cli.global.quiet) return 0;
  for (const auto& n : r.removed) fmt::print("{} {}\n", r.dry_run ? "would remove" : "removed", n);
  if (r.removed.empty()) fmt::print("nothing to remove {}\n", what);
  fmt::print("{}last: {}, best: {}{}\n", r.dry_run ? "then " : "", r.last.value_or("none"),
             r.best ? r.best->path : std::string("none"),
             r.dry_run ? " (dry run: nothing changed)" : "");
  return 0;
}

int run_rm(Cli& cli, const RmArgs& a) {
  RemoveOptions o;
  o.root = cli.root();
  o.refs = a.refs;
  o.force = a.force;
  o.dry_run = a.dry_run;
  auto r = remove_checkpoints(cli.context(), o);
  if (!r) return cli.fail(r.error());
  return report(cli, *r, "");
}

int run_rollback(Cli& cli, const RollbackArgs& a) {
  RollbackOptions o;
  o.root = cli.root();
  o.ref = a.ref;
  o.dry_run = a.dry_run;
  auto r = rollback(cli.context(), o);
  if (!r) return cli.fail(r.error());
  return report(cli, *r, fmt::format("after {}", a.ref));
}

}  // namespace

void setup_rm(CLI::App& app, Cli& cli) {
  auto a = std::make_shared<RmArgs>();
  auto* c = app.add_subcommand("rm", "Remove checkpoints by name");
  c->footer(
      "Crash-safe as prune: each checkpoint is unlisted by one rename, then deleted.\n"
      "The checkpoint last or best.json names is refused unless --force; the markers\n"
      "then move to what is left.\n"
      "Example: ckpt -C runs/exp1 rm 1200 step-000001300");
  c->add_option("REF", a->refs, "The checkpoints (latest, best, a step, a name, a path)")
      ->required()
      ->type_name("REF");
  c->add_flag("--force", a->force, "Also the checkpoint last or best.json names");
  c->add_flag("-n,--dry-run", a->dry_run, "Show what would go; change nothing");
  c->callback([&cli, a]() { cli.run = [&cli, a]() { return run_rm(cli, *a); }; });
}

void setup_rollback(CLI::App& app, Cli& cli) {
  auto a = std::make_shared<RollbackArgs>();
  auto* c = app.add_subcommand("rollback", "Make a checkpoint the latest: remove all after it");
  c->footer(
      "Removes every checkpoint committed after REF and every one of a later step, so\n"
      "that a job resumed from REF saves its next steps without collisions. last then\n"
      "names REF; best.json is recomputed if it named a removed one.\n"
      "Example: ckpt -C runs/exp1 rollback --dry-run 1200");
  c->add_option("REF", a->ref, "The checkpoint to return to")->required()->type_name("REF");
  c->add_flag("-n,--dry-run", a->dry_run, "Show what would go; change nothing");
  c->callback([&cli, a]() { cli.run = [&cli, a]() { return run_rollback(cli, *a); }; });
}

}  // namespace ckpt::cli
