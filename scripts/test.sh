#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Sets everything up (with the test tools: strace, python3-torch, python3-jsonschema, zsh, fish,
# bash-completion, lintian, time, openssl, xfsprogs, a single-node Ceph), then builds and runs every
# test once: in the release build what only it runs (with bench/run --quick) and every command's
# scenarios, the Debian packages installed and used (scripts/package-test.sh), a short libFuzzer
# run of every fuzz target (scripts/fuzz.sh; FUZZ_SECONDS=0 skips it), the tests of the threaded
# paths under ThreadSanitizer, then all the other tests under ASan+UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
jobs=$(nproc)
# run_suite BUILD_PRESET [TEST_PRESET]
run_suite() {
  echo "== $1: configure and build"
  cmake --preset "$1" >/dev/null
  cmake --build --preset "$1" -j"$jobs"
  echo "== ${2:-$1}: tests"
  ctest --preset "${2:-$1}" -j"$jobs"
}
# Each test runs once: the release build runs what only it can (the PyTorch runs, the syscall
# kills, the packages' and the consumers' builds, the bench, CephFS) and every command's
# scenarios on the binary that ships; the ASan+UBSan suite runs all the rest.
run_suite release release-ci
# The Debian packages: cpack, lintian, apt-get install, then the installed command and library.
scripts/package-test.sh
# Every fuzz target for FUZZ_SECONDS (default 20) on a copy of its seed corpus (clang).
scripts/fuzz.sh
run_suite tsan
run_suite asan
