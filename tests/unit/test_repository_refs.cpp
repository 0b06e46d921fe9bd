// SPDX-License-Identifier: Apache-2.0
// Refs (SPEC §1) through resolve_ref, and the best.json rule end to end through save.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "ckpt/error.hpp"
#include "ckpt/format.hpp"
#include "ckpt/fs.hpp"
#include "ckpt/repository.hpp"
#include "internal.hpp"
#include "test_support.hpp"

using ckpt_test::exists;
using ckpt_test::read_text;
using ckpt_test::write_text;

namespace {

// A root under a temp dir, saved through the library with fsync turned off.
struct Repo {
  explicit Repo(const ckpt_test::TempDir& tmp)
      : root(tmp.sub("runs/exp1/checkpoints")), src(tmp.sub("src")) {
    ctx.fs = &fs;
    ctx.lock_timeout = 5;
    ctx.warn = [this](const std::string& w) { warnings.push_back(w); };
  }

  // Saves step with two files (model.bin and optim/shard-0.pt) and these metrics.
  ckpt::SaveReport save(std::uint64_t step, std::map<std::string, double> metrics = {},
                        ckpt::Policy policy = {}) {
    write_text(src + "/model.bin", "model weights at step " + std::to_string(step) + "\n");
    write_text(src + "/optim/shard-0.pt", "optimizer state " + std::to_string(step * 7) + "\n");
    ckpt::SaveOptions o;
    o.root = root;
    o.step = step;
    o.sources = {ckpt::Source{src + "/model.bin", std::nullopt, false},
                 ckpt::Source{src + "/optim", std::nullopt, false}};
    o.metrics = std::move(metrics);
    o.policy = std::move(policy);
    auto r = ckpt::save(ctx, o);
    REQUIRE_MESSAGE(r.ok(), "save of step " << step << " failed: "
                                            << (r.ok() ? std::string() : r.error().message()));
    return r.value();
  }

  std::optional<ckpt::BestMarker> best() { return ckpt::detail::read_best(ctx, root); }

  std::string last() {
    auto l = ckpt::detail::read_last(ctx, root);
    REQUIRE(l.has_value());
    return l->name;
  }

  ckpt::PosixFileSystem fs{true};
  ckpt::Context ctx;
  std::string root;
  std::string src;
  std::vector<std::string> warnings;
};

ckpt::Policy best_key(const std::string& key, ckpt::Mode mode = ckpt::Mode::min) {
  ckpt::Policy p;
  p.best_key = key;
  p.best_mode = mode;
  return p;
}

// resolve_ref fails with this kind.
void expect_ref_error(const ckpt::Context& ctx, const std::string& root, const std::string& ref,
                      ckpt::ErrorKind kind) {
  CAPTURE(root);
  CAPTURE(ref);
  auto r = ckpt::resolve_ref(ctx, root, ref);
  REQUIRE_MESSAGE(!r.ok(), "resolved to " << (r.ok() ? r->path : std::string()));
  INFO("message: " << r.error().message());
  CHECK(std::string(ckpt::kind_name(r.error().kind())) == ckpt::kind_name(kind));
}

// resolve_ref names this step.
void expect_ref(const ckpt::Context& ctx, const std::string& root, const std::string& ref,
                std::uint64_t step) {
  CAPTURE(ref);
  auto r = ckpt::resolve_ref(ctx, root, ref);
  REQUIRE_MESSAGE(r.ok(), "error: " << (r.ok() ? std::string() : r.error().message()));
  CHECK(r->name == ckpt::step_dir_name(step));
  CHECK(r->path == root + "/" + ckpt::step_dir_name(step));
  CHECK(r->meta.step == step);
  CHECK(r->meta.name == ckpt::step_dir_name(step));
}

}  // namespace

