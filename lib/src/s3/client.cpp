// SPDX-License-Identifier: Apache-2.0
#include "s3/client.hpp"
#include "s3/sigv4.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <random>
#include <thread>

#include "ckpt/transfer.hpp"
#include "s3/curl_api.hpp"
#include "s3/xml.hpp"

namespace ckpt::s3 {

namespace {

constexpr long k_connect_timeout_s = 15;
// A transfer that moves less than 1 byte/s for this long has stalled.
constexpr long k_stall_seconds = 60;
constexpr auto k_first_backoff = std::chrono::milliseconds(100);
constexpr auto k_max_backoff = std::chrono::milliseconds(5000);

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string base64(const unsigned char* data, std::size_t n) {
  std::string out(4 * ((n + 2) / 3), '\0');
  int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(n));
  out.resize(static_cast<std::size_t>(len));
  return out;
}

bool worth_retrying(const Response& r) {
  if (r.status == 500 || r.status == 502 || r.status == 503 || r.status == 504 || r.status == 429) {
    return true;
  }
  std::string code = r.error_code();
  return code == "SlowDown" || code == "RequestTimeout" || code == "InternalError" ||
         code == "ServiceUnavailable";
}

bool transport_worth_retrying(CURLcode c) {
  switch (c) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
      return true;
    default:
      return false;
  }
}

std::chrono::milliseconds backoff(unsigned attempt) {
  // Full jitter: a random wait below an exponentially growing cap.
  auto cap = std::min<std::int64_t>(k_max_backoff.count(), k_first_backoff.count() << std::min(attempt, 10u));
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<std::int64_t> d(cap / 2, cap);
  return std::chrono::milliseconds(d(rng));
}

}  // namespace

// ---- encoding ------------------------------------------------------------

std::string uri_encode(std::string_view s, bool keep_slash) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_' || c == '.' || c == '~';
    if (unreserved || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 0xf];
    }
  }
  return out;
}

std::string content_md5(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_md5(), nullptr) != 1) {
    throw Error(ErrorKind::io, "MD5 failed");
  }
  return base64(md, len);
}

// ---- responses -----------------------------------------------------------

std::string Response::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

std::string Response::etag() const {
  std::string e = header("etag");
  if (e.size() >= 2 && e.front() == '"' && e.back() == '"') e = e.substr(1, e.size() - 2);
  return e;
}

std::string Response::error_code() const { return xml_text(body, "Code").value_or(""); }

// ---- the client ----------------------------------------------------------

struct Client::Handle {
  CURL* curl = nullptr;
  Handle() : curl(curl_api().easy_init()) {
    if (curl == nullptr) throw Error(ErrorKind::io, "cannot start an HTTP client (curl_easy_init)");
  }
  ~Handle() { curl_api().easy_cleanup(curl); }
};

namespace {

std::mutex g_new_hook_mutex;
FaultHook g_new_hook;

}  // namespace

void Client::set_fault_hook_for_new_clients(FaultHook hook) {
  std::lock_guard<std::mutex> lock(g_new_hook_mutex);
  g_new_hook = std::move(hook);
}

Client::Client(Config config, std::string bucket)
    : m_config(std::move(config)), m_bucket(std::move(bucket)) {
  curl_api();  // loads libcurl, or says why it cannot
  m_base = m_config.bucket_url(m_bucket);
  std::lock_guard<std::mutex> lock(g_new_hook_mutex);
  m_hook = g_new_hook;
}

Client::~Client() = default;

std::unique_ptr<Client::Handle> Client::acquire() {
  {
    std::lock_guard<std::mutex> lock(m_mutex);
    if (!m_idle.empty()) {
      auto h = std::move(m_idle.back());
      m_idle.pop_back();
      return h;
    }
  }
  return std::make_unique<Handle>();
}

void Client::release(std::unique_ptr<Handle> h) {
  std::lock_guard<std::mutex> lock(m_mutex);
  m_idle.push_back(std::move(h));
}

