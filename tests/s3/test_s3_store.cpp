// SPDX-License-Identifier: Apache-2.0
// The repository's reading operations on an s3:// root through the library,
// with faults injected into the store's answers: retried faults are
// invisible, a store that keeps failing is Error(io) (exit 6), never a
// damaged checkpoint, and a failed load puts nothing at --to.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "ckpt/format.hpp"
#include "ckpt/fs.hpp"
#include "ckpt/repository.hpp"
#include "ckpt/retention.hpp"
#include "s3/client.hpp"
#include "s3/transfer.hpp"
#include "s3_support.hpp"
#include "test_support.hpp"
#include "upload_tree.hpp"

using namespace ckpt;
using namespace ckpt_test;

namespace {

// The operations read the store from the process environment, as the
// command does: the fixture's variables are exported for the test.
void export_store_env(const char* max_attempts) {
  REQUIRE_MESSAGE(std::getenv("CKPT_S3_ENV_FILE"),
                  "run through CTest (the s3_store fixture sets CKPT_S3_ENV_FILE)");
  for (const auto& [name, value] : store_vars()) ::setenv(name.c_str(), value.c_str(), 1);
  ::setenv("AWS_MAX_ATTEMPTS", max_attempts, 1);
}

// Two checkpoints saved in a directory, copied into a new bucket; the s3:// root.
std::string seeded_root(const TempDir& tmp, const char* max_attempts) {
  export_store_env(max_attempts);
  std::string local = tmp.sub("root");
  for (std::uint64_t step : {1, 2}) {
    write_text(tmp.sub("model.bin"), bytes(std::size_t{3} << 20, static_cast<unsigned>(step)));
    write_text(tmp.sub("opt.pt"), "optimizer " + std::to_string(step));
    SaveOptions o;
    o.root = local;
    o.step = step;
    o.sources = {Source{tmp.sub("model.bin"), {}, false}, Source{tmp.sub("opt.pt"), {}, false}};
    o.weights = {"model.bin"};
    REQUIRE(save(Context{}, o));
  }
  std::string bucket = fresh_bucket("store");
  s3::Client c(store_config(), bucket);
  PosixFileSystem fs;
  upload_tree(c, fs, local, "run");
  return "s3://" + bucket + "/run";
}

// Resets the hook whatever the test does.
struct HookGuard {
  ~HookGuard() { s3::Client::set_fault_hook_for_new_clients({}); }
};

}  // namespace

TEST_CASE("object-store root: retried faults are invisible to info, verify and load") {
  TempDir tmp;
  // Requests run side by side and count attempts together: a request may
  // meet a fault on more than one of its tries, and has ten.
  std::string root = seeded_root(tmp, "10");
  HookGuard guard;
  std::atomic<int> injected{0};
  // Every third attempt of every request fails: 503 SlowDown, a timeout, 500.
  s3::Client::set_fault_hook_for_new_clients(
      [&](const s3::Request&, std::uint64_t n) -> std::optional<s3::Fault> {
        if (n % 3 != 0) return std::nullopt;
        ++injected;
        switch ((n / 3) % 3) {
          case 0: return s3::Fault{503, "SlowDown"};
          case 1: return s3::Fault{0, ""};
          default: return s3::Fault{500, "InternalError"};
        }
      });
  auto l = list_checkpoints(Context{}, root);
  REQUIRE_MESSAGE(l, (l ? "" : l.error().what()));
  CHECK(l->checkpoints.size() == 2);
  CHECK(l->last == std::optional<std::string>("step-000000002"));
  VerifyOptions v;
  v.root = root;
  auto r = verify(Context{}, v);
  REQUIRE_MESSAGE(r, (r ? "" : r.error().what()));
  CHECK(r->ok);
  LoadOptions lo;
  lo.root = root;
  lo.ref = "latest";
  lo.to = tmp.sub("out");
  auto got = load(Context{}, lo);
  REQUIRE_MESSAGE(got, (got ? "" : got.error().what()));
  CHECK(read_text(tmp.sub("out/model.bin")) == bytes(std::size_t{3} << 20, 2));
  CHECK(injected > 5);
}

TEST_CASE("object-store root: a store that keeps failing is an io error, never a damaged checkpoint") {
  TempDir tmp;
  std::string root = seeded_root(tmp, "2");  // a fault that lasts fails fast
  HookGuard guard;
  // Every request for model.bin fails, however often it is tried; or only its
  // GETs, so that the HEADs pass and the failure comes while the bytes move
  // (a load has then written opt.pt aside already).
  std::vector<std::pair<bool, s3::Fault>> cases;
  for (bool gets_only : {false, true}) {
    for (auto f : {s3::Fault{0, ""}, s3::Fault{503, "SlowDown"}, s3::Fault{403, "AccessDenied"}}) {
      cases.emplace_back(gets_only, f);
    }
  }
  for (const auto& one : cases) {
    const bool gets_only = one.first;
    const s3::Fault fault = one.second;
    CAPTURE(gets_only);
    CAPTURE(fault.status);
    s3::Client::set_fault_hook_for_new_clients(
        [fault, gets_only](const s3::Request& req, std::uint64_t) -> std::optional<s3::Fault> {
          bool model = req.key.size() >= 9 && req.key.compare(req.key.size() - 9, 9, "model.bin") == 0;
          if (model && (!gets_only || req.method == "GET")) return fault;
          return std::nullopt;
        });
    auto l = list_checkpoints(Context{}, root);  // manifests only: unaffected
    REQUIRE_MESSAGE(l, (l ? "" : l.error().what()));
    CHECK(l->checkpoints.size() == 2);
    VerifyOptions v;
    v.root = root;
    auto r = verify(Context{}, v);
    REQUIRE_FALSE(r);
    CHECK(r.error().kind() == ErrorKind::io);
    CHECK(exit_code(r.error().kind()) == 6);
    LoadOptions lo;
    lo.root = root;
    lo.ref = "1";
    lo.to = tmp.sub("out-fail");
    auto got = load(Context{}, lo);
    REQUIRE_FALSE(got);
    CHECK(got.error().kind() == ErrorKind::io);
    // Nothing at --to: no file, and no temporary left beside them.
    CHECK((exists(tmp.sub("out-fail")) ? list_dir(tmp.sub("out-fail")) : std::vector<std::string>{})
              .empty());
  }
  // Faults gone: the same root verifies.
  s3::Client::set_fault_hook_for_new_clients({});
  VerifyOptions v;
  v.root = root;
  auto r = verify(Context{}, v);
  REQUIRE_MESSAGE(r, (r ? "" : r.error().what()));
  CHECK(r->ok);
}

// ---- save into an s3:// root ----------------------------------------------

