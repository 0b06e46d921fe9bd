// SPDX-License-Identifier: Apache-2.0
// Crash-state exploration: after every operation of save, prune, promote-best and verify --repair,
// the disk a power cut would leave must hold only complete checkpoints and sane markers. For
// sharded saves each crash state is also recovered the way a job would: the killed writer again.
#include <doctest/doctest.h>

#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "ckpt/repository.hpp"
#include "ckpt/retention.hpp"
#include "crash_fs.hpp"
#include "shard_support.hpp"
#include "test_support.hpp"

using ckpt_test::CrashModelFileSystem;
using ckpt_test::write_text;

namespace {

// Problems of a crash state: checkpoints that do not verify, markers that name
// incomplete checkpoints, survivors that are gone; "" when it is sound.
std::string judge(const std::string& root, const std::set<std::string>& must_survive) {
  ckpt::PosixFileSystem fs(true);
  ckpt::Context ctx;
  ctx.fs = &fs;
  ctx.lock_timeout = 0;
  ckpt::VerifyOptions vo;
  vo.root = root;
  auto r = ckpt::verify(ctx, vo);
  if (!r.ok()) return "verify failed to run: " + r.error().message();
  std::string out;
  std::set<std::string> present;
  for (const auto& c : r->checkpoints) {
    for (const auto& p : c.problems) {
      if (p.severity == ckpt::Severity::failure) {
        out += c.name + "/" + p.path + ": " + p.kind + " (" + p.detail + "); ";
      }
    }
    if (c.ok) present.insert(c.name);
  }
  for (const auto& p : r->marker_problems) {
    if (p.severity == ckpt::Severity::failure) out += p.path + ": " + p.kind + " (" + p.detail + "); ";
  }
  for (const auto& name : must_survive) {
    if (!present.count(name)) out += name + " was committed before and is gone; ";
  }
  if (!out.empty()) return out;
  // Whatever the crash left stale, --repair brings it back to a strict pass.
  vo.repair = true;
  auto repaired = ckpt::verify(ctx, vo);
  if (!repaired.ok()) return "verify --repair failed: " + repaired.error().message();
  vo.repair = false;
  vo.strict = true;
  auto strict = ckpt::verify(ctx, vo);
  if (!strict.ok() || !strict->ok) return "verify --strict fails after --repair";
  if (!present.empty() && !std::filesystem::exists(root + "/last")) {
    return "last is absent after --repair";
  }
  return "";
}

struct Explorer {
  std::string tmp;
  std::uint64_t states = 0;
  std::uint64_t violations = 0;
  std::string first;
  // More checks of a sound crash state (given its root), and what a user
  // does next on it: "" when all is well.
  std::function<std::string(const std::string& root)> then;

