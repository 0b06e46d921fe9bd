// SPDX-License-Identifier: Apache-2.0
// The lease that makes commands exclusive on an object-store root, against the
// real store: held and refused, released, renewed past its duration, taken
// over once a crashed holder's lease expires, lost when taken over, and never
// held twice by writers that race for it.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/clock.hpp"
#include "internal.hpp"
#include "s3/lease.hpp"
#include "s3_support.hpp"

using namespace ckpt;
using namespace ckpt::s3;
using namespace ckpt_test;
using namespace std::chrono_literals;

namespace {

LeaseOptions options(std::chrono::milliseconds duration, double timeout, const std::string& pid) {
  LeaseOptions o;
  o.duration = duration;
  o.timeout_seconds = timeout;
  o.what = "root s3://test";
  o.holder = R"({"pid": )" + pid + R"(, "host": "node-)" + pid + R"(", "command": "ckpt prune"})";
  return o;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

TEST_CASE("lease: held, refused with the holder named, released, taken again") {
  Client c(store_config(), fresh_bucket("lease"));
  auto a = Lease::acquire(c, "p/.ckpt/lease", options(30s, 0, "101"));
  a->check();
  Error e = thrown([&] { Lease::acquire(c, "p/.ckpt/lease", options(30s, 0.3, "102")); });
  CHECK(e.kind() == ErrorKind::locked);
  CHECK(std::string(e.what()).find("locked by pid 101 on host node-101 (ckpt prune)") != std::string::npos);
  a->release();
  auto st = parse_lease(c.get("p/.ckpt/lease")->body);
  REQUIRE(st);
  CHECK(st->expires_ms == 0);  // marked free, not deleted
  auto t = std::chrono::steady_clock::now();
  auto b = Lease::acquire(c, "p/.ckpt/lease", options(30s, 5, "102"));
  CHECK(seconds_since(t) < 2);
  b->check();
}

TEST_CASE("lease: renewed while held, beyond its duration") {
  Client c(store_config(), fresh_bucket("renew"));
  auto a = Lease::acquire(c, "lease", options(900ms, 0, "201"));
  std::this_thread::sleep_for(2500ms);
  a->check();
  CHECK_FALSE(a->lost());
  CHECK(thrown([&] { Lease::acquire(c, "lease", options(900ms, 0, "202")); }).kind() == ErrorKind::locked);
}

TEST_CASE("lease: a crashed holder's lease is taken over once it expires") {
  Client c(store_config(), fresh_bucket("crash"));
  // What a holder killed with -9 leaves: a live lease that nobody renews.
  REQUIRE(c.put("lease", lease_text({"dead-holder", now_ms() + 1500, R"({"pid": 301, "host": "gone"})"})) ==
          Put::done);
  CHECK(thrown([&] { Lease::acquire(c, "lease", options(30s, 0.2, "302")); }).kind() == ErrorKind::locked);
  auto t = std::chrono::steady_clock::now();
  auto b = Lease::acquire(c, "lease", options(30s, 10, "302"));
  double waited = seconds_since(t);
  CHECK(waited > 0.8);
  CHECK(waited < 5);
  b->check();
  // A torn or foreign lease object counts as free.
  b.reset();
  REQUIRE(c.put("lease2", "not a lease") == Put::done);
  Lease::acquire(c, "lease2", options(30s, 0, "303"))->check();
}

TEST_CASE("lease: a holder that died on this host is taken over at once, a live one is waited for") {
  Client c(store_config(), fresh_bucket("gone"));
  // A process of this host that has exited (and been reaped): its pid names nobody.
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) ::_exit(0);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  // A holder as this process describes itself (host, boot, PID namespace), with another pid
  // or one field changed.
  auto holder = [&](long long pid, const char* field = nullptr, const char* value = nullptr) {
    auto j = nlohmann::json::parse(detail::lock_holder_text());
    j["pid"] = pid;
    if (field) j[field] = value;
    return j.dump();
  };
  REQUIRE(c.put("dead", lease_text({"dead-holder", now_ms() + 60000, holder(child)})) == Put::done);
  auto t = std::chrono::steady_clock::now();
  Lease::acquire(c, "dead", options(30s, 0, "501"))->check();
  CHECK(seconds_since(t) < 5);
  // This process is alive: its lease, unexpired, is waited for and refused.
  REQUIRE(c.put("live", lease_text({"live-holder", now_ms() + 60000, holder(::getpid())})) == Put::done);
  CHECK(thrown([&] { Lease::acquire(c, "live", options(30s, 0.3, "502")); }).kind() == ErrorKind::locked);
  // The same pid elsewhere is not this process's neighbour: another host, another boot, or
  // another PID namespace (a container with the host's name), each waited for.
  for (const char* field : {"host", "boot_id", "pid_ns"}) {
    CAPTURE(field);
    std::string key = std::string("other-") + field;
    REQUIRE(c.put(key, lease_text({"other", now_ms() + 60000, holder(child, field, "elsewhere")})) ==
            Put::done);
    CHECK(thrown([&] { Lease::acquire(c, key, options(30s, 0.3, "503")); }).kind() == ErrorKind::locked);
  }
}

TEST_CASE("lease: a holder whose lease was taken over knows it has lost it") {
  Client c(store_config(), fresh_bucket("lost"));
  auto a = Lease::acquire(c, "lease", options(900ms, 0, "401"));
  // Someone breaks it behind the holder's back.
  REQUIRE(c.put("lease", lease_text({"intruder", now_ms() + 60000, R"({"pid": 402, "host": "x"})"})) ==
          Put::done);
  std::this_thread::sleep_for(1200ms);
  CHECK(a->lost());
  Error e = thrown([&] { a->check(); });
  CHECK(e.kind() == ErrorKind::locked);
  CHECK(std::string(e.what()).find("lost the lock") != std::string::npos);
  a.reset();  // releasing a lost lease leaves the other holder's alone
  CHECK(parse_lease(c.get("lease")->body)->token == "intruder");
}

TEST_CASE("lease: racing takers never hold it together") {
  Client c(store_config(), fresh_bucket("race"));
  std::atomic<int> inside{0}, most{0}, done{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 8; ++i) {
    ts.emplace_back([&, i] {
      Client own(store_config(), c.bucket());
      auto l = Lease::acquire(own, "lease", options(10s, 60, std::to_string(500 + i)));
      int now = ++inside;
      int prev = most.load();
      while (now > prev && !most.compare_exchange_weak(prev, now)) {
      }
      std::this_thread::sleep_for(100ms);
      l->check();
      --inside;
      l->release();
      ++done;
    });
  }
  for (auto& t : ts) t.join();
  CHECK(done == 8);
  CHECK(most == 1);
}
