// SPDX-License-Identifier: Apache-2.0
// The parsed manifests of a root's checkpoints, kept in .ckpt/manifests for listings.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "ckpt/format.hpp"
#include "ckpt/fs.hpp"
#include "ckpt/repository.hpp"

namespace ckpt::detail {

// What identifies one version of a _checkpoint.json file.
struct ManifestKey {
  std::uint64_t dev = 0;
  std::uint64_t ino = 0;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;
  bool operator==(const ManifestKey&) const = default;
};
ManifestKey manifest_key(const Stat& st);

std::string manifest_cache_path(const std::string& root);

// How long after its last change a manifest is first recorded (2 s; tests
// set 0 to see the cache work at once).
void set_manifest_settle_ns(std::int64_t ns);

// Not safe for concurrent use: the listing takes from it and puts into it
// under a lock of its own.
class ManifestCache {
 public:
  // The cache as stored; empty when absent, damaged or unreadable.
  static ManifestCache load(const Context& ctx, const std::string& root);
  // The recorded manifest of checkpoint name (moved out) when key still
  // identifies it.
  std::optional<CheckpointMeta> take(const std::string& name, const ManifestKey& key);
  // Notes a manifest just parsed, for store() (unless it changed too
  // recently to tell).
  void put(const std::string& name, const ManifestKey& key);
  // Writes the cache back when it gained or lost entries, from the listing's
  // checkpoints; never fails.
  void store(const Context& ctx, const std::string& root, const std::vector<Checkpoint>& listed);

 private:
  struct Entry {
    ManifestKey key;
    CheckpointMeta meta;
  };
  std::map<std::string, Entry> m_entries;
  std::map<std::string, ManifestKey> m_keys;  // what store() records, by checkpoint
  bool m_dirty = false;
};

}  // namespace ckpt::detail
