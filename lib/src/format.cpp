// SPDX-License-Identifier: Apache-2.0
// Parsing and serialising _checkpoint.json, SHA256SUMS, best.json, policy.json and last.
#include "ckpt/format.hpp"

#include <cmath>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ckpt/clock.hpp"
#include "ckpt/error.hpp"
#include "ckpt/hash.hpp"
#include "ckpt/paths.hpp"

namespace ckpt {

using ordered_json = nlohmann::ordered_json;
using json = nlohmann::json;

namespace {

constexpr int k_max_json_depth = 64;

[[noreturn]] void bad(const char* file, const std::string& why) {
  throw Error(ErrorKind::integrity, fmt::format("invalid {}: {}", file, why));
}

// nlohmann's parser recurses; refuse deep nesting before it can exhaust the stack.
void check_depth(std::string_view text, const char* file) {
  int depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > k_max_json_depth) bad(file, "nested too deeply");
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
}

json parse_object(std::string_view text, const char* file) {
  check_depth(text, file);
  // A key given twice would let two readers disagree on the value: refuse it.
  // Cheaply first: an object that ends with fewer members than keys were
  // read has one twice; only then is the text read again to name it.
  std::vector<std::size_t> counts;
  bool twice = false;
  json::parser_callback_t count = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        counts.push_back(0);
        break;
      case json::parse_event_t::object_end:
        if (!counts.empty()) {
          if (parsed.size() != counts.back()) twice = true;
          counts.pop_back();
        }
        break;
      case json::parse_event_t::key:
        if (!counts.empty()) ++counts.back();
        break;
      default:
        break;
    }
    return true;
  };
  json j = json::parse(text, count, false);
  if (j.is_discarded()) bad(file, "not valid JSON");
  if (twice) {
    std::vector<std::set<std::string>> keys;
    std::string duplicate;
    json::parser_callback_t name = [&](int, json::parse_event_t event, json& parsed) {
      if (event == json::parse_event_t::object_start) keys.emplace_back();
      if (event == json::parse_event_t::object_end && !keys.empty()) keys.pop_back();
      if (event == json::parse_event_t::key && !keys.empty() &&
          !keys.back().insert(parsed.get<std::string>()).second && duplicate.empty()) {
        duplicate = parsed.get<std::string>();
      }
      return true;
    };
    json again = json::parse(text, name, false);
    (void)again;
    bad(file, fmt::format("key {:?} appears twice in one object", duplicate));
  }
  if (!j.is_object()) bad(file, "not a JSON object");
  return j;
}

const json& field(const json& j, const char* key, const char* file) {
  auto it = j.find(key);
  if (it == j.end()) bad(file, fmt::format("missing field \"{}\"", key));
  return *it;
}

std::string get_string(const json& j, const char* key, const char* file) {
  const json& v = field(j, key, file);
  if (!v.is_string()) bad(file, fmt::format("field \"{}\" must be a string", key));
  return v.get<std::string>();
}

std::uint64_t as_uint(const json& v, const char* key, const char* file, std::uint64_t max) {
  if (v.is_number_unsigned()) {
    auto n = v.get<std::uint64_t>();
    if (n <= max) return n;
  } else if (v.is_number_integer() && v.get<std::int64_t>() >= 0) {
    auto n = static_cast<std::uint64_t>(v.get<std::int64_t>());
    if (n <= max) return n;
  }
  bad(file, fmt::format("field \"{}\" must be an integer from 0 to {}", key, max));
}

std::uint64_t get_uint(const json& j, const char* key, const char* file,
                       std::uint64_t max = UINT64_MAX) {
  return as_uint(field(j, key, file), key, file, max);
}

// Metric values as JSON numbers; a non-finite or absent value is null.
ordered_json metrics_json(const std::map<std::string, std::optional<double>>& metrics) {
  ordered_json out = ordered_json::object();
  for (const auto& [k, v] : metrics) {
    out[k] = v && std::isfinite(*v) ? ordered_json(*v) : ordered_json(nullptr);
  }
  return out;
}

// "files" entries: path, size, sha256 when recorded and, with_shard, shard when set.
ordered_json files_json(const std::vector<FileEntry>& files, bool with_shard) {
  ordered_json out = ordered_json::array();
  for (const auto& f : files) {
    ordered_json e;
    e["path"] = f.path;
    e["size"] = f.size;
    if (f.sha256) e["sha256"] = *f.sha256;
    if (with_shard && f.shard) e["shard"] = *f.shard;
    out.push_back(std::move(e));
  }
  return out;
}

