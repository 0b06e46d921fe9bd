// SPDX-License-Identifier: Apache-2.0
// Roots, markers and refs: what a command needs before it can act on a checkpoint.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <limits>
#include <mutex>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ckpt/clock.hpp"
#include "ckpt/parallel.hpp"
#include "ckpt/paths.hpp"
#include "ckpt/repository.hpp"
#include "ckpt/version.hpp"
#include "internal.hpp"
#include "manifest_cache.hpp"
#include "store/store.hpp"

namespace ckpt {

namespace {

PosixFileSystem& default_fs() {
  static PosixFileSystem fs;
  return fs;
}

}  // namespace

namespace detail {

bool is_root_entry(const std::string& name) {
  return name == k_private_dir || name == k_last_file || name == k_best_file ||
         name == k_policy_file || parse_step_dir_name(name).has_value();
}

}  // namespace detail

std::string tool_version() { return "ckpt " CKPT_VERSION; }

FileSystem& Context::file_system() const { return fs ? *fs : default_fs(); }

void Context::warning(const std::string& message) const {
  if (warn) warn(message);
}

std::string open_root(const Context& ctx, const std::string& path) {
  // The directory operations' entry: an object store is reached through open_store.
  detail::require_directory_root(path);
  FileSystem& fs = ctx.file_system();
  std::string root = absolute_path(path.empty() ? "." : path);
  auto st = fs.stat(root);
  if (!st) {
    throw Error(ErrorKind::not_found, fmt::format("no such root: {}", root))
        .with_reason(k_reason_no_root);
  }
  if (st->type != FileType::dir) {
    throw Error(ErrorKind::unsupported, fmt::format("{} is not a directory", root));
  }
  // What every root ckpt has written to holds, without listing the root
  // (O(1) at any number of checkpoints); then, for a root made by hand or
  // an empty directory, a look at every entry.
  for (const char* n : {k_private_dir, k_last_file}) {
    if (fs.lstat(join_path(root, n))) return root;
  }
  auto names = fs.list_dir(root);
  if (names.empty()) return root;
  for (const auto& n : names) {
    if (detail::is_root_entry(n)) return root;
  }
  throw Error(ErrorKind::unsupported,
              fmt::format("{} is not a ckpt root (no .ckpt/, last, best.json, policy.json or "
                          "step-* inside); check -C",
                          root));
}

namespace detail {

std::string private_dir(const std::string& root) { return join_path(root, k_private_dir); }
std::string staging_dir(const std::string& root) { return join_path(private_dir(root), "staging"); }
std::string trash_dir(const std::string& root) { return join_path(private_dir(root), "trash"); }
std::string lock_name() { return std::string(k_private_dir) + "/lock"; }
std::string lock_path(const std::string& root) { return join_path(root, lock_name()); }

std::optional<LastRead> read_last(const Context& ctx, Store& store) {
  std::string target;
  bool legacy = false;
  if (auto link = store.read_link(k_last_file)) {
    target = *link;
    legacy = true;
  } else if (auto text = store.read(k_last_file, k_max_marker_bytes)) {
    target = parse_last_text(*text);
  } else {
    return std::nullopt;
  }
  if (parse_step_dir_name(target) && target.find('/') == std::string::npos) {
    if (legacy) {
      ctx.warning(fmt::format("last is a symbolic link (deprecated); it is rewritten as \"{}\" "
                              "by the next change",
                              target));
    }
    return LastRead{target, legacy};
  }
  // A legacy path form (a directory only): absolute, or relative to the root.
  const std::string& root = store.location();
  std::string abs;
  if (store.local() && !target.empty()) {
    abs = target.front() == '/' ? absolute_path(target) : absolute_path(join_path(root, target));
  }
  if (abs.empty() || parent_path(abs) != root || !parse_step_dir_name(base_name(abs))) {
    throw Error(ErrorKind::integrity,
                fmt::format("invalid last: {:?} does not name a checkpoint in the root", target));
  }
  ctx.warning(fmt::format(
      "last holds a deprecated form ({}); it is rewritten as \"{}\" by the next change",
      legacy ? "a symbolic link" : "a path", base_name(abs)));
  return LastRead{base_name(abs), true};
}

std::optional<LastRead> read_last(const Context& ctx, const std::string& root) {
  DirStore store(ctx.file_system(), root);
  return read_last(ctx, store);
}

std::string commit_counter_name() { return std::string(k_private_dir) + "/commit_seq"; }

std::string commit_counter_path(const std::string& root) {
  return join_path(root, commit_counter_name());
}

std::optional<std::uint64_t> parse_commit_counter(std::string text) {
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return parse_step(text);
}

std::optional<std::uint64_t> read_commit_counter(Store& store) {
  try {
    auto text = store.read(commit_counter_name(), 64);
    if (!text) return std::nullopt;
    return parse_commit_counter(std::move(*text));
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::io) throw;
    return std::nullopt;
  }
}

std::optional<std::uint64_t> read_commit_counter(const Context& ctx, const std::string& root) {
  DirStore store(ctx.file_system(), root);
  return read_commit_counter(store);
}

std::optional<BestMarker> read_best(Store& store) {
  auto text = store.read(k_best_file, k_max_marker_bytes);
  if (!text) return std::nullopt;
  return parse_best(*text);
}

std::optional<BestMarker> read_best(const Context& ctx, const std::string& root) {
  DirStore store(ctx.file_system(), root);
  return read_best(store);
}

std::optional<Policy> read_policy(Store& store) {
  auto text = store.read(k_policy_file, k_max_marker_bytes);
  if (!text) return std::nullopt;
  return parse_policy(*text);
}

std::optional<Policy> read_policy(const Context& ctx, const std::string& root) {
  DirStore store(ctx.file_system(), root);
  return read_policy(store);
}

CheckpointMeta parse_meta_of(const std::string& name, const std::string& text) {
  try {
    CheckpointMeta m = parse_checkpoint(text);
    if (auto s = parse_step_dir_name(name); !s || *s != m.step) {
      throw Error(ErrorKind::integrity, fmt::format("{} records step {}", k_meta_file, m.step));
    }
    return m;
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::io) throw;
    throw Error(e.kind(), fmt::format("{}: {}", name, e.message()));
  }
}

