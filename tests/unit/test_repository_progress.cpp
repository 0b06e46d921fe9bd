// SPDX-License-Identifier: Apache-2.0
// Context::progress: one contract for save, verify and load, whatever the
// number of threads: (done, total) for the whole operation, done only
// growing, never past total, ending at total.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ckpt/fs.hpp"
#include "ckpt/repository.hpp"
#include "test_support.hpp"

namespace {

struct Calls {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> seen;

  void check_counts_to(std::uint64_t total, const char* what) {
    INFO(what);
    REQUIRE(!seen.empty());
    std::uint64_t before = 0;
    for (const auto& [done, all] : seen) {
      CHECK(all == total);
      CHECK(done >= before);
      CHECK(done <= all);
      before = done;
    }
    CHECK(seen.back().first == total);
    seen.clear();
  }
};

}  // namespace

TEST_CASE("progress: save, verify and load report (done, total) of the whole operation") {
  ckpt_test::TempDir tmp;
  std::string src = tmp.sub("src");
  // Several files of several sizes, so that workers report side by side.
  std::uint64_t total = 0;
  std::vector<ckpt::Source> sources;
  for (int i = 0; i < 6; ++i) {
    std::string data(static_cast<std::size_t>((i + 1) * 700000), static_cast<char>('a' + i));
    ckpt_test::write_text(src + "/f" + std::to_string(i), data);
    total += data.size();
  }
  sources.push_back(ckpt::Source{src, std::nullopt, false});

  for (unsigned threads : {1u, 4u}) {
    CAPTURE(threads);
    ckpt::PosixFileSystem fs{true};
    ckpt::Context ctx;
    ctx.fs = &fs;
    ctx.threads = threads;
    Calls calls;
    ctx.progress = [&](std::uint64_t done, std::uint64_t all) {
      calls.seen.emplace_back(done, all);
    };
    std::string root = tmp.sub("root" + std::to_string(threads));

    ckpt::SaveOptions s;
    s.root = root;
    s.step = 1;
    s.sources = sources;
    REQUIRE(ckpt::save(ctx, s).ok());
    calls.check_counts_to(total, "save");

    ckpt::VerifyOptions v;
    v.root = root;
    REQUIRE(ckpt::verify(ctx, v).value().ok);
    calls.check_counts_to(total, "verify of the root");
    v.refs = {"latest"};
    REQUIRE(ckpt::verify(ctx, v).value().ok);
    calls.check_counts_to(total, "verify latest");

    ckpt::LoadOptions l;
    l.root = root;
    l.ref = "latest";
    REQUIRE(ckpt::load(ctx, l).ok());
    calls.check_counts_to(total, "load (verified in place)");
    l.to = tmp.sub("out" + std::to_string(threads));
    REQUIRE(ckpt::load(ctx, l).ok());
    calls.check_counts_to(total, "load --to");

    v.quick = true;
    REQUIRE(ckpt::verify(ctx, v).value().ok);
    CHECK(calls.seen.empty());  // --quick reads no bytes
  }
}