namespace {

SaveOptions save_step(const TempDir& tmp, const std::string& root, std::uint64_t step, double loss) {
  write_text(tmp.sub("model.bin"), bytes(std::size_t{1} << 20, static_cast<unsigned>(step)));
  write_text(tmp.sub("opt.pt"), "optimizer " + std::to_string(step));
  SaveOptions o;
  o.root = root;
  o.step = step;
  o.sources = {Source{tmp.sub("model.bin"), {}, false}, Source{tmp.sub("opt.pt"), {}, false}};
  o.metrics = {{"loss", loss}};
  o.policy.best_key = "loss";
  return o;
}

std::string name_of(const Result<Checkpoint>& c) { return c ? c->name : std::string("(none)"); }

// The fault of a sweep at its nth request: a 503 SlowDown, a timeout and a
// 412 in turn.
s3::Fault fault_at_request(std::uint64_t n) {
  switch (n % 3) {
    case 0: return s3::Fault{503, "SlowDown"};
    case 1: return s3::Fault{0, ""};
    default: return s3::Fault{412, "PreconditionFailed"};
  }
}

// A sweep faults every request in the release suite; under a sanitizer,
// several times slower, every fourth (the fault's kind still cycles).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr std::uint64_t k_sweep_stride = 4;
#else
constexpr std::uint64_t k_sweep_stride = 1;
#endif

// A sweep's fault: the attempt numbered `at` (counted from 1 over every
// request of every new client) gets fault_at_request(at); 0 faults nothing.
// Cleanup requests (a lease's release) are left alone: a lease left held by
// this live process would only make the next command wait out its 30 s.
struct NthFault {
  std::atomic<std::uint64_t> attempts{0};
  std::atomic<std::uint64_t> at{0};
  std::atomic<int> injected{0};
  NthFault() {
    s3::Client::set_fault_hook_for_new_clients(
        [this](const s3::Request& req, std::uint64_t) -> std::optional<s3::Fault> {
          if (req.cleanup) return std::nullopt;
          std::uint64_t n = ++attempts;
          if (n != at.load()) return std::nullopt;
          ++injected;
          return fault_at_request(n);
        });
  }
  ~NthFault() { s3::Client::set_fault_hook_for_new_clients({}); }
  NthFault(const NthFault&) = delete;
  NthFault& operator=(const NthFault&) = delete;
};

// verify of the whole root passes, markers included.
void check_sound(const std::string& root) {
  VerifyOptions v;
  v.root = root;
  auto vr = verify(Context{}, v);
  REQUIRE_MESSAGE(vr, (vr ? "" : vr.error().what()));
  CHECK(vr->ok);
  CHECK(vr->marker_problems.empty());
}

}  // namespace

TEST_CASE("object-store save: a fault at any one request leaves the root whole, and the save again commits") {
  TempDir tmp;
  export_store_env("1");  // one try: the faulted attempt fails its request
  std::string bucket = fresh_bucket("savefault");
  NthFault fault;
  auto& attempts = fault.attempts;
  auto& fault_at = fault.at;
  auto& injected = fault.injected;
  // How many attempts a save of step 2 makes without a fault.
  std::uint64_t total = 0;
  {
    std::string root = "s3://" + bucket + "/count";
    REQUIRE(save(Context{}, save_step(tmp, root, 1, 1.0)));
    attempts = 0;
    REQUIRE(save(Context{}, save_step(tmp, root, 2, 0.5)));
    total = attempts.load();
  }
  REQUIRE(total > 10);
  // Step 1, saved once in a directory, is copied to each fresh prefix by a
  // plain upload (a handful of requests instead of a save's thirty).
  std::string seed = tmp.sub("seed");
  REQUIRE(save(Context{}, save_step(tmp, seed, 1, 1.0)));
  s3::Client plain(store_config(), bucket);
  PosixFileSystem fs;
  int failed = 0;
  int runs = 0;
  for (std::uint64_t n = 1; n <= total; n += k_sweep_stride) {
    CAPTURE(n);
    ++runs;
    std::string prefix = "f" + std::to_string(n);
    std::string root = "s3://" + bucket + "/" + prefix;
    fault_at = 0;
    upload_tree(plain, fs, seed, prefix);
    attempts = 0;
    fault_at = n;
    auto r = save(Context{}, save_step(tmp, root, 2, 0.5));
    fault_at = 0;
    if (!r) {
      ++failed;
      CAPTURE(r.error().what());
      CHECK((r.error().kind() == ErrorKind::io || r.error().kind() == ErrorKind::conflict));
    }
    // Step 1 whole; step 2 committed whole or absent; latest the newest committed.
    auto l = list_checkpoints(Context{}, root);
    REQUIRE_MESSAGE(l, (l ? "" : l.error().what()));
    CHECK(l->invalid.empty());
    bool has2 = l->checkpoints.size() == 2;
    CHECK((l->checkpoints.size() == 1 || has2));
    if (r) CHECK(has2);
    VerifyOptions v;
    v.root = root;
    auto vr = verify(Context{}, v);
    REQUIRE_MESSAGE(vr, (vr ? "" : vr.error().what()));
    CHECK(vr->ok);
    CHECK(name_of(resolve_ref(Context{}, root, "latest")) ==
          (has2 ? "step-000000002" : "step-000000001"));
    // The job saves again: committed (or found committed), markers up to date.
    auto again = save(Context{}, save_step(tmp, root, 2, 0.5));
    REQUIRE_MESSAGE(again, (again ? "" : again.error().what()));
    CHECK(again->existing == has2);
    vr = verify(Context{}, v);
    REQUIRE(vr);
    CHECK(vr->ok);
    CHECK(vr->marker_problems.empty());
    CHECK(name_of(resolve_ref(Context{}, root, "latest")) == "step-000000002");
    CHECK(name_of(resolve_ref(Context{}, root, "best")) == "step-000000002");
  }
  CHECK(injected == runs);
  CHECK(failed > runs / 2);
}

TEST_CASE("object-store save: a store that ignores If-None-Match is refused before anything is uploaded") {
  TempDir tmp;
  export_store_env("2");
  std::string bucket = fresh_bucket("nocond");
  HookGuard guard;
  // A store that answers a create-only PUT of an existing object with 200.
  s3::Client::set_fault_hook_for_new_clients(
      [](const s3::Request& req, std::uint64_t) -> std::optional<s3::Fault> {
        for (const auto& h : req.headers) {
          if (h == "If-None-Match: *") return s3::Fault{200, ""};
        }
        return std::nullopt;
      });
  auto r = save(Context{}, save_step(tmp, "s3://" + bucket + "/run", 1, 1.0));
  REQUIRE_FALSE(r);
  CHECK(r.error().kind() == ErrorKind::unsupported);
  CHECK(std::string(r.error().what()).find("If-None-Match") != std::string::npos);
  s3::Client::set_fault_hook_for_new_clients({});
  s3::Client c(store_config(), bucket);
  CHECK(c.list("run/").objects.empty());
}

