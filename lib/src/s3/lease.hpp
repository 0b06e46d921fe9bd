// SPDX-License-Identifier: Apache-2.0
// Mutual exclusion on an object-store root (SPEC §11): a lease object taken
// with a create-only PUT, holding its holder and an expiry, renewed by
// compare-and-swap while held, released by a compare-and-swap that marks it
// free, and taken over by compare-and-swap once expired or free. S3 has no
// conditional DELETE, and a plain one could remove another holder's lease:
// only its holder deletes one (remove()), right after confirming it, with
// one request that is never retried.
//
// Assumes the holders' clocks agree to well within the lease's duration
// (30 s by default; renewed every third of it).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "s3/client.hpp"

namespace ckpt::s3 {

struct LeaseOptions {
  std::chrono::milliseconds duration{30000};
  double timeout_seconds = 60;  // how long acquire waits for a held lease (0: one try)
  std::string what;             // "root s3://bucket/prefix", for messages
  std::string holder;           // a JSON object naming the holder (pid, host, command)
};

class Lease {
 public:
  // Takes the lease at key, waiting up to opts.timeout_seconds while another
  // holder's lease is live; Error(locked) naming that holder when it stays.
  // A lease whose holder ran on this host, in this boot and this PID
  // namespace, and whose process is gone (killed), is taken over at once.
  static std::unique_ptr<Lease> acquire(Client& client, const std::string& key, const LeaseOptions& opts);
  ~Lease();
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;

  // Marks the lease free (a compare-and-swap: a lease taken over meanwhile
  // is left alone). Errors are ignored: an unreleased lease expires.
  void release();
  // Throws Error(locked) when the lease was lost: another holder took it
  // over, or it could not be renewed before it expired. Call before each
  // change the lease protects.
  void check() const;
  bool lost() const { return m_lost.load(); }
  // Whether the lease is still ours, asked of the store now: renewed once by
  // compare-and-swap (sent even after an interrupt). The renewer stops; call
  // it before undoing work the lease protects (removing uploaded objects),
  // then let the lease go.
  bool confirm();
  // Deletes the lease object once confirm() says it is still ours, so that
  // no lease is left behind (the next holder creates it anew). False, with
  // nothing deleted, when it is not ours; the lease is let go either way.
  bool remove();
  std::int64_t expires_ms() const { return m_expires_ms.load(); }

 private:
  Lease(Client& client, std::string key, LeaseOptions opts, std::string token, std::string etag,
        std::int64_t expires_ms);
  void renew_loop();
  void stop_renewer();

  Client& m_client;
  std::string m_key;
  LeaseOptions m_opts;
  std::string m_token;
  std::string m_etag;  // of our lease object; the renewer alone changes it
  std::atomic<std::int64_t> m_expires_ms;
  std::atomic<bool> m_lost{false};
  std::mutex m_mutex;
  std::condition_variable m_cv;
  bool m_stop = false;
  bool m_released = false;
  std::thread m_renewer;
};

// The lease document: what acquire writes and reads.
struct LeaseState {
  std::string token;        // the holder's random token
  std::int64_t expires_ms = 0;  // Unix ms; 0 once released
  std::string holder;       // the holder's JSON object, as written
};
std::string lease_text(const LeaseState& s);
// nullopt when the text is no lease document (torn, foreign): treated as free.
std::optional<LeaseState> parse_lease(const std::string& text);
// Whether acquire takes the lease document text (nullopt: absent) at once:
// absent, unreadable, expired or released, or its holder gone (see acquire).
bool lease_takeable(const std::optional<std::string>& text, std::int64_t now);

}  // namespace ckpt::s3