std::map<std::string, std::optional<double>> parse_metrics(const json& j, const char* F) {
  std::map<std::string, std::optional<double>> out;
  if (auto it = j.find("metrics"); it != j.end()) {
    if (!it->is_object()) bad(F, "\"metrics\" must be an object");
    for (const auto& [k, v] : it->items()) {
      if (v.is_null()) {
        out[k] = std::nullopt;
      } else if (v.is_number()) {
        out[k] = v.get<double>();
      } else {
        bad(F, fmt::format("metric {:?} must be a number or null", k));
      }
    }
  }
  return out;
}

std::map<std::string, std::string> parse_meta(const json& j, const char* F) {
  std::map<std::string, std::string> out;
  if (auto it = j.find("meta"); it != j.end()) {
    if (!it->is_object()) bad(F, "\"meta\" must be an object");
    for (const auto& [k, v] : it->items()) {
      if (!v.is_string()) bad(F, fmt::format("meta {:?} must be a string", k));
      out[k] = v.get<std::string>();
    }
  }
  return out;
}

// A files entry's "sha256": required when the checksum is sha256.
std::optional<std::string> parse_digest(const json& e, const std::string& path,
                                        const std::string& checksum, const char* F) {
  if (auto it = e.find("sha256"); it != e.end()) {
    if (!it->is_string() || !is_sha256_hex(it->get<std::string>())) {
      bad(F, fmt::format("sha256 of {:?} is not 64 lowercase hex digits", path));
    }
    return it->get<std::string>();
  }
  if (checksum == "sha256") bad(F, fmt::format("{:?} has no sha256", path));
  return std::nullopt;
}

void check_schema(const json& j, const char* file) {
  const json& v = field(j, "schema_version", file);
  if (!v.is_number_integer()) bad(file, "field \"schema_version\" must be an integer");
  if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) {
    throw Error(ErrorKind::unsupported,
                fmt::format("{} has schema_version {}, this ckpt reads up to {}; upgrade ckpt", file,
                            v.get<std::uint64_t>(), k_schema_version));
  }
  auto version = v.get<std::int64_t>();
  if (version > k_schema_version) {
    throw Error(ErrorKind::unsupported,
                fmt::format("{} has schema_version {}, this ckpt reads up to {}; upgrade ckpt",
                            file, version, k_schema_version));
  }
  if (version < 1) bad(file, "schema_version must be at least 1");
}

}  // namespace

std::string step_dir_name(std::uint64_t step) { return fmt::format("step-{:09}", step); }

std::optional<std::uint64_t> parse_step(std::string_view text) {
  if (text.empty() || text.size() > 19) return std::nullopt;
  std::uint64_t n = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (n > k_max_step) return std::nullopt;
  return n;
}

std::optional<std::uint64_t> parse_step_dir_name(std::string_view name) {
  if (name.substr(0, 5) != "step-") return std::nullopt;
  std::string_view digits = name.substr(5);
  if (digits.size() > k_max_step_digits) return std::nullopt;
  // Leading zeros beyond the canonical width are accepted; keep the value bounded.
  while (digits.size() > 1 && digits.front() == '0') digits.remove_prefix(1);
  if (name.size() == 5) return std::nullopt;
  return parse_step(digits);
}

const char* mode_name(Mode m) { return m == Mode::min ? "min" : "max"; }

std::optional<Mode> parse_mode(std::string_view s) {
  if (s == "min") return Mode::min;
  if (s == "max") return Mode::max;
  return std::nullopt;
}

bool improves(Mode mode, double candidate, double current) {
  if (!std::isfinite(candidate)) return false;
  if (!std::isfinite(current)) return true;
  return mode == Mode::min ? candidate < current : candidate > current;
}

std::optional<double> CheckpointMeta::metric(const std::string& key) const {
  auto it = metrics.find(key);
  if (it == metrics.end()) return std::nullopt;
  return it->second;
}

