// SPDX-License-Identifier: Apache-2.0
// A root in an object store: the store seam over s3::Client.
#include "store/object_store.hpp"

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

#include "ckpt/clock.hpp"
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
                              const std::string& name, const ProgressFn& progress,
                              const std::function<void(const std::function<void()>&)>& completing) {
  s3::Tuning t = tuning(ctx);
  t.create_only = true;  // the step's objects were cleared under its lease
  t.completing = completing;
  return s3::upload_file(m_client, ctx.file_system(), path, key(name), t, progress);
}

std::string ObjectStore::copy_within(const Context& ctx, const std::string& from_name,
                                     const std::string& to_name, std::uint64_t size,
                                     const ProgressFn& progress) {
  s3::Tuning t = tuning(ctx);
  t.create_only = true;  // as uploads: the step's objects were cleared under its lease
  return s3::copy_within(m_client, key(from_name), key(to_name), size, t, progress);
}

void ObjectStore::require_conditional_put() {
  // One object kept for the purpose: once it exists, a store that honours
  // If-None-Match refuses to create it again. The first save into a root
  // creates it and asks again.
  if (m_conditional_put) return;
  const std::string probe = std::string(k_private_dir) + "/conditional-put";
  const char* text = "If-None-Match: * must be refused when this object exists\n";
  m_conditional_put = !create(probe, text) || !create(probe, text);
  if (m_conditional_put) return;
  throw Error(ErrorKind::unsupported,
              fmt::format("the object store at {} ignores conditional writes (If-None-Match: *), "
                          "so two writers could commit one step; ckpt refuses to change a root "
                          "there (reading it works)",
                          location()));
}

std::unique_ptr<s3::Lease> ObjectStore::lease(const Context& ctx, const std::string& name) {
  return lease(name, ctx.lock_timeout);
}

std::unique_ptr<s3::Lease> ObjectStore::lease(const std::string& name, double timeout_seconds) {
  s3::LeaseOptions o;
  o.timeout_seconds = timeout_seconds;
  o.what = name == lock_name() ? fmt::format("root {}", location())
                                                        : path_of(name);
  o.holder = lock_holder_text();
  return s3::Lease::acquire(m_client, key(name), o);
}

std::unique_ptr<s3::Lease> ObjectStore::try_lease(const std::string& name) {
  try {
    return lease(name, 0);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::locked) throw;
    return nullptr;
  }
}

std::string ObjectStore::saving_name(std::uint64_t step) {
  return fmt::format("{}/saving/{}", k_private_dir, step_dir_name(step));
}

void ObjectStore::update(
    const std::string& name,
    const std::function<std::optional<std::string>(const std::optional<std::string>&)>& next) {
  for (int attempt = 0;; ++attempt) {
    check_interrupt();
    auto cur = read_versioned(name, k_max_marker_bytes);
    std::optional<std::string> want = next(cur ? std::optional<std::string>(cur->text) : std::nullopt);
    if (!want || (cur && *want == cur->text)) return;
    if (replace(name, *want, cur ? cur->etag : std::string())) return;
    if (attempt == 50) {
      throw Error(ErrorKind::locked,
                  fmt::format("{} kept changing while it was being updated", path_of(name)));
    }
  }
}

void ObjectStore::clear_uncommitted(const std::string& name) {
  std::string under = key(name) + "/";
  std::vector<std::string> keys;
  for (const auto& o : m_client.list(under).objects) {
    if (o.key == under + k_meta_file) {
      // Committed since it was looked for (by a writer that had lost this
      // lease): nothing of it is touched.
      throw Error(ErrorKind::conflict,
                  fmt::format("{} was committed by another writer meanwhile", name));
    }
    keys.push_back(o.key);
  }
  auto uploads = m_client.list_uploads(under);
  for (const auto& u : uploads) m_client.abort_upload(u.key, u.upload_id);
  m_client.remove_many(keys);
}

// The root lease while a command that changes the root holds it.
class StoreLease final : public RootLock {
 public:
  StoreLease(ObjectStore& store, std::unique_ptr<s3::Lease> lease)
      : m_store(store), m_lease(std::move(lease)) {
    m_store.m_root_lease = m_lease.get();
  }
  ~StoreLease() override { m_store.m_root_lease = nullptr; }
  void check() const override { m_lease->check(); }

 private:
  ObjectStore& m_store;
  std::unique_ptr<s3::Lease> m_lease;
};

std::unique_ptr<RootLock> ObjectStore::lock_root(const Context& ctx) {
  // The lease is taken with a create-only PUT: worthless where the store
  // ignores the condition.
  require_conditional_put();
  auto held = std::make_unique<StoreLease>(*this, lease(ctx, lock_name()));
  recover(ctx);
  return held;
}

void ObjectStore::check_lock() const {
  if (m_root_lease) m_root_lease->check();
}

bool ObjectStore::exists(const std::string& name) { return m_client.head(key(name)).has_value(); }

void ObjectStore::write_marker(const std::string& name, const std::string& text) {
  check_lock();
  update(name, [&](const std::optional<std::string>&) { return std::optional<std::string>(text); });
}

