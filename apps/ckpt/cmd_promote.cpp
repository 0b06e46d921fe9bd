// SPDX-License-Identifier: Apache-2.0
// ckpt promote-best: offer a checkpoint as best, or rebuild best.json.
#include <cerrno>
#include <cstdlib>
#include <memory>

#include <fmt/format.h>

#include "cli.hpp"
#include "ckpt/retention.hpp"

namespace ckpt::cli {

namespace {

struct PromoteArgs {
  std::string ref;
  std::string key;
  std::string mode;
  std::string value;
  bool force = false;
};

int run_promote(Cli& cli, const PromoteArgs& a) {
  PromoteOptions o;
  o.root = cli.root();
  if (!a.ref.empty()) o.ref = a.ref;
  if (!a.key.empty()) o.key = a.key;
  if (!a.mode.empty()) o.mode = parse_mode(a.mode);
  if (!a.value.empty()) o.value = parse_number("--value", a.value);
  o.force = a.force;
  auto r = promote_best(cli.context(), o);
  if (!r) return cli.fail(r.error());
  if (cli.global.json) {
    std::string root = cli.root_path();
    cli.print_json({{"root", root},
                    {"promoted", r->promoted},
                    {"reason", r->reason},
                    {"best", best_marker_json(root, r->best)}});
    return 0;
  }
  if (cli.global.quiet) return 0;
  if (r->promoted) {
    fmt::print("promoted {}: {} = {} ({})\n", r->best->path, r->best->key,
               format_metric(r->best->value), r->reason);
  } else {
    fmt::print("not promoted: {}\n", r->reason);
  }
  return 0;
}

}  // namespace

void setup_promote(CLI::App& app, Cli& cli) {
  auto a = std::make_shared<PromoteArgs>();
  auto* c = app.add_subcommand("promote-best", "Offer a checkpoint as best, or rebuild best.json");
  c->footer(
      "With REF, best.json changes only on strict improvement (or with --force);\n"
      "not promoting is not an error. Without REF, best.json is rebuilt from every\n"
      "checkpoint. Switch the key: ckpt promote-best --key acc --mode max --force");
  c->add_option("REF", a->ref, "The checkpoint to offer (default: rebuild from all)")
      ->type_name("REF");
  c->add_option("--key", a->key, "The metric (default: best.json's, else policy.json's)")
      ->type_name("KEY");
  c->add_option("--mode", a->mode, "min or max")->check(CLI::IsMember({"min", "max"}))
      ->type_name("MODE");
  c->add_option("--value", a->value,
                "The value, for a checkpoint that does not record the metric")
      ->type_name("V");
  c->add_flag("--force", a->force, "Promote even without improvement; allow a key/mode switch");
  c->callback([&cli, a]() { cli.run = [&cli, a]() { return run_promote(cli, *a); }; });
}

}  // namespace ckpt::cli
