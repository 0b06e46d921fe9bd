// SPDX-License-Identifier: Apache-2.0
// AtomicFile and write_file_atomic: the final name holds the old or the new content, never a
// partial one, and no temporary file outlives the writer.
#include <doctest/doctest.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include "ckpt/atomic_file.hpp"
#include "ckpt/error.hpp"
#include "fault_fs.hpp"
#include "ckpt/fs.hpp"
#include "test_support.hpp"

using ckpt_test::exists;
using ckpt_test::list_dir;
using ckpt_test::read_text;
using ckpt_test::write_text;

namespace {

// The directory holds exactly these names (so no temporary file is left).
void check_only(const std::string& dir, std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  CHECK(list_dir(dir) == names);
}

// Index (1-based) of the first operation named op in a recorded log, 0 when absent.
std::uint64_t first_op(const std::vector<std::string>& log, const std::string& op) {
  for (std::size_t i = 0; i < log.size(); ++i) {
    if (log[i] == op) return i + 1;
  }
  return 0;
}

}  // namespace

TEST_CASE("atomic_file: commit puts the content under the final name, no temp left") {
  CKPT_TEMP_DIR(tmp);
  ckpt::PosixFileSystem fs;
  const std::string path = tmp.sub("marker");
  {
    ckpt::AtomicFile f(fs, path);
    f.write("hello ");
    f.write("world\n");
    CHECK_FALSE(exists(path));  // nothing under the final name before commit
    f.commit();
  }
  CHECK(read_text(path) == "hello world\n");
  check_only(tmp.path(), {"marker"});
}

TEST_CASE("atomic_file: an empty commit creates an empty file") {
  CKPT_TEMP_DIR(tmp);
  ckpt::PosixFileSystem fs;
  const std::string path = tmp.sub("empty");
  {
    ckpt::AtomicFile f(fs, path);
    f.commit();
  }
  CHECK(exists(path));
  CHECK(read_text(path).empty());
  check_only(tmp.path(), {"empty"});
}

TEST_CASE("atomic_file: destroyed without commit leaves neither the final name nor a temp") {
  CKPT_TEMP_DIR(tmp);
  ckpt::PosixFileSystem fs;
  const std::string path = tmp.sub("never");
  {
    ckpt::AtomicFile f(fs, path);
    f.write("partial data");
    // The writer's temporary file exists while it is alive...
    CHECK(list_dir(tmp.path()).size() == 1);
    CHECK_FALSE(exists(path));
  }
  // ...and is gone with it.
  CHECK_FALSE(exists(path));
  check_only(tmp.path(), {});
}

TEST_CASE("atomic_file: an existing file is replaced only on commit") {
  CKPT_TEMP_DIR(tmp);
  ckpt::PosixFileSystem fs;
  const std::string path = tmp.sub("last");
  write_text(path, "old content\n");
  {
    ckpt::AtomicFile f(fs, path);
    f.write("new content\n");
    CHECK(read_text(path) == "old content\n");
    f.commit();
    CHECK(read_text(path) == "new content\n");
  }
  CHECK(read_text(path) == "new content\n");
  check_only(tmp.path(), {"last"});

  // Abandoned: the existing file keeps its content.
  {
    ckpt::AtomicFile f(fs, path);
    f.write("abandoned\n");
  }
  CHECK(read_text(path) == "new content\n");
  check_only(tmp.path(), {"last"});
}