TEST_CASE("object-store save: a commit the store applied but whose answer was lost is the save's own") {
  TempDir tmp;
  std::string bucket = fresh_bucket("lostreply");
  // Retried (the retry meets 412: the object is there) and not (the only try
  // times out): either way the manifest read back is the one sent.
  for (const char* attempts : {"3", "1"}) {
    CAPTURE(attempts);
    export_store_env(attempts);
    std::string root = "s3://" + bucket + "/run" + attempts;
    REQUIRE(save(Context{}, save_step(tmp, root, 1, 1.0)));
    HookGuard guard;
    s3::Client behind(store_config(), bucket);
    std::atomic<int> lost{0};
    s3::Client::set_fault_hook_for_new_clients(
        [&](const s3::Request& req, std::uint64_t) -> std::optional<s3::Fault> {
          bool manifest = req.method == "PUT" && req.key.size() > 16 &&
                          req.key.compare(req.key.size() - 16, 16, "_checkpoint.json") == 0;
          if (!manifest || lost > 0) return std::nullopt;
          // The store applies the PUT; its answer never arrives.
          REQUIRE(behind.put(req.key, req.body) == s3::Put::done);
          ++lost;
          return s3::Fault{0, ""};
        });
    auto r = save(Context{}, save_step(tmp, root, 2, 0.5));
    s3::Client::set_fault_hook_for_new_clients({});
    REQUIRE_MESSAGE(r, (r ? "" : r.error().what()));
    CHECK(lost == 1);
    CHECK(r->committed);
    CHECK(r->commit_seq == 2);
    CHECK(name_of(resolve_ref(Context{}, root, "latest")) == "step-000000002");
    CHECK(name_of(resolve_ref(Context{}, root, "best")) == "step-000000002");
    check_sound(root);
  }
}

TEST_CASE("object-store save: a step removed while it is saved again is a conflict, and --move keeps the sources") {
  TempDir tmp;
  export_store_env("3");
  std::string bucket = fresh_bucket("removedagain");
  std::string root = "s3://" + bucket + "/run";
  REQUIRE(save(Context{}, save_step(tmp, root, 1, 1.0)));
  REQUIRE(save(Context{}, save_step(tmp, root, 2, 0.5)));
  // The job saves step 2 again with the same files, --move. Once it has
  // found step 2 committed with them, and just before it takes the root's
  // lease to finish, a rollback to step 1 removes step 2.
  HookGuard guard;
  std::atomic<int> lease_puts{0};
  std::optional<Result<RemoveReport>> rolled;
  s3::Client::set_fault_hook_for_new_clients(
      [&](const s3::Request& req, std::uint64_t) -> std::optional<s3::Fault> {
        bool root_lease = req.method == "PUT" && req.key == "run/.ckpt/lock";
        if (!root_lease || lease_puts++ > 0) return std::nullopt;
        RollbackOptions o;
        o.root = root;
        o.ref = "1";
        rolled = rollback(Context{}, o);
        return std::nullopt;
      });
  SaveOptions again = save_step(tmp, root, 2, 0.5);
  again.transfer = Transfer::move;
  auto r = save(Context{}, again);
  s3::Client::set_fault_hook_for_new_clients({});
  REQUIRE(rolled.has_value());
  REQUIRE_MESSAGE(*rolled, (*rolled ? "" : rolled->error().what()));
  CHECK((*rolled)->removed == std::vector<std::string>{"step-000000002"});
  // Nothing reported as saved, and the sources are still the user's.
  REQUIRE_FALSE(r);
  CHECK(r.error().kind() == ErrorKind::conflict);
  CHECK(std::string(r.error().what()).find("removed while it was being saved again") !=
        std::string::npos);
  CHECK(std::filesystem::exists(tmp.sub("model.bin")));
  CHECK(std::filesystem::exists(tmp.sub("opt.pt")));
  // The root is as the rollback left it.
  auto l = list_checkpoints(Context{}, root);
  REQUIRE(l);
  REQUIRE(l->checkpoints.size() == 1);
  CHECK(l->checkpoints[0].name == "step-000000001");
  CHECK(name_of(resolve_ref(Context{}, root, "latest")) == "step-000000001");
  check_sound(root);
}

// ---- save --force over a committed step of an s3:// root -----------------

namespace {

// Step 2's replacement: other bytes, and a loss that makes step 3 the best.
SaveOptions force_step(const TempDir& tmp, const std::string& root) {
  SaveOptions o = save_step(tmp, root, 2, 0.9);
  write_text(tmp.sub("model.bin"), bytes(std::size_t{1} << 20, 77));
  write_text(tmp.sub("opt.pt"), "optimizer replaced");
  o.force = true;
  return o;
}

// Every key under PREFIX/dir, relative to PREFIX.
std::vector<std::string> keys_under(s3::Client& c, const std::string& prefix, const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& o : c.list(prefix + "/" + dir).objects) out.push_back(o.key.substr(prefix.size() + 1));
  return out;
}

}  // namespace

