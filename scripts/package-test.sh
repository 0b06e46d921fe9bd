#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Debian packages as a user gets them: builds ckpt_<version>_<arch>.deb and
# libckpt-dev_<version>_<arch>.deb from the release build (cpack), checks them with lintian (no
# error), installs them with apt-get on this machine, then uses what was installed: ckpt
# --version, man -w, a save/verify/load round trip with /usr/bin/ckpt, and the consumer program
# (tests/consumer) built against /usr with the CMake package and with pkg-config.
# Run as root after the release build (scripts/test.sh runs it); it changes /usr.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
build=build/release
echo "== packages: cpack"
(cd "$build" && rm -f ./*.deb && cpack -G DEB >/dev/null)
debs=("$build"/ckpt_*.deb "$build"/libckpt-dev_*.deb)
for d in "${debs[@]}"; do
  echo "-- $(basename "$d")"
  dpkg-deb -c "$d" | awk '{print "   " $6}' | grep -v '/$'
done
echo "== packages: lintian"
lintian --allow-root "${debs[@]}" | tee "$build/lintian.txt"
if grep -q '^E:' "$build/lintian.txt"; then
  echo "lintian reports errors" >&2
  exit 1
fi
echo "== packages: install"
# --reinstall: a machine that has this version installed already gets these files.
apt-get install -y -qq --reinstall "${debs[@]/#/$src/}" >/dev/null
version=$(sed -n 's/^project(ckpt VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
out=$(ckpt --version)
want="ckpt $version (checkpoint format 1)"
[[ $out == "$want" ]] || { echo "ckpt --version says '$out', want '$want'" >&2; exit 1; }
ckpt --json version
man -w ckpt-save
man -w 5 ckpt-format
zcat "$(man -w ckpt-save)" | grep -q "\"ckpt $version\"" || { echo "ckpt-save(1)'s header lacks ckpt $version" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo weights >"$work/model.bin"
ckpt -C "$work/root" save --step 1 "$work/model.bin" --metric loss=0.5 --best-key loss
ckpt -C "$work/root" verify
[[ $(cat "$(ckpt -C "$work/root" load best)") == weights ]]
echo "== packages: the consumer against /usr"
tests/consumer/run.sh find_package /usr
tests/consumer/run.sh pkg-config /usr
echo "packages: ok"