std::string Client::url(const Request& req) const {
  std::string u = m_base + "/" + uri_encode(req.key, true);
  if (!req.query.empty()) {
    // SigV4 wants the parameters sorted, each written name=value (even "uploads=").
    auto q = req.query;
    std::sort(q.begin(), q.end());
    char sep = '?';
    for (const auto& [k, v] : q) {
      u += sep;
      u += uri_encode(k, false) + "=" + uri_encode(v, false);
      sep = '&';
    }
  }
  return u;
}

namespace {

struct Transfer {
  const Request* req = nullptr;
  Response* resp = nullptr;
  std::string_view upload;
  std::size_t uploaded = 0;
  bool* delivered = nullptr;
  std::exception_ptr sink_error;  // what the sink threw, rethrown once curl returns
};

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    // A new answer (after 100 Continue or a redirect). Its status is needed
    // before its body arrives: a streamed GET passes on a 2xx body only.
    t->resp->headers.clear();
    std::size_t sp = line.find(' ');
    t->resp->status = sp == std::string_view::npos
                          ? 0
                          : std::strtol(std::string(line.substr(sp + 1, 3)).c_str(), nullptr, 10);
    return size * n;
  }
  std::size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    std::string name = lower(std::string(line.substr(0, colon)));
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
      value.remove_suffix(1);
    }
    t->resp->headers[name] = std::string(value);
  }
  return size * n;
}

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::size_t len = size * n;
  // The status line came first (on_header): only a 2xx body is streamed.
  if (t->req->sink && t->resp->status >= 200 && t->resp->status < 300) {
    try {
      t->req->sink(data, len);
    } catch (...) {
      t->sink_error = std::current_exception();
      return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
    }
    *t->delivered = true;
  } else {
    t->resp->body.append(data, len);
  }
  return len;
}

std::size_t on_read(char* buf, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::size_t len = std::min(size * n, t->upload.size() - t->uploaded);
  std::copy_n(t->upload.data() + t->uploaded, len, buf);
  t->uploaded += len;
  return len;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  return interrupt_requested() && !t->req->cleanup ? 1 : 0;
}

}  // namespace