std::string serialize_checkpoint(const CheckpointMeta& m) {
  ordered_json j;
  j["format"] = "ckpt";
  j["schema_version"] = k_schema_version;
  j["name"] = m.name;
  j["step"] = m.step;
  j["commit_seq"] = m.commit_seq;
  j["created"] = m.created;
  j["metrics"] = metrics_json(m.metrics);
  ordered_json meta = ordered_json::object();
  for (const auto& [k, v] : m.meta) meta[k] = v;
  j["meta"] = meta;
  j["checksum"] = m.checksum;
  j["weights"] = m.weights;
  j["files"] = files_json(m.files, true);
  j["total_size"] = m.total_size;
  j["tool"] = m.tool;
  if (m.shards) j["shards"] = *m.shards;
  if (m.shard_group) j["shard_group"] = *m.shard_group;
  if (!m.shard_retired.empty()) j["shard_retired"] = m.shard_retired;
  return j.dump(2) + "\n";
}

CheckpointMeta parse_checkpoint(std::string_view text) {
  const char* F = k_meta_file;
  json j = parse_object(text, F);
  check_schema(j, F);
  if (get_string(j, "format", F) != "ckpt") bad(F, "field \"format\" must be \"ckpt\"");
  CheckpointMeta m;
  m.name = get_string(j, "name", F);
  auto name_step = parse_step_dir_name(m.name);
  if (!name_step) bad(F, fmt::format("\"name\" {:?} is not a step directory name", m.name));
  m.step = get_uint(j, "step", F, k_max_step);
  if (*name_step != m.step) bad(F, "\"name\" and \"step\" disagree");
  m.commit_seq = get_uint(j, "commit_seq", F);
  m.created = get_string(j, "created", F);
  if (!parse_rfc3339_ms(m.created)) bad(F, "\"created\" is not an RFC 3339 UTC timestamp");
  m.metrics = parse_metrics(j, F);
  m.meta = parse_meta(j, F);
  m.checksum = get_string(j, "checksum", F);
  if (m.checksum != "sha256" && m.checksum != "none") {
    bad(F, fmt::format("unknown checksum {:?}", m.checksum));
  }
  const json& files = field(j, "files", F);
  if (!files.is_array()) bad(F, "\"files\" must be an array");
  std::set<std::string> seen;
  std::uint64_t total = 0;
  for (const auto& e : files) {
    if (!e.is_object()) bad(F, "a \"files\" entry is not an object");
    FileEntry f;
    f.path = get_string(e, "path", F);
    if (auto why = stored_path_problem(f.path)) {
      bad(F, fmt::format("stored path {:?}: {}", f.path, *why));
    }
    if (f.path == k_meta_file || f.path == k_sums_file) {
      bad(F, fmt::format("stored path {:?} is reserved", f.path));
    }
    if (!seen.insert(f.path).second) bad(F, fmt::format("stored path {:?} is listed twice", f.path));
    f.size = get_uint(e, "size", F);
    f.sha256 = parse_digest(e, f.path, m.checksum, F);
    if (f.size > UINT64_MAX - total) bad(F, "the file sizes add up to more than 2^64");
    if (e.contains("shard")) f.shard = get_uint(e, "shard", F, k_max_shards - 1);
    total += f.size;
    m.files.push_back(std::move(f));
  }
  if (j.contains("shards")) {
    m.shards = get_uint(j, "shards", F, k_max_shards);
    for (const auto& f : m.files) {
      if (!f.shard || *f.shard >= *m.shards) {
        bad(F, fmt::format("{:?} names no shard below \"shards\"", f.path));
      }
    }
  }
  if (auto it = j.find("shard_group"); it != j.end() && it->is_string()) {
    m.shard_group = it->get<std::string>();
  }
  if (auto it = j.find("shard_retired"); it != j.end() && it->is_array()) {
    for (const auto& g : *it) {
      if (g.is_string()) m.shard_retired.push_back(g.get<std::string>());
    }
  }
  if (auto it = j.find("weights"); it != j.end()) {
    if (!it->is_array()) bad(F, "\"weights\" must be an array");
    for (const auto& w : *it) {
      if (!w.is_string()) bad(F, "\"weights\" entries must be strings");
      if (!seen.count(w.get<std::string>())) {
        bad(F, fmt::format("weights entry {:?} is not a stored file", w.get<std::string>()));
      }
      m.weights.push_back(w.get<std::string>());
    }
  }
  m.total_size = get_uint(j, "total_size", F);
  if (m.total_size != total) bad(F, "\"total_size\" is not the sum of the file sizes");
  if (auto it = j.find("tool"); it != j.end() && it->is_string()) m.tool = it->get<std::string>();
  return m;
}

