#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""ckpt rm and ckpt rollback through the real binary: what they remove, what the markers say
afterwards, what they refuse, and a kill -9 at every rename and unlink they make.

Usage: e2e_remove.py --list | --all | SCENARIO...   (binary: $CKPT_BIN)
"""
import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, expect_eq, name  # noqa: E402

SCENARIOS, scenario = harness.registry()
STRACE = shutil.which("strace")


class Ctx(harness.RootCtx):
    def run(self, *args, root=None, code=None, what="", env=None):
        cmd = [harness.BIN, "-C", str(root or self.root), *args]
        return harness.execute(cmd, cwd=str(self.tmp), env=harness.child_env(env), timeout=300,
                               code=code, what=what or " ".join(map(str, args)))

    def save(self, step, loss=None, extra=()):
        d = self.src / f"s{step}"
        (d / "optim").mkdir(parents=True, exist_ok=True)
        (d / "model.bin").write_bytes(f"weights {step}".encode() * 100)
        (d / "optim" / "0.pt").write_bytes(f"optimizer {step}".encode())
        args = ["save", "--step", str(step), "--from", str(d), *extra]
        if loss is not None:
            args += ["--metric", f"loss={loss}", "--best-key", "loss"]
        self.run(*args, code=0)

    def steps(self):
        return sorted(int(p.name[5:]) for p in self.root.glob("step-*"))

    def markers(self):
        last = (self.root / "last").read_text().strip() if (self.root / "last").exists() else None
        best_file = self.root / "best.json"
        best = json.loads(best_file.read_text())["path"] if best_file.exists() else None
        return last, best


@scenario
def rm_named_checkpoints(c):
    """rm removes what the refs name; refuses what a marker protects unless --force, then moves
    the markers; a ref that names nothing removes nothing; --dry-run changes nothing."""
    for step, loss in ((1, 0.9), (2, 0.1), (3, 0.5), (4, 0.7), (5, 0.8)):
        c.save(step, loss)
    expect_eq(c.markers(), (name(5), name(2)), "last and best to begin with")

    res = c.run("--json", "rm", "--dry-run", "3", "4", code=0)
    j = res.json()
    expect_eq((j["dry_run"], harness.ref_names(j["removed"]), harness.ref_name(j["last"])),
              (True, [name(3), name(4)], name(5)), "dry run", res)
    expect_eq([(r["step"], r["path"]) for r in j["removed"]], [(s, str(c.root / name(s))) for s in (3, 4)],
              "removed: step and absolute path of each", res)
    harness.expect_best_marker(j["best"], json.loads((c.root / "best.json").read_text()), c.root,
                               "best is best.json's contents, as info prints them", res)
    expect_eq(j["best"], c.run("--json", "info", code=0).json()["best"], "best as info prints it", res)
    expect_eq(c.steps(), [1, 2, 3, 4, 5], "a dry run removes nothing")

    res = c.run("rm", "3", "step-000000003", code=0)
    expect_eq(res.out.splitlines(), [f"removed {name(3)}", f"last: {name(5)}, best: {name(2)}"],
              "rm prints what it removed and the markers", res)
    expect_eq(c.steps(), [1, 2, 4, 5], "step 3 is gone")

    for ref in ("5", "latest", "2", "best"):
        err = harness.expect_json_error(c.run("--json", "rm", "1", ref), 4, "conflict")
        expect_eq(err.get("reason"), "protected", f"rm {ref}: reason")
    harness.expect_json_error(c.run("--json", "rm", "1", "99"), 3, "not_found")
    expect_eq(c.steps(), [1, 2, 4, 5], "refused commands removed nothing, step 1 included")

    res = c.run("--json", "rm", "--force", "latest", code=0)
    expect_eq((harness.ref_names(res.json()["removed"]), harness.ref_name(res.json()["last"])), ([name(5)], name(4)),
              "last moves", res)
    expect_eq(c.markers(), (name(4), name(2)), "last names the newest left")
    res = c.run("--json", "rm", "--force", "best", code=0)
    best = res.json()["best"]
    expect_eq((best["key"], best["value"], best["name"], best["step"]), ("loss", 0.7, name(4), 4),
              "best.json is recomputed from what is left", res)
    harness.expect_best_marker(best, json.loads((c.root / "best.json").read_text()), c.root,
                               "best is what best.json holds now", res)
    expect_eq(c.markers(), (name(4), name(4)), "the markers on disk")
    c.verify_ok()
    c.run("rm", "--force", "1", "4", code=0)
    expect_eq(c.steps(), [], "everything removed")
    expect_eq(c.markers(), (None, None), "no marker is left dangling")
    info = c.run("--json", "info", code=0).json()
    expect_eq((info["checkpoints"], info["last"], info["best"]), ([], None, None), "an empty root")
    c.save(6, 0.3)
    expect_eq(c.markers(), (name(6), name(6)), "the root works on")
    c.run("rm", code=2)


@scenario
def rollback_to_a_checkpoint(c):
    """rollback REF removes every checkpoint committed after REF and every later step; last names
    REF, best.json is recomputed, and the resumed job's next save of a removed step works."""
    for step, loss in ((10, 0.9), (20, 0.6), (30, 0.5), (40, 0.1), (50, 0.4)):
        c.save(step, loss)
    c.save(5, 0.95)  # an earlier step committed late: committed after 20, so it goes too
    expect_eq(c.markers(), (name(5), name(40)), "to begin with")
    res = c.run("rollback", "--dry-run", "20", code=0)
    expect_eq(res.out.splitlines(), [f"would remove {name(s)}" for s in (5, 30, 40, 50)]
              + [f"then last: {name(20)}, best: {name(20)} (dry run: nothing changed)"],
              "the plan", res)
    expect_eq(c.steps(), [5, 10, 20, 30, 40, 50], "a dry run removes nothing")
    res = c.run("--json", "rollback", "20", code=0)
    expect_eq(harness.ref_names(res.json()["removed"]), [name(s) for s in (5, 30, 40, 50)], "removed", res)
    expect_eq((harness.ref_name(res.json()["last"]), harness.ref_name(res.json()["best"])), (name(20), name(20)),
              "last and best after the rollback", res)
    expect_eq(c.steps(), [10, 20], "what is left")
    expect_eq(c.markers(), (name(20), name(20)), "last is REF, best recomputed")
    latest = c.run("info", "latest", "--path", code=0).out.strip()
    expect_eq(latest, str(c.root / name(20)), "latest is REF")
    c.save(30, 0.2)  # the resumed job: no collision with the discarded step 30
    expect_eq(c.markers(), (name(30), name(30)), "the resumed job's save")
    c.verify_ok()
    res = c.run("rollback", "latest", code=0)
    check(res.out.startswith("nothing to remove after latest"), "rollback to the latest", res)
    harness.expect_json_error(c.run("--json", "rollback", "99"), 3, "not_found")
    c.run("rollback", code=2)


