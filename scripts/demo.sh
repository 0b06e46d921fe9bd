#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Sets everything up, builds ckpt, and runs the main job on a demonstration root (./demo).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" >/dev/null
ckpt() { build/release/apps/ckpt/ckpt "$@"; }
show() { printf '\n$ ckpt %s\n' "$*"; ckpt "$@"; }

demo=demo
rm -rf "$demo"
mkdir -p "$demo/work/optim"
export CKPT_ROOT="$demo/checkpoints"
losses=(1.00 0.50 0.80)
for i in 1 2 3; do
  step=$((i * 100))
  # A stand-in for a training step's output: weights, optimizer shards, RNG state.
  head -c $((256 * 1024)) /dev/urandom >"$demo/work/model.safetensors"
  head -c $((64 * 1024)) /dev/urandom >"$demo/work/optim/shard-0.pt"
  head -c 32 /dev/urandom >"$demo/work/rng.bin"
  show save --step "$step" --from "$demo/work" --metric "val_loss=${losses[i-1]}" \
    --best-key val_loss --weights model.safetensors --meta run=demo
done
show info
show info --limit 2 --sort val_loss
show diff 100 best
show info latest --path
show info best
show verify
echo
echo "# flip one byte of the best checkpoint's weights"
printf 'X' | dd of="$CKPT_ROOT/step-000000200/model.safetensors" bs=1 seek=1000 conv=notrunc 2>/dev/null
show verify || echo "(exit $? : the corruption is caught)"
show load latest --weights-only
(cd "$CKPT_ROOT/step-000000300" && printf '\n$ sha256sum -c SHA256SUMS\n' && sha256sum -c SHA256SUMS)
