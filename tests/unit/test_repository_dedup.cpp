// SPDX-License-Identifier: Apache-2.0
// save --dedup: files unchanged since the newest checkpoint are shared with it
// (a clone, or here a hard link), read-only; verify reads a shared inode once;
// retention keeps every checkpoint whole when they share inodes.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <atomic>
#include <string>

#include "fault_fs.hpp"
#include "ckpt/repository.hpp"
#include "ckpt/retention.hpp"
#include "internal.hpp"
#include "test_support.hpp"

using ckpt_test::exists;
using ckpt_test::read_text;
using ckpt_test::write_text;

namespace {

struct Root {
  explicit Root(const ckpt_test::TempDir& tmp) : root(tmp.sub("root")), src(tmp.sub("src")) {
    ctx.fs = &fs;
    ctx.lock_timeout = 5;
  }

  ckpt::SaveReport save(std::uint64_t step, std::optional<bool> dedup = std::nullopt,
                        ckpt::Transfer transfer = ckpt::Transfer::copy) {
    ckpt::SaveOptions o;
    o.root = root;
    o.step = step;
    o.sources = {ckpt::Source{src, std::nullopt, true}};
    o.policy.dedup = dedup;
    o.transfer = transfer;
    auto r = ckpt::save(ctx, o);
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? std::string() : r.error().message()));
    return r.value();
  }

  struct stat stat_of(std::uint64_t step, const std::string& rel) {
    struct stat st {};
    std::string p = root + "/" + ckpt::step_dir_name(step) + "/" + rel;
    REQUIRE_MESSAGE(::stat(p.c_str(), &st) == 0, p);
    return st;
  }
  bool same_inode(std::uint64_t a, std::uint64_t b, const std::string& rel) {
    return stat_of(a, rel).st_ino == stat_of(b, rel).st_ino;
  }

  ckpt::VerifyReport verify(ckpt::FileSystem* through = nullptr) {
    ckpt::Context c = ctx;
    if (through) c.fs = through;
    ckpt::VerifyOptions vo;
    vo.root = root;
    auto v = ckpt::verify(c, vo);
    REQUIRE(v.ok());
    return v.value();
  }

  ckpt::PosixFileSystem fs{true};
  ckpt::Context ctx;
  std::string root;
  std::string src;
};

}  // namespace

TEST_CASE("dedup: unchanged files are shared with the newest checkpoint, changed ones written") {
  CKPT_TEMP_DIR(tmp);
  Root r(tmp);
  write_text(r.src + "/base.bin", std::string(300000, 'b'));
  write_text(r.src + "/tok/vocab.txt", "a b c\n");
  write_text(r.src + "/head.bin", "head 1\n");
  auto first = r.save(1, true);
  CHECK(first.shared_files == 0);
  CHECK(read_text(r.root + "/policy.json").find("\"dedup\": true") != std::string::npos);

  write_text(r.src + "/head.bin", "head 2\n");  // the same size, other bytes
  auto second = r.save(2);                       // dedup from policy.json
  CHECK(second.shared_files == 2);
  CHECK(second.shared_bytes == 300000 + 6);
  REQUIRE(second.shared_with);
  CHECK(*second.shared_with == ckpt::step_dir_name(1));
  CHECK(r.same_inode(1, 2, "base.bin"));
  CHECK(r.same_inode(1, 2, "tok/vocab.txt"));
  CHECK_FALSE(r.same_inode(1, 2, "head.bin"));
  CHECK(read_text(r.root + "/step-000000002/head.bin") == "head 2\n");
  // Every file of a dedup root is read-only, shared or not.
  for (std::uint64_t s : {1, 2}) {
    for (const char* f : {"base.bin", "tok/vocab.txt", "head.bin"}) {
      INFO("step " << s << " " << f);
      CHECK((r.stat_of(s, f).st_mode & 0222) == 0);
    }
  }
  auto v = r.verify();
  CHECK(v.ok);

  // Against the newest only: step 3 shares step 2's head, and step 1's base through it.
  auto third = r.save(3);
  CHECK(third.shared_files == 3);
  CHECK(r.same_inode(2, 3, "head.bin"));
  CHECK(r.stat_of(3, "base.bin").st_nlink == 3);

  // --no-dedup is recorded and writes everything again.
  auto fourth = r.save(4, false);
  CHECK(fourth.shared_files == 0);
  CHECK_FALSE(r.same_inode(3, 4, "base.bin"));
  CHECK(read_text(r.root + "/policy.json").find("\"dedup\": false") != std::string::npos);
}

