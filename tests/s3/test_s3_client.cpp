// SPDX-License-Identifier: Apache-2.0
// The S3 client against a real S3 server (Ceph's radosgw started by the
// s3.store fixture; AWS_* variables say where): signing, conditional PUTs and
// their races, listing, batch delete, multipart uploads, ranged reads, error
// mapping, retries and injected faults.
#include <doctest/doctest.h>

#include <atomic>
#include <random>
#include <thread>

#include "ckpt/error.hpp"
#include "s3/client.hpp"
#include "s3_support.hpp"

using namespace ckpt;
using namespace ckpt::s3;
using namespace ckpt_test;


TEST_CASE("put, get, head and delete, with keys that need encoding") {
  Client c(store_config(), fresh_bucket("basic"));
  for (std::string key : {"plain/object.bin", "with space/and+plus~tilde", "unicod\xc3\xa9/\xe2\x9c\x93.pt",
                          "a&b<c>/'q'\"", "deep/a/b/c/d/e/f"}) {
    CAPTURE(key);
    std::string body = bytes(1000 + key.size(), static_cast<unsigned>(key.size()));
    std::string etag;
    REQUIRE(c.put(key, body, {}, &etag) == Put::done);
    CHECK(etag.size() == 32);  // a single PUT's ETag is the body's MD5
    auto got = c.get(key);
    REQUIRE(got);
    CHECK(got->body == body);
    CHECK(got->etag == etag);
    auto info = c.head(key);
    REQUIRE(info);
    CHECK(info->size == body.size());
    CHECK(info->etag == etag);
    c.remove(key);
    CHECK_FALSE(c.get(key));
    CHECK_FALSE(c.head(key));
    c.remove(key);  // already gone: fine
  }
  CHECK(c.put("empty", "") == Put::done);
  CHECK(c.get("empty")->body.empty());
}

TEST_CASE("create-only PUT: one writer wins, even racing") {
  Client c(store_config(), fresh_bucket("create"));
  PutOptions once;
  once.if_none_match = true;
  CHECK(c.put("commit", "first", once) == Put::done);
  CHECK(c.put("commit", "second", once) == Put::precondition_failed);
  CHECK(c.get("commit")->body == "first");

  constexpr int k_writers = 16;
  std::atomic<int> won{0}, lost{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < k_writers; ++i) {
    ts.emplace_back([&, i] {
      Client own(store_config(), c.bucket());
      auto r = own.put("race", "writer " + std::to_string(i), once);
      (r == Put::done ? won : lost)++;
    });
  }
  for (auto& t : ts) t.join();
  CHECK(won == 1);
  CHECK(lost == k_writers - 1);
}

TEST_CASE("compare-and-swap PUT with If-Match") {
  Client c(store_config(), fresh_bucket("cas"));
  std::string v1, v2;
  REQUIRE(c.put("marker", "one", {}, &v1) == Put::done);
  PutOptions swap;
  swap.if_match = v1;
  REQUIRE(c.put("marker", "two", swap, &v2) == Put::done);
  CHECK(v2 != v1);
  // v1 is stale now: the swap fails and the object keeps "two".
  CHECK(c.put("marker", "three", swap) == Put::precondition_failed);
  CHECK(c.get("marker")->body == "two");
  PutOptions absent;
  absent.if_match = v1;
  CHECK(c.put("no-such-marker", "x", absent) != Put::done);
}

TEST_CASE("a corrupted transfer is refused by the store (Content-MD5)") {
  Client c(store_config(), fresh_bucket("md5"));
  Request req;
  req.method = "PUT";
  req.key = "object";
  req.body = "the body";
  req.headers.push_back("Content-MD5: " + content_md5("another body"));
  Response r = c.perform(req);
  CHECK(r.status == 400);
  CHECK(r.error_code() == "BadDigest");
  CHECK_FALSE(c.get("object"));
}

