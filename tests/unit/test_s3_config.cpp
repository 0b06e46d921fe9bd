// SPDX-License-Identifier: Apache-2.0
// Object-store roots without a store: s3:// addresses, the AWS configuration
// (variables and shared files), URI encoding and the XML the store answers with.
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <map>

#include "ckpt/error.hpp"
#include "s3/client.hpp"
#include "s3/config.hpp"
#include "s3/xml.hpp"
#include "test_support.hpp"

using namespace ckpt;
using namespace ckpt::s3;
using ckpt_test::TempDir;

namespace {

Getenv env_of(std::map<std::string, std::string> vars) {
  return [vars](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end() || it->second.empty()) return std::nullopt;
    return it->second;
  };
}

ErrorKind kind_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.kind();
  }
  FAIL("no error thrown");
  return ErrorKind::io;
}

}  // namespace

TEST_CASE("s3 addresses: bucket and prefix") {
  CHECK(is_s3_url("s3://bucket"));
  CHECK_FALSE(is_s3_url("/data/s3://bucket"));
  CHECK_FALSE(is_s3_url("S3://bucket"));
  auto a = parse_s3_url("s3://my-bucket/runs/exp1/");
  CHECK(a.bucket == "my-bucket");
  CHECK(a.prefix == "runs/exp1");
  CHECK(a.key("last") == "runs/exp1/last");
  CHECK(a.url() == "s3://my-bucket/runs/exp1");
  auto top = parse_s3_url("s3://my-bucket");
  CHECK(top.prefix.empty());
  CHECK(top.key("step-000000001/_checkpoint.json") == "step-000000001/_checkpoint.json");
  CHECK(top.url() == "s3://my-bucket");
  for (const char* bad : {"s3://", "s3:///prefix", "s3://ab", "s3://-bucket/x", "s3://bu cket/x",
                          "s3://bucket/a//b", "s3://bucket/a/../b", "s3://bucket/./b"}) {
    CAPTURE(bad);
    CHECK(kind_of([&] { parse_s3_url(bad); }) == ErrorKind::usage);
  }
}

TEST_CASE("s3 configuration: variables, endpoint and addressing") {
  auto cfg = load_config(env_of({{"AWS_ACCESS_KEY_ID", "AK"},
                                 {"AWS_SECRET_ACCESS_KEY", "SK"},
                                 {"AWS_SESSION_TOKEN", "TOK"},
                                 {"AWS_REGION", "eu-west-3"},
                                 {"AWS_DEFAULT_REGION", "us-west-2"},
                                 {"AWS_ENDPOINT_URL", "http://127.0.0.1:9000/"}}));
  CHECK(cfg.credentials.access_key == "AK");
  CHECK(cfg.credentials.secret_key == "SK");
  CHECK(cfg.credentials.session_token == "TOK");
  CHECK(cfg.region == "eu-west-3");  // AWS_REGION wins over AWS_DEFAULT_REGION
  CHECK(cfg.endpoint == "http://127.0.0.1:9000");
  CHECK(cfg.path_style);
  CHECK(cfg.bucket_url("b1") == "http://127.0.0.1:9000/b1");

  // The S3-specific endpoint wins; with none, AWS itself, virtual-hosted.
  auto s3 = load_config(env_of({{"AWS_ACCESS_KEY_ID", "AK"}, {"AWS_SECRET_ACCESS_KEY", "SK"},
                                {"AWS_ENDPOINT_URL", "http://a:1"}, {"AWS_ENDPOINT_URL_S3", "https://b:2"}}));
  CHECK(s3.endpoint == "https://b:2");
  auto aws = load_config(env_of({{"AWS_ACCESS_KEY_ID", "AK"}, {"AWS_SECRET_ACCESS_KEY", "SK"}}));
  CHECK(aws.region == "us-east-1");
  CHECK_FALSE(aws.path_style);
  CHECK(aws.bucket_url("runs") == "https://runs.s3.us-east-1.amazonaws.com");
  CHECK(aws.bucket_url("my.runs") == "https://s3.us-east-1.amazonaws.com/my.runs");
  CHECK(aws.max_attempts == 5);

  CHECK(kind_of([] { load_config(env_of({{"AWS_ACCESS_KEY_ID", "AK"}, {"HOME", "/nonexistent"}})); }) ==
        ErrorKind::io);
  CHECK(kind_of([] {
          load_config(env_of({{"AWS_ACCESS_KEY_ID", "AK"}, {"AWS_SECRET_ACCESS_KEY", "SK"},
                              {"AWS_ENDPOINT_URL", "127.0.0.1:9000"}}));
        }) == ErrorKind::usage);
  CHECK(kind_of([] {
          load_config(env_of({{"AWS_ACCESS_KEY_ID", "AK"}, {"AWS_SECRET_ACCESS_KEY", "SK"},
                              {"AWS_ENDPOINT_URL", "http://h:1/path"}}));
        }) == ErrorKind::usage);
  CHECK(kind_of([] {
          load_config(env_of({{"AWS_ACCESS_KEY_ID", "AK"}, {"AWS_SECRET_ACCESS_KEY", "SK"},
                              {"AWS_MAX_ATTEMPTS", "0"}}));
        }) == ErrorKind::usage);
}