TEST_CASE("object-store save --force: a fault at any one request keeps the old checkpoint or leaves the replacement decided, and prune or the save again finishes it") {
  TempDir tmp;
  export_store_env("1");  // one try: the faulted attempt fails its request
  std::string bucket = fresh_bucket("forcefault");
  NthFault fault;
  auto& attempts = fault.attempts;
  auto& fault_at = fault.at;
  auto& injected = fault.injected;
  // Steps 1 to 3 in a directory, step 2 the best; each root a plain upload of it.
  std::string seed = tmp.sub("seed");
  for (const auto& [step, loss] : std::map<std::uint64_t, double>{{1, 1.0}, {2, 0.5}, {3, 0.7}}) {
    REQUIRE(save(Context{}, save_step(tmp, seed, step, loss)));
  }
  s3::Client plain(store_config(), bucket);
  PosixFileSystem fs;
  const std::string want_model = bytes(std::size_t{1} << 20, 77);
  // The replacement as it must be once finished: step 2 with the new bytes
  // and loss, the newest commit (latest), step 3 the best; nothing staged,
  // no object of the old step 2 left.
  auto check_replaced = [&](const std::string& prefix) {
    std::string root = "s3://" + bucket + "/" + prefix;
    auto c = resolve_ref(Context{}, root, "2");
    REQUIRE_MESSAGE(c, (c ? "" : c.error().what()));
    CHECK(c->meta.metric("loss") == std::optional<double>(0.9));
    // The newest commit (a save again after a decided replacement finishes
    // it, then replaces the step once more).
    CHECK(c->meta.commit_seq >= 4);
    CHECK(name_of(resolve_ref(Context{}, root, "latest")) == "step-000000002");
    CHECK(name_of(resolve_ref(Context{}, root, "best")) == "step-000000003");
    check_sound(root);
    LoadOptions lo;
    lo.root = root;
    lo.ref = "2";
    lo.to = tmp.sub("out-" + prefix);
    REQUIRE(load(Context{}, lo));
    CHECK(read_text(tmp.sub("out-" + prefix + "/model.bin")) == want_model);
    auto step2 = keys_under(plain, prefix, "step-000000002/");
    std::sort(step2.begin(), step2.end());
    CHECK(step2 == std::vector<std::string>{"step-000000002/SHA256SUMS", "step-000000002/_checkpoint.json",
                                            "step-000000002/model.bin", "step-000000002/opt.pt"});
    CHECK(keys_under(plain, prefix, ".ckpt/replacing/").empty());
    CHECK(plain.list_uploads(prefix + "/").empty());
  };
  // How many attempts a replacement makes without a fault.
  upload_tree(plain, fs, seed, "count");
  attempts = 0;
  auto counted = save(Context{}, force_step(tmp, "s3://" + bucket + "/count"));
  REQUIRE_MESSAGE(counted, (counted ? "" : counted.error().what()));
  std::uint64_t total = attempts.load();
  CHECK(counted->committed);
  check_replaced("count");
  REQUIRE(total > 20);
  int failed = 0;
  int decided = 0;
  int runs = 0;
  for (std::uint64_t n = 1; n <= total; n += k_sweep_stride) {
    CAPTURE(n);
    ++runs;
    std::string prefix = "f" + std::to_string(n);
    std::string root = "s3://" + bucket + "/" + prefix;
    fault_at = 0;
    upload_tree(plain, fs, seed, prefix);
    attempts = 0;
    fault_at = n;
    auto r = save(Context{}, force_step(tmp, root));
    fault_at = 0;
    if (r) {
      check_replaced(prefix);
      continue;
    }
    ++failed;
    std::string why = r.error().what();
    CAPTURE(why);
    CHECK((r.error().kind() == ErrorKind::io || r.error().kind() == ErrorKind::conflict ||
           r.error().kind() == ErrorKind::locked));
    // Steps 1 and 3 whole; step 2 the old checkpoint, the new one, or absent
    // while the journal says what it becomes.
    bool journal = plain.head(prefix + "/.ckpt/replacing/step-000000002.json").has_value();
    auto l = list_checkpoints(Context{}, root);
    REQUIRE_MESSAGE(l, (l ? "" : l.error().what()));
    CHECK(l->invalid.empty());
    std::map<std::string, std::uint64_t> seqs;
    for (const auto& c : l->checkpoints) seqs[c.name] = c.meta.commit_seq;
    CHECK(seqs.count("step-000000001"));
    CHECK(seqs.count("step-000000003"));
    if (!seqs.count("step-000000002")) CHECK(journal);
    VerifyOptions v;
    v.root = root;
    auto vr = verify(Context{}, v);
    REQUIRE_MESSAGE(vr, (vr ? "" : vr.error().what()));
    for (const auto& c : vr->checkpoints) {
      CAPTURE(c.name);
      CHECK(c.problems.empty());
    }
    if (journal) {
      ++decided;
      // Decided: every file it copies into place is staged, under the
      // attempt the journal names, until its manifest is committed.
      auto text = plain.get(prefix + "/.ckpt/replacing/step-000000002.json");
      REQUIRE(text);
      auto doc = nlohmann::json::parse(text->body);
      auto committed = plain.get(prefix + "/step-000000002/_checkpoint.json");
      if (!committed || committed->body != doc["manifest"].get<std::string>()) {
        std::string staged = ".ckpt/replacing/step-000000002/" + doc["staged"].get<std::string>() + "/";
        auto files = keys_under(plain, prefix, staged);
        std::sort(files.begin(), files.end());
        CHECK(files == std::vector<std::string>{staged + "model.bin", staged + "opt.pt"});
      }
    } else if (seqs["step-000000002"] == 2) {
      // Not decided: the old step 2 as it was.
      CHECK(resolve_ref(Context{}, root, "2")->meta.metric("loss") == std::optional<double>(0.5));
    } else {
      // Carried out, then the markers or retention failed: the replacement whole.
      CHECK(seqs["step-000000002"] == 4);
      CHECK(resolve_ref(Context{}, root, "2")->meta.metric("loss") == std::optional<double>(0.9));
    }
    if (n % 2 == 0 && journal) {
      // prune (from cron) finishes the replacement, whatever it keeps.
      PruneOptions po;
      po.root = root;
      po.rules.keep_last = 10;
      auto pr = prune(Context{}, po);
      REQUIRE_MESSAGE(pr, (pr ? "" : pr.error().what()));
      check_replaced(prefix);
      continue;
    }
    // The job saves the step again: the replacement is made (or finished).
    auto again = save(Context{}, force_step(tmp, root));
    REQUIRE_MESSAGE(again, (again ? "" : again.error().what()));
    check_replaced(prefix);
  }
  MESSAGE("requests of a replacement: " << total << ", faulted: " << runs << ", failed: " << failed
                                         << ", of them decided: " << decided);
  CHECK(injected == runs);
  CHECK(failed > runs / 2);
  CHECK(decided > 0);
}

