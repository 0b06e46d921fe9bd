// SPDX-License-Identifier: Apache-2.0
// A plain S3 tool over the library's client, for tests and bench/: what a
// user's own tool (aws s3 cp, rclone) would do to a bucket behind ckpt's back.
//   s3_transfer_tool mb BUCKET                    creates the bucket
//   s3_transfer_tool put BUCKET PREFIX FILE...    uploads each as PREFIX/<base name>, prints "sha256  key"
//   s3_transfer_tool put-tree BUCKET PREFIX DIR   uploads every file under DIR as PREFIX/<relative path>
//   s3_transfer_tool put-text BUCKET KEY TEXT     writes one object (overwriting it)
//   s3_transfer_tool get BUCKET KEY...            downloads (and drops) each, prints "sha256  key"
//   s3_transfer_tool ls BUCKET PREFIX             prints "size  key" of every object under PREFIX
//   s3_transfer_tool rm BUCKET KEY...             deletes each
//   s3_transfer_tool uploads BUCKET PREFIX        prints "key  upload-id" of every multipart upload in progress
//   s3_transfer_tool get-tree BUCKET PREFIX DIR   downloads every object under PREFIX/ to DIR/<relative key>
// The store comes from the AWS variables. Files go one after another, each
// with its parts in parallel.
#include <fcntl.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "ckpt/fs.hpp"
#include "s3/transfer.hpp"
#include "upload_tree.hpp"

using namespace ckpt;

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  auto usage = [&] {
    std::fprintf(stderr,
                 "usage: %s mb BUCKET | put BUCKET PREFIX FILE... | put-tree BUCKET PREFIX DIR | "
                 "put-text BUCKET KEY TEXT | get BUCKET KEY... | ls BUCKET PREFIX | versions BUCKET PREFIX | rm BUCKET KEY... | "
                 "uploads BUCKET PREFIX | get-tree BUCKET PREFIX DIR\n",
                 argv[0]);
    return 2;
  };
  if (a.size() < 2) return usage();
  const std::string& cmd = a[0];
  try {
    s3::Client client(s3::load_config(s3::process_environment()), a[1]);
    PosixFileSystem fs;
    if (cmd == "mb") {
      client.create_bucket();
    } else if (cmd == "put" && a.size() >= 4) {
      for (std::size_t i = 3; i < a.size(); ++i) {
        std::string key = a[2] + "/" + base_name(a[i]);
        auto m = s3::upload_file(client, fs, a[i], key);
        std::printf("%s  %s\n", m.sha256.c_str(), key.c_str());
      }
    } else if (cmd == "put-tree" && a.size() == 4) {
      ckpt_test::upload_tree(client, fs, a[3], a[2], [](const std::string& k, const s3::Moved& m) {
        std::printf("%s  %s\n", m.sha256.c_str(), k.c_str());
      });
    } else if (cmd == "put-text" && a.size() == 4) {
      client.put(a[2], a[3]);
    } else if (cmd == "get" && a.size() >= 3) {
      for (std::size_t i = 2; i < a.size(); ++i) {
        auto info = client.head(a[i]);
        if (!info) throw Error(ErrorKind::not_found, a[i] + ": no such object");
        auto m = s3::download(client, a[i], info->size);
        std::printf("%s  %s\n", m.sha256.c_str(), a[i].c_str());
      }
    } else if (cmd == "ls" && a.size() == 3) {
      for (const auto& o : client.list(a[2]).objects) {
        std::printf("%llu  %s\n", static_cast<unsigned long long>(o.size), o.key.c_str());
      }
    } else if (cmd == "versions" && a.size() == 3) {
      // What tells one stored version from another: ETag and time stored.
      for (const auto& o : client.list(a[2]).objects) {
        std::printf("%s  %s  %s\n", o.etag.c_str(), o.last_modified.c_str(), o.key.c_str());
      }
    } else if (cmd == "rm" && a.size() >= 3) {
      client.remove_many(std::vector<std::string>(a.begin() + 2, a.end()));
    } else if (cmd == "uploads" && a.size() == 3) {
      for (const auto& u : client.list_uploads(a[2])) {
        std::printf("%s  %s\n", u.key.c_str(), u.upload_id.c_str());
      }
    } else if (cmd == "get-tree" && a.size() == 4) {
      std::string top = a[2] + "/";
      for (const auto& o : client.list(top).objects) {
        std::string path = join_path(a[3], o.key.substr(top.size()));
        make_dirs(fs, parent_path(path));
        FdGuard out(fs, fs.open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644));
        s3::download(client, o.key, o.size, {}, [&](const char* d, std::size_t n) {
          fs.write(out.get(), d, n);
        });
        out.close();
      }
    } else {
      return usage();
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "s3_transfer_tool: %s\n", e.what());
    return exit_code(e.kind());
  }
  return 0;
}
