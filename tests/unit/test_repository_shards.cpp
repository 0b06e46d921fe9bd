// SPDX-License-Identifier: Apache-2.0
// Sharded saves (SPEC §10) through the library: parse_shard, recording shards and the commit by
// the last one, the refusals (collision, mismatch, superseded, committed step), --force,
// abort_pending and the expiry of idle pending steps by prune.
#include <doctest/doctest.h>

#include <filesystem>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "ckpt/clock.hpp"
#include "ckpt/error.hpp"
#include "fault_fs.hpp"
#include "ckpt/repository.hpp"
#include "ckpt/retention.hpp"
#include "shard_support.hpp"
#include "test_support.hpp"

using ckpt_test::check_complete;
using ckpt_test::read_text;
using ckpt_test::shard_options;
using ckpt_test::write_text;

namespace {

ckpt::EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

const ckpt::EnvLookup k_no_env = env_of({});

void check_usage(const ckpt::Result<ckpt::ShardSpec>& r, const std::string& what) {
  INFO("parse_shard " << what);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().kind() == ckpt::ErrorKind::usage);
  CHECK_FALSE(r.error().message().empty());
}

struct Root {
  explicit Root(const ckpt_test::TempDir& tmp) : dir(tmp.path()), root(tmp.sub("root")) {
    ctx.fs = &fs;
    ctx.lock_timeout = 5;
    ctx.warn = [this](const std::string& w) { warnings.push_back(w); };
  }
  ckpt::PosixFileSystem fs{true};
  ckpt::Context ctx;
  std::string dir;
  std::string root;
  std::vector<std::string> warnings;

  // Shard `index` of `count` of `step`, group `group`, files of `flavour`.
  ckpt::SaveOptions shard(std::uint64_t step, std::uint64_t index, std::uint64_t count = 3,
                          const std::string& group = "g1", const std::string& flavour = "") {
    auto o = shard_options(dir, step, index, count, group, flavour);
    return o;
  }
  ckpt::Result<ckpt::SaveReport> save(const ckpt::SaveOptions& o) { return ckpt::save(ctx, o); }
  ckpt::SaveReport ok(const ckpt::SaveOptions& o) {
    auto r = ckpt::save(ctx, o);
    REQUIRE_MESSAGE(r.ok(), r.error().message());
    return *r;
  }
  // A plain (unsharded) save of step with one file.
  ckpt::SaveReport plain(std::uint64_t step, double loss) {
    write_text(dir + "/plain/model.bin", "plain model " + std::to_string(step));
    ckpt::SaveOptions o;
    o.root = root;
    o.step = step;
    o.sources = {ckpt::Source{dir + "/plain/model.bin", std::nullopt, false}};
    o.metrics = {{"loss", loss}};
    o.policy.best_key = "loss";
    return ok(o);
  }
  std::vector<ckpt::PendingStep> pending() {
    auto p = ckpt::list_pending(ctx, root);
    REQUIRE_MESSAGE(p.ok(), p.error().message());
    return *p;
  }
  std::optional<ckpt::PendingStep> pending(std::uint64_t step) {
    for (const auto& p : pending()) {
      if (p.step == step) return p;
    }
    return std::nullopt;
  }
  bool committed(std::uint64_t step) {
    return ckpt::resolve_ref(ctx, root, std::to_string(step)).ok();
  }
};

void check_refused(const ckpt::Result<ckpt::SaveReport>& r, const char* reason) {
  REQUIRE_FALSE(r.ok());
  INFO("error: " << r.error().message());
  CHECK(r.error().kind() == ckpt::ErrorKind::conflict);  // exit 4
  CHECK(r.error().reason() == reason);
}

using Shards = std::vector<std::uint64_t>;

// Sets the "updated" of every shard record and the "created" of set.json of
// a pending step to `ms` (milliseconds since the epoch): an idle step.
void backdate(const std::string& root, std::uint64_t step, std::int64_t ms) {
  const std::string dir = root + "/.ckpt/pending/" + ckpt::step_dir_name(step);
  const std::string when = ckpt::format_rfc3339_ms(ms);
  int changed = 0;
  for (const auto& name : ckpt_test::list_dir(dir)) {
    if (name != "set.json" && (name.rfind("shard-", 0) != 0 || name.size() < 5 ||
                               name.compare(name.size() - 5, 5, ".json") != 0)) {
      continue;
    }
    std::string text = read_text(dir + "/" + name);
    std::string next = std::regex_replace(
        text, std::regex("\"(created|updated)\"\\s*:\\s*\"[^\"]*\""), "\"$1\":\"" + when + "\"");
    REQUIRE_MESSAGE(next != text, "no timestamp in " << dir << "/" << name);
    write_text(dir + "/" + name, next);
    ++changed;
  }
  REQUIRE(changed >= 2);  // set.json and at least one record
}

}  // namespace

