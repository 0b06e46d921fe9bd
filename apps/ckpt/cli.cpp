// SPDX-License-Identifier: Apache-2.0
// The front end: global options, deprecated aliases, error rendering, dispatch.
#include "cli.hpp"

#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <set>

#include <fmt/format.h>

#include "ckpt/format.hpp"
#include "ckpt/paths.hpp"
#include "ckpt/transfer.hpp"

namespace ckpt::cli {

namespace {

void on_signal(int) { request_interrupt(); }

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

struct Alias {
  const char* old_name;
  const char* new_name;
};

constexpr Alias k_aliases[] = {
    {"--out_dir", "--root"},         {"--out-dir", "--root"},
    {"--keep_last_k", "--keep-last"}, {"--best_key", "--best-key"},
    {"--weights_only", "--weights-only"},
};

bool command_seen(const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a == "help") return true;
    for (const auto& c : commands()) {
      if (a == c.name) return true;
    }
  }
  return false;
}

// Rewrites deprecated spellings to the current ones, one warning each.
std::vector<std::string> rewrite_aliases(int argc, char** argv, std::vector<std::string>& warnings) {
  std::vector<std::string> args;
  bool done = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (done) {
      args.push_back(a);
      continue;
    }
    if (a == "--") {
      done = true;
      args.push_back(a);
      continue;
    }
    if (a == "--info" && !command_seen(args)) {
      warnings.push_back("--info is deprecated; use `ckpt info`");
      args.push_back("info");
      continue;
    }
    for (const auto& al : k_aliases) {
      std::string old_name = al.old_name;
      if (a == old_name || a.rfind(old_name + "=", 0) == 0) {
        warnings.push_back(fmt::format("{} is deprecated; use {}", old_name,
                                       std::string(al.new_name) == "--root" ? "-C/--root"
                                                                            : al.new_name));
        a = al.new_name + a.substr(old_name.size());
        break;
      }
    }
    args.push_back(a);
  }
  return args;
}

// An empty value ("info ''", "--to ''") is a mistake, never "not given".
void refuse_empty_values(const CLI::App& app) {
  for (const CLI::Option* opt : app.get_options()) {
    if (opt->count() == 0 || opt->get_items_expected_max() == 0) continue;  // absent, or a flag
    for (const auto& v : opt->results()) {
      if (v.empty()) {
        throw Error(ErrorKind::usage, fmt::format("{}: empty value", opt->get_name()));
      }
    }
  }
  for (const CLI::App* sub : app.get_subcommands()) refuse_empty_values(*sub);
}

// The command on the command line ("save"), or "" when there is none.
std::string command_named(const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a == "--") break;
    if (a == "help" || a == "version") return a;
    for (const auto& c : commands()) {
      if (a == c.name) return a;
    }
  }
  return std::string();
}

// The first argument that looks like an option and that neither the global
// options nor the command's know ("--hlep"), if any.
std::optional<std::string> unknown_option(const CLI::App& app, const CLI::App* sub,
                                          const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a == "--") break;
    if (a.size() < 2 || a[0] != '-') continue;
    if (std::isdigit(static_cast<unsigned char>(a[1])) || a[1] == '.') continue;  // -1, -.5
    std::string opt = a.substr(0, a.find('='));
    if (opt.size() > 2 && opt[1] != '-') opt = opt.substr(0, 2);  // -C/dir, -qv
    if (opt == "-h" || opt == "--help") continue;
    if (app.get_option_no_throw(opt) || (sub && sub->get_option_no_throw(opt))) continue;
    return opt;
  }
  return std::nullopt;
}

bool wants_json(const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a == "--") break;
    if (a == "--json") return true;
  }
  return false;
}