CheckpointMeta read_meta(Store& store, const std::string& name) {
  auto text = store.read(name + "/" + k_meta_file, k_max_meta_bytes);
  if (!text) {
    // Never committed (SPEC §1): a ref to it names nothing.
    throw Error(ErrorKind::not_found,
                fmt::format("{}: {} is missing, so it is not a committed checkpoint", name,
                            k_meta_file))
        .with_reason(k_reason_no_checkpoint);
  }
  return parse_meta_of(name, *text);
}

CheckpointMeta read_meta(const Context& ctx, const std::string& dir) {
  DirStore store(ctx.file_system(), parent_path(dir));
  return read_meta(store, base_name(dir));
}

std::optional<std::string> find_step(Store& store, std::uint64_t step) {
  // By name, never by listing the root: the canonical width first, then
  // every other width a reader accepts, up to k_max_step_digits digits.
  std::string canonical = step_dir_name(step);
  if (store.has_step(canonical)) return canonical;
  if (!store.local()) {
    // One listing instead of a request for each of the other widths.
    for (const auto& n : store.step_names()) {
      if (n != canonical && parse_step_dir_name(n) == step && store.has_step(n)) return n;
    }
    return std::nullopt;
  }
  std::string digits = std::to_string(step);
  for (std::size_t width = digits.size(); width <= k_max_step_digits; ++width) {
    std::string name = "step-" + std::string(width - digits.size(), '0') + digits;
    if (name == canonical) continue;
    if (store.has_step(name)) return name;
  }
  return std::nullopt;
}

std::optional<std::string> find_step_dir(const Context& ctx, const std::string& root,
                                         std::uint64_t step) {
  DirStore store(ctx.file_system(), root);
  if (auto name = find_step(store, step)) return join_path(root, *name);
  return std::nullopt;
}

