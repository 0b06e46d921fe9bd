// SPDX-License-Identifier: Apache-2.0
// The TempDir helper and the listener that tells it whether the current test failed.
#include "test_support.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace ckpt_test {

namespace {

bool g_failed = false;

// Observes every test case: records a failed assertion or failing message so
// that TempDir can keep the directory of a failed test for inspection.
class FailureListener : public doctest::IReporter {
 public:
  explicit FailureListener(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData&) override { g_failed = false; }
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override { g_failed = true; }
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData& ad) override {
    if (ad.m_failed) g_failed = true;
  }
  void log_message(const doctest::MessageData& md) override {
    if (!(md.m_severity & doctest::assertType::is_warn)) g_failed = true;
  }
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

}  // namespace

REGISTER_LISTENER("ckpt_tempdir_failures", 1, FailureListener);

bool current_test_failed() { return g_failed; }

TempDir::TempDir() : m_uncaught(std::uncaught_exceptions()) {
  char tmpl[] = "/tmp/ckpt-unit-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  m_path = tmpl;
}

TempDir::~TempDir() {
  bool keep = g_failed || std::uncaught_exceptions() > m_uncaught ||
              std::getenv("CKPT_KEEP_TMP") != nullptr;
  if (keep) {
    std::fprintf(stderr, "ckpt unit tests: keeping %s\n", m_path.c_str());
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(m_path, ec);
}

std::string TempDir::sub(const std::string& rel) const { return m_path + "/" + rel; }

void write_text(const std::string& path, const std::string& data) {
  std::filesystem::path p(path);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  REQUIRE_MESSAGE(out.good(), "cannot create " << path);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  out.close();
  REQUIRE_MESSAGE(!out.fail(), "cannot write " << path);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot open " << path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

bool is_dir(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::vector<std::string> list_dir(const std::string& path) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(path, ec)) {
    out.push_back(e.path().filename().string());
  }
  REQUIRE_MESSAGE(!ec, "cannot list " << path << ": " << ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace ckpt_test
