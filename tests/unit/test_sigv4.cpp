// SPDX-License-Identifier: Apache-2.0
// The hand-made AWS Signature V4 (UploadPartCopy's): AWS's published example
// of a signed GET (the S3 API reference, "Signature calculations for the
// Authorization header", Example: GET Object), and the header order that
// libcurl 7.88 gets wrong.
#include <doctest/doctest.h>

#include <cctype>

#include "s3/sigv4.hpp"

using namespace ckpt::s3;

namespace {

SigV4Request example_get() {
  SigV4Request r;
  r.method = "GET";
  r.path = "/test.txt";
  r.query = "";
  r.headers = {"Host: examplebucket.s3.amazonaws.com", "Range: bytes=0-9",
               "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
               "x-amz-date: 20130524T000000Z"};
  r.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  r.amz_date = "20130524T000000Z";
  r.access_key = "AKIAIOSFODNN7EXAMPLE";
  r.secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  r.region = "us-east-1";
  return r;
}

}  // namespace

TEST_CASE("sigv4: AWS's example GET Object signs to the published signature") {
  CHECK(sigv4_authorization(example_get()) ==
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST_CASE("sigv4: header names are case-folded, values trimmed, the order given does not matter") {
  SigV4Request r = example_get();
  r.headers = {"X-Amz-Date:   20130524T000000Z  ", "range: bytes=0-9",
               "X-AMZ-CONTENT-SHA256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
               "HOST:examplebucket.s3.amazonaws.com"};
  CHECK(sigv4_authorization(r) == sigv4_authorization(example_get()));
  // Anything else signed changes the signature.
  r.headers.push_back("x-amz-meta-a: 1");
  CHECK(sigv4_authorization(r) != sigv4_authorization(example_get()));
}

TEST_CASE("sigv4: x-amz-copy-source is signed before x-amz-copy-source-range (sorted by name)") {
  SigV4Request r = example_get();
  r.method = "PUT";
  r.query = "partNumber=1&uploadId=abc";
  r.headers.push_back("x-amz-copy-source-range: bytes=0-99");
  r.headers.push_back("x-amz-copy-source: /examplebucket/src");
  std::string auth = sigv4_authorization(r);
  CHECK(auth.find("SignedHeaders=host;range;x-amz-content-sha256;x-amz-copy-source;"
                  "x-amz-copy-source-range;x-amz-date,") != std::string::npos);
}

TEST_CASE("sigv4: amz_date_now is YYYYMMDDTHHMMSSZ") {
  std::string d = amz_date_now();
  REQUIRE(d.size() == 16);
  CHECK(d[8] == 'T');
  CHECK(d[15] == 'Z');
  for (int i : {0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14}) CHECK(std::isdigit(static_cast<unsigned char>(d[i])));
}
