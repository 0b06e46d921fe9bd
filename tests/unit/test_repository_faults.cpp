// SPDX-License-Identifier: Apache-2.0
// save under injected I/O failures: whatever operation fails, no partial checkpoint becomes
// visible, the markers keep naming complete checkpoints, and staging is cleaned up.
#include <doctest/doctest.h>

#include <cerrno>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "ckpt/error.hpp"
#include "fault_fs.hpp"
#include "ckpt/format.hpp"
#include "ckpt/fs.hpp"
#include "ckpt/repository.hpp"
#include "internal.hpp"
#include "test_support.hpp"

using ckpt_test::exists;
using ckpt_test::is_dir;
using ckpt_test::list_dir;
using ckpt_test::write_text;

namespace {

ckpt::SaveOptions save_options(const std::string& dir, std::uint64_t step, double loss) {
  ckpt::SaveOptions o;
  o.root = dir + "/root";
  o.step = step;
  o.sources = {ckpt::Source{dir + "/src/model.bin", std::nullopt, false},
               ckpt::Source{dir + "/src/optim", std::nullopt, false}};
  o.metrics = {{"loss", loss}};
  o.policy.best_key = "loss";
  return o;
}

// dir/root holding step 1 (saved without faults), and the sources of step 2 in dir/src.
void prepare(const std::string& dir, ckpt::Context& plain) {
  write_text(dir + "/src/model.bin", "model weights, step one\n");
  write_text(dir + "/src/optim/shard-0.pt", "optimizer state, step one\n");
  auto r = ckpt::save(plain, save_options(dir, 1, 1.0));
  REQUIRE_MESSAGE(r.ok(), "setup save failed: " << (r.ok() ? "" : r.error().message()));
  write_text(dir + "/src/model.bin", "model weights, step two (longer)\n");
  write_text(dir + "/src/optim/shard-0.pt", "optimizer state, step two (longer)\n");
}

// "" when verify finds ref complete, else its problems.
std::string verify_problems(const ckpt::Context& ctx, const std::string& root,
                            const std::string& ref) {
  ckpt::VerifyOptions o;
  o.root = root;
  o.refs = {ref};
  auto r = ckpt::verify(ctx, o);
  if (!r.ok()) return "verify " + ref + " failed: " + r.error().message();
  std::string out;
  for (const auto& c : r->checkpoints) {
    for (const auto& p : c.problems) out += c.name + ": " + p.path + " " + p.kind + " " + p.detail + "; ";
  }
  if (r->checkpoints.empty()) out += "verify checked nothing for " + ref;
  if (!r->ok && out.empty()) out = "verify failed without a problem";
  return out;
}

}  // namespace