TEST_CASE("listing: pages, prefixes, delimiter, and batch delete") {
  Client c(store_config(), fresh_bucket("list"));
  std::vector<std::string> keys;
  for (int i = 0; i < 23; ++i) keys.push_back("p/step-" + std::to_string(100 + i) + "/f");
  keys.push_back("p/last");
  keys.push_back("other/x");
  for (const auto& k : keys) REQUIRE(c.put(k, k) == Put::done);

  auto all = c.list("p/", "", 5);  // 5 per page: 5 pages and continuation tokens
  CHECK(all.objects.size() == 24);
  CHECK(all.objects.front().key == "p/last");
  CHECK(all.objects[1].key == "p/step-100/f");
  CHECK(all.objects[1].size == std::string("p/step-100/f").size());
  CHECK(all.objects[1].etag.size() == 32);

  auto top = c.list("p/", "/", 4);
  CHECK(top.objects.size() == 1);    // p/last
  CHECK(top.prefixes.size() == 23);  // p/step-NNN/
  CHECK(top.prefixes.front() == "p/step-100/");

  std::vector<std::string> doomed(keys.begin(), keys.begin() + 20);
  doomed.push_back("p/never-existed");
  c.remove_many(doomed);
  CHECK(c.list("p/").objects.size() == 4);
  CHECK(c.list("other/").objects.size() == 1);
}

TEST_CASE("multipart upload, ranged reads, listing and aborting uploads") {
  Client c(store_config(), fresh_bucket("multi"));
  constexpr std::size_t k_part = 5 << 20;  // the store's minimum for all but the last part
  std::string p1 = bytes(k_part, 1), p2 = bytes(k_part, 2), p3 = bytes(12345, 3);
  std::string id = c.create_upload("big.bin");
  // Parts may go in any order (here the last first).
  std::string e3 = c.upload_part("big.bin", id, 3, p3);
  std::string e1 = c.upload_part("big.bin", id, 1, p1);
  std::string e2 = c.upload_part("big.bin", id, 2, p2);
  auto uploads = c.list_uploads("big");
  REQUIRE(uploads.size() == 1);
  CHECK(uploads[0].upload_id == id);
  CHECK_FALSE(c.head("big.bin"));  // invisible until completed
  c.complete_upload("big.bin", id, {e1, e2, e3});
  CHECK(c.list_uploads("big").empty());
  auto info = c.head("big.bin");
  REQUIRE(info);
  CHECK(info->size == 2 * k_part + p3.size());

  std::string whole = p1 + p2 + p3;
  for (auto [off, len] : std::vector<std::pair<std::uint64_t, std::uint64_t>>{
           {0, 10}, {k_part - 3, 7}, {2 * k_part, p3.size()}, {123, 3 * 1000 * 1000}}) {
    std::string got;
    c.get_range("big.bin", off, len, [&](const char* d, std::size_t n) { got.append(d, n); });
    CHECK(got == whole.substr(off, len));
  }
  // A range past the end is an error, not a short read passed off as whole.
  CHECK(thrown([&] { c.get_range("big.bin", whole.size() - 2, 5, [](const char*, std::size_t) {}); })
            .kind() == ErrorKind::io);

  std::string gone = c.create_upload("abandoned.bin");
  c.upload_part("abandoned.bin", gone, 1, "partial");
  CHECK(c.list_uploads("").size() == 1);
  c.abort_upload("abandoned.bin", gone);
  CHECK(c.list_uploads("").empty());
  CHECK_FALSE(c.head("abandoned.bin"));
}