std::string serialize_sums(const std::vector<FileEntry>& files) {
  std::string out;
  for (const auto& f : files) {
    if (f.sha256) out += fmt::format("{}  {}\n", *f.sha256, f.path);
  }
  return out;
}

std::map<std::string, std::string> parse_sums(std::string_view text) {
  std::map<std::string, std::string> out;
  std::size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) bad(k_sums_file, "last line has no newline");
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.size() < 67 || line[64] != ' ' || (line[65] != ' ' && line[65] != '*')) {
      bad(k_sums_file, fmt::format("line {} is not \"<sha256>  <path>\"", line_no));
    }
    std::string digest(line.substr(0, 64));
    std::string path(line.substr(66));
    if (!is_sha256_hex(digest)) bad(k_sums_file, fmt::format("line {}: bad digest", line_no));
    if (auto why = stored_path_problem(path)) {
      bad(k_sums_file, fmt::format("line {}: {}", line_no, *why));
    }
    if (!out.emplace(path, digest).second) {
      bad(k_sums_file, fmt::format("line {}: {:?} listed twice", line_no, path));
    }
  }
  return out;
}

std::string serialize_best(const BestMarker& b) {
  ordered_json j;
  j["schema_version"] = k_schema_version;
  j["key"] = b.key;
  j["mode"] = mode_name(b.mode);
  j["value"] = b.value;
  j["step"] = b.step;
  j["path"] = b.path;
  j["updated"] = b.updated;
  return j.dump() + "\n";
}

BestMarker parse_best(std::string_view text) {
  const char* F = k_best_file;
  json j = parse_object(text, F);
  check_schema(j, F);
  BestMarker b;
  b.key = get_string(j, "key", F);
  if (b.key.empty()) bad(F, "\"key\" is empty");
  auto mode = parse_mode(get_string(j, "mode", F));
  if (!mode) bad(F, "\"mode\" must be \"min\" or \"max\"");
  b.mode = *mode;
  const json& v = field(j, "value", F);
  if (!v.is_number()) bad(F, "\"value\" must be a number");
  b.value = v.get<double>();
  b.step = get_uint(j, "step", F, k_max_step);
  b.path = get_string(j, "path", F);
  auto path_step = parse_step_dir_name(b.path);
  if (!path_step || b.path.find('/') != std::string::npos) {
    bad(F, fmt::format("\"path\" {:?} is not a checkpoint directory name", b.path));
  }
  if (*path_step != b.step) bad(F, "\"path\" and \"step\" disagree");
  if (auto it = j.find("updated"); it != j.end() && it->is_string()) {
    b.updated = it->get<std::string>();
  }
  return b;
}

namespace {

ordered_json policy_json(const Policy& p) {
  ordered_json j = ordered_json::object();
  if (p.best_key) j["best_key"] = *p.best_key;
  if (p.best_mode) j["best_mode"] = mode_name(*p.best_mode);
  if (p.keep_last) j["keep_last"] = *p.keep_last;
  if (p.keep_best) j["keep_best"] = *p.keep_best;
  if (p.keep_every) j["keep_every"] = *p.keep_every;
  if (p.keep_within) j["keep_within"] = *p.keep_within;
  if (p.checksum) j["checksum"] = *p.checksum;
  if (p.dedup) j["dedup"] = *p.dedup;
  if (p.pending_expiry) j["pending_expiry"] = *p.pending_expiry;
  return j;
}

Policy policy_from_json(const json& j, const char* F) {
  Policy p;
  if (j.contains("best_key")) {
    p.best_key = get_string(j, "best_key", F);
    if (p.best_key->empty()) bad(F, "\"best_key\" is empty");
  }
  if (j.contains("best_mode")) {
    p.best_mode = parse_mode(get_string(j, "best_mode", F));
    if (!p.best_mode) bad(F, "\"best_mode\" must be \"min\" or \"max\"");
  }
  if (j.contains("keep_last")) p.keep_last = get_uint(j, "keep_last", F);
  if (j.contains("keep_best")) p.keep_best = get_uint(j, "keep_best", F);
  if (j.contains("keep_every")) {
    p.keep_every = get_uint(j, "keep_every", F);
    if (*p.keep_every == 0) bad(F, "\"keep_every\" must be at least 1");
  }
  if (j.contains("keep_within")) {
    p.keep_within = get_string(j, "keep_within", F);
    if (!parse_duration(*p.keep_within)) bad(F, "\"keep_within\" is not a duration");
  }
  if (j.contains("checksum")) {
    p.checksum = get_string(j, "checksum", F);
    if (*p.checksum != "sha256" && *p.checksum != "none") bad(F, "unknown \"checksum\"");
  }
  if (auto it = j.find("dedup"); it != j.end()) {
    if (!it->is_boolean()) bad(F, "\"dedup\" must be true or false");
    p.dedup = it->get<bool>();
  }
  if (j.contains("pending_expiry")) {
    p.pending_expiry = get_string(j, "pending_expiry", F);
    if (!parse_duration(*p.pending_expiry)) bad(F, "\"pending_expiry\" is not a duration");
  }
  return p;
}

}  // namespace

