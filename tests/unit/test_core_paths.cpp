// SPDX-License-Identifier: Apache-2.0
// Stored-path validation (SPEC §2) and glob matching over stored paths.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "ckpt/paths.hpp"

TEST_CASE("paths: stored_path_problem accepts valid stored paths") {
  const std::vector<std::string> good = {
      "a", "a/b.pt", "dir/sub/file", ".hidden", "optim/shard-0.pt", "a b/c d", "..a", "a..",
      "a/.b", "x/...", "model.safetensors", "d/e/f/g/h/i/j",
  };
  for (const auto& p : good) {
    CAPTURE(p);
    auto problem = ckpt::stored_path_problem(p);
    CHECK_FALSE(problem.has_value());
  }
}

TEST_CASE("paths: stored_path_problem refuses unsafe or malformed paths") {
  const std::vector<std::string> bad = {
      "",
      "/etc/x",
      "/",
      "../x",
      "..",
      ".",
      "a/../b",
      "a/..",
      "a/./b",
      "./a",
      "a/.",
      "a//b",
      "a/",
      "/a",
      "//a",
      "a\nb",
      "a\n",
      "a\\b",
      "..\\x",
      std::string("a\0b", 3),
      std::string("\0", 1),
  };
  for (const auto& p : bad) {
    CAPTURE(p);
    auto problem = ckpt::stored_path_problem(p);
    REQUIRE(problem.has_value());
    CHECK_FALSE(problem->empty());  // the reason is worded
  }
}

TEST_CASE("paths: glob_match") {
  CHECK(ckpt::glob_match("*.pt", "optim/shard-0.pt"));  // '*' crosses '/'
  CHECK(ckpt::glob_match("*.pt", "a.pt"));
  CHECK_FALSE(ckpt::glob_match("*.pt", "model.safetensors"));
  CHECK_FALSE(ckpt::glob_match("*.pt", "a.pth"));
  CHECK(ckpt::glob_match("optim/*", "optim/a"));
  CHECK(ckpt::glob_match("optim/*", "optim/sub/a"));
  CHECK_FALSE(ckpt::glob_match("optim/*", "optimizer/a"));
  CHECK_FALSE(ckpt::glob_match("optim/*", "model/optim/a"));
  CHECK(ckpt::glob_match("model.safetensors", "model.safetensors"));
  CHECK_FALSE(ckpt::glob_match("model.safetensors", "model.safetensors.bak"));
  CHECK_FALSE(ckpt::glob_match("model.safetensors", "sub/model.safetensors"));
  CHECK(ckpt::glob_match("shard-?.pt", "shard-3.pt"));
  CHECK_FALSE(ckpt::glob_match("shard-?.pt", "shard-10.pt"));
  CHECK(ckpt::glob_match("shard-[0-3].pt", "shard-2.pt"));
  CHECK_FALSE(ckpt::glob_match("shard-[0-3].pt", "shard-7.pt"));
}
