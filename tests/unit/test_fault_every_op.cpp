// SPDX-License-Identifier: Apache-2.0
// Every-operation fault injection: each command is run once per file-system operation with that
// operation failing (EIO; ENOSPC for writes), and the root must stay sound every time. Sharded
// saves are run the same way, each failure followed by the user's next step (the writer again).
#include <doctest/doctest.h>

#include <cerrno>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "fault_fs.hpp"
#include "ckpt/repository.hpp"
#include "ckpt/retention.hpp"
#include "internal.hpp"
#include "shard_support.hpp"
#include "test_support.hpp"

using ckpt_test::is_dir;
using ckpt_test::list_dir;
using ckpt_test::write_text;

namespace {

ckpt::Context context(ckpt::FileSystem& fs) {
  ckpt::Context ctx;
  ctx.fs = &fs;
  ctx.lock_timeout = 5;
  return ctx;
}

ckpt::SaveOptions save_opts(const std::string& dir, std::uint64_t step, double loss) {
  write_text(dir + "/src/model.bin", "weights " + std::to_string(step) + "\n");
  write_text(dir + "/src/optim/shard-0.pt", std::string(5000, static_cast<char>('a' + step % 26)));
  ckpt::SaveOptions o;
  o.root = dir + "/root";
  o.step = step;
  o.sources = {ckpt::Source{dir + "/src/model.bin", std::nullopt, false},
               ckpt::Source{dir + "/src/optim", std::nullopt, false}};
  o.metrics = {{"loss", loss}};
  o.policy.best_key = "loss";
  o.weights = {"model.bin"};
  return o;
}

// Steps 1..n committed without faults.
void seed(const std::string& dir, int n) {
  ckpt::PosixFileSystem fs(true);
  auto ctx = context(fs);
  for (int i = 1; i <= n; ++i) {
    auto r = ckpt::save(ctx, save_opts(dir, static_cast<std::uint64_t>(i), 1.0 / i));
    REQUIRE_MESSAGE(r.ok(), r.error().message());
  }
}

// A command under test: prepares its inputs in dir, runs with ctx, returns the
// error it reported (nullopt on success).
struct Command {
  std::string name;
  int seeded = 3;
  std::function<void(const std::string& dir)> prepare = [](const std::string&) {};
  std::function<std::optional<ckpt::Error>(const ckpt::Context&, const std::string& dir)> run;
  // Checkpoints the command may remove (prune's plan; a forced replace).
  std::set<std::string> may_remove;
};

template <class T>
std::optional<ckpt::Error> outcome(const ckpt::Result<T>& r) {
  if (r.ok()) return std::nullopt;
  return r.error();
}

// "" when the root is sound after a run: no stray entries, markers naming
// complete checkpoints, the survivors intact, and a clean-up that leaves nothing.
std::string judge(const std::string& root, const std::set<std::string>& survivors) {
  ckpt::PosixFileSystem fs(true);
  auto ctx = context(fs);
  std::string out;
  for (const auto& name : list_dir(root)) {
    bool dir = is_dir(root + "/" + name);
    bool ok = dir ? (name == ".ckpt" || ckpt::parse_step_dir_name(name).has_value())
                  : (name == "last" || name == "best.json" || name == "policy.json");
    if (!ok) out += "stray entry " + name + "; ";
  }
  ckpt::VerifyOptions vo;
  vo.root = root;
  auto v = ckpt::verify(ctx, vo);
  if (!v.ok()) return out + "verify failed to run: " + v.error().message();
  std::set<std::string> good;
  for (const auto& c : v->checkpoints) {
    if (c.ok) good.insert(c.name);
    for (const auto& p : c.problems) {
      if (p.severity == ckpt::Severity::failure) out += c.name + "/" + p.path + " " + p.kind + "; ";
    }
  }
  for (const auto& p : v->marker_problems) {
    if (p.severity == ckpt::Severity::failure) out += p.path + " " + p.kind + ": " + p.detail + "; ";
  }
  for (const auto& s : survivors) {
    if (!good.count(s)) out += s + " lost; ";
  }
  // The next prune finishes whatever the failure left behind.
  ckpt::PruneOptions po;
  po.root = root;
  po.rules.keep_last = 1000;
  auto p = ckpt::prune(ctx, po);
  if (!p.ok()) return out + "clean-up prune failed: " + p.error().message();
  for (const auto& sub : {std::string("/.ckpt/staging"), std::string("/.ckpt/trash")}) {
    for (const auto& name : list_dir(root + sub)) {
      if (is_dir(root + sub + "/" + name) || sub == "/.ckpt/trash") {
        out += "left behind " + sub + "/" + name + "; ";
      }
    }
  }
  return out;
}

bool is_write_op(const std::string& op) {
  return op == "write" || op == "mkdir" || op == "link" || op == "clone";
}

void every_op(const Command& cmd) {
  CKPT_TEMP_DIR(tmp);
  std::set<std::string> before;
  for (int i = 1; i <= cmd.seeded; ++i) before.insert(ckpt::step_dir_name(static_cast<std::uint64_t>(i)));
  std::set<std::string> survivors;
  for (const auto& b : before) {
    if (!cmd.may_remove.count(b)) survivors.insert(b);
  }

  // One fault-free run counts and names the operations.
  std::vector<std::string> ops;
  {
    const std::string dir = tmp.sub("count");
    seed(dir, cmd.seeded);
    cmd.prepare(dir);
    ckpt::PosixFileSystem base(true);
    ckpt::FaultInjectingFileSystem fault(base);
    fault.record(true);
    auto err = cmd.run(context(fault), dir);
    REQUIRE_MESSAGE(!err, err->message());
    ops = fault.log();
  }
  REQUIRE(ops.size() > 5);

  std::uint64_t runs = 0, clean_failures = 0, tolerated = 0;
  for (std::size_t n = 1; n <= ops.size(); ++n) {
    for (int write_errno : {0, ENOSPC}) {
      if (write_errno != 0 && !is_write_op(ops[n - 1])) continue;
      const std::string dir = tmp.sub("run");
      std::filesystem::remove_all(dir);
      seed(dir, cmd.seeded);
      cmd.prepare(dir);
      ckpt::PosixFileSystem base(true);
      ckpt::FaultInjectingFileSystem fault(base);
      fault.fail_at(n, EIO, write_errno);
      auto err = cmd.run(context(fault), dir);
      ++runs;
      // Files are copied on several threads, so the Nth operation is not
      // always the one the counting run saw there: judge the one that failed.
      const std::string op = fault.fired_op();
      const std::string injected = write_errno && is_write_op(op) ? "ENOSPC" : "EIO";
      INFO(cmd.name << ": operation " << n << " (" << op << "; " << ops[n - 1]
                    << " in the counting run) failing with " << injected);
      CHECK(fault.fired());
      if (err) {
        ++clean_failures;
        INFO("error: " << err->message());
        CHECK(err->kind() == ckpt::ErrorKind::io);  // exit 6
        CHECK(err->message().find("injected") != std::string::npos);
        if (injected == "ENOSPC") CHECK(err->message().find("disk full") != std::string::npos);
      } else {
        ++tolerated;
        // Only a failure that cannot affect durability may be absorbed.
        CHECK(op != "fsync");
        CHECK(op != "fsync_dir");
        CHECK(op != "write");
        CHECK(op != "rename");
      }
      std::string why = judge(dir + "/root", survivors);
      CHECK_MESSAGE(why.empty(), why);
    }
  }
  MESSAGE(cmd.name << ": " << ops.size() << " injection points, " << runs << " runs ("
                   << clean_failures << " reported an I/O error, " << tolerated
                   << " absorbed a non-essential failure)");
  CHECK(clean_failures > 0);
}

Command save_command(const std::string& name, ckpt::Transfer transfer, const std::string& checksum) {
  Command c;
  c.name = name;
  c.run = [transfer, checksum](const ckpt::Context& ctx, const std::string& dir) {
    auto o = save_opts(dir, 4, 0.01);
    o.transfer = transfer;
    o.policy.checksum = checksum;
    return outcome(ckpt::save(ctx, o));
  };
  return c;
}

}  // namespace