TEST_CASE("repository_refs: save reports and lays out the checkpoints") {
  CKPT_TEMP_DIR(tmp);
  Repo repo(tmp);
  for (std::uint64_t s = 1; s <= 3; ++s) {
    CAPTURE(s);
    auto rep = repo.save(s, {{"loss", 1.0 / static_cast<double>(s)}});
    CHECK(rep.name == ckpt::step_dir_name(s));
    CHECK(rep.path == repo.root + "/" + ckpt::step_dir_name(s));
    CHECK(rep.step == s);
    CHECK(rep.commit_seq == s);
    CHECK(rep.files == 2);
    std::string model = "model weights at step " + std::to_string(s) + "\n";
    std::string optim = "optimizer state " + std::to_string(s * 7) + "\n";
    CHECK(rep.total_size == model.size() + optim.size());
    CHECK(read_text(rep.path + "/model.bin") == model);
    CHECK(read_text(rep.path + "/optim/shard-0.pt") == optim);
    CHECK(exists(rep.path + "/_checkpoint.json"));
    CHECK(exists(rep.path + "/SHA256SUMS"));
    CHECK(read_text(repo.root + "/last") == ckpt::step_dir_name(s) + "\n");
  }
}

TEST_CASE("repository_refs: resolve_ref of latest, last, best, a step, a name and a path") {
  CKPT_TEMP_DIR(tmp);
  Repo repo(tmp);
  repo.save(1, {{"loss", 0.9}}, best_key("loss"));
  repo.save(2, {{"loss", 0.3}}, best_key("loss"));
  repo.save(3, {{"loss", 0.6}}, best_key("loss"));
  const std::string& root = repo.root;

  expect_ref(repo.ctx, root, "latest", 3);
  expect_ref(repo.ctx, root, "last", 3);
  expect_ref(repo.ctx, root, "best", 2);
  expect_ref(repo.ctx, root, "2", 2);
  expect_ref(repo.ctx, root, "1", 1);
  expect_ref(repo.ctx, root, "step-000000002", 2);
  expect_ref(repo.ctx, root, root + "/step-000000002", 2);
  expect_ref(repo.ctx, root, root + "/step-000000003/", 3);
  expect_ref(repo.ctx, root, root + "/./step-000000001", 1);

  auto latest = ckpt::resolve_ref(repo.ctx, root, "latest");
  REQUIRE(latest.ok());
  CHECK(latest->markers == std::vector<std::string>{"last"});
  CHECK(latest->meta.metric("loss") == std::optional<double>(0.6));
  auto best = ckpt::resolve_ref(repo.ctx, root, "best");
  REQUIRE(best.ok());
  CHECK(best->markers == std::vector<std::string>{"best"});
  CHECK(best->meta.metric("loss") == std::optional<double>(0.3));
  CHECK(best->meta.files.size() == 2);
  auto one = ckpt::resolve_ref(repo.ctx, root, "1");
  REQUIRE(one.ok());
  CHECK(one->markers.empty());

  // The root may be given with a trailing slash or a detour; paths come back normalised.
  auto slash = ckpt::resolve_ref(repo.ctx, root + "/", "2");
  REQUIRE(slash.ok());
  CHECK(slash->path == root + "/step-000000002");
  auto detour = ckpt::resolve_ref(repo.ctx, root + "/../checkpoints", "latest");
  REQUIRE(detour.ok());
  CHECK(detour->path == root + "/step-000000003");
}

TEST_CASE("repository_refs: refs that name nothing are not_found") {
  CKPT_TEMP_DIR(tmp);
  Repo repo(tmp);
  repo.save(1);
  repo.save(2);
  repo.save(3);
  expect_ref_error(repo.ctx, repo.root, "99", ckpt::ErrorKind::not_found);
  expect_ref_error(repo.ctx, repo.root, "0", ckpt::ErrorKind::not_found);
  expect_ref_error(repo.ctx, repo.root, "step-000000099", ckpt::ErrorKind::not_found);
  expect_ref_error(repo.ctx, repo.root, repo.root + "/step-000000099", ckpt::ErrorKind::not_found);
  // No best key was ever given: no best.json.
  CHECK_FALSE(exists(repo.root + "/best.json"));
  expect_ref_error(repo.ctx, repo.root, "best", ckpt::ErrorKind::not_found);
}

