// SPDX-License-Identifier: Apache-2.0
// _checkpoint.json (SPEC §3): serialisation round trip and the reader's rejections.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "ckpt/error.hpp"
#include "ckpt/format.hpp"

namespace {

const std::string k_hex_a(64, 'a');
const std::string k_hex_b = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

const std::string k_files =
    "  \"files\": [\n"
    "    {\"path\": \"model.safetensors\", \"size\": 4096, \"sha256\": \"" + k_hex_a + "\"},\n"
    "    {\"path\": \"optim/shard-0.pt\", \"size\": 100, \"sha256\": \"" + k_hex_b + "\"}\n"
    "  ],\n";

// A valid document in the shape of SPEC §3; every rejection below changes one thing in it.
const std::string k_base =
    "{\n"
    "  \"format\": \"ckpt\",\n"
    "  \"schema_version\": 1,\n"
    "  \"name\": \"step-000001200\",\n"
    "  \"step\": 1200,\n"
    "  \"commit_seq\": 17,\n"
    "  \"created\": \"2026-11-28T12:00:00.123Z\",\n"
    "  \"metrics\": {\"val_loss\": 1.23, \"acc\": 0.91, \"diverged\": null},\n"
    "  \"meta\": {\"git_commit\": \"abc123\"},\n"
    "  \"checksum\": \"sha256\",\n"
    "  \"weights\": [\"model.safetensors\"],\n" +
    k_files +
    "  \"total_size\": 4196,\n"
    "  \"tool\": \"ckpt 0.1.0\"\n"
    "}\n";

using Edits = std::vector<std::pair<std::string, std::string>>;

// k_base with each edit applied once; REQUIREs that every edit finds its text,
// so a test never silently checks the unmodified document.
std::string edited(const Edits& edits) {
  std::string s = k_base;
  for (const auto& [from, to] : edits) {
    auto pos = s.find(from);
    REQUIRE_MESSAGE(pos != std::string::npos, "edit target not found: " << from);
    s.replace(pos, from.size(), to);
  }
  return s;
}

// parse_checkpoint(text) throws ckpt::Error of this kind (and nothing else).
void expect_error(const std::string& text, ckpt::ErrorKind kind) {
  bool threw = false;
  try {
    (void)ckpt::parse_checkpoint(text);
  } catch (const ckpt::Error& e) {
    threw = true;
    INFO("message: " << e.message());
    CHECK(ckpt::kind_name(e.kind()) == std::string(ckpt::kind_name(kind)));
  } catch (const std::exception& e) {
    threw = true;
    FAIL_CHECK("threw a non-ckpt exception: " << e.what());
  }
  CHECK_MESSAGE(threw, "accepted: " << text.substr(0, 400));
}

void expect_integrity(const Edits& edits) {
  expect_error(edited(edits), ckpt::ErrorKind::integrity);
}

ckpt::CheckpointMeta full_meta() {
  ckpt::CheckpointMeta m;
  m.name = "step-000001200";
  m.step = 1200;
  m.commit_seq = 17;
  m.created = "2026-11-28T12:00:00.123Z";
  m.metrics["val_loss"] = 1.23;
  m.metrics["acc"] = 0.91;
  m.metrics["neg"] = -2.5e-7;
  m.metrics["big"] = 1e300;
  m.metrics["diverged"] = std::nullopt;
  m.meta["git_commit"] = "abc123";
  m.meta["note"] = "quotes \" and \\ and unicode \xc3\xa9";
  m.checksum = "sha256";
  m.weights = {"model.safetensors", "optim/shard-0.pt"};
  m.files = {{"model.safetensors", 4096, k_hex_a, std::nullopt},
             {"optim/shard-0.pt", 100, k_hex_b, std::nullopt},
             {"rng.bin", 0, std::string(64, '0'), std::nullopt}};
  m.total_size = 4196;
  m.tool = "ckpt 0.1.0";
  return m;
}

void check_same(const ckpt::CheckpointMeta& a, const ckpt::CheckpointMeta& b) {
  CHECK(a.name == b.name);
  CHECK(a.step == b.step);
  CHECK(a.commit_seq == b.commit_seq);
  CHECK(a.created == b.created);
  CHECK(a.metrics == b.metrics);
  CHECK(a.meta == b.meta);
  CHECK(a.checksum == b.checksum);
  CHECK(a.weights == b.weights);
  REQUIRE(a.files.size() == b.files.size());
  for (std::size_t i = 0; i < a.files.size(); ++i) {
    CAPTURE(i);
    CHECK(a.files[i].path == b.files[i].path);
    CHECK(a.files[i].size == b.files[i].size);
    CHECK(a.files[i].sha256 == b.files[i].sha256);
  }
  CHECK(a.total_size == b.total_size);
  CHECK(a.tool == b.tool);
}

}  // namespace

