// Crash-state exploration: after every operation of save, prune, promote-best and verify --repair,
// the disk a power cut would leave must hold only complete checkpoints and sane markers.
#include <doctest/doctest.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "ckpt/repository.hpp"
#include "ckpt/retention.hpp"
#include "crash_fs.hpp"
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

  void check(CrashModelFileSystem& model, const std::set<std::string>& survive,
             std::uint64_t op, const std::string& name) {
    for (auto state : {CrashModelFileSystem::State::strict, CrashModelFileSystem::State::eager}) {
      std::string dir = tmp + "/crash";
      std::filesystem::remove_all(dir);
      std::filesystem::create_directories(dir + "/root");
      model.materialise(state, dir + "/root");
      ++states;
      std::string why = judge(dir + "/root", survive);
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
                 const std::function<void(CrashModelFileSystem&)>& sabotage = {}) {
  Explorer ex;
  ex.tmp = tmp;
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
