// SPDX-License-Identifier: Apache-2.0
#include "s3/config.hpp"

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "ckpt/error.hpp"

namespace ckpt::s3 {

namespace {

constexpr std::string_view k_scheme = "s3://";

bool valid_bucket(std::string_view b) {
  if (b.size() < 3 || b.size() > 63) return false;
  for (char c : b) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
              (c >= 'A' && c <= 'Z');
    if (!ok) return false;
  }
  return b.front() != '-' && b.front() != '.' && b.back() != '-' && b.back() != '.';
}

std::string trim(std::string_view s) {
  std::size_t a = s.find_first_not_of(" \t\r");
  if (a == std::string_view::npos) return {};
  std::size_t b = s.find_last_not_of(" \t\r");
  return std::string(s.substr(a, b - a + 1));
}

using Section = std::map<std::string, std::string>;

// An AWS shared file: [section] headers, key = value lines, # and ; comments.
// Indented lines (sub-settings such as "s3 =" blocks) are skipped.
std::map<std::string, Section> read_ini(const std::string& path) {
  std::map<std::string, Section> out;
  std::ifstream in(path);
  if (!in) return out;
  std::string line;
  std::string section;
  while (std::getline(in, line)) {
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) continue;
    std::string t = trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t.front() == '[' && t.back() == ']') {
      section = trim(std::string_view(t).substr(1, t.size() - 2));
      out[section];
      continue;
    }
    std::size_t eq = t.find('=');
    if (eq == std::string::npos || section.empty()) continue;
    out[section][trim(std::string_view(t).substr(0, eq))] = trim(std::string_view(t).substr(eq + 1));
  }
  return out;
}

std::optional<std::string> lookup(const std::map<std::string, Section>& ini, const std::string& section,
                                  const std::string& key) {
  auto s = ini.find(section);
  if (s == ini.end()) return std::nullopt;
  auto k = s->second.find(key);
  if (k == s->second.end() || k->second.empty()) return std::nullopt;
  return k->second;
}

std::string normalise_endpoint(std::string e, const char* from) {
  while (!e.empty() && e.back() == '/') e.pop_back();
  if (e.rfind("http://", 0) != 0 && e.rfind("https://", 0) != 0) {
    throw Error(ErrorKind::usage, std::string(from) + " must start with http:// or https://: " + e);
  }
  std::string rest = e.substr(e.find("//") + 2);
  if (rest.empty() || rest.find('/') != std::string::npos || rest.find('?') != std::string::npos) {
    throw Error(ErrorKind::usage,
                std::string(from) + " must be scheme://host[:port] without a path: " + e);
  }
  return e;
}

}  // namespace

std::string Location::key(std::string_view name) const {
  if (prefix.empty()) return std::string(name);
  return prefix + "/" + std::string(name);
}

std::string Location::url() const {
  return std::string(k_scheme) + bucket + (prefix.empty() ? "" : "/" + prefix);
}

bool is_s3_url(std::string_view s) { return s.substr(0, k_scheme.size()) == k_scheme; }

Location parse_s3_url(std::string_view s) {
  if (!is_s3_url(s)) throw Error(ErrorKind::usage, "not an s3:// address: " + std::string(s));
  std::string_view rest = s.substr(k_scheme.size());
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  std::size_t slash = rest.find('/');
  Location loc;
  loc.bucket = std::string(rest.substr(0, slash));
  if (!valid_bucket(loc.bucket)) {
    throw Error(ErrorKind::usage, "not a valid bucket name in " + std::string(s) +
                                      ": 3 to 63 letters, digits, '.', '-' or '_'");
  }
  if (slash != std::string_view::npos) {
    std::string_view prefix = rest.substr(slash + 1);
    std::size_t start = 0;
    while (start <= prefix.size()) {
      std::size_t end = prefix.find('/', start);
      if (end == std::string_view::npos) end = prefix.size();
      std::string_view part = prefix.substr(start, end - start);
      if (part.empty() || part == "." || part == "..") {
        throw Error(ErrorKind::usage, "the prefix of " + std::string(s) +
                                          " has an empty, '.' or '..' component");
      }
      start = end + 1;
    }
    loc.prefix = std::string(prefix);
  }
  return loc;
}