TEST_CASE("format_checkpoint: the reference document parses") {
  auto m = ckpt::parse_checkpoint(k_base);
  CHECK(m.name == "step-000001200");
  CHECK(m.step == 1200);
  CHECK(m.commit_seq == 17);
  CHECK(m.created == "2026-11-28T12:00:00.123Z");
  CHECK(m.metric("val_loss") == std::optional<double>(1.23));
  CHECK(m.metric("acc") == std::optional<double>(0.91));
  REQUIRE(m.metrics.count("diverged") == 1);
  CHECK_FALSE(m.metrics.at("diverged").has_value());
  CHECK_FALSE(m.metric("diverged").has_value());
  CHECK_FALSE(m.metric("absent").has_value());
  CHECK(m.meta == std::map<std::string, std::string>{{"git_commit", "abc123"}});
  CHECK(m.checksum == "sha256");
  CHECK(m.weights == std::vector<std::string>{"model.safetensors"});
  REQUIRE(m.files.size() == 2);
  CHECK(m.files[0].path == "model.safetensors");
  CHECK(m.files[0].size == 4096);
  CHECK(m.files[0].sha256 == std::optional<std::string>(k_hex_a));
  CHECK(m.files[1].path == "optim/shard-0.pt");
  CHECK(m.files[1].size == 100);
  CHECK(m.files[1].sha256 == std::optional<std::string>(k_hex_b));
  CHECK(m.total_size == 4196);
  CHECK(m.tool == "ckpt 0.1.0");
}

TEST_CASE("format_checkpoint: serialize/parse round trip with every field") {
  auto m = full_meta();
  std::string text = ckpt::serialize_checkpoint(m);
  CAPTURE(text);
  CHECK(text.find("\"diverged\": null") != std::string::npos);
  CHECK(text.find("\"schema_version\": 1") != std::string::npos);
  CHECK(text.find("\"format\": \"ckpt\"") != std::string::npos);
  auto back = ckpt::parse_checkpoint(text);
  check_same(back, m);
  // Serialising what was parsed gives the same bytes.
  CHECK(ckpt::serialize_checkpoint(back) == text);
}

TEST_CASE("format_checkpoint: a non-finite metric is written as null") {
  auto m = full_meta();
  m.metrics["inf"] = std::numeric_limits<double>::infinity();
  m.metrics["nan"] = std::nan("");
  std::string text = ckpt::serialize_checkpoint(m);
  CAPTURE(text);
  CHECK(text.find("\"inf\": null") != std::string::npos);
  CHECK(text.find("\"nan\": null") != std::string::npos);
  auto back = ckpt::parse_checkpoint(text);
  REQUIRE(back.metrics.count("inf") == 1);
  REQUIRE(back.metrics.count("nan") == 1);
  CHECK_FALSE(back.metrics.at("inf").has_value());
  CHECK_FALSE(back.metrics.at("nan").has_value());
}