  void check(CrashModelFileSystem& model, const std::set<std::string>& survive,
             std::uint64_t op, const std::string& name) {
    for (auto state : {CrashModelFileSystem::State::strict, CrashModelFileSystem::State::eager}) {
      std::string dir = tmp + "/crash";
      std::filesystem::remove_all(dir);
      std::filesystem::create_directories(dir + "/root");
      model.materialise(state, dir + "/root");
      ++states;
      std::string why = judge(dir + "/root", survive);
      if (why.empty() && then) why = then(dir + "/root");
      if (!why.empty()) {
        ++violations;
        if (first.empty()) {
          first = "after op " + std::to_string(op) + " (" + name + "), " +
                  (state == CrashModelFileSystem::State::strict ? "strict" : "eager") +
                  " state: " + why;
        }
      }
    }
  }
};

ckpt::SaveOptions step_options(const std::string& tmp, std::uint64_t step, double loss) {
  write_text(tmp + "/src/model.bin", "weights of step " + std::to_string(step) + "\n");
  write_text(tmp + "/src/optim/shard-0.pt", std::string(3000 + step, 'o'));
  write_text(tmp + "/src/optim/deep/rng.bin", "rng " + std::to_string(step));
  ckpt::SaveOptions o;
  o.root = tmp + "/root";
  o.step = step;
  o.sources = {ckpt::Source{tmp + "/src/model.bin", std::nullopt, false},
               ckpt::Source{tmp + "/src/optim", std::nullopt, false}};
  o.metrics = {{"loss", loss}};
  o.policy.best_key = "loss";
  o.weights = {"model.bin"};
  return o;
}

// A root with steps 1..n (loss 1/step), saved without the model.
std::set<std::string> seed(const std::string& tmp, int n) {
  ckpt::PosixFileSystem fs(true);
  ckpt::Context ctx;
  ctx.fs = &fs;
  std::set<std::string> names;
  for (int i = 1; i <= n; ++i) {
    auto r = ckpt::save(ctx, step_options(tmp, static_cast<std::uint64_t>(i), 1.0 / i));
    REQUIRE_MESSAGE(r.ok(), r.error().message());
    names.insert(r->name);
  }
  return names;
}

// Runs op through the crash model and checks every state it passes through.
template <class Op>
Explorer explore(const std::string& tmp, const std::set<std::string>& survive, Op op,
                 const std::function<void(CrashModelFileSystem&)>& sabotage = {},
                 std::function<std::string(const std::string&)> then = {}) {
  Explorer ex;
  ex.tmp = tmp;
  ex.then = std::move(then);
  ckpt::PosixFileSystem base(true);  // the model, not the disk, decides what is durable
  CrashModelFileSystem model(base, tmp + "/root");
  if (sabotage) sabotage(model);
  ex.check(model, survive, 0, "start");
  model.set_hook([&](std::uint64_t n, const std::string& name) { ex.check(model, survive, n, name); });
  ckpt::Context ctx;
  ctx.fs = &model;
  ctx.lock_timeout = 5;
  op(ctx);
  model.set_hook({});
  ex.check(model, survive, model.ops() + 1, "end");
  return ex;
}

void save_case(ckpt::Transfer transfer, const std::string& checksum, bool force) {
  CKPT_TEMP_DIR(tmp);
  auto before = seed(tmp.path(), 2);
  auto opts = step_options(tmp.path(), force ? 2 : 3, 0.01);
  opts.transfer = transfer;
  opts.force = force;
  opts.policy.checksum = checksum;
  // A forced replace may lose the old step 2 only by replacing it.
  std::set<std::string> survive = before;
  if (force) survive.erase("step-000000002");
  auto ex = explore(tmp.path(), survive, [&](ckpt::Context& ctx) {
    auto r = ckpt::save(ctx, opts);
    REQUIRE_MESSAGE(r.ok(), r.error().message());
  });
  MESSAGE("save: " << ex.states << " crash states checked");
  CHECK_MESSAGE(ex.violations == 0, ex.first);
  CHECK(ex.states > 20);
}

}  // namespace

TEST_CASE("crash states: save by copy, sha256") { save_case(ckpt::Transfer::copy, "sha256", false); }
TEST_CASE("crash states: save by copy, no checksum") { save_case(ckpt::Transfer::copy, "none", false); }
TEST_CASE("crash states: save by hard link") { save_case(ckpt::Transfer::link, "sha256", false); }
TEST_CASE("crash states: save by move") { save_case(ckpt::Transfer::move, "sha256", false); }
TEST_CASE("crash states: save --dedup sharing files with the newest checkpoint") {
  CKPT_TEMP_DIR(tmp);
  auto before = seed(tmp.path(), 2);
  auto opts = step_options(tmp.path(), 3, 0.01);
  // The optimizer shard and the rng file are step 2's again: shared (hard links here).
  write_text(tmp.path() + "/src/optim/shard-0.pt", std::string(3000 + 2, 'o'));
  write_text(tmp.path() + "/src/optim/deep/rng.bin", "rng 2");
  opts.policy.dedup = true;
  std::size_t shared = 0;
  auto ex = explore(tmp.path(), before, [&](ckpt::Context& ctx) {
    auto r = ckpt::save(ctx, opts);
    REQUIRE_MESSAGE(r.ok(), r.error().message());
    shared = r->shared_files;
  });
  CHECK(shared == 2);
  MESSAGE("save --dedup: " << ex.states << " crash states checked");
  CHECK_MESSAGE(ex.violations == 0, ex.first);
  CHECK(ex.states > 20);
}

TEST_CASE("crash states: save --force replacing the best step") {
  save_case(ckpt::Transfer::copy, "sha256", true);
}

