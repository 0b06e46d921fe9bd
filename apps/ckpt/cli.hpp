// SPDX-License-Identifier: Apache-2.0
// Shared state of the command-line front end: global options, output, the command table.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "ckpt/error.hpp"
#include "ckpt/format.hpp"
#include "ckpt/repository.hpp"

namespace ckpt::cli {

using json = nlohmann::ordered_json;

// The version of the JSON vocabulary every --json output speaks (docs/json/):
// "schema_version" of each result, error object and progress event. Raised
// on a breaking change to a name or a type.
inline constexpr int k_json_schema_version = 1;

struct GlobalOptions {
  std::string root;
  bool json = false;
  bool quiet = false;
  double lock_timeout = 60;
  bool no_fsync = false;
  unsigned threads = 0;  // 0: one per core
  std::string progress = "auto";
};

struct Cli {
  GlobalOptions global;
  std::function<int()> run;  // set by the chosen subcommand
  std::optional<PosixFileSystem> fs;

  // A library context from the global options.
  Context context();
  std::string root() const;
  // root(), absolute: the "root" of every JSON result and the base of its paths.
  std::string root_path() const;

  // Renders an Error: the JSON error object or "ckpt: error: ..."; returns the exit code.
  int fail(const Error& e) const;
  void warn(const std::string& message) const;
  // The library operation went to its end: erases the progress line (and
  // ends --progress json with its "done" event) before the results are
  // printed. A failed operation calls fail() instead, whose error ends it.
  void progress_done() const;
  // Prints a result: "schema_version" first, then j's fields, then the
  // "warnings" given so far.
  void print_json(const json& j) const;
  bool colour_stdout() const;

 private:
  mutable std::set<std::string> m_warned;
  mutable std::vector<std::string> m_warnings;  // for "warnings", in order
  json with_envelope(const json& j) const;
};

// The subcommand table: one place for the names, the one-line help and the
// setup function. --help, the man pages and the completions follow it.
struct CommandSpec {
  const char* name;
  const char* summary;
  void (*setup)(CLI::App& app, Cli& cli);
};
const std::vector<CommandSpec>& commands();

void setup_save(CLI::App& app, Cli& cli);
void setup_info(CLI::App& app, Cli& cli);
void setup_verify(CLI::App& app, Cli& cli);
void setup_load(CLI::App& app, Cli& cli);
void setup_prune(CLI::App& app, Cli& cli);
void setup_promote(CLI::App& app, Cli& cli);
void setup_abort(CLI::App& app, Cli& cli);
void setup_diff(CLI::App& app, Cli& cli);
void setup_rm(CLI::App& app, Cli& cli);
void setup_rollback(CLI::App& app, Cli& cli);
void setup_copy(CLI::App& app, Cli& cli);

// A save's result: the --json object of save (and of copy, which adds
// "source"), and the lines after the first of its text form (shared files,
// best, pruned).
json save_report_json(const std::string& root, const SaveReport& r);
void print_save_outcome(const SaveReport& r);

// "0-3,5": shard indexes as ranges ("-" when none).
std::string shard_ranges(const std::vector<std::uint64_t>& v);
// "4.0 KiB".
std::string human_size(std::uint64_t bytes);
std::string format_metric(const std::optional<double>& v);
// The JSON vocabulary's shared objects (docs/json/README.md).
// A checkpoint named in a list: {"name", "path" (absolute), "step"}.
json checkpoint_ref_json(const std::string& root, const std::string& name);
// The marker best.json names: {"name", "path", "step", "key", "mode", "value", "updated"}.
json best_marker_json(const std::string& root, const BestMarker& b);
json best_marker_json(const std::string& root, const std::optional<BestMarker>& b);
// `last`: a checkpoint ref, or null.
json last_json(const std::string& root, const std::optional<std::string>& name);
// A stored file: {"path" (stored, relative), "size", "sha256" (null without a digest)}.
json file_json(const FileEntry& f);
json metrics_json(const std::map<std::string, std::optional<double>>& metrics);
// A checkpoint as a list shows it: the ref and "commit_seq", "created",
// "metrics", "total_size", "file_count".
json checkpoint_summary_json(const std::string& path, const CheckpointMeta& m);
// The summary and the whole manifest: "meta", "weights", "checksum", "files",
// "tool", "format_version", and "shards" (the set, all present) when sharded.
json checkpoint_detail_json(const std::string& path, const CheckpointMeta& m);
// Copies more's fields into j, after j's own.
void add_fields(json& j, const json& more);
// A sharded step's set: {"group", "count", "present", "missing"}.
json shards_json(const ShardStatus& s);
// A pending sharded step: {"name", "path", "step", "shards", "updated", "replaces"}.
json pending_json(const std::string& root, const PendingStep& p);
// Parses KEY=VALUE; throws Error(usage) naming the option.
std::pair<std::string, std::string> split_key_value(const std::string& arg, const char* option);

// A metric name must print unambiguously as KEY=VALUE and in a table: no
// whitespace, no '=', no control character. Throws Error(usage) naming the
// option otherwise.
void check_metric_key(const char* option, const std::string& key);
// A whole number option ("--keep-last 3"); nullopt when not given.
std::optional<std::uint64_t> parse_count(const char* option, const std::string& text);
// A decimal number, nan and inf included; throws Error(usage) naming the option.
double parse_number(const std::string& option, const std::string& text);
// Prints rows as aligned columns (two spaces apart); right_aligned holds column indexes.
void print_table(const std::vector<std::vector<std::string>>& rows,
                 const std::set<std::size_t>& right_aligned);

int run(int argc, char** argv);

}  // namespace ckpt::cli
