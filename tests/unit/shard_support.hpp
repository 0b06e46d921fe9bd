// SPDX-License-Identifier: Apache-2.0
// Helpers for the tests of sharded saves (SPEC §10): what each shard stores, its save options,
// and checks that a committed sharded checkpoint is whole and that nothing private is left.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "ckpt/hash.hpp"
#include "ckpt/repository.hpp"
#include "ckpt/retention.hpp"
#include "test_support.hpp"

namespace ckpt_test {

// The files shard `index` of `step` stores: stored path -> content. The
// stored paths of two shards never overlap ("rank-I/...").
inline std::map<std::string, std::string> shard_files(std::uint64_t step, std::uint64_t index,
                                                      const std::string& flavour = "") {
  const std::string r = "rank-" + std::to_string(index);
  const std::string tag = " step " + std::to_string(step) + flavour;
  return {
      {r + "/weights.bin",
       std::string(1500 + 100 * index, static_cast<char>('A' + index % 26)) + tag},
      {r + "/optim/state.pt", "optimizer state of rank " + std::to_string(index) + tag + "\n"},
  };
}

// Writes shard `index`'s sources under dir/src/shard-I (unless
// write_sources is false: they are there already) and returns the save
// options of that shard (root: dir/root). Shard 0 carries the metric, the
// meta and the best key, as a training job's rank 0 usually does.
inline ckpt::SaveOptions shard_options(const std::string& dir, std::uint64_t step,
                                       std::uint64_t index, std::uint64_t count,
                                       const std::string& group = "g1",
                                       const std::string& flavour = "", bool write_sources = true) {
  const std::string r = "rank-" + std::to_string(index);
  const std::string src = dir + "/src/shard-" + std::to_string(index);
  if (write_sources) {
    std::error_code ec;
    std::filesystem::remove_all(src, ec);
    for (const auto& [path, data] : shard_files(step, index, flavour)) {
      write_text(src + "/" + path.substr(r.size() + 1), data);
    }
  }
  ckpt::SaveOptions o;
  o.root = dir + "/root";
  o.step = step;
  o.sources = {ckpt::Source{src, r, false}};
  o.weights = {r + "/weights.bin"};
  o.shard = ckpt::ShardSpec{index, count, group};
  if (index == 0) {
    o.metrics = {{"loss", 0.001}};
    o.meta = {{"run", "r1"}};
    o.policy.best_key = "loss";
  }
  return o;
}

inline bool read_whole(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in.good()) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

// "" when `step` is committed in root as the whole set of `count` shards of
// `group`: every shard's files with their sizes and digests in
// _checkpoint.json, on disk with the right bytes, and ckpt::verify passes.
inline std::string check_complete(const ckpt::Context& ctx, const std::string& root,
                                  std::uint64_t step, std::uint64_t count,
                                  const std::string& group = "g1",
                                  const std::string& flavour = "") {
  auto c = ckpt::resolve_ref(ctx, root, std::to_string(step));
  if (!c.ok()) return "step " + std::to_string(step) + " is not committed: " + c.error().message();
  const ckpt::CheckpointMeta& m = c->meta;
  std::string out;
  if (!m.shards || *m.shards != count)
    out += "_checkpoint.json: shards is not " + std::to_string(count) + "; ";
  if (!m.shard_group || *m.shard_group != group)
    out += "_checkpoint.json: the group is not " + group + "; ";
  if (!m.metric("loss") || *m.metric("loss") != 0.001) out += "shard 0's metric is missing; ";
  if (m.meta.count("run") == 0) out += "shard 0's meta is missing; ";
  std::map<std::string, std::pair<std::string, std::uint64_t>> want;
  for (std::uint64_t i = 0; i < count; ++i) {
    for (const auto& [p, d] : shard_files(step, i, flavour)) want[p] = {d, i};
  }
  if (m.files.size() != want.size()) {
    out += "_checkpoint.json lists " + std::to_string(m.files.size()) + " files, not " +
           std::to_string(want.size()) + "; ";
  }
  for (const auto& f : m.files) {
    auto it = want.find(f.path);
    if (it == want.end()) {
      out += "unexpected file " + f.path + "; ";
      continue;
    }
    const auto& [data, index] = it->second;
    if (!f.shard || *f.shard != index) out += f.path + ": wrong shard index; ";
    if (f.size != data.size()) out += f.path + ": wrong size; ";
    if (!f.sha256 || *f.sha256 != ckpt::sha256_hex(data)) out += f.path + ": wrong digest; ";
    std::string on_disk;
    if (!read_whole(c->path + "/" + f.path, on_disk)) {
      out += f.path + ": missing on disk; ";
    } else if (on_disk != data) {
      out += f.path + ": wrong bytes on disk; ";
    }
  }
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::string w = "rank-" + std::to_string(i) + "/weights.bin";
    if (std::find(m.weights.begin(), m.weights.end(), w) == m.weights.end()) {
      out += "weights lack " + w + "; ";
    }
  }
  ckpt::VerifyOptions vo;
  vo.root = root;
  vo.refs = {c->name};
  auto v = ckpt::verify(ctx, vo);
  if (!v.ok()) {
    out += "verify failed to run: " + v.error().message() + "; ";
  } else if (!v->ok) {
    out += "verify reports problems in " + c->name + "; ";
  }
  return out;
}