void check_private_dirs(const Context& ctx, const std::string& root) {
  for (const auto& p : {private_dir(root), staging_dir(root), trash_dir(root), pending_dir(root)}) {
    auto st = ctx.file_system().lstat(p);
    if (st && st->type != FileType::dir) {
      throw Error(ErrorKind::unsupported,
                  fmt::format("{} is {}; ckpt never writes or deletes through it (remove it)", p,
                              st->type == FileType::symlink ? "a symbolic link"
                                                            : "not a directory"));
    }
  }
}

bool no_atomic_rename(const Error& e) {
  return e.sys_errno() == EINVAL || e.sys_errno() == ENOSYS || e.sys_errno() == EOPNOTSUPP;
}

void rename_into_place(FileSystem& fs, const std::string& from, const std::string& to) {
  try {
    fs.rename(from, to, RenameMode::noreplace);
  } catch (const Error& e) {
    if (!no_atomic_rename(e)) throw;
    // The caller holds the root lock and every writer of the root's entries
    // takes it, so a checked plain rename cannot replace anything.
    if (fs.lstat(to)) {
      throw Error(ErrorKind::io, fmt::format("cannot rename {} to {}: it exists", from, to),
                  EEXIST);
    }
    fs.rename(from, to, RenameMode::replace);
  }
}

namespace {

// Who holds the root lock: ROOT/.ckpt/lock.holder, written by each holder
// once it has the lock and removed before it lets go.
std::string holder_path(const std::string& root) { return lock_path(root) + ".holder"; }

std::string this_host() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return std::string();
  return buf;
}

// This process's command line, as ps shows it (at most 200 characters).
std::string command_line() {
  int fd = ::open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::string();
  char buf[4096];
  ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  std::string out;
  for (ssize_t i = 0; i < n; ++i) out += buf[i] == '\0' ? ' ' : buf[i];
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (out.size() > 200) out = out.substr(0, 197) + "...";
  return out;
}