TEST_CASE("every op fails once: save --copy") { every_op(save_command("save --copy", ckpt::Transfer::copy, "sha256")); }
TEST_CASE("every op fails once: save --copy --checksum none") {
  every_op(save_command("save --checksum none", ckpt::Transfer::copy, "none"));
}
TEST_CASE("every op fails once: save --move") { every_op(save_command("save --move", ckpt::Transfer::move, "sha256")); }
TEST_CASE("every op fails once: save --link") { every_op(save_command("save --link", ckpt::Transfer::link, "sha256")); }

// --dedup: the optimizer shard is step 3's again (shared: a hard link here,
// made read-only), the model is new (copied or moved).
Command dedup_command(const std::string& name, ckpt::Transfer transfer) {
  Command c;
  c.name = name;
  c.run = [transfer](const ckpt::Context& ctx, const std::string& dir) {
    auto o = save_opts(dir, 4, 0.01);
    write_text(dir + "/src/optim/shard-0.pt", std::string(5000, static_cast<char>('a' + 3)));
    o.transfer = transfer;
    o.policy.dedup = true;
    return outcome(ckpt::save(ctx, o));
  };
  return c;
}

TEST_CASE("every op fails once: save --dedup") { every_op(dedup_command("save --dedup", ckpt::Transfer::copy)); }
TEST_CASE("every op fails once: save --dedup --move") {
  every_op(dedup_command("save --dedup --move", ckpt::Transfer::move));
}

