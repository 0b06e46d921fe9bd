// SPDX-License-Identifier: Apache-2.0
// An S3 API client over libcurl: requests signed with AWS Signature V4 (by
// libcurl), retried with backoff when the store or the network fails in a
// way worth retrying, and the store's answers turned into ckpt::Error kinds
// (SPEC §11: not found 3, access denied 6 with the store's code, ...).
// Secrets never appear in a message.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ckpt/error.hpp"
#include "s3/config.hpp"

namespace ckpt::s3 {

struct Response {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // names in lower case
  unsigned attempts = 1;  // how many times the request was sent

  std::string header(const std::string& lower_name) const;
  // The ETag header without its quotes.
  std::string etag() const;
  // The <Code> of an error document ("" when none, as for HEAD).
  std::string error_code() const;
  bool ok() const { return status >= 200 && status < 300; }
};

struct Request {
  std::string method = "GET";
  std::string key;  // empty: the bucket itself
  std::vector<std::pair<std::string, std::string>> query;
  std::vector<std::string> headers;  // "Name: value"
  std::string_view body;             // PUT and POST
  // A GET's body, chunk by chunk, instead of into Response::body (2xx only).
  std::function<void(const char*, std::size_t)> sink;
  // Cleaning up after a failure: sent even once an interrupt was requested.
  bool cleanup = false;
  // Never retried: a request that must not be applied twice (a DELETE of a
  // lease that may be another holder's once the first was applied).
  bool once = false;
  // Seconds without a byte before the transfer is given up (0: the default,
  // 60): a copy inside the store answers only once it is done.
  long stall_seconds = 0;
  // Signed here (s3/sigv4.hpp) instead of by libcurl: UploadPartCopy, whose
  // headers libcurl 7.88 orders wrongly when it signs them.
  bool hand_signed = false;
};

// A fault a test injects in place of the store's answer: status 0 is a
// transfer that timed out, any other status an answer with that status and
// error code.
struct Fault {
  long status = 0;
  std::string code;
};
// Consulted before every attempt of every request (n counts attempts from 1,
// across all requests of the client); an answer replaces the attempt.
using FaultHook = std::function<std::optional<Fault>(const Request&, std::uint64_t n)>;

struct ObjectInfo {
  std::string key;
  std::uint64_t size = 0;
  std::string etag;           // unquoted
  std::string last_modified;  // as the store wrote it (ISO 8601)
};

struct Listing {
  std::vector<ObjectInfo> objects;
  std::vector<std::string> prefixes;  // with a delimiter: the common prefixes
};

struct Upload {
  std::string key;
  std::string upload_id;
  std::string initiated;  // ISO 8601
};

struct Object {
  std::string body;
  std::string etag;
};

struct PutOptions {
  bool if_none_match = false;  // create only: fails if the key exists
  std::string if_match;        // replace only that version (ETag, unquoted; the quoted form is tried too)
  std::string content_type;
  bool cleanup = false;  // Request::cleanup
};
enum class Put { done, precondition_failed };

class Client {
 public:
  Client(Config config, std::string bucket);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const Config& config() const { return m_config; }
  const std::string& bucket() const { return m_bucket; }
  void set_fault_hook(FaultHook hook) { m_hook = std::move(hook); }
  // Tests: the hook every client made afterwards starts with (the clients the
  // repository's operations make for an s3:// root). An empty hook ends it.
  static void set_fault_hook_for_new_clients(FaultHook hook);

  // One request, retried (connection failures, timeouts, 5xx, 429, SlowDown)
  // up to config().max_attempts with exponential backoff; a streamed GET only
  // until its first byte arrived. Returns the store's last answer, whatever
  // its status; throws Error(io) when no answer came, Error(interrupted) on an
  // interrupt request (ckpt/transfer.hpp). Safe from several threads.
  Response perform(const Request& req);

  // The error a non-2xx answer stands for, naming what was attempted:
  // not_found (a missing bucket or key), io (access denied, with the store's
  // code; anything else), conflict (412).
  Error error(const Response& r, const std::string& what) const;