// "pid 4242 on host gpu7 (ckpt -C runs save --step 5), for 12.3 s", or
// nothing when there is no announcement or it is stale (its process is gone).
std::optional<std::string> describe_holder(const std::string& root) {
  int fd = ::open(holder_path(root).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return std::nullopt;
  char buf[4096];
  ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  try {
    auto j = nlohmann::json::parse(std::string(buf, static_cast<std::size_t>(n)));
    auto pid = j.at("pid").get<long long>();
    auto host = j.at("host").get<std::string>();
    auto command = j.at("command").get<std::string>();
    auto since = j.at("since_ms").get<std::int64_t>();
    if (pid <= 0 || pid > std::numeric_limits<pid_t>::max()) return std::nullopt;
    bool here = host == this_host();
    if (here && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return std::nullopt;
    std::string who = here ? fmt::format("pid {}", pid) : fmt::format("pid {} on host {}", pid, host);
    if (!command.empty()) who += fmt::format(" ({})", command);
    double held = static_cast<double>(std::max<std::int64_t>(0, now_ms() - since)) / 1000;
    return fmt::format("{}, for {:.1f} s", who, held);
  } catch (const std::exception&) {
    return std::nullopt;  // torn or foreign: say nothing rather than something wrong
  }
}

// What tells this machine's boot and this process's PID namespace apart
// ("" when unknown): with the host, whether a holder's pid names a process
// this one can see.
std::string boot_id() {
  int fd = ::open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::string();
  char buf[64] = {};
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  std::string out(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::string pid_namespace() {
  char buf[128] = {};
  ssize_t n = ::readlink("/proc/self/ns/pid", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

}  // namespace

std::string lock_holder_text() {
  nlohmann::json j = {{"pid", static_cast<long long>(::getpid())},
                      {"host", this_host()},
                      {"boot_id", boot_id()},
                      {"pid_ns", pid_namespace()},
                      {"command", command_line()},
                      {"since", format_rfc3339_ms(now_ms())},
                      {"since_ms", now_ms()}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

FileLock lock_root(const Context& ctx, const std::string& root) {
  check_private_dirs(ctx, root);
  make_dirs(ctx.file_system(), private_dir(root), Durable::yes);
  std::string what = fmt::format("root {}", root);
  FileLock lock;
  try {
    lock = FileLock::acquire(lock_path(root), ctx.lock_timeout, what);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::locked) throw;
    auto who = describe_holder(root);
    if (!who) throw;
    throw Error(ErrorKind::locked, fmt::format("{} is locked by {} (waited {}s); retry later",
                                               what, *who, ctx.lock_timeout));
  }
  lock.announce(holder_path(root), lock_holder_text());
  return lock;
}

BestRule best_rule(const std::optional<std::string>& key, const std::optional<Mode>& mode,
                   const std::optional<Policy>& policy, const std::optional<BestMarker>& best) {
  BestRule r;
  r.key = key;
  if (!r.key && policy) r.key = policy->best_key;
  if (!r.key && best) r.key = best->key;
  if (mode) {
    r.mode = *mode;
  } else if (policy && policy->best_mode && policy->best_key == r.key) {
    r.mode = *policy->best_mode;
  } else if (best && best->key == r.key) {
    r.mode = best->mode;
  }
  return r;
}

std::optional<BestMarker> compute_best(const std::vector<Checkpoint>& checkpoints,
                                       const std::string& key, Mode mode) {
  const Checkpoint* best = nullptr;
  double best_value = 0;
  for (const auto& c : checkpoints) {
    auto v = c.meta.metric(key);
    if (!v || !std::isfinite(*v)) continue;
    if (best == nullptr || improves(mode, *v, best_value) ||
        (*v == best_value && c.meta.commit_seq < best->meta.commit_seq)) {
      best = &c;
      best_value = *v;
    }
  }
  if (best == nullptr) return std::nullopt;
  BestMarker b;
  b.key = key;
  b.mode = mode;
  b.value = best_value;
  b.step = best->meta.step;
  b.path = best->name;
  b.updated = now_rfc3339();
  return b;
}

const Checkpoint* newest(const std::vector<Checkpoint>& checkpoints) {
  const Checkpoint* n = nullptr;
  for (const auto& c : checkpoints) {
    if (n == nullptr || c.meta.commit_seq > n->meta.commit_seq) n = &c;
  }
  return n;
}

std::string format_number(double v) { return fmt::format("{}", v); }

}  // namespace detail

Result<Listing> list_checkpoints(const Context& ctx, const std::string& root_arg) {
  // A reading command changes nothing, not even the cache.
  return capture([&]() -> Listing {
    auto store = detail::open_store(ctx, root_arg);
    return detail::list_root(ctx, *store, false);
  });
}

namespace detail {

Listing list_root(const Context& ctx, Store& store, bool write_cache) {
  Listing l;
  l.root = store.location();
  std::vector<std::pair<std::uint64_t, std::string>> steps;
  for (auto& n : store.step_names()) steps.emplace_back(*parse_step_dir_name(n), std::move(n));
  std::sort(steps.begin(), steps.end());
  std::vector<std::string> names;
  names.reserve(steps.size());
  for (auto& [step, n] : steps) names.push_back(std::move(n));
  // Each manifest read once, straight away, in batches over the cores.
  std::vector<ManifestRead> entries = store.read_manifests(ctx, names);
  l.checkpoints.reserve(names.size());
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::string& name = names[i];
    if (entries[i].meta) {
      l.checkpoints.push_back(Checkpoint{name, store.path_of(name), std::move(*entries[i].meta), {}});
    } else if (entries[i].invalid) {
      l.invalid.emplace_back(name, std::move(*entries[i].invalid));
    }
  }
  if (write_cache && store.local()) static_cast<DirStore&>(store).store_cache(ctx, l.checkpoints);
  try {
    if (auto last = read_last(ctx, store)) l.last_marker = last->name;
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::io) throw;
    ctx.warning(e.message());
  }
  // What `latest` means: the newest committed, whatever a crash left in `last`.
  const Checkpoint* n = newest(l.checkpoints);
  l.last = n ? std::optional<std::string>(n->name) : l.last_marker;
  try {
    l.best = read_best(store);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::io) throw;
    ctx.warning(e.message());
  }
  try {
    l.policy = read_policy(store);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::io) throw;
    ctx.warning(e.message());
  }
  for (auto& c : l.checkpoints) {
    if (l.last && *l.last == c.name) c.markers.push_back("last");
    if (l.best && l.best->path == c.name) c.markers.push_back("best");
  }
  try {
    l.pending = store.pending(ctx);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::io || e.kind() == ErrorKind::interrupted) throw;
    ctx.warning(fmt::format("the pending steps could not be read: {}", e.message()));
  }
  return l;
}

Listing list_root(const Context& ctx, const std::string& root_arg, bool write_cache) {
  auto store = open_store(ctx, root_arg);
  return list_root(ctx, *store, write_cache);
}

}  // namespace detail

