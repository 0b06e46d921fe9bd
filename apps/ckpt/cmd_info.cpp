// SPDX-License-Identifier: Apache-2.0
// ckpt info: the table of checkpoints, or one checkpoint in detail.
#include <algorithm>
#include <memory>

#include <fmt/format.h>

#include "cli.hpp"
#include "ckpt/format.hpp"

namespace ckpt::cli {

namespace {

struct InfoArgs {
  std::string ref;
  bool path = false;
  std::string limit;
  std::string sort;
};

// The checkpoints the table shows: the newest N by commit (--limit), in the
// order --sort asks for: step (the default), commit, or a metric's value,
// lowest first, those without a value for it after the others.
std::vector<const Checkpoint*> shown(const Listing& l, const InfoArgs& a) {
  std::vector<const Checkpoint*> out;
  for (const auto& c : l.checkpoints) out.push_back(&c);
  auto by_commit = [](const Checkpoint* x, const Checkpoint* y) {
    return x->meta.commit_seq < y->meta.commit_seq;
  };
  if (auto n = parse_count("--limit", a.limit)) {
    if (*n == 0) throw Error(ErrorKind::usage, "--limit 0: want 1 or more");
    std::sort(out.begin(), out.end(), by_commit);
    if (out.size() > *n) out.erase(out.begin(), out.end() - static_cast<std::ptrdiff_t>(*n));
  }
  std::string key = a.sort.empty() ? "step" : a.sort;
  if (key == "step") {
    std::sort(out.begin(), out.end(),
              [](const Checkpoint* x, const Checkpoint* y) { return x->meta.step < y->meta.step; });
  } else if (key == "commit") {
    std::sort(out.begin(), out.end(), by_commit);
  } else {
    check_metric_key("--sort", key);
    std::stable_sort(out.begin(), out.end(), [&](const Checkpoint* x, const Checkpoint* y) {
      auto vx = x->meta.metric(key), vy = y->meta.metric(key);
      if (vx && vy) return *vx < *vy || (*vx == *vy && x->meta.step < y->meta.step);
      if (vx || vy) return vx.has_value();
      return x->meta.step < y->meta.step;
    });
  }
  return out;
}

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}


std::string metrics_text(const CheckpointMeta& m) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : m.metrics) parts.push_back(fmt::format("{}={}", k, format_metric(v)));
  return join(parts, " ");
}

// policy.json's rules, without the file's own schema_version.
json policy_json(const Policy& p) {
  json j = json::parse(serialize_policy(p));
  json out = json::object();
  for (const auto& [k, v] : j.items()) {
    if (k != "schema_version") out[k] = v;
  }
  return out;
}

std::string policy_text(const Policy& p) {
  std::vector<std::string> parts;
  if (p.best_key) {
    parts.push_back(fmt::format("best {} ({})", *p.best_key, mode_name(p.best_mode.value_or(Mode::min))));
  }
  if (p.keep_last) parts.push_back(fmt::format("keep-last {}", *p.keep_last));
  if (p.keep_best) parts.push_back(fmt::format("keep-best {}", *p.keep_best));
  if (p.keep_every) parts.push_back(fmt::format("keep-every {}", *p.keep_every));
  if (p.keep_within) parts.push_back(fmt::format("keep-within {}", *p.keep_within));
  if (p.checksum) parts.push_back(fmt::format("checksum {}", *p.checksum));
  return parts.empty() ? "none" : join(parts, ", ");
}

int show_table(Cli& cli, const InfoArgs& a) {
  auto l = list_checkpoints(cli.context(), cli.root());
  if (!l) return cli.fail(l.error());
  std::vector<const Checkpoint*> rows_of;
  try {
    rows_of = shown(*l, a);
  } catch (const Error& e) {
    return cli.fail(e);
  }
  for (const auto& [name, why] : l->invalid) cli.warn(fmt::format("{} is not a valid checkpoint: {}", name, why));
  if (cli.global.json) {
    json cps = json::array();
    for (const Checkpoint* cp : rows_of) {
      json c = checkpoint_summary_json(cp->path, cp->meta);
      c["markers"] = cp->markers;
      cps.push_back(c);
    }
    json pending = json::array();
    for (const auto& p : l->pending) {
      pending.push_back(pending_json(l->root, p));
    }
    json invalid = json::array();
    for (const auto& [name, why] : l->invalid) {
      json entry = checkpoint_ref_json(l->root, name);
      entry["reason"] = why;
      invalid.push_back(entry);
    }
    cli.print_json({{"root", l->root},
                    {"last", last_json(l->root, l->last)},
                    {"best", best_marker_json(l->root, l->best)},
                    {"policy", l->policy ? policy_json(*l->policy) : json(nullptr)},
                    {"checkpoints", cps},
                    {"total", l->checkpoints.size()},
                    {"pending", pending},
                    {"invalid", invalid}});
    return 0;
  }
  if (cli.global.quiet) return 0;
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"NAME", "STEP", "CREATED", "SIZE", "METRICS", "MARKERS"});
  for (const Checkpoint* cp : rows_of) {
    const Checkpoint& c = *cp;
    rows.push_back({c.name, fmt::format("{}", c.meta.step), c.meta.created,
                    human_size(c.meta.total_size), metrics_text(c.meta), join(c.markers, ",")});
  }
  print_table(rows, {1, 3});
  std::size_t all = l->checkpoints.size();
  if (rows_of.size() < all) {
    fmt::print("\n{} of {} checkpoints (the newest) in {}\n", rows_of.size(), all, l->root);
  } else {
    fmt::print("\n{} checkpoint{} in {}\n", all, all == 1 ? "" : "s", l->root);
  }
  if (!l->pending.empty()) {
    // Steps whose shards are not all in: never a checkpoint until the last one is.
    fmt::print("\npending (sharded steps not yet committed):\n");
    std::vector<std::vector<std::string>> prow;
    prow.push_back({"NAME", "STEP", "GROUP", "SHARDS", "MISSING", "UPDATED"});
    for (const auto& p : l->pending) {
      prow.push_back({p.name, fmt::format("{}", p.step), p.shards.group,
                      fmt::format("{}/{}", p.shards.present.size(), p.shards.count),
                      shard_ranges(p.shards.missing), p.updated.empty() ? "-" : p.updated});
    }
    print_table(prow, {1});
  }
  fmt::print("policy: {}\n", l->policy ? policy_text(*l->policy) : std::string("none"));
  return 0;
}

