// SPDX-License-Identifier: Apache-2.0
// A driver of the whole-file transfers for bench/ (until the commands reach
// object stores): upload files to a bucket, or download and hash objects.
//   s3_transfer_tool put BUCKET PREFIX FILE...    prints "sha256  key" for each
//   s3_transfer_tool get BUCKET KEY...            downloads (and drops) each, prints "sha256  key"
// The store comes from the AWS variables. Files go one after another, each
// with its parts in parallel.
#include <cstdio>
#include <cstring>
#include <string>

#include "ckpt/fs.hpp"
#include "s3/transfer.hpp"

int main(int argc, char** argv) {
  using namespace ckpt;
  if (argc < 4 || (std::strcmp(argv[1], "put") != 0 && std::strcmp(argv[1], "get") != 0)) {
    std::fprintf(stderr, "usage: %s put BUCKET PREFIX FILE... | get BUCKET KEY...\n", argv[0]);
    return 2;
  }
  try {
    s3::Client client(s3::load_config(s3::process_environment()), argv[2]);
    PosixFileSystem fs;
    if (std::strcmp(argv[1], "put") == 0) {
      for (int i = 4; i < argc; ++i) {
        std::string key = std::string(argv[3]) + "/" + base_name(argv[i]);
        auto m = s3::upload_file(client, fs, argv[i], key);
        std::printf("%s  %s\n", m.sha256.c_str(), key.c_str());
      }
    } else {
      for (int i = 3; i < argc; ++i) {
        auto info = client.head(argv[i]);
        if (!info) throw Error(ErrorKind::not_found, std::string(argv[i]) + ": no such object");
        auto m = s3::download(client, argv[i], info->size);
        std::printf("%s  %s\n", m.sha256.c_str(), argv[i]);
      }
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "s3_transfer_tool: %s\n", e.what());
    return exit_code(e.kind());
  }
  return 0;
}
