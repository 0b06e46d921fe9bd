#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds tests/consumer/consumer.cpp against ckpt one way and runs it on a fresh root.
#   run.sh find_package PREFIX      the CMake package installed under PREFIX
#   run.sh pkg-config PREFIX        ckpt.pc installed under PREFIX
#   run.sh add_subdirectory SRC     ckpt's source tree SRC as a subproject
#   run.sh docs-example PREFIX      the example of docs/library.md, as written there, against
#                                   ckpt.pc under PREFIX, run where it expects its files
# PREFIX may be /usr (the Debian package). Exits nonzero on any failure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mode=${1:?mode}
where=${2:?prefix or source dir}
work=$(mktemp -d "${TMPDIR:-/tmp}/ckpt-consumer.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
jobs=$(nproc)

case $mode in
  find_package)
    cmake -S "$here/find_package" -B build -DCMAKE_PREFIX_PATH="$where" >/dev/null
    cmake --build build -j"$jobs" >/dev/null
    ;;
  pkg-config)
    export PKG_CONFIG_PATH="$where/lib/pkgconfig:$where/lib/x86_64-linux-gnu/pkgconfig:${PKG_CONFIG_PATH:-}"
    echo "pkg-config --cflags --libs ckpt: $(pkg-config --cflags --libs ckpt)"
    mkdir build
    # shellcheck disable=SC2046
    c++ -std=c++17 -Wall -Wextra -Werror "$here/consumer.cpp" $(pkg-config --cflags --libs ckpt) \
        -o build/consumer
    ;;
  add_subdirectory)
    # CLI11 made unfindable: the library alone must not ask for it.
    cmake -S "$here/subdir" -B build -DCKPT_SOURCE_DIR="$where" -DCMAKE_DISABLE_FIND_PACKAGE_CLI11=ON \
          >/dev/null
    cmake --build build -j"$jobs" >/dev/null
    for t in ckpt_bin ckpt_unit_tests ckpt_cli; do
      if cmake --build build --target "$t" >/dev/null 2>&1; then
        echo "ckpt as a subproject defines $t: it should build the library alone" >&2
        exit 1
      fi
    done
    if [[ -e build/ckpt/CTestTestfile.cmake ]]; then
      echo "ckpt as a subproject registered its tests" >&2
      exit 1
    fi
    cmake --install build --prefix "$work/inst" >/dev/null
    installed=$(cd "$work/inst" && find . -type f | sort)
    if [[ $installed != "./bin/consumer" ]]; then
      printf 'the consumer'\''s install holds more than its own program:\n%s\n' "$installed" >&2
      exit 1
    fi
    ;;
  docs-example)
    # The ```cpp block of docs/library.md, compiled as a reader would paste it.
    awk '/^```cpp$/ {on = 1; next} /^```$/ {on = 0} on' "$here/../../docs/library.md" >example.cpp
    [[ -s example.cpp ]] || { echo "no C++ example in docs/library.md" >&2; exit 1; }
    export PKG_CONFIG_PATH="$where/lib/pkgconfig:$where/lib/x86_64-linux-gnu/pkgconfig:${PKG_CONFIG_PATH:-}"
    # shellcheck disable=SC2046
    c++ -std=c++17 -Wall -Wextra -Werror example.cpp \
        $(pkg-config --cflags --libs ckpt) -o example
    mkdir out
    printf 'weights\n' >out/model.bin
    printf 'optimizer\n' >out/optim.bin
    out=$(./example)
    printf '%s\n' "$out"
    # Three saves, the best at step 3 (val_loss 1/3), its weights loaded, the two others pruned.
    expected="saved step-000000001 (new best)
saved step-000000002 (new best)
saved step-000000003 (new best)
model.bin -> $work/runs/exp1/checkpoints/step-000000003/model.bin
pruned step-000000001
pruned step-000000002"
    if [[ $out != "$expected" ]]; then
      printf 'the example of docs/library.md printed something else; expected:\n%s\n' "$expected" >&2
      exit 1
    fi
    [[ -f runs/exp1/checkpoints/step-000000003/_checkpoint.json ]]
    echo "docs example: ok"
    exit 0
    ;;
  *)
    echo "run.sh: unknown mode $mode" >&2
    exit 2
    ;;
esac

mkdir src
out=$(./build/consumer "$work/root" "$work/src")
printf '%s\n' "$out"
expect() {
  grep -qxF -- "$1" <<<"$out" || { echo "consumer output lacks: $1" >&2; exit 1; }
}
expect "saved step-000000002: 2 files, commit 2 (new best)"
expect "latest step-000000003, best step-000000002"
expect "verify: ok, 3 checkpoints"
expect "load best --weights-only: model.bin = \"weights at step 2\""
expect "pruned step-000000001"
expect "kept 2"
expect "resolve 99: no checkpoint for step 99 (exit code 3)"
# The library wrote a root the command reads, if there is one to ask.
if command -v ckpt >/dev/null && [[ $mode != add_subdirectory ]]; then
  ckpt -C "$work/root" verify >/dev/null
fi
echo "consumer ($mode): ok"
