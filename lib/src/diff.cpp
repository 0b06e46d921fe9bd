// SPDX-License-Identifier: Apache-2.0
// diff: two checkpoints compared by their manifests.
#include <algorithm>
#include <map>

#include "ckpt/repository.hpp"
#include "internal.hpp"
#include "store/store.hpp"

namespace ckpt {

Result<DiffReport> diff(const Context& ctx, const std::string& root_arg, const std::string& a,
                        const std::string& b) {
  return capture([&]() -> DiffReport {
    auto store = detail::open_store(ctx, root_arg);
    DiffReport d;
    d.a = detail::resolve_checkpoint(ctx, *store, a);
    d.b = detail::resolve_checkpoint(ctx, *store, b);
    d.by_digest = d.a.meta.checksum == "sha256" && d.b.meta.checksum == "sha256";
    std::map<std::string, const FileEntry*> theirs;
    for (const auto& f : d.b.meta.files) theirs.emplace(f.path, &f);
    for (const auto& f : d.a.meta.files) {
      auto it = theirs.find(f.path);
      if (it == theirs.end()) {
        d.removed.push_back(f);
        continue;
      }
      const FileEntry& g = *it->second;
      bool same = f.size == g.size && (!d.by_digest || f.sha256 == g.sha256);
      if (same) {
        ++d.unchanged;
      } else {
        d.changed.emplace_back(f, g);
      }
      theirs.erase(it);
    }
    for (const auto& [path, f] : theirs) d.added.push_back(*f);
    auto by_path = [](const FileEntry& x, const FileEntry& y) { return x.path < y.path; };
    std::sort(d.removed.begin(), d.removed.end(), by_path);
    std::sort(d.changed.begin(), d.changed.end(),
              [](const auto& x, const auto& y) { return x.first.path < y.first.path; });
    return d;
  });
}

}  // namespace ckpt