// ---- parse_shard ----------------------------------------------------------------

TEST_CASE("parse_shard: I/N") {
  auto a = ckpt::parse_shard("0/1", std::nullopt, k_no_env);
  REQUIRE(a.ok());
  CHECK(a->index == 0);
  CHECK(a->count == 1);
  CHECK(a->group == "default");
  auto b = ckpt::parse_shard("3/8", std::string("job-7"), k_no_env);
  REQUIRE(b.ok());
  CHECK(b->index == 3);
  CHECK(b->count == 8);
  CHECK(b->group == "job-7");
  auto c = ckpt::parse_shard("1048575/1048576", std::nullopt, k_no_env);  // k_max_shards
  REQUIRE(c.ok());
  CHECK(c->index == 1048575);
  CHECK(c->count == ckpt::k_max_shards);
  auto d = ckpt::parse_shard("007/010", std::nullopt, k_no_env);  // leading zeros are digits
  REQUIRE(d.ok());
  CHECK(d->index == 7);
  CHECK(d->count == 10);
}

TEST_CASE("parse_shard: malformed, out of range, bad groups") {
  for (const char* text : {"",      "3",    "/",    "1/",   "/2",        "a/b",
                           "1/b",   "-1/2", "+1/2", " 1/2", "1/2 ",      "1/2/3",
                           "1.0/2", "2/2",  "5/2",  "0/0",  "0/1048577", "99999999999999999999/2",
                           "0x1/2", "env2", "ENV"}) {
    check_usage(ckpt::parse_shard(text, std::nullopt, k_no_env), std::string("\"") + text + "\"");
  }
  // The group is checked too: empty, too long, not printable ASCII.
  check_usage(ckpt::parse_shard("0/2", std::string(""), k_no_env), "with an empty group");
  check_usage(ckpt::parse_shard("0/2", std::string(257, 'g'), k_no_env), "with a 257-byte group");
  CHECK(ckpt::parse_shard("0/2", std::string(256, 'g'), k_no_env).ok());
  check_usage(ckpt::parse_shard("0/2", std::string("a\nb"), k_no_env),
              "with a newline in the group");
  check_usage(ckpt::parse_shard("0/2", std::string("caf\xc3\xa9"), k_no_env),
              "with UTF-8 in the group");
  // A default group taken from the environment is checked as well.
  check_usage(ckpt::parse_shard("0/2", std::nullopt, env_of({{"SLURM_JOB_ID", "a\tb"}})),
              "with a tab in SLURM_JOB_ID");
}

TEST_CASE("parse_shard: env takes RANK/WORLD_SIZE, else SLURM_PROCID/SLURM_NTASKS") {
  auto torch = ckpt::parse_shard("env", std::nullopt, env_of({{"RANK", "3"}, {"WORLD_SIZE", "8"}}));
  REQUIRE(torch.ok());
  CHECK(torch->index == 3);
  CHECK(torch->count == 8);
  CHECK(torch->group == "default");

  auto slurm = ckpt::parse_shard("env", std::nullopt,
                                 env_of({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "6"}}));
  REQUIRE(slurm.ok());
  CHECK(slurm->index == 5);
  CHECK(slurm->count == 6);

  // torchrun's variables win over SLURM's.
  auto both = ckpt::parse_shard(
      "env", std::nullopt,
      env_of({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "6"}}));
  REQUIRE(both.ok());
  CHECK(both->index == 1);
  CHECK(both->count == 2);

  // Neither set, or half of a pair: usage (exit 2).
  check_usage(ckpt::parse_shard("env", std::nullopt, k_no_env), "env with nothing set");
  check_usage(ckpt::parse_shard("env", std::nullopt, env_of({{"RANK", "0"}})),
              "env with RANK only");
  check_usage(ckpt::parse_shard("env", std::nullopt, env_of({{"WORLD_SIZE", "4"}})),
              "env with WORLD_SIZE only");
  check_usage(ckpt::parse_shard("env", std::nullopt, env_of({{"SLURM_NTASKS", "4"}})),
              "env with SLURM_NTASKS only");
  // Half of torchrun's pair does not fall back to SLURM's.
  check_usage(
      ckpt::parse_shard("env", std::nullopt,
                        env_of({{"RANK", "0"}, {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}})),
      "env with RANK and the SLURM pair");
  // The values are checked as I/N is.
  check_usage(ckpt::parse_shard("env", std::nullopt, env_of({{"RANK", "4"}, {"WORLD_SIZE", "4"}})),
              "env with RANK = WORLD_SIZE");
  check_usage(ckpt::parse_shard("env", std::nullopt, env_of({{"RANK", "x"}, {"WORLD_SIZE", "4"}})),
              "env with RANK=x");
  check_usage(ckpt::parse_shard("env", std::nullopt, env_of({{"RANK", "0"}, {"WORLD_SIZE", "0"}})),
              "env with WORLD_SIZE=0");
  check_usage(ckpt::parse_shard("env", std::nullopt, env_of({{"RANK", ""}, {"WORLD_SIZE", "2"}})),
              "env with an empty RANK");
}