TEST_CASE("object-store save --force: a replacement stopped once decided is finished by prune and best.json follows it, and one older than a later commit of the step is dropped") {
  TempDir tmp;
  export_store_env("1");
  std::string bucket = fresh_bucket("forcestopped");
  s3::Client plain(store_config(), bucket);
  HookGuard guard;
  for (int later_commit : {0, 1}) {
    CAPTURE(later_commit);
    const std::string prefix = "v" + std::to_string(later_commit);
    const std::string root = "s3://" + bucket + "/" + prefix;
    for (const auto& [step, loss] : std::map<std::uint64_t, double>{{1, 1.0}, {2, 0.5}, {3, 0.7}}) {
      REQUIRE(save(Context{}, save_step(tmp, root, step, loss)));
    }
    // Step 3 replaced by a better one (loss 0.1); the store fails every
    // request once the journal is written: the save stops decided, step 3
    // still the old one.
    std::atomic<bool> decided{false};
    s3::Client::set_fault_hook_for_new_clients(
        [&](const s3::Request& req, std::uint64_t) -> std::optional<s3::Fault> {
          if (req.cleanup) return std::nullopt;
          if (decided) return s3::Fault{503, "SlowDown"};
          const std::string journal = "replacing/step-000000003.json";
          if (req.method == "PUT" && req.key.size() > journal.size() &&
              req.key.compare(req.key.size() - journal.size(), journal.size(), journal) == 0) {
            decided = true;
          }
          return std::nullopt;
        });
    SaveOptions o = save_step(tmp, root, 3, 0.1);
    write_text(tmp.sub("model.bin"), bytes(std::size_t{1} << 20, 55));
    o.force = true;
    auto r = save(Context{}, o);
    s3::Client::set_fault_hook_for_new_clients({});
    REQUIRE_FALSE(r);
    REQUIRE(decided);
    REQUIRE(plain.head(prefix + "/.ckpt/replacing/step-000000003.json"));
    CHECK(resolve_ref(Context{}, root, "3")->meta.metric("loss") == std::optional<double>(0.7));
    if (later_commit) {
      // Step 3 committed again after the decision (a higher commit_seq), as
      // by a writer that did not finish the replacement first.
      auto text = plain.get(prefix + "/step-000000003/_checkpoint.json");
      REQUIRE(text);
      CheckpointMeta m = parse_checkpoint(text->body);
      m.commit_seq = 99;
      REQUIRE(plain.put(prefix + "/step-000000003/_checkpoint.json", serialize_checkpoint(m)) ==
              s3::Put::done);
    }
    PruneOptions po;
    po.root = root;
    po.rules.keep_last = 10;
    auto pr = prune(Context{}, po);
    REQUIRE_MESSAGE(pr, (pr ? "" : pr.error().what()));
    auto c = resolve_ref(Context{}, root, "3");
    REQUIRE(c);
    if (later_commit) {
      // The later commit is kept; the replacement is dropped.
      CHECK(c->meta.commit_seq == 99);
      CHECK(c->meta.metric("loss") == std::optional<double>(0.7));
      CHECK(name_of(resolve_ref(Context{}, root, "best")) == "step-000000002");
    } else {
      // Finished: step 3 is the replacement, the newest commit and the best.
      CHECK(c->meta.metric("loss") == std::optional<double>(0.1));
      CHECK(name_of(resolve_ref(Context{}, root, "latest")) == "step-000000003");
      CHECK(name_of(resolve_ref(Context{}, root, "best")) == "step-000000003");
      LoadOptions lo;
      lo.root = root;
      lo.ref = "3";
      lo.to = tmp.sub("out-" + prefix);
      REQUIRE(load(Context{}, lo));
      CHECK(read_text(tmp.sub("out-" + prefix + "/model.bin")) == bytes(std::size_t{1} << 20, 55));
    }
    CHECK(keys_under(plain, prefix, ".ckpt/replacing/").empty());
    VerifyOptions v;
    v.root = root;
    auto vr = verify(Context{}, v);
    REQUIRE(vr);
    for (const auto& ck : vr->checkpoints) {
      CAPTURE(ck.name);
      CHECK(ck.problems.empty());
    }
  }
}

// ---- prune of an s3:// root -----------------------------------------------