TEST_CASE("repository_refs: malformed refs and refs outside the root are usage errors") {
  CKPT_TEMP_DIR(tmp);
  Repo repo(tmp);
  repo.save(1);
  repo.save(2);
  for (const std::string& ref :
       {std::string("foo"), std::string(""), std::string("../x"), std::string("/etc"),
        std::string("latest2"), std::string("-1"), std::string("99999999999999999999"),
        std::string("9223372036854775808"), repo.root + "/.ckpt",
        repo.root + "/step-000000002/model.bin", repo.root + "/../step-000000002",
        tmp.sub("elsewhere/step-000000002")}) {
    expect_ref_error(repo.ctx, repo.root, ref, ckpt::ErrorKind::usage);
  }
}

TEST_CASE("repository_refs: a missing root is not_found, a foreign directory unsupported") {
  CKPT_TEMP_DIR(tmp);
  ckpt::PosixFileSystem fs(true);
  ckpt::Context ctx;
  ctx.fs = &fs;
  expect_ref_error(ctx, tmp.sub("does/not/exist"), "latest", ckpt::ErrorKind::not_found);
  expect_ref_error(ctx, tmp.sub("does/not/exist"), "1", ckpt::ErrorKind::not_found);

  // A directory that holds something else: never treated as a root.
  write_text(tmp.sub("foreign/notes.txt"), "not a checkpoint root\n");
  expect_ref_error(ctx, tmp.sub("foreign"), "latest", ckpt::ErrorKind::unsupported);
  expect_ref_error(ctx, tmp.sub("foreign"), "1", ckpt::ErrorKind::unsupported);
  auto l = ckpt::list_checkpoints(ctx, tmp.sub("foreign"));
  REQUIRE_FALSE(l.ok());
  CHECK(l.error().kind() == ckpt::ErrorKind::unsupported);

  // An empty directory is an empty root: no checkpoint yet.
  REQUIRE(::mkdir(tmp.sub("empty").c_str(), 0755) == 0);
  expect_ref_error(ctx, tmp.sub("empty"), "latest", ckpt::ErrorKind::not_found);
  expect_ref_error(ctx, tmp.sub("empty"), "1", ckpt::ErrorKind::not_found);
  expect_ref_error(ctx, tmp.sub("empty"), "best", ckpt::ErrorKind::not_found);

  // A regular file is not a root either.
  write_text(tmp.sub("plain-file"), "x");
  auto r = ckpt::resolve_ref(ctx, tmp.sub("plain-file"), "latest");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().kind() != ckpt::ErrorKind::not_found);
}

TEST_CASE("repository_refs: best.json changes only on strict improvement (min)") {
  CKPT_TEMP_DIR(tmp);
  Repo repo(tmp);
  const double losses[] = {1.0, 0.5, 0.5, 0.8};
  const bool updated[] = {true, true, false, false};
  const std::uint64_t best_step[] = {1, 2, 2, 2};
  for (std::uint64_t s = 1; s <= 4; ++s) {
    CAPTURE(s);
    auto rep = repo.save(s, {{"loss", losses[s - 1]}}, best_key("loss"));
    CHECK(rep.best_updated == updated[s - 1]);
    CHECK(rep.best_key == std::optional<std::string>("loss"));
    CHECK(rep.best_value == std::optional<double>(losses[s - 1]));
    auto b = repo.best();
    REQUIRE(b.has_value());
    CHECK(b->key == "loss");
    CHECK(b->mode == ckpt::Mode::min);
    CHECK(b->step == best_step[s - 1]);
    CHECK(b->path == ckpt::step_dir_name(best_step[s - 1]));
    CHECK(b->value == losses[best_step[s - 1] - 1]);
    CHECK(repo.last() == ckpt::step_dir_name(s));
  }
  expect_ref(repo.ctx, repo.root, "best", 2);
}