  // ---- objects ----
  // nullopt when the key does not exist.
  std::optional<Object> get(const std::string& key);
  std::optional<ObjectInfo> head(const std::string& key);
  // A ranged GET of [offset, offset+length) into sink.
  void get_range(const std::string& key, std::uint64_t offset, std::uint64_t length,
                 const std::function<void(const char*, std::size_t)>& sink);

  // PUT body with Content-MD5 (the store refuses a corrupted transfer);
  // precondition_failed when a condition does not hold. On success the new
  // ETag is stored in *etag when given.
  Put put(const std::string& key, std::string_view body, const PutOptions& opts = {},
          std::string* etag = nullptr);
  // Deletes a key (a missing key is fine).
  struct RemoveOptions {
    bool cleanup = false;  // Request::cleanup
    bool once = false;     // Request::once
  };
  void remove(const std::string& key, const RemoveOptions& opts);
  void remove(const std::string& key) { remove(key, RemoveOptions{}); }
  // Deletes keys in batches of 1000 (a missing key is fine).
  // cleanup: sent even once an interrupt was requested (Request::cleanup).
  void remove_many(const std::vector<std::string>& keys, bool cleanup = false);
  // Every object whose key starts with prefix (ListObjectsV2, every page);
  // with a delimiter, the keys below the next delimiter are rolled up into
  // Listing::prefixes.
  // page_size: keys per request (at most 1000, the store's maximum).
  Listing list(const std::string& prefix, const std::string& delimiter = "", unsigned page_size = 1000);
  // Does the bucket exist and answer? Throws not_found (no bucket) or io.
  void check_bucket();
  // Creates the bucket (one that exists and is ours is fine).
  void create_bucket();

  // ---- multipart uploads ----
  std::string create_upload(const std::string& key);
  // Uploads one part (1-based number) with Content-MD5; returns its ETag.
  std::string upload_part(const std::string& key, const std::string& upload_id, unsigned number,
                          std::string_view data);
  // Completes with the parts' ETags in order; returns the object's ETag as
  // a HEAD gives it (unquoted).
  std::string complete_upload(const std::string& key, const std::string& upload_id,
                       const std::vector<std::string>& part_etags);
  void abort_upload(const std::string& key, const std::string& upload_id);
  // A server-side copy of a whole object within the bucket (no byte goes
  // through this host; at most 5 GiB, the API's limit), create-only
  // (If-None-Match: *) when asked: the new object's ETag (unquoted, "" when
  // the answer named none), nullopt when create-only found an object there.
  // A 200 that carries an error document is the error it names.
  std::optional<std::string> copy_object(const std::string& from_key, const std::string& to_key,
                                         bool create_only);
  // One part (1-based number) of the multipart upload upload_id of key,
  // copied inside the store from bytes [first, last] of from_key
  // (UploadPartCopy, signed by hand); returns its ETag, unquoted.
  std::string copy_part(const std::string& key, const std::string& upload_id, unsigned number,
                        const std::string& from_key, std::uint64_t first, std::uint64_t last);
  std::vector<Upload> list_uploads(const std::string& prefix);

 private:
  struct Handle;
  std::unique_ptr<Handle> acquire();
  void release(std::unique_ptr<Handle> h);
  // One attempt. No answer (status 0): transport_error says why, retryable
  // whether another attempt may get one.
  Response send_once(Handle& h, const Request& req, bool& delivered, std::string& transport_error,
                     bool& retryable);
  std::string url(const Request& req) const;
  std::string where_key(const std::string& key) const;  // s3://BUCKET/KEY, for messages
  Error no_bucket(const std::string& detail) const;      // not_found, reason no_root

  Config m_config;
  std::string m_bucket;
  std::string m_base;  // bucket URL
  FaultHook m_hook;
  std::mutex m_mutex;
  std::vector<std::unique_ptr<Handle>> m_idle;
  std::uint64_t m_attempts = 0;
};

// AWS URI encoding: unreserved characters as they are, every other byte
// %XX; slash kept when keep_slash (an object key in a path).
std::string uri_encode(std::string_view s, bool keep_slash);
// base64 of the MD5 of data (Content-MD5).
std::string content_md5(std::string_view data);

}  // namespace ckpt::s3
