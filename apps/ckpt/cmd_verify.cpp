// SPDX-License-Identifier: Apache-2.0
// ckpt verify: integrity of checkpoints and markers, like sha256sum -c.
#include <memory>

#include <fmt/format.h>

#include "cli.hpp"

namespace ckpt::cli {

namespace {

struct VerifyArgs {
  std::vector<std::string> refs;
  bool quick = false, strict = false, repair = false, verbose = false;
};

json problems_json(const std::vector<Problem>& problems) {
  json arr = json::array();
  for (const auto& p : problems) {
    arr.push_back({{"path", p.path},
                   {"kind", p.kind},
                   {"detail", p.detail},
                   {"severity", p.severity == Severity::failure ? "failure" : "warning"}});
  }
  return arr;
}

int run_verify(Cli& cli, const VerifyArgs& a) {
  VerifyOptions o;
  o.root = cli.root();
  o.refs = a.refs;
  o.quick = a.quick;
  o.strict = a.strict;
  o.repair = a.repair;
  auto r = verify(cli.context(), o);
  if (!r) return cli.fail(r.error());  // no "done": the error ends the progress
  // Checked to the end (found bad or not): the progress is done.
  cli.progress_done();
  int rc = r->ok ? 0 : 1;
  // Every failing command says so on stderr (ckpt(1)); the report stays on stdout.
  std::size_t failed_checkpoints = 0;
  for (const auto& c : r->checkpoints) failed_checkpoints += c.ok ? 0 : 1;
  Error failure(ErrorKind::integrity,
                fmt::format("verification failed: {} of {} checkpoint{}{}", failed_checkpoints,
                            r->checkpoints.size(), r->checkpoints.size() == 1 ? "" : "s",
                            r->markers_checked && !r->markers_ok ? ", and the markers" : ""));
  if (cli.global.json) {
    std::string root = cli.root_path();
    json cps = json::array();
    for (const auto& c : r->checkpoints) {
      json entry = checkpoint_ref_json(root, c.name);
      entry["ok"] = c.ok;
      entry["problems"] = problems_json(c.problems);
      cps.push_back(entry);
    }
    json j = {{"root", root}, {"ok", r->ok}, {"checkpoints", cps}};
    j["markers"] = r->markers_checked
                       ? json{{"ok", r->markers_ok}, {"problems", problems_json(r->marker_problems)}}
                       : json(nullptr);
    j["repaired"] = r->repaired;
    cli.print_json(j);
    return rc ? cli.fail(failure) : 0;
  }
  if (cli.global.quiet) return rc;
  bool colour = cli.colour_stdout();
  auto paint = [&](const char* code, const std::string& s) {
    return colour ? fmt::format("\033[{}m{}\033[0m", code, s) : s;
  };
  auto show = [&](const std::string& where, const Problem& p) {
    bool fails = p.severity == Severity::failure || a.strict;
    fmt::print("{}: {} ({}: {})\n", where,
               fails ? paint("31", "FAILED") : paint("33", "WARNING"), p.kind, p.detail);
  };
  std::size_t failed = 0, warnings = 0, files = 0;
  for (const auto& c : r->checkpoints) {
    if (a.verbose) {
      for (const auto& f : c.verified_files) fmt::print("{}/{}: {}\n", c.name, f, paint("32", "OK"));
    }
    files += c.verified_files.size();
    for (const auto& p : c.problems) {
      show(fmt::format("{}/{}", c.name, p.path), p);
      if (p.severity == Severity::warning) ++warnings;
    }
    if (!c.ok) ++failed;
  }
  for (const auto& p : r->marker_problems) {
    show(p.path, p);
    if (p.severity == Severity::warning) ++warnings;
  }
  for (const auto& f : r->repaired) fmt::print("{}: repaired\n", f);
  std::string markers = !r->markers_checked ? "" : r->markers_ok ? "; markers ok" : "; markers FAILED";
  fmt::print("{}: {} checkpoint{}, {} failed, {} file{} {}, {} warning{}{}\n",
             r->ok ? paint("32", "ok") : paint("31", "FAILED"), r->checkpoints.size(),
             r->checkpoints.size() == 1 ? "" : "s", failed, files, files == 1 ? "" : "s",
             a.quick ? "present" : "verified", warnings, warnings == 1 ? "" : "s", markers);
  return rc ? cli.fail(failure) : 0;
}

}  // namespace

void setup_verify(CLI::App& app, Cli& cli) {
  auto a = std::make_shared<VerifyArgs>();
  auto* c = app.add_subcommand("verify", "Check checkpoints and markers; exit 1 on a failure");
  c->footer(
      "Without REF: every checkpoint and the markers (last, best.json).\n"
      "Example (CI): ckpt -C runs/exp1 verify -q latest || exit 1");
  c->add_option("REF", a->refs, "Checkpoints to verify (default: all, plus the markers)")
      ->type_name("REF");
  c->add_flag("--quick", a->quick, "Check presence and sizes only; no hashing");
  c->add_flag("--strict", a->strict, "Count warnings (extra files, stale markers) as failures");
  c->add_flag("--repair", a->repair,
              "Rewrite last and best.json from the checkpoints (never touches their files)");
  c->add_flag("-v,--verbose", a->verbose, "Print NAME/PATH: OK for every good file");
  c->callback([&cli, a]() { cli.run = [&cli, a]() { return run_verify(cli, *a); }; });
}

}  // namespace ckpt::cli
