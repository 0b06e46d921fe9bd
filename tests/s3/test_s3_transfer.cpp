// SPDX-License-Identifier: Apache-2.0
// Whole-file transfers against the real S3 server: parallel multipart uploads
// and ranged downloads, hashed on the way; failures and interrupts leave no
// multipart upload behind.
#include <doctest/doctest.h>

#include <atomic>
#include <fstream>
#include <cstring>
#include <random>

#include "ckpt/hash.hpp"
#include "ckpt/transfer.hpp"
#include "s3/transfer.hpp"
#include "s3_support.hpp"
#include "test_support.hpp"

using namespace ckpt;
using namespace ckpt::s3;
using namespace ckpt_test;


namespace {

std::string write_random(const std::string& path, std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (std::size_t i = 0; i + 8 <= n; i += 8) {
    std::uint64_t v = rng();
    std::memcpy(&s[i], &v, 8);
  }
  std::ofstream(path, std::ios::binary).write(s.data(), static_cast<std::streamsize>(s.size()));
  return s;
}

constexpr std::size_t k_mib = 1 << 20;

}  // namespace

TEST_CASE("upload and download: one PUT, multipart in parallel, hashes and bytes") {
  Client c(store_config(), fresh_bucket("xfer"));
  TempDir dir;
  PosixFileSystem fs;
  Tuning tuning;
  tuning.part_size = 5 * k_mib;
  tuning.parallel = 4;
  for (std::size_t size : {std::size_t{0}, std::size_t{1000}, 5 * k_mib, 5 * k_mib + 1, 37 * k_mib + 123}) {
    CAPTURE(size);
    std::string path = dir.sub("f" + std::to_string(size));
    std::string data = write_random(path, size, static_cast<unsigned>(size));
    std::atomic<std::uint64_t> reported{0};
    Moved up = upload_file(c, fs, path, "obj/" + std::to_string(size), tuning,
                           [&](std::uint64_t n) { reported += n; });
    CHECK(up.size == size);
    CHECK(up.sha256 == sha256_hex(data));
    CHECK(reported == size);
    auto info = c.head("obj/" + std::to_string(size));
    REQUIRE(info);
    CHECK(info->size == size);

    std::string back;
    std::uint64_t got = 0;
    Moved down = download(c, "obj/" + std::to_string(size), size, tuning,
                          [&](const char* d, std::size_t n) { back.append(d, n); },
                          [&](std::uint64_t n) { got += n; });
    CHECK(down.sha256 == up.sha256);
    CHECK(back == data);
    CHECK(got == size);
  }
  CHECK(c.list_uploads("").empty());
}

TEST_CASE("download: an object shorter than expected is an error") {
  Client c(store_config(), fresh_bucket("short"));
  REQUIRE(c.put("k", std::string(6 * k_mib, 'x')) == Put::done);
  Tuning tuning;
  tuning.part_size = 5 * k_mib;
  auto e = thrown([&] { download(c, "k", 7 * k_mib, tuning); });
  CHECK(e.kind() == ErrorKind::io);
  CHECK(download(c, "k", 6 * k_mib, tuning).sha256 == sha256_hex(std::string(6 * k_mib, 'x')));
}

TEST_CASE("a failed part aborts the multipart upload: nothing stays in the store") {
  Client c(store_config(), fresh_bucket("abort"));
  TempDir dir;
  PosixFileSystem fs;
  write_random(dir.sub("big"), 23 * k_mib, 7);
  Tuning tuning;
  tuning.part_size = 5 * k_mib;
  tuning.parallel = 3;
  // Part 3 fails at every attempt.
  c.set_fault_hook([](const Request& r, std::uint64_t) -> std::optional<Fault> {
    for (const auto& [k, v] : r.query) {
      if (k == "partNumber" && v == "3") return Fault{500, "InternalError"};
    }
    return std::nullopt;
  });
  auto e = thrown([&] { upload_file(c, fs, dir.sub("big"), "big", tuning); });
  CHECK(e.kind() == ErrorKind::io);
  CHECK(std::string(e.what()).find("UploadPart 3") != std::string::npos);
  c.set_fault_hook({});
  CHECK(c.list_uploads("").empty());
  CHECK_FALSE(c.head("big"));
}

