// SPDX-License-Identifier: Apache-2.0
// The retention policy as a pure function of the checkpoints, the rules and the markers.
#include "ckpt/retention.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "ckpt/clock.hpp"

namespace ckpt {

RetentionRules rules_from_policy(const Policy& p) {
  RetentionRules r;
  r.keep_last = p.keep_last;
  r.keep_best = p.keep_best;
  r.keep_every = p.keep_every;
  if (r.keep_every && *r.keep_every == 0) {
    throw Error(ErrorKind::usage, "--keep-every must be at least 1");
  }
  if (p.keep_within) {
    r.keep_within_seconds = parse_duration(*p.keep_within);
    if (!r.keep_within_seconds) {
      throw Error(ErrorKind::usage,
                  fmt::format("--keep-within {:?} is not a duration (30m, 12h, 7d, 2w, 1d12h)",
                              *p.keep_within));
    }
  }
  r.mode = p.best_mode.value_or(Mode::min);
  return r;
}

std::vector<RetentionDecision> apply_retention(const std::vector<RetentionItem>& items,
                                               const RetentionRules& rules,
                                               const std::vector<std::string>& protect_last,
                                               const std::vector<std::string>& protect_best) {
  if (rules.empty()) {
    throw Error(ErrorKind::usage,
                "no retention rule: give --keep-last, --keep-best, --keep-every or "
                "--keep-within (or record them in policy.json); prune never deletes "
                "everything by accident");
  }
  std::vector<RetentionDecision> out(items.size());
  auto keep = [&](std::size_t i, const char* reason) {
    auto& r = out[i].reasons;
    if (std::find(r.begin(), r.end(), reason) == r.end()) r.push_back(reason);
  };
  auto named = [](const std::vector<std::string>& v, const std::string& n) {
    return std::find(v.begin(), v.end(), n) != v.end();
  };
  for (std::size_t i = 0; i < items.size(); ++i) {
    out[i].name = items[i].name;
    if (named(protect_last, items[i].name)) keep(i, "last");
    if (named(protect_best, items[i].name)) keep(i, "best");
  }

  std::vector<std::size_t> by_commit(items.size());
  std::iota(by_commit.begin(), by_commit.end(), 0);
  std::sort(by_commit.begin(), by_commit.end(), [&](std::size_t a, std::size_t b) {
    return items[a].commit_seq > items[b].commit_seq;
  });

  if (rules.keep_last) {
    for (std::size_t k = 0; k < by_commit.size() && k < *rules.keep_last; ++k) {
      keep(by_commit[k], "keep-last");
    }
  }
  if (rules.keep_best) {
    std::vector<std::size_t> ranked;
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (items[i].metric && std::isfinite(*items[i].metric)) ranked.push_back(i);
    }
    std::sort(ranked.begin(), ranked.end(), [&](std::size_t a, std::size_t b) {
      double va = *items[a].metric, vb = *items[b].metric;
      if (va != vb) return rules.mode == Mode::min ? va < vb : va > vb;
      return items[a].commit_seq < items[b].commit_seq;  // ties: the earlier commit ranks higher
    });
    for (std::size_t k = 0; k < ranked.size() && k < *rules.keep_best; ++k) {
      keep(ranked[k], "keep-best");
    }
  }
  if (rules.keep_every) {
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (items[i].step % *rules.keep_every == 0) keep(i, "keep-every");
    }
  }
  if (rules.keep_within_seconds && !by_commit.empty()) {
    // Measured back from the newest checkpoint's creation time, not from now,
    // so a job paused for a week does not lose its history on restart.
    std::optional<std::int64_t> ref = items[by_commit.front()].created_ms;
    if (!ref) {
      for (const auto& it : items) {
        if (it.created_ms && (!ref || *it.created_ms > *ref)) ref = it.created_ms;
      }
    }
    if (ref) {
      std::int64_t window = *rules.keep_within_seconds * 1000;
      for (std::size_t i = 0; i < items.size(); ++i) {
        // A clock that went backwards makes the difference negative: kept.
        if (items[i].created_ms && *ref - *items[i].created_ms <= window) keep(i, "keep-within");
      }
    }
  }
  for (auto& d : out) d.keep = !d.reasons.empty();
  return out;
}

}  // namespace ckpt
