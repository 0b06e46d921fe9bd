#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs what ckpt needs to build on Debian 12 (run as root; skipped when present).
# --test: also what the tests need: strace (kills at exact system calls),
# python3-torch (the PyTorch training loop in examples/pytorch), python3-jsonschema
# (--json outputs against docs/json), zsh, fish and bash-completion (the completions,
# each in its real shell), and GNU time,
# openssl and xfsprogs (bench/run, which the suite runs once at its --quick sizes), and
# a single-node Ceph (tests/cluster/ceph-up.sh: sharded saves on CephFS through two
# ceph-fuse mounts; object-store roots against its S3 gateway, radosgw).
set -euo pipefail
pkgs=(build-essential cmake python3 coreutils libcli11-dev nlohmann-json3-dev libssl-dev
      libfmt-dev libcurl4-openssl-dev doctest-dev groff-base)
if [[ ${1:-} == --test ]]; then
  pkgs+=(strace python3-torch python3-jsonschema zsh fish bash-completion lintian pkgconf man-db
        shellcheck systemd time openssl xfsprogs
        ceph-mon ceph-mgr ceph-osd ceph-mds ceph-fuse ceph-common radosgw)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing packages: ${missing[*]} (install them as root)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