namespace {

std::string latest_name(const Context& ctx, detail::Store& store);
Error ref_not_found(const Context& ctx, detail::Store& store, const std::string& message,
                    std::optional<std::uint64_t> step = std::nullopt);

Checkpoint load_checkpoint(const Context& ctx, detail::Store& store, const std::string& name,
                           bool is_latest) {
  Checkpoint c{name, store.path_of(name), detail::read_meta(store, name), {}};
  if (!is_latest) {
    // The marker goes where `latest` leads: O(1) unless `last` is stale.
    Context quiet = ctx;
    quiet.warn = nullptr;
    try {
      is_latest = latest_name(quiet, store) == name;
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::io) throw;
    }
  }
  if (is_latest) c.markers.push_back("last");
  try {
    if (auto best = detail::read_best(store); best && best->path == c.name) {
      c.markers.push_back("best");
    }
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::io) throw;
  }
  return c;
}

const std::string& step_by_name(const Context& ctx, detail::Store& store, const std::string& name,
                                const std::string& ref) {
  if (!store.has_step(name)) {
    throw ref_not_found(ctx, store, fmt::format("no checkpoint {} ({})", name, ref),
                        parse_step_dir_name(name));
  }
  return name;
}

// A ref that names nothing: "empty_root" when the root holds no checkpoint at
// all (a resume loop starts fresh), else "no_checkpoint". Only on failure, so
// the scan costs nothing in the normal case.
Error ref_not_found(const Context& ctx, detail::Store& store, const std::string& message,
                    std::optional<std::uint64_t> step) {
  bool any = false;
  std::string text = message;
  try {
    if (!store.local()) {
      // Is any step committed? The first that is answers (a manifest read
      // for each would cost a request each).
      for (const auto& n : store.step_names()) {
        if ((any = store.has_step(n))) break;
      }
      return Error(ErrorKind::not_found, text)
          .with_reason(any ? k_reason_no_checkpoint : k_reason_empty_root);
    }
    Listing l = detail::list_root(ctx, store, false);
    any = !l.checkpoints.empty();
    for (const auto& p : l.pending) {
      if (step && p.step == *step) {
        text += fmt::format(": it is pending as a sharded save, {} of {} shards in (`ckpt info` "
                            "lists the missing ones)",
                            p.shards.present.size(), p.shards.count);
      }
    }
  } catch (const Error&) {
    any = true;  // cannot tell: the plainer reason
  }
  return Error(ErrorKind::not_found, text)
      .with_reason(any ? k_reason_no_checkpoint : k_reason_empty_root);
}

