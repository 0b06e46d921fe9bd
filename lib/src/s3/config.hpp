// SPDX-License-Identifier: Apache-2.0
// Where an object-store root is and how to reach it: the s3:// address, and
// the endpoint, region and credentials from the standard AWS variables and
// files (SPEC §11).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace ckpt::s3 {

// s3://BUCKET/PREFIX: the bucket, and the prefix without leading or trailing
// slashes (empty: the bucket's top).
struct Location {
  std::string bucket;
  std::string prefix;

  // PREFIX/name, or name when the prefix is empty.
  std::string key(std::string_view name) const;
  // s3://BUCKET/PREFIX as a user writes it.
  std::string url() const;
};

bool is_s3_url(std::string_view s);
// Throws Error(usage) on a malformed address: no bucket, a bucket name S3
// refuses, an empty path component ("a//b"), "." or "..".
Location parse_s3_url(std::string_view s);

struct Credentials {
  std::string access_key;
  std::string secret_key;
  std::string session_token;  // empty when none
};

struct Config {
  std::string endpoint;  // scheme://host[:port], no trailing slash
  std::string region;
  Credentials credentials;
  bool path_style = true;  // endpoint/BUCKET/KEY; else BUCKET.host/KEY
  unsigned max_attempts = 5;  // tries of a request that fails in a way worth retrying
  std::string ca_bundle;  // AWS_CA_BUNDLE, empty: the system's
  // The URL prefix of the bucket's objects: endpoint/BUCKET or the virtual host.
  std::string bucket_url(const std::string& bucket) const;
};

// Reads a variable of the environment; nullopt (or an empty value) when unset.
using Getenv = std::function<std::optional<std::string>(const char*)>;
Getenv process_environment();

// The configuration the AWS tools would use: AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION / AWS_DEFAULT_REGION,
// AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, AWS_MAX_ATTEMPTS, AWS_CA_BUNDLE,
// AWS_PROFILE with the shared credentials and config files
// (AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE, default ~/.aws/credentials
// and ~/.aws/config). Variables win over files. Path-style addressing when an
// endpoint is given, virtual-hosted on AWS itself. Throws Error(io) when no
// credentials are found, Error(usage) on a malformed endpoint or number.
Config load_config(const Getenv& env);

}  // namespace ckpt::s3