TEST_CASE("atomic_file: write_file_atomic creates and replaces") {
  CKPT_TEMP_DIR(tmp);
  ckpt::PosixFileSystem fs;
  const std::string path = tmp.sub("best.json");
  ckpt::write_file_atomic(fs, path, "{\"a\":1}\n");
  CHECK(read_text(path) == "{\"a\":1}\n");
  ckpt::write_file_atomic(fs, path, "{\"a\":2}\n");
  CHECK(read_text(path) == "{\"a\":2}\n");
  std::string big(300'000, 'x');
  big[12345] = 'y';
  ckpt::write_file_atomic(fs, path, big);
  CHECK(read_text(path) == big);
  check_only(tmp.path(), {"best.json"});
}

TEST_CASE("atomic_file: write_file_atomic into a missing directory throws io") {
  CKPT_TEMP_DIR(tmp);
  ckpt::PosixFileSystem fs;
  bool threw = false;
  try {
    ckpt::write_file_atomic(fs, tmp.sub("no/such/dir/file"), "x");
  } catch (const ckpt::Error& e) {
    threw = true;
    CHECK(e.kind() == ckpt::ErrorKind::io);
    CHECK(e.sys_errno() == ENOENT);
  }
  CHECK(threw);
  check_only(tmp.path(), {});
}

TEST_CASE("atomic_file: unique_suffix differs between calls") {
  std::string a = ckpt::unique_suffix();
  std::string b = ckpt::unique_suffix();
  CHECK_FALSE(a.empty());
  CHECK(a != b);
  CHECK(a.find('/') == std::string::npos);
}

namespace {

// Replaces "old" at path through a FaultInjectingFileSystem failing operation n;
// returns whether write_file_atomic threw an injected io error.
bool replace_with_fault(const std::string& path, std::uint64_t n, int err = EIO) {
  ckpt::PosixFileSystem base;
  ckpt::FaultInjectingFileSystem fs(base);
  fs.fail_at(n, err);
  try {
    ckpt::write_file_atomic(fs, path, "NEW CONTENT\n");
  } catch (const ckpt::Error& e) {
    CHECK(fs.fired());
    CHECK(e.kind() == ckpt::ErrorKind::io);
    CHECK(e.sys_errno() == err);
    CHECK(e.message().find("injected") != std::string::npos);
    return true;
  }
  CHECK_FALSE(fs.fired());
  return false;
}

std::vector<std::string> recorded_ops(const std::string& dir) {
  ckpt::PosixFileSystem base;
  ckpt::FaultInjectingFileSystem fs(base);
  fs.record(true);
  ckpt::write_file_atomic(fs, dir + "/probe", "x");
  CHECK(fs.count() == fs.log().size());
  return fs.log();
}

}  // namespace

TEST_CASE("atomic_file: a failed rename keeps the old content and removes the temp") {
  CKPT_TEMP_DIR(tmp);
  auto log = recorded_ops(tmp.path());
  std::uint64_t rename_at = first_op(log, "rename");
  REQUIRE(rename_at > 0);
  const std::string path = tmp.sub("last");
  write_text(path, "old\n");
  CHECK(replace_with_fault(path, rename_at));
  CHECK(read_text(path) == "old\n");
  check_only(tmp.path(), {"last", "probe"});
}

TEST_CASE("atomic_file: a failed fsync keeps the old content and removes the temp") {
  CKPT_TEMP_DIR(tmp);
  auto log = recorded_ops(tmp.path());
  std::uint64_t fsync_at = first_op(log, "fsync");
  std::uint64_t rename_at = first_op(log, "rename");
  REQUIRE(fsync_at > 0);
  CHECK(fsync_at < rename_at);  // the data is durable before it gets its name
  const std::string path = tmp.sub("last");
  write_text(path, "old\n");
  CHECK(replace_with_fault(path, fsync_at));
  CHECK(read_text(path) == "old\n");
  check_only(tmp.path(), {"last", "probe"});
}

TEST_CASE("atomic_file: a full disk on write keeps the old content and removes the temp") {
  CKPT_TEMP_DIR(tmp);
  auto log = recorded_ops(tmp.path());
  std::uint64_t write_at = first_op(log, "write");
  REQUIRE(write_at > 0);
  const std::string path = tmp.sub("last");
  write_text(path, "old\n");
  CHECK(replace_with_fault(path, write_at, ENOSPC));
  CHECK(read_text(path) == "old\n");
  check_only(tmp.path(), {"last", "probe"});
}

TEST_CASE("atomic_file: a failure at every operation leaves old or new content, never a temp") {
  CKPT_TEMP_DIR(tmp);
  auto log = recorded_ops(tmp.path());
  std::uint64_t rename_at = first_op(log, "rename");
  REQUIRE(rename_at > 0);
  REQUIRE(log.size() >= 4);
  const std::string path = tmp.sub("last");
  for (std::uint64_t n = 1; n <= log.size(); ++n) {
    CAPTURE(n);
    INFO("failed op: " << log[n - 1]);
    write_text(path, "old\n");
    CHECK(replace_with_fault(path, n));
    // Up to and including the rename the old file stays; after it, the new one is in place.
    CHECK(read_text(path) == (n <= rename_at ? "old\n" : "NEW CONTENT\n"));
    check_only(tmp.path(), {"last", "probe"});
  }
  // One past the last operation: nothing fails.
  write_text(path, "old\n");
  CHECK_FALSE(replace_with_fault(path, log.size() + 1));
  CHECK(read_text(path) == "NEW CONTENT\n");
}