std::string serialize_policy(const Policy& p) {
  ordered_json j;
  j["schema_version"] = k_schema_version;
  j.update(policy_json(p));
  return j.dump(2) + "\n";
}

Policy parse_policy(std::string_view text) {
  const char* F = k_policy_file;
  json j = parse_object(text, F);
  check_schema(j, F);
  return policy_from_json(j, F);
}

std::optional<std::string> group_problem(std::string_view group) {
  if (group.empty()) return "it is empty";
  if (group.size() > k_max_group_bytes) {
    return fmt::format("it is longer than {} bytes", k_max_group_bytes);
  }
  for (char c : group) {
    if (c < 0x20 || c > 0x7e) return "it holds a character that is not printable ASCII";
  }
  return std::nullopt;
}

std::string serialize_shard_set(const ShardSet& s) {
  ordered_json j;
  j["schema_version"] = k_schema_version;
  j["step"] = s.step;
  j["group"] = s.group;
  j["count"] = s.count;
  j["force"] = s.force;
  j["retired"] = s.retired;
  j["created"] = s.created;
  j["id"] = s.id;
  return j.dump() + "\n";
}

ShardSet parse_shard_set(std::string_view text) {
  const char* F = "shard set";
  json j = parse_object(text, F);
  check_schema(j, F);
  ShardSet s;
  s.step = get_uint(j, "step", F, k_max_step);
  s.group = get_string(j, "group", F);
  if (auto why = group_problem(s.group)) bad(F, fmt::format("group: {}", *why));
  s.count = get_uint(j, "count", F, k_max_shards);
  if (s.count < 2) bad(F, "\"count\" must be at least 2");
  if (auto it = j.find("force"); it != j.end()) {
    if (!it->is_boolean()) bad(F, "\"force\" must be true or false");
    s.force = it->get<bool>();
  }
  if (auto it = j.find("retired"); it != j.end()) {
    if (!it->is_array()) bad(F, "\"retired\" must be an array");
    for (const auto& g : *it) {
      if (!g.is_string()) bad(F, "\"retired\" entries must be strings");
      s.retired.push_back(g.get<std::string>());
    }
  }
  if (auto it = j.find("created"); it != j.end() && it->is_string()) {
    s.created = it->get<std::string>();
  }
  s.id = get_string(j, "id", F);
  if (s.id.empty() || s.id.find('/') != std::string::npos || s.id[0] == '.') {
    bad(F, "\"id\" must be a plain name");
  }
  return s;
}

std::string serialize_shard_record(const ShardRecord& r) {
  ordered_json j;
  j["schema_version"] = k_schema_version;
  j["step"] = r.step;
  j["group"] = r.group;
  j["shard"] = r.index;
  j["count"] = r.count;
  j["dir"] = r.dir;
  j["checksum"] = r.checksum;
  j["files"] = files_json(r.files, false);  // a record's files are all its shard's
  j["metrics"] = metrics_json(r.metrics);
  j["meta"] = r.meta;
  j["weights"] = r.weights;
  j["policy"] = policy_json(r.policy);
  j["updated"] = r.updated;
  if (!r.etags.empty()) j["etags"] = r.etags;
  return j.dump() + "\n";
}

