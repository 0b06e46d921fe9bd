// SPDX-License-Identifier: Apache-2.0
// A file written under a temporary name and renamed over its final name by commit().
#pragma once

#include <string>
#include <string_view>

#include "ckpt/fs.hpp"

namespace ckpt {

// The destructor of an uncommitted writer removes its temporary file, so a
// half-written file never appears under the final name.
class AtomicFile {
 public:
  AtomicFile(FileSystem& fs, std::string path);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();

  void write(std::string_view data);
  // The temporary file's descriptor, for writers that fill it themselves.
  int fd() const { return m_fd; }
  // fsync and close the temporary file; commit() then only renames. For a
  // writer that prepares many files and commits them all or none.
  void finish();
  // fsync the file, rename it into place, fsync the directory.
  void commit();

 private:
  FileSystem& m_fs;
  std::string m_path;
  std::string m_tmp;
  int m_fd = -1;
  bool m_committed = false;
};

// Writes data to path atomically and durably.
void write_file_atomic(FileSystem& fs, const std::string& path, std::string_view data);

// A process-unique suffix for temporary names: "<pid>.<counter>.<random>".
std::string unique_suffix();

}  // namespace ckpt
