#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Reliability end-to-end tests for `ckpt`: processes killed at random
moments, SIGINT/SIGTERM during a save, a full disk, and many commands side by
side on one root (SPEC.md §7 save/prune/promote-best, §8 exit codes,
§9 concurrency and durability).

Only the Python standard library is used; this file does not import e2e.py
or e2e_retention.py (edited independently), so its scenario list is only its
own.

    python3 tests/cli/e2e_faults.py --list          one scenario name per line
    python3 tests/cli/e2e_faults.py NAME [NAME...]  run scenarios; exit 0 when all pass
    python3 tests/cli/e2e_faults.py --all           run every scenario

The binary comes from $CKPT_BIN, else ../../build/release/apps/ckpt/ckpt
relative to this file. Every scenario runs in a fresh temporary directory
/tmp/ckpt-faults-<name>-* that is removed on success and kept (its path
printed) on failure; set CKPT_E2E_KEEP=1 to keep it on success too.

Knobs: CKPT_KILLS (kill_random_commands, default 150), CKPT_SEED (random seed
of the randomised scenarios; printed), CKPT_STRESS_SECONDS (stress_side_by_side,
default 20). The diskfull_* scenarios mount a tmpfs and must run as root.
"""

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
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (BIN, Fail, Result, check, child_env, expect_eq, expect_rc, load_json,  # noqa: E402
                     make_big_file, name, private_entries, sha256_file, snapshot, staging_bytes, staging_dirs,
                     step_dirs)

DEFAULT_TIMEOUT = 120
NAME_RE = re.compile(r"^step-[0-9]+$")
DISK_FULL_RE = re.compile(r"disk full|no space", re.IGNORECASE)

SCENARIOS, scenario = harness.registry()


# --------------------------------------------------------------------------
# filesystem helpers


def read_bytes_or_none(path):
    try:
        return pathlib.Path(path).read_bytes()
    except FileNotFoundError:
        return None


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def markers_sane(root, what):
    """last: one line naming an existing checkpoint; best.json and policy.json parse; best.json names one."""
    root = pathlib.Path(root)
    last = read_bytes_or_none(root / "last")
    if last is not None:
        text = last.decode("utf-8", "replace")
        check(text.endswith("\n") and text.count("\n") == 1 and NAME_RE.match(text[:-1]) is not None,
              f"{what}: ROOT/last must be one line naming a checkpoint, holds {text!r}")
        check((root / text[:-1] / "_checkpoint.json").is_file(),
              f"{what}: ROOT/last names {text[:-1]!r}, which is not an existing checkpoint "
              f"(present: {step_dirs(root)})")
    raw = read_bytes_or_none(root / "best.json")
    if raw is not None:
        try:
            best = json.loads(raw)
        except ValueError as e:
            raise Fail(f"{what}: best.json does not parse ({e}): {raw[:300]!r}")
        check(isinstance(best, dict) and isinstance(best.get("path"), str),
              f"{what}: best.json has no path: {best!r}")
        check((root / best["path"] / "_checkpoint.json").is_file(),
              f"{what}: best.json names {best['path']!r}, which is not an existing checkpoint "
              f"(present: {step_dirs(root)})")
    raw = read_bytes_or_none(root / "policy.json")
    if raw is not None:
        try:
            json.loads(raw)
        except ValueError as e:
            raise Fail(f"{what}: policy.json does not parse ({e}): {raw[:300]!r}")


def checkpoint_jsons(root, what):
    """{name: bytes of _checkpoint.json} for every step-* directory; each must parse and name itself."""
    root = pathlib.Path(root)
    out = {}
    for n in step_dirs(root):
        raw = read_bytes_or_none(root / n / "_checkpoint.json")
        check(raw is not None, f"{what}: {n} is visible without a _checkpoint.json "
              f"(holds {sorted(os.listdir(root / n)) if (root / n).is_dir() else '?'})")
        try:
            doc = json.loads(raw)
        except ValueError as e:
            raise Fail(f"{what}: {n}/_checkpoint.json does not parse ({e}): {raw[:300]!r}")
        check(isinstance(doc, dict) and doc.get("name") == n,
              f"{what}: {n}/_checkpoint.json names {doc.get('name') if isinstance(doc, dict) else doc!r}")
        out[n] = raw
    return out


def write_random(path, size):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


# --------------------------------------------------------------------------
# per-scenario context


class Ctx(harness.RootCtx):
    def __init__(self, tmp):
        super().__init__(tmp)
        self.env = child_env()

    def raw(self, cmd, timeout=DEFAULT_TIMEOUT):
        return harness.execute(cmd, cwd=str(self.tmp), env=self.env, timeout=timeout, show_cwd=False)

    def cmd(self, *args, root=None, lock_timeout=30, json_out=False):
        c = [BIN]
        if lock_timeout is not None:
            c += ["--lock-timeout", str(lock_timeout)]
        if json_out:
            c += ["--json"]
        c += ["-C", str(root or self.root)]
        return c + [str(a) for a in args]

    def run(self, *args, root=None, code=None, lock_timeout=30, json_out=False, what="", timeout=DEFAULT_TIMEOUT):
        res = self.raw(self.cmd(*args, root=root, lock_timeout=lock_timeout, json_out=json_out), timeout=timeout)
        if code is not None:
            expect_rc(res, code, what)
        return res

    def popen(self, cmd):
        return subprocess.Popen([str(a) for a in cmd], cwd=str(self.tmp), env=self.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(p, cmd, note=""):
    out, err = p.communicate(timeout=DEFAULT_TIMEOUT)
    return Result(cmd, p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), note=note)


# --------------------------------------------------------------------------
# kill_random_commands


@scenario
def kill_random_commands(c):
    """SIGKILL save/prune/promote-best at random moments: nothing committed is lost, nothing partial is visible."""
    n_kills = int(os.environ.get("CKPT_KILLS") or 150)
    seed = int(os.environ.get("CKPT_SEED") or random.randrange(1 << 31))
    rng = random.Random(seed)
    print(f"kill_random_commands: seed {seed} (CKPT_SEED={seed} reproduces the schedule), kills {n_kills}")
    root = c.root

    # persistent sources for --copy and --link (never modified: --link's promise)
    persistent = []
    for i in range(3):
        d = c.src / f"set{i}"
        write_random(d / "model.bin", rng.choice([1, 2, 6]) << 20)  # 6 MiB: read, hash and write overlap
        write_random(d / "optim" / "shard-0.pt", 512 << 10)
        write_random(d / "optim" / "shard-1.pt", 300_000)
        for j in range(8):
            write_random(d / "small" / f"f{j}.txt", 1000 + j)
        persistent.append(d)

    def sources_for(mode, k):
        if mode == "--move":
            d = c.src / f"move{k}"
            write_random(d / "model.bin", rng.choice([1, 2, 6]) << 20)  # 6 MiB: read, hash and write overlap
            write_random(d / "optim" / "shard-0.pt", 400 << 10)
            write_random(d / "rng.state", 5000)
            return d, [f"model.bin={d / 'model.bin'}", f"optim={d / 'optim'}", f"rng.state={d / 'rng.state'}"]
        d = rng.choice(persistent)
        if rng.random() < 0.5:
            return None, ["--from", str(d)]
        return None, [f"model.bin={d / 'model.bin'}", f"optim={d / 'optim'}", f"small={d / 'small'}"]

    def save_cmd(step, mode, srcs, checksum, first=False):
        args = ["save", "--step", step, *srcs, "--metric", f"val_loss={rng.uniform(0.1, 5.0):.6f}",
                "--metric", f"acc={rng.random():.6f}", "--meta", f"kill_iter={step}", "--checksum", checksum]
        if mode:
            args.append(mode)
        if first or rng.random() < 0.3:
            args += ["--best-key", "val_loss", "--mode", "min"]
        return c.cmd(*args, lock_timeout=10)

    # a committed start; its saves also measure how long a save takes here
    durations = []
    for step, mode in ((1, "--copy"), (2, "--link"), (3, "--move")):
        move_dir, srcs = sources_for(mode, step)
        t0 = time.monotonic()
        res = c.raw(save_cmd(step, mode, srcs, "sha256", first=(step == 1)))
        durations.append(time.monotonic() - t0)
        expect_rc(res, 0, f"save {mode} before the kills")
        if move_dir is not None:
            shutil.rmtree(move_dir, ignore_errors=True)
    save_seconds = sorted(durations)[1]
    print(f"  a save takes about {save_seconds * 1000:.0f} ms here")
    policy = load_json(root / "policy.json")
    check(not any(k.startswith("keep_") for k in policy), f"policy.json must hold no retention rule here: {policy}")

    next_step = 4
    kills = {"save": 0, "prune": 0, "promote": 0}
    finished_first = {"save": 0, "prune": 0, "promote": 0}
    committed_by_killed_save = 0
    checked = 0
    lost = 0

    for it in range(n_kills):
        before = checkpoint_jsons(root, f"iteration {it}: before")
        kind = rng.choices(["save", "prune", "promote"], weights=[45, 35, 20])[0]
        must_keep = set(before)
        plan = None
        move_dir = None
        new_name = None
        if kind == "save":
            step = next_step
            next_step += 1
            new_name = name(step)
            mode = rng.choice(["--copy", "--move", "--link", None])
            move_dir, srcs = sources_for(mode or "--copy", step)
            cmd = save_cmd(step, mode, srcs, rng.choice(["sha256", "none"]))
        elif kind == "prune":
            dry = c.run("prune", "--keep-last", 3, "--dry-run", json_out=True, lock_timeout=10,
                        code=0, what=f"iteration {it}: prune --dry-run before the killed prune")
            plan = dry.json()
            kept = {k["name"] for k in plan.get("kept", [])}
            removed = set(harness.ref_names(plan.get("removed", [])))
            expect_eq(kept | removed, set(before), f"iteration {it}: dry-run kept+removed vs the checkpoints", dry)
            must_keep = kept
            cmd = c.cmd("prune", "--keep-last", 3, lock_timeout=10)
        else:
            cmd = c.cmd("promote-best", lock_timeout=10)

        # when to kill: the brief's 0-30 ms after start, or once the command is visibly at work
        # (staging appeared, the checkpoint was renamed into place, a prune started deleting),
        # or anywhere in a typical save's lifetime (calibrated above)
        if kind == "save":
            when = rng.choices(["early", "staging", "anytime", "committed"], weights=[35, 25, 20, 20])[0]
        elif kind == "prune":
            when = rng.choice(["early", "deleting"])
        else:
            when = rng.choice(["early", "early", "anytime"])
        t0 = time.monotonic()
        p = c.popen(cmd)
        if when == "early":
            delay = rng.uniform(0, 0.030)
        elif when == "anytime":
            delay = rng.uniform(0, 1.2 * (save_seconds if kind == "save" else 0.02))
        else:
            deadline = time.monotonic() + 60
            while p.poll() is None and time.monotonic() < deadline:
                if when == "staging" and staging_dirs(root):
                    break
                if when == "committed" and (root / new_name).exists():
                    break
                if when == "deleting" and (len(step_dirs(root)) < len(before) or private_entries(root, "trash")):
                    break
                time.sleep(0.0003)
            delay = rng.choice([0.0, 0.0, rng.uniform(0, 0.010 if when == "staging" else 0.002)])
        time.sleep(delay)
        how = f"{when}: killed {(time.monotonic() - t0) * 1000:.1f} ms after start"
        already = p.poll() is not None
        if not already:
            p.send_signal(signal.SIGKILL)
        res = finish(p, cmd, note=f"iteration {it} ({kind}), {how}, seed {seed}")
        kills[kind] += 1
        what = f"iteration {it}: after a killed {kind}"

        expect_rc(res, (0, -signal.SIGKILL), f"iteration {it}: a {kind} that was SIGKILLed or finished")
        if res.rc == 0:
            finished_first[kind] += 1

        # every visible step-* directory is a complete checkpoint, verify passes (stale markers allowed)
        try:
            after = checkpoint_jsons(root, what)
            markers_sane(root, what)
            v = c.run("verify", lock_timeout=10)
            expect_rc(v, 0, f"{what}: verify (stale markers are warnings)")
            missing = sorted(must_keep - set(after))
            checked += len(must_keep)
            lost += len(missing)
            check(not missing, f"{what}: checkpoints that the {kind} was not allowed to remove are gone: {missing}"
                  + (f"\n  dry-run plan: {json.dumps(plan)}" if plan is not None else ""))
            for n in sorted(set(before) & set(after)):
                expect_eq(after[n], before[n], f"{what}: {n}/_checkpoint.json changed")
            unexpected = sorted(set(after) - set(before) - ({new_name} if new_name else set()))
            check(not unexpected, f"{what}: new checkpoint directories appeared: {unexpected}")
            if kind == "save":
                if new_name in after:
                    if res.rc != 0:
                        committed_by_killed_save += 1
                else:
                    check(res.rc != 0, f"{what}: the save exited 0 but {new_name} is missing")
            if kind == "prune" and res.rc == 0:
                expect_eq(sorted(after), sorted(must_keep), f"{what}: a prune that finished keeps exactly its plan")
        except Fail as e:
            raise Fail(f"{e}\n  the killed command:\n{res.describe()}")
        if move_dir is not None:
            shutil.rmtree(move_dir, ignore_errors=True)

    # the end: one prune cleans every leftover; repair + strict verify pass
    res = c.run("prune", "--keep-last", 3, json_out=True, code=0, what="final prune")
    res.json()
    expect_eq(staging_dirs(root), [], "directories left in ROOT/.ckpt/staging after the final prune")
    expect_eq(private_entries(root, "trash"), [], "entries left in ROOT/.ckpt/trash after the final prune")
    markers_sane(root, "after the final prune")
    c.run("verify", "--repair", code=0, what="verify --repair at the end")
    c.run("verify", "--strict", code=0, what="verify --strict after verify --repair")
    total = sum(kills.values())
    print(f"  commands that finished before their kill: save {finished_first['save']}, prune "
          f"{finished_first['prune']}, promote {finished_first['promote']}; killed saves that had committed: "
          f"{committed_by_killed_save}; checkpoints at the end: {len(step_dirs(root))}")
    print(f"kills: {total} (save {kills['save']}, prune {kills['prune']}, promote {kills['promote']}), "
          f"checkpoints checked: {checked}, lost: {lost}")


# --------------------------------------------------------------------------
# signal_int_term_mid_save


@scenario
def signal_int_term_mid_save(c):
    """SIGINT/SIGTERM while a large save copies: exit 130, staging removed, nothing visible changes."""
    root = c.root
    small = write_random(c.src / "small.bin", 100_000)
    c.run("save", "--step", 1, small, "--metric", "val_loss=1", "--best-key", "val_loss", code=0, what="first save")
    before = snapshot(root, skip_top=(".ckpt",))
    last_before = (root / "last").read_bytes()
    big = c.src / "big.bin"
    make_big_file(big, 1 << 30)
    big_digest = None

    cases = [
        (signal.SIGINT, [], []),
        (signal.SIGTERM, [], []),
        (signal.SIGINT, ["--json"], ["--checksum", "none"]),
        (signal.SIGTERM, ["--json", "--no-fsync"], []),
        (signal.SIGINT, [], ["--move"]),
        (signal.SIGTERM, [], ["--move"]),
    ]
    summary = []
    for i, (sig, glob, opts) in enumerate(cases):
        label = f"{sig.name} {' '.join(glob + opts) or '(defaults)'}"
        if "--move" in opts and big_digest is None:
            st = big.stat()
            big_digest = (st.st_size, sha256_file(big))
        cmd = [BIN, "--lock-timeout", "30", *glob, "-C", str(root), "save", "--step", 2, str(big),
               "--metric", "val_loss=0.5", *opts]
        p = c.popen(cmd)
        t0 = time.monotonic()
        try:
            while True:
                if p.poll() is not None:
                    raise Fail(f"{label}: the save finished before it could be interrupted "
                               f"(make the source bigger)\n{finish(p, cmd).describe()}")
                if staging_dirs(root) and staging_bytes(root) > 0:
                    break
                check(time.monotonic() - t0 < 60, f"{label}: no staging directory with data appeared within 60s; "
                      f".ckpt/staging holds {private_entries(root, 'staging')}")
                time.sleep(0.002)
            seen = staging_bytes(root)
            p.send_signal(sig)
            res = finish(p, cmd, note=f"{sig.name} sent when staging held {seen} bytes")
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        expect_rc(res, 130, f"save interrupted by {label}")
        if "--json" in glob:
            err = res.json_error()
            expect_eq((err.get("code"), err.get("kind")), (130, "interrupted"), f"{label}: JSON error code/kind", res)
        else:
            check(any(line.startswith("ckpt: error: ") for line in res.err.splitlines()),
                  f"{label}: expected a 'ckpt: error: MESSAGE' line on stderr", res)
        try:
            expect_eq(step_dirs(root), [name(1)], f"{label}: checkpoint directories")
            expect_eq(staging_dirs(root), [], f"{label}: directories left in ROOT/.ckpt/staging")
            expect_eq((root / "last").read_bytes(), last_before, f"{label}: ROOT/last")
            expect_eq(snapshot(root, skip_top=(".ckpt",)), before, f"{label}: the root outside .ckpt")
            c.verify_ok(what=f"verify after {label}")
            if "--move" in opts:
                # an interrupted --move must not lose the user's file (SPEC §7: an interrupt removes
                # staging and leaves nothing visible; the source is the only copy of the data)
                check(big.is_file(), f"{label}: the --move source {big} is gone after the interrupt "
                      f"(the interrupted save lost the user's data)")
                st = big.stat()
                expect_eq((st.st_size, sha256_file(big)), big_digest, f"{label}: the --move source's size/sha256")
        except Fail as e:
            raise Fail(f"{e}\n  the interrupted command:\n{res.describe()}")
        summary.append(f"{label}: 130 after {seen} staged bytes")
    lock_files = private_entries(root, "staging")
    print("  " + "\n  ".join(summary))
    print(f"signals: {len(cases)} interrupted saves, all exit 130, staging clean"
          + (f" (files left in staging: {lock_files})" if lock_files else ""))
    big.unlink()


# --------------------------------------------------------------------------
# disk full (tmpfs)


class Tmpfs:
    def __init__(self, c, size):
        self.c = c
        self.dir = c.tmp / "fs"
        self.dir.mkdir()
        m = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(self.dir)],
                           capture_output=True, text=True)
        check(m.returncode == 0, f"cannot mount a tmpfs at {self.dir} (this scenario must run as root): "
              f"{m.stderr.strip()}")

    def umount(self, keep_copy):
        if keep_copy:
            # the scenario failed: keep what was on the tmpfs next to it for inspection
            try:
                shutil.copytree(self.dir, self.c.tmp / "fs-copy", symlinks=True,
                                ignore=shutil.ignore_patterns("filler*"))
            except Exception as e:  # best effort
                print(f"  (could not copy the tmpfs contents: {e})", file=sys.stderr)
        u = subprocess.run(["umount", str(self.dir)], capture_output=True, text=True)
        if u.returncode != 0:
            subprocess.run(["umount", "-l", str(self.dir)], capture_output=True, text=True)


def with_tmpfs(c, size, body):
    fs = Tmpfs(c, size)
    ok = False
    try:
        body(fs.dir)
        ok = True
    finally:
        fs.umount(keep_copy=not ok)


def expect_disk_full(res, what, json_mode=False):
    expect_rc(res, 6, what)
    if json_mode:
        err = res.json_error()
        expect_eq((err.get("code"), err.get("kind")), (6, "io"), f"{what}: JSON error code/kind", res)
        check(DISK_FULL_RE.search(str(err.get("message", ""))) is not None,
              f"{what}: the error message must say 'disk full' or 'no space'", res)
    else:
        check(DISK_FULL_RE.search(res.err) is not None, f"{what}: stderr must say 'disk full' or 'no space'", res)


@scenario
def diskfull_large_save(c):
    """A save bigger than the free space: exit 6, nothing changes, its space is released, a later save works."""
    one = write_random(c.src / "one.bin", 1 << 20)
    twenty = c.src / "twenty.bin"
    make_big_file(twenty, 20 << 20)

    def body(fs):
        root = fs / "root"
        c.run("save", "--step", 1, one, "--metric", "val_loss=2", "--best-key", "val_loss", root=root,
              code=0, what="save of 1 MiB")
        before = snapshot(root, skip_top=(".ckpt",))
        free0 = free_bytes(fs)
        outcomes = []
        cases = [
            ("copy", [], False),
            ("copy --json", [], True),
            ("--checksum none", ["--checksum", "none"], False),
            ("--move from another fs", ["--move"], False),
            ("--link from another fs", ["--link"], True),
        ]
        for label, opts, js in cases:
            src = twenty
            if "--move" in opts or "--link" in opts:
                src = c.src / "twenty-copy.bin"
                shutil.copyfile(twenty, src)
                digest = sha256_file(src)
            res = c.run("save", "--step", 2, src, "--metric", "val_loss=1", *opts, root=root, json_out=js)
            try:
                if "--link" in opts:
                    # hard links cannot cross file systems: a copy that runs out of space (6) or a
                    # refusal (2, or 6 for the link error) are all fine, but nothing may change
                    expect_rc(res, (2, 6), f"save --link of 20 MiB from another fs onto an 8 MiB tmpfs")
                else:
                    expect_disk_full(res, f"save ({label}) of 20 MiB onto an 8 MiB tmpfs", json_mode=js)
                expect_eq(step_dirs(root), [name(1)], f"{label}: checkpoint directories after the failed save")
                expect_eq(staging_dirs(root), [], f"{label}: directories left in ROOT/.ckpt/staging")
                expect_eq(snapshot(root, skip_top=(".ckpt",)), before,
                          f"{label}: the earlier checkpoint and the markers (byte for byte)")
                c.verify_ok(root=root, what=f"verify after the failed save ({label})")
                free1 = free_bytes(fs)
                check(abs(free1 - free0) <= 64 << 10,
                      f"{label}: free space on the tmpfs before the failed save {free0}, after {free1}: "
                      f"the failed save's space was not released; ROOT/.ckpt holds "
                      f"{ {s: private_entries(root, s) for s in ('staging', 'trash')} }")
                if src != twenty:
                    check(src.is_file() and sha256_file(src) == digest,
                          f"{label}: the source must be untouched after a failed save (exit 6: nothing was lost)")
            except Fail as e:
                raise Fail(f"{e}\n  the failed save:\n{res.describe()}")
            outcomes.append(f"{label}: rc {res.rc}")
            if src != twenty:
                src.unlink()
        res = c.run("save", "--step", 2, one, "--metric", "val_loss=1", root=root, code=0,
                    what="a 1 MiB save after the failed ones")
        expect_eq((root / "last").read_bytes(), (name(2) + "\n").encode(), "last after the 1 MiB save")
        c.verify_ok(root=root, what="verify at the end")
        c.run("verify", "--strict", root=root, code=0, what="verify --strict at the end")
        print("  " + "; ".join(outcomes))
        print(f"diskfull_large_save: {len(outcomes)} failed saves exit 6 (disk full), space released, "
              f"then a 1 MiB save committed")

    with_tmpfs(c, "8m", body)


@scenario
def diskfull_metadata_and_markers(c):
    """The data fits but _checkpoint.json / SHA256SUMS / markers may not: exit 0, or exit 6 with nothing partial
    (or, after the commit, exit 6 saying 'is committed' with a complete checkpoint and at most stale markers)."""
    page = 4096
    data = [write_random(c.src / "data" / f"part{i}.bin", size) for i, size in
            enumerate([32 << 10, 16 << 10, 8 << 10])]
    data_bytes = sum(p.stat().st_size for p in data)  # page multiples: exactly their pages on tmpfs
    many_meta = []
    for i in range(60):
        many_meta += ["--metric", f"metric_number_{i:03d}={i * 1.000001:.6f}"]
        many_meta += ["--meta", f"meta_key_{i:03d}=value-{i:03d}-" + "x" * 24]
    levels_kib = [0, 4, 8, 12, 16, 20, 24, 32, 48, 64, 128]

    def fill_to(fs, filler, spare):
        """Resize the filler so that exactly `spare` bytes stay free."""
        if filler.exists():
            filler.unlink()
        free = free_bytes(fs)
        fill = free - spare
        fill -= fill % page
        check(fill > 0, f"nothing to fill (free {free}, wanted {spare} spare)")
        with open(filler, "wb") as fh:
            chunk = b"\0" * (1 << 20)
            left = fill
            while left > 0:
                fh.write(chunk[:min(left, len(chunk))])
                left -= min(left, len(chunk))
        return free_bytes(fs)

    def levels(fs, root, label, first_args, attempt_args):
        """One root: a first checkpoint, then one save per fill level."""
        filler = fs / "filler"
        c.run("save", "--step", 1, *data, *first_args, root=root, code=0, what=f"{label}: first save")
        committed = {name(1): snapshot(root / name(1))}
        outcomes = []
        details = []
        step = 2
        for lvl in levels_kib:
            left_free = fill_to(fs, filler, data_bytes + (lvl << 10))
            nm = name(step)
            res = c.run("save", "--step", step, *data, "--metric", f"val_loss={100 - step}", *many_meta,
                        *attempt_args, root=root)
            what = (f"{label}: level {lvl} KiB spare after the data ({left_free} bytes free before the save): "
                    f"save {nm}")
            try:
                expect_rc(res, (0, 6), what)
                markers_sane(root, what)
                if res.rc == 0:
                    v = c.run("verify", root=root)
                    expect_rc(v, 0, f"{what}: verify after the save succeeded")
                    expect_eq((root / "last").read_bytes(), (nm + "\n").encode(), f"{what}: last")
                    outcome = "ok"
                else:
                    expect_disk_full(res, what)
                    if "is committed" in res.err:
                        check(nm in step_dirs(root), f"{what}: stderr says 'is committed' but {nm} is missing")
                        c.run("verify", nm, root=root, code=0, what=f"{what}: verify of the committed {nm}")
                        v = c.run("verify", "--json", root=root)
                        expect_rc(v, 0, f"{what}: verify (only stale-marker warnings allowed)")
                        doc = v.json()
                        for ck in doc.get("checkpoints", []):
                            check(not ck.get("problems"), f"{what}: checkpoint problems", v)
                        kinds = {pr.get("kind") for pr in doc.get("markers", {}).get("problems", [])}
                        check(kinds <= {"last_stale", "best_stale"}, f"{what}: marker problems beyond stale", v)
                        r = c.run("verify", "--repair", root=root)
                        if r.rc == 6:
                            # the repair itself may not find room for the marker files; give it some
                            expect_disk_full(r, f"{what}: verify --repair on a full disk")
                            filler.unlink()
                            r = c.run("verify", "--repair", root=root)
                        expect_rc(r, 0, f"{what}: verify --repair")
                        c.run("verify", "--strict", root=root, code=0, what=f"{what}: verify --strict after --repair")
                        expect_eq((root / "last").read_bytes(), (nm + "\n").encode(), f"{what}: last after repair")
                        outcome = "6+committed"
                    else:
                        check(nm not in step_dirs(root), f"{what}: exit 6 without 'is committed', yet {nm} is visible")
                        c.verify_ok(root=root, what=f"{what}: verify after the failed save")
                        outcome = "6"
                    details.append(f"{lvl}K: {res.err.strip().splitlines()[-1]}")
                expect_eq(staging_dirs(root), [], f"{what}: directories left in ROOT/.ckpt/staging")
                for n, snap in committed.items():
                    expect_eq(snapshot(root / n), snap, f"{what}: earlier checkpoint {n} changed")
                if nm in step_dirs(root):
                    committed[nm] = snapshot(root / nm)
            except Fail as e:
                raise Fail(f"{e}\n  the save:\n{res.describe()}")
            outcomes.append(f"{lvl}K:{outcome}")
            step += 1
        check(outcomes[0].endswith(":6"), f"{label}: with no room beyond the data the save must fail with exit 6: "
              f"{outcomes}")
        check(outcomes[-1].endswith(":ok"), f"{label}: with {levels_kib[-1]} KiB spare the save must succeed: "
              f"{outcomes}")
        if filler.exists():
            filler.unlink()
        nm = name(step)
        c.run("save", "--step", step, *data, "--metric", "val_loss=1", *many_meta, root=root, code=0,
              what=f"{label}: a save after the filler is removed")
        expect_eq((root / "last").read_bytes(), (nm + "\n").encode(), f"{label}: last after the final save")
        best = load_json(root / "best.json")
        expect_eq(best.get("path"), nm, f"{label}: best.json after the final save (val_loss=1 is the best)")
        c.verify_ok(root=root, what=f"{label}: verify at the end")
        c.run("verify", "--strict", root=root, code=0, what=f"{label}: verify --strict at the end")
        for n, snap in committed.items():
            expect_eq(snapshot(root / n), snap, f"{label}: at the end: checkpoint {n} changed")
        print(f"  {label}: " + " ".join(outcomes))
        for d in details:
            print(f"    {d}")
        return outcomes

    def body(fs):
        # markers replaced in place (best.json and policy.json exist before the attempts)
        a = levels(fs, fs / "root-replace", "markers replaced", ["--metric", "val_loss=100", "--best-key", "val_loss"],
                   [])
        # markers created after the commit: no best.json / best key until the attempts name one
        b = levels(fs, fs / "root-create", "markers created", [], ["--best-key", "val_loss"])
        committed_after = sum(o.endswith("6+committed") for o in a + b)
        print(f"diskfull_metadata_and_markers: {len(a) + len(b)} saves at fill levels, "
              f"{sum(o.endswith(':ok') for o in a + b)} ok, {sum(o.endswith(':6') for o in a + b)} failed before the "
              f"commit, {committed_after} failed after it ('is committed'); final saves ok")

    with_tmpfs(c, "8m", body)


# --------------------------------------------------------------------------
# stress_side_by_side


@scenario
def stress_side_by_side(c):
    """3 writers, a pruner, a promoter, verifiers and readers on one root for a while: only 0 (or 5 with
    --lock-timeout 0) exits, readers always see complete checkpoints, the policy's checkpoints survive.

    verify takes no lock, so a checkpoint that a concurrent prune deletes between verify's listing and its
    check may be reported (exit 1); that is tolerated only when the reported checkpoint is really gone
    afterwards. Anything else (a failure about a checkpoint that exists, another exit code) fails."""
    seconds = float(os.environ.get("CKPT_STRESS_SECONDS") or 20)
    seed = int(os.environ.get("CKPT_SEED") or random.randrange(1 << 31))
    print(f"stress_side_by_side: seed {seed}, {seconds:g} s")
    root = c.root
    keep_last, keep_best = 4, 2
    srcs = []
    for k in range(3):
        d = c.src / f"w{k}"
        write_random(d / "model.bin", 256 << 10)
        write_random(d / "optim" / "state.pt", 64 << 10)
        write_random(d / "rng", 100)
        srcs.append(d)

    lock = threading.Lock()
    commits = {}       # name -> {"step", "commit_seq", "val_loss"}
    counts = {}        # label -> count
    failures = []
    removed_by_prune = set()

    def count(label):
        with lock:
            counts[label] = counts.get(label, 0) + 1

    def fail(msg):
        with lock:
            failures.append(msg)

    def record_save(res, val):
        doc = res.json()
        with lock:
            commits[doc["name"]] = {"step": doc["step"], "commit_seq": doc["commit_seq"], "val_loss": val}
        return doc

    def locked_ok(res, lt0, what):
        """rc 0, or rc 5 (kind locked) when the command ran with --lock-timeout 0."""
        if res.rc == 0:
            return True
        if lt0 and res.rc == 5:
            err = res.json_error()
            check(err.get("code") == 5 and err.get("kind") == "locked", f"{what}: rc 5 must be kind 'locked'", res)
            return False
        expect_rc(res, (0, 5) if lt0 else 0, what)
        return False

    def save_args(step, val, rng, extra=()):
        return ["save", "--step", step, "--from", srcs[step % 3], "--metric", f"val_loss={val:.6f}",
                "--metric", f"acc={rng.random():.6f}", "--meta", f"writer={step % 3}", *extra]

    # the first save records the best key
    rng0 = random.Random(seed)
    v0 = round(rng0.uniform(0.1, 10), 6)
    res = c.run(*save_args(0, v0, rng0, ["--best-key", "val_loss", "--mode", "min"]), json_out=True, code=0,
                what="first save")
    record_save(res, v0)
    count("save")

    deadline = time.monotonic() + seconds

    def running():
        return len(failures) < 30 and time.monotonic() < deadline

    def loop(once, idx, pause):
        """Run one worker's iterations until the deadline; a failed iteration is recorded, the worker goes on."""
        rng = random.Random(seed * 31 + idx)
        state = {}
        while running():
            try:
                once(rng, state)
            except Fail as e:
                fail(str(e))
            except Exception:
                fail(f"test error in a worker:\n{traceback.format_exc()}")
            time.sleep(rng.uniform(0, pause))

    def writer(k):
        def once(rng, state):
            step = state.setdefault("step", k if k else 3)
            state["step"] = step + 3
            val = round(rng.uniform(0.1, 10), 6)
            lt0 = rng.random() < 0.2
            res = c.run(*save_args(step, val, rng), json_out=True, lock_timeout=0 if lt0 else 60)
            count("save")
            if locked_ok(res, lt0, f"writer {k}: save --step {step}"):
                doc = record_save(res, val)
                check(doc.get("pruned") == [], f"writer {k}: save without retention rules pruned", res)
            else:
                count("save locked")
                check(not (root / name(step)).exists(), f"writer {k}: save exited 5, yet {name(step)} exists", res)
        return once

    def pruner(rng, state):
        lt0 = rng.random() < 0.2
        res = c.run("prune", "--keep-last", keep_last, "--keep-best", keep_best, json_out=True,
                    lock_timeout=0 if lt0 else 60)
        count("prune")
        if locked_ok(res, lt0, "prune"):
            doc = res.json()
            with lock:
                removed_by_prune.update(harness.ref_names(doc.get("removed", [])))
        else:
            count("prune locked")

    def promoter(rng, state):
        lt0 = rng.random() < 0.2
        res = c.run("promote-best", json_out=True, lock_timeout=0 if lt0 else 60)
        count("promote")
        if locked_ok(res, lt0, "promote-best"):
            doc = res.json()
            check(isinstance(doc.get("promoted"), bool), "promote-best --json: promoted must be a bool", res)
        else:
            count("promote locked")

    def current_last():
        raw = read_bytes_or_none(root / "last")
        return raw.decode().strip() if raw else None

    def verifier(rng, state):
        if rng.random() < 0.5:
            res = c.run("verify", "--quick", json_out=True, lock_timeout=None)
            count("verify")
            if res.rc == 0:
                return
            expect_rc(res, (0, 1), "verify --quick (all checkpoints) during the stress")
            doc = res.json()
            # only a checkpoint that vanished (pruned) between listing and checking may fail
            for ck in doc.get("checkpoints", []):
                if not ck.get("ok"):
                    check(not (root / ck["name"]).exists(),
                          f"verify --quick (all checkpoints) failed {ck['name']}, which still exists", res)
                    count("verify: failed a checkpoint pruned meanwhile")
            for pr in doc.get("markers", {}).get("problems", []):
                if pr.get("severity") == "warning":
                    continue
                named = re.findall(r"step-[0-9]+", pr.get("detail", ""))
                still = [n for n in named if (root / n / "_checkpoint.json").is_file()]
                check(named and not still,
                      f"verify --quick (all checkpoints) exited 1 with a marker failure ({pr.get('kind')}) about "
                      f"{', '.join(still) or named}, which is a complete checkpoint (it exists now)", res)
                count(f"verify: {pr.get('kind')} about a checkpoint pruned meanwhile")
        else:
            res = c.run("info", "latest", json_out=True, lock_timeout=None)
            count("info latest")
            expect_rc(res, 0, "info latest during the stress (verifier)")
            nm = res.json()["name"]
            res2 = c.run("verify", "--quick", nm, lock_timeout=None)
            count("verify latest")
            if res2.rc != 0:
                expect_rc(res2, (0, 1, 3), f"verify --quick {nm} (just named by info latest)")
                check(not (root / nm).exists() and current_last() != nm,
                      f"verify --quick {nm} failed although {nm} still exists or is still last", res2)
                count("verify latest vanished")

    def reader(rng, state):
        res = c.run("info", "latest", json_out=True, lock_timeout=None)
        count("info latest")
        expect_rc(res, 0, "info latest during the stress")
        doc = res.json()
        path = pathlib.Path(doc["path"])
        check(path.name == doc.get("name") and os.path.realpath(path.parent) == os.path.realpath(root),
              "info latest: path must be ROOT/<name>", res)
        raw = read_bytes_or_none(path / "_checkpoint.json")
        if raw is None:
            # pruned in between: only possible once newer checkpoints exist (latest is always kept)
            check(current_last() != doc["name"],
                  f"info latest named {doc['name']}, whose _checkpoint.json is gone while it is still last", res)
            count("info latest pruned since")
        else:
            try:
                meta = json.loads(raw)
            except ValueError as e:
                raise Fail(f"{path}/_checkpoint.json does not parse ({e})\n{res.describe()}")
            check(meta.get("name") == doc["name"], f"{path}/_checkpoint.json names {meta.get('name')}", res)

    def end_state():
        """The final checks (after every worker stopped)."""
        seqs = [m["commit_seq"] for m in commits.values()]
        expect_eq(len(set(seqs)), len(seqs), "commit_seq values of the committed saves are unique")
        present = set(step_dirs(root))
        unknown = present - set(commits)
        check(not unknown, f"checkpoints that no save reported: {sorted(unknown)}")
        check(not (removed_by_prune & present), f"checkpoints a prune reported removed are present: "
              f"{sorted(removed_by_prune & present)}")
        by_seq = sorted(commits, key=lambda n: commits[n]["commit_seq"], reverse=True)
        by_best = sorted(commits, key=lambda n: (commits[n]["val_loss"], commits[n]["commit_seq"]))
        expected = set(by_seq[:keep_last]) | set(by_best[:keep_best])
        c.verify_ok(what="verify at the end")
        c.run("verify", "--strict", code=0, what="verify --strict at the end (no crash, so no stale marker)")
        missing = expected - present
        check(not missing, f"checkpoints the policy keeps are missing: {sorted(missing)} (present {sorted(present)})")
        expect_eq(current_last(), by_seq[0], "last names the checkpoint with the highest commit_seq")
        best = load_json(root / "best.json")
        expect_eq(best.get("path"), by_best[0], "best.json names the lowest val_loss (ties: earlier commit)")
        res = c.run("prune", "--keep-last", keep_last, "--keep-best", keep_best, json_out=True, code=0, what="final prune")
        expect_eq(sorted(step_dirs(root)), sorted(expected), "checkpoints after the final prune (the policy, recomputed)",
                  res)
        expect_eq(staging_dirs(root), [], "directories left in ROOT/.ckpt/staging after the final prune")
        expect_eq(private_entries(root, "trash"), [], "entries left in ROOT/.ckpt/trash after the final prune")
        c.verify_ok(what="verify after the final prune")
        return present

    workers = [(writer(0), 0), (writer(1), 0), (writer(2), 0), (pruner, 0.05), (promoter, 0.05),
               (verifier, 0.02), (reader, 0.01)]
    threads = [threading.Thread(target=loop, args=(fn, i, pause), daemon=True)
               for i, (fn, pause) in enumerate(workers)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 2 * DEFAULT_TIMEOUT)
    check(not any(t.is_alive() for t in threads), "a worker did not finish")
    elapsed = time.monotonic() - t0
    worker_failures = list(failures)
    present = set()
    try:
        present = end_state()
    except Fail as e:
        failures.append(f"[end state] {e}")
    if failures:
        groups = {}
        for f in failures:
            groups.setdefault(re.sub(r"[0-9]+", "N", f.splitlines()[0]), []).append(f)
        text = "\n".join(f"--- {len(v)}x: {v[0]}" for v in groups.values())
        raise Fail(f"{len(failures)} failure(s) ({len(worker_failures)} during the stress), "
                   f"{len(groups)} distinct; the first of each:\n{text}\n  counts: {counts}")

    total = sum(counts.get(k, 0) for k in ("save", "prune", "promote", "verify", "verify latest", "info latest"))
    print("  " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    print(f"stress: {elapsed:.1f} s, {total} commands (save {counts.get('save', 0)}, "
          f"prune {counts.get('prune', 0)}, promote {counts.get('promote', 0)}, "
          f"verify {counts.get('verify', 0) + counts.get('verify latest', 0)}, info {counts.get('info latest', 0)}); "
          f"exit 5 with --lock-timeout 0: {counts.get('save locked', 0) + counts.get('prune locked', 0) + counts.get('promote locked', 0)}; "
          f"committed {len(commits)}, kept at the end {len(present)}")


# --------------------------------------------------------------------------
# runner


if __name__ == "__main__":
    sys.exit(harness.main(sys.argv, __doc__, SCENARIOS, Ctx, "ckpt-faults", tmp_dir="/tmp"))
