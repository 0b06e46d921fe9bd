#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End-to-end tests for the retention commands of `ckpt`: save's retention,
prune and promote-best (SPEC.md §5, §6, §7, §8, §9).

Only the Python standard library is used; this file does not import e2e.py
(which is edited independently), so its scenario list is only its own.

    python3 tests/cli/e2e_retention.py --list          one scenario name per line
    python3 tests/cli/e2e_retention.py NAME [NAME...]  run scenarios; exit 0 when all pass
    python3 tests/cli/e2e_retention.py --all           run every scenario

The binary comes from $CKPT_BIN, else ../../build/release/apps/ckpt/ckpt
relative to this file. Every scenario runs in a fresh temporary directory
that is removed on success and kept (its path printed) on failure; set
CKPT_E2E_KEEP=1 to keep it on success too.
"""

import datetime
import json
import os
import pathlib
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (BIN, Fail, Result, check, expect_best_marker, expect_eq, expect_json_error,  # noqa: E402
                     expect_rc, load_json, name, private_entries, read_best, ref_names, snapshot, step_dirs,
                     write_json)

DEFAULT_TIMEOUT = 120

SCENARIOS, scenario = harness.registry()


# --------------------------------------------------------------------------
# filesystem helpers


def names(steps):
    return sorted(name(s) for s in steps)


def diff_snapshots(a, b):
    lines = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            lines.append(f"    {k}: {a.get(k, 'ABSENT')} -> {b.get(k, 'ABSENT')}")
    return "\n".join(lines[:40]) + ("\n    ..." if len(lines) > 40 else "")


def expect_same_tree(before, after, what, res=None):
    check(before == after, f"{what}: the tree changed\n{diff_snapshots(before, after)}", res)


def best_path(root):
    b = read_best(root)
    return None if b is None else b.get("path")


def kept_map(j, res=None):
    """prune JSON -> {name: reasons list}; checks the shape."""
    kept = j.get("kept")
    check(isinstance(kept, list), "prune JSON: kept must be a list", res)
    out = {}
    for k in kept:
        check(isinstance(k, dict) and isinstance(k.get("name"), str) and isinstance(k.get("reasons"), list)
              and isinstance(k.get("path"), str) and os.path.isabs(k["path"])
              and os.path.basename(k["path"]) == k["name"] and isinstance(k.get("step"), int),
              f"prune JSON: each kept entry must be {{name, path (absolute), step, reasons:[...]}}, got {k!r}", res)
        check(k["name"] not in out, f"prune JSON: {k['name']} listed twice in kept", res)
        out[k["name"]] = k["reasons"]
    return out


def plan(j, res=None):
    """The comparable part of a prune JSON document."""
    km = kept_map(j, res)
    removed = j.get("removed")
    cleaned = j.get("cleaned")
    check(isinstance(removed, list) and isinstance(cleaned, list), "prune JSON: removed and cleaned must be lists", res)
    check(all(isinstance(r, dict) and isinstance(r.get("name"), str) and isinstance(r.get("step"), int)
              and isinstance(r.get("path"), str) and os.path.isabs(r["path"]) for r in removed),
          f"prune JSON: each removed entry must be {{name, path (absolute), step}}, got {removed!r}", res)
    return {"kept": {k: sorted(v) for k, v in km.items()}, "removed": sorted(ref_names(removed)),
            "cleaned": sorted(cleaned)}


def cleaned_has(cleaned, rel):
    """cleaned holds paths; accept absolute or root-relative spellings that end with .ckpt/REL."""
    return any(p.rstrip("/").endswith(".ckpt/" + rel) for p in cleaned)


def check_visible_checkpoints(root, what):
    """Every step-* directory is a complete checkpoint: valid metadata and every listed file in place."""
    root = pathlib.Path(root)
    for n in step_dirs(root):
        p = root / n / "_checkpoint.json"
        try:
            m = load_json(p)
        except (OSError, ValueError) as e:
            raise Fail(f"{what}: {n} is visible but its _checkpoint.json is unreadable or invalid ({e}); "
                       f"entries: {sorted(os.listdir(root / n))[:10]}")
        check(m.get("name") == n, f"{what}: {n}/_checkpoint.json names {m.get('name')!r}")
        missing = []
        for e in m.get("files", []):
            f = root / n / e["path"]
            if not f.is_file() or f.stat().st_size != e.get("size"):
                missing.append(e["path"])
        check(not missing, f"{what}: {n} is visible but half-deleted: {len(missing)} listed files missing or "
                           f"short, e.g. {missing[:5]}")


# --------------------------------------------------------------------------
# lock holders: a Python child that flock()s a file and sleeps


HOLDER = r"""
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
sys.stdout.write("locked\n")
sys.stdout.flush()
time.sleep(600)
"""


# --------------------------------------------------------------------------
# per-scenario context


class Ctx(harness.RootCtx):
    def __init__(self, tmp):
        super().__init__(tmp)
        self.cleanups = []
        self._model = None
        self.notes = []

    def close(self):
        for cl in reversed(self.cleanups):
            try:
                cl()
            except Exception:  # noqa: BLE001
                pass

    def pass_details(self, seconds):
        return f"{seconds:.1f}s" + "".join(f"; {n}" for n in self.notes)

    def env(self):
        return harness.child_env()

    def raw(self, cmd, code=None, timeout=DEFAULT_TIMEOUT):
        return harness.execute(cmd, cwd=str(self.tmp), env=self.env(), timeout=timeout, code=code)

    def cmd(self, *args, root=None, lock_timeout="5"):
        cmd = [BIN]
        if lock_timeout is not None:
            cmd += ["--lock-timeout", str(lock_timeout)]
        cmd += ["-C", str(root or self.root)]
        return cmd + [str(a) for a in args]

    def run(self, *args, root=None, code=None, lock_timeout="5", timeout=DEFAULT_TIMEOUT):
        return self.raw(self.cmd(*args, root=root, lock_timeout=lock_timeout), code=code, timeout=timeout)

    def model(self):
        if self._model is None:
            self._model = self.src / "model.bin"
            self._model.write_bytes(os.urandom(512))
        return self._model

    def save(self, step, metrics=None, opts=(), root=None, code=0, fsync=False, sources=None, **kw):
        """ckpt save --step N SOURCE [--metric K=V...] [opts] --json; returns the Result."""
        args = ["save", "--step", step]
        args += [str(s) for s in (sources if sources is not None else [self.model()])]
        for k, v in (metrics or {}).items():
            args += ["--metric", f"{k}={v}"]
        args += list(opts)
        args += ["--json"]
        if not fsync:
            args = ["--no-fsync"] + args
        return self.run(*args, root=root, code=code, **kw)

    def hold_lock(self, path):
        p = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)

        def stop():
            if p.poll() is None:
                p.kill()
            p.wait()
            p.stdout.close()
            p.stderr.close()
        self.cleanups.append(stop)
        line = p.stdout.readline()
        check(line == b"locked\n", f"lock holder child for {path} did not report 'locked' (got {line!r}, "
                                   f"stderr {p.stderr.read().decode(errors='replace') if p.poll() is not None else ''})")
        return p, stop


def by_commit(root):
    """Checkpoint names of root ordered by commit_seq (oldest first)."""
    root = pathlib.Path(root)
    ms = [load_json(root / n / "_checkpoint.json") for n in step_dirs(root)]
    return [m["name"] for m in sorted(ms, key=lambda m: m["commit_seq"])]


def finite(v):
    return isinstance(v, (int, float)) and v == v and v not in (float("inf"), float("-inf"))


def expected_retention(entries, keep_last=0, keep_best=0, keep_every=0, mode="min"):
    """entries: [(name, step, value or None)] in commit order. Returns {name: set(reasons)} of the kept.

    Applies SPEC §6 from the checkpoints themselves: last = newest by commit, best = best finite value
    (earlier commit wins a tie); both are also what the markers name when they are up to date."""
    reasons = {}

    def add(n, r):
        reasons.setdefault(n, set()).add(r)

    if not entries:
        return reasons
    add(entries[-1][0], "last")
    ranked = [(v if mode == "min" else -v, i, n) for i, (n, _s, v) in enumerate(entries) if finite(v)]
    ranked.sort()
    if ranked:
        add(ranked[0][2], "best")
    for n, _s, _v in entries[len(entries) - keep_last:] if keep_last > 0 else []:
        add(n, "keep-last")
    for _v, _i, n in ranked[:keep_best]:
        add(n, "keep-best")
    if keep_every:
        for n, s, _v in entries:
            if s % keep_every == 0:
                add(n, "keep-every")
    return reasons


# --------------------------------------------------------------------------
# retention applied by save


@scenario
def retention_seed_keep_last_best(c):
    pol = ["--keep-last", "1", "--keep-best", "1", "--best-key", "val_loss"]
    pruned = {}
    for step, loss in ((1, "1.0"), (2, "0.5"), (3, "0.8")):
        res = c.save(step, {"val_loss": loss}, opts=pol)
        pruned[step] = ref_names(res.json().get("pruned"))
    expect_eq(step_dirs(c.root), names((2, 3)), "survivors: step 3 (last, keep-last) and step 2 (best, keep-best)")
    b = read_best(c.root)
    check(b is not None, "best.json must exist")
    expect_eq((b.get("path"), b.get("step"), b.get("value")), (name(2), 2, 0.5), "best.json names step 2")
    expect_eq((c.root / "last").read_bytes(), (name(3) + "\n").encode(), "last names step 3")
    expect_eq(pruned, {1: [], 2: [name(1)], 3: []}, "save --json pruned per save")
    c.verify_ok()


@scenario
def retention_worse_save_never_prunes_best(c):
    pol = ["--keep-last", "1", "--best-key", "loss"]
    c.save(1, {"loss": "0.1"}, opts=pol)
    for step, loss in ((2, "0.5"), (3, "0.3"), (4, "0.2"), (5, "0.1"), (6, "0.9"), (7, "0.15")):
        res = c.save(step, {"loss": loss}, opts=pol)
        j = res.json()
        expect_eq(j.get("best_updated"), False, f"save {step} (loss {loss}) is not a strict improvement", res)
        expect_eq(step_dirs(c.root), names((1, step)),
                  f"after saving step {step} (loss {loss}) with keep_last=1: the best (step 1, loss 0.1) and the newest")
        expect_eq(ref_names(j.get("pruned")), [] if step == 2 else [name(step - 1)], f"save {step} pruned", res)
        b = read_best(c.root)
        expect_eq((b.get("path"), b.get("value")), (name(1), 0.1), f"best.json after saving step {step}")
    c.verify_ok()


@scenario
def retention_every_2_keep_last_3(c):
    pruned = {}
    for step in (2, 4, 6, 8, 10):
        res = c.save(step, opts=["--keep-last", "3"])
        p = res.json().get("pruned")
        check(isinstance(p, list), "save --json must have a \"pruned\" list", res)
        pruned[step] = ref_names(p)
    expect_eq(step_dirs(c.root), names((6, 8, 10)), "survivors of --keep-last 3")
    expect_eq(sorted(n for p in pruned.values() for n in p), names((2, 4)), "union of \"pruned\" over all saves")
    expect_eq(pruned, {2: [], 4: [], 6: [], 8: [name(2)], 10: [name(4)]}, "\"pruned\" of each save")
    c.verify_ok()


@scenario
def retention_info_shows_policy(c):
    c.save(1, opts=["--keep-last", "3"])
    c.save(2)
    res = c.run("info", code=0)
    check(re.search(r"keep[-_ ]last\D{0,3}3\b", res.out), "`ckpt info` must mention the policy (keep-last 3)", res)
    res = c.run("info", "--json", code=0)
    pol = res.json().get("policy")
    check(isinstance(pol, dict), "info --json: policy must be an object", res)
    expect_eq(pol.get("keep_last"), 3, "info --json policy.keep_last", res)


# --------------------------------------------------------------------------
# prune


def seed_with_staging_and_trash(root, tag):
    st = root / ".ckpt" / "staging" / f"step-000000099.7.0.{tag}"
    st.mkdir(parents=True)
    (st / "partial.bin").write_bytes(b"partial")
    tr = root / ".ckpt" / "trash" / f"step-000000002.{tag}"
    tr.mkdir(parents=True)
    (tr / "left.bin").write_bytes(b"left")
    return st, tr


@scenario
def prune_dry_run_identical(c):
    losses = [0.9, 0.8, 0.85, 0.4, 0.6, 0.55, 0.3, 0.7, 0.35, 0.5, 0.65, 0.45]
    for i, loss in enumerate(losses, start=1):
        c.save(i, {"val_loss": loss}, opts=["--best-key", "val_loss"] if i == 1 else [])
    pol = load_json(c.root / "policy.json")
    pol.update({"keep_last": 3, "keep_every": 4})
    write_json(c.root / "policy.json", pol)
    seed_with_staging_and_trash(c.root, "abandoned")
    twin = c.tmp / "twin"
    shutil.copytree(c.root, twin, symlinks=True)

    opts = ["--keep-last", "2", "--keep-best", "2"]
    before = snapshot(c.root)
    res_opts = c.run("prune", "--dry-run", *opts, "--json", code=0)
    expect_same_tree(before, snapshot(c.root), "prune --dry-run --json (options)", res_opts)
    r = c.run("prune", "--dry-run", *opts, code=0)
    expect_same_tree(before, snapshot(c.root), "prune --dry-run (options, human output)", r)
    res_pol = c.run("prune", "--dry-run", "--json", code=0)
    expect_same_tree(before, snapshot(c.root), "prune --dry-run --json (policy.json)", res_pol)
    r_pol_h = c.run("prune", "--dry-run", code=0)
    expect_same_tree(before, snapshot(c.root), "prune --dry-run (policy.json, human output)", r_pol_h)

    j = res_opts.json()
    expect_eq(j.get("dry_run"), True, "dry_run", res_opts)
    p_opts = plan(j, res_opts)
    entries = [(name(i), i, v) for i, v in enumerate(losses, start=1)]
    exp = expected_retention(entries, keep_last=2, keep_best=2)
    expect_eq(p_opts["kept"], {k: sorted(v) for k, v in exp.items()}, "dry run plan (options): kept", res_opts)
    expect_eq(p_opts["removed"], sorted(set(step_dirs(c.root)) - set(exp)), "dry run plan (options): removed", res_opts)
    for rel in ("staging/step-000000099.7.0.abandoned", "trash/step-000000002.abandoned"):
        check(cleaned_has(j["cleaned"], rel), f"dry run plan: cleaned must list .ckpt/{rel}", res_opts)
    # human dry-run table: ACTION keep/remove per checkpoint
    rows = {}
    for line in r.out.splitlines():
        w = line.split()
        if len(w) >= 2 and w[1].startswith("step-"):
            rows[w[1]] = w[0]
    check("ACTION" in r.out and "NAME" in r.out and "REASONS" in r.out, "human plan: table header", r)
    expect_eq(rows, {**{n: "keep" for n in exp}, **{n: "remove" for n in p_opts["removed"]}},
              "human dry-run table: ACTION per NAME", r)

    jp = res_pol.json()
    expect_eq(jp.get("dry_run"), True, "dry_run (policy)", res_pol)
    p_pol = plan(jp, res_pol)
    exp_pol = expected_retention(entries, keep_last=3, keep_every=4)
    expect_eq(p_pol["kept"], {k: sorted(v) for k, v in exp_pol.items()}, "dry run plan (policy.json): kept", res_pol)

    # the real runs do what the plans said
    res = c.run("prune", *opts, "--json", root=twin, code=0)
    jr = res.json()
    expect_eq(jr.get("dry_run"), False, "dry_run of a real prune", res)
    expect_eq(plan(jr, res), p_opts, "real prune (options) == its dry-run plan", res)
    expect_eq(step_dirs(twin), sorted(p_opts["kept"]), "checkpoints after the real prune (options)")
    res = c.run("prune", "--json", code=0)
    expect_eq(plan(res.json(), res), p_pol, "real prune (policy.json) == its dry-run plan", res)
    expect_eq(step_dirs(c.root), sorted(p_pol["kept"]), "checkpoints after the real prune (policy.json)")
    c.verify_ok()
    c.verify_ok(root=twin)


@scenario
def prune_json_reasons(c):
    # nan and a missing key are never kept by keep-best; 6 and 8 tie at 0.3 (6 committed first ranks higher)
    values = {1: "nan", 2: "0.7", 3: "0.2", 4: None, 5: "0.5", 6: "0.3", 7: "0.9", 8: "0.3", 9: "0.6", 10: "0.8"}
    for s in range(1, 11):
        m = {"other": "1"} if values[s] is None else {"val_loss": values[s]}
        c.save(s, m, opts=["--best-key", "val_loss"])
    entries = [(name(s), s, None if values[s] is None else float(values[s])) for s in range(1, 11)]
    exp = expected_retention(entries, keep_last=2, keep_best=2, keep_every=5)
    expect_eq(best_path(c.root), name(3), "best.json before prune")
    res = c.run("prune", "--json", "--keep-last", "2", "--keep-best", "2", "--keep-every", "5", code=0)
    j = res.json()
    expect_eq(j.get("dry_run"), False, "dry_run", res)
    km = kept_map(j, res)
    for n, rs in km.items():
        check(len(rs) == len(set(rs)), f"reasons of {n} hold a duplicate: {rs}", res)
    expect_eq({k: sorted(v) for k, v in km.items()}, {k: sorted(v) for k, v in exp.items()}, "kept names and reasons", res)
    all_names = names(range(1, 11))
    expect_eq(sorted(ref_names(j.get("removed", []))), sorted(set(all_names) - set(exp)), "removed", res)
    expect_eq(step_dirs(c.root), sorted(exp), "checkpoints left")
    c.verify_ok()


def table_actions(out):
    rows = {}
    for line in out.splitlines():
        w = line.split()
        if len(w) >= 2 and w[1].startswith("step-"):
            rows[w[1]] = w[0]
    return rows


@scenario
def prune_from_policy_file(c):
    # a retention option given to save is recorded and applied by later saves
    ra = c.tmp / "a"
    for s in (1, 2, 3, 4):
        c.save(s, root=ra)
    res = c.save(5, opts=["--keep-last", "2"], root=ra)
    expect_eq(sorted(ref_names(res.json().get("pruned", []))), names((1, 2, 3)), "save --keep-last 2 pruned", res)
    pol_bytes = (ra / "policy.json").read_bytes()
    expect_eq(json.loads(pol_bytes).get("keep_last"), 2, "policy.json keep_last recorded by save")
    res = c.save(6, root=ra)
    expect_eq(ref_names(res.json().get("pruned")), [name(4)],
              "a later save with no option applies the recorded keep_last 2", res)
    expect_eq(step_dirs(ra), names((5, 6)), "checkpoints of root a")

    # a bare prune applies the recorded policy (the cron case)
    rb = c.tmp / "b"
    for s in (1, 2, 3, 4):
        c.save(s, root=rb)
    (rb / "policy.json").write_bytes(pol_bytes)
    res = c.run("prune", "--dry-run", "--json", root=rb, code=0)
    expect_eq(sorted(ref_names(res.json().get("removed", []))), names((1, 2)), "bare prune --dry-run removed", res)
    expect_eq(step_dirs(rb), names((1, 2, 3, 4)), "dry run deletes nothing")
    res = c.run("prune", root=rb, code=0)
    expect_eq(step_dirs(rb), names((3, 4)), "bare prune applies policy.json keep_last 2")
    check("ACTION" in res.out and "REASONS" in res.out, "human prune output is a table", res)
    expect_eq(table_actions(res.out), {name(1): "removed", name(2): "removed", name(3): "keep", name(4): "keep"},
              "human prune table ACTION per NAME", res)

    # no policy and no option: refused, nothing deleted
    rc_ = c.tmp / "c"
    for s in (1, 2, 3):
        c.save(s, {"val_loss": s}, opts=["--best-key", "val_loss"], root=rc_)
    check(not json.loads((rc_ / "policy.json").read_bytes()).get("keep_last"), "root c has no retention rule")
    before = snapshot(rc_)
    res = c.run("prune", root=rc_)
    expect_rc(res, 2, "prune with no rule given and none in policy.json")
    expect_same_tree(before, snapshot(rc_), "refused prune", res)
    res = c.run("prune", "--json", root=rc_)
    expect_json_error(res, 2, "usage")
    expect_same_tree(before, snapshot(rc_), "refused prune --json", res)
    rd = c.tmp / "d"  # a root without any recorded rule, maybe without policy.json at all
    for s in (1, 2):
        c.save(s, root=rd)
    pol_d = rd / "policy.json"
    check(not pol_d.exists() or not {"keep_last", "keep_best", "keep_every", "keep_within"} & set(load_json(pol_d)),
          "root d records no retention rule")
    before = snapshot(rd)
    res = c.run("prune", root=rd)
    expect_rc(res, 2, "prune on a root without a policy and no option")
    expect_same_tree(before, snapshot(rd), "refused prune (no policy)", res)

    # --keep-last 0 alone is a rule: everything goes but last and best
    re_ = c.tmp / "e"
    for s, v in zip((1, 2, 3, 4, 5), ("0.5", "0.2", "0.6", "0.9", "0.7")):
        c.save(s, {"val_loss": v}, opts=["--best-key", "val_loss"], root=re_)
    res = c.run("prune", "--keep-last", "0", "--json", root=re_, code=0)
    j = res.json()
    expect_eq({k: sorted(v) for k, v in kept_map(j, res).items()}, {name(2): ["best"], name(5): ["last"]},
              "--keep-last 0 keeps only last and best", res)
    expect_eq(sorted(ref_names(j.get("removed", []))), names((1, 3, 4)), "--keep-last 0 removed", res)
    expect_eq(step_dirs(re_), names((2, 5)), "checkpoints after --keep-last 0")
    c.verify_ok(root=re_)


def set_created(root, step, when):
    p = pathlib.Path(root) / name(step) / "_checkpoint.json"
    doc = load_json(p)
    doc["created"] = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    write_json(p, doc)


@scenario
def prune_keep_within(c):
    T = datetime.datetime(2026, 6, 15, 12, 0, 0)
    h = datetime.timedelta(hours=1)
    d = datetime.timedelta(days=1)

    def build(root, created):
        for s in range(1, len(created) + 1):
            c.save(s, root=root)
        for s, when in enumerate(created, start=1):
            set_created(root, s, when)
        c.verify_ok(root=root, what=f"verify {root.name} after editing created (not listed in SHA256SUMS)")

    # A: the boundary; in commit order T-8d, T-7d (exactly on the boundary), T-2d, T-1h, T (newest)
    ra = c.tmp / "a"
    build(ra, [T - 8 * d, T - 7 * d, T - 2 * d, T - h, T])
    res = c.run("prune", "--keep-within", "7d", "--json", root=ra, code=0)
    j = res.json()
    expect_eq(ref_names(j.get("removed")), [name(1)],
              "--keep-within 7d removes only the T-8d checkpoint (T-7d is within)", res)
    km = kept_map(j, res)
    for s in (2, 3, 4, 5):
        check("keep-within" in km.get(name(s), []), f"{name(s)} must be kept by keep-within", res)
    expect_eq(sorted(km.get(name(5), [])), ["keep-within", "last"], f"reasons of {name(5)}", res)
    expect_eq(step_dirs(ra), names((2, 3, 4, 5)), "checkpoints after --keep-within 7d")

    # B: the clock went backwards: step 3 was created at T+1h but committed before the newest (step 6, T)
    rb = c.tmp / "b"
    build(rb, [T - 8 * d, T - 7 * d, T + h, T - 2 * d, T - h, T])
    res = c.run("prune", "--keep-within", "7d", "--dry-run", "--json", root=rb, code=0)
    expect_eq(ref_names(res.json().get("removed")), [name(1)],
              "--keep-within 7d --dry-run (newest = last committed, at T)", res)
    res = c.run("prune", "--keep-within", "7d", "--json", root=rb, code=0)
    j = res.json()
    expect_eq(ref_names(j.get("removed")), [name(1)],
              "--keep-within 7d removes only T-8d; keeps T, T-1h, T-2d, T-7d, T+1h", res)
    expect_eq(sorted(kept_map(j, res)), names((2, 3, 4, 5, 6)), "kept", res)
    expect_eq(step_dirs(rb), names((2, 3, 4, 5, 6)), "checkpoints after --keep-within 7d")
    res = c.run("prune", "--keep-within", "2d", "--json", root=rb, code=0)
    expect_eq(ref_names(res.json().get("removed")), [name(2)], "--keep-within 2d then removes T-7d only", res)
    c.verify_ok(root=rb)


@scenario
def prune_cleans_abandoned_staging(c):
    for s in (1, 2, 3):
        c.save(s)
    staging = c.root / ".ckpt" / "staging"
    trash = c.root / ".ckpt" / "trash"
    ab = staging / "step-000000099.1.0.deadbeef"
    ab.mkdir(parents=True, exist_ok=True)
    (ab / "model.bin").write_bytes(b"abandoned")
    ab2 = staging / "step-000000097.3.0.feedface"  # an unheld lock file next to it: its writer is gone too
    ab2.mkdir()
    (ab2 / "x.bin").write_bytes(b"x")
    (staging / "step-000000097.3.0.feedface.lock").write_bytes(b"")
    tr = trash / "step-000000001.x"
    tr.mkdir(parents=True, exist_ok=True)
    (tr / "model.bin").write_bytes(b"leftover")
    live = staging / "step-000000098.2.0.cafebabe"
    live.mkdir()
    (live / "model.bin").write_bytes(b"being written")
    holder, stop = c.hold_lock(staging / "step-000000098.2.0.cafebabe.lock")
    live_before = snapshot(live)

    res = c.run("prune", "--keep-last", "10", "--json", code=0)
    j = res.json()
    cleaned = j.get("cleaned")
    check(isinstance(cleaned, list), "prune JSON: cleaned must be a list", res)
    for rel in ("staging/step-000000099.1.0.deadbeef", "staging/step-000000097.3.0.feedface", "trash/step-000000001.x"):
        check(cleaned_has(cleaned, rel), f"cleaned must list .ckpt/{rel}", res)
    check(not any("cafebabe" in p for p in cleaned), "cleaned must not list the staging dir of a live writer", res)
    check(not ab.exists() and not ab2.exists(), "abandoned staging directories must be removed", res)
    check(not tr.exists(), "trash leftover must be removed", res)
    check(live.is_dir(), "the staging directory whose .lock is held by a live process must stay", res)
    expect_same_tree(live_before, snapshot(live), "the live writer's staging directory", res)
    expect_eq(j.get("removed"), [], "no checkpoint removed", res)
    expect_eq(step_dirs(c.root), names((1, 2, 3)), "checkpoints untouched")
    check(holder.poll() is None, "lock holder still alive")

    # once the writer is gone, its staging directory is abandoned
    stop()
    res = c.run("prune", "--keep-last", "10", "--json", code=0)
    check(cleaned_has(res.json().get("cleaned", []), "staging/step-000000098.2.0.cafebabe"),
          "after the writer died, prune cleans its staging directory", res)
    check(not live.exists(), "dead writer's staging directory removed", res)

    # save cleans them too
    ab3 = staging / "step-000000096.4.0.abad1dea"
    ab3.mkdir()
    (ab3 / "f").write_bytes(b"f")
    tr3 = trash / "step-000000002.y"
    tr3.mkdir()
    (tr3 / "f").write_bytes(b"f")
    res = c.save(4)
    check(not ab3.exists(), "save removes an abandoned staging directory", res)
    check(not tr3.exists(), "save removes trash leftovers", res)
    expect_eq(step_dirs(c.root), names((1, 2, 3, 4)), "checkpoints")
    c.verify_ok()


@scenario
def prune_lock_timeout(c):
    for s in range(1, 5):
        c.save(s, {"val_loss": 1.0 / s}, opts=["--best-key", "val_loss"])
    lock = c.root / ".ckpt" / "lock"
    check(lock.exists(), "ROOT/.ckpt/lock exists after a save")
    _holder, stop = c.hold_lock(lock)
    before = snapshot(c.root)
    res = c.run("prune", "--keep-last", "1", lock_timeout="0", timeout=20)
    expect_rc(res, 5, "--lock-timeout 0 prune while the root lock is held")
    expect_same_tree(before, snapshot(c.root), "locked prune", res)
    res = c.run("prune", "--keep-last", "1", "--json", lock_timeout="0", timeout=20)
    expect_json_error(res, 5, "locked")
    res = c.run("promote-best", "1", "--force", lock_timeout="0", timeout=20)
    expect_rc(res, 5, "--lock-timeout 0 promote-best while the root lock is held")
    res = c.run("promote-best", lock_timeout="0", timeout=20)
    expect_rc(res, 5, "--lock-timeout 0 promote-best (rebuild) while the root lock is held")
    expect_same_tree(before, snapshot(c.root), "locked promote-best", res)
    t0 = time.monotonic()
    res = c.run("prune", "--keep-last", "1", lock_timeout="1", timeout=30)
    el = time.monotonic() - t0
    expect_rc(res, 5, "--lock-timeout 1 prune while the root lock is held")
    check(el >= 0.9, f"--lock-timeout 1 must wait about 1s before giving up, gave up after {el:.2f}s", res)
    res = c.run("prune", "--keep-last", "1", "--dry-run", "--json", lock_timeout="0", timeout=20)
    expect_rc(res, 0, "prune --dry-run takes no lock")
    expect_eq(sorted(ref_names(res.json().get("removed", []))), names((1, 2, 3)), "dry-run plan while locked", res)
    expect_same_tree(before, snapshot(c.root), "prune --dry-run while locked", res)
    stop()  # a lock held by a dead process is no obstacle
    c.run("prune", "--keep-last", "1", lock_timeout="0", code=0)
    expect_eq(step_dirs(c.root), names((4,)), "prune after the holder died")


@scenario
def prune_symlinks_and_invalid_dirs(c):
    # (named so as not to collide with e2e.py's prune_never_follows_symlinks)
    for s in (1, 2, 3, 4):
        c.save(s)
    outside = c.tmp / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "precious.txt").write_text("keep me\n")
    (outside / "sub" / "deep.txt").write_text("me too\n")
    outside_before = snapshot(outside)
    os.symlink(outside, c.root / name(1) / "evil-dir")
    os.symlink(outside / "precious.txt", c.root / name(2) / "evil-file")
    os.symlink(outside / "sub", c.root / name(2) / "evil-sub")
    # a step-* directory that is a symlink to a directory outside the root
    os.symlink(outside, c.root / "step-000000050")
    # step-* directories that are not valid checkpoints
    bad = c.root / "step-000000005"
    bad.mkdir()
    (bad / "_checkpoint.json").write_text("garbage{ not json")
    (bad / "model.bin").write_bytes(b"user data")
    nometa = c.root / "step-000000006"
    nometa.mkdir()
    (nometa / "model.bin").write_bytes(b"more user data")
    bad_before = snapshot(bad)
    nometa_before = snapshot(nometa)

    res = c.run("prune", "--keep-last", "1", "--json", code=0)
    j = res.json()
    expect_eq(sorted(ref_names(j.get("removed", []))), names((1, 2, 3)), "removed", res)
    expect_eq(snapshot(outside), outside_before, "the directory outside the root (prune must never follow a symlink)")
    check(bad.is_dir(), "a step-* directory with a garbage _checkpoint.json is not a checkpoint: prune leaves it", res)
    expect_same_tree(bad_before, snapshot(bad), "invalid step-000000005", res)
    check(nometa.is_dir(), "a step-* directory without _checkpoint.json is not a checkpoint: prune leaves it", res)
    expect_same_tree(nometa_before, snapshot(nometa), "invalid step-000000006", res)
    check(not any(n in ref_names(j.get("removed", [])) for n in ("step-000000005", "step-000000006")),
          "invalid directories are never listed as removed", res)
    for n in (name(1), name(2), name(3)):
        check(not (c.root / n).exists(), f"{n} removed", res)
    check(name(4) in step_dirs(c.root), "the newest checkpoint stays")
    expect_eq(private_entries(c.root, "trash"), [], "trash empty after prune")
    # again, without --json, and with a rule that would keep nothing else
    res = c.run("prune", "--keep-last", "0", code=0)
    check(bad.is_dir() and nometa.is_dir(), "invalid step-* directories survive a second prune", res)
    expect_eq(snapshot(outside), outside_before, "outside directory after a second prune")


@scenario
def prune_kill_mid_delete(c):
    many = c.src / "many"
    many.mkdir()
    rnd = random.Random()
    for i in range(200):
        (many / f"f{i:03d}.bin").write_bytes(os.urandom(rnd.randint(64, 512)))
    template = c.tmp / "template"
    for s in range(1, 31):
        c.save(s, sources=["--from", many], root=template)
    check(len(step_dirs(template)) == 30, "template root has 30 checkpoints")

    def fresh_copy(dst):
        # Checkpoint files are hard-linked from the template (copying 6000 files is slow on some disks);
        # a committed checkpoint is never written in place, and every round verifies the copy.
        def link_or_copy(src, d):
            if f"{os.sep}step-" in os.path.relpath(src, template) or os.path.relpath(src, template).startswith("step-"):
                os.link(src, d)
            else:
                shutil.copy2(src, d)
        shutil.copytree(template, dst, symlinks=True, copy_function=link_or_copy)

    # how long a full prune takes, to spread the kills over it
    cal = c.tmp / "cal"
    fresh_copy(cal)
    t0 = time.monotonic()
    c.run("prune", "--keep-last", "1", root=cal, code=0)
    full = time.monotonic() - t0
    expect_eq(step_dirs(cal), names((30,)), "calibration prune")
    shutil.rmtree(cal)

    interrupted = 0
    rounds = 0
    while rounds < 10 or (interrupted == 0 and rounds < 25):
        rounds += 1
        r = c.tmp / f"round{rounds}"
        fresh_copy(r)
        cmd = c.cmd("prune", "--keep-last", "1", root=r)
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=c.env(), cwd=str(c.tmp))
        if rounds % 2:
            # Anywhere in the run, including start-up and planning.
            delay = rnd.uniform(0.0, full * 0.9)
            time.sleep(delay)
        else:
            # Right after the deletion begins (the first checkpoint unlisted into trash), however
            # long start-up takes on this machine (an ASan build starts slowly).
            t0 = time.monotonic()
            trash = r / ".ckpt" / "trash"
            while p.poll() is None and time.monotonic() - t0 < 60:
                if trash.is_dir() and any(trash.iterdir()):
                    break
                time.sleep(0.0005)
            time.sleep(rnd.uniform(0.0, 0.005))
            delay = time.monotonic() - t0
        p.send_signal(signal.SIGKILL)
        out, err = p.communicate(timeout=60)
        res = Result(cmd, p.returncode, out.decode(errors="replace"), err.decode(errors="replace"), str(c.tmp))
        what = f"round {rounds} (SIGKILL after {delay * 1000:.0f} ms; a full prune takes {full * 1000:.0f} ms)"
        check(p.returncode in (0, -signal.SIGKILL), f"{what}: prune exited {p.returncode}", res)
        steps = step_dirs(r)
        leftovers = private_entries(r, "trash")
        if p.returncode == -signal.SIGKILL and (1 < len(steps) < 30 or leftovers):
            interrupted += 1
        check(name(30) in steps, f"{what}: the newest checkpoint must never be removed; left: {steps}")
        check_visible_checkpoints(r, what)
        v = c.run("verify", root=r)
        expect_rc(v, 0, f"{what}: verify after the kill")
        res = c.run("prune", "--keep-last", "1", "--json", root=r, code=0)
        cleaned = res.json().get("cleaned", [])
        for n in leftovers:
            check(cleaned_has(cleaned, "trash/" + n), f"{what}: the follow-up prune must list trash/{n} in cleaned", res)
        expect_eq(private_entries(r, "trash"), [], f"{what}: ROOT/.ckpt/trash after a normal prune")
        expect_eq(step_dirs(r), names((30,)), f"{what}: checkpoints after a normal prune")
        c.verify_ok(root=r, what=f"{what}: verify after the follow-up prune")
        shutil.rmtree(r)
    check(interrupted > 0, f"none of {rounds} kills landed while prune was deleting (full prune: {full * 1000:.0f} ms)")
    c.verify_ok(root=template, what="verify the template (its files are hard-linked into every round)")
    c.notes.append(f"{interrupted}/{rounds} kills landed mid-prune; a full prune takes {full * 1000:.0f} ms")


@scenario
def prune_concurrent_with_saves(c):
    seed = random.randrange(1 << 30)
    rnd = random.Random(seed)
    losses = {}
    used = set()
    for s in range(1, 51):
        while True:
            v = round(2.0 - 0.03 * s + rnd.uniform(-0.25, 0.25), 4)
            if v not in used:
                break
        used.add(v)
        losses[s] = v
    tag = f"(random seed {seed}; losses {losses})"

    c.save(1, {"loss": losses[1]}, opts=["--best-key", "loss", "--keep-last", "3", "--keep-best", "2"], fsync=True)
    pol = load_json(c.root / "policy.json")
    expect_eq((pol.get("best_key"), pol.get("keep_last"), pol.get("keep_best")), ("loss", 3, 2), "policy.json recorded")

    done = threading.Event()
    saves, prunes, reads, errors = [], [], [], []

    def run_cmd(cmd):
        p = subprocess.run(cmd, cwd=str(c.tmp), env=c.env(), capture_output=True, timeout=120, input=b"")
        return Result(cmd, p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"), str(c.tmp))

    def saver():
        try:
            for s in range(2, 51):
                saves.append(run_cmd([BIN, "-C", str(c.root), "save", "--step", str(s), str(c.model()),
                                      "--metric", f"loss={losses[s]}", "--json"]))
        except Exception as e:  # noqa: BLE001
            errors.append(f"saver: {e!r}")
        finally:
            done.set()

    def pruner():
        try:
            while not done.is_set():
                prunes.append(run_cmd([BIN, "-C", str(c.root), "prune", "--json"]))
        except Exception as e:  # noqa: BLE001
            errors.append(f"pruner: {e!r}")

    def reader():
        try:
            while not done.is_set():
                reads.append(run_cmd([BIN, "-C", str(c.root), "info", "latest", "--json"]))
        except Exception as e:  # noqa: BLE001
            errors.append(f"reader: {e!r}")

    threads = [threading.Thread(target=f) for f in (saver, pruner, reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=170)
    check(not any(t.is_alive() for t in threads), f"the concurrent loops did not finish in time {tag}")
    check(not errors, f"loop errors: {errors} {tag}")
    check(len(saves) == 49, f"expected 49 concurrent saves, ran {len(saves)}")
    check(prunes, "the prune loop ran at least once")
    check(reads, "the reader loop ran at least once")
    c.notes.append(f"{len(prunes)} prunes, {len(reads)} reads alongside the saves")
    bad = [(what, [r for r in rs if r.rc != 0], len(rs))
           for what, rs in (("save", saves), ("prune", prunes), ("info latest", reads))]
    if any(b for _w, b, _n in bad):
        msg = "; ".join(f"{len(b)}/{n} {w} commands failed" for w, b, n in bad if b)
        firsts = "\n".join(f"first failed {w}:\n{b[0].describe()}" for w, b, _n in bad if b)
        raise Fail(f"concurrent saves / prunes / readers: every command must exit 0, but {msg} {tag}\n{firsts}")
    for r in reads:
        j = r.json()
        check(isinstance(j.get("name"), str) and j["name"].startswith("step-") and isinstance(j.get("files"), list),
              f"info latest --json must describe a checkpoint {tag}", r)

    entries = [(name(s), s, losses[s]) for s in range(1, 51)]
    exp = expected_retention(entries, keep_last=3, keep_best=2)
    expect_eq(step_dirs(c.root), sorted(exp), f"survivors: last 3 by commit, 2 best by loss, last, best {tag}")
    expect_eq((c.root / "last").read_bytes(), (name(50) + "\n").encode(), "last")
    best_name = min(entries, key=lambda e: e[2])[0]
    expect_eq(best_path(c.root), best_name, f"best.json {tag}")
    # every other checkpoint was removed exactly once, by a save's retention or by a prune
    removed = [n for r in saves for n in ref_names(r.json().get("pruned", []))]
    removed += [n for r in prunes for n in ref_names(r.json().get("removed", []))]
    expect_eq(sorted(removed), sorted(set(names(range(1, 51))) - set(exp)),
              f"names removed over all saves and prunes (each exactly once) {tag}")
    c.verify_ok(what=f"verify at the end {tag}")


# --------------------------------------------------------------------------
# promote-best


def promote(c, *args, code=0):
    res = c.run("promote-best", *args, "--json", code=code)
    if code != 0:
        return res, None
    j = res.json()
    check(isinstance(j.get("promoted"), bool), "promote-best JSON: promoted must be a bool", res)
    check(isinstance(j.get("reason"), str) and j["reason"] != "", "promote-best JSON: reason must be a non-empty string", res)
    check(isinstance(j.get("best"), dict), "promote-best JSON: best must be an object", res)
    expect_best_marker(j["best"], read_best(c.root), c.root, "promote-best JSON: best is best.json", res)
    return res, j


@scenario
def promote_strict_and_force(c):
    vals = {1: (0.5, 0.6), 2: (0.3, 0.9), 3: (0.7, 0.95), 4: (0.3, 0.5)}
    for s, (vl, acc) in vals.items():
        c.save(s, {"val_loss": vl, "acc": acc}, opts=["--best-key", "val_loss"] if s == 1 else [])
    bj = c.root / "best.json"
    expect_eq(best_path(c.root), name(2), "best after the saves")

    def unchanged_after(args, what):
        before = bj.read_bytes()
        res, j = promote(c, *args)
        expect_eq(j["promoted"], False, what, res)
        expect_eq(bj.read_bytes(), before, f"{what}: best.json byte-identical", res)

    unchanged_after(["3"], "a worse checkpoint (0.7 vs 0.3) is not promoted")
    unchanged_after(["4"], "a tie (0.3 vs 0.3) is not promoted")
    unchanged_after(["1", "--key", "val_loss"], "a worse checkpoint (explicit --key) is not promoted")
    res, j = promote(c, "3", "--force")
    expect_eq(j["promoted"], True, "--force promotes a worse checkpoint", res)
    b = read_best(c.root)
    expect_eq((b.get("path"), b.get("value"), b.get("key")), (name(3), 0.7, "val_loss"), "best.json after --force")
    expect_eq(j["best"].get("step"), 3, "promote-best JSON best.step", res)
    res, j = promote(c, "1")
    expect_eq(j["promoted"], True, "a better checkpoint (0.5 vs 0.7) is promoted", res)
    expect_eq(best_path(c.root), name(1), "best.json after promoting a better one")
    # rebuild from every checkpoint
    res, j = promote(c)
    expect_eq(best_path(c.root), name(2), "promote-best without REF rebuilds (min val_loss, earlier on a tie)")
    bj.unlink()
    res, j = promote(c)
    check(bj.exists(), "promote-best without REF recreates a deleted best.json", res)
    b = read_best(c.root)
    expect_eq((b.get("path"), b.get("key"), b.get("mode"), b.get("value")), (name(2), "val_loss", "min", 0.3),
              "rebuilt best.json")
    c.verify_ok()

    # switching key/mode needs --force
    before_best, before_pol = bj.read_bytes(), (c.root / "policy.json").read_bytes()
    res = c.run("promote-best", "--key", "acc", "--mode", "max")
    expect_rc(res, 4, "promote-best --key acc --mode max without --force")
    expect_eq(bj.read_bytes(), before_best, "best.json unchanged by a refused switch")
    expect_eq((c.root / "policy.json").read_bytes(), before_pol, "policy.json unchanged by a refused switch")
    res = c.run("promote-best", "1", "--key", "acc", "--mode", "max")
    expect_rc(res, 4, "promote-best REF --key acc --mode max without --force")
    expect_eq(bj.read_bytes(), before_best, "best.json unchanged by a refused switch (with REF)")
    res, j = promote(c, "--key", "acc", "--mode", "max", "--force")
    b = read_best(c.root)
    expect_eq((b.get("key"), b.get("mode"), b.get("path"), b.get("value")), ("acc", "max", name(3), 0.95),
              "best.json after the switch to acc/max (max acc is step 3)")
    pol = load_json(c.root / "policy.json")
    expect_eq((pol.get("best_key"), pol.get("best_mode")), ("acc", "max"), "policy.json records the switched key/mode")

    # later saves follow the new key: strict improvement only
    res = c.save(5, {"val_loss": 0.01, "acc": 0.9})
    expect_eq(best_path(c.root), name(3), "a lower acc does not move best (val_loss no longer matters)")
    res = c.save(6, {"val_loss": 0.9, "acc": 0.95})
    expect_eq(best_path(c.root), name(3), "an equal acc does not move best")
    res = c.save(7, {"val_loss": 0.9, "acc": 0.97})
    expect_eq(res.json().get("best_updated"), True, "save --json best_updated for a better acc", res)
    b = read_best(c.root)
    expect_eq((b.get("key"), b.get("mode"), b.get("path"), b.get("value")), ("acc", "max", name(7), 0.97),
              "a later save with a better acc moves best.json")
    c.verify_ok()


@scenario
def promote_value_option(c):
    c.save(1, {"val_loss": 0.5}, opts=["--best-key", "val_loss"])
    c.save(2, {"other": 1})
    c.save(3, {"val_loss": 0.5})
    c.save(4, {"other": 2})
    bj = c.root / "best.json"
    expect_eq(best_path(c.root), name(1), "best after saves")
    snap2, snap4 = snapshot(c.root / name(2)), snapshot(c.root / name(4))

    before = bj.read_bytes()
    res, j = promote(c, "4", "--value", "0.9")
    expect_eq(j["promoted"], False, "--value 0.9 is worse than 0.5: not promoted", res)
    expect_eq(bj.read_bytes(), before, "best.json unchanged", res)

    res, j = promote(c, "2", "--value", "0.1")
    expect_eq(j["promoted"], True, "a checkpoint without the key, offered with --value 0.1 (better than 0.5)", res)
    b = read_best(c.root)
    expect_eq((b.get("path"), b.get("value"), b.get("key")), (name(2), 0.1, "val_loss"), "best.json after --value")
    expect_same_tree(snap2, snapshot(c.root / name(2)), "promote-best must not modify the checkpoint", res)
    expect_same_tree(snap4, snapshot(c.root / name(4)), "promote-best must not modify the checkpoint", res)
    c.verify_ok(what="verify after promoting with --value")

    before = bj.read_bytes()
    res = c.run("promote-best", "3", "--value", "0.1")
    expect_rc(res, 2, "--value 0.1 for a checkpoint that records val_loss=0.5")
    expect_eq(bj.read_bytes(), before, "best.json unchanged by the refused --value")
    res = c.run("promote-best", "3", "--value", "0.1", "--json")
    expect_json_error(res, 2, "usage")
    res, j = promote(c, "3", "--value", "0.5")
    expect_eq(j["promoted"], False, "--value equal to the recorded 0.5 is accepted; 0.5 is worse than 0.1", res)
    expect_eq(bj.read_bytes(), before, "best.json unchanged", res)
    c.verify_ok()


# --------------------------------------------------------------------------
# runner


if __name__ == "__main__":
    sys.exit(harness.main(sys.argv, __doc__, SCENARIOS, Ctx, "ckpt-e2e"))