TEST_CASE("an interrupt mid-upload aborts it (exit 130 for the command)") {
  Client c(store_config(), fresh_bucket("intr"));
  TempDir dir;
  PosixFileSystem fs;
  write_random(dir.sub("big"), 31 * k_mib, 9);
  Tuning tuning;
  tuning.part_size = 5 * k_mib;
  tuning.parallel = 2;
  std::uint64_t done = 0;
  auto e = thrown([&] {
    upload_file(c, fs, dir.sub("big"), "big", tuning, [&](std::uint64_t n) {
      if ((done += n) >= 10 * k_mib) request_interrupt();
    });
  });
  clear_interrupt();
  CHECK(e.kind() == ErrorKind::interrupted);
  CHECK(c.list_uploads("").empty());
  CHECK_FALSE(c.head("big"));
}

TEST_CASE("a file that grows while it is uploaded is refused") {
  Client c(store_config(), fresh_bucket("grow"));
  TempDir dir;
  PosixFileSystem fs;
  std::string path = dir.sub("growing");
  write_random(path, 12 * k_mib, 3);
  Tuning tuning;
  tuning.part_size = 5 * k_mib;
  tuning.parallel = 1;
  bool grown = false;
  auto e = thrown([&] {
    upload_file(c, fs, path, "growing", tuning, [&](std::uint64_t) {
      if (!grown) std::ofstream(path, std::ios::app) << "more";
      grown = true;
    });
  });
  CHECK(e.kind() == ErrorKind::io);
  CHECK(std::string(e.what()).find("changed size") != std::string::npos);
  CHECK(c.list_uploads("").empty());
  CHECK_FALSE(c.head("growing"));
}

TEST_CASE("a create-only upload never replaces another writer's object, and knows its own") {
  Config config = store_config();
  config.max_attempts = 3;  // a timeout is retried (whatever AWS_MAX_ATTEMPTS another case set)
  Client c(config, fresh_bucket("create"));
  TempDir dir;
  PosixFileSystem fs;
  Tuning tuning;
  tuning.part_size = 5 * k_mib;
  tuning.parallel = 2;
  tuning.create_only = true;
  for (std::size_t size : {std::size_t{1000}, 11 * k_mib}) {
    CAPTURE(size);
    std::string key = "obj/" + std::to_string(size);
    std::string path = dir.sub("f" + std::to_string(size));
    std::string ours = write_random(path, size, 1);
    // Absent: stored.
    Moved up = upload_file(c, fs, path, key, tuning);
    CHECK(up.sha256 == sha256_hex(ours));
    // Another writer's object there: refused, and it stays as it was, with
    // no multipart upload left behind.
    REQUIRE(c.put(key, "another writer's bytes") == Put::done);
    auto e = thrown([&] { upload_file(c, fs, path, key, tuning); });
    CHECK(e.kind() == ErrorKind::conflict);
    CHECK(std::string(e.what()).find("stored by another writer meanwhile") != std::string::npos);
    auto there = c.get(key);
    REQUIRE(there);
    CHECK(there->body == "another writer's bytes");
    CHECK(c.list_uploads("").empty());
  }
  // A single PUT the store applied but whose answer was lost: the retry finds
  // the object there (412), and it is this upload's own bytes.
  std::string path = dir.sub("lost");
  std::string data = write_random(path, 2000, 2);
  Client behind(store_config(), c.bucket());
  int lost = 0;
  c.set_fault_hook([&](const Request& r, std::uint64_t) -> std::optional<Fault> {
    if (r.method != "PUT" || r.key != "lost" || lost > 0) return std::nullopt;
    REQUIRE(behind.put(r.key, r.body) == Put::done);
    ++lost;
    return Fault{0, ""};
  });
  Moved up = upload_file(c, fs, path, "lost", tuning);
  c.set_fault_hook({});
  CHECK(lost == 1);
  CHECK(up.sha256 == sha256_hex(data));
  auto there = c.get("lost");
  REQUIRE(there);
  CHECK(there->body == data);
}