// The pending step `step` as list_pending gives it (nullopt: not pending).
// Sets `error` when list_pending fails.
inline std::optional<ckpt::PendingStep> pending_step(const ckpt::Context& ctx,
                                                     const std::string& root, std::uint64_t step,
                                                     std::string& error) {
  auto p = ckpt::list_pending(ctx, root);
  if (!p.ok()) {
    error = "list_pending failed: " + p.error().message();
    return std::nullopt;
  }
  for (const auto& s : *p) {
    if (s.step == step) return s;
  }
  return std::nullopt;
}

inline bool has_shard(const std::vector<std::uint64_t>& v, std::uint64_t i) {
  return std::find(v.begin(), v.end(), i) != v.end();
}

inline std::string join_numbers(const std::vector<std::uint64_t>& v) {
  std::string s = "[";
  for (std::size_t k = 0; k < v.size(); ++k) s += (k ? "," : "") + std::to_string(v[k]);
  return s + "]";
}

// What is left in .ckpt/staging, .ckpt/pending and .ckpt/trash ("" when
// all three are empty or absent).
inline std::string private_leftovers(const std::string& root) {
  std::string out;
  for (const char* sub : {"/.ckpt/staging", "/.ckpt/pending", "/.ckpt/trash"}) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(root + sub, ec)) {
      out += std::string("left behind ") + sub + "/" + e.path().filename().string() + "; ";
    }
  }
  return out;
}

}  // namespace ckpt_test