TEST_CASE("repository_refs: best.json in max mode, keyed by policy.json on later saves") {
  CKPT_TEMP_DIR(tmp);
  Repo repo(tmp);
  // Only the first save names the key and mode; policy.json carries them.
  auto r1 = repo.save(1, {{"acc", 0.5}, {"loss", 3.0}}, best_key("acc", ckpt::Mode::max));
  CHECK(r1.best_updated);
  auto p = ckpt::detail::read_policy(repo.ctx, repo.root);
  REQUIRE(p.has_value());
  CHECK(p->best_key == std::optional<std::string>("acc"));
  CHECK(p->best_mode == std::optional<ckpt::Mode>(ckpt::Mode::max));

  auto r2 = repo.save(2, {{"acc", 0.7}, {"loss", 9.0}});
  CHECK(r2.best_updated);
  auto r3 = repo.save(3, {{"acc", 0.7}, {"loss", 0.1}});  // a tie: step 2 stays
  CHECK_FALSE(r3.best_updated);
  auto r4 = repo.save(4, {{"acc", 0.6}});
  CHECK_FALSE(r4.best_updated);
  auto b = repo.best();
  REQUIRE(b.has_value());
  CHECK(b->key == "acc");
  CHECK(b->mode == ckpt::Mode::max);
  CHECK(b->path == "step-000000002");
  CHECK(b->value == 0.7);
}

TEST_CASE("repository_refs: a non-finite metric is stored as null and never becomes best") {
  CKPT_TEMP_DIR(tmp);
  Repo repo(tmp);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();

  auto r1 = repo.save(1, {{"loss", nan}}, best_key("loss"));
  CHECK_FALSE(r1.best_updated);
  CHECK_FALSE(r1.best_value.has_value());
  CHECK_FALSE(repo.best().has_value());
  expect_ref_error(repo.ctx, repo.root, "best", ckpt::ErrorKind::not_found);
  // Warned about, and recorded as null.
  bool warned = false;
  for (const auto& w : repo.warnings) warned = warned || w.find("loss") != std::string::npos;
  CHECK_MESSAGE(warned, "no warning names the non-finite metric");
  CHECK(read_text(repo.root + "/step-000000001/_checkpoint.json").find("\"loss\": null") !=
        std::string::npos);
  auto one = ckpt::resolve_ref(repo.ctx, repo.root, "1");
  REQUIRE(one.ok());
  REQUIRE(one->meta.metrics.count("loss") == 1);
  CHECK_FALSE(one->meta.metrics.at("loss").has_value());

  auto r2 = repo.save(2, {{"loss", 2.0}}, best_key("loss"));
  CHECK(r2.best_updated);
  auto r3 = repo.save(3, {{"loss", nan}}, best_key("loss"));
  CHECK_FALSE(r3.best_updated);
  auto r4 = repo.save(4, {{"loss", -inf}}, best_key("loss"));
  CHECK_FALSE(r4.best_updated);
  auto r5 = repo.save(5, {{"other", 0.0}}, best_key("loss"));  // the key is missing
  CHECK_FALSE(r5.best_updated);

  auto b = repo.best();
  REQUIRE(b.has_value());
  CHECK(b->path == "step-000000002");
  CHECK(b->value == 2.0);
  CHECK(repo.last() == "step-000000005");
  expect_ref(repo.ctx, repo.root, "best", 2);
}

TEST_CASE("repository_refs: a save reports best.json as it is after the save") {
  ckpt_test::TempDir tmp;
  Repo repo(tmp);
  auto r1 = repo.save(1, {}, {});
  CHECK_FALSE(r1.best.has_value());  // no key: no best.json
  auto r2 = repo.save(2, {{"loss", 2.0}}, best_key("loss"));
  REQUIRE(r2.best.has_value());
  CHECK(r2.best_updated);
  CHECK(r2.best->path == "step-000000002");
  auto r3 = repo.save(3, {{"loss", 3.0}}, best_key("loss"));
  CHECK_FALSE(r3.best_updated);
  REQUIRE(r3.best.has_value());  // not improved: still the earlier one, as the file says
  CHECK(ckpt::serialize_best(*r3.best) == ckpt::serialize_best(*repo.best()));
  CHECK(r3.best->path == "step-000000002");
  CHECK(r3.committed);
  CHECK_FALSE(r3.existing);

  // The same files again: existing, committed by an earlier call, not this one.
  auto again = repo.save(3, {{"loss", 3.0}}, best_key("loss"));
  CHECK(again.existing);
  CHECK_FALSE(again.committed);
  CHECK(again.commit_seq == r3.commit_seq);
  REQUIRE(again.best.has_value());
  CHECK(again.best->path == "step-000000002");
}
