// The front end: global options, deprecated aliases, error rendering, dispatch.
#include "cli.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <set>

#include <fmt/format.h>

#include "ckpt/format.hpp"
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

bool wants_json(const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a == "--") break;
    if (a == "--json") return true;
  }
  return false;
}

class ProgressMeter {
 public:
  explicit ProgressMeter(bool enabled) : m_enabled(enabled) {}
  ~ProgressMeter() {
    if (m_shown) std::fputs("\r\033[K", stderr);
  }
  void operator()(std::uint64_t n, std::uint64_t total) {
    m_done += n;
    auto now = std::chrono::steady_clock::now();
    if (now - m_last < std::chrono::milliseconds(200)) return;
    m_last = now;
    m_shown = true;
    if (total > 0) {
      std::fprintf(stderr, "\r\033[K%s / %s (%.0f%%)", human_size(m_done).c_str(),
                   human_size(total).c_str(), 100.0 * static_cast<double>(m_done) /
                                                  static_cast<double>(total));
    } else {
      std::fprintf(stderr, "\r\033[K%s hashed", human_size(m_done).c_str());
    }
    std::fflush(stderr);
  }
  bool enabled() const { return m_enabled; }

 private:
  bool m_enabled;
  bool m_shown = false;
  std::uint64_t m_done = 0;
  std::chrono::steady_clock::time_point m_last{};
};

ProgressMeter* g_progress = nullptr;

}  // namespace

Context Cli::context() {
  if (!fs) fs.emplace(global.no_fsync);
  Context ctx;
  ctx.fs = &*fs;
  ctx.lock_timeout = global.lock_timeout;
  ctx.threads = global.threads;
  ctx.warn = [this](const std::string& m) { warn(m); };
  if (g_progress && g_progress->enabled()) {
    ctx.progress = [](std::uint64_t n, std::uint64_t total) { (*g_progress)(n, total); };
  }
  return ctx;
}

std::string Cli::root() const {
  if (!global.root.empty()) return global.root;
  if (const char* env = std::getenv("CKPT_ROOT"); env && *env) return env;
  return ".";
}

int Cli::fail(const Error& e) const {
  std::fflush(stdout);
  if (global.json) {
    json j;
    j["error"] = {{"code", exit_code(e.kind())}, {"kind", kind_name(e.kind())}};
    if (!e.reason().empty()) j["error"]["reason"] = e.reason();
    j["error"]["message"] = e.message();
    std::fprintf(stderr, "%s\n", j.dump().c_str());
  } else {
    std::fprintf(stderr, "ckpt: error: %s\n", e.what());
  }
  return exit_code(e.kind());
}

void Cli::warn(const std::string& message) const {
  if (global.quiet) return;
  // The library may meet the same condition twice (a legacy marker read for
  // two purposes): one line each.
  if (!m_warned.insert(message).second) return;
  std::fprintf(stderr, "ckpt: warning: %s\n", message.c_str());
}

void Cli::print_json(const json& j) const { std::printf("%s\n", j.dump().c_str()); }

bool Cli::colour_stdout() const {
  const char* no = std::getenv("NO_COLOR");
  return ::isatty(STDOUT_FILENO) && !(no && *no) && !global.json;
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
  };
  return table;
}

int run(int argc, char** argv) {
  std::vector<std::string> alias_warnings;
  std::vector<std::string> args = rewrite_aliases(argc, argv, alias_warnings);
  Cli cli;
  cli.global.json = wants_json(args);

  CLI::App app{"ckpt: atomic, verifiable checkpoints for training jobs", "ckpt"};
  app.set_version_flag("--version", tool_version());
  app.require_subcommand(0, 1);
  app.fallthrough();
  app.footer(
      "Run `ckpt help COMMAND` or `ckpt COMMAND --help` for a command's options.\n"
      "Exit codes: 0 ok, 1 integrity, 2 usage, 3 not found, 4 conflict, 5 locked,\n"
      "6 I/O, 7 unsupported, 130 interrupted. See ckpt(1).");
  app.add_option("-C,--root", cli.global.root,
                 "The checkpoint root (default: $CKPT_ROOT, else the current directory)")
      ->type_name("DIR");
  app.add_flag("--json", cli.global.json, "Machine-readable output on stdout, errors on stderr");
  app.add_flag("-q,--quiet", cli.global.quiet, "Print nothing but errors");
  app.add_option("--lock-timeout", cli.global.lock_timeout,
                 "Seconds to wait for the root lock (0: fail at once)")
      ->check(CLI::NonNegativeNumber)
      ->type_name("SECONDS");
  app.add_flag("--no-fsync", cli.global.no_fsync,
               "Skip fsync (unsafe: for scratch file systems only)");
  app.add_option("--threads", cli.global.threads,
                 "Threads that copy, hash and fsync (default: $CKPT_THREADS, else one per core)")
      ->envname("CKPT_THREADS")
      ->check(CLI::Range(1u, 1024u))
      ->type_name("N");
  app.add_option("--progress", cli.global.progress, "Progress on stderr: auto, always or never")
      ->check(CLI::IsMember({"auto", "always", "never"}))
      ->type_name("WHEN");

  for (const auto& c : commands()) {
    c.setup(app, cli);
    app.get_subcommand(c.name)->description(c.summary);
  }

  std::string help_topic;
  auto* help = app.add_subcommand("help", "Show help for a command");
  help->add_option("COMMAND", help_topic, "The command")
      ->type_name("COMMAND");
  help->callback([&]() {
    cli.run = [&]() {
      if (help_topic.empty()) {
        std::cout << app.help();
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
    std::cout << tool_version() << "\n";
    return 0;
  } catch (const CLI::ParseError& e) {
    return cli.fail(Error(ErrorKind::usage, fmt::format("{} (see ckpt --help)", e.what())));
  } catch (const Error& e) {
    return cli.fail(e);
  }
  try {
    refuse_empty_values(app);
    if (!std::isfinite(cli.global.lock_timeout)) {
      throw Error(ErrorKind::usage, "--lock-timeout: want a finite number of seconds");
    }
  } catch (const Error& e) {
    return cli.fail(e);
  }
  for (const auto& w : alias_warnings) cli.warn(w);
  if (!cli.run) {
    std::cout << app.help();
    return 2;
  }
  bool show_progress = cli.global.progress == "always" ||
                       (cli.global.progress == "auto" && ::isatty(STDERR_FILENO) &&
                        !cli.global.quiet && !cli.global.json);
  ProgressMeter meter(show_progress);
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

}  // namespace ckpt::cli