TEST_CASE("crash states: prune") {
  CKPT_TEMP_DIR(tmp);
  auto before = seed(tmp.path(), 6);
  ckpt::PruneOptions po;
  po.root = tmp.sub("root");
  po.rules.keep_last = 2;
  // What the plan keeps must survive every crash state; the rest may go.
  std::set<std::string> survive = {"step-000000005", "step-000000006"};
  auto ex = explore(tmp.path(), survive, [&](ckpt::Context& ctx) {
    auto r = ckpt::prune(ctx, po);
    REQUIRE_MESSAGE(r.ok(), r.error().message());
    CHECK(r->removed.size() == 4);
  });
  MESSAGE("prune: " << ex.states << " crash states checked");
  CHECK_MESSAGE(ex.violations == 0, ex.first);
}

TEST_CASE("crash states: promote-best switching the key, and verify --repair") {
  CKPT_TEMP_DIR(tmp);
  auto before = seed(tmp.path(), 3);
  auto ex = explore(tmp.path(), before, [&](ckpt::Context& ctx) {
    ckpt::PromoteOptions po;
    po.root = tmp.sub("root");
    po.ref = "1";
    po.force = true;
    auto r = ckpt::promote_best(ctx, po);
    REQUIRE_MESSAGE(r.ok(), r.error().message());
    CHECK(r->promoted);
    std::filesystem::remove(tmp.sub("root/last"));  // a marker lost: --repair rewrites it
    ckpt::VerifyOptions vo;
    vo.root = tmp.sub("root");
    vo.repair = true;
    auto v = ckpt::verify(ctx, vo);
    REQUIRE_MESSAGE(v.ok(), v.error().message());
    CHECK(v->repaired.size() >= 1);
  });
  MESSAGE("promote-best + repair: " << ex.states << " crash states checked");
  CHECK_MESSAGE(ex.violations == 0, ex.first);
}

TEST_CASE("crash states: the check fails on a protocol without the staging directory fsyncs") {
  CKPT_TEMP_DIR(tmp);
  auto before = seed(tmp.path(), 1);
  auto opts = step_options(tmp.path(), 2, 0.5);
  auto ex = explore(
      tmp.path(), before,
      [&](ckpt::Context& ctx) { REQUIRE(ckpt::save(ctx, opts).ok()); },
      [](CrashModelFileSystem& m) { m.drop_dir_fsyncs_containing("/.ckpt/staging/"); });
  MESSAGE("sabotaged save (no staging fsync): " << ex.violations << " unsound states; first: "
                                                << ex.first);
  CHECK(ex.violations > 0);
  CHECK(ex.first.find("step-000000002") != std::string::npos);
}

TEST_CASE("crash states: the check fails on a protocol without file fsyncs") {
  CKPT_TEMP_DIR(tmp);
  auto before = seed(tmp.path(), 1);
  auto opts = step_options(tmp.path(), 2, 0.5);
  auto ex = explore(
      tmp.path(), before,
      [&](ckpt::Context& ctx) { REQUIRE(ckpt::save(ctx, opts).ok()); },
      [](CrashModelFileSystem& m) { m.drop_file_fsyncs(true); });
  MESSAGE("sabotaged save (no file fsync): " << ex.violations << " unsound states; first: "
                                             << ex.first);
  CHECK(ex.violations > 0);
}

// ---- sharded saves (SPEC §10) -------------------------------------------------

