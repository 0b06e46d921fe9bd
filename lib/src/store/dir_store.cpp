// SPDX-License-Identifier: Apache-2.0
// A root that is a directory: the store seam over FileSystem.
#include <fcntl.h>

#include <cerrno>
#include <mutex>

#include <fmt/format.h>

#include "ckpt/atomic_file.hpp"
#include "ckpt/parallel.hpp"
#include "ckpt/paths.hpp"
#include "internal.hpp"
#include "manifest_cache.hpp"
#include "s3/config.hpp"
#include "store/object_store.hpp"
#include "store/store.hpp"

namespace ckpt::detail {

namespace {

// Files under dir (relative, '/'-separated) that are not directories.
void walk(FileSystem& fs, const std::string& dir, const std::string& prefix,
          std::vector<std::string>& out) {
  for (const auto& n : fs.list_dir(dir)) {
    std::string rel = prefix.empty() ? n : prefix + "/" + n;
    auto st = fs.lstat(join_path(dir, n));
    if (st && st->type == FileType::dir) {
      walk(fs, join_path(dir, n), rel, out);
    } else {
      out.push_back(rel);
    }
  }
}

}  // namespace

DirStore::DirStore(FileSystem& fs, std::string root) : Store(std::move(root)), m_fs(fs) {}

DirStore::~DirStore() = default;

std::string DirStore::path_of(const std::string& name) const {
  return join_path(location(), name);
}

std::optional<std::string> DirStore::read(const std::string& name, std::size_t max) {
  // One open, no lstat first: absent is what lstat calls absent.
  try {
    return read_file(m_fs, path_of(name), max);
  } catch (const Error& e) {
    int err = e.sys_errno();
    if (err == ENOENT || err == ENOTDIR || err == ENAMETOOLONG) return std::nullopt;
    throw;
  }
}

std::optional<std::string> DirStore::read_link(const std::string& name) {
  std::string path = path_of(name);
  auto st = m_fs.lstat(path);
  if (!st || st->type != FileType::symlink) return std::nullopt;
  return m_fs.readlink(path);
}

std::vector<std::string> DirStore::step_names() {
  std::vector<std::string> names;
  for (const auto& [n, type] : m_fs.list_dir_types(location())) {
    if (type == FileType::dir && parse_step_dir_name(n)) names.push_back(n);
  }
  return names;
}

bool DirStore::has_step(const std::string& name) {
  auto st = m_fs.lstat(path_of(name));
  return st && st->type == FileType::dir;
}

std::vector<ManifestRead> DirStore::read_manifests(const Context& ctx,
                                                   const std::vector<std::string>& names) {
  std::vector<ManifestRead> entries(names.size());
  // A manifest whose file is as the cache recorded it is not read again.
  m_cache = std::make_unique<ManifestCache>(ManifestCache::load(ctx, location()));
  ManifestCache& cache = *m_cache;
  std::mutex cache_mutex;
  // In batches over the cores: 10,000 checkpoints are 10,000 small files to parse.
  constexpr std::size_t k_batch = 256;
  std::size_t batches = (names.size() + k_batch - 1) / k_batch;
  for_each_parallel(batches, worker_count(ctx.threads), [&](std::size_t b) {
    for (std::size_t i = b * k_batch; i < std::min(names.size(), (b + 1) * k_batch); ++i) {
      const std::string& name = names[i];
      std::string dir = path_of(name);
      std::optional<ManifestKey> key;
      if (auto st = m_fs.lstat(join_path(dir, k_meta_file)); st && st->type == FileType::file) {
        key = manifest_key(*st);
        std::lock_guard<std::mutex> lock(cache_mutex);
        if ((entries[i].meta = cache.take(name, *key))) continue;
      }
      try {
        entries[i].meta = read_meta(ctx, dir);
        if (key) {
          std::lock_guard<std::mutex> lock(cache_mutex);
          cache.put(name, *key);
        }
      } catch (const Error& e) {
        if (e.kind() == ErrorKind::io && e.sys_errno() != ENOENT) throw;
        if (e.kind() == ErrorKind::not_found || e.sys_errno() == ENOENT) {
          if (!m_fs.lstat(dir)) continue;  // pruned while we looked
        }
        entries[i].invalid = e.message();
      }
    }
  });
  return entries;
}

void DirStore::store_cache(const Context& ctx, const std::vector<Checkpoint>& listed) {
  if (m_cache) m_cache->store(ctx, location(), listed);
}

std::vector<std::string> DirStore::files(const std::string& name) {
  std::vector<std::string> out;
  walk(m_fs, path_of(name), "", out);
  return out;
}

std::optional<Problem> DirStore::check_file(const Context& ctx, const std::string& name,
                                            const FileEntry& f, Hash hash, Overlap overlap,
                                            InodeDigests* seen, const ProgressFn& progress) {
  return check_stored_file(ctx, path_of(name), f, hash, overlap, seen, progress);
}

TransferResult DirStore::copy_to(const Context&, const std::string& name, const std::string& path,
                                 int out_fd, Hash hash, Overlap overlap,
                                 const ProgressFn& progress) {
  FdGuard in(m_fs, m_fs.open(join_path(path_of(name), path), O_RDONLY | O_NOFOLLOW | O_NONBLOCK));
  if (m_fs.clone(in.get(), out_fd)) {
    return hash == Hash::yes ? hash_fd(m_fs, in.get(), hash, progress, overlap)
                             : TransferResult{m_fs.fstat(in.get()).size, std::nullopt};
  }
  return copy_and_hash(m_fs, in.get(), out_fd, hash, progress, overlap);
}

namespace {

class DirLock final : public RootLock {
 public:
  explicit DirLock(FileLock lock) : m_lock(std::move(lock)) {}