// "1:05", "1:02:03".
std::string clock_text(double seconds) {
  auto s = static_cast<std::uint64_t>(std::llround(std::max(0.0, seconds)));
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

// Progress on stderr, from the library's (done, total) callback: a line
// redrawn in place on a terminal, a line a second for --progress always on
// anything else, one JSON object per line for --progress json.
class ProgressMeter {
 public:
  enum class Style { off, terminal, lines, json };
  explicit ProgressMeter(Style style) : m_style(style) {}
  ~ProgressMeter() { clear(); }

  void update(std::uint64_t done, std::uint64_t total) {
    auto now = std::chrono::steady_clock::now();
    if (!m_started) {
      m_started = true;
      m_start = now;
    }
    m_done = done;
    m_total = total;
    auto gap = m_style == Style::lines ? std::chrono::milliseconds(1000)
                                       : std::chrono::milliseconds(200);
    if (m_reported && now - m_last < gap) return;
    m_last = now;
    m_reported = true;
    double elapsed = seconds_since_start(now);
    double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0;
    std::optional<double> eta;
    if (total > 0 && rate > 0) eta = static_cast<double>(total - std::min(done, total)) / rate;
    switch (m_style) {
      case Style::off:
        return;
      case Style::json: {
        json j = {{"schema_version", k_json_schema_version}, {"event", "progress"},
                  {"done", done}, {"total", total},
                  {"rate", std::llround(rate)}};
        j["eta"] = eta ? json(std::llround(*eta)) : json(nullptr);
        std::fprintf(stderr, "%s\n", j.dump().c_str());
        break;
      }
      case Style::terminal:
        std::fprintf(stderr, "\r\033[K%s", text(done, total, rate, eta).c_str());
        m_shown = true;
        break;
      case Style::lines:
        std::fprintf(stderr, "ckpt: %s\n", text(done, total, rate, eta).c_str());
        break;
    }
    std::fflush(stderr);
  }

  // Erases the line on a terminal, before anything else is printed; the next
  // update draws it again.
  void clear() {
    if (!m_shown) return;
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
    m_shown = false;
  }

  // The operation is over: the line goes; --progress json says "done".
  void finish() {
    clear();
    if (m_style == Style::json && m_started) {
      double elapsed = seconds_since_start(std::chrono::steady_clock::now());
      json j = {{"schema_version", k_json_schema_version},
                {"event", "done"},
                {"done", m_done},
                {"total", m_total},
                {"elapsed", std::round(elapsed * 1000) / 1000},
                {"rate", elapsed > 0 ? std::llround(static_cast<double>(m_done) / elapsed) : 0}};
      std::fprintf(stderr, "%s\n", j.dump().c_str());
      std::fflush(stderr);
    }
    m_started = m_reported = false;
  }

  bool enabled() const { return m_style != Style::off; }

 private:
  double seconds_since_start(std::chrono::steady_clock::time_point now) const {
    return std::chrono::duration<double>(now - m_start).count();
  }

  static std::string text(std::uint64_t done, std::uint64_t total, double rate,
                          std::optional<double> eta) {
    std::string line = human_size(done);
    if (total > 0) {
      line += fmt::format(" / {} ({:.0f}%)", human_size(total),
                          100.0 * static_cast<double>(std::min(done, total)) /
                              static_cast<double>(total));
    }
    if (rate > 0) line += fmt::format(", {}/s", human_size(static_cast<std::uint64_t>(rate)));
    if (eta) line += fmt::format(", {} left", clock_text(*eta));
    return line;
  }

  Style m_style;
  bool m_started = false;
  bool m_reported = false;
  bool m_shown = false;
  std::uint64_t m_done = 0;
  std::uint64_t m_total = 0;
  std::chrono::steady_clock::time_point m_start{};
  std::chrono::steady_clock::time_point m_last{};
};

ProgressMeter* g_progress = nullptr;

// A terminal that takes "\r\033[K" and colours: TERM set, and not "dumb".
bool terminal_is_capable() {
  const char* term = std::getenv("TERM");
  return term && *term && std::string(term) != "dumb";
}

ProgressMeter::Style progress_style(const GlobalOptions& g) {
  using Style = ProgressMeter::Style;
  bool terminal = ::isatty(STDERR_FILENO) && terminal_is_capable();
  if (g.progress == "json") return Style::json;
  if (g.progress == "always") return terminal ? Style::terminal : Style::lines;
  if (g.progress == "auto" && terminal && !g.quiet && !g.json) return Style::terminal;
  return Style::off;
}

}  // namespace