// `latest` is the newest committed checkpoint, always. `last` says which in
// O(1) when it is up to date: the checkpoint it names carries the commit_seq
// of the newest commit any save made (the counter in .ckpt/). A save killed
// between its commit and its `last` update leaves them apart; then, and when
// the counter is absent, the checkpoints themselves decide.
std::string latest_name(const Context& ctx, detail::Store& store) {
  std::optional<detail::LastRead> last;
  try {
    last = detail::read_last(ctx, store);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::io) throw;
    ctx.warning(fmt::format("{}; finding the newest checkpoint by scanning", e.message()));
  }
  std::optional<Error> unreadable;  // what `last` names, when it is not a checkpoint
  auto counter = detail::read_commit_counter(store);
  if (last) {
    if (store.has_step(last->name)) {
      try {
        std::uint64_t seq = detail::read_meta(store, last->name).commit_seq;
        if (counter && seq >= *counter) return last->name;
      } catch (const Error& e) {
        if (e.kind() == ErrorKind::io) throw;
        unreadable = e;
      }
    } else {
      ctx.warning(fmt::format("last names {}, which does not exist; finding the newest "
                              "checkpoint by scanning",
                              last->name));
      last.reset();
    }
  }
  Listing listing = detail::list_root(ctx, store, false);
  const Checkpoint* n = detail::newest(listing.checkpoints);
  if (unreadable) {
    // A damaged checkpoint that may be the newest is reported as such, never
    // skipped for an older one; the counter shows when a newer one is whole.
    if (n == nullptr || !counter || n->meta.commit_seq < *counter) throw *unreadable;
    ctx.warning(fmt::format("last names {}, which is not a readable checkpoint ({}); the newest "
                            "committed checkpoint is {}",
                            last->name, unreadable->message(), n->name));
    return n->name;
  }
  if (n == nullptr) {
    throw Error(ErrorKind::not_found, "the root holds no checkpoint yet")
        .with_reason(k_reason_empty_root);
  }
  if (last && last->name != n->name) {
    ctx.warning(fmt::format("last names {} but the newest committed checkpoint is {} (a save "
                            "was interrupted after its commit); using {}",
                            last->name, n->name, n->name));
  }
  return n->name;
}

}  // namespace

namespace detail {

std::string resolve_ref_name(const Context& ctx, Store& store, const std::string& ref) {
  if (ref.empty()) throw Error(ErrorKind::usage, "empty checkpoint ref");
  if (ref == "latest" || ref == "last") return latest_name(ctx, store);
  if (ref == "best") {
    auto best = read_best(store);
    if (!best) throw ref_not_found(ctx, store, "no best checkpoint (best.json is absent)");
    return step_by_name(ctx, store, best->path, ref);
  }
  if (ref.find_first_not_of("0123456789") == std::string::npos) {
    auto step = parse_step(ref);
    if (!step) throw Error(ErrorKind::usage, fmt::format("step {} is out of range", ref));
    auto name = find_step(store, *step);
    if (!name) {
      throw ref_not_found(ctx, store, fmt::format("no checkpoint for step {}", ref), *step);
    }
    return *name;
  }
  if (ref.find('/') == std::string::npos) {
    if (!parse_step_dir_name(ref)) {
      throw Error(ErrorKind::usage,
                  fmt::format("bad ref {:?}: expected latest, best, a step, step-N or a path", ref));
    }
    return step_by_name(ctx, store, ref, ref);
  }
  // A path: it must name a checkpoint directly inside the root.
  const std::string& root = store.location();
  std::string abs = store.local() ? absolute_path(ref) : ref;
  while (!store.local() && abs.size() > 1 && abs.back() == '/') abs.pop_back();
  if (parent_path(abs) != root || !parse_step_dir_name(base_name(abs))) {
    throw Error(ErrorKind::usage,
                fmt::format("{} is not a checkpoint directory inside the root {}", ref, root));
  }
  return step_by_name(ctx, store, base_name(abs), ref);
}

std::string resolve_ref_dir(const Context& ctx, const std::string& root, const std::string& ref) {
  DirStore store(ctx.file_system(), root);
  return join_path(root, resolve_ref_name(ctx, store, ref));
}

}  // namespace detail

namespace detail {

Checkpoint resolve_checkpoint(const Context& ctx, Store& store, const std::string& ref) {
  return load_checkpoint(ctx, store, resolve_ref_name(ctx, store, ref),
                         ref == "latest" || ref == "last");
}

}  // namespace detail

Result<Checkpoint> resolve_ref(const Context& ctx, const std::string& root_arg,
                               const std::string& ref) {
  return capture([&]() -> Checkpoint {
    auto store = detail::open_store(ctx, root_arg);
    return detail::resolve_checkpoint(ctx, *store, ref);
  });
}

}  // namespace ckpt
