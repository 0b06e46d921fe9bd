// SPDX-License-Identifier: Apache-2.0
// The best rule (SPEC §5): strict improvement, ties keep the earlier commit, NaN never best.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "ckpt/format.hpp"
#include "ckpt/repository.hpp"
#include "internal.hpp"

namespace {

const double k_nan = std::numeric_limits<double>::quiet_NaN();
const double k_inf = std::numeric_limits<double>::infinity();

// A checkpoint as list_checkpoints would return it, built by hand.
ckpt::Checkpoint make(std::uint64_t step, std::uint64_t commit_seq,
                      std::optional<std::optional<double>> loss) {
  ckpt::Checkpoint c;
  c.name = ckpt::step_dir_name(step);
  c.path = "/nonexistent/root/" + c.name;
  c.meta.name = c.name;
  c.meta.step = step;
  c.meta.commit_seq = commit_seq;
  c.meta.created = "2026-11-28T12:00:00.000Z";
  c.meta.metrics["other"] = 100.0 - static_cast<double>(step);
  if (loss) c.meta.metrics["loss"] = *loss;
  return c;
}

}  // namespace

TEST_CASE("best_rule: improves() is strict in min mode") {
  CHECK(ckpt::improves(ckpt::Mode::min, 0.5, 1.0));
  CHECK_FALSE(ckpt::improves(ckpt::Mode::min, 1.0, 0.5));
  CHECK_FALSE(ckpt::improves(ckpt::Mode::min, 0.5, 0.5));
  CHECK_FALSE(ckpt::improves(ckpt::Mode::min, 0.0, -0.0));
  CHECK(ckpt::improves(ckpt::Mode::min, -3.0, -2.0));
  CHECK(ckpt::improves(ckpt::Mode::min, std::nextafter(1.0, 0.0), 1.0));
}

TEST_CASE("best_rule: improves() is strict in max mode") {
  CHECK(ckpt::improves(ckpt::Mode::max, 1.0, 0.5));
  CHECK_FALSE(ckpt::improves(ckpt::Mode::max, 0.5, 1.0));
  CHECK_FALSE(ckpt::improves(ckpt::Mode::max, 0.91, 0.91));
  CHECK(ckpt::improves(ckpt::Mode::max, std::nextafter(1.0, 2.0), 1.0));
}

TEST_CASE("best_rule: a non-finite candidate never improves") {
  for (auto mode : {ckpt::Mode::min, ckpt::Mode::max}) {
    CAPTURE(ckpt::mode_name(mode));
    CHECK_FALSE(ckpt::improves(mode, k_nan, 1.0));
    CHECK_FALSE(ckpt::improves(mode, -k_nan, 1.0));
    CHECK_FALSE(ckpt::improves(mode, k_nan, k_nan));
    CHECK_FALSE(ckpt::improves(mode, k_inf, 1.0));
    CHECK_FALSE(ckpt::improves(mode, -k_inf, 1.0));
  }
  CHECK_FALSE(ckpt::improves(ckpt::Mode::min, -k_inf, 1e308));
  CHECK_FALSE(ckpt::improves(ckpt::Mode::max, k_inf, -1e308));
}

TEST_CASE("best_rule: compute_best picks the lowest value in min mode") {
  std::vector<ckpt::Checkpoint> cps = {make(1, 1, 1.0), make(2, 2, 0.25), make(3, 3, 0.8)};
  auto b = ckpt::detail::compute_best(cps, "loss", ckpt::Mode::min);
  REQUIRE(b.has_value());
  CHECK(b->key == "loss");
  CHECK(b->mode == ckpt::Mode::min);
  CHECK(b->value == 0.25);
  CHECK(b->step == 2);
  CHECK(b->path == "step-000000002");
  CHECK_FALSE(b->updated.empty());
}

TEST_CASE("best_rule: compute_best picks the highest value in max mode") {
  std::vector<ckpt::Checkpoint> cps = {make(1, 1, 1.0), make(2, 2, 0.25), make(3, 3, 0.8)};
  auto b = ckpt::detail::compute_best(cps, "loss", ckpt::Mode::max);
  REQUIRE(b.has_value());
  CHECK(b->mode == ckpt::Mode::max);
  CHECK(b->value == 1.0);
  CHECK(b->step == 1);
  CHECK(b->path == "step-000000001");
  // Another key.
  auto o = ckpt::detail::compute_best(cps, "other", ckpt::Mode::max);
  REQUIRE(o.has_value());
  CHECK(o->step == 1);
  CHECK(o->value == 99.0);
}

