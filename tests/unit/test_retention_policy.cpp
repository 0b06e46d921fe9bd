// SPDX-License-Identifier: Apache-2.0
// The retention policy as a table: each rule alone, unions, ties, NaN, marker protection, edges.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <set>

#include "ckpt/retention.hpp"

using namespace ckpt;

namespace {

RetentionItem item(std::uint64_t step, std::uint64_t seq, std::optional<double> metric = {},
                   std::optional<std::int64_t> created_ms = {}) {
  RetentionItem it;
  it.name = step_dir_name(step);
  it.step = step;
  it.commit_seq = seq;
  it.metric = metric;
  it.created_ms = created_ms.value_or(static_cast<std::int64_t>(seq) * 1000);
  return it;
}

std::set<std::uint64_t> kept_steps(const std::vector<RetentionItem>& items,
                                   const std::vector<RetentionDecision>& d) {
  std::set<std::uint64_t> out;
  REQUIRE(d.size() == items.size());
  for (std::size_t i = 0; i < d.size(); ++i) {
    CHECK(d[i].name == items[i].name);
    CHECK(d[i].keep == !d[i].reasons.empty());
    if (d[i].keep) out.insert(items[i].step);
  }
  return out;
}

const RetentionDecision& decision(const std::vector<RetentionDecision>& d, std::uint64_t step) {
  for (const auto& x : d) {
    if (x.name == step_dir_name(step)) return x;
  }
  FAIL("no decision for step " << step);
  return d.front();
}

std::vector<RetentionItem> ten() {
  std::vector<RetentionItem> v;
  // Losses: step 3 is best (0.1), steps 5 and 8 tie for second (0.2), step 6 is NaN.
  const double loss[] = {0.9, 0.8, 0.1, 0.7, 0.2, NAN, 0.6, 0.2, 0.5, 0.4};
  for (std::uint64_t i = 1; i <= 10; ++i) v.push_back(item(i, i, loss[i - 1]));
  return v;
}

}  // namespace

TEST_CASE("retention: no rule at all is refused") {
  auto items = ten();
  RetentionRules none;
  try {
    apply_retention(items, none, {}, {});
    FAIL("an empty policy was accepted");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::usage);
  }
}

TEST_CASE("retention: keep-last keeps the N most recently committed, not the highest steps") {
  std::vector<RetentionItem> items = {item(10, 1), item(20, 2), item(5, 3), item(30, 4)};
  RetentionRules r;
  r.keep_last = 2;
  CHECK(kept_steps(items, apply_retention(items, r, {}, {})) == std::set<std::uint64_t>{5, 30});
}

TEST_CASE("retention: keep-last 0 alone keeps only last and best") {
  auto items = ten();
  RetentionRules r;
  r.keep_last = 0;
  auto d = apply_retention(items, r, {step_dir_name(10)}, {step_dir_name(3)});
  CHECK(kept_steps(items, d) == std::set<std::uint64_t>{3, 10});
  CHECK(decision(d, 10).reasons == std::vector<std::string>{"last"});
  CHECK(decision(d, 3).reasons == std::vector<std::string>{"best"});
}

TEST_CASE("retention: keep-best ranks by value, ties to the earlier commit, NaN never") {
  auto items = ten();
  RetentionRules r;
  r.keep_best = 2;
  CHECK(kept_steps(items, apply_retention(items, r, {}, {})) == std::set<std::uint64_t>{3, 5});
  r.keep_best = 3;
  CHECK(kept_steps(items, apply_retention(items, r, {}, {})) == std::set<std::uint64_t>{3, 5, 8});
  r.keep_best = 100;  // more than there are: every finite one, never the NaN
  auto kept = kept_steps(items, apply_retention(items, r, {}, {}));
  CHECK(kept.size() == 9);
  CHECK(kept.count(6) == 0);
}

TEST_CASE("retention: keep-best in max mode and with missing metrics") {
  std::vector<RetentionItem> items = {item(1, 1, 0.5), item(2, 2, std::nullopt), item(3, 3, 0.9),
                                      item(4, 4, std::numeric_limits<double>::infinity())};
  RetentionRules r;
  r.keep_best = 1;
  r.mode = Mode::max;
  CHECK(kept_steps(items, apply_retention(items, r, {}, {})) == std::set<std::uint64_t>{3});
  r.mode = Mode::min;
  CHECK(kept_steps(items, apply_retention(items, r, {}, {})) == std::set<std::uint64_t>{1});
}

