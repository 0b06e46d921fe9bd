// SPDX-License-Identifier: Apache-2.0
// .ckpt/manifests: a listing reads the manifests it has not seen and trusts
// the cache only while each manifest's file is unchanged.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "fault_fs.hpp"
#include "ckpt/repository.hpp"
#include "ckpt/retention.hpp"
#include "internal.hpp"
#include "manifest_cache.hpp"
#include "test_support.hpp"

using ckpt_test::exists;
using ckpt_test::read_text;
using ckpt_test::write_text;

namespace {

struct Root {
  explicit Root(const ckpt_test::TempDir& tmp) : root(tmp.sub("root")), src(tmp.sub("src")) {
    ctx.fs = &fs;
    ckpt::detail::set_manifest_settle_ns(0);
  }
  ~Root() { ckpt::detail::set_manifest_settle_ns(2'000'000'000); }

  void save(std::uint64_t step, double loss) {
    write_text(src + "/model.bin", "weights " + std::to_string(step) + "\n");
    ckpt::SaveOptions o;
    o.root = root;
    o.step = step;
    o.sources = {ckpt::Source{src + "/model.bin", std::nullopt, false}};
    o.metrics = {{"loss", loss}};
    auto r = ckpt::save(ctx, o);
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? std::string() : r.error().message()));
  }

  // A listing that writes the cache, as prune's does.
  ckpt::Listing list(ckpt::FileSystem* through = nullptr) {
    ckpt::Context c = ctx;
    if (through) c.fs = through;
    return ckpt::detail::list_root(c, root, true);
  }

  std::string manifest(std::uint64_t step) {
    return root + "/" + ckpt::step_dir_name(step) + "/_checkpoint.json";
  }

  ckpt::PosixFileSystem fs{true};
  ckpt::Context ctx;
  std::string root;
  std::string src;
};

int opens_of_listing(Root& r, ckpt::Listing* out = nullptr) {
  ckpt_test::OpenCounter counter(r.fs, "/_checkpoint.json");
  auto l = r.list(&counter);
  if (out) *out = l;
  return counter.opens.load();
}

double loss_of(const ckpt::Listing& l, std::uint64_t step) {
  for (const auto& c : l.checkpoints) {
    if (c.meta.step == step) return c.meta.metric("loss").value_or(-1);
  }
  return -2;
}

}  // namespace

TEST_CASE("manifest cache: a reading command's listing never writes it") {
  CKPT_TEMP_DIR(tmp);
  Root r(tmp);
  r.save(1, 1.0);
  r.save(2, 2.0);
  auto l = ckpt::list_checkpoints(r.ctx, r.root);
  REQUIRE(l.ok());
  CHECK(l.value().checkpoints.size() == 2);
  CHECK_FALSE(exists(r.root + "/.ckpt/manifests"));
  // ... but reads one that prune wrote.
  r.list();
  REQUIRE(exists(r.root + "/.ckpt/manifests"));
  ckpt_test::OpenCounter counter(r.fs, "/_checkpoint.json");
  ckpt::Context c = r.ctx;
  c.fs = &counter;
  REQUIRE(ckpt::list_checkpoints(c, r.root).ok());
  CHECK(counter.opens.load() == 0);
}

TEST_CASE("manifest cache: a second listing reads no manifest, and gives the same checkpoints") {
  CKPT_TEMP_DIR(tmp);
  Root r(tmp);
  for (std::uint64_t s = 1; s <= 12; ++s) r.save(s, 1.0 / static_cast<double>(s));
  ckpt::Listing first, second;
  CHECK(opens_of_listing(r, &first) == 12);
  CHECK(exists(r.root + "/.ckpt/manifests"));
  CHECK(opens_of_listing(r, &second) == 0);
  REQUIRE(first.checkpoints.size() == 12);
  REQUIRE(second.checkpoints.size() == 12);
  for (std::size_t i = 0; i < 12; ++i) {
    CHECK(ckpt::serialize_checkpoint(first.checkpoints[i].meta) ==
          ckpt::serialize_checkpoint(second.checkpoints[i].meta));
    CHECK(first.checkpoints[i].name == second.checkpoints[i].name);
  }
  // A new checkpoint is the only manifest read.
  r.save(13, 0.01);
  CHECK(opens_of_listing(r) == 1);
  CHECK(opens_of_listing(r) == 0);
}