TEST_CASE("best_rule: compute_best ties keep the earlier commit_seq") {
  // The tie between steps 2 and 4; listed by step, and in reverse.
  std::vector<ckpt::Checkpoint> cps = {make(1, 1, 1.0), make(2, 2, 0.5), make(3, 3, 0.7),
                                       make(4, 4, 0.5)};
  auto b = ckpt::detail::compute_best(cps, "loss", ckpt::Mode::min);
  REQUIRE(b.has_value());
  CHECK(b->path == "step-000000002");
  std::vector<ckpt::Checkpoint> rev(cps.rbegin(), cps.rend());
  auto r = ckpt::detail::compute_best(rev, "loss", ckpt::Mode::min);
  REQUIRE(r.has_value());
  CHECK(r->path == "step-000000002");

  // Commit order, not step order, decides: step 9 was committed before step 5.
  std::vector<ckpt::Checkpoint> late = {make(5, 8, 0.5), make(9, 3, 0.5)};
  auto l = ckpt::detail::compute_best(late, "loss", ckpt::Mode::min);
  REQUIRE(l.has_value());
  CHECK(l->path == "step-000000009");
  CHECK(l->step == 9);

  // Same in max mode.
  std::vector<ckpt::Checkpoint> mx = {make(1, 5, 2.0), make(2, 1, 2.0), make(3, 3, 1.0)};
  auto m = ckpt::detail::compute_best(mx, "loss", ckpt::Mode::max);
  REQUIRE(m.has_value());
  CHECK(m->path == "step-000000002");
}

TEST_CASE("best_rule: compute_best never picks a missing, null or non-finite value") {
  std::vector<ckpt::Checkpoint> cps = {
      make(1, 1, std::nullopt),                          // key absent
      make(2, 2, std::optional<double>(std::nullopt)),   // recorded as null
      make(3, 3, k_nan),
      make(4, 4, -k_inf),
      make(5, 5, 2.0),
      make(6, 6, k_nan),
  };
  auto b = ckpt::detail::compute_best(cps, "loss", ckpt::Mode::min);
  REQUIRE(b.has_value());
  CHECK(b->path == "step-000000005");
  CHECK(b->value == 2.0);
  auto m = ckpt::detail::compute_best(cps, "loss", ckpt::Mode::max);
  REQUIRE(m.has_value());
  CHECK(m->path == "step-000000005");

  // NaN first in the list does not block later values.
  std::vector<ckpt::Checkpoint> nan_first = {make(1, 1, k_nan), make(2, 2, 3.0), make(3, 3, 1.0)};
  auto n = ckpt::detail::compute_best(nan_first, "loss", ckpt::Mode::min);
  REQUIRE(n.has_value());
  CHECK(n->path == "step-000000003");

  // Nothing qualifies: no best at all.
  std::vector<ckpt::Checkpoint> none = {make(1, 1, std::nullopt), make(2, 2, k_nan),
                                        make(3, 3, std::optional<double>(std::nullopt))};
  CHECK_FALSE(ckpt::detail::compute_best(none, "loss", ckpt::Mode::min).has_value());
  CHECK_FALSE(ckpt::detail::compute_best({}, "loss", ckpt::Mode::min).has_value());
  CHECK_FALSE(ckpt::detail::compute_best(cps, "absent_key", ckpt::Mode::min).has_value());
}

TEST_CASE("best_rule: newest is the highest commit_seq") {
  std::vector<ckpt::Checkpoint> cps = {make(1, 1, 1.0), make(7, 9, 1.0), make(9, 4, 1.0)};
  const ckpt::Checkpoint* n = ckpt::detail::newest(cps);
  REQUIRE(n != nullptr);
  CHECK(n->name == "step-000000007");
  CHECK(ckpt::detail::newest({}) == nullptr);
}