namespace ckpt_test {

// A sharded save of `step` by `count` writers, seen from one writer's
// failure: the shards of `recorded` were in before writer `rerun` failed (or
// was killed); `after` are the writers still to come. Sources under
// src_dir/src (shard_options); root: the root to work on.
struct ShardJob {
  std::string root;
  std::string src_dir;
  std::uint64_t step = 3;
  std::uint64_t count = 3;
  std::vector<std::uint64_t> recorded;
  std::uint64_t rerun = 0;
  std::vector<std::uint64_t> after;
  bool completes() const { return after.empty(); }
  ckpt::SaveOptions options(std::uint64_t index) const {
    auto o = shard_options(src_dir, step, index, count, "g1", "", false);
    o.root = root;
    return o;
  }
  std::string name() const { return ckpt::step_dir_name(step); }
};

// "" when the step is either committed whole (and then not listed as
// pending) or pending in its set with every shard recorded before still
// recorded. visible, seq: whether it is committed, and its commit_seq.
inline std::string check_committed_or_pending(const ckpt::Context& ctx, const ShardJob& job,
                                              bool& visible, std::uint64_t& seq) {
  std::string out;
  auto l = ckpt::list_checkpoints(ctx, job.root);
  if (!l.ok()) return "list_checkpoints failed: " + l.error().message();
  visible = false;
  for (const auto& c : l->checkpoints) {
    if (c.meta.step == job.step) {
      visible = true;
      seq = c.meta.commit_seq;
    }
  }
  bool listed_pending = false;
  for (const auto& p : l->pending) listed_pending = listed_pending || p.step == job.step;
  std::string err;
  auto p = pending_step(ctx, job.root, job.step, err);
  out += err;
  if (listed_pending != p.has_value()) out += "list_checkpoints and list_pending disagree; ";
  if (visible) {
    if (!job.completes()) out += job.name() + " is visible with shards missing; ";
    out += check_complete(ctx, job.root, job.step, job.count);
    if (p) {
      out += job.name() + " is committed and still listed as pending (present " +
             join_numbers(p->shards.present) + "); ";
    }
  } else if (!p) {
    out += job.name() + " is neither committed nor pending; ";
  } else {
    if (p->shards.group != "g1" || p->shards.count != job.count) out += "the pending set changed; ";
    for (auto i : job.recorded) {
      if (!has_shard(p->shards.present, i)) {
        out += "shard " + std::to_string(i) + " was recorded and is gone (present " +
               join_numbers(p->shards.present) + "); ";
      }
    }
    for (auto i : job.after) {
      if (!has_shard(p->shards.missing, i)) out += "a shard never run is present; ";
    }
    if (p->shards.present.size() + p->shards.missing.size() != job.count) {
      out += "present and missing do not add up to N; ";
    }
  }
  return out;
}

// The user's next step after a writer failed or was killed: that writer
// runs again (ctx: the real file system), then the writers still to come.
// "" when the step ends committed exactly once (counting a commit already
// visible before: `visible`, with commit_seq `seq`), whole, nothing is
// pending, a writer run again after the commit changes nothing, and a prune
// leaves nothing in .ckpt/staging, .ckpt/pending or .ckpt/trash.
// stale_last: `last` did not name the step after the writers ran.
inline std::string rerun_and_finish(const ckpt::Context& ctx, const ShardJob& job, bool visible,
                                    std::uint64_t seq, bool& stale_last) {
  std::string out;
  int commits = visible ? 1 : 0;
  auto r = ckpt::save(ctx, job.options(job.rerun));
  if (!r.ok()) {
    return "the rerun of shard " + std::to_string(job.rerun) + " failed: " + r.error().message();
  }
  if (visible) {
    if (!r->existing) out += "the rerun did not find the committed step; ";
    if (r->commit_seq != seq) out += "the rerun changed commit_seq; ";
  } else {
    if (r->committed) ++commits;
    if (job.completes() && !r->committed) out += "the rerun of the last shard did not commit; ";
    if (!job.completes() && r->committed) out += "a non-last shard committed; ";
  }
  for (std::size_t k = 0; k < job.after.size(); ++k) {
    auto a = ckpt::save(ctx, job.options(job.after[k]));
    if (!a.ok()) {
      return out + "shard " + std::to_string(job.after[k]) + " failed: " + a.error().message();
    }
    if (a->committed) ++commits;
    if (k + 1 == job.after.size() && !a->committed) out += "the last shard did not commit; ";
  }
  if (commits != 1) out += "committed " + std::to_string(commits) + " times; ";
  out += check_complete(ctx, job.root, job.step, job.count);
  std::string last;
  stale_last = !read_whole(job.root + "/last", last) || last != job.name() + "\n";
  // Once more: a writer restarted after the commit changes nothing.
  auto again = ckpt::save(ctx, job.options(job.rerun));
  if (!again.ok()) {
    out += "a rerun after the commit failed: " + again.error().message() + "; ";
  } else if (!again->existing || again->committed) {
    out += "a rerun after the commit did not just report the existing step; ";
  }
  std::string err;
  if (pending_step(ctx, job.root, job.step, err)) out += "still pending after the commit; ";
  out += err;
  ckpt::PruneOptions po;
  po.root = job.root;
  po.rules.keep_last = 1000;
  auto p = ckpt::prune(ctx, po);
  if (!p.ok()) return out + "clean-up prune failed: " + p.error().message();
  out += private_leftovers(job.root);
  ckpt::VerifyOptions vo;
  vo.root = job.root;
  vo.strict = true;
  auto v = ckpt::verify(ctx, vo);
  if (!v.ok() || !v->ok) out += "verify --strict fails after the prune; ";
  return out;
}

}  // namespace ckpt_test