def traced(c, syscall, when, *args):
    """ckpt ARGS under strace, killed (SIGKILL) on entering its when-th call of syscall."""
    cmd = [STRACE, "-f", "-qq", "-o", "/dev/null", "-e", f"trace={syscall}",
           "-e", f"inject={syscall}:signal=KILL:when={when}", harness.BIN, "-C", str(c.root), *args]
    return harness.execute(cmd, cwd=str(c.tmp), env=harness.child_env(), timeout=120)


def count_calls(c, syscall, *args):
    """How many calls of syscall ckpt ARGS makes (it runs for real: the caller rebuilds)."""
    trace = c.tmp / "count.trace"
    cmd = [STRACE, "-f", "-qq", "-o", str(trace), "-e", f"trace={syscall}", harness.BIN,
           "-C", str(c.root), *args]
    harness.execute(cmd, cwd=str(c.tmp), env=harness.child_env(), timeout=120, code=0)
    return sum(1 for ln in trace.read_text().splitlines() if re.search(rf"\b{syscall}\(", ln))


@scenario
def rm_and_rollback_killed(c):
    """kill -9 of rm --force and of rollback at every rename and every unlink they make: whatever
    is listed verifies whole, what should stay stays, latest resolves, and a rerun finishes."""
    check(STRACE, "strace is not installed (scripts/setup.sh --test installs it)")
    steps = (1, 2, 3, 4, 5)

    def build():
        if c.root.exists():
            shutil.rmtree(c.root)
        for s, loss in zip(steps, (0.5, 0.4, 0.1, 0.3, 0.2)):
            c.save(s, loss)

    points = 0
    for args, keep, last, best in ((("rollback", "2"), [1, 2], name(2), name(2)),
                                   (("rm", "--force", "3", "5"), [1, 2, 4], name(4), name(4))):
        for syscall in ("rename", "unlink", "unlinkat"):
            build()
            n = count_calls(c, syscall, *args)
            for when in range(1, n + 1):
                build()
                res = traced(c, syscall, when, *args)
                check(res.rc != 0, f"{' '.join(args)} killed at {syscall} #{when} exited 0", res)
                points += 1
                present = c.steps()
                check(set(keep) <= set(present),
                      f"{' '.join(args)} killed at {syscall} #{when}: {keep} must stay, have {present}")
                verify = c.run("verify")
                check(verify.rc == 0, f"killed at {syscall} #{when}: what is listed verifies", verify)
                latest = c.run("info", "latest", "--path", code=0).out.strip()
                check(os.path.isdir(latest), f"killed at {syscall} #{when}: latest resolves")
                if args[0] == "rm":  # the user reruns it for what is still there
                    rest = [str(s) for s in (3, 5) if s in c.steps()]
                    again_args = ("rm", "--force", *rest) if rest else None
                else:
                    again_args = args
                if again_args:
                    c.run(*again_args, code=0)
                expect_eq(c.steps(), keep, f"after the rerun ({syscall} #{when})")
                expect_eq(c.markers(), (last, best), f"markers after the rerun ({syscall} #{when})")
                c.run("prune", "--keep-last", "10", code=0)
                expect_eq(sorted(os.listdir(c.root / ".ckpt" / "trash")), [],
                          "prune empties the trash a kill left")
    check(points >= 10, f"only {points} kill points: is the strace count right?")
    print(f"  {points} kill points")


if __name__ == "__main__":
    sys.exit(harness.main(sys.argv, __doc__, SCENARIOS, Ctx, "ckpt-e2e-remove"))