Context Cli::context() {
  if (!fs) fs.emplace(global.no_fsync);
  Context ctx;
  ctx.fs = &*fs;
  ctx.lock_timeout = global.lock_timeout;
  ctx.threads = global.threads;
  ctx.warn = [this](const std::string& m) { warn(m); };
  if (g_progress && g_progress->enabled()) {
    ctx.progress = [](std::uint64_t done, std::uint64_t total) {
      g_progress->update(done, total);
    };
  }
  return ctx;
}

std::string Cli::root() const {
  if (!global.root.empty()) return global.root;
  if (const char* env = std::getenv("CKPT_ROOT"); env && *env) return env;
  return ".";
}

std::string Cli::root_path() const { return canonical_root(root()); }

void Cli::progress_done() const {
  if (g_progress) g_progress->finish();
}

int Cli::fail(const Error& e) const {
  if (g_progress) g_progress->clear();
  std::fflush(stdout);
  if (global.json) {
    json err = {{"code", exit_code(e.kind())}, {"kind", kind_name(e.kind())}};
    if (!e.reason().empty()) err["reason"] = e.reason();
    err["message"] = e.message();
    std::fprintf(stderr, "%s\n", with_envelope({{"error", err}}).dump().c_str());
  } else {
    std::fprintf(stderr, "ckpt: error: %s\n", e.what());
  }
  return exit_code(e.kind());
}

void Cli::warn(const std::string& message) const {
  // The library may meet the same condition twice (a legacy marker read for
  // two purposes): one line each.
  if (!m_warned.insert(message).second) return;
  m_warnings.push_back(message);
  if (global.quiet) return;
  if (g_progress) g_progress->clear();
  std::fprintf(stderr, "ckpt: warning: %s\n", message.c_str());
}

json Cli::with_envelope(const json& j) const {
  json out = {{"schema_version", k_json_schema_version}};
  add_fields(out, j);
  out["warnings"] = m_warnings;
  return out;
}

void Cli::print_json(const json& j) const {
  std::printf("%s\n", with_envelope(j).dump().c_str());
}

bool Cli::colour_stdout() const {
  const char* no = std::getenv("NO_COLOR");
  return ::isatty(STDOUT_FILENO) && terminal_is_capable() && !(no && *no) && !global.json;
}

std::string human_size(std::uint64_t bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  if (u == 0) return fmt::format("{} B", bytes);
  return fmt::format("{:.1f} {}", v, units[u]);
}

json checkpoint_ref_json(const std::string& root, const std::string& name) {
  auto step = parse_step_dir_name(name);
  return {{"name", name},
          {"path", join_path(root, name)},
          {"step", step ? json(*step) : json(nullptr)}};
}

json best_marker_json(const std::string& root, const BestMarker& b) {
  json j = checkpoint_ref_json(root, b.path);
  j["step"] = b.step;
  j["key"] = b.key;
  j["mode"] = mode_name(b.mode);
  j["value"] = b.value;
  j["updated"] = b.updated.empty() ? json(nullptr) : json(b.updated);
  return j;
}

json best_marker_json(const std::string& root, const std::optional<BestMarker>& b) {
  return b ? best_marker_json(root, *b) : json(nullptr);
}

json last_json(const std::string& root, const std::optional<std::string>& name) {
  return name ? checkpoint_ref_json(root, *name) : json(nullptr);
}

json file_json(const FileEntry& f) {
  json j = {{"path", f.path},
            {"size", f.size},
            {"sha256", f.sha256 ? json(*f.sha256) : json(nullptr)}};
  if (f.shard) j["shard"] = *f.shard;
  return j;
}

json metrics_json(const std::map<std::string, std::optional<double>>& metrics) {
  json j = json::object();
  for (const auto& [k, v] : metrics) j[k] = v ? json(*v) : json(nullptr);
  return j;
}