TEST_CASE("a copy inside the store: one CopyObject, or above the limit copied parts, the same bytes") {
  Client c(store_config(), fresh_bucket("copy"));
  TempDir dir;
  PosixFileSystem fs;
  Tuning tuning;
  tuning.part_size = 5 * k_mib;
  tuning.parallel = 3;
  for (std::size_t size : {std::size_t{0}, 1000 * std::size_t{1}, 17 * k_mib + 5}) {
    CAPTURE(size);
    std::string path = dir.sub("c" + std::to_string(size));
    std::string data = write_random(path, size, static_cast<unsigned>(size + 3));
    const std::string from = "src/" + std::to_string(size);
    const std::string to = "dst/" + std::to_string(size);
    upload_file(c, fs, path, from, tuning);  // 17 MiB: a multipart object
    std::atomic<std::uint64_t> reported{0};
    std::string etag = copy_within(c, from, to, size, tuning, [&](std::uint64_t n) { reported += n; });
    CHECK(reported == size);
    auto info = c.head(to);
    REQUIRE(info);
    CHECK(info->size == size);
    CHECK(info->etag == etag);
    Moved back = download(c, to, size, tuning);
    CHECK(back.sha256 == sha256_hex(data));
  }
  // A source that is not there: not_found (the caller uploads instead).
  try {
    copy_within(c, "src/none", "dst/none", 10, tuning);
    FAIL("copied a missing object");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::not_found);
  }
  CHECK_FALSE(c.head("dst/none"));
  // Above what one CopyObject takes: a multipart upload whose parts the
  // store copies (UploadPartCopy, signed by hand), the same bytes. 17 MiB
  // in parts of 5 MiB: four parts, the last short.
  tuning.max_single_copy = 1000;
  tuning.copy_part_size = 5 * k_mib;
  {
    const std::uint64_t size = 17 * k_mib + 5;
    std::atomic<std::uint64_t> reported{0};
    std::string etag = copy_within(c, "src/" + std::to_string(size), "dst/parts", size, tuning,
                                   [&](std::uint64_t n) { reported += n; });
    CHECK(reported == size);
    CHECK(etag.size() > 2);
    CHECK(etag.substr(etag.size() - 2) == "-4");
    auto info = c.head("dst/parts");
    REQUIRE(info);
    CHECK(info->size == size);
    Moved back = download(c, "dst/parts", size, tuning);
    CHECK(back.sha256 == download(c, "src/" + std::to_string(size), size, tuning).sha256);
    // A part copy refused (the source gone) aborts the upload: nothing is left.
    try {
      copy_within(c, "src/none", "dst/parts-none", size, tuning);
      FAIL("copied a missing object in parts");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::not_found);
    }
    CHECK_FALSE(c.head("dst/parts-none"));
    CHECK(c.list_uploads("dst/").empty());
  }
  // Create-only: a copy already there (a retried copy) is kept; another
  // writer's object is a conflict and stays as it was (radosgw ignores
  // If-None-Match on a copy: the HEAD before it tells).
  tuning.max_single_copy = std::uint64_t{5} << 30;
  tuning.create_only = true;
  std::string first = copy_within(c, "src/1000", "dst/once", 1000, tuning);
  CHECK(copy_within(c, "src/1000", "dst/once", 1000, tuning) == first);
  REQUIRE(c.put("dst/other", std::string(1000, 'x')) == Put::done);
  try {
    copy_within(c, "src/1000", "dst/other", 1000, tuning);
    FAIL("replaced another writer's object");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::conflict);
  }
  auto other = c.get("dst/other");
  REQUIRE(other);
  CHECK(other->body == std::string(1000, 'x'));
}
