// SPDX-License-Identifier: Apache-2.0
// A program that uses libckpt as a C++ training program would: save from paths, resolve
// latest and best, verify, load, prune. Built against an installed ckpt three ways
// (find_package, pkg-config, add_subdirectory) by tests/consumer/run.sh, in C++17.
//
// Usage: consumer ROOT WORKDIR   (prints what it did; exits nonzero on the first failure)
#include <cstdio>
#include <fstream>
#include <string>

#include <ckpt/repository.hpp>
#include <ckpt/retention.hpp>
#include <ckpt/version.hpp>

namespace {

int fail(const char* what, const ckpt::Error& e) {
  std::fprintf(stderr, "consumer: %s: %s (exit code %d)\n", what, e.what(), ckpt::exit_code(e.kind()));
  return 1;
}

void write(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary) << data;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: consumer ROOT WORKDIR\n");
    return 2;
  }
  const std::string root = argv[1], work = argv[2];
  std::printf("library %s (CKPT_VERSION %s)\n", ckpt::tool_version().c_str(), CKPT_VERSION);

  ckpt::Context ctx;
  ctx.warn = [](const std::string& w) { std::fprintf(stderr, "warning: %s\n", w.c_str()); };

  // Three steps; val_loss is best at step 2; policy.json keeps the last 3.
  const double losses[] = {0.9, 0.4, 0.6};
  for (int step = 1; step <= 3; ++step) {
    write(work + "/model.bin", "weights at step " + std::to_string(step));
    write(work + "/optim.bin", "optimizer at step " + std::to_string(step));
    ckpt::SaveOptions o;
    o.root = root;
    o.step = static_cast<std::uint64_t>(step);
    o.sources = {ckpt::Source{work + "/model.bin", std::nullopt, false},
                 ckpt::Source{work + "/optim.bin", std::nullopt, false}};
    o.metrics["val_loss"] = losses[step - 1];
    o.weights = {"model.bin"};
    o.policy.best_key = "val_loss";
    o.policy.keep_last = 3;
    auto r = ckpt::save(ctx, o);
    if (!r) return fail("save", r.error());
    std::printf("saved %s: %zu files, commit %llu%s\n", r->name.c_str(), r->files,
                static_cast<unsigned long long>(r->commit_seq), r->best_updated ? " (new best)" : "");
  }

  auto latest = ckpt::resolve_ref(ctx, root, "latest");
  if (!latest) return fail("latest", latest.error());
  auto best = ckpt::resolve_ref(ctx, root, "best");
  if (!best) return fail("best", best.error());
  std::printf("latest %s, best %s\n", latest->name.c_str(), best->name.c_str());

  ckpt::VerifyOptions v;
  v.root = root;
  auto checked = ckpt::verify(ctx, v);
  if (!checked) return fail("verify", checked.error());
  std::printf("verify: %s, %zu checkpoints\n", checked->ok ? "ok" : "FAILED", checked->checkpoints.size());
  if (!checked->ok) return 1;

  ckpt::LoadOptions l;
  l.root = root;
  l.ref = "best";
  l.weights_only = true;
  auto loaded = ckpt::load(ctx, l);
  if (!loaded) return fail("load", loaded.error());
  for (const auto& [stored, path] : loaded->files) {
    std::ifstream in(path, std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::printf("load best --weights-only: %s = \"%s\"\n", stored.c_str(), data.c_str());
  }

  ckpt::PruneOptions p;
  p.root = root;
  p.rules.keep_last = 1;
  auto pruned = ckpt::prune(ctx, p);
  if (!pruned) return fail("prune", pruned.error());
  for (const auto& name : pruned->removed) std::printf("pruned %s\n", name.c_str());
  std::printf("kept %zu\n", pruned->kept.size());

  // A failure is a value, never an exit: a ref that names nothing.
  auto missing = ckpt::resolve_ref(ctx, root, "99");
  if (missing) return 1;
  std::printf("resolve 99: %s (exit code %d)\n", missing.error().what(),
              ckpt::exit_code(missing.error().kind()));
  return 0;
}