json checkpoint_summary_json(const std::string& path, const CheckpointMeta& m) {
  return {{"name", m.name},
          {"path", path},
          {"step", m.step},
          {"commit_seq", m.commit_seq},
          {"created", m.created},
          {"metrics", metrics_json(m.metrics)},
          {"total_size", m.total_size},
          {"file_count", m.files.size()}};
}

json checkpoint_detail_json(const std::string& path, const CheckpointMeta& m) {
  json j = checkpoint_summary_json(path, m);
  j["meta"] = m.meta;
  j["weights"] = m.weights;
  j["checksum"] = m.checksum;
  json files = json::array();
  for (const auto& f : m.files) files.push_back(file_json(f));
  j["files"] = files;
  j["tool"] = m.tool;
  j["format_version"] = k_schema_version;
  if (m.shards) {
    // The set that wrote it, as a sharded save and a pending step show theirs.
    ShardStatus set{m.shard_group.value_or(""), *m.shards, {}, {}};
    for (std::uint64_t i = 0; i < *m.shards; ++i) set.present.push_back(i);
    j["shards"] = shards_json(set);
  }
  return j;
}

void add_fields(json& j, const json& more) {
  for (const auto& [k, v] : more.items()) j[k] = v;
}

json shards_json(const ShardStatus& s) {
  return {{"group", s.group}, {"count", s.count}, {"present", s.present}, {"missing", s.missing}};
}

json pending_json(const std::string& root, const PendingStep& p) {
  return {{"name", p.name},
          {"path", join_path(root, p.name)},
          {"step", p.step},
          {"shards", shards_json(p.shards)},
          {"updated", p.updated.empty() ? json(nullptr) : json(p.updated)},
          {"replaces", p.force}};
}

std::string format_metric(const std::optional<double>& v) {
  if (!v) return "null";
  return fmt::format("{}", *v);
}

std::pair<std::string, std::string> split_key_value(const std::string& arg, const char* option) {
  auto pos = arg.find('=');
  if (pos == std::string::npos || pos == 0) {
    throw Error(ErrorKind::usage, fmt::format("{} wants KEY=VALUE, got {:?}", option, arg));
  }
  return {arg.substr(0, pos), arg.substr(pos + 1)};
}

void check_metric_key(const char* option, const std::string& key) {
  for (char ch : key) {
    auto c = static_cast<unsigned char>(ch);
    if (c <= ' ' || c == 0x7f || c == '=') {
      throw Error(ErrorKind::usage,
                  fmt::format("{} {:?}: a metric name has no spaces, '=' or control characters",
                              option, key));
    }
  }
}

std::optional<std::uint64_t> parse_count(const char* option, const std::string& text) {
  if (text.empty()) return std::nullopt;
  auto n = parse_step(text);
  if (!n) throw Error(ErrorKind::usage, fmt::format("{} {:?}: want a whole number", option, text));
  return n;
}

double parse_number(const std::string& option, const std::string& text) {
  const char* s = text.c_str();
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s, &end);
  if (text.empty() || end == s || *end != '\0' || (errno == ERANGE && std::isfinite(v) && v != 0)) {
    throw Error(ErrorKind::usage, fmt::format("{} {:?}: not a number", option, text));
  }
  return v;
}

void print_table(const std::vector<std::vector<std::string>>& rows,
                 const std::set<std::size_t>& right_aligned) {
  std::vector<std::size_t> width;
  for (const auto& r : rows) {
    if (width.size() < r.size()) width.resize(r.size(), 0);
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += right_aligned.count(i) ? fmt::format("{:>{}}", r[i], width[i])
                                     : fmt::format("{:<{}}", r[i], width[i]);
      if (i + 1 < r.size()) line += "  ";
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    fmt::print("{}\n", line);
  }
}

// "0-3,5": shard indexes as ranges ("-" when none).
std::string shard_ranges(const std::vector<std::uint64_t>& v) {
  std::string out;
  for (std::size_t i = 0; i < v.size();) {
    std::size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
    if (!out.empty()) out += ",";
    out += j == i ? fmt::format("{}", v[i]) : fmt::format("{}-{}", v[i], v[j]);
    i = j + 1;
  }
  return out.empty() ? "-" : out;
}

