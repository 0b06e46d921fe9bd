// SPDX-License-Identifier: Apache-2.0
// Retention (SPEC §6): the policy as a pure function, and the prune and promote-best operations.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ckpt/error.hpp"
#include "ckpt/format.hpp"
#include "ckpt/repository.hpp"

namespace ckpt {

// What the policy needs to know of one committed checkpoint.
struct RetentionItem {
  std::string name;
  std::uint64_t step = 0;
  std::uint64_t commit_seq = 0;
  std::optional<std::int64_t> created_ms;  // nullopt: unparsable (never kept by keep-within)
  std::optional<double> metric;            // the best key's value; nullopt or non-finite: none
};

struct RetentionRules {
  std::optional<std::uint64_t> keep_last;
  std::optional<std::uint64_t> keep_best;
  std::optional<std::uint64_t> keep_every;
  std::optional<std::int64_t> keep_within_seconds;
  Mode mode = Mode::min;  // how keep-best ranks RetentionItem::metric

  bool empty() const { return !keep_last && !keep_best && !keep_every && !keep_within_seconds; }
};

struct RetentionDecision {
  std::string name;
  bool keep = false;
  std::vector<std::string> reasons;  // "last", "best", "keep-last", ... in that order
};

// Keep/remove for every item, in the items' order. A checkpoint is kept if any
// rule keeps it; the ones named by protect_last and protect_best always are.
// Throws Error(usage) when rules is empty.
std::vector<RetentionDecision> apply_retention(const std::vector<RetentionItem>& items,
                                               const RetentionRules& rules,
                                               const std::vector<std::string>& protect_last,
                                               const std::vector<std::string>& protect_best);

// Rules from a policy (its best_mode ranks keep-best); Error(usage) on a bad duration.
RetentionRules rules_from_policy(const Policy& p);

// ---- prune ------------------------------------------------------------------

struct PruneOptions {
  std::string root;
  Policy rules;  // retention fields given on the command line; else policy.json's
  // Pending sharded steps idle longer than this go (default: policy.json's
  // pending_expiry, else 24h). Given alone, prune only expires and cleans.
  std::optional<std::string> pending_expiry;
  bool dry_run = false;
};

struct PruneReport {
  bool dry_run = false;
  std::vector<RetentionDecision> kept;
  std::vector<std::string> removed;
  std::vector<std::string> cleaned;  // abandoned staging and trash leftovers (root-relative)
  std::vector<PendingStep> expired;  // pending sharded steps removed as idle
  std::vector<Checkpoint> checkpoints;  // what the plan was made from
  std::optional<std::string> best_key;
};
Result<PruneReport> prune(const Context& ctx, const PruneOptions& opts);

// ---- promote-best -------------------------------------------------------------

struct PromoteOptions {
  std::string root;
  std::optional<std::string> ref;  // nullopt: rebuild from every checkpoint
  std::optional<std::string> key;
  std::optional<Mode> mode;
  std::optional<double> value;
  bool force = false;
};

struct PromoteReport {
  bool promoted = false;
  std::string reason;
  std::optional<BestMarker> best;  // best.json after the command
};
Result<PromoteReport> promote_best(const Context& ctx, const PromoteOptions& opts);

}  // namespace ckpt