Response Client::send_once(Handle& h, const Request& req, bool& delivered, std::string& transport_error,
                           bool& retryable) {
  const CurlApi& api = curl_api();
  CURL* c = h.curl;
  api.easy_reset(c);
  Response resp;
  Transfer t;
  t.req = &req;
  t.resp = &resp;
  t.upload = req.body;
  t.delivered = &delivered;
  std::string u = url(req);
  std::string sigv4 = "aws:amz:" + m_config.region + ":s3";
  std::string userpwd = m_config.credentials.access_key + ":" + m_config.credentials.secret_key;

  // Never send the keys unsigned: without Signature V4, USERPWD is Basic authentication.
  if (!req.hand_signed && (api.easy_setopt(c, CURLOPT_AWS_SIGV4, sigv4.c_str()) != CURLE_OK ||
                           api.easy_setopt(c, CURLOPT_USERPWD, userpwd.c_str()) != CURLE_OK)) {
    throw Error(ErrorKind::unsupported,
                "this libcurl cannot sign requests with AWS Signature V4 (7.75 or newer needed)");
  }

  curl_slist* headers = nullptr;
  auto add = [&](const std::string& hdr) { headers = api.slist_append(headers, hdr.c_str()); };
  // The payload is not hashed into the signature: a body carries Content-MD5
  // instead, which the store checks.
  add("x-amz-content-sha256: UNSIGNED-PAYLOAD");
  if (!m_config.credentials.session_token.empty()) {
    add("x-amz-security-token: " + m_config.credentials.session_token);
  }
  // No "Expect:" to turn 100-continue off: libcurl 7.88 signs the empty header
  // it then does not send, and the store refuses the signature.
  for (const auto& hdr : req.headers) add(hdr);
  if (req.hand_signed) {
    // The URL as sent: scheme://authority/path?query (url() sorted and
    // encoded the query as Signature V4 wants it).
    auto authority_at = u.find("://");
    authority_at = authority_at == std::string::npos ? 0 : authority_at + 3;
    auto path_at = std::min(u.find('/', authority_at), u.size());
    auto query_at = std::min(u.find('?', path_at), u.size());
    SigV4Request s;
    s.method = req.method;
    s.path = path_at < query_at ? u.substr(path_at, query_at - path_at) : "/";
    s.query = query_at < u.size() ? u.substr(query_at + 1) : "";
    s.amz_date = amz_date_now();
    s.payload_hash = "UNSIGNED-PAYLOAD";
    s.access_key = m_config.credentials.access_key;
    s.secret_key = m_config.credentials.secret_key;
    s.region = m_config.region;
    const std::string host = "Host: " + u.substr(authority_at, path_at - authority_at);
    s.headers = {host, "x-amz-content-sha256: UNSIGNED-PAYLOAD", "x-amz-date: " + s.amz_date};
    if (!m_config.credentials.session_token.empty()) {
      s.headers.push_back("x-amz-security-token: " + m_config.credentials.session_token);
    }
    s.headers.insert(s.headers.end(), req.headers.begin(), req.headers.end());
    add(host);
    add("x-amz-date: " + s.amz_date);
    add("Authorization: " + sigv4_authorization(s));
  }

  api.easy_setopt(c, CURLOPT_URL, u.c_str());
  api.easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  api.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  api.easy_setopt(c, CURLOPT_CONNECTTIMEOUT, k_connect_timeout_s);
  api.easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  api.easy_setopt(c, CURLOPT_LOW_SPEED_TIME, req.stall_seconds > 0 ? req.stall_seconds : k_stall_seconds);
  api.easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  api.easy_setopt(c, CURLOPT_HEADERDATA, &t);
  api.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  api.easy_setopt(c, CURLOPT_WRITEDATA, &t);
  api.easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  api.easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  api.easy_setopt(c, CURLOPT_XFERINFODATA, &t);
  if (!m_config.ca_bundle.empty()) api.easy_setopt(c, CURLOPT_CAINFO, m_config.ca_bundle.c_str());

  if (req.method == "PUT") {
    api.easy_setopt(c, CURLOPT_UPLOAD, 1L);
    api.easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    api.easy_setopt(c, CURLOPT_READDATA, &t);
    api.easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
  } else if (req.method == "POST") {
    api.easy_setopt(c, CURLOPT_POST, 1L);
    api.easy_setopt(c, CURLOPT_POSTFIELDS, req.body.data());
    api.easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
  } else if (req.method == "HEAD") {
    api.easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (req.method != "GET") {
    api.easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }

  CURLcode rc = api.easy_perform(c);
  api.slist_free_all(headers);
  if (t.sink_error) std::rethrow_exception(t.sink_error);
  if (rc == CURLE_ABORTED_BY_CALLBACK) throw Error(ErrorKind::interrupted, "interrupted");
  if (rc != CURLE_OK) {
    transport_error = api.easy_strerror(rc);
    retryable = transport_worth_retrying(rc);
    resp.status = 0;
  }
  return resp;
}

Response Client::perform(const Request& req) {
  unsigned attempt = 0;
  for (;;) {
    ++attempt;
    if (!req.cleanup) check_interrupt();
    std::uint64_t n;
    {
      std::lock_guard<std::mutex> lock(m_mutex);
      n = ++m_attempts;
    }
    Response resp;
    bool delivered = false;
    std::string transport_error;
    std::optional<Fault> fault = m_hook ? m_hook(req, n) : std::nullopt;
    bool retry_transport = false;
    if (fault) {
      resp.status = fault->status;
      if (fault->status == 0) {
        transport_error = "Timeout was reached (injected)";
        retry_transport = true;
      } else if (!fault->code.empty()) {
        resp.body = "<Error><Code>" + xml_escape(fault->code) + "</Code></Error>";
      }
    } else {
      auto h = acquire();
      resp = send_once(*h, req, delivered, transport_error, retry_transport);
      release(std::move(h));
    }
    resp.attempts = attempt;
    bool retry = resp.status == 0 ? retry_transport : worth_retrying(resp);
    if (!retry || req.once || attempt >= m_config.max_attempts || delivered) {
      if (resp.status == 0) {
        throw Error(ErrorKind::io, "cannot reach the object store at " + m_config.endpoint + " (" +
                                       req.method + " " + req.key + "): " + transport_error +
                                       (attempt > 1 ? ", after " + std::to_string(attempt) + " attempts" : ""));
      }
      return resp;
    }
    std::this_thread::sleep_for(backoff(attempt));
  }
}

Error Client::error(const Response& r, const std::string& what) const {
  std::string code = r.error_code();
  std::string detail = code.empty() ? "HTTP " + std::to_string(r.status) : code + ", HTTP " + std::to_string(r.status);
  if (code == "NoSuchBucket") return no_bucket(detail);
  if (r.status == 404) return Error(ErrorKind::not_found, what + ": not found (" + detail + ")");
  if (r.status == 403 || code == "AccessDenied" || code == "InvalidAccessKeyId" ||
      code == "SignatureDoesNotMatch") {
    return Error(ErrorKind::io, what + ": access denied by the object store (" + detail + ")");
  }
  if (r.status == 412) return Error(ErrorKind::conflict, what + ": precondition failed (" + detail + ")");
  std::string extra;
  if (r.attempts > 1) extra = ", after " + std::to_string(r.attempts) + " attempts";
  return Error(ErrorKind::io, what + ": the object store answered " + detail + extra);
}

// ---- objects ---------------------------------------------------------------

std::optional<Object> Client::get(const std::string& key) {
  Request req;
  req.key = key;
  Response r = perform(req);
  if (r.status == 404 && r.error_code() != "NoSuchBucket") return std::nullopt;
  if (!r.ok()) throw error(r, "GET " + where_key(key));
  return Object{std::move(r.body), r.etag()};
}

std::optional<ObjectInfo> Client::head(const std::string& key) {
  Request req;
  req.method = "HEAD";
  req.key = key;
  Response r = perform(req);
  if (r.status == 404) return std::nullopt;
  if (!r.ok()) throw error(r, "HEAD " + where_key(key));
  ObjectInfo info;
  info.key = key;
  info.size = std::strtoull(r.header("content-length").c_str(), nullptr, 10);
  info.etag = r.etag();
  info.last_modified = r.header("last-modified");
  return info;
}

void Client::get_range(const std::string& key, std::uint64_t offset, std::uint64_t length,
                       const std::function<void(const char*, std::size_t)>& sink) {
  if (length == 0) return;
  Request req;
  req.key = key;
  req.headers.push_back("Range: bytes=" + std::to_string(offset) + "-" + std::to_string(offset + length - 1));
  std::uint64_t got = 0;
  req.sink = [&](const char* data, std::size_t n) {
    got += n;
    sink(data, n);
  };
  Response r = perform(req);
  if (!r.ok()) throw error(r, "GET " + where_key(key));
  if (got != length) {
    throw Error(ErrorKind::io, "GET " + where_key(key) + ": " + std::to_string(got) + " bytes of " +
                                   std::to_string(length) + " arrived");
  }
}

Put Client::put(const std::string& key, std::string_view body, const PutOptions& opts,
                        std::string* etag) {
  Request req;
  req.method = "PUT";
  req.key = key;
  req.body = body;
  req.headers.push_back("Content-MD5: " + content_md5(body));
  req.headers.push_back("Content-Type: " +
                        (opts.content_type.empty() ? std::string("application/octet-stream") : opts.content_type));
  if (opts.if_none_match) req.headers.push_back("If-None-Match: *");
  if (!opts.if_match.empty()) req.headers.push_back("If-Match: " + opts.if_match);
  req.cleanup = opts.cleanup;
  Response r = perform(req);
  if (r.status == 412 && !opts.if_match.empty() && opts.if_match.front() != '"') {
    // The standard form is quoted; some stores (radosgw 16) match only the
    // bare ETag, which is sent first. A refused condition wrote nothing, so
    // the quoted form is tried next.
    req.headers.back() = "If-Match: \"" + opts.if_match + "\"";
    r = perform(req);
  }
  // The condition did not hold, in the other words the S3 API has for it:
  // If-Match on a key deleted meanwhile (404 NoSuchKey), or a conditional
  // PUT racing another write or a DELETE of the key (409
  // ConditionalRequestConflict). Nothing was written.
  bool conditional = opts.if_none_match || !opts.if_match.empty();
  if (conditional && ((r.status == 404 && !opts.if_match.empty() && r.error_code() == "NoSuchKey") ||
                      (r.status == 409 && r.error_code() == "ConditionalRequestConflict"))) {
    return Put::precondition_failed;
  }
  // A PUT without a condition has none to fail: a 412 there is an error.
  if (r.status == 412) {
    if (opts.if_none_match || !opts.if_match.empty()) return Put::precondition_failed;
    throw Error(ErrorKind::io, "PUT " + where_key(key) +
                                   ": the object store answered 412 to a write without a condition");
  }
  if (!r.ok()) throw error(r, "PUT " + where_key(key));
  if (etag != nullptr) *etag = r.etag();
  return Put::done;
}

void Client::remove(const std::string& key, const RemoveOptions& opts) {
  Request req;
  req.method = "DELETE";
  req.key = key;
  req.cleanup = opts.cleanup;
  req.once = opts.once;
  Response r = perform(req);
  if (!r.ok() && !(r.status == 404 && r.error_code() != "NoSuchBucket")) {
    throw error(r, "DELETE " + where_key(key));
  }
}

void Client::remove_many(const std::vector<std::string>& keys, bool cleanup) {
  for (std::size_t start = 0; start < keys.size(); start += 1000) {
    std::size_t end = std::min(keys.size(), start + 1000);
    std::string doc = "<Delete><Quiet>true</Quiet>";
    for (std::size_t i = start; i < end; ++i) doc += "<Object><Key>" + xml_escape(keys[i]) + "</Key></Object>";
    doc += "</Delete>";
    Request req;
    req.method = "POST";
    req.query = {{"delete", ""}};
    req.body = doc;
    req.headers.push_back("Content-MD5: " + content_md5(doc));
    req.headers.push_back("Content-Type: application/xml");
    req.cleanup = cleanup;
    Response r = perform(req);
    if (!r.ok()) throw error(r, "DELETE (batch) in " + where_key(keys[start]));
    for (auto e : xml_elements(r.body, "Error")) {
      std::string code = xml_text(e, "Code").value_or("");
      if (code == "NoSuchKey") continue;
      throw Error(ErrorKind::io, "DELETE " + where_key(xml_text(e, "Key").value_or("?")) +
                                     ": the object store answered " + code);
    }
  }
}

Listing Client::list(const std::string& prefix, const std::string& delimiter, unsigned page_size) {
  Listing out;
  std::string token;
  for (;;) {
    Request req;
    req.query = {{"list-type", "2"}, {"prefix", prefix}, {"max-keys", std::to_string(page_size)}};
    if (!delimiter.empty()) req.query.emplace_back("delimiter", delimiter);
    if (!token.empty()) req.query.emplace_back("continuation-token", token);
    Response r = perform(req);
    if (!r.ok()) throw error(r, "LIST " + where_key(prefix));
    for (auto c : xml_elements(r.body, "Contents")) {
      ObjectInfo o;
      o.key = xml_text(c, "Key").value_or("");
      o.size = std::strtoull(xml_text(c, "Size").value_or("0").c_str(), nullptr, 10);
      o.etag = xml_text(c, "ETag").value_or("");
      if (o.etag.size() >= 2 && o.etag.front() == '"' && o.etag.back() == '"') {
        o.etag = o.etag.substr(1, o.etag.size() - 2);
      }
      o.last_modified = xml_text(c, "LastModified").value_or("");
      out.objects.push_back(std::move(o));
    }
    for (auto p : xml_elements(r.body, "CommonPrefixes")) {
      out.prefixes.push_back(xml_text(p, "Prefix").value_or(""));
    }
    if (xml_text(r.body, "IsTruncated").value_or("false") != "true") break;
    token = xml_text(r.body, "NextContinuationToken").value_or("");
    if (token.empty()) {
      throw Error(ErrorKind::io, "LIST " + where_key(prefix) + ": a truncated page without a continuation token");
    }
  }
  return out;
}

void Client::check_bucket() {
  Request req;
  req.method = "HEAD";
  Response r = perform(req);
  if (r.status == 404) throw no_bucket("HTTP 404");  // a HEAD answer has no error code
  if (!r.ok()) throw error(r, "HEAD s3://" + m_bucket);
}

void Client::create_bucket() {
  Request req;
  req.method = "PUT";
  Response r = perform(req);
  if (r.ok() || r.error_code() == "BucketAlreadyOwnedByYou") return;
  throw error(r, "create bucket s3://" + m_bucket);
}

// ---- multipart uploads -------------------------------------------------------

std::string Client::create_upload(const std::string& key) {
  Request req;
  req.method = "POST";
  req.key = key;
  req.query = {{"uploads", ""}};
  req.headers.push_back("Content-Type: application/octet-stream");
  Response r = perform(req);
  if (!r.ok()) throw error(r, "CreateMultipartUpload " + where_key(key));
  auto id = xml_text(r.body, "UploadId");
  if (!id || id->empty()) throw Error(ErrorKind::io, "CreateMultipartUpload " + where_key(key) + ": no UploadId");
  return *id;
}

std::string Client::upload_part(const std::string& key, const std::string& upload_id, unsigned number,
                                std::string_view data) {
  Request req;
  req.method = "PUT";
  req.key = key;
  req.query = {{"partNumber", std::to_string(number)}, {"uploadId", upload_id}};
  req.body = data;
  req.headers.push_back("Content-MD5: " + content_md5(data));
  Response r = perform(req);
  if (!r.ok()) throw error(r, "UploadPart " + std::to_string(number) + " of " + where_key(key));
  return r.etag();
}

std::string Client::complete_upload(const std::string& key, const std::string& upload_id,
                             const std::vector<std::string>& part_etags) {
  std::string doc = "<CompleteMultipartUpload>";
  for (std::size_t i = 0; i < part_etags.size(); ++i) {
    doc += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>\"" + xml_escape(part_etags[i]) +
           "\"</ETag></Part>";
  }
  doc += "</CompleteMultipartUpload>";
  Request req;
  req.method = "POST";
  req.key = key;
  req.query = {{"uploadId", upload_id}};
  req.body = doc;
  req.headers.push_back("Content-Type: application/xml");
  Response r = perform(req);
  // A 200 can still carry an error document (the store failed while completing).
  if (!r.ok() || !xml_elements(r.body, "Error").empty()) {
    if (r.ok()) r.status = 500;
    throw error(r, "CompleteMultipartUpload " + where_key(key));
  }
  std::string etag = xml_text(r.body, "ETag").value_or("");
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') {
    etag = etag.substr(1, etag.size() - 2);
  }
  if (etag.empty()) {
    if (auto info = head(key)) etag = info->etag;
  }
  return etag;
}

