// SPDX-License-Identifier: Apache-2.0
// copy: one committed checkpoint committed again at another root, directory
// or object store (SPEC §11). It is a save of the checkpoint's files with its
// metadata, checked against its manifest before the commit.
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "ckpt/paths.hpp"
#include "ckpt/repository.hpp"
#include "internal.hpp"
#include "store/store.hpp"

namespace ckpt {

namespace {

// A private directory under TMPDIR (default /tmp), removed with everything
// in it when it goes out of scope.
class TempDir {
 public:
  explicit TempDir(FileSystem& fs) : m_fs(fs) {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = join_path(base && *base ? base : "/tmp", "ckpt-copy.XXXXXX");
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr) {
      int err = errno;
      throw Error(ErrorKind::io,
                  fmt::format("cannot make a temporary directory in {}: {}", parent_path(pattern),
                              std::strerror(err)),
                  err);
    }
    m_path = buf.data();
  }
  ~TempDir() {
    try {
      m_fs.remove_tree(m_path);
    } catch (...) {
      // Left in TMPDIR.
    }
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return m_path; }

 private:
  FileSystem& m_fs;
  std::string m_path;
};

SaveOptions save_options(const CopyOptions& opts, const Checkpoint& c) {
  SaveOptions s;
  s.root = opts.to;
  s.step = opts.step.value_or(c.meta.step);
  for (const auto& [k, v] : c.meta.metrics) {
    s.metrics[k] = v ? *v : std::numeric_limits<double>::quiet_NaN();
  }
  s.meta = c.meta.meta;
  s.weights = c.meta.weights;
  s.expected_files = c.meta.files;
  return s;
}

// The destination's policy and best.json, when it is a root already.
bool ranks_by_a_key(const Context& ctx, const std::string& to) {
  std::unique_ptr<detail::Store> dest;
  try {
    Context quiet = ctx;
    quiet.warn = nullptr;
    dest = detail::open_store(quiet, to);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::not_found) return false;  // a new root
    throw;
  }
  auto policy = detail::read_policy(*dest);
  if (policy && policy->best_key) return true;
  try {
    return detail::read_best(*dest).has_value();
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::io) throw;
    return true;  // unreadable: the save says why
  }
}

}  // namespace

Result<CopyReport> copy(const Context& ctx, const CopyOptions& opts) {
  return capture([&]() -> CopyReport {
    if (opts.to.empty()) throw Error(ErrorKind::usage, "copy needs a destination root");
    auto source = detail::open_store(ctx, opts.root);
    CopyReport report;
    report.source = detail::resolve_checkpoint(ctx, *source, opts.ref);
    const Checkpoint& c = report.source;
    if (canonical_root(opts.to) == source->location() && opts.step.value_or(c.meta.step) == c.meta.step) {
      throw Error(ErrorKind::usage,
                  fmt::format("{} is already in {}; give another root, or --step to copy it to "
                              "another step",
                              c.name, source->location()));
    }
    for (const auto& f : c.meta.files) {
      if (!f.sha256) {
        ctx.warning(fmt::format("{} records no SHA-256 (checksum none): its files are copied "
                                "with their sizes checked, not their bytes",
                                c.name));
        break;
      }
    }
    SaveOptions s = save_options(opts, c);
    // A destination that ranks nothing yet ranks as the source does.
    if (auto policy = detail::read_policy(*source); policy && policy->best_key) {
      if (!ranks_by_a_key(ctx, opts.to)) {
        s.policy.best_key = policy->best_key;
        s.policy.best_mode = policy->best_mode;
      }
    }
    // A metric recorded as null stays null, without the warning a save gives.
    Context quiet = ctx;
    quiet.warn = [&ctx](const std::string& m) {
      if (m.rfind("metric ", 0) == 0 && m.find("is not finite") != std::string::npos) return;
      ctx.warning(m);
    };
    if (source->local()) {
      for (const auto& f : c.meta.files) {
        s.sources.push_back(Source{join_path(c.path, f.path), f.path, false});
      }
      report.saved = save(quiet, s).value();
      return report;
    }
    // From an object store: downloaded and verified first, then saved from
    // there (moved in where the file system allows).
    TempDir tmp(ctx.file_system());
    LoadOptions lo;
    lo.root = opts.root;
    lo.ref = c.name;
    lo.to = join_path(tmp.path(), "files");
    // Progress over both passes: the download, then the save.
    const std::uint64_t size = c.meta.total_size;
    Context loading = ctx;
    if (ctx.progress) {
      loading.progress = [&ctx, size](std::uint64_t done, std::uint64_t) {
        ctx.progress(std::min(done, size), 2 * size);
      };
      quiet.progress = [&ctx, size](std::uint64_t done, std::uint64_t) {
        ctx.progress(size + std::min(done, size), 2 * size);
      };
    }
    load(loading, lo).value();
    for (const auto& f : c.meta.files) {
      s.sources.push_back(Source{join_path(*lo.to, f.path), f.path, false});
    }
    s.transfer = Transfer::move;
    report.saved = save(quiet, s).value();
    return report;
  });
}

}  // namespace ckpt
