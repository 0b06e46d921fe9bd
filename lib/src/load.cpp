// SPDX-License-Identifier: Apache-2.0
// load: select, verify and hand back (or materialise) a checkpoint's files.
#include <fcntl.h>

#include <cerrno>
#include <filesystem>
#include <memory>
#include <set>

#include <fmt/format.h>

#include "ckpt/atomic_file.hpp"
#include "ckpt/parallel.hpp"
#include "ckpt/paths.hpp"
#include "ckpt/repository.hpp"
#include "internal.hpp"
#include "store/store.hpp"

namespace ckpt {

namespace {

std::vector<const FileEntry*> select_files(const CheckpointMeta& meta, const LoadOptions& opts) {
  std::vector<const FileEntry*> out;
  if (opts.weights_only && meta.weights.empty()) {
    throw Error(ErrorKind::not_found,
                fmt::format("{} records no weights (save with --weights PATH)", meta.name))
        .with_reason(k_reason_no_match);
  }
  std::set<std::string> weights(meta.weights.begin(), meta.weights.end());
  std::vector<bool> used(opts.only.size(), false);
  for (const auto& f : meta.files) {
    if (opts.weights_only && !weights.count(f.path)) continue;
    if (!opts.only.empty()) {
      bool match = false;
      for (std::size_t i = 0; i < opts.only.size(); ++i) {
        if (f.path == opts.only[i] || glob_match(opts.only[i], f.path)) {
          used[i] = true;
          match = true;
        }
      }
      if (!match) continue;
    }
    out.push_back(&f);
  }
  for (std::size_t i = 0; i < opts.only.size(); ++i) {
    if (!used[i]) {
      throw Error(ErrorKind::not_found,
                  fmt::format("--only {:?} matches no {}file in {}", opts.only[i],
                              opts.weights_only ? "weights " : "", meta.name))
          .with_reason(k_reason_no_match);
    }
  }
  return out;
}

struct Sized {
  std::uint64_t size;
};
std::vector<Sized> files_by_size(const std::vector<const FileEntry*>& files) {
  std::vector<Sized> out;
  for (const auto* f : files) out.push_back(Sized{f->size});
  return out;
}

void check_file(const Context& ctx, detail::Store& store, const std::string& name,
                const FileEntry& f, bool full, Overlap overlap, const ProgressFn& progress) {
  if (auto p = store.check_file(ctx, name, f, full ? Hash::yes : Hash::no, overlap, nullptr,
                                progress)) {
    throw Error(ErrorKind::integrity,
                fmt::format("{}/{}: {} ({})", name, f.path, p->kind, p->detail));
  }
}

// Creates dir/rel's parents inside dir, refusing to pass through a symbolic link.
void make_parents_inside(FileSystem& fs, const std::string& dir, const std::string& rel) {
  std::size_t pos = 0;
  while ((pos = rel.find('/', pos)) != std::string::npos) {
    std::string p = join_path(dir, rel.substr(0, pos));
    auto st = fs.lstat(p);
    if (!st) {
      try {
        fs.mkdir(p, 0755);
      } catch (const Error& e) {
        if (e.sys_errno() != EEXIST) throw;
      }
      st = fs.lstat(p);
    }
    if (!st || st->type != FileType::dir) {
      throw Error(ErrorKind::usage,
                  fmt::format("{} is not a directory (a symbolic link or a file); refusing to "
                              "write through it",
                              p));
    }
    ++pos;
  }
}

// Puts a copy of from at to: a clone where the file system can, else a streaming
// copy, written aside and renamed over. A hard link (link == true) shares the
// checkpoint's data: a caller that rewrites the file in place would corrupt it.
void materialise(const Context& ctx, const std::string& from, const std::string& to, bool link) {
  FileSystem& fs = ctx.file_system();
  auto existing = fs.lstat(to);
  if (existing && existing->type == FileType::dir) {
    throw Error(ErrorKind::usage, fmt::format("{} is a directory; refusing to replace it", to));
  }
  if (link) {
    auto src = fs.lstat(from);
    if (existing && src && existing->dev == src->dev && existing->ino == src->ino) return;
    std::string tmp = fmt::format("{}/.{}.tmp.{}", parent_path(to), base_name(to), unique_suffix());
    try {
      fs.link(from, tmp);
      fs.rename(tmp, to);
      return;
    } catch (const Error& e) {
      try {
        fs.unlink(tmp);
      } catch (const Error&) {
      }
      if (!link_refused(e)) throw;
      // Across file systems: copy instead.
    }
  }
  AtomicFile out(fs, to);
  FdGuard in(fs, fs.open(from, O_RDONLY | O_NOFOLLOW | O_NONBLOCK));
  if (!fs.clone(in.get(), out.fd())) copy_and_hash(fs, in.get(), out.fd(), Hash::no, {});
  out.commit();
}

// Copies a stored file to `to`, under a temporary name, hashing it in the
// same read (full) and checking it against the manifest; the caller commits.
std::unique_ptr<AtomicFile> copy_checked(const Context& ctx, detail::Store& store,
                                         const Checkpoint& c, const FileEntry& f,
                                         const std::string& to, bool full, Overlap overlap,
                                         const ProgressFn& progress) {
  FileSystem& fs = ctx.file_system();
  if (auto existing = fs.lstat(to); existing && existing->type == FileType::dir) {
    throw Error(ErrorKind::usage, fmt::format("{} is a directory; refusing to replace it", to));
  }
  auto out = std::make_unique<AtomicFile>(fs, to);
  Hash hash = full && f.sha256 ? Hash::yes : Hash::no;
  TransferResult r = store.copy_to(ctx, c.name, f.path, out->fd(), hash, overlap, progress);
  auto bad = [&](const char* kind, const std::string& detail) {
    return Error(ErrorKind::integrity,
                 fmt::format("{}/{}: {} ({})", c.name, f.path, kind, detail));
  };
  if (r.size != f.size) {
    throw bad("size_mismatch", fmt::format("read {} bytes, {} recorded", r.size, f.size));
  }
  if (r.sha256 && r.sha256 != f.sha256) {
    throw bad("digest_mismatch", fmt::format("sha256 {} but {} recorded", *r.sha256, *f.sha256));
  }
  out->finish();
  return out;
}

}  // namespace

Result<LoadReport> load(const Context& ctx, const LoadOptions& opts) {
  return capture([&]() -> LoadReport {
    // What an object store cannot do is refused before it is asked anything.
    if (detail::is_store_root(opts.root) && !opts.to) {
      throw Error(ErrorKind::usage,
                  fmt::format("{} is an object-store root: give --to DIR to download the files",
                              canonical_root(opts.root)));
    }
    if (detail::is_store_root(opts.root) && opts.link) {
      throw Error(ErrorKind::usage,
                  "--link shares a directory root's files; an object-store root's are downloaded "
                  "(drop --link)");
    }
    auto store_ptr = detail::open_store(ctx, opts.root);
    detail::Store& store = *store_ptr;
    const std::string& root = store.location();
    Checkpoint c = detail::resolve_checkpoint(ctx, store, opts.ref);
    auto files = select_files(c.meta, opts);
    // Copied out (--to without --link), each file is hashed as it is copied,
    // in one read; otherwise it is hashed here.
    bool copy_out = opts.to && !opts.link;
    detail::SerialCallbacks serial(ctx);
    // Bytes are read when the files are hashed here or copied out.
    std::uint64_t total = 0;
    if (copy_out || opts.verify) {
      for (const auto* f : files) total += f->size;
    }
    detail::Progress progress(serial.context(), total);
    ProgressFn count = progress.counter();
    auto order = detail::biggest_first(files_by_size(files));
    unsigned workers = worker_count(ctx.threads);
    for_each_parallel(order.size(), workers, [&](std::size_t k) {
      check_file(serial.context(), store, c.name, *files[order[k]], opts.verify && !copy_out,
                 overlap_for(k, order.size(), workers), count);
    });

    LoadReport report;
    report.name = c.name;
    report.path = c.path;
    report.meta = c.meta;
    report.dir = c.path;
    if (!opts.to) {
      for (const auto* f : files) report.files.emplace_back(f->path, join_path(c.path, f->path));
      return report;
    }
    FileSystem& fs = ctx.file_system();
    std::string to = absolute_path(*opts.to);
    std::error_code ec;
    std::string to_real = std::filesystem::weakly_canonical(to, ec).string();
    std::string root_real = std::filesystem::weakly_canonical(root, ec).string();
    if (ec) to_real = to, root_real = root;
    if (store.local() && (to_real == root_real || to_real.rfind(root_real + "/", 0) == 0)) {
      throw Error(ErrorKind::usage,
                  fmt::format("--to {} is inside the root; materialise elsewhere", *opts.to));
    }
    make_dirs(fs, to);
    report.dir = to;
    for (const auto* f : files) {
      make_parents_inside(fs, to, f->path);
      report.files.emplace_back(f->path, join_path(to, f->path));
    }
    if (opts.link) {
      for_each_parallel(order.size(), workers, [&](std::size_t k) {
        const FileEntry* f = files[order[k]];
        materialise(ctx, join_path(c.path, f->path), join_path(to, f->path), true);
      });
      return report;
    }
    // Every file is written aside and checked first; then all are renamed
    // into place, so a damaged checkpoint puts nothing at --to.
    std::vector<std::unique_ptr<AtomicFile>> ready(files.size());
    for_each_parallel(order.size(), workers, [&](std::size_t k) {
      const FileEntry& f = *files[order[k]];
      ready[order[k]] = copy_checked(serial.context(), store, c, f, join_path(to, f.path),
                                     opts.verify, overlap_for(k, order.size(), workers), count);
    });
    for (auto& r : ready) r->commit();
    return report;
  });
}

}  // namespace ckpt