TEST_CASE("format_checkpoint: round trip of checksum none carries no sha256") {
  ckpt::CheckpointMeta m;
  m.name = "step-000000007";
  m.step = 7;
  m.commit_seq = 1;
  m.created = "2026-01-02T03:04:05.678Z";
  m.checksum = "none";
  m.files = {{"a.bin", 3, std::nullopt, std::nullopt}, {"dir/b.bin", 5, std::nullopt, std::nullopt}};
  m.total_size = 8;
  m.tool = "ckpt 0.1.0";
  std::string text = ckpt::serialize_checkpoint(m);
  CAPTURE(text);
  CHECK(text.find("sha256") == std::string::npos);
  auto back = ckpt::parse_checkpoint(text);
  check_same(back, m);
  CHECK(back.metrics.empty());
  CHECK(back.meta.empty());
  CHECK(back.weights.empty());
}

TEST_CASE("format_checkpoint: unknown extra fields are accepted") {
  std::string text = edited({{"  \"tool\": \"ckpt 0.1.0\"\n",
                              "  \"tool\": \"ckpt 0.1.0\",\n"
                              "  \"future_field\": {\"x\": [1, 2, {\"y\": null}]},\n"
                              "  \"another\": 5\n"}});
  auto m = ckpt::parse_checkpoint(text);
  check_same(m, ckpt::parse_checkpoint(k_base));
  // Also inside a file entry.
  std::string text2 = edited({{"\"size\": 100,", "\"size\": 100, \"mode\": 420,"}});
  check_same(ckpt::parse_checkpoint(text2), ckpt::parse_checkpoint(k_base));
}

TEST_CASE("format_checkpoint: malformed JSON is an integrity error") {
  expect_error(k_base.substr(0, k_base.size() / 2), ckpt::ErrorKind::integrity);
  expect_error(k_base.substr(0, k_base.rfind('}')), ckpt::ErrorKind::integrity);
  expect_error("", ckpt::ErrorKind::integrity);
  expect_error("{", ckpt::ErrorKind::integrity);
  expect_error(k_base + "garbage", ckpt::ErrorKind::integrity);
  expect_error(edited({{"\"step\": 1200,", "\"step\": 1200,,"}}), ckpt::ErrorKind::integrity);
}

TEST_CASE("format_checkpoint: a document that is not an object is an integrity error") {
  expect_error("[1, 2]", ckpt::ErrorKind::integrity);
  expect_error("\"step-000001200\"", ckpt::ErrorKind::integrity);
  expect_error("42", ckpt::ErrorKind::integrity);
  expect_error("null", ckpt::ErrorKind::integrity);
  expect_error("[" + k_base + "]", ckpt::ErrorKind::integrity);
}

TEST_CASE("format_checkpoint: wrong field types are integrity errors") {
  expect_integrity({{"\"step\": 1200,", "\"step\": \"1200\","}});
  expect_integrity({{"\"step\": 1200,", "\"step\": 1200.5,"}});
  expect_integrity({{"\"step\": 1200,", "\"step\": -1200,"}});
  expect_integrity({{"\"name\": \"step-000001200\",", "\"name\": 1200,"}});
  expect_integrity({{"\"commit_seq\": 17,", "\"commit_seq\": \"17\","}});
  expect_integrity({{"\"created\": \"2026-11-28T12:00:00.123Z\",", "\"created\": 5,"}});
  expect_integrity({{"\"created\": \"2026-11-28T12:00:00.123Z\",", "\"created\": \"yesterday\","}});
  expect_integrity({{"\"metrics\": {", "\"metrics\": {\"s\": \"high\", "}});
  expect_integrity({{"\"metrics\": {\"val_loss\": 1.23, \"acc\": 0.91, \"diverged\": null}",
                     "\"metrics\": [1.23]"}});
  expect_integrity({{"\"meta\": {\"git_commit\": \"abc123\"}", "\"meta\": {\"git_commit\": 5}"}});
  expect_integrity({{"\"checksum\": \"sha256\"", "\"checksum\": \"md5\""}});
  expect_integrity({{"\"checksum\": \"sha256\"", "\"checksum\": true"}});
  expect_integrity({{"\"weights\": [\"model.safetensors\"]", "\"weights\": \"model.safetensors\""}});
  expect_integrity({{"\"format\": \"ckpt\"", "\"format\": \"other\""}});
  // files not an array (weights and total_size made consistent with no files)
  expect_integrity({{k_files, "  \"files\": {},\n"},
                    {"\"weights\": [\"model.safetensors\"]", "\"weights\": []"},
                    {"\"total_size\": 4196", "\"total_size\": 0"}});
  // a files entry that is not an object
  expect_integrity({{"{\"path\": \"optim/shard-0.pt\", \"size\": 100, \"sha256\": \"" + k_hex_b + "\"}",
                     "\"optim/shard-0.pt\""},
                    {"\"total_size\": 4196", "\"total_size\": 4096"}});
  // negative size (total_size as a signed sum would agree)
  expect_integrity({{"\"size\": 100,", "\"size\": -100,"}, {"\"total_size\": 4196", "\"total_size\": 3996"}});
  expect_integrity({{"\"size\": 100,", "\"size\": \"100\","}});
  expect_integrity({{"\"size\": 100,", "\"size\": 100.5,"}, {"\"total_size\": 4196", "\"total_size\": 4196.5"}});
  expect_integrity({{"\"path\": \"optim/shard-0.pt\"", "\"path\": 7"}});
  expect_integrity({{"\"total_size\": 4196", "\"total_size\": \"4196\""}});
  // digests: uppercase, short, not a string
  expect_integrity({{"\"sha256\": \"" + k_hex_b + "\"", "\"sha256\": \"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\""}});
  expect_integrity({{"\"sha256\": \"" + k_hex_b + "\"", "\"sha256\": \"0123\""}});
  expect_integrity({{"\"sha256\": \"" + k_hex_b + "\"", "\"sha256\": 5"}});
  // checksum sha256 but an entry without a digest
  expect_integrity({{", \"sha256\": \"" + k_hex_b + "\"", ""}});
}

