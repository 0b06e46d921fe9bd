// SPDX-License-Identifier: Apache-2.0
// A root in an object store: the store seam over s3::Client.
#include "store/object_store.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "ckpt/parallel.hpp"
#include "internal.hpp"

namespace ckpt::detail {

namespace {

// GETs and HEADs of small objects wait on the network, not on a core.
constexpr unsigned k_request_workers = 16;
// The parts in flight of all the files a verify or load moves at once (each
// one buffer of a part): the outer workers share them.
constexpr unsigned k_parts_in_flight = 16;

// A store failure that outlasts the retries, or a bucket gone meanwhile, is
// the store's (exit 6 or 3), never a damaged checkpoint.
bool store_failure(const Error& e) {
  return e.kind() != ErrorKind::not_found || e.reason() == k_reason_no_root;
}

}  // namespace

ObjectStore::ObjectStore(s3::Config config, s3::Location where)
    : Store(where.url()), m_where(where), m_client(std::move(config), where.bucket) {}

std::string ObjectStore::path_of(const std::string& name) const {
  return location() + "/" + name;
}

std::optional<std::string> ObjectStore::read(const std::string& name, std::size_t max) {
  auto obj = m_client.get(key(name));
  if (!obj) return std::nullopt;
  if (obj->body.size() > max) {
    throw Error(ErrorKind::integrity, fmt::format("{} is too large ({} bytes, at most {})",
                                                  path_of(name), obj->body.size(), max));
  }
  return std::move(obj->body);
}

std::string ObjectStore::top() const { return m_where.prefix.empty() ? "" : m_where.prefix + "/"; }

s3::Listing ObjectStore::list_top() {
  std::string t = top();
  s3::Listing l = m_client.list(t, "/");
  // "PREFIX/step-000000001/" and "PREFIX/last" as the root's names.
  for (auto& p : l.prefixes) {
    p.erase(0, t.size());
    if (!p.empty() && p.back() == '/') p.pop_back();
  }
  for (auto& o : l.objects) o.key.erase(0, t.size());
  return l;
}

std::vector<std::string> ObjectStore::step_names() {
  std::vector<std::string> names;
  for (auto& n : list_top().prefixes) {
    if (parse_step_dir_name(n)) names.push_back(std::move(n));
  }
  return names;
}

bool ObjectStore::has_step(const std::string& name) {
  return m_client.head(key(name + "/" + k_meta_file)).has_value();
}

std::vector<ManifestRead> ObjectStore::read_manifests(const Context& ctx,
                                                      const std::vector<std::string>& names) {
  std::vector<ManifestRead> entries(names.size());
  unsigned workers = ctx.threads ? std::min(ctx.threads, k_request_workers) : k_request_workers;
  for_each_parallel(names.size(), workers, [&](std::size_t i) {
    std::optional<std::string> text;
    try {
      text = read(names[i] + "/" + k_meta_file, k_max_meta_bytes);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::integrity) throw;
      entries[i].invalid = fmt::format("{}: {}", names[i], e.message());
      return;
    }
    // Data objects of a save that has not committed (or never will): not
    // a checkpoint, and not an invalid one either.
    if (!text) return;
    try {
      entries[i].meta = parse_meta_of(names[i], *text);
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::io) throw;
      entries[i].invalid = e.message();
    }
  });
  return entries;
}

std::vector<std::string> ObjectStore::files(const std::string& name) {
  std::string top = key(name) + "/";
  std::vector<std::string> out;
  for (const auto& o : m_client.list(top).objects) out.push_back(o.key.substr(top.size()));
  return out;
}

s3::Tuning ObjectStore::tuning(const Context& ctx) const {
  s3::Tuning t = m_tuning;
  t.parallel = std::max(2u, k_parts_in_flight / worker_count(ctx.threads));
  return t;
}

std::optional<Problem> ObjectStore::check_file(const Context& ctx, const std::string& name,
                                               const FileEntry& f, Hash hash, Overlap,
                                               InodeDigests*, const ProgressFn& progress) {
  auto problem = [&](const char* kind, std::string detail) {
    return Problem{f.path, kind, std::move(detail), Severity::failure};
  };
  std::string k = key(name + "/" + f.path);
  auto info = m_client.head(k);
  if (!info) return problem("missing", "listed in _checkpoint.json but absent");
  if (info->size != f.size) {
    return problem("size_mismatch", fmt::format("size {} but {} recorded", info->size, f.size));
  }
  if (hash == Hash::no || !f.sha256) return std::nullopt;
  s3::Moved got;
  try {
    got = s3::download(m_client, k, f.size, tuning(ctx), {}, progress);
  } catch (const Error& e) {
    if (store_failure(e)) throw;
    return problem("missing", e.message());  // deleted while it was read
  }
  if (got.sha256 != *f.sha256) {
    return problem("digest_mismatch",
                   fmt::format("sha256 {} but {} recorded", got.sha256, *f.sha256));
  }
  return std::nullopt;
}

