// SPDX-License-Identifier: Apache-2.0
#include "s3/lease.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/rand.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <functional>

#include "ckpt/clock.hpp"
#include "ckpt/transfer.hpp"
#include "internal.hpp"

namespace ckpt::s3 {

namespace {

std::string random_token() {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) throw Error(ErrorKind::io, "no random bytes for a lease token");
  std::string out;
  for (unsigned char c : b) out += fmt::format("{:02x}", c);
  return out;
}

// "pid 4242 on host gpu7 (ckpt -C s3://b/p prune)" from a holder object.
std::string describe(const std::string& holder) {
  try {
    auto j = nlohmann::json::parse(holder);
    std::string who = fmt::format("pid {} on host {}", j.at("pid").get<long long>(),
                                  j.at("host").get<std::string>());
    if (auto c = j.value("command", std::string()); !c.empty()) who += fmt::format(" ({})", c);
    return who;
  } catch (const std::exception&) {
    return "another process";
  }
}

// The holder ran on this host, in this boot and in this PID namespace, and
// its process is gone (killed, or it crashed): its lease need not be waited
// out. A host name alone proves nothing (containers sharing a host's name
// have PID namespaces of their own): a holder that does not record the same
// boot and namespace, or whose process may still run, is waited for until
// its lease expires.
bool holder_gone(const std::string& holder) {
  try {
    auto theirs = nlohmann::json::parse(holder);
    auto ours = nlohmann::json::parse(detail::lock_holder_text());
    for (const char* k : {"host", "boot_id", "pid_ns"}) {
      if (!theirs.contains(k) || !ours.contains(k) || theirs.at(k) != ours.at(k) ||
          theirs.at(k).get<std::string>().empty()) {
        return false;
      }
    }
    long long pid = theirs.at("pid").get<long long>();
    if (pid <= 0) return false;
    return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
  } catch (const std::exception&) {
    return false;
  }
}

// Absent or unreadable, expired or released, or its holder gone.
bool takeable(const std::optional<LeaseState>& st, std::int64_t now) {
  return !st || st->expires_ms < now || holder_gone(st->holder);
}

}  // namespace

bool lease_takeable(const std::optional<std::string>& text, std::int64_t now) {
  return !text || takeable(parse_lease(*text), now);
}