TEST_CASE("format_checkpoint: missing required fields are integrity errors") {
  expect_integrity({{"  \"name\": \"step-000001200\",\n", ""}});
  expect_integrity({{"  \"step\": 1200,\n", ""}});
  expect_integrity({{"  \"checksum\": \"sha256\",\n", ""}});
  expect_integrity({{"  \"total_size\": 4196,\n", ""}});
  expect_integrity({{"  \"schema_version\": 1,\n", ""}});
  expect_integrity({{"  \"format\": \"ckpt\",\n", ""}});
  expect_integrity({{"  \"commit_seq\": 17,\n", ""}});
  expect_integrity({{"  \"created\": \"2026-11-28T12:00:00.123Z\",\n", ""}});
  // files missing (weights and total_size made consistent with no files)
  expect_integrity({{k_files, ""},
                    {"\"weights\": [\"model.safetensors\"]", "\"weights\": []"},
                    {"\"total_size\": 4196", "\"total_size\": 0"}});
  // a file entry without path or size
  expect_integrity({{"\"path\": \"optim/shard-0.pt\", ", ""}});
  expect_integrity({{"\"size\": 100, ", ""}, {"\"total_size\": 4196", "\"total_size\": 4096"}});
}

TEST_CASE("format_checkpoint: name and step must agree") {
  expect_integrity({{"\"step\": 1200,", "\"step\": 1201,"}});
  expect_integrity({{"\"name\": \"step-000001200\"", "\"name\": \"step-000001201\""}});
  expect_integrity({{"\"name\": \"step-000001200\"", "\"name\": \"checkpoint-1200\""}});
  // Any zero-padding of the same step is fine.
  auto m = ckpt::parse_checkpoint(edited({{"\"name\": \"step-000001200\"", "\"name\": \"step-1200\""}}));
  CHECK(m.step == 1200);
  CHECK(m.name == "step-1200");
}