TEST_CASE("parse_shard: the attempt group defaults to torchelastic's, then SLURM's, then default") {
  auto group = [](std::map<std::string, std::string> vars, std::optional<std::string> given = {}) {
    auto r = ckpt::parse_shard("0/2", given, env_of(std::move(vars)));
    REQUIRE_MESSAGE(r.ok(), r.error().message());
    return r->group;
  };
  CHECK(group({}) == "default");
  CHECK(group({{"TORCHELASTIC_RUN_ID", "abc"}, {"TORCHELASTIC_RESTART_COUNT", "2"}}) == "abc:2");
  CHECK(group({{"TORCHELASTIC_RUN_ID", "abc"}}) == "abc:0");
  CHECK(group({{"SLURM_JOB_ID", "77"}}) == "77:0");
  CHECK(group({{"SLURM_JOB_ID", "77"}, {"SLURM_RESTART_COUNT", "1"}}) == "77:1");
  // torchelastic's wins over SLURM's.
  CHECK(group({{"TORCHELASTIC_RUN_ID", "abc"},
               {"TORCHELASTIC_RESTART_COUNT", "1"},
               {"SLURM_JOB_ID", "77"},
               {"SLURM_RESTART_COUNT", "3"}}) == "abc:1");
  // Empty counts as unset.
  CHECK(group({{"TORCHELASTIC_RUN_ID", ""}, {"SLURM_JOB_ID", "77"}}) == "77:0");
  CHECK(group({{"SLURM_JOB_ID", ""}}) == "default");
  // The restart count alone names no group.
  CHECK(group({{"TORCHELASTIC_RESTART_COUNT", "4"}, {"SLURM_RESTART_COUNT", "4"}}) == "default");
  // A given group wins over the environment.
  CHECK(group({{"TORCHELASTIC_RUN_ID", "abc"}, {"SLURM_JOB_ID", "77"}}, std::string("mine")) ==
        "mine");
  // The group with --shard env.
  auto e = ckpt::parse_shard("env", std::nullopt,
                             env_of({{"RANK", "1"},
                                     {"WORLD_SIZE", "2"},
                                     {"SLURM_JOB_ID", "9"},
                                     {"SLURM_RESTART_COUNT", "2"}}));
  REQUIRE(e.ok());
  CHECK(e->group == "9:2");
}

// ---- recording and committing -------------------------------------------------------