const std::vector<CommandSpec>& commands() {
  static const std::vector<CommandSpec> table = {
      {"save", "Commit files as one checkpoint, atomically, with a SHA-256 manifest", setup_save},
      {"info", "List the checkpoints, or show one (latest, best, a step, a path)", setup_info},
      {"verify", "Check checkpoints and markers against their manifests", setup_verify},
      {"load", "Verify a checkpoint and print (or materialise) its file paths", setup_load},
      {"prune", "Apply the retention policy; last and best are always kept", setup_prune},
      {"promote-best", "Offer a checkpoint as best, or rebuild best.json", setup_promote},
      {"abort", "Remove a pending sharded step and the shards recorded for it", setup_abort},
      {"diff", "Show the files and metrics that differ between two checkpoints", setup_diff},
      {"rm", "Remove checkpoints by name (last and best only with --force)", setup_rm},
      {"rollback", "Make a checkpoint the latest: remove every one after it", setup_rollback},
      {"copy", "Commit a checkpoint again at another root (directory or s3://), checked byte for byte", setup_copy},
  };
  return table;
}

namespace {

// Output that never reached standard output is a failure (the GNU rule: a
// full disk or a closed pipe must not pass for success). Exit 6, unless the
// command failed already, whose exit code stays.
int close_stdout(const Cli& cli, int rc) {
  errno = 0;
  bool flushed = std::fflush(stdout) == 0;
  int err = errno;
  if (flushed && !std::ferror(stdout)) return rc;
  Error e = err != 0 ? io_error(err, "cannot write to", "standard output")
                     : Error(ErrorKind::io, "cannot write to standard output");
  int failed = cli.fail(e);
  return rc != 0 ? rc : failed;
}

int run_command(Cli& cli, int argc, char** argv);

}  // namespace

int run(int argc, char** argv) {
  Cli cli;
  int rc = run_command(cli, argc, argv);
  return close_stdout(cli, rc);
}

