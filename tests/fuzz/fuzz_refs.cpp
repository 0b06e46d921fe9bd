// SPDX-License-Identifier: Apache-2.0
// Refs (SPEC §1) through ckpt::resolve_ref against a small real root. The input is the ref; a
// leading '@' stands for the root's absolute path and a leading '%' for its parent, so that the
// fuzzer can reach the path forms ("@/step-000000100", "%/outside/step-000000400", "@/../rootx").
// Property: a Checkpoint whose path is a committed step directory directly inside the root
// (never a symlink, never outside), or an Error of kind usage, not_found or integrity.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "ckpt/error.hpp"
#include "ckpt/format.hpp"
#include "ckpt/fs.hpp"
#include "ckpt/repository.hpp"
#include "fuzz_support.hpp"

namespace {

using ckpt_fuzz::check;
using ckpt_fuzz::escaped;
using ckpt_fuzz::fail;

void write_text(const std::string& path, const std::string& data) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  if (!out) fail("cannot write " + path);
}

// TMP/
//   src/model.bin, src/optim/shard-0.pt   the files saved
//   root/                                 the root refs resolve in:
//     step-000000100, step-000002000        committed with ckpt::save (2000 is last and best)
//     step-000000300/                       a directory without _checkpoint.json
//     step-000000400 -> ../outside/step-000000400   a symlink to a checkpoint outside
//     step-000000500/_checkpoint.json       corrupt
//     step-000000600                        a regular file
//     notes/                                not a checkpoint
//   outside/step-000000400                a committed checkpoint of another root
//   rootx/step-000000100                  a sibling whose name starts with the root's
struct Fixture {
  ckpt_fuzz::TempTree tmp{"refs"};
  ckpt::PosixFileSystem fs{true};
  ckpt::Context ctx;
  std::string root = tmp.path() + "/root";

  Fixture() {
    ctx.fs = &fs;
    ctx.lock_timeout = 5;
    save(root, 100, 0.5);
    save(root, 2000, 0.25);
    save(tmp.path() + "/outside", 400, 0.125);
    save(tmp.path() + "/rootx", 100, 0.5);
    std::filesystem::create_directories(root + "/step-000000300");
    std::filesystem::create_directory_symlink("../outside/step-000000400", root + "/step-000000400");
    write_text(root + "/step-000000500/_checkpoint.json", "{\"format\": \"ckpt\", \"schema_");
    write_text(root + "/step-000000600", "not a directory\n");
    std::filesystem::create_directories(root + "/notes");
  }

  void save(const std::string& dest, std::uint64_t step, double loss) {
    const std::string src = tmp.path() + "/src";
    write_text(src + "/model.bin", "weights " + std::to_string(step) + "\n");
    write_text(src + "/optim/shard-0.pt", "optimizer " + std::to_string(step) + "\n");
    ckpt::SaveOptions o;
    o.root = dest;
    o.step = step;
    o.sources = {ckpt::Source{src + "/model.bin", std::nullopt, false},
                 ckpt::Source{src + "/optim", std::nullopt, false}};
    o.metrics = {{"val_loss", loss}};
    o.policy.best_key = "val_loss";
    o.policy.best_mode = ckpt::Mode::min;
    auto r = ckpt::save(ctx, o);
    if (!r.ok()) fail("fixture: save of step " + std::to_string(step) + " failed: " + r.error().message());
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Fixture& f = fixture();
  std::string ref = ckpt_fuzz::input(data, size);
  if (!ref.empty() && ref[0] == '@') {
    ref = f.root + ref.substr(1);
  } else if (!ref.empty() && ref[0] == '%') {
    ref = f.tmp.path() + ref.substr(1);
  }
  auto where = [&](const std::string& what) { return what + " for ref \"" + escaped(ref) + "\""; };

  auto r = ckpt::resolve_ref(f.ctx, f.root, ref);
  if (!r.ok()) {
    const ckpt::Error& e = r.error();
    check(e.kind() == ckpt::ErrorKind::usage || e.kind() == ckpt::ErrorKind::not_found ||
              e.kind() == ckpt::ErrorKind::integrity,
          where(std::string("resolve_ref failed with kind ") + ckpt::kind_name(e.kind()) + " (" +
                e.message() + ")"));
    return 0;
  }
  const ckpt::Checkpoint& c = r.value();
  auto step = ckpt::parse_step_dir_name(c.name);
  check(step.has_value() && c.name.find('/') == std::string::npos,
        where("resolved to a name that is not a checkpoint directory: \"" + escaped(c.name) + "\""));
  check(c.path == f.root + "/" + c.name,
        where("resolved to a path outside the root: \"" + escaped(c.path) + "\""));
  struct stat st {};
  check(::lstat(c.path.c_str(), &st) == 0 && S_ISDIR(st.st_mode),
        where("resolved to something that is not a directory: \"" + escaped(c.path) + "\""));
  check(c.meta.step == *step && c.meta.name == c.name,
        where("resolved checkpoint's metadata does not match its name"));
  // Only the two committed checkpoints are real.
  check(c.name == "step-000000100" || c.name == "step-000002000",
        where("resolved to \"" + escaped(c.name) + "\", which is not a committed checkpoint"));
  for (const auto& m : c.markers) {
    check(m == "last" || m == "best", where("unknown marker \"" + escaped(m) + "\""));
  }
  return 0;
}