std::string Config::bucket_url(const std::string& bucket) const {
  // A bucket with a dot cannot be a host name under a TLS wildcard certificate.
  if (path_style || bucket.find('.') != std::string::npos) return endpoint + "/" + bucket;
  std::size_t host = endpoint.find("//") + 2;
  return endpoint.substr(0, host) + bucket + "." + endpoint.substr(host);
}

Getenv process_environment() {
  return [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::string(v);
  };
}

Config load_config(const Getenv& env) {
  Config cfg;
  std::string profile = env("AWS_PROFILE").value_or(env("AWS_DEFAULT_PROFILE").value_or("default"));
  std::string home = env("HOME").value_or("");
  std::string cred_file =
      env("AWS_SHARED_CREDENTIALS_FILE").value_or(home.empty() ? "" : home + "/.aws/credentials");
  std::string config_file = env("AWS_CONFIG_FILE").value_or(home.empty() ? "" : home + "/.aws/config");
  auto creds_ini = cred_file.empty() ? std::map<std::string, Section>{} : read_ini(cred_file);
  auto config_ini = config_file.empty() ? std::map<std::string, Section>{} : read_ini(config_file);
  std::string config_section = profile == "default" ? "default" : "profile " + profile;
  auto from_files = [&](const std::string& key) -> std::optional<std::string> {
    if (auto v = lookup(creds_ini, profile, key)) return v;
    return lookup(config_ini, config_section, key);
  };

  auto ak = env("AWS_ACCESS_KEY_ID");
  auto sk = env("AWS_SECRET_ACCESS_KEY");
  if (ak && sk) {
    cfg.credentials = {*ak, *sk, env("AWS_SESSION_TOKEN").value_or("")};
  } else if (auto fak = from_files("aws_access_key_id"), fsk = from_files("aws_secret_access_key");
             fak && fsk) {
    cfg.credentials = {*fak, *fsk, from_files("aws_session_token").value_or("")};
  } else {
    throw Error(ErrorKind::io,
                "no credentials for the object store: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or give profile '" + profile + "' keys in " +
                    (cred_file.empty() ? std::string("~/.aws/credentials") : cred_file));
  }

  cfg.region = env("AWS_REGION")
                   .value_or(env("AWS_DEFAULT_REGION")
                                 .value_or(lookup(config_ini, config_section, "region").value_or("us-east-1")));
  if (auto e = env("AWS_ENDPOINT_URL_S3")) {
    cfg.endpoint = normalise_endpoint(*e, "AWS_ENDPOINT_URL_S3");
  } else if (auto e2 = env("AWS_ENDPOINT_URL")) {
    cfg.endpoint = normalise_endpoint(*e2, "AWS_ENDPOINT_URL");
  } else if (auto e3 = lookup(config_ini, config_section, "endpoint_url")) {
    cfg.endpoint = normalise_endpoint(*e3, "endpoint_url");
  }
  if (cfg.endpoint.empty()) {
    cfg.endpoint = "https://s3." + cfg.region + ".amazonaws.com";
    cfg.path_style = false;
  }
  if (auto n = env("AWS_MAX_ATTEMPTS")) {
    char* end = nullptr;
    unsigned long v = std::strtoul(n->c_str(), &end, 10);
    if (*end != '\0' || v < 1 || v > 100) {
      throw Error(ErrorKind::usage, "AWS_MAX_ATTEMPTS must be a number from 1 to 100: " + *n);
    }
    cfg.max_attempts = static_cast<unsigned>(v);
  }
  cfg.ca_bundle = env("AWS_CA_BUNDLE").value_or(lookup(config_ini, config_section, "ca_bundle").value_or(""));
  return cfg;
}

}  // namespace ckpt::s3
