// SPDX-License-Identifier: Apache-2.0
// Uploads a directory tree object by object, as `aws s3 cp --recursive`
// would: the tests' way to put a root into a bucket behind ckpt's back.
#pragma once

#include <functional>
#include <string>

#include "ckpt/fs.hpp"
#include "s3/transfer.hpp"

namespace ckpt_test {

// Every regular file under dir as key/<relative path> (key "": at the top);
// on_file gets each key and what was moved.
inline void upload_tree(
    ckpt::s3::Client& client, ckpt::FileSystem& fs, const std::string& dir, const std::string& key,
    const std::function<void(const std::string&, const ckpt::s3::Moved&)>& on_file = {}) {
  for (const auto& [name, type] : fs.list_dir_types(dir)) {
    std::string path = ckpt::join_path(dir, name);
    std::string k = key.empty() ? name : key + "/" + name;
    if (type == ckpt::FileType::dir) {
      upload_tree(client, fs, path, k, on_file);
    } else if (type == ckpt::FileType::file) {
      auto m = ckpt::s3::upload_file(client, fs, path, k);
      if (on_file) on_file(k, m);
    }
  }
}

}  // namespace ckpt_test