TEST_CASE("errors: missing bucket 3, wrong credentials 6 without the secret") {
  auto cfg = store_config();
  Client missing(cfg, "ckpt-no-such-bucket-here");
  Error e = thrown([&] { missing.check_bucket(); });
  CHECK(e.kind() == ErrorKind::not_found);
  CHECK(e.reason() == k_reason_no_root);
  CHECK(thrown([&] { missing.list(""); }).kind() == ErrorKind::not_found);
  CHECK(thrown([&] { missing.get("k"); }).kind() == ErrorKind::not_found);

  std::string bucket = fresh_bucket("creds");
  auto wrong = cfg;
  wrong.credentials.secret_key = "wrong-secret-do-not-print-0123456789";
  Client bad(wrong, bucket);
  for (auto& f : std::vector<std::function<void()>>{[&] { bad.get("k"); }, [&] { bad.put("k", "v"); },
                                                    [&] { bad.list(""); }, [&] { bad.check_bucket(); }}) {
    Error err = thrown(f);
    CAPTURE(err.what());
    CHECK(err.kind() == ErrorKind::io);
    CHECK(std::string(err.what()).find("wrong-secret") == std::string::npos);
    CHECK(std::string(err.what()).find(cfg.credentials.secret_key) == std::string::npos);
  }
  CHECK(std::string(thrown([&] { bad.get("k"); }).what()).find("SignatureDoesNotMatch") != std::string::npos);
  auto unknown = cfg;
  unknown.credentials.access_key = "NOSUCHACCESSKEY00000";
  Client nobody(unknown, bucket);
  Error denied = thrown([&] { nobody.put("k", "v"); });
  CHECK(denied.kind() == ErrorKind::io);
  CHECK(std::string(denied.what()).find("InvalidAccessKeyId") != std::string::npos);
  CHECK(std::string(denied.what()).find("access denied") != std::string::npos);
}

TEST_CASE("no server: connection refused is an io error after the retries") {
  auto cfg = store_config();
  cfg.endpoint = "http://127.0.0.1:9";  // discard: nothing listens
  cfg.max_attempts = 2;
  Client c(cfg, "any-bucket");
  Error e = thrown([&] { c.get("k"); });
  CHECK(e.kind() == ErrorKind::io);
  CHECK(std::string(e.what()).find("cannot reach the object store at http://127.0.0.1:9") != std::string::npos);
  CHECK(std::string(e.what()).find("after 2 attempts") != std::string::npos);
}

TEST_CASE("injected faults: retried 503 and timeouts, lasting 5xx, a 412") {
  Client c(store_config(), fresh_bucket("faults"));
  REQUIRE(c.put("k", "value") == Put::done);

  // The first attempt of the next request answers 503 SlowDown, the second goes through.
  std::uint64_t start = 0;
  c.set_fault_hook([&](const Request&, std::uint64_t n) -> std::optional<Fault> {
    if (start == 0) start = n;
    if (n == start) return Fault{503, "SlowDown"};
    return std::nullopt;
  });
  auto got = c.get("k");
  REQUIRE(got);
  CHECK(got->body == "value");

  // A timeout, then success.
  start = 0;
  c.set_fault_hook([&](const Request&, std::uint64_t n) -> std::optional<Fault> {
    if (start == 0) start = n;
    if (n == start) return Fault{0, ""};
    return std::nullopt;
  });
  CHECK(c.put("k2", "v2") == Put::done);

  // Every attempt fails: io after max_attempts, naming the store's answer.
  unsigned calls = 0;
  c.set_fault_hook([&](const Request&, std::uint64_t) -> std::optional<Fault> {
    ++calls;
    return Fault{500, "InternalError"};
  });
  Error e = thrown([&] { c.get("k"); });
  CHECK(e.kind() == ErrorKind::io);
  CHECK(calls == c.config().max_attempts);
  CHECK(std::string(e.what()).find("InternalError") != std::string::npos);

  // A 403 is not retried.
  calls = 0;
  c.set_fault_hook([&](const Request&, std::uint64_t) -> std::optional<Fault> {
    ++calls;
    return Fault{403, "AccessDenied"};
  });
  CHECK(thrown([&] { c.get("k"); }).kind() == ErrorKind::io);
  CHECK(calls == 1);

  // A 412 on a create-only PUT is a lost race, not an error.
  c.set_fault_hook([](const Request& r, std::uint64_t) -> std::optional<Fault> {
    if (r.method == "PUT") return Fault{412, "PreconditionFailed"};
    return std::nullopt;
  });
  PutOptions once;
  once.if_none_match = true;
  CHECK(c.put("fresh", "x", once) == Put::precondition_failed);
  c.set_fault_hook({});
  CHECK_FALSE(c.get("fresh"));
}