namespace {

// The ETag of a copy's result document, unquoted ("" when it has none).
std::string copied_etag(const std::string& body) {
  std::string etag = xml_text(body, "ETag").value_or("");
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') {
    etag = etag.substr(1, etag.size() - 2);
  }
  return etag;
}

}  // namespace

std::optional<std::string> Client::copy_object(const std::string& from_key,
                                               const std::string& to_key, bool create_only) {
  Request req;
  req.method = "PUT";
  req.key = to_key;
  req.headers.push_back("x-amz-copy-source: /" + uri_encode(m_bucket, false) + "/" +
                        uri_encode(from_key, true));
  if (create_only) req.headers.push_back("If-None-Match: *");
  req.stall_seconds = 900;  // a store may answer a 5 GiB copy only once it is done
  Response r = perform(req);
  if (create_only && r.status == 412) return std::nullopt;
  // A copy answers 200 before it is done, and reports a failure in the body.
  if (!r.ok() || !xml_elements(r.body, "Error").empty()) {
    if (r.ok()) r.status = 500;
    throw error(r, "CopyObject " + where_key(from_key) + " to " + where_key(to_key));
  }
  return copied_etag(r.body);
}

std::string Client::copy_part(const std::string& key, const std::string& upload_id, unsigned number,
                              const std::string& from_key, std::uint64_t first, std::uint64_t last) {
  Request req;
  req.method = "PUT";
  req.key = key;
  req.query = {{"partNumber", std::to_string(number)}, {"uploadId", upload_id}};
  req.headers.push_back("x-amz-copy-source: /" + uri_encode(m_bucket, false) + "/" +
                        uri_encode(from_key, true));
  req.headers.push_back("x-amz-copy-source-range: bytes=" + std::to_string(first) + "-" +
                        std::to_string(last));
  req.hand_signed = true;
  req.stall_seconds = 900;  // a store may answer only once the part is copied
  Response r = perform(req);
  if (!r.ok() || !xml_elements(r.body, "Error").empty()) {
    if (r.ok()) r.status = 500;
    throw error(r, "UploadPartCopy " + where_key(from_key) + " to " + where_key(key) + " part " +
                       std::to_string(number));
  }
  std::string etag = copied_etag(r.body);
  if (etag.empty()) {
    throw Error(ErrorKind::io, "UploadPartCopy " + where_key(key) + " part " + std::to_string(number) +
                                   ": the answer names no ETag");
  }
  return etag;
}

