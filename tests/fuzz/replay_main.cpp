// SPDX-License-Identifier: Apache-2.0
// A main() for the fuzz targets without libFuzzer: runs LLVMFuzzerTestOneInput once over
// every file given, or found (recursively, in sorted order) under each directory given.
// Arguments starting with '-' (libFuzzer flags) are ignored. Exits non-zero when an
// argument does not exist or no input was found; a broken property aborts.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

std::string g_current;  // the input being replayed, for the terminate handler

[[noreturn]] void on_terminate() {
  std::fprintf(stderr, "replay: uncaught exception while running %s", g_current.c_str());
  if (auto e = std::current_exception()) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      std::fprintf(stderr, ": %s", x.what());
    } catch (...) {
      std::fprintf(stderr, ": (not a std::exception)");
    }
  }
  std::fprintf(stderr, "\n");
  std::abort();
}

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::set_terminate(on_terminate);
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (!arg.empty() && arg[0] == '-') continue;
    std::error_code ec;
    if (fs::is_directory(arg, ec)) {
      std::vector<fs::path> found;
      for (auto it = fs::recursive_directory_iterator(arg, ec); !ec && it != fs::end(it);
           it.increment(ec)) {
        if (it->is_regular_file()) found.push_back(it->path());
      }
      if (ec) {
        std::fprintf(stderr, "replay: cannot list %s: %s\n", arg.c_str(), ec.message().c_str());
        return 2;
      }
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::is_regular_file(arg, ec)) {
      files.emplace_back(arg);
    } else {
      std::fprintf(stderr, "replay: no such file or directory: %s\n", arg.c_str());
      return 2;
    }
  }
  if (files.empty()) {
    std::fprintf(stderr, "replay: no input found (usage: %s DIR_OR_FILE...)\n", argv[0]);
    return 2;
  }
  std::size_t total_bytes = 0;
  for (const auto& f : files) {
    g_current = f.string();
    std::ifstream in(f, std::ios::binary);
    std::vector<char> buf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.eof() && in.fail()) {
      std::fprintf(stderr, "replay: cannot read %s\n", g_current.c_str());
      return 2;
    }
    total_bytes += buf.size();
    // A copy in its own heap block, so that ASan catches reads past the end.
    auto* data = static_cast<std::uint8_t*>(std::malloc(buf.empty() ? 1 : buf.size()));
    if (!buf.empty()) std::copy(buf.begin(), buf.end(), data);
    LLVMFuzzerTestOneInput(data, buf.size());
    std::free(data);
  }
  std::printf("replay: %zu inputs (%zu bytes) passed\n", files.size(), total_bytes);
  return 0;
}
