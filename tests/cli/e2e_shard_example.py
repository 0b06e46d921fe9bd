#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The worked example of sharded saves, examples/sharded/launch.sh, run as a user would: N local
ranks started torchrun-style, each saving its own shard with `ckpt save --shard env`.

Usage: e2e_shard_example.py --list | --all | SCENARIO...   (binary: $CKPT_BIN)
"""
import json
import os
import pathlib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, expect_eq, expect_rc, name  # noqa: E402

SCENARIOS, scenario = harness.registry()
LAUNCH = pathlib.Path(__file__).resolve().parent.parent.parent / "examples" / "sharded" / "launch.sh"


class Ctx(harness.RootCtx):
    def run(self, *args, root=None, code=None, what=""):
        cmd = [harness.BIN, "-C", str(root or self.root), *args]
        return harness.execute(cmd, cwd=str(self.tmp), env=harness.child_env(), timeout=120,
                               code=code, what=what or " ".join(map(str, args)))

    def launch(self, n, step, code=0):
        env = harness.child_env({"CKPT": harness.BIN})
        return harness.execute(["sh", str(LAUNCH), str(self.root), str(n), str(step)],
                               cwd=str(self.tmp), env=env, timeout=300, code=code,
                               what=f"launch.sh with {n} ranks")


@scenario
def shards_example_launch(c):
    """launch.sh: N ranks, one commit, and `ckpt load latest` lists every rank's file."""
    for n, step in ((4, 100), (8, 200)):
        res = c.launch(n, step)
        listed = [line for line in res.out.splitlines() if line.startswith("/")]
        expect_eq(sorted(os.path.basename(p) for p in listed),
                  sorted(f"model-rank{r}.pt" for r in range(n)),
                  f"load latest after {n} ranks lists each rank's file", res)
        check(all(p.startswith(str(c.root / name(step)) + "/") for p in listed),
              "the paths are in the committed checkpoint", res)
        expect_eq(res.out.count(" was the last of "), 1, "exactly one rank committed", res)
        expect_eq(res.out.count("staged shard "), n - 1, "the other ranks staged", res)
        meta = json.loads((c.root / name(step) / "_checkpoint.json").read_text())
        expect_eq(meta.get("shards"), n, "_checkpoint.json records the shard count")
        check(meta.get("shard_group", "").startswith("demo-"),
              "the attempt group comes from TORCHELASTIC_RUN_ID", res)
        expect_eq(meta["metrics"], {"loss": 0.5}, "rank 0's metric is recorded")
        info = json.loads(c.run("--json", "info", code=0).out)
        expect_eq(info["pending"], [], "nothing is pending")
        expect_eq(info["last"]["name"], name(step), "latest is the sharded checkpoint")
        c.verify_ok()
        sums = harness.execute(["sha256sum", "-c", "SHA256SUMS"], cwd=str(c.root / name(step)),
                               env=harness.child_env(), timeout=60, code=0,
                               what="sha256sum -c in the checkpoint")
        expect_eq(sums.out.count(": OK"), n, "coreutils checks every rank's file", sums)
    expect_eq(json.loads(c.run("--json", "info", "best", code=0).out)["name"], name(100),
              "best.json follows rank 0's --best-key (a tie keeps the earlier)")


if __name__ == "__main__":
    sys.exit(harness.main(sys.argv, __doc__, SCENARIOS, Ctx, "ckpt-e2e-shard-example"))