TEST_CASE("manifest cache: a manifest changed after it was cached is read again") {
  CKPT_TEMP_DIR(tmp);
  Root r(tmp);
  r.save(1, 0.5);
  r.save(2, 0.25);
  CHECK(opens_of_listing(r) == 2);
  // Past the clock's tick, so the change shows in the file's times.
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  std::string text = read_text(r.manifest(2));
  auto pos = text.find("0.25");
  REQUIRE(pos != std::string::npos);
  text.replace(pos, 4, "0.75");  // the same size
  write_text(r.manifest(2), text);
  ckpt::Listing l;
  CHECK(opens_of_listing(r, &l) == 1);
  CHECK(loss_of(l, 2) == doctest::Approx(0.75));
  CHECK(loss_of(l, 1) == doctest::Approx(0.5));

  // Damaged: reported invalid, never served from the cache.
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  write_text(r.manifest(1), "{ not json");
  l = r.list();
  CHECK(l.checkpoints.size() == 1);
  REQUIRE(l.invalid.size() == 1);
  CHECK(l.invalid[0].first == ckpt::step_dir_name(1));

  // Replaced by another file (a new inode) with the old content: read again.
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  write_text(r.manifest(2) + ".new", text);
  REQUIRE(::rename((r.manifest(2) + ".new").c_str(), r.manifest(2).c_str()) == 0);
  CHECK(opens_of_listing(r, &l) == 2);
}

TEST_CASE("manifest cache: a damaged, foreign or unreadable cache is ignored and rewritten") {
  CKPT_TEMP_DIR(tmp);
  Root r(tmp);
  for (std::uint64_t s = 1; s <= 5; ++s) r.save(s, static_cast<double>(s));
  CHECK(opens_of_listing(r) == 5);
  std::string path = r.root + "/.ckpt/manifests";
  std::string good = read_text(path);
  REQUIRE(good.size() > 200);
  std::vector<std::string> bad = {
      "",                                        // empty (a crash before the data reached the disk)
      good.substr(0, good.size() / 2),           // torn
      std::string(good.size(), '\0'),            // zeros
      "ckpt manifest cache 9\n" + good.substr(22),  // another version
  };
  std::string flipped = good;
  flipped[good.size() / 2] ^= 0x20;  // one bit in the body: the digest no longer matches
  bad.push_back(flipped);
  for (const auto& b : bad) {
    write_text(path, b);
    ckpt::Listing l;
    CHECK(opens_of_listing(r, &l) == 5);
    REQUIRE(l.checkpoints.size() == 5);
    CHECK(loss_of(l, 3) == doctest::Approx(3.0));
    CHECK(read_text(path) == good);  // rewritten whole
    CHECK(opens_of_listing(r) == 0);
  }
  // A directory in its place: listings work, nothing is cached.
  REQUIRE(::unlink(path.c_str()) == 0);
  REQUIRE(::mkdir(path.c_str(), 0755) == 0);
  CHECK(opens_of_listing(r) == 5);
  CHECK(opens_of_listing(r) == 5);
}

TEST_CASE("manifest cache: a manifest changed within the settle time is not recorded") {
  CKPT_TEMP_DIR(tmp);
  Root r(tmp);
  r.save(1, 1.0);
  ckpt::detail::set_manifest_settle_ns(3'600'000'000'000);  // an hour: everything is fresh
  CHECK(opens_of_listing(r) == 1);
  CHECK(opens_of_listing(r) == 1);
  CHECK_FALSE(exists(r.root + "/.ckpt/manifests"));
}

TEST_CASE("manifest cache: a pruned checkpoint's entry goes, and a failing cache write fails nothing") {
  CKPT_TEMP_DIR(tmp);
  Root r(tmp);
  for (std::uint64_t s = 1; s <= 4; ++s) r.save(s, static_cast<double>(s));
  CHECK(opens_of_listing(r) == 4);
  std::string before = read_text(r.root + "/.ckpt/manifests");
  ckpt::PruneOptions p;
  p.root = r.root;
  p.rules.keep_last = 2;
  auto pr = ckpt::prune(r.ctx, p);
  REQUIRE(pr.ok());
  CHECK(pr.value().removed.size() == 2);
  CHECK(opens_of_listing(r) == 0);
  CHECK(read_text(r.root + "/.ckpt/manifests").size() < before.size());

  // Every operation of a listing that writes the cache failed in turn: the
  // listing still succeeds whenever the failure is in the cache's writing.
  r.save(5, 5.0);
  ckpt::FaultInjectingFileSystem counting(r.fs);
  counting.record(true);
  std::string cache = r.root + "/.ckpt/manifests";
  REQUIRE(::unlink(cache.c_str()) == 0);
  r.list(&counting);
  std::uint64_t ops = counting.count();
  int absorbed = 0;
  for (std::uint64_t n = 1; n <= ops; ++n) {
    ::unlink(cache.c_str());
    ckpt::FaultInjectingFileSystem fault(r.fs);
    fault.fail_at(n);
    ckpt::Context c = r.ctx;
    c.fs = &fault;
    auto l = ckpt::capture([&] { return ckpt::detail::list_root(c, r.root, true); });
    INFO("operation " << n << ": " << fault.fired_op() << " " << fault.fired_target());
    if (fault.fired_target().find("manifests") != std::string::npos) {
      CHECK(l.ok());
      if (l.ok()) CHECK(l.value().checkpoints.size() == 3);
      ++absorbed;
    }
  }
  CHECK(absorbed >= 3);  // open, write, rename of the cache at least
}
