#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# A torchrun-style launch of N local ranks that save one checkpoint together,
# with no barrier: each rank writes its own shard file and stores it with
# `ckpt save --shard env` (RANK and WORLD_SIZE, as torchrun sets them); the
# last rank in commits the checkpoint. Then `ckpt load latest` lists every
# rank's file, verified.
#
#   examples/sharded/launch.sh ROOT [N] [STEP]
#
# $CKPT names the binary (default: ckpt on $PATH).
set -eu
root=${1:?usage: launch.sh ROOT [N] [STEP]}
n=${2:-4}
step=${3:-100}
ckpt=${CKPT:-ckpt}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# What torchrun exports to every rank; the run id and restart count make the
# attempt group, so shards of a crashed attempt never mix with its restart.
export WORLD_SIZE="$n" TORCHELASTIC_RUN_ID="demo-$$" TORCHELASTIC_RESTART_COUNT=0

rank=0
pids=
while [ "$rank" -lt "$n" ]; do
  (
    export RANK="$rank"
    # The rank's part of the model, as torch.save or DCP would write it.
    mkdir -p "$work/rank$RANK"
    head -c 1048576 /dev/urandom >"$work/rank$RANK/model-rank$RANK.pt"
    # Metrics and the policy may come from any rank; rank 0 gives them.
    if [ "$RANK" = 0 ]; then
      set -- --metric loss=0.5 --best-key loss --keep-last 3
    else
      set --
    fi
    exec "$ckpt" -C "$root" save --step "$step" --shard env "$@" \
      "$work/rank$RANK/model-rank$RANK.pt"
  ) &
  pids="$pids $!"
  rank=$((rank + 1))
done

failed=0
for pid in $pids; do
  wait "$pid" || failed=$((failed + 1))
done
if [ "$failed" -ne 0 ]; then
  echo "launch.sh: $failed rank(s) failed; rerun them (ckpt info lists the missing shards)" >&2
  exit 1
fi
"$ckpt" -C "$root" load latest