TEST_CASE("sharded save: each shard is recorded, the one completing the set commits") {
  CKPT_TEMP_DIR(tmp);
  Root r(tmp);
  auto s1 = r.plain(1, 0.5);
  // Out of order: 2, 0, then 1 completes the set.
  auto a = r.ok(r.shard(3, 2));
  CHECK_FALSE(a.committed);
  CHECK_FALSE(a.existing);
  CHECK(a.commit_seq == 0);
  CHECK(a.name == "step-000000003");
  CHECK(a.files == 2);
  REQUIRE(a.shards);
  CHECK(a.shards->group == "g1");
  CHECK(a.shards->count == 3);
  CHECK(a.shards->present == Shards{2});
  CHECK(a.shards->missing == Shards{0, 1});
  CHECK_FALSE(r.committed(3));

  auto b = r.ok(r.shard(3, 0));
  CHECK_FALSE(b.committed);
  REQUIRE(b.shards);
  CHECK(b.shards->present == Shards{0, 2});
  CHECK(b.shards->missing == Shards{1});

  // Pending, not a checkpoint: list_pending and the listing agree; latest is step 1.
  auto p = r.pending(3);
  REQUIRE(p);
  CHECK(p->name == "step-000000003");
  CHECK(p->shards.group == "g1");
  CHECK(p->shards.count == 3);
  CHECK(p->shards.present == Shards{0, 2});
  CHECK(p->shards.missing == Shards{1});
  CHECK_FALSE(p->force);
  CHECK_FALSE(p->updated.empty());
  REQUIRE(p->updated_ms);
  CHECK(*p->updated_ms > 0);
  auto listing = ckpt::list_checkpoints(r.ctx, r.root);
  REQUIRE(listing.ok());
  REQUIRE(listing->pending.size() == 1);
  CHECK(listing->pending[0].step == 3);
  REQUIRE(listing->checkpoints.size() == 1);
  CHECK(listing->checkpoints[0].name == s1.name);
  CHECK(listing->last == s1.name);
  auto missing = ckpt::resolve_ref(r.ctx, r.root, "3");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().kind() == ckpt::ErrorKind::not_found);
  ckpt::VerifyOptions vo;
  vo.root = r.root;
  auto v = ckpt::verify(r.ctx, vo);
  REQUIRE(v.ok());
  CHECK(v->ok);
  CHECK(v->checkpoints.size() == 1);

  auto c = r.ok(r.shard(3, 1));
  CHECK(c.committed);
  CHECK_FALSE(c.existing);
  CHECK(c.commit_seq == s1.commit_seq + 1);
  CHECK(c.files == 6);  // the whole checkpoint's
  REQUIRE(c.shards);
  CHECK(c.shards->present == Shards{0, 1, 2});
  CHECK(c.shards->missing.empty());
  CHECK(check_complete(r.ctx, r.root, 3, 3) == "");
  CHECK(r.pending().empty());
  CHECK(ckpt_test::private_leftovers(r.root) == "");
  auto latest = ckpt::resolve_ref(r.ctx, r.root, "latest");
  REQUIRE(latest.ok());
  CHECK(latest->name == "step-000000003");
  CHECK(read_text(r.root + "/last") == "step-000000003\n");
  auto best = ckpt::resolve_ref(r.ctx, r.root, "best");  // loss 0.001 from shard 0
  REQUIRE(best.ok());
  CHECK(best->name == "step-000000003");
  // SHA256SUMS lists every shard's files.
  std::string sums = read_text(r.root + "/step-000000003/SHA256SUMS");
  for (std::uint64_t i = 0; i < 3; ++i) {
    for (const auto& [path, data] : ckpt_test::shard_files(3, i)) {
      CHECK(sums.find(ckpt::sha256_hex(data) + "  " + path) != std::string::npos);
    }
  }
}

TEST_CASE("sharded save: N = 1 is a plain save reported as a set of one") {
  CKPT_TEMP_DIR(tmp);
  Root r(tmp);
  auto a = r.ok(r.shard(4, 0, 1));
  CHECK(a.committed);
  REQUIRE(a.shards);
  CHECK(a.shards->count == 1);
  CHECK(a.shards->present == Shards{0});
  CHECK(a.shards->missing.empty());
  CHECK(r.committed(4));
  CHECK(r.pending().empty());
}

TEST_CASE("sharded save: colliding stored paths are refused and leave the set intact") {
  CKPT_TEMP_DIR(tmp);
  Root r(tmp);
  r.ok(r.shard(3, 0));
  // Shard 1 stores its files under rank-0/, as shard 0 did.
  auto bad = r.shard(3, 1);
  bad.sources[0].dest = "rank-0";
  bad.weights = {"rank-0/weights.bin"};
  auto refused = r.save(bad);
  check_refused(refused, ckpt::k_reason_shard_mismatch);
  CHECK(refused.error().message().find("rank-0/") != std::string::npos);
  auto p = r.pending(3);
  REQUIRE(p);
  CHECK(p->shards.present == Shards{0});
  CHECK(p->shards.missing == Shards{1, 2});
  // The set completes with the right shards, and holds shard 0's own files.
  CHECK_FALSE(r.ok(r.shard(3, 1)).committed);
  CHECK(r.ok(r.shard(3, 2)).committed);
  CHECK(check_complete(r.ctx, r.root, 3, 3) == "");
}

TEST_CASE("sharded save: N disagreeing with the pending set is refused") {
  CKPT_TEMP_DIR(tmp);
  Root r(tmp);
  r.ok(r.shard(3, 0));
  check_refused(r.save(r.shard(3, 1, 4)), ckpt::k_reason_shard_mismatch);
  check_refused(r.save(r.shard(3, 1, 2)), ckpt::k_reason_shard_mismatch);
  auto p = r.pending(3);
  REQUIRE(p);
  CHECK(p->shards.count == 3);
  CHECK(p->shards.present == Shards{0});
}

