#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A small deterministic PyTorch training job that checkpoints through ckpt.

A 16->32->1 MLP (with dropout) learns a noisy regression on CPU. Everything
the next step depends on is checkpointed: the model, the Adam state, torch's
global RNG (dropout) and the data generator (which batch comes next), so a
job killed at any moment and started again with the same options ends with
the same weights, bit for bit, as one that never stopped.

    train.py --root ckpts --work work --steps 600 --every 10 \\
             --keep-last 3 --best-key val_loss --out final.bin

On start it resumes from `ckpt load latest`; an empty root (made by the
launcher, never by this job) means a fresh start, any other error stops it.
Every --every steps it writes model.pt, optim.pt and state.pt into --work
and commits them with `ckpt save --from WORK` (--move: moving them in),
recording the loss on a fixed held-out batch as the metric val_loss. At the
end it writes the raw float32 bytes of every parameter to --out.

The ckpt calls go through examples/python/ckpt.py, the one Python helper of
these examples; it runs $CKPT_BIN, else `ckpt` on PATH.
"""

import argparse
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from ckpt import Ckpt, NotFoundError  # noqa: E402  (examples/python/ckpt.py)

IN, HIDDEN = 16, 32
TRAIN_POOL, VAL_SIZE, BATCH = 64, 256, 16
LR = 0.01


def make_data():
    """The training pool and the held-out batch: fixed by a seed, rebuilt identically on every start.
    A small pool, so that the model overfits and the validation loss turns back up."""
    g = torch.Generator().manual_seed(1234)
    w1 = torch.randn(IN, 8, generator=g)
    w2 = torch.randn(8, 1, generator=g)

    def target(x):
        return torch.tanh(x @ w1) @ w2

    x_train = torch.randn(TRAIN_POOL, IN, generator=g)
    y_train = target(x_train) + 0.5 * torch.randn(TRAIN_POOL, 1, generator=g)
    x_val = torch.randn(VAL_SIZE, IN, generator=g)
    y_val = target(x_val) + 0.5 * torch.randn(VAL_SIZE, 1, generator=g)
    return x_train, y_train, x_val, y_val


def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(IN, HIDDEN), torch.nn.Tanh(), torch.nn.Dropout(0.1), torch.nn.Linear(HIDDEN, 1))


def val_loss(model, x_val, y_val):
    model.eval()
    with torch.no_grad():
        v = torch.nn.functional.mse_loss(model(x_val), y_val).item()
    model.train()
    return v


def write_params(model, path):
    """The raw little-endian float32 bytes of every parameter, in state_dict order; written to a temporary
    file and renamed, so a reader never sees a partial file."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        for t in model.state_dict().values():
            values = t.detach().reshape(-1).tolist()
            f.write(struct.pack(f"<{len(values)}f", *values))
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", required=True, help="the ckpt root (must exist)")
    ap.add_argument("--work", required=True, help="where the checkpoint files are written before each save")
    ap.add_argument("--steps", type=int, default=600, help="total training steps")
    ap.add_argument("--every", type=int, default=10, help="save every K steps (and after the last one)")
    ap.add_argument("--move", action="store_true", help="pass --move to ckpt save")
    ap.add_argument("--keep-last", type=int, help="pass --keep-last N to ckpt save")
    ap.add_argument("--best-key", default="val_loss", choices=["val_loss"], help="the metric that decides best")
    ap.add_argument("--out", help="at the end, write the raw float32 bytes of every parameter here")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.work, exist_ok=True)

    x_train, y_train, x_val, y_val = make_data()
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    data_gen = torch.Generator().manual_seed(99)  # which samples each batch takes
    torch.manual_seed(7)  # dropout

    ck = Ckpt(args.root)
    start = 1
    try:
        loaded = ck.load("latest")
    except NotFoundError as e:
        if e.reason != "empty_root":  # no_root: a mistyped --root, never a fresh start
            raise
        print("starting fresh", flush=True)
    else:
        files = loaded.files  # stored path -> absolute path
        state = torch.load(files["state.pt"])
        if state["step"] != loaded["step"]:
            sys.exit(f"train.py: {loaded['name']}: state.pt holds step {state['step']}, "
                     f"ckpt load reports step {loaded['step']}")
        model.load_state_dict(torch.load(files["model.pt"]))
        opt.load_state_dict(torch.load(files["optim.pt"]))
        torch.set_rng_state(state["torch_rng"])
        data_gen.set_state(state["data_rng"])
        start = loaded["step"] + 1
        print(f"resumed from {loaded['name']} (step {loaded['step']})", flush=True)

    model.train()
    for step in range(start, args.steps + 1):
        idx = torch.randint(0, TRAIN_POOL, (BATCH,), generator=data_gen)
        loss = torch.nn.functional.mse_loss(model(x_train[idx]), y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % args.every != 0 and step != args.steps:
            continue
        v = val_loss(model, x_val, y_val)
        # torch.save opens each path for writing: the same files are rewritten in place at every save
        torch.save(model.state_dict(), os.path.join(args.work, "model.pt"))
        torch.save(opt.state_dict(), os.path.join(args.work, "optim.pt"))
        torch.save({"step": step, "torch_rng": torch.get_rng_state(), "data_rng": data_gen.get_state()},
                   os.path.join(args.work, "state.pt"))
        info = ck.save(step, from_dir=args.work, metrics={"val_loss": v}, best_key=args.best_key,
                       weights="model.pt", keep_last=args.keep_last, move=args.move)
        print(f"saved {info['name']} step {step} val_loss {v!r}"
              + (" (already committed)" if info.get("existing") else "")
              + (" best" if info["best_updated"] else "")
              + (f" pruned {' '.join(p['name'] for p in info['pruned'])}" if info["pruned"] else ""), flush=True)

    if args.out:
        write_params(model, args.out)
    print("done", flush=True)


if __name__ == "__main__":
    main()
