// SPDX-License-Identifier: Apache-2.0
// The real file system's tree removal: never through a symbolic link, never outside the tree.
#include <doctest/doctest.h>

#include <unistd.h>

#include "fault_fs.hpp"
#include "ckpt/fs.hpp"
#include "test_support.hpp"

using ckpt_test::exists;
using ckpt_test::read_text;
using ckpt_test::write_text;

TEST_CASE("fs: remove_tree removes links, not what they point to") {
  CKPT_TEMP_DIR(tmp);
  write_text(tmp.sub("outside/precious"), "keep me");
  write_text(tmp.sub("tree/a/b/file"), "x");
  write_text(tmp.sub("tree/top"), "y");
  REQUIRE(::symlink(tmp.sub("outside").c_str(), tmp.sub("tree/a/link-to-dir").c_str()) == 0);
  REQUIRE(::symlink(tmp.sub("outside/precious").c_str(), tmp.sub("tree/link-to-file").c_str()) == 0);

  ckpt::PosixFileSystem real;
  ckpt::FaultInjectingFileSystem wrapped(real);  // the generic walk, through the interface
  for (ckpt::FileSystem* fs : {static_cast<ckpt::FileSystem*>(&real),
                               static_cast<ckpt::FileSystem*>(&wrapped)}) {
    CAPTURE(fs == &real);
    ckpt::remove_tree(*fs, tmp.sub("tree"));
    CHECK_FALSE(exists(tmp.sub("tree")));
    CHECK(read_text(tmp.sub("outside/precious")) == "keep me");
    write_text(tmp.sub("tree/a/b/file"), "x");
    REQUIRE(::symlink(tmp.sub("outside").c_str(), tmp.sub("tree/a/link-to-dir").c_str()) == 0);
  }
}

TEST_CASE("fs: remove_tree of a top-level symbolic link removes only the link") {
  CKPT_TEMP_DIR(tmp);
  write_text(tmp.sub("outside/precious"), "keep me");
  REQUIRE(::symlink(tmp.sub("outside").c_str(), tmp.sub("link").c_str()) == 0);
  ckpt::PosixFileSystem real;
  ckpt::remove_tree(real, tmp.sub("link"));
  CHECK_FALSE(exists(tmp.sub("link")));
  CHECK(read_text(tmp.sub("outside/precious")) == "keep me");
  ckpt::remove_tree(real, tmp.sub("does-not-exist"));  // missing is fine
}

TEST_CASE("fs: a name too long to exist does not exist") {
  ckpt::PosixFileSystem real;
  CHECK_FALSE(real.lstat("/tmp/" + std::string(300, 'x')).has_value());
  CHECK_FALSE(real.stat("/tmp/" + std::string(300, 'x')).has_value());
}