TEST_CASE("sharded save: metrics, meta, policy options and --checksum must agree across shards") {
  CKPT_TEMP_DIR(tmp);
  Root r(tmp);
  auto zero = r.shard(3, 0);
  zero.policy.keep_last = 5;
  r.ok(zero);
  auto metric = r.shard(3, 1);
  metric.metrics = {{"loss", 0.5}};
  check_refused(r.save(metric), ckpt::k_reason_shard_mismatch);
  auto meta = r.shard(3, 1);
  meta.meta = {{"run", "r2"}};
  check_refused(r.save(meta), ckpt::k_reason_shard_mismatch);
  auto keep = r.shard(3, 1);
  keep.policy.keep_last = 6;
  check_refused(r.save(keep), ckpt::k_reason_shard_mismatch);
  auto checksum = r.shard(3, 1);
  checksum.policy.checksum = "none";
  check_refused(r.save(checksum), ckpt::k_reason_shard_mismatch);
  auto p = r.pending(3);
  REQUIRE(p);
  CHECK(p->shards.present == Shards{0});
  // The same values, or values of other keys, are fine.
  auto same = r.shard(3, 1);
  same.metrics = {{"loss", 0.001}, {"acc", 0.9}};
  same.meta = {{"run", "r1"}, {"host", "n1"}};
  same.policy.keep_last = 5;
  CHECK_FALSE(r.ok(same).committed);
  CHECK(r.ok(r.shard(3, 2)).committed);
  CHECK(check_complete(r.ctx, r.root, 3, 3) == "");
  auto c = ckpt::resolve_ref(r.ctx, r.root, "3");
  REQUIRE(c.ok());
  CHECK(c->meta.metric("acc") == 0.9);
  CHECK(c->meta.meta.at("host") == "n1");
  auto listing = ckpt::list_checkpoints(r.ctx, r.root);
  REQUIRE(listing.ok());
  REQUIRE(listing->policy);
  CHECK(listing->policy->keep_last == 5u);
}

TEST_CASE("sharded save: the same shard again replaces its earlier record (a retried writer)") {
  CKPT_TEMP_DIR(tmp);
  Root r(tmp);
  auto first = r.ok(r.shard(3, 0, 3, "g1", " first attempt"));
  CHECK(first.shards->present == Shards{0});
  r.ok(r.shard(3, 1));
  auto again = r.ok(r.shard(3, 0));  // the retry stores other bytes
  CHECK_FALSE(again.committed);
  REQUIRE(again.shards);
  CHECK(again.shards->present == Shards{0, 1});
  CHECK(r.ok(r.shard(3, 2)).committed);
  CHECK(check_complete(r.ctx, r.root, 3, 3) == "");  // the retry's files, not the first's
  ckpt::PruneOptions po;
  po.root = r.root;
  po.rules.keep_last = 100;
  REQUIRE(ckpt::prune(r.ctx, po).ok());
  CHECK(ckpt_test::private_leftovers(r.root) == "");
}

TEST_CASE("sharded save: a new attempt group supersedes the pending set of the old one") {
  CKPT_TEMP_DIR(tmp);
  Root r(tmp);
  r.ok(r.shard(3, 0, 3, "g1"));
  r.ok(r.shard(3, 1, 3, "g1"));
  r.warnings.clear();
  auto n = r.ok(r.shard(3, 0, 3, "g2", " second attempt"));
  CHECK_FALSE(n.committed);
  REQUIRE(n.shards);
  CHECK(n.shards->group == "g2");
  CHECK(n.shards->present == Shards{0});  // g1's shards do not count
  bool warned = false;
  for (const auto& w : r.warnings) warned = warned || w.find("g1") != std::string::npos;
  CHECK_MESSAGE(warned, "no warning names the retired group");
  auto p = r.pending(3);
  REQUIRE(p);
  CHECK(p->shards.group == "g2");
  CHECK(p->shards.present == Shards{0});

  // A late shard of g1 would complete g1's set: refused, and nothing committed.
  auto late = r.save(r.shard(3, 2, 3, "g1"));
  check_refused(late, ckpt::k_reason_superseded);
  CHECK_FALSE(r.committed(3));
  p = r.pending(3);
  REQUIRE(p);
  CHECK(p->shards.group == "g2");
  CHECK(p->shards.present == Shards{0});

  CHECK_FALSE(r.ok(r.shard(3, 1, 3, "g2", " second attempt")).committed);
  CHECK(r.ok(r.shard(3, 2, 3, "g2", " second attempt")).committed);
  CHECK(check_complete(r.ctx, r.root, 3, 3, "g2", " second attempt") == "");
  // After the commit a shard of g1 is still told it was superseded.
  check_refused(r.save(r.shard(3, 1, 3, "g1")), ckpt::k_reason_superseded);
  CHECK(r.pending().empty());
  ckpt::PruneOptions po;
  po.root = r.root;
  po.rules.keep_last = 100;
  REQUIRE(ckpt::prune(r.ctx, po).ok());
  CHECK(ckpt_test::private_leftovers(r.root) == "");
}

