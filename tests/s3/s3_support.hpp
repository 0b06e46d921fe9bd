// SPDX-License-Identifier: Apache-2.0
// What the object-store tests share: the store the fixture started, a bucket
// of each test's own, random bytes, the error a call throws.
#pragma once

#include <doctest/doctest.h>

#include <atomic>
#include <random>
#include <string>

#include "ckpt/error.hpp"
#include "s3/client.hpp"
#include "s3/config.hpp"

namespace ckpt_test {

// The store of the s3_store fixture, from the AWS variables CTest sets.
inline ckpt::s3::Config store_config() {
  auto env = ckpt::s3::process_environment();
  if (!env("AWS_ENDPOINT_URL")) {
    FAIL("AWS_ENDPOINT_URL is not set: run through CTest (the s3.store fixture starts radosgw)");
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