TEST_CASE("dedup: nothing is shared without the option, and never with --checksum none") {
  CKPT_TEMP_DIR(tmp);
  Root r(tmp);
  write_text(r.src + "/base.bin", std::string(1000, 'b'));
  r.save(1);
  CHECK(r.save(2).shared_files == 0);
  CHECK_FALSE(r.same_inode(1, 2, "base.bin"));
  CHECK((r.stat_of(2, "base.bin").st_mode & 0200) != 0);
  ckpt::SaveOptions o;
  o.root = r.root;
  o.step = 3;
  o.sources = {ckpt::Source{r.src, std::nullopt, true}};
  o.policy.dedup = true;
  o.policy.checksum = "none";
  auto res = ckpt::save(r.ctx, o);
  REQUIRE(res.ok());
  CHECK(res.value().shared_files == 0);
}

TEST_CASE("dedup: with --move, a shared source is removed after the commit, the others moved") {
  CKPT_TEMP_DIR(tmp);
  Root r(tmp);
  write_text(r.src + "/base.bin", std::string(200000, 'b'));
  write_text(r.src + "/head.bin", "head 1\n");
  r.save(1, true, ckpt::Transfer::move);
  CHECK_FALSE(exists(r.src + "/base.bin"));
  write_text(r.src + "/base.bin", std::string(200000, 'b'));
  write_text(r.src + "/head.bin", "head 2\n");
  struct stat head {};
  REQUIRE(::stat((r.src + "/head.bin").c_str(), &head) == 0);
  auto rep = r.save(2, std::nullopt, ckpt::Transfer::move);
  CHECK(rep.shared_files == 1);
  CHECK(r.same_inode(1, 2, "base.bin"));
  CHECK(r.stat_of(2, "head.bin").st_ino == head.st_ino);  // renamed in, not copied
  CHECK_FALSE(exists(r.src + "/base.bin"));
  CHECK_FALSE(exists(r.src + "/head.bin"));
  CHECK(exists(r.src));  // the directory given stays
  CHECK(r.verify().ok);
}

TEST_CASE("dedup: verify reads a shared file once, and reports its damage in every checkpoint") {
  CKPT_TEMP_DIR(tmp);
  Root r(tmp);
  write_text(r.src + "/base.bin", std::string(100000, 'b'));
  write_text(r.src + "/head.bin", "head 1\n");
  r.save(1, true);
  r.save(2);
  r.save(3);
  REQUIRE(r.stat_of(3, "base.bin").st_nlink == 3);
  {
    ckpt_test::OpenCounter counter(r.fs, "/base.bin");
    CHECK(r.verify(&counter).ok);
    CHECK(counter.opens.load() == 1);
  }
  // One flipped byte in the shared inode is damage in each checkpoint holding it.
  std::string p = r.root + "/step-000000002/base.bin";
  REQUIRE(::chmod(p.c_str(), 0644) == 0);
  std::string bytes = read_text(p);
  bytes[5000] = 'x';
  write_text(p, bytes);
  auto v = r.verify();
  CHECK_FALSE(v.ok);
  int damaged = 0;
  for (const auto& c : v.checkpoints) {
    for (const auto& pr : c.problems) damaged += pr.kind == "digest_mismatch" && pr.path == "base.bin";
  }
  CHECK(damaged == 3);
}

TEST_CASE("dedup: pruning checkpoints that share files leaves the kept ones whole") {
  CKPT_TEMP_DIR(tmp);
  Root r(tmp);
  write_text(r.src + "/base.bin", std::string(50000, 'b'));
  for (std::uint64_t s = 1; s <= 5; ++s) {
    write_text(r.src + "/head.bin", "head " + std::to_string(s) + "\n");
    r.save(s, true);
  }
  REQUIRE(r.stat_of(5, "base.bin").st_nlink == 5);
  ckpt::PruneOptions po;
  po.root = r.root;
  po.rules.keep_last = 2;
  auto p = ckpt::prune(r.ctx, po);
  REQUIRE(p.ok());
  CHECK(p.value().removed.size() == 3);
  CHECK(r.stat_of(5, "base.bin").st_nlink == 2);
  CHECK(read_text(r.root + "/step-000000004/base.bin") == std::string(50000, 'b'));
  auto v = r.verify();
  CHECK(v.ok);
  CHECK(v.checkpoints.size() == 2);
  // The next save still shares with the newest.
  write_text(r.src + "/head.bin", "head 6\n");
  CHECK(r.save(6).shared_files == 1);
  CHECK(r.stat_of(6, "base.bin").st_nlink == 3);
}