TEST_CASE("sharded save: a committed step takes a rerun of a shard, refuses anything else") {
  CKPT_TEMP_DIR(tmp);
  Root r(tmp);
  r.ok(r.shard(3, 0));
  r.ok(r.shard(3, 1));
  auto done = r.ok(r.shard(3, 2));
  REQUIRE(done.committed);

  // The same shard with the same files (a writer restarted after the commit).
  auto rerun = r.ok(r.shard(3, 1));
  CHECK(rerun.existing);
  CHECK_FALSE(rerun.committed);
  CHECK(rerun.commit_seq == done.commit_seq);
  REQUIRE(rerun.shards);
  CHECK(rerun.shards->missing.empty());

  check_refused(r.save(r.shard(3, 1, 3, "g1", " other bytes")), ckpt::k_reason_step_exists);
  check_refused(r.save(r.shard(3, 1, 4)), ckpt::k_reason_step_exists);
  check_refused(r.save(r.shard(3, 1, 2)), ckpt::k_reason_step_exists);
  CHECK(r.pending().empty());
  CHECK(check_complete(r.ctx, r.root, 3, 3) == "");
  auto c = ckpt::resolve_ref(r.ctx, r.root, "3");
  REQUIRE(c.ok());
  CHECK(c->meta.commit_seq == done.commit_seq);

  // A step committed by a plain save takes no shard.
  r.plain(5, 0.2);
  check_refused(r.save(r.shard(5, 0, 2)), ckpt::k_reason_step_exists);
  CHECK(r.pending().empty());
}

TEST_CASE("sharded save: --force replaces a committed step only as a new, complete set") {
  CKPT_TEMP_DIR(tmp);
  Root r(tmp);
  r.ok(r.shard(3, 0));
  r.ok(r.shard(3, 1));
  auto old = r.ok(r.shard(3, 2));
  REQUIRE(old.committed);

  auto f0 = r.shard(3, 0, 3, "g1", " v2");
  f0.force = true;
  auto a = r.ok(f0);
  CHECK_FALSE(a.committed);
  // The old checkpoint stays, untouched, while the new set is pending.
  CHECK(check_complete(r.ctx, r.root, 3, 3) == "");
  auto p = r.pending(3);
  REQUIRE(p);
  CHECK(p->force);
  CHECK(p->shards.present == Shards{0});

  auto f1 = r.shard(3, 1, 3, "g1", " v2");
  f1.force = true;
  CHECK_FALSE(r.ok(f1).committed);
  CHECK(check_complete(r.ctx, r.root, 3, 3) == "");
  auto f2 = r.shard(3, 2, 3, "g1", " v2");
  f2.force = true;
  auto b = r.ok(f2);
  CHECK(b.committed);
  CHECK(b.commit_seq > old.commit_seq);
  CHECK(check_complete(r.ctx, r.root, 3, 3, "g1", " v2") == "");
  CHECK(r.pending().empty());
  ckpt::PruneOptions po;
  po.root = r.root;
  po.rules.keep_last = 100;
  REQUIRE(ckpt::prune(r.ctx, po).ok());
  CHECK(ckpt_test::private_leftovers(r.root) == "");
}

namespace {

// Fails the rename that puts a new `last` into place (the marker update
// after a commit), once.
class LastMarkerFails : public ckpt::FaultInjectingFileSystem {
 public:
  explicit LastMarkerFails(ckpt::FileSystem& base) : FaultInjectingFileSystem(base) {}
  void rename(const std::string& from, const std::string& to,
              ckpt::RenameMode mode = ckpt::RenameMode::replace) override {
    if (!failed && to.size() >= 5 && to.compare(to.size() - 5, 5, "/last") == 0) {
      failed = true;
      throw ckpt::io_error(EIO, "rename", to);
    }
    FaultInjectingFileSystem::rename(from, to, mode);
  }
  bool failed = false;
};

}  // namespace

