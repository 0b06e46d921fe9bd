// SPDX-License-Identifier: Apache-2.0
// ckpt diff: what changed between two checkpoints (files and metrics).
#include <memory>
#include <set>

#include <fmt/format.h>

#include "cli.hpp"

namespace ckpt::cli {

namespace {

struct DiffArgs {
  std::string a;
  std::string b;
  bool exit_code = false;
};

json metric_json(const CheckpointMeta& m, const std::string& key) {
  auto it = m.metrics.find(key);
  if (it == m.metrics.end() || !it->second) return nullptr;
  return *it->second;
}

std::string metric_text(const CheckpointMeta& m, const std::string& key) {
  auto it = m.metrics.find(key);
  if (it == m.metrics.end()) return "-";
  return format_metric(it->second);
}

int run_diff(Cli& cli, const DiffArgs& a) {
  auto r = diff(cli.context(), cli.root(), a.a, a.b);
  if (!r) return cli.fail(r.error());
  const DiffReport& d = *r;
  std::set<std::string> keys;
  for (const auto& [k, v] : d.a.meta.metrics) keys.insert(k);
  for (const auto& [k, v] : d.b.meta.metrics) keys.insert(k);
  int rc = a.exit_code && d.differ() ? 1 : 0;
  if (cli.global.json) {
    json added = json::array(), removed = json::array(), changed = json::array();
    for (const auto& f : d.added) added.push_back(file_json(f));
    for (const auto& f : d.removed) removed.push_back(file_json(f));
    for (const auto& [x, y] : d.changed) {
      changed.push_back({{"path", x.path}, {"a", file_json(x)}, {"b", file_json(y)}});
    }
    json metrics = json::object();
    for (const auto& k : keys) {
      metrics[k] = {{"a", metric_json(d.a.meta, k)}, {"b", metric_json(d.b.meta, k)}};
    }
    cli.print_json({{"root", cli.root_path()},
                    {"a", checkpoint_summary_json(d.a.path, d.a.meta)},
                    {"b", checkpoint_summary_json(d.b.path, d.b.meta)},
                    {"compared_by", d.by_digest ? "sha256" : "size"},
                    {"differ", d.differ()},
                    {"added", added},
                    {"removed", removed},
                    {"changed", changed},
                    {"unchanged", d.unchanged},
                    {"metrics", metrics}});
    return rc;
  }
  if (cli.global.quiet) return rc;
  fmt::print("{} -> {}\n", d.a.name, d.b.name);
  for (const auto& f : d.removed) fmt::print("- {}  ({})\n", f.path, human_size(f.size));
  for (const auto& f : d.added) fmt::print("+ {}  ({})\n", f.path, human_size(f.size));
  for (const auto& [x, y] : d.changed) {
    fmt::print("M {}  ({} -> {})\n", x.path, human_size(x.size), human_size(y.size));
  }
  fmt::print("{} added, {} removed, {} changed, {} unchanged (compared by {})\n", d.added.size(),
             d.removed.size(), d.changed.size(), d.unchanged,
             d.by_digest ? "SHA-256" : "size: a checkpoint has no digests");
  if (!keys.empty()) {
    std::vector<std::vector<std::string>> rows;
    rows.push_back({"METRIC", d.a.name, d.b.name});
    for (const auto& k : keys) rows.push_back({k, metric_text(d.a.meta, k), metric_text(d.b.meta, k)});
    fmt::print("\n");
    print_table(rows, {1, 2});
  }
  return rc;
}

}  // namespace

void setup_diff(CLI::App& app, Cli& cli) {
  auto a = std::make_shared<DiffArgs>();
  auto* c = app.add_subcommand("diff", "Show the files and metrics that differ between two checkpoints");
  c->footer(
      "Compares the manifests: files added, removed and changed (by SHA-256 and size),\n"
      "and the metrics side by side. No file is read (ckpt verify checks the files).\n"
      "Exit 0 whether or not they differ; with --exit-code, 1 when files differ.\n"
      "Example: ckpt -C runs/exp1 diff best latest");
  c->add_option("A", a->a, "The first checkpoint (a REF: latest, best, a step, a name)")
      ->required()
      ->type_name("REF");
  c->add_option("B", a->b, "The second checkpoint (a REF)")->required()->type_name("REF");
  c->add_flag("--exit-code", a->exit_code,
              "Exit 1 when files were added, removed or changed (as git diff --exit-code)");
  c->callback([&cli, a]() { cli.run = [&cli, a]() { return run_diff(cli, *a); }; });
}

}  // namespace ckpt::cli