TEST_CASE("object-store prune: a fault at any one request loses no kept checkpoint, and prune again finishes") {
  TempDir tmp;
  export_store_env("1");  // one try: the faulted attempt fails its request
  std::string bucket = fresh_bucket("prunefault");
  HookGuard guard;
  std::atomic<std::uint64_t> attempts{0};
  std::atomic<std::uint64_t> fault_at{0};
  std::atomic<int> injected{0};
  // The request the fault replaced, for the messages.
  std::mutex faulted_mutex;
  s3::Fault fault;
  s3::Request faulted;
  // A lease's release (a cleanup request) is left alone: a lease left held by
  // this live process would only make the next prune wait it out. A step
  // lease's DELETE is faulted too: the lease is then marked free instead.
  s3::Client::set_fault_hook_for_new_clients(
      [&](const s3::Request& req, std::uint64_t) -> std::optional<s3::Fault> {
        if (req.cleanup && req.method != "DELETE") return std::nullopt;
        std::uint64_t n = ++attempts;
        if (n != fault_at.load()) return std::nullopt;
        ++injected;
        std::lock_guard<std::mutex> lock(faulted_mutex);
        fault = fault_at_request(n);
        faulted.method = req.method;
        faulted.key = req.key;
        return fault;
      });
  // Steps 1 to 4, saved once in a directory; step 2 has the least loss.
  std::string seed = tmp.sub("seed");
  for (const auto& [step, loss] :
       std::map<std::uint64_t, double>{{1, 1.0}, {2, 0.1}, {3, 0.9}, {4, 0.8}}) {
    REQUIRE(save(Context{}, save_step(tmp, seed, step, loss)));
  }
  s3::Client plain(store_config(), bucket);
  PosixFileSystem fs;
  // A root per prefix: the seed by a plain upload, and the data object of a
  // save killed before its commit (step 9, no _checkpoint.json).
  auto seed_prefix = [&](const std::string& prefix) {
    upload_tree(plain, fs, seed, prefix);
    REQUIRE(plain.put(prefix + "/step-000000009/w.bin", "weights") == s3::Put::done);
  };
  // Step 1 goes (2 is the best, 3 and 4 the last two); step 9 goes once idle
  // for a second, which its seeding is by the time prune runs.
  auto prune_of = [&](const std::string& prefix) {
    PruneOptions o;
    o.root = "s3://" + bucket + "/" + prefix;
    o.rules.keep_last = 2;
    o.pending_expiry = "1s";
    return prune(Context{}, o);
  };
  auto wait_idle = [] { std::this_thread::sleep_for(std::chrono::milliseconds(1500)); };
  auto keys = [&](const std::string& under) {
    std::vector<std::string> out;
    for (const auto& o : plain.list(under).objects) out.push_back(o.key);
    return out;
  };
  auto names = [](const Listing& l) {
    std::vector<std::string> out;
    for (const auto& c : l.checkpoints) out.push_back(c.name);
    return out;
  };
  const std::vector<std::string> kept = {"step-000000002", "step-000000003", "step-000000004"};
  // How many attempts a prune makes without a fault.
  std::uint64_t total = 0;
  {
    seed_prefix("count");
    wait_idle();
    attempts = 0;
    auto r = prune_of("count");
    total = attempts.load();
    REQUIRE_MESSAGE(r, (r ? "" : r.error().what()));
    CHECK(r->removed == std::vector<std::string>{"step-000000001"});
    CHECK(keys("count/step-000000001/").empty());
    CHECK(keys("count/step-000000009/").empty());
  }
  REQUIRE(total > 10);
  // Every prefix seeded first: one wait makes all their orphans idle.
  for (std::uint64_t n = 1; n <= total; n += k_sweep_stride) seed_prefix("f" + std::to_string(n));
  wait_idle();
  // Prune changes no byte: sizes alone show whether a checkpoint is whole.
  VerifyOptions v;
  v.quick = true;
  int failed = 0;
  int runs = 0;
  for (std::uint64_t n = 1; n <= total; n += k_sweep_stride) {
    CAPTURE(n);
    ++runs;
    std::string prefix = "f" + std::to_string(n);
    std::string root = "s3://" + bucket + "/" + prefix;
    attempts = 0;
    fault_at = n;
    auto r = prune_of(prefix);
    fault_at = 0;
    long status = 0;
    std::string method;
    std::string faulted_key;
    {
      std::lock_guard<std::mutex> lock(faulted_mutex);
      status = fault.status;
      method = faulted.method;
      faulted_key = faulted.key;
    }
    CAPTURE(status);
    CAPTURE(method);
    CAPTURE(faulted_key);
    if (!r) {
      ++failed;
      CAPTURE(r.error().what());
      CHECK((r.error().kind() == ErrorKind::io || r.error().kind() == ErrorKind::conflict));
    }
    // Steps 2 to 4 listed; step 1 listed (and then whole) or unlisted: its
    // manifest goes first, so what may be left of it is data no reader sees.
    auto l = list_checkpoints(Context{}, root);
    REQUIRE_MESSAGE(l, (l ? "" : l.error().what()));
    CHECK(l->invalid.empty());
    bool has1 = names(*l).size() == 4;
    std::vector<std::string> all = {"step-000000001"};
    all.insert(all.end(), kept.begin(), kept.end());
    CHECK(names(*l) == (has1 ? all : kept));
    if (!has1) CHECK_FALSE(plain.head(prefix + "/step-000000001/_checkpoint.json"));
    if (r) {
      CHECK(r->removed == std::vector<std::string>{"step-000000001"});
      CHECK(keys(prefix + "/step-000000001/").empty());
      // Step 9 gone, and said so.
      CHECK(r->cleaned == std::vector<std::string>{"step-000000009/"});
      CHECK(keys(prefix + "/step-000000009/").empty());
    }
    v.root = root;
    auto vr = verify(Context{}, v);
    REQUIRE_MESSAGE(vr, (vr ? "" : vr.error().what()));
    CHECK(vr->ok);
    CHECK(name_of(resolve_ref(Context{}, root, "latest")) == "step-000000004");
    CHECK(name_of(resolve_ref(Context{}, root, "best")) == "step-000000002");
    // Prune again: it finishes what the fault stopped, and leaves nothing behind.
    auto again = prune_of(prefix);
    REQUIRE_MESSAGE(again, (again ? "" : again.error().what()));
    l = list_checkpoints(Context{}, root);
    REQUIRE(l);
    CHECK(names(*l) == kept);
    CHECK(keys(prefix + "/step-000000001/").empty());
    CHECK(keys(prefix + "/step-000000009/").empty());
    CHECK(plain.list_uploads(prefix + "/").empty());
    // No step lease left: each was deleted, or marked free and then taken
    // and deleted by the second prune.
    CHECK(keys(prefix + "/.ckpt/saving/").empty());
    // Markers up to date: last names step 4, best.json step 2.
    vr = verify(Context{}, v);
    REQUIRE(vr);
    CHECK(vr->ok);
    CHECK(vr->marker_problems.empty());
  }
  CHECK(injected == runs);
  CHECK(failed > 0);
}

// ---- sharded saves into an s3:// root ---------------------------------------

namespace {

// Shard index of 3 of step 2: its own files (disjoint paths), loss from shard 0.
SaveOptions shard_step(const TempDir& tmp, const std::string& root, std::uint64_t index) {
  std::string dir = tmp.sub("rank" + std::to_string(index));
  std::filesystem::create_directories(dir);
  write_text(dir + "/model-" + std::to_string(index) + ".bin",
             bytes(std::size_t{256} << 10, static_cast<unsigned>(index + 7)));
  write_text(dir + "/rng-" + std::to_string(index) + ".pt", "rng " + std::to_string(index));
  SaveOptions o;
  o.root = root;
  o.step = 2;
  o.sources = {Source{dir, {}, true}};
  o.shard = ShardSpec{index, 3, "job:0"};
  if (index == 0) {
    o.metrics = {{"loss", 0.5}};
    o.policy.best_key = "loss";
  }
  return o;
}

// A new bucket's s3:// root for one test, the store's variables exported.
std::string fresh_root(const char* name) {
  export_store_env("3");
  return "s3://" + fresh_bucket(name) + "/run";
}

// The root holds one committed checkpoint, of that many files, and is sound.
void check_one_checkpoint(const std::string& root, std::size_t files) {
  auto l = list_checkpoints(Context{}, root);
  REQUIRE(l);
  REQUIRE(l->checkpoints.size() == 1);
  CHECK(l->checkpoints[0].meta.files.size() == files);
  check_sound(root);
}

}  // namespace