TEST_CASE("sharded save: rerunning the committing shard after its marker update failed") {
  // The commit is visible but `last` and best.json were not updated; the
  // writer is run again (the user's next step). A plain save's rerun brings
  // the markers up to date (SaveReport::existing); so must a shard's.
  CKPT_TEMP_DIR(tmp);
  Root r(tmp);
  r.plain(1, 0.5);
  r.ok(r.shard(3, 0));
  r.ok(r.shard(3, 1));
  LastMarkerFails faulty(r.fs);
  ckpt::Context fctx = r.ctx;
  fctx.fs = &faulty;
  auto failed = ckpt::save(fctx, r.shard(3, 2));
  REQUIRE(faulty.failed);
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.error().kind() == ckpt::ErrorKind::io);
  CHECK(failed.error().message().find("is committed") != std::string::npos);
  CHECK(check_complete(r.ctx, r.root, 3, 3) == "");
  CHECK(r.pending().empty());

  auto rerun = r.ok(r.shard(3, 2));
  CHECK(rerun.existing);
  CHECK(read_text(r.root + "/last") == "step-000000003\n");
  auto best = ckpt::resolve_ref(r.ctx, r.root, "best");  // step 3 has the lowest loss
  REQUIRE(best.ok());
  CHECK(best->name == "step-000000003");

  // The same failure in a plain save, for comparison: its rerun repairs both.
  write_text(r.dir + "/plain/model.bin", "plain model 4");
  ckpt::SaveOptions o;
  o.root = r.root;
  o.step = 4;
  o.sources = {ckpt::Source{r.dir + "/plain/model.bin", std::nullopt, false}};
  o.metrics = {{"loss", 0.0001}};
  LastMarkerFails plain_faulty(r.fs);
  fctx.fs = &plain_faulty;
  REQUIRE_FALSE(ckpt::save(fctx, o).ok());
  REQUIRE(plain_faulty.failed);
  auto plain_rerun = r.ok(o);
  CHECK(plain_rerun.existing);
  CHECK(read_text(r.root + "/last") == "step-000000004\n");
  auto plain_best = ckpt::resolve_ref(r.ctx, r.root, "best");
  REQUIRE(plain_best.ok());
  CHECK(plain_best->name == "step-000000004");
}

// ---- abort and expiry ---------------------------------------------------------------

TEST_CASE("abort_pending removes a pending step and every shard recorded for it") {
  CKPT_TEMP_DIR(tmp);
  Root r(tmp);
  r.plain(1, 0.5);
  r.ok(r.shard(3, 0));
  r.ok(r.shard(3, 2));
  auto a = ckpt::abort_pending(r.ctx, r.root, 3);
  REQUIRE_MESSAGE(a.ok(), a.error().message());
  CHECK(a->step == 3);
  CHECK(a->name == "step-000000003");
  CHECK(a->shards.present == Shards{0, 2});
  CHECK(a->shards.missing == Shards{1});
  CHECK(r.pending().empty());
  CHECK(ckpt_test::private_leftovers(r.root) == "");
  CHECK(r.committed(1));

  auto again = ckpt::abort_pending(r.ctx, r.root, 3);
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().kind() == ckpt::ErrorKind::not_found);  // exit 3
  CHECK(again.error().reason() == ckpt::k_reason_no_pending);
  // A committed step is not a pending one.
  auto committed = ckpt::abort_pending(r.ctx, r.root, 1);
  REQUIRE_FALSE(committed.ok());
  CHECK(committed.error().reason() == ckpt::k_reason_no_pending);
  CHECK(r.committed(1));

  // The step starts afresh: the aborted shards are not in it.
  auto fresh = r.ok(r.shard(3, 1));
  REQUIRE(fresh.shards);
  CHECK(fresh.shards->present == Shards{1});
}

