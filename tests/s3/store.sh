#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The S3 server of the object-store tests: a single-node Ceph with radosgw only (no CephFS,
# no mounts), started by tests/cluster/ceph-up.sh on ports of its own, so that a developer's
# cluster on the defaults is no obstacle, and neither is another suite's store (the next free
# ports are taken).
#
#   store.sh start STATE_FILE   start it (in a new directory under /tmp: the daemons' admin
#                               sockets need a short path); STATE_FILE records that directory,
#                               STATE_FILE.env the variables a client needs (AWS_ENDPOINT_URL,
#                               AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION)
#   store.sh stop STATE_FILE    stop its daemons (only those) and delete the directory
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
up=$here/../cluster/ceph-up.sh
cmd=${1:-}
state=${2:-}
[ -n "$cmd" ] && [ -n "$state" ] || { sed -n '3,12p' "$0"; exit 2; }

export CEPH_WITH_CEPHFS=0 CEPH_FUSE_MOUNTS=0 CEPH_WITH_RGW=1 CEPH_OSD_SIZE=${CEPH_OSD_SIZE:-8G}
export CEPH_PORT_MIN=${CKPT_S3_PORT_MIN:-47600} CEPH_PORT_MAX=${CKPT_S3_PORT_MAX:-47799}
# The monitor's two ports and radosgw's: those given, else the first free set of ten (another
# suite's store, a developer's, may hold the first).
port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }
if [ -n "${CKPT_S3_MON_PORT:-}${CKPT_S3_PORT:-}" ] || [ "$cmd" != start ]; then
  export CEPH_MON_PORT=${CKPT_S3_MON_PORT:-47400} CEPH_RGW_PORT=${CKPT_S3_PORT:-47480}
else
  for k in 0 1 2 3 4 5 6 7 8 9; do
    export CEPH_MON_PORT=$((47400 + 4 * k)) CEPH_RGW_PORT=$((47480 + k))
    if port_free "$CEPH_MON_PORT" && port_free $((CEPH_MON_PORT + 1)) && port_free "$CEPH_RGW_PORT"; then
      break
    fi
  done
fi

case $cmd in
  start)
    for b in ceph-mon ceph-mgr ceph-osd radosgw radosgw-admin; do
      command -v "$b" >/dev/null ||
        { echo "store.sh: $b not found: run scripts/setup.sh --test (Debian's ceph-mon ceph-mgr ceph-osd radosgw)" >&2; exit 1; }
    done
    # A cluster this state file started earlier (a run that was killed): stop it first.
    if [ -s "$state" ]; then "$0" stop "$state" || true; fi
    dir=$(mktemp -d /tmp/ckpt-s3-XXXXXX)
    echo "$dir" >"$state"
    t0=$(date +%s)
    if ! bash "$up" start "$dir" >"$dir.log" 2>&1; then
      tail -40 "$dir.log" >&2
      exit 1
    fi
    grep '^AWS_' "$dir/s3.env" >"$state.env"
    echo "store.sh: radosgw on 127.0.0.1:$CEPH_RGW_PORT in $(($(date +%s) - t0)) s ($dir)"
    ;;
  stop)
    [ -s "$state" ] || exit 0
    dir=$(cat "$state")
    case $dir in /tmp/ckpt-s3-*) ;; *) echo "store.sh: $state names $dir, not a test cluster" >&2; exit 1 ;; esac
    bash "$up" destroy "$dir" >>"$dir.log" 2>&1 || { tail -20 "$dir.log" >&2; exit 1; }
    rm -f "$dir.log" "$state" "$state.env"
    ;;
  *) sed -n '3,13p' "$0"; exit 2 ;;
esac