TEST_CASE("object-store sharded save: a fault at any one request of the last shard loses nothing, and a rerun commits") {
  TempDir tmp;
  export_store_env("1");  // one try: the faulted attempt fails its request
  std::string bucket = fresh_bucket("shardfault");
  HookGuard guard;
  std::atomic<std::uint64_t> attempts{0};
  std::atomic<std::uint64_t> fault_at{0};
  std::atomic<int> injected{0};
  std::mutex faulted_mutex;
  std::string faulted;
  // A lease's release (a cleanup request) is left alone, as in the other sweeps.
  s3::Client::set_fault_hook_for_new_clients(
      [&](const s3::Request& req, std::uint64_t) -> std::optional<s3::Fault> {
        if (req.cleanup) return std::nullopt;
        std::uint64_t n = ++attempts;
        if (n != fault_at.load()) return std::nullopt;
        ++injected;
        std::lock_guard<std::mutex> lock(faulted_mutex);
        faulted = req.method + " " + req.key;
        return fault_at_request(n);
      });
  std::string seed = tmp.sub("seed");
  REQUIRE(save(Context{}, save_step(tmp, seed, 1, 1.0)));
  s3::Client plain(store_config(), bucket);
  PosixFileSystem fs;
  // A root per prefix: step 1 by a plain upload, shards 0 and 1 of step 2 saved.
  auto seed_prefix = [&](const std::string& prefix) {
    upload_tree(plain, fs, seed, prefix);
    std::string root = "s3://" + bucket + "/" + prefix;
    for (std::uint64_t i : {0, 1}) {
      auto r = save(Context{}, shard_step(tmp, root, i));
      REQUIRE_MESSAGE(r, (r ? "" : r.error().what()));
      REQUIRE_FALSE(r->committed);
    }
    return root;
  };
  std::uint64_t total = 0;
  {
    std::string root = seed_prefix("count");
    attempts = 0;
    auto r = save(Context{}, shard_step(tmp, root, 2));
    total = attempts.load();
    REQUIRE_MESSAGE(r, (r ? "" : r.error().what()));
    CHECK(r->committed);
    CHECK(r->files == 6);
  }
  REQUIRE(total > 10);
  int failed = 0;
  int runs = 0;
  for (std::uint64_t n = 1; n <= total; n += k_sweep_stride) {
    CAPTURE(n);
    ++runs;
    std::string prefix = "f" + std::to_string(n);
    fault_at = 0;
    std::string root = seed_prefix(prefix);
    attempts = 0;
    fault_at = n;
    auto r = save(Context{}, shard_step(tmp, root, 2));
    fault_at = 0;
    {
      std::lock_guard<std::mutex> lock(faulted_mutex);
      CAPTURE(faulted);
    }
    if (!r) {
      ++failed;
      CAPTURE(r.error().what());
      CHECK((r.error().kind() == ErrorKind::io || r.error().kind() == ErrorKind::conflict ||
             r.error().kind() == ErrorKind::locked));
    }
    // Step 2 is committed whole, or not listed and still pending.
    auto l = list_checkpoints(Context{}, root);
    REQUIRE_MESSAGE(l, (l ? "" : l.error().what()));
    CHECK(l->invalid.empty());
    bool has2 = l->checkpoints.size() == 2;
    CHECK((l->checkpoints.size() == 1 || has2));
    if (r && r->committed) CHECK(has2);
    if (has2) CHECK(l->checkpoints.back().meta.files.size() == 6);
    auto pending = list_pending(Context{}, root);
    REQUIRE(pending);
    CHECK(pending->size() == (has2 ? 0u : 1u));
    {
      // Whole; the markers may lag a commit whose marker update failed.
      VerifyOptions v;
      v.root = root;
      auto vr = verify(Context{}, v);
      REQUIRE_MESSAGE(vr, (vr ? "" : vr.error().what()));
      CHECK(vr->ok);
    }
    // The rerun of the last shard (a restarted rank) commits the step, or
    // finds it committed.
    auto again = save(Context{}, shard_step(tmp, root, 2));
    REQUIRE_MESSAGE(again, (again ? "" : again.error().what()));
    CHECK((again->committed || again->existing));
    CHECK(again->existing == has2);
    l = list_checkpoints(Context{}, root);
    REQUIRE(l);
    REQUIRE(l->checkpoints.size() == 2);
    CHECK(l->checkpoints.back().meta.files.size() == 6);
    CHECK(l->checkpoints.back().meta.shards == std::optional<std::uint64_t>(3));
    pending = list_pending(Context{}, root);
    REQUIRE(pending);
    CHECK(pending->empty());
    check_sound(root);
    CHECK(name_of(resolve_ref(Context{}, root, "latest")) == "step-000000002");
    CHECK(name_of(resolve_ref(Context{}, root, "best")) == "step-000000002");
    // Nothing but the checkpoint's objects under the step.
    std::vector<std::string> under;
    for (const auto& o : plain.list(prefix + "/step-000000002/").objects) under.push_back(o.key);
    CHECK(under.size() == 8);  // 6 files, SHA256SUMS, _checkpoint.json
  }
  CHECK(injected == runs);
  CHECK(failed > 0);
}

TEST_CASE("object-store sharded save: a last shard whose set another rank commits first succeeds as a rerun, its moved sources not read again") {
  TempDir tmp;
  std::string root = fresh_root("shardraced");
  for (std::uint64_t i : {0, 1}) {
    auto r = save(Context{}, shard_step(tmp, root, i));
    REQUIRE_MESSAGE(r, (r ? "" : r.error().what()));
    REQUIRE_FALSE(r->committed);
  }
  // Shard 2 (--move) records itself and sees the set complete; just before
  // it takes the step's lease to commit, a restarted rank 1 saves its shard
  // again and, finding all three recorded, commits the step.
  HookGuard guard;
  std::atomic<bool> recorded{false};
  std::atomic<bool> fired{false};
  std::optional<Result<SaveReport>> other;
  s3::Client::set_fault_hook_for_new_clients(
      [&](const s3::Request& req, std::uint64_t) -> std::optional<s3::Fault> {
        if (req.method != "PUT") return std::nullopt;
        if (req.key.find("/shard-00002.json") != std::string::npos) recorded = true;
        if (!recorded || req.key != "run/.ckpt/saving/step-000000002" || fired.exchange(true)) {
          return std::nullopt;
        }
        other = save(Context{}, shard_step(tmp, root, 1));
        return std::nullopt;
      });
  SaveOptions last = shard_step(tmp, root, 2);
  last.transfer = Transfer::move;
  auto r = save(Context{}, last);
  s3::Client::set_fault_hook_for_new_clients({});
  REQUIRE(other.has_value());
  REQUIRE_MESSAGE(*other, (*other ? "" : other->error().what()));
  CHECK((*other)->committed);
  // The last shard's save is a success: the step holds its files.
  REQUIRE_MESSAGE(r, (r ? "" : r.error().what()));
  CHECK(r->existing);
  CHECK(r->files == 6);
  CHECK_FALSE(std::filesystem::exists(tmp.sub("rank2") + "/model-2.bin"));
  CHECK_FALSE(std::filesystem::exists(tmp.sub("rank2") + "/rng-2.pt"));
  auto l = list_checkpoints(Context{}, root);
  REQUIRE(l);
  REQUIRE(l->checkpoints.size() == 1);
  CHECK(l->checkpoints[0].meta.files.size() == 6);
  auto pending = list_pending(Context{}, root);
  REQUIRE(pending);
  CHECK(pending->empty());
  VerifyOptions v;
  v.root = root;
  auto vr = verify(Context{}, v);
  REQUIRE_MESSAGE(vr, (vr ? "" : vr.error().what()));
  CHECK(vr->ok);
  check_sound(root);
}