int show_one(Cli& cli, const InfoArgs& a) {
  auto r = resolve_ref(cli.context(), cli.root(), a.ref);
  if (!r) return cli.fail(r.error());
  if (a.path && !cli.global.json) {
    fmt::print("{}\n", r->path);
    return 0;
  }
  if (cli.global.json) {
    std::string root = cli.root_path();
    if (a.path) {
      cli.print_json({{"root", root}, {"name", r->name}, {"path", r->path}, {"step", r->meta.step}});
      return 0;
    }
    json j = {{"root", root}};
    add_fields(j, checkpoint_detail_json(r->path, r->meta));
    j["markers"] = r->markers;
    cli.print_json(j);
    return 0;
  }
  if (cli.global.quiet) return 0;
  const CheckpointMeta& m = r->meta;
  fmt::print("name:       {}\n", m.name);
  fmt::print("path:       {}\n", r->path);
  fmt::print("step:       {}\n", m.step);
  fmt::print("commit_seq: {}\n", m.commit_seq);
  fmt::print("created:    {}\n", m.created);
  fmt::print("markers:    {}\n", r->markers.empty() ? "-" : join(r->markers, ", "));
  fmt::print("size:       {} in {} file{} (checksum {})\n", human_size(m.total_size),
             m.files.size(), m.files.size() == 1 ? "" : "s", m.checksum);
  fmt::print("metrics:    {}\n", m.metrics.empty() ? "-" : metrics_text(m));
  std::vector<std::string> meta;
  for (const auto& [k, v] : m.meta) meta.push_back(fmt::format("{}={}", k, v));
  fmt::print("meta:       {}\n", meta.empty() ? "-" : join(meta, " "));
  fmt::print("weights:    {}\n", m.weights.empty() ? "-" : join(m.weights, ", "));
  if (m.shards) {
    fmt::print("shards:     {} (group {})\n", *m.shards, m.shard_group.value_or("-"));
  }
  fmt::print("files:\n");
  for (const auto& f : m.files) fmt::print("  {:>12}  {}\n", f.size, f.path);
  return 0;
}

}  // namespace

void setup_info(CLI::App& app, Cli& cli) {
  auto a = std::make_shared<InfoArgs>();
  auto* c = app.add_subcommand("info", "List the checkpoints, or show one");
  c->footer(
      "REF is latest (or last), best, a step (1200), a directory name (step-000001200)\n"
      "or a path to a checkpoint directory inside the root.\n"
      "Example: python train.py --resume \"$(ckpt -C runs/exp1 info latest --path)\"");
  c->add_option("REF", a->ref, "The checkpoint to show (default: all, as a table)")
      ->type_name("REF");
  c->add_flag("--path", a->path, "Print only the absolute path of REF");
  c->add_option("--limit", a->limit, "Show only the newest N checkpoints (by commit)")
      ->type_name("N");
  c->add_option("--sort", a->sort,
                "Order of the table: step (default), commit, or a metric (lowest first)")
      ->type_name("step|commit|METRIC");
  c->callback([&cli, a]() {
    cli.run = [&cli, a]() {
      if (a->ref.empty()) {
        if (a->path) return cli.fail(Error(ErrorKind::usage, "--path needs a REF"));
        return show_table(cli, *a);
      }
      if (!a->limit.empty() || !a->sort.empty()) {
        return cli.fail(Error(ErrorKind::usage, "--limit and --sort go with the table (no REF)"));
      }
      return show_one(cli, *a);
    };
  });
}

}  // namespace ckpt::cli