TEST_CASE("every op fails once: save --force with retention") {
  Command c;
  c.name = "save --force --keep-last 2";
  c.may_remove = {"step-000000001", "step-000000002"};
  c.run = [](const ckpt::Context& ctx, const std::string& dir) {
    auto o = save_opts(dir, 2, 0.001);
    o.force = true;
    o.policy.keep_last = 2;
    return outcome(ckpt::save(ctx, o));
  };
  every_op(c);
}

TEST_CASE("every op fails once: prune") {
  Command c;
  c.name = "prune --keep-last 1";
  c.seeded = 5;
  // Keeps step 5 (newest and, with loss 1/step, best).
  c.may_remove = {"step-000000001", "step-000000002", "step-000000003", "step-000000004"};
  c.prepare = [](const std::string& dir) {
    // A leftover in trash and an abandoned staging directory to clean.
    write_text(dir + "/root/.ckpt/trash/step-000000007.1.0.x/f", "old");
    write_text(dir + "/root/.ckpt/staging/step-000000008.1.0.y/f", "abandoned");
  };
  c.run = [](const ckpt::Context& ctx, const std::string& dir) {
    ckpt::PruneOptions po;
    po.root = dir + "/root";
    po.rules.keep_last = 1;
    return outcome(ckpt::prune(ctx, po));
  };
  every_op(c);
}

TEST_CASE("every op fails once: promote-best") {
  Command c;
  c.name = "promote-best --key loss --mode max --force";
  c.run = [](const ckpt::Context& ctx, const std::string& dir) {
    ckpt::PromoteOptions po;
    po.root = dir + "/root";
    po.key = "loss";
    po.mode = ckpt::Mode::max;
    po.force = true;
    return outcome(ckpt::promote_best(ctx, po));
  };
  every_op(c);
}

TEST_CASE("every op fails once: verify --repair") {
  Command c;
  c.name = "verify --repair";
  c.prepare = [](const std::string& dir) {
    // Stale markers (a crash between commits and marker updates) for --repair to rewrite.
    write_text(dir + "/root/last", "step-000000001\n");
    write_text(dir + "/root/best.json",
               "{\"schema_version\":1,\"key\":\"loss\",\"mode\":\"min\",\"value\":1,"
               "\"step\":1,\"path\":\"step-000000001\",\"updated\":\"\"}\n");
  };
  c.run = [](const ckpt::Context& ctx, const std::string& dir) -> std::optional<ckpt::Error> {
    ckpt::VerifyOptions vo;
    vo.root = dir + "/root";
    vo.repair = true;
    auto r = ckpt::verify(ctx, vo);
    if (!r.ok()) return r.error();
    // A failed read while hashing is reported as a problem, not an error.
    for (const auto& c : r->checkpoints) {
      for (const auto& p : c.problems) {
        if (p.kind == "unreadable") return ckpt::Error(ckpt::ErrorKind::io, p.detail);
      }
    }
    return std::nullopt;
  };
  every_op(c);
}

