// SPDX-License-Identifier: Apache-2.0
// ckpt copy: commit one checkpoint again at another root.
#include <memory>

#include <fmt/format.h>

#include "cli.hpp"
#include "ckpt/format.hpp"

namespace ckpt::cli {

namespace {

struct CopyArgs {
  std::string ref;
  std::string to;
  std::optional<std::uint64_t> step;
};

int run_copy(Cli& cli, const CopyArgs& a) {
  CopyOptions o;
  o.root = cli.root();
  o.ref = a.ref;
  o.to = a.to;
  o.step = a.step;
  if (o.step && *o.step > k_max_step) {
    return cli.fail(Error(ErrorKind::usage, "--step must be below 2^63"));
  }
  auto r = copy(cli.context(), o);
  if (!r) return cli.fail(r.error());
  cli.progress_done();
  const SaveReport& s = r->saved;
  if (cli.global.json) {
    std::string to = canonical_root(a.to);
    json j = save_report_json(to, s);
    j["source"] = checkpoint_ref_json(cli.root_path(), r->source.name);
    cli.print_json(j);
    return 0;
  }
  if (cli.global.quiet) return 0;
  if (s.existing) {
    fmt::print("{} is already at the destination with the same files: {} (commit {})\n  {}\n",
               r->source.name, s.name, s.commit_seq, s.path);
  } else {
    fmt::print("copied {} to {}: {} file{}, {}, commit {}\n  {}\n", r->source.name, s.name,
               s.files, s.files == 1 ? "" : "s", human_size(s.total_size), s.commit_seq, s.path);
  }
  print_save_outcome(s);
  return 0;
}

}  // namespace

void setup_copy(CLI::App& app, Cli& cli) {
  auto a = std::make_shared<CopyArgs>();
  auto* c = app.add_subcommand("copy", "Commit a checkpoint again at another root");
  c->footer(
      "Every byte is read, hashed and checked against the source's manifest before the\n"
      "commit at DEST_ROOT, with the same step, metrics, meta and weights; DEST_ROOT's own\n"
      "policy (best.json, retention) applies. The same files already committed there are a\n"
      "success. Either root may be a directory or s3://BUCKET/PREFIX.\n"
      "Example (flush a fast local root to durable storage):\n"
      "  ckpt -C /scratch/run1 copy latest s3://ml-ckpts/run1");
  c->add_option("REF", a->ref, "The checkpoint to copy: latest, best, a step, step-N or a path")
      ->required()
      ->type_name("REF");
  c->add_option("DEST_ROOT", a->to, "The root to commit it in: a directory or s3://BUCKET/PREFIX")
      ->required()
      ->type_name("DEST_ROOT");
  c->add_option("--step", a->step, "The step at DEST_ROOT (default: the checkpoint's)")
      ->type_name("N");
  c->callback([&cli, a]() { cli.run = [&cli, a]() { return run_copy(cli, *a); }; });
}

}  // namespace ckpt::cli