TEST_CASE("repository_faults: a failure at any operation of save leaves the root consistent") {
  CKPT_TEMP_DIR(tmp);
  ckpt::PosixFileSystem plain_fs(true);
  ckpt::Context plain;
  plain.fs = &plain_fs;
  plain.lock_timeout = 5;

  // Count (and name) the operations of one fault-free save of step 2.
  std::vector<std::string> ops;
  {
    const std::string dir = tmp.sub("count");
    prepare(dir, plain);
    ckpt::PosixFileSystem base(true);
    ckpt::FaultInjectingFileSystem fault(base);
    fault.record(true);
    ckpt::Context ctx;
    ctx.fs = &fault;
    ctx.lock_timeout = 5;
    auto r = ckpt::save(ctx, save_options(dir, 2, 0.5));
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message()));
    CHECK_FALSE(fault.fired());
    CHECK(r->best_updated);
    CHECK(fault.count() == fault.log().size());
    ops = fault.log();
  }
  const std::uint64_t count = ops.size();
  REQUIRE(count > 20);
  MESSAGE("save of step 2 performs " << count << " file-system operations (injection points)");

  std::uint64_t failed = 0, failed_committed = 0, succeeded = 0;
  std::map<std::string, int> tolerated;  // op name -> times a failure of it did not fail the save
  int tolerated_cache = 0;               // of those, failures writing the manifest cache
  for (std::uint64_t n = 1; n <= count; ++n) {
    const std::string dir = tmp.sub("run-" + std::to_string(n));
    const std::string root = dir + "/root";
    CAPTURE(n);
    INFO("failed operation: " << ops[n - 1]);
    prepare(dir, plain);

    ckpt::PosixFileSystem base(true);
    ckpt::FaultInjectingFileSystem fault(base);
    fault.fail_at(n, EIO);
    ckpt::Context ctx;
    ctx.fs = &fault;
    ctx.lock_timeout = 5;
    auto r = ckpt::save(ctx, save_options(dir, 2, 0.5));
    CHECK(fault.fired());

    bool committed = false;
    if (r.ok()) {
      ++succeeded;
      // .ckpt/manifests is a cache that the retention's listing rewrites when
      // it is out of date, which depends on how old the manifests are (the
      // settle time): a failure to write it fails nothing, by design.
      const std::string target = fault.fired_target();
      if (target.find("/.ckpt/.manifests.tmp.") != std::string::npos ||
          target.find("/.ckpt/manifests") != std::string::npos) {
        ++tolerated_cache;
      } else {
        ++tolerated[fault.fired_op()];
      }
      committed = true;
    } else {
      const std::string msg = r.error().message();
      INFO("save error: " << msg);
      CHECK(r.error().kind() == ckpt::ErrorKind::io);
      CHECK(r.error().sys_errno() == EIO);
      CHECK(msg.find("injected") != std::string::npos);
      committed = msg.find("is committed") != std::string::npos;
      ++(committed ? failed_committed : failed);
    }

    // The root holds step 1, and step 2 only when the save says it committed it.
    std::set<std::string> allowed_dirs = {".ckpt", "step-000000001"};
    if (committed) allowed_dirs.insert("step-000000002");
    const std::set<std::string> allowed_files = {"last", "best.json", "policy.json"};
    for (const auto& name : list_dir(root)) {
      CAPTURE(name);
      if (is_dir(root + "/" + name)) {
        CHECK(allowed_dirs.count(name) == 1);
      } else {
        CHECK(allowed_files.count(name) == 1);  // no stray temporary file either
      }
    }
    if (committed) {
      CHECK(is_dir(root + "/step-000000002"));
      CHECK(verify_problems(plain, root, "step-000000002") == "");
    }

    // `last` names a complete checkpoint; the old one when nothing was committed.
    auto last = ckpt::detail::read_last(plain, root);
    REQUIRE(last.has_value());
    CHECK(is_dir(root + "/" + last->name));
    CHECK(verify_problems(plain, root, last->name) == "");
    if (!committed) CHECK(last->name == "step-000000001");
    if (r.ok()) CHECK(last->name == "step-000000002");

    // best.json names a complete checkpoint too.
    auto best = ckpt::detail::read_best(plain, root);
    REQUIRE(best.has_value());
    CHECK(is_dir(root + "/" + best->path));
    if (!committed) CHECK(best->path == "step-000000001");
    if (r.ok()) CHECK(best->path == "step-000000002");

    // Staging holds no directory (a stale lock file is harmless).
    const std::string staging = ckpt::detail::staging_dir(root);
    if (exists(staging)) {
      for (const auto& name : list_dir(staging)) {
        CAPTURE(name);
        CHECK_FALSE(is_dir(staging + "/" + name));
      }
    }

    // The old checkpoint is untouched, and a full verify finds no failure.
    CHECK(verify_problems(plain, root, "step-000000001") == "");
    ckpt::VerifyOptions all;
    all.root = root;
    auto v = ckpt::verify(plain, all);
    REQUIRE(v.ok());
    CHECK(v->ok);
    CHECK(v->markers_ok);
  }

  std::string tolerated_ops;
  for (const auto& [op, times] : tolerated) {
    tolerated_ops += " " + op + "x" + std::to_string(times);
  }
  MESSAGE("injection points: " << count << "; save failed cleanly: " << failed
                               << "; failed after its commit: " << failed_committed
                               << "; succeeded despite the failure: " << succeeded
                               << " (ops:" << tolerated_ops << "; manifest cache: "
                               << tolerated_cache << ")");
  CHECK(failed + failed_committed + succeeded == count);
  CHECK(failed > 0);
  // A failed fsync, write or rename must never be swallowed: data would not be durable.
  for (const char* essential : {"fsync", "fsync_dir", "write", "rename", "mkdir", "link"}) {
    CAPTURE(essential);
    CHECK(tolerated.count(essential) == 0);
  }
}
