// SPDX-License-Identifier: Apache-2.0
// ckpt save: options, the call into the library, and the report.
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <memory>

#include <fmt/format.h>

#include "cli.hpp"
#include "ckpt/format.hpp"

namespace ckpt::cli {

namespace {

struct SaveArgs {
  std::string step;
  std::vector<std::string> sources;
  std::vector<std::string> from;
  std::vector<std::string> metrics;
  std::vector<std::string> meta;
  std::vector<std::string> weights;
  std::string best_key;
  std::string mode;
  std::string keep_last, keep_best, keep_every;
  std::string keep_within;
  std::string checksum;
  bool copy = false, move = false, link = false;
  bool force = false;
  bool follow_symlinks = false;
  bool dedup = false, no_dedup = false;
  std::string shard;
  std::string group;
  std::string pending_expiry;
};

SaveOptions to_options(const Cli& cli, const SaveArgs& a) {
  SaveOptions o;
  o.root = cli.root();
  auto step = parse_step(a.step);
  if (!step) {
    throw Error(ErrorKind::usage,
                fmt::format("--step {:?}: want an integer from 0 to 2^63-1", a.step));
  }
  o.step = *step;
  for (const auto& s : a.sources) {
    Source src;
    if (auto pos = s.find('='); pos != std::string::npos) {
      src.dest = s.substr(0, pos);
      src.path = s.substr(pos + 1);
      if (src.dest->empty() || src.path.empty()) {
        throw Error(ErrorKind::usage, fmt::format("source {:?}: want PATH or DEST=PATH", s));
      }
    } else {
      src.path = s;
    }
    o.sources.push_back(std::move(src));
  }
  for (const auto& d : a.from) o.sources.push_back(Source{d, std::nullopt, true});
  for (const auto& m : a.metrics) {
    auto [k, v] = split_key_value(m, "--metric");
    check_metric_key("--metric", k);
    o.metrics[k] = parse_number(fmt::format("--metric {}=", k), v);
  }
  for (const auto& m : a.meta) {
    auto [k, v] = split_key_value(m, "--meta");
    o.meta[k] = v;
  }
  o.weights = a.weights;
  if (!a.best_key.empty()) {
    check_metric_key("--best-key", a.best_key);
    o.policy.best_key = a.best_key;
  }
  if (!a.mode.empty()) o.policy.best_mode = parse_mode(a.mode);
  o.policy.keep_last = parse_count("--keep-last", a.keep_last);
  o.policy.keep_best = parse_count("--keep-best", a.keep_best);
  o.policy.keep_every = parse_count("--keep-every", a.keep_every);
  if (!a.keep_within.empty()) o.policy.keep_within = a.keep_within;
  if (!a.checksum.empty()) o.policy.checksum = a.checksum;
  if (a.dedup && a.no_dedup) throw Error(ErrorKind::usage, "--dedup and --no-dedup exclude each other");
  if (a.dedup) o.policy.dedup = true;
  if (a.no_dedup) o.policy.dedup = false;
  if (int(a.copy) + int(a.move) + int(a.link) > 1) {
    throw Error(ErrorKind::usage, "--copy, --move and --link exclude each other");
  }
  o.transfer = a.move ? Transfer::move : a.link ? Transfer::link : Transfer::copy;
  o.force = a.force;
  o.follow_symlinks = a.follow_symlinks;
  if (!a.pending_expiry.empty()) o.policy.pending_expiry = a.pending_expiry;
  if (!a.group.empty() && a.shard.empty()) {
    throw Error(ErrorKind::usage, "--group names the attempt group of a sharded save: give --shard");
  }
  if (!a.shard.empty()) {
    auto spec = parse_shard(a.shard, a.group.empty() ? std::nullopt
                                                     : std::optional<std::string>(a.group));
    if (!spec) throw spec.error();
    o.shard = *spec;
  }
  return o;
}

int run_save(Cli& cli, const SaveArgs& a) {
  SaveOptions opts = to_options(cli, a);
  auto r = save(cli.context(), opts);
  if (!r) return cli.fail(r.error());  // no "done": the error ends the progress
  cli.progress_done();
  if (cli.global.json) {
    cli.print_json(save_report_json(cli.root_path(), *r));
    return 0;
  }
  if (cli.global.quiet) return 0;
  if (r->shards && r->shards->count > 1) {
    const ShardStatus& s = *r->shards;
    std::string who = fmt::format("shard {}/{}", opts.shard->index, s.count);
    if (r->existing) {
      fmt::print("{} of {} is already committed with the same files (commit {})\n  {}\n", who,
                 r->name, r->commit_seq, r->path);
      return 0;
    }
    if (!r->committed) {
      fmt::print("staged {} of {} ({} of {} in; missing {}): {} file{}, {}\n", who, r->name,
                 s.present.size(), s.count, shard_ranges(s.missing), r->files,
                 r->files == 1 ? "" : "s", human_size(r->total_size));
      return 0;
    }
    fmt::print("{} was the last of {} in; ", who, s.count);
  }
  fmt::print("{} {}: {} file{}, {}, commit {}\n  {}\n",
             r->existing ? "already committed with the same files:" : "saved", r->name, r->files,
             r->files == 1 ? "" : "s", human_size(r->total_size), r->commit_seq, r->path);
  print_save_outcome(*r);
  return 0;
}

}  // namespace

json save_report_json(const std::string& root, const SaveReport& report) {
  const SaveReport* r = &report;
  json j = {{"root", root},
            {"name", r->name},
            {"path", r->path},
            {"step", r->step},
            {"commit_seq", r->committed || r->existing ? json(r->commit_seq) : json(nullptr)},
            {"committed", r->committed},
            {"existing", r->existing},
            {"metrics", metrics_json(r->metrics)},
            {"total_size", r->total_size},
            {"file_count", r->files},
            {"best_updated", r->best_updated},
            {"best", best_marker_json(root, r->best)}};
  json pruned = json::array();
  for (const auto& name : r->pruned) pruned.push_back(checkpoint_ref_json(root, name));
  j["pruned"] = pruned;
  j["shared"] = {{"file_count", r->shared_files},
                 {"total_size", r->shared_bytes},
                 {"with", r->shared_with ? checkpoint_ref_json(root, *r->shared_with)
                                         : json(nullptr)}};
  j["shards"] = r->shards ? shards_json(*r->shards) : json(nullptr);
  return j;
}

void print_save_outcome(const SaveReport& report) {
  const SaveReport* r = &report;
  if (r->shared_files > 0) {
    fmt::print("shared with {}: {} unchanged file{}, {} (not written again)\n", *r->shared_with,
               r->shared_files, r->shared_files == 1 ? "" : "s", human_size(r->shared_bytes));
  }
  if (r->best_key) {
    if (r->best_updated) {
      fmt::print("best: {} = {} (new best)\n", *r->best_key, format_metric(r->best_value));
    } else if (r->best_value) {
      fmt::print("best: {} = {} (not better than best.json)\n", *r->best_key,
                 format_metric(r->best_value));
    }
  }
  for (const auto& p : r->pruned) fmt::print("pruned {}\n", p);
}

void setup_save(CLI::App& app, Cli& cli) {
  auto a = std::make_shared<SaveArgs>();
  auto* c = app.add_subcommand("save", "Commit files as one checkpoint, atomically");
  c->footer(
      "SOURCE is PATH (stored under its base name) or DEST=PATH. A directory is stored\n"
      "as the tree DEST/...; --from DIR stores DIR's contents at the top level.\n"
      "Example: ckpt -C runs/exp1 save --step 1200 model.safetensors optim/ \\\n"
      "           --metric val_loss=1.23 --best-key val_loss --weights model.safetensors\n"
      "Sharded (every rank, no barrier; the last one in commits the step):\n"
      "  torchrun ... -- sh -c 'ckpt -C /shared/ckpt save --step 1200 --shard env rank$RANK.pt'");
  c->add_option("--step", a->step, "The training step (0 <= N < 2^63)")->required()
      ->type_name("N");
  c->add_option("SOURCE", a->sources, "Files or directories to store: PATH or DEST=PATH")
      ->type_name("PATH|DEST=PATH");
  c->add_option("--from", a->from, "Store the contents of DIR at the top level (repeatable)")
      ->allow_extra_args(false)
      ->type_name("DIR");
  c->add_option("--metric", a->metrics, "KEY=VALUE, a number (repeatable)")
      ->allow_extra_args(false)
      ->type_name("KEY=VALUE");
  c->add_option("--meta", a->meta, "KEY=VALUE, a string (repeatable)")
      ->allow_extra_args(false)
      ->type_name("KEY=VALUE");
  c->add_option("--weights", a->weights, "Mark stored PATH or glob as weights (repeatable)")
      ->allow_extra_args(false)
      ->type_name("PATH|GLOB");
  c->add_option("--best-key", a->best_key, "The metric that ranks checkpoints for best.json")
      ->type_name("KEY");
  c->add_option("--mode", a->mode, "Whether lower (min, default) or higher (max) is better")
      ->check(CLI::IsMember({"min", "max"}))
      ->type_name("MODE");
  c->add_option("--keep-last", a->keep_last, "Retention: keep the N most recent (policy.json)")
      ->type_name("N");
  c->add_option("--keep-best", a->keep_best, "Retention: keep the K best (policy.json)")
      ->type_name("K");
  c->add_option("--keep-every", a->keep_every,
                "Retention: keep steps that are multiples of S (policy.json)")
      ->type_name("S");
  c->add_option("--keep-within", a->keep_within,
                "Retention: keep those within DUR of the newest, e.g. 7d (policy.json)")
      ->type_name("DUR");
  c->add_option("--checksum", a->checksum, "sha256 (default, or policy.json's) or none")
      ->check(CLI::IsMember({"sha256", "none"}))
      ->type_name("ALGO");
  c->add_flag("--copy", a->copy, "Copy the sources (reflink where possible; the default)");
  c->add_flag("--move", a->move,
              "Rename the files in; put back on failure; given directories stay");
  c->add_flag("--link", a->link,
              "Hard-link the sources (you promise never to modify them afterwards)");
  c->add_flag("--force", a->force,
              "Replace an existing step's other content; allow switching the best key");
  c->add_flag("--follow-symlinks", a->follow_symlinks,
              "Store the content behind symbolic links instead of refusing them");
  c->add_flag("--dedup", a->dedup,
              "Share files unchanged since the newest checkpoint: cloned or hard-linked (and "
              "read-only) in a directory, copied by the store in a bucket (policy.json)");
  c->add_flag("--no-dedup", a->no_dedup, "Write every file again (policy.json)");
  c->add_option("--shard", a->shard,
                "Sharded save: this writer is shard I of N (0 <= I < N), or env (RANK/WORLD_SIZE, "
                "else SLURM_PROCID/SLURM_NTASKS); the last shard in commits")
      ->type_name("I/N|env");
  c->add_option("--group", a->group,
                "Attempt group of the shards (default: from TORCHELASTIC_RUN_ID or SLURM_JOB_ID "
                "and the restart count, else \"default\")")
      ->type_name("ID");
  c->add_option("--pending-expiry", a->pending_expiry,
                "Prune removes pending sharded steps idle this long (default 24h; policy.json)")
      ->type_name("DUR");
  c->callback([&cli, a]() { cli.run = [&cli, a]() { return run_save(cli, *a); }; });
}

}  // namespace ckpt::cli
