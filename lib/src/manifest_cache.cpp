// SPDX-License-Identifier: Apache-2.0
// .ckpt/manifests: each checkpoint's _checkpoint.json as parsed, so that a
// listing of 10,000 checkpoints reads one file and stats 10,000 manifests
// instead of opening, reading and parsing all of them.
//
// The cache is never trusted for more than it can prove: an entry is used
// only while its manifest's device, inode, size, modification and change
// times are those recorded, and a manifest changed less than 2 s before it
// was read is not recorded at all (its times could still match a second
// change in the same clock tick: git's index treats "racily clean" files
// the same way). A file that is absent, of another version, torn by a crash
// (a SHA-256 of the body closes it) or unreadable is ignored and rewritten.
// It is written without the root lock, by a rename over the old one, and
// without fsync: any version of it is correct, and losing it costs time only.
#include "manifest_cache.hpp"

#include <fcntl.h>

#include <atomic>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

#include "ckpt/atomic_file.hpp"
#include "ckpt/hash.hpp"
#include "internal.hpp"

namespace ckpt::detail {

namespace {

constexpr std::string_view k_magic = "ckpt manifest cache 2\n";
std::atomic<std::int64_t> g_settle_ns{2'000'000'000};
constexpr std::uint64_t k_max_cache_bytes = 1ull << 30;

class Writer {
 public:
  void u64(std::uint64_t v) { m_out.append(reinterpret_cast<const char*>(&v), sizeof v); }
  void i64(std::int64_t v) { u64(static_cast<std::uint64_t>(v)); }
  void f64(double v) {
    std::uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    u64(bits);
  }
  void str(std::string_view s) {
    u64(s.size());
    m_out.append(s);
  }
  std::string& out() { return m_out; }

 private:
  std::string m_out;
};

// Reads what Writer wrote; any overrun makes ok() false and yields zeros.
class Reader {
 public:
  explicit Reader(std::string_view in) : m_in(in) {}
  bool ok() const { return m_ok; }
  bool done() const { return m_pos == m_in.size(); }
  std::uint64_t u64() {
    std::uint64_t v = 0;
    if (!take(sizeof v)) return 0;
    std::memcpy(&v, m_in.data() + m_pos - sizeof v, sizeof v);
    return v;
  }
  std::int64_t i64() { return static_cast<std::int64_t>(u64()); }
  double f64() {
    std::uint64_t bits = u64();
    double v;
    std::memcpy(&v, &bits, sizeof v);
    return v;
  }
  std::string str() {
    std::uint64_t n = u64();
    if (n > m_in.size() || !take(static_cast<std::size_t>(n))) return {};
    return std::string(m_in.substr(m_pos - n, n));
  }
  // A count of items that each take at least one byte.
  std::uint64_t count() {
    std::uint64_t n = u64();
    if (n > m_in.size() - m_pos) m_ok = false;
    return m_ok ? n : 0;
  }

 private:
  bool take(std::size_t n) {
    if (!m_ok || m_in.size() - m_pos < n) {
      m_ok = false;
      return false;
    }
    m_pos += n;
    return true;
  }
  std::string_view m_in;
  std::size_t m_pos = 0;
  bool m_ok = true;
};

void put_key(Writer& w, const ManifestKey& k) {
  w.u64(k.dev);
  w.u64(k.ino);
  w.u64(k.size);
  w.i64(k.mtime_ns);
  w.i64(k.ctime_ns);
}

ManifestKey get_key(Reader& r) {
  ManifestKey k;
  k.dev = r.u64();
  k.ino = r.u64();
  k.size = r.u64();
  k.mtime_ns = r.i64();
  k.ctime_ns = r.i64();
  return k;
}

void put_meta(Writer& w, const CheckpointMeta& m) {
  w.str(m.name);
  w.u64(m.step);
  w.u64(m.commit_seq);
  w.str(m.created);
  w.u64(m.metrics.size());
  for (const auto& [k, v] : m.metrics) {
    w.str(k);
    w.u64(v ? 1 : 0);
    w.f64(v.value_or(0));
  }
  w.u64(m.meta.size());
  for (const auto& [k, v] : m.meta) {
    w.str(k);
    w.str(v);
  }
  w.str(m.checksum);
  w.u64(m.weights.size());
  for (const auto& s : m.weights) w.str(s);
  w.u64(m.files.size());
  for (const auto& f : m.files) {
    w.str(f.path);
    w.u64(f.size);
    w.u64(f.sha256 ? 1 : 0);
    w.str(f.sha256.value_or(""));
    w.u64(f.shard ? *f.shard + 1 : 0);
  }
  w.u64(m.total_size);
  w.str(m.tool);
  w.u64(m.shards ? *m.shards + 1 : 0);
  w.u64(m.shard_group ? 1 : 0);
  w.str(m.shard_group.value_or(""));
  w.u64(m.shard_retired.size());
  for (const auto& g : m.shard_retired) w.str(g);
}

CheckpointMeta get_meta(Reader& r) {
  CheckpointMeta m;
  m.name = r.str();
  m.step = r.u64();
  m.commit_seq = r.u64();
  m.created = r.str();
  for (std::uint64_t i = 0, n = r.count(); i < n && r.ok(); ++i) {
    std::string k = r.str();
    bool present = r.u64() != 0;
    double v = r.f64();
    m.metrics[k] = present ? std::optional<double>(v) : std::nullopt;
  }
  for (std::uint64_t i = 0, n = r.count(); i < n && r.ok(); ++i) {
    std::string k = r.str();
    m.meta[k] = r.str();
  }
  m.checksum = r.str();
  for (std::uint64_t i = 0, n = r.count(); i < n && r.ok(); ++i) m.weights.push_back(r.str());
  for (std::uint64_t i = 0, n = r.count(); i < n && r.ok(); ++i) {
    FileEntry f;
    f.path = r.str();
    f.size = r.u64();
    bool has = r.u64() != 0;
    std::string sha = r.str();
    if (has) f.sha256 = std::move(sha);
    if (std::uint64_t shard = r.u64()) f.shard = shard - 1;
    m.files.push_back(std::move(f));
  }
  m.total_size = r.u64();
  m.tool = r.str();
  if (std::uint64_t shards = r.u64()) m.shards = shards - 1;
  bool has_group = r.u64() != 0;
  std::string group = r.str();
  if (has_group) m.shard_group = std::move(group);
  for (std::uint64_t i = 0, n = r.count(); i < n && r.ok(); ++i) m.shard_retired.push_back(r.str());
  return m;
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void set_manifest_settle_ns(std::int64_t ns) { g_settle_ns.store(ns, std::memory_order_relaxed); }

ManifestKey manifest_key(const Stat& st) {
  return ManifestKey{static_cast<std::uint64_t>(st.dev), static_cast<std::uint64_t>(st.ino),
                     st.size, st.mtime_ns, st.ctime_ns};
}

std::string manifest_cache_path(const std::string& root) {
  return join_path(private_dir(root), "manifests");
}

ManifestCache ManifestCache::load(const Context& ctx, const std::string& root) {
  ManifestCache cache;
  std::string text;
  try {
    FileSystem& fs = ctx.file_system();
    if (!fs.lstat(manifest_cache_path(root))) return cache;
    text = read_file(fs, manifest_cache_path(root), k_max_cache_bytes);
  } catch (const Error&) {
    return cache;  // unreadable: as if absent
  }
  // magic, body, SHA-256 of the body (64 hex digits)
  if (text.size() < k_magic.size() + 64 || text.compare(0, k_magic.size(), k_magic) != 0) {
    return cache;
  }
  std::string_view body(text);
  body = body.substr(k_magic.size(), body.size() - k_magic.size() - 64);
  if (sha256_hex(body) != std::string_view(text).substr(text.size() - 64)) return cache;
  Reader r(body);
  std::map<std::string, Entry> entries;
  for (std::uint64_t i = 0, n = r.count(); i < n && r.ok(); ++i) {
    std::string name = r.str();
    Entry e;
    e.key = get_key(r);
    e.meta = get_meta(r);
    entries.emplace(std::move(name), std::move(e));
  }
  if (r.ok() && r.done()) cache.m_entries = std::move(entries);
  return cache;
}

std::optional<CheckpointMeta> ManifestCache::take(const std::string& name,
                                                  const ManifestKey& key) {
  auto it = m_entries.find(name);
  if (it == m_entries.end() || !(it->second.key == key)) return std::nullopt;
  m_keys[name] = key;
  return std::move(it->second.meta);
}

void ManifestCache::put(const std::string& name, const ManifestKey& key) {
  // Changed just now: the same times could come again with other content.
  std::int64_t now = now_ns();
  std::int64_t settle = g_settle_ns.load(std::memory_order_relaxed);
  if (now - key.mtime_ns < settle || now - key.ctime_ns < settle) return;
  m_keys[name] = key;
  m_dirty = true;
}

void ManifestCache::store(const Context& ctx, const std::string& root,
                          const std::vector<Checkpoint>& listed) {
  // Rewritten when a manifest was added, or when entries of checkpoints no
  // longer listed would go.
  if (!m_dirty && m_keys.size() == m_entries.size()) return;
  std::size_t n = 0;
  for (const auto& c : listed) n += m_keys.count(c.name);
  if (n == 0) return;
  Writer w;
  w.u64(n);
  for (const auto& c : listed) {
    auto k = m_keys.find(c.name);
    if (k == m_keys.end()) continue;
    w.str(c.name);
    put_key(w, k->second);
    put_meta(w, c.meta);
  }
  std::string text(k_magic);
  text += w.out();
  text += sha256_hex(w.out());
  FileSystem& fs = ctx.file_system();
  std::string path = manifest_cache_path(root);
  std::string tmp = fmt::format("{}/.manifests.tmp.{}", private_dir(root), unique_suffix());
  try {
    if (auto st = fs.lstat(private_dir(root)); !st || st->type != FileType::dir) return;
    {
      FdGuard fd(fs, fs.open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644));
      fs.write(fd.get(), text.data(), text.size());
      fd.close();
    }
    fs.rename(tmp, path);
  } catch (const Error&) {
    // A cache: a read-only root, a full disk or any other failure costs time only.
    try {
      fs.unlink(tmp);
    } catch (const Error&) {
    }
  }
}

}  // namespace ckpt::detail