std::string lease_text(const LeaseState& s) {
  nlohmann::json holder = nlohmann::json::object();
  try {
    if (!s.holder.empty()) holder = nlohmann::json::parse(s.holder);
  } catch (const std::exception&) {
    holder = nlohmann::json::object();
  }
  nlohmann::json j = {{"token", s.token}, {"expires_ms", s.expires_ms}, {"holder", holder}};
  if (s.expires_ms > 0) j["expires"] = format_rfc3339_ms(s.expires_ms);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::optional<LeaseState> parse_lease(const std::string& text) {
  try {
    auto j = nlohmann::json::parse(text);
    LeaseState s;
    s.token = j.at("token").get<std::string>();
    s.expires_ms = j.at("expires_ms").get<std::int64_t>();
    s.holder = j.at("holder").dump();
    return s;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::unique_ptr<Lease> Lease::acquire(Client& client, const std::string& key, const LeaseOptions& opts) {
  const std::string token = random_token();
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<std::int64_t>(opts.timeout_seconds * 1000));
  auto wait = std::chrono::milliseconds(50);
  for (;;) {
    check_interrupt();
    std::int64_t expires = now_ms() + opts.duration.count();
    std::string text = lease_text({token, expires, opts.holder});
    std::string etag;
    PutOptions create;
    create.if_none_match = true;
    create.content_type = "application/json";
    if (client.put(key, text, create, &etag) == Put::done) {
      return std::unique_ptr<Lease>(new Lease(client, key, opts, token, etag, expires));
    }
    // Someone's lease object is there: take it over if it is free or expired.
    std::string holder_note;
    if (auto cur = client.get(key)) {
      auto st = parse_lease(cur->body);
      if (takeable(st, now_ms())) {
        PutOptions swap;
        swap.if_match = cur->etag;
        swap.content_type = "application/json";
        expires = now_ms() + opts.duration.count();
        text = lease_text({token, expires, opts.holder});
        if (client.put(key, text, swap, &etag) == Put::done) {
          return std::unique_ptr<Lease>(new Lease(client, key, opts, token, etag, expires));
        }
        continue;  // another taker won: look again at once
      }
      double left = static_cast<double>(st->expires_ms - now_ms()) / 1000;
      holder_note = fmt::format("{} (its lease expires in {:.1f} s unless renewed)", describe(st->holder), left);
    } else {
      continue;  // gone meanwhile: try to create it again
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      throw Error(ErrorKind::locked, fmt::format("{} is locked by {} (waited {}s); retry later", opts.what,
                                                 holder_note, opts.timeout_seconds));
    }
    // Between half and all of the backoff, drawn from the token's bytes:
    // waiters that found the lease held at once do not all look again at
    // once (the shards of one step complete their uploads under its lease).
    auto left = deadline - std::chrono::steady_clock::now();
    std::uint64_t draw = std::hash<std::string>{}(token) ^ static_cast<std::uint64_t>(now_ms());
    auto pause = wait / 2 + std::chrono::milliseconds(draw % (wait.count() / 2 + 1));
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(pause, left));
    wait = std::min(wait * 2, std::chrono::milliseconds(1000));
  }
}

Lease::Lease(Client& client, std::string key, LeaseOptions opts, std::string token, std::string etag,
             std::int64_t expires_ms)
    : m_client(client),
      m_key(std::move(key)),
      m_opts(std::move(opts)),
      m_token(std::move(token)),
      m_etag(std::move(etag)),
      m_expires_ms(expires_ms) {
  m_renewer = std::thread([this] { renew_loop(); });
}

Lease::~Lease() { release(); }

void Lease::renew_loop() {
  const auto period = m_opts.duration / 3;
  std::unique_lock<std::mutex> lock(m_mutex);
  while (!m_stop) {
    if (m_cv.wait_for(lock, period, [this] { return m_stop; })) break;
    lock.unlock();
    std::int64_t expires = now_ms() + m_opts.duration.count();
    PutOptions swap;
    swap.if_match = m_etag;
    swap.content_type = "application/json";
    swap.cleanup = true;  // renewed through an interrupt: the command is cleaning up
    std::string etag;
    try {
      if (m_client.put(m_key, lease_text({m_token, expires, m_opts.holder}), swap, &etag) == Put::done) {
        m_etag = etag;
        m_expires_ms = expires;
      } else {
        m_lost = true;  // taken over: ours had expired
      }
    } catch (const Error&) {
      if (now_ms() >= m_expires_ms.load()) m_lost = true;  // could not renew in time
    }
    lock.lock();
    if (m_lost) break;
  }
}

void Lease::check() const {
  if (m_lost || now_ms() >= m_expires_ms.load()) {
    throw Error(ErrorKind::locked, fmt::format("{}: lost the lock (its lease at {} expired or was taken over); "
                                               "nothing more was changed",
                                               m_opts.what, m_key));
  }
}

void Lease::stop_renewer() {
  {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_stop = true;
  }
  m_cv.notify_all();
  if (m_renewer.joinable()) m_renewer.join();
}

bool Lease::confirm() {
  stop_renewer();
  if (m_lost || m_released) return false;
  std::int64_t expires = now_ms() + m_opts.duration.count();
  PutOptions swap;
  swap.if_match = m_etag;
  swap.content_type = "application/json";
  swap.cleanup = true;
  std::string etag;
  try {
    if (m_client.put(m_key, lease_text({m_token, expires, m_opts.holder}), swap, &etag) ==
        Put::done) {
      m_etag = etag;
      m_expires_ms = expires;
      return true;
    }
    m_lost = true;
  } catch (const Error&) {
    // Unknown: not confirmed.
  }
  return false;
}

bool Lease::remove() {
  if (!confirm()) {
    release();
    return false;
  }
  // Ours until it expires, a whole lease duration from the confirmation:
  // nobody else writes it before then. A process stalled for most of that
  // (a VM pause) lets it go by compare-and-swap instead. The DELETE is sent
  // once, never retried: a retry of one that was applied could remove the
  // lease its next holder has just created. Sent after an interrupt too.
  if (now_ms() > m_expires_ms.load() - m_opts.duration.count() / 2) {
    release();
    return false;
  }
  try {
    m_client.remove(m_key, Client::RemoveOptions{true, true});
    m_released = true;
  } catch (const Error&) {
    // Not deleted, or not known: marked free instead (a compare-and-swap,
    // which does nothing to a lease deleted or taken since).
    release();
  }
  return true;
}

void Lease::release() {
  stop_renewer();
  if (m_released) return;
  m_released = true;
  if (m_lost) return;
  PutOptions swap;
  swap.if_match = m_etag;
  swap.content_type = "application/json";
  swap.cleanup = true;
  try {
    m_client.put(m_key, lease_text({m_token, 0, m_opts.holder}), swap);
  } catch (const Error&) {
    // It expires by itself.
  }
}

}  // namespace ckpt::s3