TEST_CASE("s3 configuration: the secret is never in an error message") {
  try {
    load_config(env_of({{"AWS_SECRET_ACCESS_KEY", "very-secret-value"}, {"HOME", "/nonexistent"}}));
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("very-secret-value") == std::string::npos);
    CHECK(std::string(e.what()).find("AWS_ACCESS_KEY_ID") != std::string::npos);
  }
}

TEST_CASE("s3 configuration: profiles from the shared files") {
  TempDir dir;
  std::string creds = dir.path() + "/credentials";
  std::string conf = dir.path() + "/config";
  std::ofstream(creds) << "[default]\naws_access_key_id = DEFAULTAK\naws_secret_access_key = DEFAULTSK\n"
                          "# a comment\n[train]\naws_access_key_id=TRAINAK\naws_secret_access_key=TRAINSK\n"
                          "aws_session_token = TRAINTOK\n";
  std::ofstream(conf) << "[default]\nregion = eu-north-1\n[profile train]\nregion = ap-south-1\n"
                         "endpoint_url = http://store.internal:7480\ns3 =\n  addressing_style = path\n";
  std::map<std::string, std::string> base{{"AWS_SHARED_CREDENTIALS_FILE", creds}, {"AWS_CONFIG_FILE", conf}};
  auto def = load_config(env_of(base));
  CHECK(def.credentials.access_key == "DEFAULTAK");
  CHECK(def.region == "eu-north-1");
  CHECK_FALSE(def.path_style);

  auto with_profile = base;
  with_profile["AWS_PROFILE"] = "train";
  auto train = load_config(env_of(with_profile));
  CHECK(train.credentials.access_key == "TRAINAK");
  CHECK(train.credentials.secret_key == "TRAINSK");
  CHECK(train.credentials.session_token == "TRAINTOK");
  CHECK(train.region == "ap-south-1");
  CHECK(train.endpoint == "http://store.internal:7480");
  CHECK(train.path_style);

  // Variables win over the files.
  auto vars = with_profile;
  vars["AWS_ACCESS_KEY_ID"] = "VARAK";
  vars["AWS_SECRET_ACCESS_KEY"] = "VARSK";
  vars["AWS_DEFAULT_REGION"] = "us-west-1";
  auto v = load_config(env_of(vars));
  CHECK(v.credentials.access_key == "VARAK");
  CHECK(v.credentials.session_token.empty());
  CHECK(v.region == "us-west-1");

  auto missing = base;
  missing["AWS_PROFILE"] = "nope";
  CHECK(kind_of([&] { load_config(env_of(missing)); }) == ErrorKind::io);
}

TEST_CASE("s3 URI encoding follows SigV4") {
  CHECK(uri_encode("step-000000001/_checkpoint.json", true) == "step-000000001/_checkpoint.json");
  CHECK(uri_encode("a b/c+d~e", true) == "a%20b/c%2Bd~e");
  CHECK(uri_encode("a/b", false) == "a%2Fb");
  CHECK(uri_encode("\xc3\xa9", true) == "%C3%A9");
  CHECK(content_md5("") == "1B2M2Y8AsgTpgAmY7PhCfg==");
  CHECK(content_md5("hello") == "XUFAKrxLKna5cZ2REBfFkg==");
}

TEST_CASE("s3 XML: elements, text and entities") {
  std::string doc =
      "<?xml version=\"1.0\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<IsTruncated>true</IsTruncated><Contents><Key>a&amp;b</Key><Size>3</Size>"
      "<ETag>&quot;abc&quot;</ETag></Contents><Contents><Key>c&#x20;d&#233;</Key><Size>0</Size></Contents>"
      "<KeyCount>2</KeyCount><Empty/></ListBucketResult>";
  auto contents = xml_elements(doc, "Contents");
  REQUIRE(contents.size() == 2);
  CHECK(xml_text(contents[0], "Key") == "a&b");
  CHECK(xml_text(contents[0], "ETag") == "\"abc\"");
  CHECK(xml_text(contents[1], "Key") == "c d\xc3\xa9");
  CHECK(xml_text(doc, "IsTruncated") == "true");
  CHECK(xml_text(doc, "Key") == "a&b");  // the first one
  CHECK(xml_text(doc, "Empty") == "");
  CHECK_FALSE(xml_text(doc, "Missing").has_value());
  CHECK(xml_elements(doc, "Key").size() == 2);
  CHECK(xml_elements(doc, "KeyCount").size() == 1);  // <Key> does not match <KeyCount>
  CHECK(xml_escape("<a & 'b'>") == "&lt;a &amp; &apos;b&apos;&gt;");
  CHECK(xml_unescape(xml_escape("x<y>&\"'")) == "x<y>&\"'");
  CHECK(xml_unescape("&unknown; &#xZZ;") == "&unknown; &#xZZ;");
}

TEST_CASE("s3 answers: ETag and error code") {
  Response r;
  r.status = 412;
  r.headers["etag"] = "\"0123\"";
  r.body = "<Error><Code>PreconditionFailed</Code><Message>x</Message></Error>";
  CHECK(r.etag() == "0123");
  CHECK(r.error_code() == "PreconditionFailed");
  CHECK_FALSE(r.ok());
}