TEST_CASE("prune removes pending sharded steps idle longer than the pending expiry") {
  CKPT_TEMP_DIR(tmp);
  Root r(tmp);
  r.plain(1, 0.5);
  r.ok(r.shard(3, 0, 2));
  r.ok(r.shard(4, 1, 2));
  r.ok(r.shard(5, 0, 2));
  const std::int64_t now = ckpt::now_ms();
  backdate(r.root, 3, now - 2 * 24 * 3600 * 1000LL);  // two days
  backdate(r.root, 4, now - 30 * 60 * 1000LL);        // half an hour
  auto p3 = r.pending(3);
  REQUIRE(p3);
  REQUIRE(p3->updated_ms);
  CHECK(*p3->updated_ms <= now - 2 * 24 * 3600 * 1000LL + 1000);

  // A bad duration is refused before anything is done.
  ckpt::PruneOptions bad;
  bad.root = r.root;
  bad.pending_expiry = "soon";
  auto refused = ckpt::prune(r.ctx, bad);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().kind() == ckpt::ErrorKind::usage);
  CHECK(r.pending().size() == 3);

  // The default (24h), in a dry run: listed, not removed.
  ckpt::PruneOptions dry;
  dry.root = r.root;
  dry.rules.keep_last = 100;
  dry.dry_run = true;
  auto d = ckpt::prune(r.ctx, dry);
  REQUIRE_MESSAGE(d.ok(), d.error().message());
  REQUIRE(d->expired.size() == 1);
  CHECK(d->expired[0].step == 3);
  CHECK(r.pending().size() == 3);

  // The default with a retention rule: step 3 goes, steps 4 and 5 stay.
  ckpt::PruneOptions po;
  po.root = r.root;
  po.rules.keep_last = 100;
  auto a = ckpt::prune(r.ctx, po);
  REQUIRE_MESSAGE(a.ok(), a.error().message());
  REQUIRE(a->expired.size() == 1);
  CHECK(a->expired[0].step == 3);
  CHECK(a->expired[0].shards.present == Shards{0});
  CHECK(a->removed.empty());
  auto left = r.pending();
  REQUIRE(left.size() == 2);
  CHECK(left[0].step == 4);
  CHECK(left[1].step == 5);
  CHECK_FALSE(ckpt_test::exists(r.root + "/.ckpt/pending/step-000000003"));

  // --pending-expiry alone: only expiry and clean-up, no retention rule needed.
  ckpt::PruneOptions hour;
  hour.root = r.root;
  hour.pending_expiry = "1h";
  auto b = ckpt::prune(r.ctx, hour);
  REQUIRE_MESSAGE(b.ok(), b.error().message());
  CHECK(b->expired.empty());  // step 4 idles half an hour
  CHECK(b->removed.empty());
  hour.pending_expiry = "20m";
  auto c = ckpt::prune(r.ctx, hour);
  REQUIRE_MESSAGE(c.ok(), c.error().message());
  REQUIRE(c->expired.size() == 1);
  CHECK(c->expired[0].step == 4);
  left = r.pending();
  REQUIRE(left.size() == 1);
  CHECK(left[0].step == 5);
  CHECK(r.committed(1));

  // policy.json's pending_expiry, recorded by a save, is the default of a later prune.
  write_text(r.dir + "/plain/model.bin", "plain model 6");
  ckpt::SaveOptions o;
  o.root = r.root;
  o.step = 6;
  o.sources = {ckpt::Source{r.dir + "/plain/model.bin", std::nullopt, false}};
  o.policy.pending_expiry = "1h";
  r.ok(o);
  backdate(r.root, 5, now - 2 * 3600 * 1000LL);  // two hours: kept by 24h, not by 1h
  ckpt::PruneOptions by_policy;
  by_policy.root = r.root;
  by_policy.rules.keep_last = 100;
  auto e = ckpt::prune(r.ctx, by_policy);
  REQUIRE_MESSAGE(e.ok(), e.error().message());
  REQUIRE(e->expired.size() == 1);
  CHECK(e->expired[0].step == 5);
  CHECK(r.pending().empty());
  CHECK(ckpt_test::private_leftovers(r.root) == "");
  CHECK(r.committed(1));
  CHECK(r.committed(6));
}

TEST_CASE("prune keeps a pending step whose newest shard is recent, however old the set") {
  CKPT_TEMP_DIR(tmp);
  Root r(tmp);
  r.ok(r.shard(3, 0));
  backdate(r.root, 3, ckpt::now_ms() - 3 * 24 * 3600 * 1000LL);
  r.ok(r.shard(3, 1));  // activity now
  ckpt::PruneOptions po;
  po.root = r.root;
  po.pending_expiry = "24h";
  auto a = ckpt::prune(r.ctx, po);
  REQUIRE_MESSAGE(a.ok(), a.error().message());
  CHECK(a->expired.empty());
  auto p = r.pending(3);
  REQUIRE(p);
  CHECK(p->shards.present == Shards{0, 1});
  CHECK(r.ok(r.shard(3, 2)).committed);
  CHECK(check_complete(r.ctx, r.root, 3, 3) == "");
}