ShardRecord parse_shard_record(std::string_view text) {
  const char* F = "shard record";
  json j = parse_object(text, F);
  check_schema(j, F);
  ShardRecord r;
  r.step = get_uint(j, "step", F, k_max_step);
  r.group = get_string(j, "group", F);
  if (auto why = group_problem(r.group)) bad(F, fmt::format("group: {}", *why));
  r.count = get_uint(j, "count", F, k_max_shards);
  if (r.count < 2) bad(F, "\"count\" must be at least 2");
  r.index = get_uint(j, "shard", F, r.count - 1);
  r.dir = get_string(j, "dir", F);
  if (r.dir.empty() || r.dir.find('/') != std::string::npos || r.dir == "." || r.dir == "..") {
    bad(F, "\"dir\" must be a plain name");
  }
  r.checksum = get_string(j, "checksum", F);
  if (r.checksum != "sha256" && r.checksum != "none") bad(F, "unknown \"checksum\"");
  const json& files = field(j, "files", F);
  if (!files.is_array()) bad(F, "\"files\" must be an array");
  std::set<std::string> seen;
  for (const auto& e : files) {
    if (!e.is_object()) bad(F, "a \"files\" entry is not an object");
    FileEntry f;
    f.path = get_string(e, "path", F);
    if (stored_path_problem(f.path) || f.path == k_meta_file || f.path == k_sums_file) {
      bad(F, fmt::format("bad stored path {:?}", f.path));
    }
    if (!seen.insert(f.path).second) bad(F, fmt::format("{:?} is listed twice", f.path));
    f.size = get_uint(e, "size", F);
    f.sha256 = parse_digest(e, f.path, r.checksum, F);
    f.shard = r.index;
    r.files.push_back(std::move(f));
  }
  r.metrics = parse_metrics(j, F);
  r.meta = parse_meta(j, F);
  if (auto it = j.find("weights"); it != j.end()) {
    if (!it->is_array()) bad(F, "\"weights\" must be an array");
    for (const auto& w : *it) {
      if (!w.is_string() || !seen.count(w.get<std::string>())) {
        bad(F, "a \"weights\" entry is not a stored file of this shard");
      }
      r.weights.push_back(w.get<std::string>());
    }
  }
  if (auto it = j.find("policy"); it != j.end()) {
    if (!it->is_object()) bad(F, "\"policy\" must be an object");
    r.policy = policy_from_json(*it, F);
  }
  if (auto it = j.find("updated"); it != j.end() && it->is_string()) {
    r.updated = it->get<std::string>();
  }
  if (auto it = j.find("etags"); it != j.end()) {
    if (!it->is_object()) bad(F, "\"etags\" must be an object");
    for (const auto& [path, etag] : it->items()) {
      if (!seen.count(path) || !etag.is_string()) {
        bad(F, "an \"etags\" entry is not a stored file's ETag");
      }
      r.etags[path] = etag.get<std::string>();
    }
  }
  return r;
}

std::string serialize_move_journal(const std::vector<MovedFile>& files) {
  ordered_json j;
  j["schema_version"] = k_schema_version;
  j["moved"] = json::array();
  for (const auto& f : files) {
    j["moved"].push_back(
        ordered_json{{"source", f.source}, {"dest", f.dest}, {"dev", f.dev}, {"ino", f.ino}});
  }
  return j.dump() + "\n";
}

std::vector<MovedFile> parse_move_journal(std::string_view text) {
  const char* F = "move journal";
  json j = parse_object(text, F);
  check_schema(j, F);
  if (!j.contains("moved") || !j["moved"].is_array()) bad(F, "\"moved\" must be an array");
  std::vector<MovedFile> out;
  for (const auto& e : j["moved"]) {
    if (!e.is_object()) bad(F, "an entry is not an object");
    MovedFile f;
    f.source = get_string(e, "source", F);
    f.dest = get_string(e, "dest", F);
    f.dev = get_uint(e, "dev", F);
    f.ino = get_uint(e, "ino", F);
    if (f.source.empty() || f.source.front() != '/' || stored_path_problem(f.dest)) {
      bad(F, "an entry has a bad path");
    }
    out.push_back(std::move(f));
  }
  return out;
}

std::string parse_last_text(std::string_view text) {
  std::size_t end = text.find('\n');
  std::string_view line = text.substr(0, end);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.empty()) bad(k_last_file, "empty");
  for (char c : line) {
    if (c == '\0') bad(k_last_file, "not text");
  }
  return std::string(line);
}

std::string serialize_last(const std::string& name) { return name + "\n"; }

}  // namespace ckpt