TEST_CASE("object-store sharded save: a rerun of a shard committed without checksums is a success, other files exit 4") {
  TempDir tmp;
  std::string root = fresh_root("shardnosum");
  auto unsummed = [&](std::uint64_t i) {
    SaveOptions o = shard_step(tmp, root, i);
    o.policy.checksum = "none";
    return o;
  };
  for (std::uint64_t i : {0, 1, 2}) {
    auto r = save(Context{}, unsummed(i));
    REQUIRE_MESSAGE(r, (r ? "" : r.error().what()));
    CHECK(r->committed == (i == 2));
  }
  auto again = save(Context{}, unsummed(1));
  REQUIRE_MESSAGE(again, (again ? "" : again.error().what()));
  CHECK(again->existing);
  // Other files (another size) are refused as a different shard.
  SaveOptions other = unsummed(1);
  write_text(tmp.sub("rank1") + "/rng-1.pt", "another rng state");
  auto refused = save(Context{}, other);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().kind() == ErrorKind::conflict);
  CHECK(refused.error().reason() == std::string(k_reason_step_exists));
}

TEST_CASE("object-store prune: a new group that starts a pending step again while prune expires it waits for prune, and its shard is kept") {
  TempDir tmp;
  std::string root = fresh_root("expirerace");
  {
    auto r = save(Context{}, shard_step(tmp, root, 0));  // group job:0, 1 of 3, then idle
    REQUIRE_MESSAGE(r, (r ? "" : r.error().what()));
  }
  // A new launch's shards (group job:1) store other paths.
  auto relaunched = [&](std::uint64_t index) {
    std::string dir = tmp.sub("again" + std::to_string(index));
    std::filesystem::create_directories(dir);
    write_text(dir + "/part-" + std::to_string(index) + ".bin",
               bytes(std::size_t{64} << 10, static_cast<unsigned>(index + 40)));
    SaveOptions o;
    o.root = root;
    o.step = 2;
    o.sources = {Source{dir, {}, true}};
    o.shard = ShardSpec{index, 3, "job:1"};
    return o;
  };
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  // Prune has removed job:0's set.json, listed the step again and found it
  // idle; just before it deletes what it listed, job:1's shard 0 starts the
  // step again: it waits for the step's lease to make its set.json, and
  // records itself once prune is done.
  HookGuard guard;
  std::atomic<bool> fired{false};
  std::optional<Result<SaveReport>> started;
  std::thread relaunch;
  s3::Client::set_fault_hook_for_new_clients(
      [&](const s3::Request& req, std::uint64_t) -> std::optional<s3::Fault> {
        bool batch_delete = req.method == "POST" && !req.query.empty() &&
                            req.query[0].first == "delete";
        if (!batch_delete || fired.exchange(true)) return std::nullopt;
        relaunch = std::thread([&] { started = save(Context{}, relaunched(0)); });
        std::this_thread::sleep_for(std::chrono::milliseconds(500));  // at the lease by now
        return std::nullopt;
      });
  PruneOptions p;
  p.root = root;
  p.pending_expiry = "2s";
  auto pr = prune(Context{}, p);
  if (relaunch.joinable()) relaunch.join();
  s3::Client::set_fault_hook_for_new_clients({});
  REQUIRE_MESSAGE(pr, (pr ? "" : pr.error().what()));
  REQUIRE(started.has_value());
  REQUIRE_MESSAGE(*started, (*started ? "" : started->error().what()));
  CHECK_FALSE((*started)->committed);
  REQUIRE(pr->expired.size() == 1);
  CHECK(pr->expired[0].shards.group == "job:0");
  // job:1's shard 0 is still recorded, with its object; the other two commit the step.
  auto pending = list_pending(Context{}, root);
  REQUIRE(pending);
  REQUIRE(pending->size() == 1);
  CHECK((*pending)[0].shards.group == "job:1");
  CHECK((*pending)[0].shards.present == std::vector<std::uint64_t>{0});
  for (std::uint64_t i : {1, 2}) {
    auto r = save(Context{}, relaunched(i));
    REQUIRE_MESSAGE(r, (r ? "" : r.error().what()));
    CHECK(r->committed == (i == 2));
  }
  check_one_checkpoint(root, 3);
}

TEST_CASE("object-store sharded save: records left without their set.json (a prune stopped midway) count when the group goes on") {
  TempDir tmp;
  std::string root = fresh_root("orphanset");
  for (std::uint64_t i : {0, 1}) {
    auto r = save(Context{}, shard_step(tmp, root, i));
    REQUIRE_MESSAGE(r, (r ? "" : r.error().what()));
  }
  s3::Client plain(store_config(), root.substr(5, root.find('/', 5) - 5));
  plain.remove("run/.ckpt/pending/step-000000002/set.json");
  auto r = save(Context{}, shard_step(tmp, root, 2));
  REQUIRE_MESSAGE(r, (r ? "" : r.error().what()));
  CHECK(r->committed);
  check_one_checkpoint(root, 6);
}

TEST_CASE("object-store save --dedup: the checkpoint copied from, replaced while the save copies, fails the save and leaves nothing") {
  TempDir tmp;
  export_store_env("3");
  std::string bucket = fresh_bucket("deduppin");
  std::string root = "s3://" + bucket + "/run";
  SaveOptions first = save_step(tmp, root, 1, 1.0);
  first.policy.dedup = true;
  REQUIRE(save(Context{}, first));
  // Step 2 shares model.bin's bytes with step 1 (written again as step 1's).
  SaveOptions second = save_step(tmp, root, 2, 0.5);
  write_text(tmp.sub("model.bin"), bytes(std::size_t{1} << 20, 1u));
  s3::Client plain(store_config(), bucket);
  auto manifest = plain.get("run/step-000000001/_checkpoint.json");
  REQUIRE(manifest);
  HookGuard guard;
  std::atomic<bool> fired{false};
  std::atomic<bool> replaced{false};
  s3::Client::set_fault_hook_for_new_clients(
      [&](const s3::Request& req, std::uint64_t) -> std::optional<s3::Fault> {
        bool copy = std::any_of(req.headers.begin(), req.headers.end(), [](const std::string& h) {
          return h.rfind("x-amz-copy-source:", 0) == 0;
        });
        if (!copy || fired.exchange(true)) return std::nullopt;
        // Step 1 rolled away and saved again meanwhile: another manifest.
        std::string other = manifest->body + " ";
        s3::Client side(store_config(), bucket);
        replaced = side.put("run/step-000000001/_checkpoint.json", other) == s3::Put::done;
        return std::nullopt;
      });
  auto r = save(Context{}, second);
  s3::Client::set_fault_hook_for_new_clients({});
  REQUIRE(fired);
  REQUIRE(replaced);
  REQUIRE_FALSE(r);
  CHECK(r.error().kind() == ErrorKind::conflict);
  CHECK(std::string(r.error().what()).find("removed or replaced meanwhile") != std::string::npos);
  CHECK(plain.list("run/step-000000002/").objects.empty());
}