namespace {

// "ckpt 0.2.0 (checkpoint format 1)": the tool and the format it writes.
std::string version_line() { return fmt::format("{} (checkpoint format {})", tool_version(), k_schema_version); }

// version_line(); with --json, the version, the manifest format's and the
// JSON vocabulary's.
int print_version(const Cli& cli) {
  if (cli.global.json) {
    std::string tool = tool_version();
    cli.print_json({{"tool", tool},
                    {"version", tool.substr(tool.find(' ') + 1)},
                    {"format_version", k_schema_version}});
  } else {
    std::cout << version_line() << "\n";
  }
  return 0;
}

int run_command(Cli& cli, int argc, char** argv) {
  std::vector<std::string> alias_warnings;
  std::vector<std::string> args = rewrite_aliases(argc, argv, alias_warnings);
  cli.global.json = wants_json(args);

  CLI::App app{"ckpt: atomic, verifiable checkpoints for training jobs", "ckpt"};
  app.set_version_flag("-V,--version", version_line());
  app.require_subcommand(0, 1);
  app.fallthrough();
  app.footer(
      "Run `ckpt help COMMAND` or `ckpt COMMAND --help` for a command's options.\n"
      "Exit codes: 0 ok, 1 integrity, 2 usage, 3 not found, 4 conflict, 5 locked,\n"
      "6 I/O, 7 unsupported, 130 interrupted. See ckpt(1).");
  app.add_option("-C,--root", cli.global.root,
                 "The checkpoint root: a directory, or s3://BUCKET/PREFIX in an object store "
                 "(default: $CKPT_ROOT, else the current directory)")
      ->type_name("DIR");
  app.add_flag("--json", cli.global.json, "Machine-readable output on stdout, errors on stderr");
  app.add_flag("-q,--quiet", cli.global.quiet, "Print nothing but errors");
  app.add_option("--lock-timeout", cli.global.lock_timeout,
                 "Seconds to wait for the root lock (0: fail at once)")
      ->type_name("SECONDS");
  app.add_flag("--no-fsync", cli.global.no_fsync,
               "Skip fsync (unsafe: for scratch file systems only)");
  app.add_option("--threads", cli.global.threads,
                 "Threads that copy, hash and fsync (default: $CKPT_THREADS, else one per core)")
      ->envname("CKPT_THREADS")
      ->check(CLI::Range(1u, 1024u))
      ->type_name("N");
  app.add_option("--progress", cli.global.progress,
                 "Progress on stderr: auto (on a terminal), always, never, or json (a JSON "
                 "object per line)")
      ->check(CLI::IsMember({"auto", "always", "never", "json"}))
      ->type_name("WHEN");

  for (const auto& c : commands()) {
    c.setup(app, cli);
    app.get_subcommand(c.name)->description(c.summary);
  }

  app.add_subcommand("version", "Print the version (as --version does)")->callback([&]() {
    cli.run = [&cli]() { return print_version(cli); };
  });

  std::string help_topic;
  auto* help = app.add_subcommand("help", "Show help for a command");
  help->add_option("COMMAND", help_topic, "The command")
      ->type_name("COMMAND");
  help->callback([&]() {
    cli.run = [&]() {
      if (help_topic.empty()) {
        // app.help() would describe the command chosen, `help` itself.
        std::cout << app.get_formatter()->make_help(&app, "ckpt", CLI::AppFormatMode::Normal);
        return 0;
      }
      for (auto* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
        if (sub->get_name() == help_topic) {
          std::cout << sub->help();
          return 0;
        }
      }
      return cli.fail(Error(ErrorKind::usage, fmt::format("no command {:?}", help_topic)));
    };
  });

  // CLI11 wants the arguments in reverse order.
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    std::cout << (app.get_subcommands().empty() ? app.help()
                                                : app.get_subcommands().front()->help());
    return 0;
  } catch (const CLI::CallForAllHelp&) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return 0;
  } catch (const CLI::CallForVersion&) {
    return print_version(cli);
  } catch (const CLI::ParseError& e) {
    std::string command = command_named(args);
    std::string see = command.empty() ? "ckpt --help" : fmt::format("ckpt {} --help", command);
    std::string what = e.what();
    // CLI11 checks required options before unknown ones: `save --hlep`
    // would say "--step is required" instead of naming the typo.
    if (dynamic_cast<const CLI::RequiredError*>(&e)) {
      const CLI::App* sub = command.empty() ? nullptr : app.get_subcommand_ptr(command).get();
      if (auto unknown = unknown_option(app, sub, args)) {
        what = fmt::format("unknown option {}", *unknown);
      }
    }
    return cli.fail(Error(ErrorKind::usage, fmt::format("{} (see {})", what, see)));
  } catch (const Error& e) {
    return cli.fail(e);
  }
  try {
    refuse_empty_values(app);
    if (!std::isfinite(cli.global.lock_timeout) || cli.global.lock_timeout < 0) {
      throw Error(ErrorKind::usage,
                  fmt::format("--lock-timeout {}: want a number of seconds, 0 or more",
                              cli.global.lock_timeout));
    }
  } catch (const Error& e) {
    return cli.fail(e);
  }
  for (const auto& w : alias_warnings) cli.warn(w);
  if (!cli.run) {
    if (cli.global.json) return cli.fail(Error(ErrorKind::usage, "no command given (see ckpt --help)"));
    std::cout << app.help();
    return 2;
  }
  ProgressMeter meter(progress_style(cli.global));
  g_progress = &meter;
  install_signal_handlers();
  int rc;
  try {
    rc = cli.run();
  } catch (const Error& e) {
    rc = cli.fail(e);
  } catch (const std::exception& e) {
    rc = cli.fail(Error(ErrorKind::io, e.what()));
  }
  g_progress = nullptr;
  return rc;
}

}  // namespace

}  // namespace ckpt::cli
