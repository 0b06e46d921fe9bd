// SPDX-License-Identifier: Apache-2.0
// verify: checkpoints against their manifests, markers against the checkpoints; --repair.
#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <set>

#include <fmt/format.h>

#include "ckpt/atomic_file.hpp"
#include "ckpt/parallel.hpp"
#include "ckpt/repository.hpp"
#include "internal.hpp"
#include "store/store.hpp"

namespace ckpt {

namespace {

void add(CheckpointCheck& c, std::string path, std::string kind, std::string detail,
         Severity sev = Severity::failure) {
  c.problems.push_back(Problem{std::move(path), std::move(kind), std::move(detail), sev});
}

}  // namespace

namespace detail {

std::optional<Problem> check_stored_file(const Context& ctx, const std::string& dir,
                                         const FileEntry& f, Hash hash, Overlap overlap,
                                         InodeDigests* seen, const ProgressFn& progress) {
  FileSystem& fs = ctx.file_system();
  auto problem = [&](const char* kind, std::string detail) {
    return Problem{f.path, kind, std::move(detail), Severity::failure};
  };
  std::optional<Stat> st;
  try {
    st = lstat_beneath(fs, dir, f.path);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::io) throw;
    return problem("not_regular", e.message());
  }
  if (!st) return problem("missing", "listed in _checkpoint.json but absent");
  if (st->type != FileType::file) {
    return problem("not_regular", st->type == FileType::symlink
                                      ? "a symbolic link, not a stored file"
                                      : "not a regular file");
  }
  if (st->size != f.size) {
    return problem("size_mismatch", fmt::format("size {} but {} recorded", st->size, f.size));
  }
  if (hash == Hash::no || !f.sha256) return std::nullopt;
  TransferResult r;
  bool shared = seen && st->nlink > 1;
  if (auto known = shared ? seen->find(*st) : std::nullopt) {
    r = *known;  // read already, as another checkpoint's file
  } else {
    try {
      r = hash_file(fs, join_path(dir, f.path), Hash::yes, progress, overlap);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::io) throw;
      return problem("unreadable", e.message());
    }
    if (shared) seen->add(*st, r);
  }
  if (r.size != f.size) {
    return problem("size_mismatch", fmt::format("read {} bytes, {} recorded", r.size, f.size));
  }
  if (r.sha256 != f.sha256) {
    return problem("digest_mismatch",
                   fmt::format("sha256 {} but {} recorded", *r.sha256, *f.sha256));
  }
  return std::nullopt;
}

}  // namespace detail

namespace {

CheckpointCheck check_checkpoint(const Context& ctx, detail::Store& store, const std::string& name,
                                 bool quick, std::optional<CheckpointMeta>* meta_out,
                                 detail::InodeDigests* seen = nullptr,
                                 const ProgressFn& progress = {}) {
  CheckpointCheck c;
  c.name = name;
  CheckpointMeta meta;
  try {
    meta = detail::read_meta(store, name);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::io && e.sys_errno() != ENOENT) throw;
    if (e.reason() == k_reason_no_root) throw;  // the bucket is gone: not this checkpoint's fault
    // Written by a newer ckpt: not ours to judge (exit 7, SPEC §3).
    if (e.kind() == ErrorKind::unsupported) throw;
    add(c, k_meta_file, "metadata", e.message());
    c.ok = false;
    return c;
  }
  std::set<std::string> listed;
  // The files on every core, the biggest first; reported in manifest order.
  std::vector<std::optional<Problem>> found(meta.files.size());
  auto order = detail::biggest_first(meta.files);
  detail::SerialCallbacks serial(ctx);
  unsigned workers = worker_count(ctx.threads);
  for_each_parallel(order.size(), workers, [&](std::size_t k) {
    found[order[k]] = store.check_file(serial.context(), name, meta.files[order[k]],
                                       quick ? Hash::no : Hash::yes,
                                       overlap_for(k, order.size(), workers), seen, progress);
  });
  for (std::size_t i = 0; i < meta.files.size(); ++i) {
    listed.insert(meta.files[i].path);
    if (found[i]) {
      c.problems.push_back(std::move(*found[i]));
    } else {
      c.verified_files.push_back(meta.files[i].path);
    }
  }
  // SHA256SUMS must agree with _checkpoint.json.
  if (meta.checksum == "sha256") {
    std::optional<std::string> sums_text;
    std::optional<Error> unreadable;
    try {
      sums_text = store.read(name + "/" + k_sums_file, k_max_meta_bytes);
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::io || e.reason() == k_reason_no_root) throw;
      unreadable = e;
    }
    if (unreadable) {
      add(c, k_sums_file, "sums_mismatch", unreadable->message());
    } else if (!sums_text) {
      add(c, k_sums_file, "sums_mismatch", "missing although checksum is sha256");
    } else {
      try {
        auto sums = parse_sums(*sums_text);
        std::map<std::string, std::string> expected;
        for (const auto& f : meta.files) expected[f.path] = *f.sha256;
        if (sums != expected) {
          for (const auto& [p, d] : expected) {
            auto it = sums.find(p);
            if (it == sums.end()) {
              add(c, k_sums_file, "sums_mismatch", fmt::format("{} is not listed", p));
            } else if (it->second != d) {
              add(c, k_sums_file, "sums_mismatch",
                  fmt::format("{} has another digest than _checkpoint.json", p));
            }
          }
          for (const auto& [p, d] : sums) {
            if (!expected.count(p)) {
              add(c, k_sums_file, "sums_mismatch",
                  fmt::format("{} is listed but not in _checkpoint.json", p));
            }
          }
        }
      } catch (const Error& e) {
        if (e.kind() == ErrorKind::io) throw;
        add(c, k_sums_file, "sums_mismatch", e.message());
      }
    }
  }
  std::vector<std::string> present = store.files(name);
  std::sort(present.begin(), present.end());
  for (const auto& p : present) {
    if (listed.count(p) || p == k_meta_file || (p == k_sums_file && meta.checksum == "sha256")) {
      continue;
    }
    add(c, p, "extra", "not listed in _checkpoint.json", Severity::warning);
  }
  if (meta_out) *meta_out = std::move(meta);
  return c;
}

