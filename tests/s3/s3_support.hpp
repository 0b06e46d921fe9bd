// SPDX-License-Identifier: Apache-2.0
// What the object-store tests share: the store the fixture started, a bucket
// of each test's own, random bytes, the error a call throws.
#pragma once

#include <doctest/doctest.h>

#include <atomic>
#include <fstream>
#include <map>
#include <random>
#include <string>

#include "ckpt/error.hpp"
#include "s3/client.hpp"
#include "s3/config.hpp"

namespace ckpt_test {

// The variables of the file $CKPT_S3_ENV_FILE (written by tests/s3/store.sh
// for the s3_store fixture); none when it is not set.
inline std::map<std::string, std::string> store_vars() {
  std::map<std::string, std::string> vars;
  if (auto file = ckpt::s3::process_environment()("CKPT_S3_ENV_FILE")) {
    std::ifstream in(*file);
    REQUIRE_MESSAGE(in, "cannot read " << *file << " (written by tests/s3/store.sh start)");
    std::string line;
    while (std::getline(in, line)) {
      if (auto eq = line.find('='); eq != std::string::npos) vars[line.substr(0, eq)] = line.substr(eq + 1);
    }
  }
  return vars;
}

// The store of the s3_store fixture: store_vars(), else the environment.
inline ckpt::s3::Config store_config() {
  auto process = ckpt::s3::process_environment();
  std::map<std::string, std::string> vars = store_vars();
  ckpt::s3::Getenv env = [&](const char* name) -> std::optional<std::string> {
    if (auto it = vars.find(name); it != vars.end()) return it->second;
    return process(name);
  };
  if (!env("AWS_ENDPOINT_URL")) {
    FAIL("no store: run through CTest (the s3_store fixture starts radosgw and sets CKPT_S3_ENV_FILE), "
         "or set AWS_ENDPOINT_URL and the keys");
  }
  return ckpt::s3::load_config(env);
}

// A new bucket with a unique name, for one test.
inline std::string fresh_bucket(const std::string& what) {
  static std::atomic<int> n{0};
  std::random_device rd;
  std::string name = "ckpt-t-" + what + "-" + std::to_string(rd() % 1000000) + "-" + std::to_string(n++);
  ckpt::s3::Client c(store_config(), name);
  c.create_bucket();
  return name;
}

inline std::string bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& ch : s) ch = static_cast<char>(rng());
  return s;
}

template <typename F>
ckpt::Error thrown(F&& f) {
  try {
    f();
  } catch (const ckpt::Error& e) {
    return e;
  }
  FAIL("no error thrown");
  return ckpt::Error(ckpt::ErrorKind::io, "");
}

}  // namespace ckpt_test