namespace {

// A writer of a sharded save of step 3 (N = 3) into a root holding steps 1
// and 2 is killed at every operation: the shards of `recorded` were in
// before it started. Each crash state must hold step 3 either committed
// whole or pending with those shards still recorded; then the killed writer
// runs again, the writers still to come (`after`) run, and the step must end
// committed exactly once, whole, with nothing pending or left behind.
Explorer shard_crash_case(const std::string& label, std::vector<std::uint64_t> recorded,
                          std::uint64_t killed, std::vector<std::uint64_t> after,
                          const std::function<void(CrashModelFileSystem&)>& sabotage = {}) {
  CKPT_TEMP_DIR(tmp);
  auto before = seed(tmp.path(), 2);
  ckpt_test::ShardJob job;
  job.root = tmp.sub("root");
  job.src_dir = tmp.path();
  job.step = 3;
  job.count = 3;
  job.recorded = std::move(recorded);
  job.rerun = killed;
  job.after = std::move(after);
  for (std::uint64_t i = 0; i < job.count; ++i) {
    ckpt_test::shard_options(tmp.path(), job.step, i, job.count);
  }
  {
    ckpt::PosixFileSystem fs(true);
    ckpt::Context ctx;
    ctx.fs = &fs;
    for (auto i : job.recorded) {
      auto r = ckpt::save(ctx, job.options(i));
      REQUIRE_MESSAGE(r.ok(), r.error().message());
      REQUIRE_FALSE(r->committed);
    }
  }
  std::uint64_t committed_states = 0, pending_states = 0, rerun_recorded = 0, stale_last = 0;
  bool returned = false;  // the writer's save has returned: what it reported must be durable
  auto then = [&](const std::string& root) -> std::string {
    ckpt::PosixFileSystem fs(true);
    ckpt::Context ctx;
    ctx.fs = &fs;
    ctx.lock_timeout = 0;
    ctx.threads = 1;  // the recovery, not the code under test: quick
    ckpt_test::ShardJob j = job;
    j.root = root;
    bool visible = false;
    std::uint64_t seq = 0;
    std::string why = ckpt_test::check_committed_or_pending(ctx, j, visible, seq);
    if (!why.empty()) return why;
    ++(visible ? committed_states : pending_states);
    if (!visible) {
      std::string err;
      auto p = ckpt_test::pending_step(ctx, root, j.step, err);
      bool in = p && ckpt_test::has_shard(p->shards.present, killed);
      if (in) ++rerun_recorded;
      if (returned && j.completes()) {
        return "the save returned committed; the crash lost the commit";
      }
      if (returned && !in) {
        return "the save returned recorded; the crash lost shard " + std::to_string(killed);
      }
    }
    bool stale = false;
    why = ckpt_test::rerun_and_finish(ctx, j, visible, seq, stale);
    if (stale) ++stale_last;
    return why.empty() ? "" : "recovery: " + why;
  };
  auto ex = explore(
      tmp.path(), before,
      [&](ckpt::Context& ctx) {
        auto r = ckpt::save(ctx, job.options(killed));
        returned = true;
        REQUIRE_MESSAGE(r.ok(), r.error().message());
        CHECK(r->committed == job.completes());
      },
      sabotage, then);
  if (sabotage) return ex;
  MESSAGE(label << ": " << ex.states << " crash states checked (" << pending_states
                << " with the step pending, " << rerun_recorded << " of them with the killed shard "
                << "already recorded; " << committed_states << " with it committed)");
  CHECK_MESSAGE(ex.violations == 0, ex.first);
  CHECK(ex.states > 20);
  CHECK(pending_states > 0);
  if (job.completes()) CHECK(committed_states > 0);
  // The writers of the recovery leave `last` naming the step (before any prune).
  CHECK_MESSAGE(stale_last == 0, stale_last << " recoveries left `last` stale");
  return ex;
}

}  // namespace

TEST_CASE("crash states: sharded save, recording a middle shard") {
  // Shard 0 of 3 is in; shard 1 is killed anywhere while recording; shard 2 comes later.
  shard_crash_case("shard 1/3 records", {0}, 1, {2});
}

TEST_CASE("crash states: sharded save, the last shard merges and commits") {
  // Shards 0 and 1 of 3 are in; shard 2 is killed anywhere while recording, merging, committing.
  shard_crash_case("shard 2/3 merges and commits", {0, 1}, 2, {});
}

TEST_CASE("crash states: the shard check fails when a recorded shard's entries are not fsynced") {
  // Without the fsyncs of .ckpt/pending/STEP, a shard that returned "recorded"
  // can be lost by a crash: the check must see it.
  auto ex = shard_crash_case("sabotaged record", {0}, 1, {2}, [](CrashModelFileSystem& m) {
    m.drop_dir_fsyncs_containing("/.ckpt/pending/");
  });
  MESSAGE("sabotaged shard record (no pending fsync): " << ex.violations
                                                        << " unsound states; first: " << ex.first);
  CHECK(ex.violations > 0);
  CHECK(ex.first.find("shard 1") != std::string::npos);
}
