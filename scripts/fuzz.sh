#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Coverage-guided fuzzing (tests/fuzz) with libFuzzer: installs clang and its runtimes (Debian 12,
# as root; skipped when present), builds the "fuzz" preset (build/fuzz), then runs each target for
# FUZZ_SECONDS on a COPY of its committed seed corpus (the corpus in git never grows by itself).
#
#   scripts/fuzz.sh [TARGET...]      default: every target in tests/fuzz/corpus/
#   FUZZ_SECONDS=N                   per target (default 20; 0 skips fuzzing altogether)
#   FUZZ_JOBS=N                      targets fuzzed at once (default: one a core)
#
# Exits non-zero when any target crashes, hangs, leaks or breaks a property. Crash inputs are
# kept in build/fuzz/crashes/ (never deleted by this script) and printed escaped in the log;
# replay one with build/fuzz/tests/fuzz/<target>_replay FILE (or the fuzz binary itself).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-20}
if [[ ! $seconds =~ ^[0-9]+$ ]]; then
  echo "fuzz: FUZZ_SECONDS must be a whole number of seconds, not '$seconds'" >&2
  exit 2
fi
if ((seconds == 0)); then
  echo "fuzz: skipped (FUZZ_SECONDS=0)"
  exit 0
fi

# ---- packages: the project's own, then clang, libFuzzer's runtime and llvm-symbolizer --------
scripts/setup.sh
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
install_missing() {
  local missing=() p
  for p in "$@"; do installed "$p" || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  if [[ $(id -u) -ne 0 ]]; then
    echo "fuzz: missing packages: ${missing[*]} (install them as root)" >&2
    exit 1
  fi
  echo "fuzz: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
install_missing clang
llvm_major=$(clang++ -dumpversion | cut -d. -f1)
# libclang-rt-N-dev holds libclang_rt.fuzzer (only a Recommends of clang); llvm-N the symbolizer.
install_missing "libclang-rt-${llvm_major}-dev" "llvm-${llvm_major}"
symbolizer=/usr/lib/llvm-${llvm_major}/bin/llvm-symbolizer
[[ -x $symbolizer ]] && export ASAN_SYMBOLIZER_PATH=$symbolizer

# ---- build --------------------------------------------------------------------------------------
echo "== fuzz: configure and build (clang ${llvm_major}, ASan + UBSan + libFuzzer)"
mkdir -p build/fuzz
if ! { cmake --preset fuzz && cmake --build --preset fuzz -j"$(nproc)"; } >build/fuzz/build.log 2>&1; then
  tail -n 60 build/fuzz/build.log >&2
  echo "fuzz: the fuzz build failed (full log: build/fuzz/build.log)" >&2
  exit 1
fi

# ---- run ----------------------------------------------------------------------------------------
bin_dir=build/fuzz/tests/fuzz
runs=build/fuzz/runs
crashes=build/fuzz/crashes
if (($#)); then
  targets=("$@")
else
  targets=()
  for d in tests/fuzz/corpus/*/; do targets+=("$(basename "$d")"); done
fi

# An input as a C-escaped string (crash inputs are small; cut after 2000 bytes).
escape() {
  python3 -c 'import sys
d = open(sys.argv[1], "rb").read()
s = "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else {10: "\\n", 34: "\\\"", 92: "\\\\"}.get(b, "\\x%02x" % b) for b in d[:2000])
print("%d bytes: \"%s\"%s" % (len(d), s, "..." if len(d) > 2000 else ""))' "$1"
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
for t in "${targets[@]}"; do
  if [[ ! -x $bin_dir/$t || ! -d tests/fuzz/corpus/$t ]]; then
    echo "fuzz: no such target: $t (expected $bin_dir/$t and tests/fuzz/corpus/$t)" >&2
    exit 2
  fi
done

# Fuzzes one target into $runs/<target>/ (corpus copy, artifacts/, log, rc).
fuzz_one() {
  local t=$1 work=$runs/$1 dict rc=0
  local dict_args=()
  rm -rf "$work"
  mkdir -p "$work/artifacts" "$work/tmp"
  cp -R "tests/fuzz/corpus/$t" "$work/corpus"
  case $t in
    *_json) dict=tests/fuzz/dict/json.dict ;;
    *) dict=tests/fuzz/dict/$t.dict ;;
  esac
  [[ -f $dict ]] && dict_args=(-dict="$dict")
  # -timeout: one input taking longer is a hang; the outer timeout is only a safety net.
  # TMPDIR: the targets' temporary roots, left behind when a crash skips their cleanup.
  TMPDIR=$PWD/$work/tmp timeout -k 10 $((seconds * 2 + 120)) "$bin_dir/$t" -max_total_time="$seconds" \
    -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
    "${dict_args[@]}" "$work/corpus" >"$work/log" 2>&1 || rc=$?
  echo "$rc" >"$work/rc"
}

# One fuzzer a core (FUZZ_JOBS overrides), each for FUZZ_SECONDS.
jobs=${FUZZ_JOBS:-$(nproc)}
((jobs >= 1)) || jobs=1
start=$SECONDS
echo "== fuzz: ${#targets[@]} targets, ${seconds} s each, ${jobs} at a time"
for t in "${targets[@]}"; do
  while (($(jobs -rp | wc -l) >= jobs)); do wait -n || true; done
  fuzz_one "$t" &
done
wait

total_execs=0
passed=0
failed=0
failed_names=()
mkdir -p "$crashes"
for t in "${targets[@]}"; do
  work=$runs/$t
  rc=$(cat "$work/rc" 2>/dev/null || echo "?")
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -n1)
  added=$(sed -n 's/^stat::new_units_added: *//p' "$work/log" | tail -n1)
  execs=${execs:-0}
  total_execs=$((total_execs + execs))
  if [[ $rc == 0 ]]; then
    passed=$((passed + 1))
    printf 'fuzz: %-22s ok      %10s executions, %s new inputs\n' "$t" "$execs" "${added:-0}"
    continue
  fi
  failed=$((failed + 1))
  failed_names+=("$t")
  printf 'fuzz: %-22s FAILED  %10s executions (exit %s); log: %s\n' "$t" "$execs" "$rc" "$work/log"
  # The report: from the first property/sanitizer/libFuzzer error line on.
  awk '/ckpt fuzz: property violated|terminate called|runtime error:|^==[0-9]+==|^INFO: a leak|deadly signal|ERROR: libFuzzer/ {p=1} p' \
    "$work/log" | grep -v -E '^(#[0-9]+ +(NEW|REDUCE|pulse|INITED)|MS: )' | head -n 120 | sed 's/^/    /'
  for f in "$work"/artifacts/*; do
    [[ -f $f ]] || continue
    kept=$crashes/$t-$(basename "$f")
    cp "$f" "$kept"
    echo "    input $kept ($(escape "$kept"))"
    echo "    replay: $bin_dir/${t}_replay $kept"
  done
done
echo "fuzz: total ${total_execs} executions over ${#targets[@]} targets in $((SECONDS - start)) s"
if ((failed)); then
  echo "fuzz: failing targets: ${failed_names[*]} (inputs kept in $crashes/)"
fi
echo "fuzz: ${passed} of ${#targets[@]} targets ran clean"
((failed == 0))
