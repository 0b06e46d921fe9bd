// SPDX-License-Identifier: Apache-2.0
// ckpt abort: remove a pending sharded step.
#include <memory>

#include <fmt/format.h>

#include "cli.hpp"
#include "ckpt/format.hpp"

namespace ckpt::cli {

namespace {

int run_abort(Cli& cli, const std::string& step_text) {
  std::string digits = step_text.rfind("step-", 0) == 0 ? step_text.substr(5) : step_text;
  auto step = parse_step(digits);
  if (!step) {
    return cli.fail(Error(ErrorKind::usage,
                          fmt::format("STEP {:?}: want a step number (1200) or a name "
                                      "(step-000001200)",
                                      step_text)));
  }
  auto r = abort_pending(cli.context(), cli.root(), *step);
  if (!r) return cli.fail(r.error());
  if (cli.global.json) {
    std::string root = cli.root_path();
    json j = {{"root", root}};
    add_fields(j, pending_json(root, *r));
    cli.print_json(j);
    return 0;
  }
  if (cli.global.quiet) return 0;
  fmt::print("aborted pending {} (group {}; {} of {} shards were in)\n", r->name,
             r->shards.group, r->shards.present.size(), r->shards.count);
  return 0;
}

}  // namespace

void setup_abort(CLI::App& app, Cli& cli) {
  auto step = std::make_shared<std::string>();
  auto* c = app.add_subcommand("abort", "Remove a pending sharded step and its recorded shards");
  c->footer(
      "A pending step is a sharded save whose shards are not all in (ckpt info lists\n"
      "them). Committed checkpoints are never touched. A shard of the aborted attempt\n"
      "that arrives later starts a new pending step.\n"
      "Example: ckpt -C runs/exp1 abort 1200");
  c->add_option("STEP", *step, "The pending step: a number (1200) or a name (step-000001200)")
      ->required()
      ->type_name("STEP");
  c->callback([&cli, step]() { cli.run = [&cli, step]() { return run_abort(cli, *step); }; });
}

}  // namespace ckpt::cli
