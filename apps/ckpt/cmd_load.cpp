// SPDX-License-Identifier: Apache-2.0
// ckpt load: verified paths of a checkpoint's files, or a verified copy of them.
#include <map>
#include <memory>

#include <fmt/format.h>

#include "cli.hpp"

namespace ckpt::cli {

namespace {

struct LoadArgs {
  std::string ref;
  std::vector<std::string> only;
  bool weights_only = false;
  std::string to;
  bool no_verify = false;
  bool link = false;
  bool dir = false;
};

int run_load(Cli& cli, const LoadArgs& a) {
  LoadOptions o;
  o.root = cli.root();
  o.ref = a.ref;
  o.only = a.only;
  o.weights_only = a.weights_only;
  if (!a.to.empty()) o.to = a.to;
  o.verify = !a.no_verify;
  o.link = a.link;
  if (a.link && a.to.empty()) return cli.fail(Error(ErrorKind::usage, "--link goes with --to"));
  auto r = load(cli.context(), o);
  if (!r) return cli.fail(r.error());  // no "done": the error ends the progress
  cli.progress_done();
  if (cli.global.json) {
    // The files handed back are the manifest's (a selection of them).
    std::map<std::string, const FileEntry*> entries;
    for (const auto& f : r->meta.files) entries[f.path] = &f;
    json files = json::array();
    for (const auto& [stored, abs] : r->files) {
      json f = file_json(*entries.at(stored));
      f["location"] = abs;
      files.push_back(f);
    }
    json j = {{"root", cli.root_path()}};
    add_fields(j, checkpoint_summary_json(r->path, r->meta));
    j["meta"] = r->meta.meta;
    j["weights"] = r->meta.weights;
    j["checksum"] = r->meta.checksum;
    j["dir"] = r->dir;
    j["files"] = files;
    cli.print_json(j);
    return 0;
  }
  // The paths are the product, so --quiet keeps them.
  if (a.dir) {
    fmt::print("{}\n", r->dir);
    return 0;
  }
  for (const auto& [stored, abs] : r->files) fmt::print("{}\n", abs);
  return 0;
}

}  // namespace

void setup_load(CLI::App& app, Cli& cli) {
  auto a = std::make_shared<LoadArgs>();
  auto* c = app.add_subcommand("load", "Verify a checkpoint and print its file paths");
  c->footer(
      "Prints one absolute path per line (--dir: the directory), only after every selected\n"
      "file verified.\n"
      "Example: ckpt -C runs/exp1 load best --weights-only");
  c->add_option("REF", a->ref, "latest, best, a step, step-N or a path")->required()
      ->type_name("REF");
  c->add_option("--only", a->only, "Only stored paths matching GLOB (repeatable)")
      ->allow_extra_args(false)
      ->type_name("GLOB");
  c->add_flag("--weights-only", a->weights_only, "Only the files recorded as weights");
  c->add_option("--to", a->to, "Materialise verified copies of the files under DIR (reflink where possible)")
      ->type_name("DIR");
  c->add_flag("--link", a->link,
              "With --to: hard links instead of copies (they share the checkpoint's data: "
              "never modify them)");
  c->add_flag("--dir", a->dir,
              "Print the verified directory instead of the files: the checkpoint's, or DIR "
              "with --to (for readers that take a directory)");
  c->add_flag("--no-verify", a->no_verify, "Check sizes only; skip the SHA-256 pass");
  c->callback([&cli, a]() { cli.run = [&cli, a]() { return run_load(cli, *a); }; });
}

}  // namespace ckpt::cli