TEST_CASE("format_checkpoint: unsafe, duplicate and reserved stored paths are integrity errors") {
  for (const char* p : {"../shard-0.pt", "/etc/passwd", "optim//shard-0.pt", "optim/./shard-0.pt",
                        "optim/../shard-0.pt", "", "optim/", "a\\\\b", "a\\nb", "a\\u0000b"}) {
    CAPTURE(p);
    expect_integrity({{"\"path\": \"optim/shard-0.pt\"", std::string("\"path\": \"") + p + "\""}});
  }
  // The same path twice (sizes kept summing up).
  expect_integrity({{"\"path\": \"optim/shard-0.pt\"", "\"path\": \"model.safetensors\""}});
  // Reserved names at the top of a checkpoint.
  const std::string reserved_files =
      "  \"files\": [\n"
      "    {\"path\": \"_checkpoint.json\", \"size\": 100, \"sha256\": \"" + k_hex_b + "\"},\n"
      "    {\"path\": \"model.safetensors\", \"size\": 4096, \"sha256\": \"" + k_hex_a + "\"}\n"
      "  ],\n";
  expect_integrity({{k_files, reserved_files}});
  const std::string sums_files =
      "  \"files\": [\n"
      "    {\"path\": \"SHA256SUMS\", \"size\": 100, \"sha256\": \"" + k_hex_b + "\"},\n"
      "    {\"path\": \"model.safetensors\", \"size\": 4096, \"sha256\": \"" + k_hex_a + "\"}\n"
      "  ],\n";
  expect_integrity({{k_files, sums_files}});
}

TEST_CASE("format_checkpoint: weights must name stored files") {
  expect_integrity({{"\"weights\": [\"model.safetensors\"]", "\"weights\": [\"nope.bin\"]"}});
  expect_integrity({{"\"weights\": [\"model.safetensors\"]", "\"weights\": [\"*.safetensors\"]"}});
  expect_integrity({{"\"weights\": [\"model.safetensors\"]", "\"weights\": [\"model.safetensors\", 3]"}});
  auto m = ckpt::parse_checkpoint(
      edited({{"\"weights\": [\"model.safetensors\"]", "\"weights\": [\"optim/shard-0.pt\"]"}}));
  CHECK(m.weights == std::vector<std::string>{"optim/shard-0.pt"});
}

TEST_CASE("format_checkpoint: total_size must be the sum of the sizes") {
  expect_integrity({{"\"total_size\": 4196", "\"total_size\": 4197"}});
  expect_integrity({{"\"total_size\": 4196", "\"total_size\": 4195"}});
  expect_integrity({{"\"total_size\": 4196", "\"total_size\": 0"}});
  // Sizes whose sum wraps around 2^64 cannot add up to a small total.
  expect_integrity({{"\"size\": 4096,", "\"size\": 18446744073709551615,"},
                    {"\"total_size\": 4196", "\"total_size\": 99"}});
}

TEST_CASE("format_checkpoint: deeply nested JSON throws instead of crashing") {
  const int depth = 10'000;
  std::string arrays = std::string(depth, '[') + std::string(depth, ']');
  expect_error(arrays, ckpt::ErrorKind::integrity);
  std::string objects;
  for (int i = 0; i < depth; ++i) objects += "{\"a\":";
  objects += "1";
  objects += std::string(depth, '}');
  expect_error(objects, ckpt::ErrorKind::integrity);
  // Inside an otherwise valid document, as a metric value.
  expect_integrity({{"\"metrics\": {", "\"metrics\": {\"deep\": " + arrays + ", "}});
  // Unbalanced: only openings.
  expect_error(std::string(depth, '['), ckpt::ErrorKind::integrity);
}

TEST_CASE("format_checkpoint: a newer schema_version is unsupported and names both versions") {
  std::string text = edited({{"\"schema_version\": 1", "\"schema_version\": 2"}});
  bool threw = false;
  try {
    (void)ckpt::parse_checkpoint(text);
  } catch (const ckpt::Error& e) {
    threw = true;
    std::string msg = e.message();
    CAPTURE(msg);
    CHECK(e.kind() == ckpt::ErrorKind::unsupported);
    CHECK(msg.find('2') != std::string::npos);
    CHECK(msg.find('1') != std::string::npos);
  }
  CHECK(threw);
  // A newer schema is reported as such even when the rest is unfamiliar.
  expect_error("{\"schema_version\": 3, \"format\": \"ckpt\", \"something\": \"new\"}",
               ckpt::ErrorKind::unsupported);
}