bool counts(const Problem& p, bool strict) { return p.severity == Severity::failure || strict; }

}  // namespace

Result<VerifyReport> verify(const Context& ctx, const VerifyOptions& opts) {
  return capture([&]() -> VerifyReport {
    if (opts.repair && !opts.refs.empty()) {
      throw Error(ErrorKind::usage,
                  "--repair works on the whole root (the markers); give no REF with it");
    }
    auto store_ptr = detail::open_store(ctx, opts.root);
    detail::Store& store = *store_ptr;
    VerifyReport report;
    std::unique_ptr<detail::RootLock> lock;
    if (opts.repair) lock = store.lock_root(ctx);

    std::vector<std::string> names;
    std::map<std::string, std::uint64_t> sizes;  // what the listing read: no second read
    if (opts.refs.empty()) {
      auto listing = detail::list_root(ctx, store, false);
      for (const auto& c : listing.checkpoints) {
        names.push_back(c.name);
        sizes[c.name] = c.meta.total_size;
      }
      for (const auto& [name, why] : listing.invalid) names.push_back(name);
      std::sort(names.begin(), names.end());
    } else {
      // Only the name: unreadable metadata is a problem to report, not a reason to stop.
      for (const auto& ref : opts.refs) names.push_back(detail::resolve_ref_name(ctx, store, ref));
    }

    // The bytes to hash, for the progress callback: every listed file's size.
    std::uint64_t total = 0;
    if (ctx.progress && !opts.quick) {
      for (const auto& name : names) {
        if (auto it = sizes.find(name); it != sizes.end()) {
          total += it->second;
          continue;
        }
        try {
          total += detail::read_meta(store, name).total_size;
        } catch (const Error& e) {
          if (e.kind() == ErrorKind::io && e.sys_errno() != ENOENT) throw;
        }
      }
    }
    detail::SerialCallbacks serial(ctx);  // warnings and progress: one at a time
    detail::Progress progress(serial.context(), total);
    ProgressFn count = progress.counter();

    std::vector<Checkpoint> complete;
    detail::InodeDigests seen;  // a file shared by checkpoints (save --dedup) is read once
    for (const auto& name : names) {
      std::optional<CheckpointMeta> meta;
      CheckpointCheck c;
      try {
        c = check_checkpoint(ctx, store, name, opts.quick, &meta, &seen, count);
      } catch (const Error& e) {
        if (e.sys_errno() != ENOENT || store.has_step(name)) throw;
        continue;  // pruned while we looked: no longer a checkpoint, nothing to report
      }
      if (!c.problems.empty() && opts.refs.empty() && !store.has_step(name)) continue;
      for (const auto& p : c.problems) {
        if (counts(p, opts.strict)) c.ok = false;
      }
      if (!c.ok) report.ok = false;
      // Complete: valid metadata and every listed file present at its size. A
      // digest mismatch is corruption, reported on the checkpoint itself.
      bool intact = std::none_of(c.problems.begin(), c.problems.end(), [](const Problem& p) {
        return p.kind == "metadata" || p.kind == "missing" || p.kind == "size_mismatch" ||
               p.kind == "not_regular";
      });
      if (meta && intact) complete.push_back(Checkpoint{c.name, store.path_of(name), *meta, {}});
      report.checkpoints.push_back(std::move(c));
    }
    if (!opts.refs.empty()) return report;

    // The markers, against the complete checkpoints.
    report.markers_checked = true;
    CheckpointCheck m;
    auto by_name = [&](const std::string& name) -> const Checkpoint* {
      for (const auto& c : complete) {
        if (c.name == name) return &c;
      }
      return nullptr;
    };
    const Checkpoint* newest = detail::newest(complete);
    std::optional<std::string> last_name;
    bool last_legacy = false;
    try {
      if (auto last = detail::read_last(ctx, store)) {
        last_name = last->name;
        last_legacy = last->legacy;
      }
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::io) throw;
      add(m, k_last_file, "last_invalid", e.message());
    }
    // A checkpoint committed (or a marker moved) after the listing above is not
    // in `complete`; look at what the marker names now before calling it dangling.
    complete.reserve(complete.size() + 8);  // complete_now adds at most four: no reallocation
    auto complete_now = [&](const std::string& name) -> bool {
      if (by_name(name)) return true;
      if (!store.has_step(name)) return false;
      std::optional<CheckpointMeta> meta;
      CheckpointCheck c = check_checkpoint(ctx, store, name, true, &meta);
      bool intact = meta && std::none_of(c.problems.begin(), c.problems.end(), [](const Problem& p) {
        return p.severity == Severity::failure;
      });
      if (intact) complete.push_back(Checkpoint{c.name, store.path_of(name), *meta, {}});
      return intact;
    };
    if (last_name && !complete_now(*last_name)) {
      try {
        if (auto again = detail::read_last(ctx, store); again && again->name != *last_name) {
          last_name = again->name;
          last_legacy = again->legacy;
        }
      } catch (const Error& e) {
        if (e.kind() == ErrorKind::io) throw;
      }
    }
    newest = detail::newest(complete);
    if (last_name) {
      if (!complete_now(*last_name)) {
        add(m, k_last_file, "last_dangling",
            fmt::format("names {}, which is not a complete checkpoint", *last_name));
      } else if (newest && newest->name != *last_name) {
        add(m, k_last_file, "last_stale",
            fmt::format("names {} but the newest checkpoint is {}", *last_name, newest->name),
            Severity::warning);
      }
    } else if (newest && m.problems.empty()) {
      add(m, k_last_file, "last_stale", "absent although the root holds checkpoints",
          Severity::warning);
    }

    std::optional<BestMarker> best;
    try {
      best = detail::read_best(store);
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::io) throw;
      // A newer ckpt's best.json: report it, and never let --repair downgrade it.
      if (e.kind() == ErrorKind::unsupported && opts.repair) throw;
      add(m, k_best_file, "best_invalid", e.message());
    }
    std::optional<Policy> policy;
    try {
      policy = detail::read_policy(store);
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::io) throw;
      add(m, k_policy_file, "policy_invalid", e.message());
    }
    if (best && !complete_now(best->path)) {
      try {
        if (auto again = detail::read_best(store)) best = again;
      } catch (const Error& e) {
        if (e.kind() == ErrorKind::io) throw;
      }
    }
    if (best) {
      const Checkpoint* c = complete_now(best->path) ? by_name(best->path) : nullptr;
      if (!c) {
        add(m, k_best_file, "best_dangling",
            fmt::format("names {}, which is not a complete checkpoint", best->path));
      } else {
        // A checkpoint without the key was promoted with --value: nothing to compare.
        auto v = c->meta.metric(best->key);
        if (c->meta.metrics.count(best->key) && (!v || *v != best->value)) {
          add(m, k_best_file, "best_value_mismatch",
              fmt::format("holds {} = {} but {} records {}", best->key,
                          detail::format_number(best->value), best->path,
                          v ? detail::format_number(*v) : std::string("null")));
        } else if (auto better = detail::compute_best(complete, best->key, best->mode);
                   better && better->path != best->path &&
                   improves(best->mode, better->value, best->value)) {
          add(m, k_best_file, "best_stale",
              fmt::format("{} has a better {} ({}) than {} ({})", better->path, best->key,
                          detail::format_number(better->value), best->path,
                          detail::format_number(best->value)),
              Severity::warning);
        }
      }
    }

    if (opts.repair) {
      bool last_bad = last_legacy || std::any_of(m.problems.begin(), m.problems.end(),
                                                 [](const Problem& p) {
                                                   return p.path == k_last_file;
                                                 });
      if (last_bad) {
        if (newest) {
          store.write_marker(k_last_file, serialize_last(newest->name));
        } else {
          store.remove_marker(k_last_file);
        }
        report.repaired.push_back(k_last_file);
      }
      bool best_bad = std::any_of(m.problems.begin(), m.problems.end(), [](const Problem& p) {
        return p.path == k_best_file;
      });
      if (best_bad) {
        detail::BestRule rule = detail::best_rule(std::nullopt, std::nullopt, policy, best);
        std::optional<BestMarker> rebuilt;
        if (rule.key) rebuilt = detail::compute_best(complete, *rule.key, rule.mode);
        if (rebuilt) {
          store.write_marker(k_best_file, serialize_best(*rebuilt));
        } else {
          store.remove_marker(k_best_file);
        }
        report.repaired.push_back(k_best_file);
      }
      if (!report.repaired.empty()) {
        // What was wrong with the repaired files is history now.
        std::erase_if(m.problems, [&](const Problem& p) {
          return std::find(report.repaired.begin(), report.repaired.end(), p.path) !=
                 report.repaired.end();
        });
      }
    }

    for (const auto& p : m.problems) {
      if (counts(p, opts.strict)) report.markers_ok = false;
    }
    if (!report.markers_ok) report.ok = false;
    report.marker_problems = std::move(m.problems);
    return report;
  });
}

}  // namespace ckpt