void Client::abort_upload(const std::string& key, const std::string& upload_id) {
  Request req;
  req.method = "DELETE";
  req.key = key;
  req.query = {{"uploadId", upload_id}};
  req.cleanup = true;
  Response r = perform(req);
  if (!r.ok() && r.status != 404) throw error(r, "AbortMultipartUpload " + where_key(key));
}

std::vector<Upload> Client::list_uploads(const std::string& prefix) {
  std::vector<Upload> out;
  std::string key_marker, id_marker;
  for (;;) {
    Request req;
    req.query = {{"uploads", ""}, {"prefix", prefix}};
    if (!key_marker.empty()) req.query.emplace_back("key-marker", key_marker);
    if (!id_marker.empty()) req.query.emplace_back("upload-id-marker", id_marker);
    Response r = perform(req);
    if (!r.ok()) throw error(r, "ListMultipartUploads " + where_key(prefix));
    for (auto u : xml_elements(r.body, "Upload")) {
      out.push_back({xml_text(u, "Key").value_or(""), xml_text(u, "UploadId").value_or(""),
                     xml_text(u, "Initiated").value_or("")});
    }
    if (xml_text(r.body, "IsTruncated").value_or("false") != "true") break;
    key_marker = xml_text(r.body, "NextKeyMarker").value_or("");
    id_marker = xml_text(r.body, "NextUploadIdMarker").value_or("");
    if (key_marker.empty() && id_marker.empty()) break;
  }
  return out;
}

Error Client::no_bucket(const std::string& detail) const {
  return Error(ErrorKind::not_found, "no such bucket: s3://" + m_bucket + " (" + detail + ")")
      .with_reason(k_reason_no_root);
}

std::string Client::where_key(const std::string& key) const { return "s3://" + m_bucket + "/" + key; }

}  // namespace ckpt::s3