TransferResult ObjectStore::copy_to(const Context& ctx, const std::string& name,
                                    const std::string& path, int out_fd, Hash hash, Overlap,
                                    const ProgressFn& progress) {
  std::string k = key(name + "/" + path);
  auto info = m_client.head(k);
  if (!info) {
    throw Error(ErrorKind::integrity,
                fmt::format("{}/{}: missing (listed in _checkpoint.json but absent)", name, path));
  }
  FileSystem& fs = ctx.file_system();
  s3::Moved got;
  try {
    got = s3::download(
        m_client, k, info->size, tuning(ctx),
        [&](const char* data, std::size_t n) { fs.write(out_fd, data, n); }, progress);
  } catch (const Error& e) {
    if (store_failure(e)) throw;
    throw Error(ErrorKind::integrity,
                fmt::format("{}/{}: missing (deleted while it was read)", name, path));
  }
  TransferResult r;
  r.size = got.size;
  if (hash == Hash::yes) r.sha256 = got.sha256;
  return r;
}

std::optional<ObjectStore::Versioned> ObjectStore::read_versioned(const std::string& name,
                                                                  std::size_t max) {
  auto obj = m_client.get(key(name));
  if (!obj) return std::nullopt;
  if (obj->body.size() > max) {
    throw Error(ErrorKind::integrity, fmt::format("{} is too large ({} bytes, at most {})",
                                                  path_of(name), obj->body.size(), max));
  }
  return Versioned{std::move(obj->body), std::move(obj->etag)};
}

namespace {

std::string content_type_of(const std::string& name) {
  return name.size() > 5 && name.compare(name.size() - 5, 5, ".json") == 0 ? "application/json"
                                                                           : "text/plain";
}

}  // namespace

bool ObjectStore::create(const std::string& name, const std::string& text) {
  s3::PutOptions o;
  o.if_none_match = true;
  o.content_type = content_type_of(name);
  return m_client.put(key(name), text, o) == s3::Put::done;
}

bool ObjectStore::replace(const std::string& name, const std::string& text,
                          const std::string& etag) {
  if (etag.empty()) return create(name, text);
  s3::PutOptions o;
  o.if_match = etag;
  o.content_type = content_type_of(name);
  return m_client.put(key(name), text, o) == s3::Put::done;
}

void ObjectStore::put(const std::string& name, const std::string& text) {
  s3::PutOptions o;
  o.content_type = content_type_of(name);
  m_client.put(key(name), text, o);
}

s3::Moved ObjectStore::upload(const Context& ctx, const std::string& path,
                              const std::string& name, const ProgressFn& progress) {
  return s3::upload_file(m_client, ctx.file_system(), path, key(name), tuning(ctx), progress);
}

void ObjectStore::require_conditional_put() {
  // One object kept for the purpose: once it exists, a store that honours
  // If-None-Match refuses to create it again. The first save into a root
  // creates it and asks again.
  const std::string probe = std::string(k_private_dir) + "/conditional-put";
  if (!create(probe, "If-None-Match: * must be refused when this object exists\n")) return;
  if (!create(probe, "If-None-Match: * must be refused when this object exists\n")) return;
  throw Error(ErrorKind::unsupported,
              fmt::format("the object store at {} ignores conditional writes (If-None-Match: *), "
                          "so two writers could commit one step; ckpt refuses to change a root "
                          "there (reading it works)",
                          location()));
}

std::unique_ptr<s3::Lease> ObjectStore::lease(const Context& ctx, const std::string& name) {
  s3::LeaseOptions o;
  o.timeout_seconds = ctx.lock_timeout;
  o.what = name == lock_name() ? fmt::format("root {}", location())
                                                        : path_of(name);
  o.holder = lock_holder_text();
  return s3::Lease::acquire(m_client, key(name), o);
}

void ObjectStore::check_root() {
  m_client.check_bucket();
  if (m_client.head(key(k_last_file))) return;
  s3::Listing l = list_top();
  if (l.objects.empty() && l.prefixes.empty()) {
    throw Error(ErrorKind::not_found, fmt::format("no such root: {}", location()))
        .with_reason(k_reason_no_root);
  }
  for (const auto& n : l.prefixes) {
    if (is_root_entry(n)) return;
  }
  for (const auto& o : l.objects) {
    if (is_root_entry(o.key)) return;
  }
  throw Error(ErrorKind::unsupported,
              fmt::format("{} is not a ckpt root (no .ckpt/, last, best.json, policy.json or "
                          "step-* under it); check -C",
                          location()));
}

std::unique_ptr<Store> open_object_store(const Context&, const std::string& root) {
  s3::Location where = s3::parse_s3_url(root);
  auto store = std::make_unique<ObjectStore>(s3::load_config(s3::process_environment()), where);
  store->check_root();
  return store;
}

}  // namespace ckpt::detail