 private:
  FileLock m_lock;
};

}  // namespace

std::unique_ptr<RootLock> DirStore::lock_root(const Context& ctx) {
  return std::make_unique<DirLock>(detail::lock_root(ctx, location()));
}

bool DirStore::exists(const std::string& name) { return m_fs.lstat(path_of(name)).has_value(); }

void DirStore::write_marker(const std::string& name, const std::string& text) {
  write_file_atomic(m_fs, path_of(name), text);
}

void DirStore::remove_marker(const std::string& name) {
  if (!m_fs.lstat(path_of(name))) return;
  remove_tree(m_fs, path_of(name));  // a directory where a marker belongs, too
  m_fs.fsync_dir(location());
}

void DirStore::discard(const Context& ctx, const std::vector<std::string>& names) {
  discard_checkpoints(ctx, location(), names);
}

Cleaned DirStore::clean(const Context& ctx, std::int64_t max_idle_seconds, bool dry_run) {
  Cleaned c;
  c.cleaned = clean_private(ctx, location(), dry_run);
  c.expired = expire_pending(ctx, location(), max_idle_seconds, dry_run);
  return c;
}

std::vector<PendingStep> DirStore::pending(const Context& ctx) {
  return read_pending(ctx, location());
}

bool is_store_root(const std::string& root) { return s3::is_s3_url(root); }

void require_directory_root(const std::string& root) {
  if (!is_store_root(root)) return;
  throw Error(ErrorKind::unsupported,
              fmt::format("{} is an object-store root; this works on a directory root only",
                          canonical_root(root)));
}

std::unique_ptr<Store> open_store(const Context& ctx, const std::string& root) {
  if (is_store_root(root)) return open_object_store(ctx, root);
  return std::make_unique<DirStore>(ctx.file_system(), open_root(ctx, root));
}

}  // namespace ckpt::detail

namespace ckpt {

std::string canonical_root(const std::string& root) {
  if (detail::is_store_root(root)) return s3::parse_s3_url(root).url();
  return absolute_path(root.empty() ? "." : root);
}

}  // namespace ckpt
