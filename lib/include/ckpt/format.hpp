// SPDX-License-Identifier: Apache-2.0
// The on-disk contract of SPEC §2-§6: each file's shape, parsed, validated and serialised here only.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ckpt {

inline constexpr int k_schema_version = 1;
inline constexpr const char* k_meta_file = "_checkpoint.json";
inline constexpr const char* k_sums_file = "SHA256SUMS";
inline constexpr const char* k_last_file = "last";
inline constexpr const char* k_best_file = "best.json";
inline constexpr const char* k_policy_file = "policy.json";
inline constexpr const char* k_private_dir = ".ckpt";
inline constexpr std::uint64_t k_max_step = (std::uint64_t{1} << 63) - 1;
// Largest metadata and marker files a reader accepts.
inline constexpr std::uint64_t k_max_meta_bytes = 64u << 20;
inline constexpr std::uint64_t k_max_marker_bytes = 64u << 10;

// The most digits a step directory's name may have: any zero-padding up to
// this width is read, so a step is found by trying each width, never by
// listing the root.
inline constexpr std::size_t k_max_step_digits = 24;

// "step-000001200".
std::string step_dir_name(std::uint64_t step);
// The step of a "step-<digits>" name of any width up to k_max_step_digits;
// nullopt otherwise.
std::optional<std::uint64_t> parse_step_dir_name(std::string_view name);
// A decimal step 0 <= step < 2^63; nullopt otherwise.
std::optional<std::uint64_t> parse_step(std::string_view text);

enum class Mode { min, max };
const char* mode_name(Mode m);
std::optional<Mode> parse_mode(std::string_view s);
// Strict improvement of candidate over current.
bool improves(Mode mode, double candidate, double current);

struct FileEntry {
  std::string path;
  std::uint64_t size = 0;
  std::optional<std::string> sha256;
  // Sharded checkpoints (SPEC §10): the shard that wrote the file.
  std::optional<std::uint64_t> shard;
};

struct CheckpointMeta {
  std::string name;
  std::uint64_t step = 0;
  std::uint64_t commit_seq = 0;
  std::string created;
  // nullopt: recorded as null (the value was not finite).
  std::map<std::string, std::optional<double>> metrics;
  std::map<std::string, std::string> meta;
  std::string checksum = "sha256";  // "sha256" or "none"
  std::vector<std::string> weights;
  std::vector<FileEntry> files;  // sorted by path
  std::uint64_t total_size = 0;
  std::string tool;
  // Sharded checkpoints (SPEC §10): how many shards wrote it, and their
  // attempt group (an extra field: a late shard of another group is told
  // it was superseded).
  std::optional<std::uint64_t> shards;
  std::optional<std::string> shard_group;
  // The attempt groups its group retired: a late shard of one is superseded.
  std::vector<std::string> shard_retired;

  std::optional<double> metric(const std::string& key) const;
};

std::string serialize_checkpoint(const CheckpointMeta& m);
// Throws Error: integrity when malformed, unsupported when schema_version > 1.
CheckpointMeta parse_checkpoint(std::string_view text);

// "<hex>  <path>\n" lines, as sha256sum writes them.
std::string serialize_sums(const std::vector<FileEntry>& files);
// path -> digest; throws Error(integrity) when malformed.
std::map<std::string, std::string> parse_sums(std::string_view text);

struct BestMarker {
  std::string key;
  Mode mode = Mode::min;
  double value = 0;
  std::uint64_t step = 0;
  std::string path;  // the checkpoint directory name
  std::string updated;
};
std::string serialize_best(const BestMarker& b);
BestMarker parse_best(std::string_view text);

struct Policy {
  std::optional<std::string> best_key;
  std::optional<Mode> best_mode;
  std::optional<std::uint64_t> keep_last;
  std::optional<std::uint64_t> keep_best;
  std::optional<std::uint64_t> keep_every;
  std::optional<std::string> keep_within;
  std::optional<std::string> checksum;
  // save --dedup: a file the newest checkpoint holds at the same stored
  // path with the same size and SHA-256 is shared with it, not written again.
  std::optional<bool> dedup;
  // Pending sharded steps idle longer than this are removed by prune
  // (a duration, like keep_within; default 24h).
  std::optional<std::string> pending_expiry;

  bool has_retention_rule() const {
    return keep_last || keep_best || keep_every || keep_within;
  }
  // Spelled out (not defaulted) so that the header stays C++17.
  bool operator==(const Policy& o) const {
    return best_key == o.best_key && best_mode == o.best_mode && keep_last == o.keep_last &&
           keep_best == o.keep_best && keep_every == o.keep_every &&
           keep_within == o.keep_within && checksum == o.checksum && dedup == o.dedup &&
           pending_expiry == o.pending_expiry;
  }
  bool operator!=(const Policy& o) const { return !(*this == o); }
};
std::string serialize_policy(const Policy& p);
Policy parse_policy(std::string_view text);

// The journal of a `save --move` (private, beside its staging directory):
// each source file renamed into staging, written durably before the first
// rename, so the files of an interrupted move can be put back.
struct MovedFile {
  std::string source;  // absolute path the file came from
  std::string dest;    // its stored path inside the staging directory
  std::uint64_t dev = 0;
  std::uint64_t ino = 0;
};
std::string serialize_move_journal(const std::vector<MovedFile>& files);
// Throws Error(integrity) when malformed.
std::vector<MovedFile> parse_move_journal(std::string_view text);

// ---- sharded saves (private files under .ckpt/pending/STEP/) ----------------

// The longest attempt group name, and the most shards a step may have.
inline constexpr std::size_t k_max_group_bytes = 256;
inline constexpr std::uint64_t k_max_shards = 1u << 20;

// set.json: the attempt group a pending step's shards belong to.
struct ShardSet {
  std::uint64_t step = 0;
  std::string group;
  std::uint64_t count = 0;
  bool force = false;                // a shard asked to replace a committed step
  std::vector<std::string> retired;  // groups this one superseded, oldest first
  std::string created;
  std::string id;  // unique to this set: names its merge directory
};
std::string serialize_shard_set(const ShardSet& s);
ShardSet parse_shard_set(std::string_view text);

// shard-IIIII.json: one recorded shard, written atomically once its files
// are durable in the directory it names.
struct ShardRecord {
  std::uint64_t step = 0;
  std::string group;
  std::uint64_t index = 0;
  std::uint64_t count = 0;
  std::string dir;  // the shard's data directory, beside the record
  std::string checksum = "sha256";
  std::vector<FileEntry> files;  // sorted by path
  std::map<std::string, std::optional<double>> metrics;
  std::map<std::string, std::string> meta;
  std::vector<std::string> weights;
  Policy policy;  // the policy options this shard was given
  std::string updated;
  // Object-store roots: each file's ETag as it was uploaded, by stored path
  // (the committer checks that no object changed since it was recorded).
  std::map<std::string, std::string> etags;
};
std::string serialize_shard_record(const ShardRecord& r);
ShardRecord parse_shard_record(std::string_view text);

// A group name: 1 to k_max_group_bytes printable ASCII characters.
std::optional<std::string> group_problem(std::string_view group);

// The first line of a `last` file, without its newline; throws when empty
// or not text.
std::string parse_last_text(std::string_view text);
std::string serialize_last(const std::string& name);

}  // namespace ckpt