// ---- sharded saves (SPEC §10) -------------------------------------------------

namespace {

// One writer of a sharded save of step 3 into a root holding steps 1 and 2:
// the shards in `recorded` are in (recorded cleanly) before shard `faulty`
// runs with the fault; `after` are the job's writers still to come.
struct ShardPhase {
  std::string name;
  std::uint64_t count = 3;
  std::vector<std::uint64_t> recorded;
  std::uint64_t faulty = 0;
  std::vector<std::uint64_t> after;
  bool completes() const { return after.empty(); }
  ckpt_test::ShardJob job(const std::string& dir) const {
    ckpt_test::ShardJob j;
    j.root = dir + "/root";
    j.src_dir = dir;
    j.step = 3;
    j.count = count;
    j.recorded = recorded;
    j.rerun = faulty;
    j.after = after;
    return j;
  }
};

// The context of the runs around the one under test (preparing, judging,
// recovering): one thread keeps them quick. The run under test has the
// default threads, as every other command here.
ckpt::Context shard_context(ckpt::FileSystem& fs) {
  auto ctx = context(fs);
  ctx.threads = 1;
  return ctx;
}

// Steps 1 and 2 committed, every shard's sources written, and the shards of
// `recorded` in.
void prepare_shards(const std::string& dir, const ShardPhase& ph) {
  seed(dir, 2);
  auto job = ph.job(dir);
  for (std::uint64_t i = 0; i < ph.count; ++i) {
    ckpt_test::shard_options(dir, job.step, i, ph.count);
  }
  ckpt::PosixFileSystem fs(true);
  auto ctx = shard_context(fs);
  for (auto i : ph.recorded) {
    auto r = ckpt::save(ctx, job.options(i));
    REQUIRE_MESSAGE(r.ok(), r.error().message());
    REQUIRE_FALSE(r->committed);
  }
}

// "" when the root is sound right after the faulty writer stopped: no stray
// entry, every checkpoint verifies, the markers name complete checkpoints,
// steps 1 and 2 intact; step 3 either committed whole (and then no longer
// pending) or pending with every shard recorded before still recorded.
std::string judge_shard_state(const ckpt_test::ShardJob& job, bool& visible, std::uint64_t& seq) {
  ckpt::PosixFileSystem fs(true);
  auto ctx = shard_context(fs);
  const std::string& root = job.root;
  std::string out;
  for (const auto& name : list_dir(root)) {
    bool dir = is_dir(root + "/" + name);
    bool ok = dir ? (name == ".ckpt" || ckpt::parse_step_dir_name(name).has_value())
                  : (name == "last" || name == "best.json" || name == "policy.json");
    if (!ok) out += "stray entry " + name + "; ";
  }
  ckpt::VerifyOptions vo;
  vo.root = root;
  auto v = ckpt::verify(ctx, vo);
  if (!v.ok()) return out + "verify failed to run: " + v.error().message();
  std::set<std::string> good;
  for (const auto& c : v->checkpoints) {
    if (c.ok) good.insert(c.name);
    for (const auto& p : c.problems) {
      if (p.severity == ckpt::Severity::failure) out += c.name + "/" + p.path + " " + p.kind + "; ";
    }
  }
  for (const auto& p : v->marker_problems) {
    if (p.severity == ckpt::Severity::failure) {
      out += p.path + " " + p.kind + ": " + p.detail + "; ";
    }
  }
  for (const char* s : {"step-000000001", "step-000000002"}) {
    if (!good.count(s)) out += std::string(s) + " lost; ";
  }
  return out + ckpt_test::check_committed_or_pending(ctx, job, visible, seq);
}

void every_op_sharded(const ShardPhase& ph) {
  CKPT_TEMP_DIR(tmp);
  INFO(ph.name);
  std::vector<std::string> ops;
  {
    const std::string dir = tmp.sub("count");
    prepare_shards(dir, ph);
    ckpt::PosixFileSystem base(true);
    ckpt::FaultInjectingFileSystem fault(base);
    fault.record(true);
    auto r = ckpt::save(context(fault), ph.job(dir).options(ph.faulty));
    REQUIRE_MESSAGE(r.ok(), r.error().message());
    REQUIRE(r->committed == ph.completes());
    ops = fault.log();
  }
  REQUIRE(ops.size() > 5);

  std::uint64_t runs = 0, clean_failures = 0, tolerated = 0, committed_by_fault_run = 0;
  std::uint64_t stale_last_runs = 0;
  std::string first_stale;
  for (std::size_t n = 1; n <= ops.size(); ++n) {
    for (int write_errno : {0, ENOSPC}) {
      if (write_errno != 0 && !is_write_op(ops[n - 1])) continue;
      const std::string dir = tmp.sub("run");
      std::filesystem::remove_all(dir);
      prepare_shards(dir, ph);
      const auto job = ph.job(dir);
      ckpt::PosixFileSystem base(true);
      ckpt::FaultInjectingFileSystem fault(base);
      fault.fail_at(n, EIO, write_errno);
      auto r = ckpt::save(context(fault), job.options(ph.faulty));
      ++runs;
      const std::string op = fault.fired_op();
      const std::string injected = write_errno && is_write_op(op) ? "ENOSPC" : "EIO";
      INFO(ph.name << ": operation " << n << " (" << op << " on " << fault.fired_target() << "; "
                   << ops[n - 1] << " in the counting run) failing with " << injected);
      CHECK(fault.fired());
      bool visible = false;
      std::uint64_t seq = 0;
      std::string why = judge_shard_state(job, visible, seq);
      CHECK_MESSAGE(why.empty(), why);
      if (!r.ok()) {
        ++clean_failures;
        INFO("error: " << r.error().message());
        CHECK(r.error().kind() == ckpt::ErrorKind::io);  // exit 6
        CHECK(r.error().message().find("injected") != std::string::npos);
        if (injected == "ENOSPC") CHECK(r.error().message().find("disk full") != std::string::npos);
      } else {
        ++tolerated;
        CHECK(r->committed == ph.completes());
        CHECK(visible == ph.completes());
        // A failure of a durable step may be absorbed only in the clean-up
        // after the commit (the pending step, trash, staging leftovers).
        if (op == "fsync" || op == "fsync_dir" || op == "write" || op == "rename") {
          CHECK(visible);
          CHECK(fault.fired_target().find("/.ckpt/") != std::string::npos);
        }
      }
      if (visible) ++committed_by_fault_run;
      // The user's next step: the failed writer again, without faults.
      ckpt::PosixFileSystem real(true);
      bool stale = false;
      why = ckpt_test::rerun_and_finish(shard_context(real), job, visible, seq, stale);
      CHECK_MESSAGE(why.empty(), why);
      if (stale) {
        ++stale_last_runs;
        if (first_stale.empty()) {
          first_stale = "operation " + std::to_string(n) + " (" + op + " on " +
                        fault.fired_target() + ")";
          if (!r.ok()) first_stale += ": " + r.error().message();
        }
      }
    }
  }
  MESSAGE(ph.name << ": " << ops.size() << " injection points, " << runs << " runs ("
                  << clean_failures << " reported an I/O error, " << tolerated
                  << " absorbed a non-essential failure, " << committed_by_fault_run
                  << " left the step committed)");
  CHECK(clean_failures > 0);
  // A rerun of a shard of a committed step brings the markers up to date
  // (SaveReport::existing), as a rerun of a plain save does.
  CHECK_MESSAGE(stale_last_runs == 0, stale_last_runs
                                          << " runs left `last` stale after the rerun; first: "
                                          << first_stale);
}

}  // namespace

TEST_CASE("every op fails once: sharded save, recording a middle shard") {
  // Shard 0 of 3 is in; shard 1 records with the fault; shard 2 completes later.
  every_op_sharded(ShardPhase{"shard 1/3 records (0 in, 2 to come)", 3, {0}, 1, {2}});
}

TEST_CASE("every op fails once: sharded save, the last shard merges and commits") {
  // Shards 0 and 1 of 3 are in; shard 2 records, merges and commits with the fault.
  every_op_sharded(ShardPhase{"shard 2/3 merges and commits (0 and 1 in)", 3, {0, 1}, 2, {}});
}