void ObjectStore::remove_marker(const std::string& name) {
  check_lock();
  m_client.remove(key(name));
}

void ObjectStore::discard(const Context& ctx, const std::vector<std::string>& names) {
  for (const auto& name : names) {
    auto step = parse_step_dir_name(name);
    if (!step) continue;
    check_interrupt();
    check_lock();
    // A save of this step uploads under its lease: none of what it writes
    // is removed here.
    auto step_lease = lease(ctx, saving_name(*step));
    check_lock();
    m_client.remove(key(name + "/" + k_meta_file));
    // Unlisted: the rest is data objects no reader sees. A prune killed
    // here leaves them to the next one.
    clear_uncommitted(name);
    step_lease->remove();
  }
}

Cleaned ObjectStore::clean(const Context& ctx, std::int64_t max_idle_seconds, bool dry_run) {
  Cleaned out;
  std::set<std::uint64_t> skip;  // pending steps: their objects are the shards'
  out.expired = expire_pending(ctx, max_idle_seconds, dry_run, skip);
  clean_staged(max_idle_seconds, dry_run, out);
  const std::int64_t now = now_ms();
  auto idle = [&](const std::string& when) {
    auto t = parse_rfc3339_ms(when);
    return t && now - *t > max_idle_seconds * 1000;
  };
  const std::string root = top();
  std::set<std::string> names;
  for (const auto& p : list_top().prefixes) {
    if (parse_step_dir_name(p)) names.insert(p);
  }
  std::map<std::string, std::vector<s3::Upload>> uploads;
  for (auto& u : m_client.list_uploads(root + "step-")) {
    std::string rel = u.key.substr(root.size());
    std::string name = rel.substr(0, rel.find('/'));
    if (!parse_step_dir_name(name) || rel.find('/') == std::string::npos) continue;
    names.insert(name);
    uploads[name].push_back(std::move(u));
  }
  // Which are committed: one HEAD each, side by side.
  const std::vector<std::string> ordered(names.begin(), names.end());
  std::vector<char> committed(ordered.size(), 0);
  for_each_parallel(ordered.size(), k_request_workers, [&](std::size_t i) {
    committed[i] = has_step(ordered[i]) ? 1 : 0;
  });
  std::set<std::string> leases_kept;  // of uncommitted steps left: they go with the data
  for (std::size_t i = 0; i < ordered.size(); ++i) {
    check_interrupt();
    const std::string& name = ordered[i];
    const std::uint64_t step = *parse_step_dir_name(name);
    const auto& ups = uploads[name];
    if (committed[i]) {
      // Committed: its objects are the checkpoint's. An upload still open
      // under it is a stray of a save that lost its lease.
      for (const auto& u : ups) {
        if (!idle(u.initiated)) continue;
        out.cleaned.push_back(u.key.substr(root.size()));
        if (!dry_run) {
          check_lock();
          m_client.abort_upload(u.key, u.upload_id);
        }
      }
      continue;
    }
    if (skip.count(step)) {
      leases_kept.insert(saving_name(step));
      continue;
    }
    auto objects = m_client.list(key(name) + "/").objects;
    bool recent = std::any_of(objects.begin(), objects.end(),
                              [&](const s3::ObjectInfo& o) { return !idle(o.last_modified); }) ||
                  std::any_of(ups.begin(), ups.end(),
                              [&](const s3::Upload& u) { return !idle(u.initiated); });
    leases_kept.insert(saving_name(step));
    if (recent) continue;
    // A live lease is a writer at it (a dry run asks as taking it would).
    if (dry_run && !s3::lease_takeable(read(saving_name(step), k_max_marker_bytes), now)) continue;
    // As a directory's abandoned staging directory is reported: its path.
    std::string what = name + "/";
    if (dry_run) {
      out.cleaned.push_back(what);
      continue;
    }
    check_lock();
    auto step_lease = try_lease(saving_name(step));
    if (!step_lease) continue;  // a writer took it up meanwhile
    try {
      clear_uncommitted(name);
    } catch (const Error& e) {
      // Committed meanwhile (by a writer that had lost the lease): left.
      // Anything else, a 412 from the store included, is a failure.
      if (e.kind() != ErrorKind::conflict || !has_step(name)) throw;
      continue;
    }
    step_lease->remove();
    out.cleaned.push_back(what);
  }
  // Step leases left behind (free, expired, or a holder gone): each removed
  // while held. Not reported, as a directory's free staging locks are not.
  if (dry_run) return out;
  const std::string saving_dir = std::string(k_private_dir) + "/saving/";
  for (const auto& o : m_client.list(key(saving_dir)).objects) {
    check_interrupt();
    std::string name = o.key.substr(root.size());
    auto step = parse_step_dir_name(name.substr(saving_dir.size()));
    if (!step || name != saving_name(*step) || leases_kept.count(name)) continue;
    check_lock();
    if (auto held = try_lease(name)) held->remove();  // else a writer holds it
  }
  return out;
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