TEST_CASE("retention: keep-every keeps multiples of S") {
  std::vector<RetentionItem> items;
  for (std::uint64_t s = 0; s <= 3000; s += 500) items.push_back(item(s, s / 500 + 1));
  RetentionRules r;
  r.keep_every = 1000;
  CHECK(kept_steps(items, apply_retention(items, r, {}, {})) ==
        std::set<std::uint64_t>{0, 1000, 2000, 3000});
}

TEST_CASE("retention: keep-within measures from the newest checkpoint, boundary included") {
  const std::int64_t h = 3600 * 1000;
  const std::int64_t t = 1'000'000 * h;
  std::vector<RetentionItem> items = {
      item(1, 1, {}, t - 8 * 24 * h),  // outside 7d
      item(2, 2, {}, t - 7 * 24 * h),  // exactly on the boundary: kept
      item(3, 3, {}, t - 2 * 24 * h),
      item(4, 4, {}, t + h),  // created after the newest: the clock went backwards
      item(5, 5, {}, t),      // the newest commit
  };
  RetentionRules r;
  r.keep_within_seconds = 7 * 24 * 3600;
  auto d = apply_retention(items, r, {}, {});
  CHECK(kept_steps(items, d) == std::set<std::uint64_t>{2, 3, 4, 5});
  CHECK(decision(d, 2).reasons == std::vector<std::string>{"keep-within"});
  r.keep_within_seconds = 7 * 24 * 3600 - 1;
  CHECK(kept_steps(items, apply_retention(items, r, {}, {})) == std::set<std::uint64_t>{3, 4, 5});
}

TEST_CASE("retention: an unparsable creation time is never kept by keep-within") {
  std::vector<RetentionItem> items = {item(1, 1), item(2, 2)};
  items[0].created_ms.reset();
  RetentionRules r;
  r.keep_within_seconds = 1'000'000;
  CHECK(kept_steps(items, apply_retention(items, r, {}, {})) == std::set<std::uint64_t>{2});
}

TEST_CASE("retention: the rules are a union, with every reason listed in order") {
  auto items = ten();
  RetentionRules r;
  r.keep_last = 2;
  r.keep_best = 1;
  r.keep_every = 5;
  auto d = apply_retention(items, r, {step_dir_name(10)}, {step_dir_name(3)});
  CHECK(kept_steps(items, d) == std::set<std::uint64_t>{3, 5, 9, 10});
  CHECK(decision(d, 10).reasons ==
        std::vector<std::string>{"last", "keep-last", "keep-every"});
  CHECK(decision(d, 3).reasons == std::vector<std::string>{"best", "keep-best"});
  CHECK(decision(d, 9).reasons == std::vector<std::string>{"keep-last"});
  CHECK(decision(d, 5).reasons == std::vector<std::string>{"keep-every"});
  CHECK_FALSE(decision(d, 8).keep);
}

TEST_CASE("retention: last and best are protected when every rule would remove them") {
  auto items = ten();
  RetentionRules r;
  r.keep_every = 1000;  // keeps nothing here
  // A stale marker names step 7 while step 10 is the newest: both are protected.
  auto d = apply_retention(items, r, {step_dir_name(7), step_dir_name(10)},
                           {step_dir_name(9), step_dir_name(3)});
  CHECK(kept_steps(items, d) == std::set<std::uint64_t>{3, 7, 9, 10});
}

TEST_CASE("retention: rules_from_policy validates durations and keep-every") {
  Policy p;
  p.keep_within = "1d12h";
  p.best_mode = Mode::max;
  auto r = rules_from_policy(p);
  REQUIRE(r.keep_within_seconds);
  CHECK(*r.keep_within_seconds == 129600);
  CHECK(r.mode == Mode::max);
  p.keep_within = "soon";
  CHECK_THROWS_AS(rules_from_policy(p), Error);
  Policy q;
  q.keep_every = 0;
  CHECK_THROWS_AS(rules_from_policy(q), Error);
}
