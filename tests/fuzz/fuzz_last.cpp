// SPDX-License-Identifier: Apache-2.0
// `last` (SPEC §4): parse_last_text, and detail::read_last on a real root whose `last` file holds
// the input. Neither throws anything but ckpt::Error; read_last returns only a checkpoint
// directory name (no '/'), agrees with parse_last_text, and a canonical name round-trips.
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <optional>
#include <string>

#include "ckpt/error.hpp"
#include "ckpt/format.hpp"
#include "ckpt/fs.hpp"
#include "ckpt/repository.hpp"
#include "fuzz_support.hpp"
#include "internal.hpp"

namespace {

using ckpt_fuzz::check;
using ckpt_fuzz::escaped;

struct Fixture {
  ckpt_fuzz::TempTree tmp{"last"};
  ckpt::PosixFileSystem fs{true};
  ckpt::Context ctx;
  std::string last_path = tmp.path() + "/last";
  Fixture() {
    ctx.fs = &fs;
    ctx.lock_timeout = 0;
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

// A new file each time: truncating or renaming over the old one makes ext4 flush it on close
// (auto_da_alloc), which costs milliseconds an input.
void write_last(const std::string& path, const std::string& bytes) {
  ::unlink(path.c_str());
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) ckpt_fuzz::fail("cannot open " + path);
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w <= 0) ckpt_fuzz::fail("cannot write " + path);
    done += static_cast<std::size_t>(w);
  }
  ::close(fd);
}

bool is_dir_name(const std::string& name) {
  return ckpt::parse_step_dir_name(name).has_value() && name.find('/') == std::string::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text = ckpt_fuzz::input(data, size);
  auto where = [&](const std::string& what) { return what + " for \"" + escaped(text) + "\""; };

  std::optional<std::string> parsed;
  try {
    parsed = ckpt::parse_last_text(text);
  } catch (const ckpt::Error&) {
  }
  if (parsed) {
    check(!parsed->empty(), where("parse_last_text returned an empty name"));
    check(parsed->find('\n') == std::string::npos && parsed->find('\0') == std::string::npos,
          where("parse_last_text returned a newline or a NUL"));
    check(text.compare(0, parsed->size(), *parsed) == 0,
          where("parse_last_text did not return the first line"));
    if (is_dir_name(*parsed)) {
      std::string again;
      try {
        again = ckpt::parse_last_text(ckpt::serialize_last(*parsed));
      } catch (const ckpt::Error& e) {
        ckpt_fuzz::fail(where(std::string("serialize_last wrote what parse_last_text refuses: ") +
                              e.what()));
      }
      check(again == *parsed, where("serialize_last/parse_last_text round trip changed the name"));
    }
  }

  Fixture& f = fixture();
  write_last(f.last_path, text);
  std::optional<ckpt::detail::LastRead> read;
  try {
    read = ckpt::detail::read_last(f.ctx, f.tmp.path());
  } catch (const ckpt::Error& e) {
    // A file whose first line is a canonical name must be read, not refused.
    check(!(parsed && is_dir_name(*parsed)),
          where(std::string("read_last refused a canonical name: ") + e.what()));
    return 0;
  }
  check(read.has_value(), where("read_last found no `last` although the file exists"));
  check(is_dir_name(read->name),
        where("read_last returned \"" + escaped(read->name) + "\", not a checkpoint directory name"));
  check(parsed.has_value(), where("read_last accepted what parse_last_text refuses"));
  if (is_dir_name(*parsed)) {
    check(read->name == *parsed && !read->legacy, where("read_last changed a canonical name"));
  } else {
    check(read->legacy, where("read_last took a non-canonical form as canonical"));
  }
  return 0;
}
