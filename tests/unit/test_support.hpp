// SPDX-License-Identifier: Apache-2.0
// Shared helpers for the unit tests: a per-test temporary directory and small file utilities.
#pragma once

#include <doctest/doctest.h>

#include <atomic>
#include <string>
#include <vector>

#include "fault_fs.hpp"

namespace ckpt_test {

// True once an assertion or FAIL_CHECK failed in the running test case (set by
// the listener in test_support.cpp, reset when a test case starts).
bool current_test_failed();

// A fresh directory under /tmp (mkdtemp). The destructor removes it when the
// test passed; it is kept (and its path printed on stderr) when the test
// failed, when an exception is unwinding, or when CKPT_KEEP_TMP is set.
class TempDir {
 public:
  TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();

  const std::string& path() const { return m_path; }
  // path()/rel
  std::string sub(const std::string& rel) const;

 private:
  std::string m_path;
  int m_uncaught;
};

// Writes (or replaces) a file with data; creates missing parent directories.
void write_text(const std::string& path, const std::string& data);
// The whole content of a file; FAIL (REQUIRE) when it cannot be read.
std::string read_text(const std::string& path);
bool exists(const std::string& path);
bool is_dir(const std::string& path);
// Entry names of a directory (without "." and ".."), sorted.
std::vector<std::string> list_dir(const std::string& path);

// A file system that counts the opens of paths ending in suffix (through a
// FaultInjectingFileSystem, so it can record and fail operations as well).
class OpenCounter : public ckpt::FaultInjectingFileSystem {
 public:
  OpenCounter(ckpt::FileSystem& base, std::string suffix)
      : FaultInjectingFileSystem(base), m_suffix(std::move(suffix)) {}
  int open(const std::string& path, int flags, mode_t mode = 0644) override {
    if (path.size() >= m_suffix.size() &&
        path.compare(path.size() - m_suffix.size(), m_suffix.size(), m_suffix) == 0) {
      ++opens;
    }
    return FaultInjectingFileSystem::open(path, flags, mode);
  }
  std::atomic<int> opens{0};

 private:
  std::string m_suffix;
};

}  // namespace ckpt_test

// Declares a TempDir named var and adds its path to every failure message of
// the enclosing scope.
#define CKPT_TEMP_DIR(var)     \
  ::ckpt_test::TempDir var;    \
  INFO("temp dir: " << var.path())
