#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Sharded saves (SPEC §10): many writers started together on one root (tmpfs and disk), the refusals
(path collisions, N mismatch, malformed --shard, superseded groups, committed steps, conflicting
metrics), --shard env and the default attempt group, retries and --force, and pending steps in info,
load, verify, abort and prune.

Usage: e2e_shards.py --list | --all | SCENARIO...   (binary: $CKPT_BIN)

The writers_* scenarios put their root under /dev/shm (tmpfs) or /var/tmp (the real disk); that
directory is removed when the scenario passes and kept (its path printed) when it fails.
"""
import datetime
import hashlib
import os
import pathlib
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, check, expect_eq, expect_rc, name, snapshot  # noqa: E402

SCENARIOS, scenario = harness.registry()

# Variables that pick the shard and the attempt group: never inherited from the environment that runs
# the tests (a CI job under SLURM or torchrun would otherwise change every default).
SHARD_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_JOB_ID",
              "SLURM_RESTART_COUNT", "TORCHELASTIC_RUN_ID", "TORCHELASTIC_RESTART_COUNT")


def shard_env(extra=None):
    e = harness.child_env()
    for k in SHARD_VARS:
        e.pop(k, None)
    e.update(extra or {})
    return e


class Ctx(harness.RootCtx):
    def __init__(self, tmp):
        super().__init__(tmp)
        self.scratch_dirs = []

    def close(self):
        if not os.environ.get("CKPT_E2E_KEEP"):
            for d in self.scratch_dirs:
                shutil.rmtree(d, ignore_errors=True)

    def scratch(self, base):
        """A fresh directory under base (/dev/shm, /var/tmp): removed by close(), unless keep_scratch()."""
        check(os.path.isdir(base) and os.access(base, os.W_OK), f"{base} is not a writable directory")
        d = pathlib.Path(tempfile.mkdtemp(prefix=f"{self.tmp.name}-", dir=base))
        self.scratch_dirs.append(d)
        return d

    def keep_scratch(self):
        for d in self.scratch_dirs:
            print(f"  scratch dir kept: {d}", file=sys.stderr)
        self.scratch_dirs = []

    def run(self, *args, root=None, code=None, what="", env=None, lock_timeout=30):
        cmd = [harness.BIN, "--lock-timeout", str(lock_timeout), "-C", str(root or self.root), *args]
        return harness.execute(cmd, cwd=str(self.tmp), env=shard_env(env), timeout=120, code=code,
                               what=what or " ".join(map(str, args)), env_extra=env)

    def file(self, rel, data):
        p = self.src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
        return p

    def shard(self, step, spec, *sources, group=None, opts=(), env=None, root=None, what=""):
        """A sharded save that must exit 0; its JSON object."""
        args = ["--json", "save", "--step", step, "--shard", spec, *opts, *sources]
        if group is not None:
            args += ["--group", group]
        res = self.run(*args, env=env, root=root, code=0, what=what or f"shard {spec} of step {step}")
        doc = res.json()
        check(isinstance(doc.get("shards"), dict), 'the save object has "shards"', res)
        return doc, res

    def info(self, root=None):
        return self.run("--json", "info", root=root, code=0).json()

    def pending(self, root=None):
        doc = self.info(root)
        check(isinstance(doc.get("pending"), list), f'info --json has a "pending" list: {doc}')
        return doc["pending"]

    def state(self, root=None):
        """What a refused save must leave alone: the visible root (checkpoints, markers, policy), the
        pending sets' files under .ckpt/pending, and info's pending list."""
        root = pathlib.Path(root or self.root)
        visible = snapshot(root, skip_top=(".ckpt",)) if root.is_dir() else None
        pend = snapshot(root / ".ckpt" / "pending") if (root / ".ckpt" / "pending").is_dir() else {}
        plist = self.pending(root) if root.is_dir() else None
        return {"visible": visible, "pending files": pend, "info pending": plist}

    def refused(self, args, code, kind, reason=None, env=None, what="", root=None):
        """Run `ckpt --json ARGS`: exit code, error kind (and reason), and nothing changed by it."""
        before = self.state(root)
        res = self.run("--json", *args, env=env, root=root, what=what)
        err = harness.expect_json_error(res, code, kind, message=True)
        if reason is not None:
            expect_eq(err.get("reason"), reason, "error.reason", res)
        after = self.state(root)
        for k in before:
            expect_eq(after[k], before[k], f"{k} after a refused save (nothing committed, the set intact)", res)
        check(harness.staging_dirs(root or self.root) == [],
              f"the refused save left staging behind: {harness.staging_dirs(root or self.root)}", res)
        return err, res


def pending_entry(c, step, root=None):
    entries = [p for p in c.pending(root) if p.get("step") == step]
    check(len(entries) == 1, f"exactly one pending entry for step {step}: {c.pending(root)}")
    return entries[0]


def expect_pending(c, step, group, count, present, root=None, replaces=False):
    p = pending_entry(c, step, root)
    expect_eq(p.get("name"), name(step), "pending name")
    pp = p.get("path")
    check(isinstance(pp, str) and os.path.isabs(pp)
          and os.path.realpath(pp) == os.path.realpath(pathlib.Path(root or c.root) / name(step)),
          f"pending path of step {step} is absolute, where it is committed: {p}")
    sh = p.get("shards")
    check(isinstance(sh, dict), f'a pending entry has its set in "shards": {p}')
    expect_eq(sh.get("group"), group, f"pending shards.group of step {step}")
    expect_eq(sh.get("count"), count, f"pending shards.count of step {step}")
    expect_eq(sh.get("present"), sorted(present), f"pending shards.present of step {step}")
    expect_eq(sh.get("missing"), sorted(set(range(count)) - set(present)), f"pending shards.missing of step {step}")
    expect_eq(p.get("replaces"), replaces, f"pending replaces of step {step}")
    check(isinstance(p.get("updated"), str) and p["updated"].endswith("Z"), f"pending updated is a UTC time: {p}")
    return p


def expect_staged(doc, step, count, present, group, res=None):
    """The JSON of a save that only staged its shard."""
    expect_eq(doc.get("step"), step, "step", res)
    expect_eq(doc.get("name"), name(step), "name", res)
    expect_eq(doc.get("committed"), False, "committed", res)
    expect_eq(doc.get("commit_seq"), None, "commit_seq of a staged shard", res)
    expect_eq(doc.get("existing"), False, "existing", res)
    sh = doc["shards"]
    expect_eq(sh.get("count"), count, "shards.count", res)
    expect_eq(sh.get("present"), sorted(present), "shards.present", res)
    expect_eq(sh.get("missing"), sorted(set(range(count)) - set(present)), "shards.missing", res)
    expect_eq(sh.get("group"), group, "shards.group", res)


def expect_committed(doc, step, count, group, res=None):
    expect_eq(doc.get("step"), step, "step", res)
    expect_eq(doc.get("committed"), True, "committed", res)
    check(isinstance(doc.get("commit_seq"), int), "a committing shard reports its commit_seq", res)
    sh = doc["shards"]
    expect_eq(sh.get("count"), count, "shards.count", res)
    expect_eq(sh.get("present"), list(range(count)), "shards.present", res)
    expect_eq(sh.get("missing"), [], "shards.missing", res)
    expect_eq(sh.get("group"), group, "shards.group", res)


def expect_checkpoint(c, step, files, count, root=None):
    """step is committed with exactly files ({stored path: (shard, bytes)}) from count shards; the
    manifest, SHA256SUMS (through sha256sum -c) and verify agree. Returns _checkpoint.json."""
    root = pathlib.Path(root or c.root)
    d = root / name(step)
    check(d.is_dir(), f"{d} is committed")
    doc = harness.meta(root, step)
    expect_eq(doc.get("shards"), count, f"_checkpoint.json shards of {name(step)}")
    paths = [f["path"] for f in doc["files"]]
    expect_eq(paths, sorted(files, key=lambda p: p.encode()), f"stored paths of {name(step)} (sorted)")
    for f in doc["files"]:
        shard, data = files[f["path"]]
        expect_eq(f.get("shard"), shard, f"shard of {f['path']}")
        expect_eq(f.get("size"), len(data), f"size of {f['path']}")
        check((d / f["path"]).read_bytes() == data, f"{name(step)}/{f['path']} holds the content its shard saved")
    expect_eq(doc.get("total_size"), sum(len(v[1]) for v in files.values()), "total_size")
    res = harness.execute(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=str(d), env=harness.child_env(),
                          timeout=120, code=0, what=f"sha256sum -c in {name(step)}")
    check(res.out.strip() == "", "sha256sum -c reports nothing", res)
    sums = (d / "SHA256SUMS").read_text().splitlines()
    expect_eq(len(sums), len(files), "lines in SHA256SUMS")
    c.verify_ok(root=root, what=f"verify after {name(step)} was committed")
    return doc


def on_disk_files(root, step):
    d = pathlib.Path(root) / name(step)
    return sorted(p.relative_to(d).as_posix() for p in d.rglob("*")
                  if p.is_file() and p.name not in ("_checkpoint.json", "SHA256SUMS"))


def expect_clean(root):
    for sub in ("staging", "pending", "trash"):
        left = harness.private_entries(root, sub)
        check(left == [], f"nothing may remain under .ckpt/{sub}: {left}")


# --------------------------------------------------------------------------
# many writers together


def writer_sources(src, n):
    """The files of n writers: {writer: [(stored path, bytes)]} and their SOURCE arguments. Each writer has a
    top-level weights file, a file in a subdirectory and, every third writer, a file two levels down; most
    are a few KiB to 64 KiB, a few are 1 MiB."""
    rng = random.Random(4242 + n)
    files, sources = {}, {}
    for i in range(n):
        big = i % 32 == 0
        wsize = (1 << 20) if big else rng.randint(2048, 64 << 10)
        model = rng.randbytes(wsize)
        optim = rng.randbytes(rng.randint(3000, 20000))
        wdir = src / f"w{i}"
        (wdir / "optim").mkdir(parents=True)
        (wdir / "model.bin").write_bytes(model)
        (wdir / "optim" / "state.pt").write_bytes(optim)
        entries = [(f"model/rank-{i:05d}.safetensors", model), (f"optim/shard-{i:05d}/state.pt", optim)]
        if i % 3 == 0:
            rng_state = rng.randbytes(rng.randint(1000, 8000))
            (wdir / "optim" / "rng").mkdir()
            (wdir / "optim" / "rng" / "state.bin").write_bytes(rng_state)
            entries.append((f"optim/shard-{i:05d}/rng/state.bin", rng_state))
        files[i] = entries
        sources[i] = [f"model/rank-{i:05d}.safetensors={wdir / 'model.bin'}", f"optim/shard-{i:05d}={wdir / 'optim'}"]
    return files, sources


def many_writers(c, n, base):
    try:
        _many_writers(c, n, base)
    except BaseException:
        c.keep_scratch()
        raise


def _many_writers(c, n, base):
    work = c.scratch(base)
    root, src, logs = work / "root", work / "src", work / "logs"
    src.mkdir()
    logs.mkdir()
    step = 1000
    files, sources = writer_sources(src, n)
    weights0 = f"model/rank-{0:05d}.safetensors"
    procs = []
    t0 = time.monotonic()
    for i in range(n):
        extra = ["--metric", "loss=0.5", "--best-key", "loss", "--weights", weights0] if i == 0 else []
        cmd = [harness.BIN, "--lock-timeout", "150", "--json", "-C", str(root), "save", "--step", str(step),
               "--shard", f"{i}/{n}", *extra, *sources[i]]
        out = open(logs / f"{i}.out", "wb")
        err = open(logs / f"{i}.err", "wb")
        try:
            procs.append((cmd, subprocess.Popen(cmd, cwd=str(work), env=shard_env(), stdin=subprocess.DEVNULL,
                                                stdout=out, stderr=err)))
        finally:
            out.close()
            err.close()
    deadline = time.monotonic() + 200
    hung = []
    for cmd, p in procs:
        try:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            hung.append(cmd)
    if hung:
        for _cmd, p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        raise Fail(f"{len(hung)} of {n} writers did not finish within 200s (killed); first: {hung[0]}")
    elapsed = time.monotonic() - t0

    results = []
    for i, (cmd, p) in enumerate(procs):
        results.append(harness.Result(cmd, p.returncode, (logs / f"{i}.out").read_text(errors="replace"),
                                      (logs / f"{i}.err").read_text(errors="replace")))
    bad = [r for r in results if r.rc != 0]
    check(not bad, f"{len(bad)} of {n} writers failed; the first:\n{bad[0].describe() if bad else ''}")
    noisy = [r for r in results if r.err.strip()]
    check(not noisy, f"{len(noisy)} writers wrote to stderr; the first:\n{noisy[0].describe() if noisy else ''}")

    docs = [r.json() for r in results]
    committers = [i for i, d in enumerate(docs) if d.get("committed") is True]
    check(len(committers) == 1, f"exactly one writer commits, got {len(committers)}: {committers}")
    total_files = sum(len(v) for v in files.values())
    total_size = sum(len(b) for v in files.values() for _p, b in v)
    seen_counts = []
    for i, (d, r) in enumerate(zip(docs, results)):
        sh = d["shards"]
        expect_eq(d.get("step"), step, f"writer {i}: step", r)
        expect_eq(d.get("existing"), False, f"writer {i}: existing", r)
        expect_eq(sh.get("count"), n, f"writer {i}: shards.count", r)
        expect_eq(sh.get("group"), "default", f"writer {i}: shards.group", r)
        present, missing = sh.get("present"), sh.get("missing")
        check(isinstance(present, list) and isinstance(missing, list), f"writer {i}: present/missing are lists", r)
        check(i in present, f"writer {i}: its own shard is present", r)
        check(present == sorted(present) and missing == sorted(missing), f"writer {i}: sorted lists", r)
        expect_eq(sorted(present + missing), list(range(n)), f"writer {i}: present + missing = all shards", r)
        seen_counts.append(len(present))
        if i in committers:
            expect_committed(d, step, n, "default", r)
            expect_eq(d.get("commit_seq"), 1, "the first commit in the root", r)
            expect_eq(d.get("file_count"), total_files, "the committer reports the merged file count", r)
            expect_eq(d.get("total_size"), total_size, "the committer reports the merged size", r)
            expect_eq(d.get("best_updated"), True, "the commit made best.json", r)
        else:
            expect_eq(d.get("commit_seq"), None, f"writer {i}: commit_seq of a staged shard", r)
            check(missing != [], f"writer {i}: a writer that did not commit saw shards missing", r)
            expect_eq(d.get("file_count"), len(files[i]), f"writer {i}: its own file count", r)
    # Each writer records its shard under the lock and reports the set as it left it: K of N in, for
    # every K from 1 to N exactly once.
    expect_eq(sorted(seen_counts), list(range(1, n + 1)), "the present counts the writers reported")

    expected = {p: (i, b) for i, v in files.items() for p, b in v}
    doc = expect_checkpoint(c, step, expected, n, root=root)
    expect_eq(doc.get("commit_seq"), 1, "commit_seq")
    expect_eq(doc.get("metrics"), {"loss": 0.5}, "metrics from shard 0")
    expect_eq(doc.get("weights"), [weights0], "weights from shard 0")
    expect_eq(on_disk_files(root, step), sorted(expected), "files on disk in the checkpoint")
    expect_eq((root / "last").read_text(), name(step) + "\n", "last")
    expect_eq(harness.read_best(root).get("step"), step, "best.json step")
    info = c.info(root)
    expect_eq(info.get("pending"), [], "info pending after the commit")
    expect_eq([x["name"] for x in info.get("checkpoints", [])], [name(step)], "info checkpoints")
    res = c.run("--json", "load", "latest", root=root, code=0)
    loaded = harness.load_locations(res.json())
    expect_eq(sorted(loaded), sorted(expected), "load latest lists every shard's files", res)
    for p, a in loaded.items():
        expect_eq(a, str(root / name(step) / p), f"load latest path of {p}", res)
    expect_clean(root)
    print(f"  {n} writers on {base}: {elapsed:.1f}s until all exited, {total_files} files, "
          f"{total_size / (1 << 20):.1f} MiB")


for _n in (2, 8, 64, 256):
    for _label, _base in (("tmpfs", "/dev/shm"), ("disk", "/var/tmp")):
        def _fn(c, n=_n, base=_base):
            many_writers(c, n, base)
        _fn.__name__ = f"shards_writers_{_n}_{_label}"
        _fn.__doc__ = f"{_n} writers started together, each saving its shard of one step, root under {_base}."
        scenario(_fn)


# --------------------------------------------------------------------------
# refusals


@scenario
def shards_refuse_path_collision(c):
    a = c.file("a.bin", "shard zero a\n")
    sub = c.file("d0/x.bin", "shard zero x\n").parent
    c.shard(1, "0/3", a, f"sub={sub}")
    b = c.file("b.bin", "shard one b\n")
    c.shard(1, "1/3", b)
    other = c.file("other/a.bin", "shard two, same name a\n")
    err, res = c.refused(["save", "--step", 1, "--shard", "2/3", other], 4, "conflict", "shard_mismatch")
    check("a.bin" in err["message"], "the message names the colliding path", res)
    x2 = c.file("x2.bin", "shard two x\n")
    c.refused(["save", "--step", 1, "--shard", "2/3", f"sub/x.bin={x2}"], 4, "conflict", "shard_mismatch",
              what="a collision inside a subdirectory")
    c.refused(["save", "--step", 1, "--shard", "2/3", f"q.bin={x2}", f"b.bin={x2}"], 4, "conflict",
              "shard_mismatch", what="one of two paths collides (with shard 1)")
    expect_pending(c, 1, "default", 3, [0, 1])
    check(harness.step_dirs(c.root) == [], "nothing committed")
    c_ = c.file("c.bin", "shard two c\n")
    doc, res = c.shard(1, "2/3", c_, f"sub2/x.bin={x2}")
    expect_committed(doc, 1, 3, "default", res)
    expect_checkpoint(c, 1, {"a.bin": (0, b"shard zero a\n"), "sub/x.bin": (0, b"shard zero x\n"),
                             "b.bin": (1, b"shard one b\n"), "c.bin": (2, b"shard two c\n"),
                             "sub2/x.bin": (2, b"shard two x\n")}, 3)
    expect_clean(c.root)


@scenario
def shards_refuse_count_mismatch(c):
    f0 = c.file("f0", "zero\n")
    c.shard(2, "0/2", f0, group="g")
    f1 = c.file("f1", "one\n")
    err, res = c.refused(["save", "--step", 2, "--shard", "1/3", f1, "--group", "g"], 4, "conflict", "shard_mismatch")
    check("2" in err["message"] and "3" in err["message"], "the message names both counts", res)
    c.refused(["save", "--step", 2, "--shard", "2/3", f1, "--group", "g"], 4, "conflict", "shard_mismatch",
              what="an index valid only in the other count")
    expect_pending(c, 2, "g", 2, [0])
    doc, res = c.shard(2, "1/2", f1, group="g")
    expect_committed(doc, 2, 2, "g", res)
    expect_checkpoint(c, 2, {"f0": (0, b"zero\n"), "f1": (1, b"one\n")}, 2)
    expect_clean(c.root)


@scenario
def shards_refuse_bad_shard_option(c):
    f0 = c.file("f0", "zero\n")
    c.shard(3, "0/4", f0)
    f1 = c.file("f1", "one\n")
    for spec in ("5/4", "4/4", "x", "1/", "/3", "-1/4", "1/0", "", "1/2/3", "a/b", " 1/4", "1/4 ", "1.0/4",
                 "+1/4", "1/-4", "0x1/4", "99999999999999999999/4", "ENV"):
        c.refused(["save", "--step", 3, "--shard", spec, f1], 2, "usage", what=f"--shard {spec!r}")
    c.refused(["save", "--step", 3, "--shard=-1/4", f1], 2, "usage", what="--shard=-1/4")
    c.refused(["save", "--step", 3, "--shard", "1/4", "--group", "", f1], 2, "usage", what="--group ''")
    cases = [
        ({}, "neither RANK/WORLD_SIZE nor SLURM_*"),
        ({"RANK": "1"}, "RANK without WORLD_SIZE"),
        ({"WORLD_SIZE": "4"}, "WORLD_SIZE without RANK"),
        ({"SLURM_PROCID": "1"}, "SLURM_PROCID without SLURM_NTASKS"),
        ({"RANK": "4", "WORLD_SIZE": "4"}, "RANK out of range"),
        ({"SLURM_PROCID": "7", "SLURM_NTASKS": "4"}, "SLURM_PROCID out of range"),
        ({"RANK": "one", "WORLD_SIZE": "4"}, "RANK not a number"),
        ({"RANK": "0", "WORLD_SIZE": "0"}, "WORLD_SIZE 0"),
    ]
    for env, what in cases:
        c.refused(["save", "--step", 3, "--shard", "env", f1], 2, "usage", env=env, what=f"--shard env, {what}")
    expect_pending(c, 3, "default", 4, [0])
    check(harness.step_dirs(c.root) == [], "nothing committed")


@scenario
def shards_shard_env(c):
    """--shard env: RANK/WORLD_SIZE (torchrun), else SLURM_PROCID/SLURM_NTASKS (srun)."""
    fa, fb, fc = c.file("a", "from RANK 1\n"), c.file("b", "from SLURM_PROCID 2\n"), c.file("c", "from RANK 0\n")
    doc, res = c.shard(4, "env", fa, env={"RANK": "1", "WORLD_SIZE": "3"})
    expect_staged(doc, 4, 3, [1], "default", res)
    doc, res = c.shard(4, "env", fb, env={"SLURM_PROCID": "2", "SLURM_NTASKS": "3"})
    expect_staged(doc, 4, 3, [1, 2], "default", res)
    # Both set: RANK/WORLD_SIZE win over the SLURM variables.
    doc, res = c.shard(4, "env", fc, env={"RANK": "0", "WORLD_SIZE": "3", "SLURM_PROCID": "5", "SLURM_NTASKS": "8"})
    expect_committed(doc, 4, 3, "default", res)
    expect_checkpoint(c, 4, {"a": (1, b"from RANK 1\n"), "b": (2, b"from SLURM_PROCID 2\n"),
                             "c": (0, b"from RANK 0\n")}, 3)
    # WORLD_SIZE=1 is a plain save that commits at once.
    fd = c.file("d", "alone\n")
    doc, res = c.shard(5, "env", fd, env={"RANK": "0", "WORLD_SIZE": "1"})
    expect_eq(doc.get("committed"), True, "a set of one commits at once", res)
    check((c.root / name(5) / "d").read_bytes() == b"alone\n", "step 5 committed")
    c.verify_ok()
    expect_clean(c.root)


@scenario
def shards_group_defaults(c):
    f = c.file("f", "data\n")
    cases = [
        (10, {"TORCHELASTIC_RUN_ID": "run7", "TORCHELASTIC_RESTART_COUNT": "2"}, None, "run7:2"),
        (11, {"TORCHELASTIC_RUN_ID": "run7", "TORCHELASTIC_RESTART_COUNT": "0", "SLURM_JOB_ID": "4242"},
         None, "run7:0"),
        (12, {"SLURM_JOB_ID": "4242"}, None, "4242:0"),
        (13, {"SLURM_JOB_ID": "4242", "SLURM_RESTART_COUNT": "3"}, None, "4242:3"),
        (14, {}, None, "default"),
        (15, {"TORCHELASTIC_RUN_ID": "run7", "TORCHELASTIC_RESTART_COUNT": "1", "SLURM_JOB_ID": "1"}, "mine", "mine"),
        (16, {"RANK": "1", "WORLD_SIZE": "2", "SLURM_JOB_ID": "77", "SLURM_RESTART_COUNT": "1"}, None, "77:1"),
    ]
    for step, env, group, want in cases:
        spec = "env" if "RANK" in env else "1/2"
        doc, res = c.shard(step, spec, f, group=group, env=env, what=f"step {step} with {env}")
        expect_staged(doc, step, 2, [1], want, res)
        expect_pending(c, step, want, 2, [1])
    # A shard given the same group explicitly joins the set the environment named.
    g = c.file("g", "zero\n")
    doc, res = c.shard(13, "0/2", g, group="4242:3")
    expect_committed(doc, 13, 2, "4242:3", res)
    expect_checkpoint(c, 13, {"f": (1, b"data\n"), "g": (0, b"zero\n")}, 2)
    expect_eq(sorted(p["step"] for p in c.pending()), [10, 11, 12, 14, 15, 16], "the other steps stay pending")


@scenario
def shards_retry_replaces(c):
    """The same shard index twice in one group: the later replaces the earlier (a retried writer)."""
    m = c.file("try1/model.bin", "first attempt\n")
    e = c.file("try1/extra.bin", "only in the first attempt\n")
    doc, res = c.shard(6, "0/2", m, e, group="g", opts=["--metric", "loss=9"])
    expect_staged(doc, 6, 2, [0], "g", res)
    before = snapshot(c.root / ".ckpt" / "pending")
    m2 = c.file("try2/model.bin", "second attempt, other content\n")
    doc, res = c.shard(6, "0/2", m2, group="g", opts=["--metric", "loss=3"])
    expect_staged(doc, 6, 2, [0], "g", res)
    expect_pending(c, 6, "g", 2, [0])
    after = snapshot(c.root / ".ckpt" / "pending")
    first = {hashlib.sha256(b).hexdigest() for b in (b"first attempt\n", b"only in the first attempt\n")}
    check(any(v[2] in first for v in before.values()), "the first attempt was staged")
    left = sorted(k for k, v in after.items() if v[2] in first)
    check(left == [], f"the first attempt's staged data is gone: {left}")
    o = c.file("one.bin", "shard one\n")
    doc, res = c.shard(6, "1/2", o, group="g")
    expect_committed(doc, 6, 2, "g", res)
    meta = expect_checkpoint(c, 6, {"model.bin": (0, b"second attempt, other content\n"),
                                    "one.bin": (1, b"shard one\n")}, 2)
    check(not (c.root / name(6) / "extra.bin").exists(), "the first attempt's extra file is not committed")
    expect_eq(meta.get("metrics"), {"loss": 3.0}, "metrics of the retry, not of the first attempt")
    expect_clean(c.root)


@scenario
def shards_new_group_retires(c):
    a0, a1 = c.file("old/a0", "old attempt shard 0\n"), c.file("old/a1", "old attempt shard 1\n")
    c.shard(7, "0/3", a0, group="run:0")
    c.shard(7, "1/3", a1, group="run:0")
    expect_pending(c, 7, "run:0", 3, [0, 1])
    old_hashes = {harness.sha256_file(a0), harness.sha256_file(a1)}
    staged_before = [k for k, v in snapshot(c.root / ".ckpt" / "pending").items() if v[2] in old_hashes]
    check(len(staged_before) == 2, f"both old shards were staged: {staged_before}")
    b2 = c.file("new/b2", "new attempt shard 2\n")
    doc, res = c.shard(7, "2/3", b2, group="run:1")
    expect_staged(doc, 7, 3, [2], "run:1", res)
    check("run:0" in res.err, "a warning names the retired group", res)
    expect_pending(c, 7, "run:1", 3, [2])
    left = sorted(k for k, v in snapshot(c.root / ".ckpt").items() if v[2] in old_hashes)
    check(left == [], f"the retired group's staged data is gone from .ckpt (pending and trash): {left}")
    expect_eq(harness.private_entries(c.root, "trash"), [], "trash after the retirement")
    # The new group may use another N.
    b0, b1 = c.file("new/b0", "new attempt shard 0\n"), c.file("new/b1", "new attempt shard 1\n")
    c.shard(7, "0/3", b0, group="run:1")
    doc, res = c.shard(7, "1/3", b1, group="run:1")
    expect_committed(doc, 7, 3, "run:1", res)
    expect_checkpoint(c, 7, {"b0": (0, b"new attempt shard 0\n"), "b1": (1, b"new attempt shard 1\n"),
                             "b2": (2, b"new attempt shard 2\n")}, 3)
    # A new group with another N retires a set too.
    c.shard(8, "0/2", a0, group="x:0")
    doc, res = c.shard(8, "3/4", b0, group="x:1")
    expect_staged(doc, 8, 4, [3], "x:1", res)
    expect_pending(c, 8, "x:1", 4, [3])
    left = sorted(k for k, v in snapshot(c.root / ".ckpt").items() if v[2] in old_hashes)
    check(left == [], f"the retired set of step 8 is gone from .ckpt: {left}")


@scenario
def shards_late_shard_superseded(c):
    a0, a1 = c.file("a0", "old 0\n"), c.file("a1", "old 1\n")
    b0, b1 = c.file("b0", "new 0\n"), c.file("b1", "new 1\n")
    c.shard(9, "0/2", a0, group="job:0")
    c.shard(9, "0/2", b0, group="job:1")
    err, res = c.refused(["save", "--step", 9, "--shard", "1/2", a1, "--group", "job:0"], 4, "conflict", "superseded")
    check("job:1" in err["message"], "the message names the group that took over", res)
    c.refused(["save", "--step", 9, "--shard", "0/2", a0, "--group", "job:0"], 4, "conflict", "superseded",
              what="a retry of the retired group's recorded shard")
    c.refused(["save", "--step", 9, "--shard", "1/2", a1], 4, "conflict", "superseded",
              env={"SLURM_JOB_ID": "job", "SLURM_RESTART_COUNT": "0"}, what="the retired group from SLURM_*")
    expect_pending(c, 9, "job:1", 2, [0])
    doc, res = c.shard(9, "1/2", b1, group="job:1")
    expect_committed(doc, 9, 2, "job:1", res)
    files = {"b0": (0, b"new 0\n"), "b1": (1, b"new 1\n")}
    expect_checkpoint(c, 9, files, 2)
    # After the commit the retired group is still refused as superseded; the checkpoint is untouched.
    for spec, f in (("1/2", a1), ("0/2", a0)):
        c.refused(["save", "--step", 9, "--shard", spec, f, "--group", "job:0"], 4, "conflict", "superseded",
                  what=f"retired shard {spec} after the commit")
    expect_checkpoint(c, 9, files, 2)
    expect_eq(c.pending(), [], "no pending step")
    expect_clean(c.root)


@scenario
def shards_step_exists(c):
    p = c.file("plain.bin", "plain save\n")
    c.run("save", "--step", 20, p, code=0)
    x = c.file("x.bin", "sharded\n")
    c.refused(["save", "--step", 20, "--shard", "0/2", x], 4, "conflict", "step_exists",
              what="a shard of a step a plain save committed")
    c.refused(["save", "--step", 20, "--shard", "0/2", p], 4, "conflict", "step_exists",
              what="the plain save's own file as a shard")
    s0, s1 = c.file("s0.bin", "shard 0\n"), c.file("s1.bin", "shard 1\n")
    c.shard(21, "0/2", s0, group="g", opts=["--metric", "loss=1"])
    doc, res = c.shard(21, "1/2", s1, group="g")
    expect_committed(doc, 21, 2, "g", res)
    seq = doc["commit_seq"]
    files = {"s0.bin": (0, b"shard 0\n"), "s1.bin": (1, b"shard 1\n")}
    expect_checkpoint(c, 21, files, 2)
    other = c.file("other/s0.bin", "other content\n")
    c.refused(["save", "--step", 21, "--shard", "0/2", other, "--group", "g"], 4, "conflict", "step_exists",
              what="shard 0 again with other content")
    c.refused(["save", "--step", 21, "--shard", "0/2", s0, x, "--group", "g"], 4, "conflict", "step_exists",
              what="shard 0 again with an extra file")
    c.refused(["save", "--step", 21, "--shard", "0/3", s0, "--group", "g"], 4, "conflict", "step_exists",
              what="another N")
    c.refused(["save", "--step", 21, other], 4, "conflict", what="a plain save of the step")
    # An identical rerun of a committed shard (a writer retried after it had succeeded) is no error.
    before = c.state()
    for spec, f in (("0/2", s0), ("1/2", s1)):
        doc, res = c.shard(21, spec, f, group="g", what=f"identical rerun of shard {spec}")
        expect_eq(doc.get("existing"), True, "existing", res)
        expect_eq(doc.get("committed"), False, "committed (this run committed nothing)", res)
        expect_eq(doc.get("commit_seq"), seq, "commit_seq of the committed step", res)
        expect_eq(doc["shards"].get("present"), [0, 1], "shards.present", res)
        expect_eq(doc["shards"].get("missing"), [], "shards.missing", res)
    expect_eq(c.state(), before, "an identical rerun changes nothing")
    expect_eq((c.root / "last").read_text(), name(21) + "\n", "last")
    expect_checkpoint(c, 21, files, 2)
    expect_clean(c.root)


@scenario
def shards_force_replaces(c):
    a0, a1 = c.file("v1/a0", "v1 shard 0\n"), c.file("v1/a1", "v1 shard 1\n")
    c.shard(30, "0/2", a0, group="a")
    c.shard(30, "1/2", a1, group="a")
    c.run("save", "--step", 31, c.file("later", "later\n"), code=0)
    old = {"a0": (0, b"v1 shard 0\n"), "a1": (1, b"v1 shard 1\n")}
    expect_checkpoint(c, 30, old, 2)
    old_snap = snapshot(c.root / name(30))
    # The replacement is a new, complete set, here of 3 shards; each of its writers passes --force.
    b = [c.file(f"v2/b{i}", f"v2 shard {i}\n") for i in range(3)]
    doc, res = c.shard(30, "0/3", b[0], group="b", opts=["--force"])
    expect_staged(doc, 30, 3, [0], "b", res)
    doc, res = c.shard(30, "2/3", b[2], group="b", opts=["--force"])
    expect_staged(doc, 30, 3, [0, 2], "b", res)
    expect_pending(c, 30, "b", 3, [0, 2], replaces=True)
    expect_eq(snapshot(c.root / name(30)), old_snap, "the committed step is untouched until the new set is complete")
    c.verify_ok()
    res = c.run("--json", "load", "30", code=0)
    expect_eq(sorted(harness.load_locations(res.json())), ["a0", "a1"], "load sees the committed step", res)
    doc, res = c.shard(30, "1/3", b[1], group="b", opts=["--force"])
    expect_committed(doc, 30, 3, "b", res)
    expect_eq(doc.get("commit_seq"), 3, "a new commit_seq", res)
    expect_checkpoint(c, 30, {f"b{i}": (i, f"v2 shard {i}\n".encode()) for i in range(3)}, 3)
    expect_eq(on_disk_files(c.root, 30), ["b0", "b1", "b2"], "the old set's files are gone")
    expect_eq((c.root / "last").read_text(), name(30) + "\n", "last names the most recent commit")
    expect_eq(c.pending(), [], "no pending step")
    check((c.root / name(31)).is_dir(), "the other checkpoint stays")
    expect_clean(c.root)


@scenario
def shards_metric_conflict(c):
    f = [c.file(f"f{i}", f"shard {i}\n") for i in range(4)]
    c.shard(40, "0/4", f[0], opts=["--metric", "loss=1", "--meta", "git=abc", "--best-key", "loss", "--mode", "min"])
    for opts, what in ((["--metric", "loss=2"], "another loss"),
                       (["--metric", "acc=0.5", "--metric", "loss=1.5"], "another loss beside a new metric"),
                       (["--meta", "git=def"], "another meta value"),
                       (["--best-key", "acc"], "another best key"),
                       (["--mode", "max"], "another mode")):
        c.refused(["save", "--step", 40, "--shard", "1/4", f[1], *opts], 4, "conflict", "shard_mismatch",
                  what=what)
    expect_pending(c, 40, "default", 4, [0])
    # The same values, and new keys, from other shards are fine.
    doc, res = c.shard(40, "1/4", f[1], opts=["--metric", "loss=1", "--metric", "acc=0.5", "--meta", "host=n1"])
    expect_staged(doc, 40, 4, [0, 1], "default", res)
    c.refused(["save", "--step", 40, "--shard", "2/4", f[2], "--metric", "acc=0.75"], 4, "conflict",
              "shard_mismatch", what="a conflict with shard 1's metric")
    c.refused(["save", "--step", 40, "--shard", "2/4", f[2], "--meta", "host=n2"], 4, "conflict",
              "shard_mismatch", what="a conflict with shard 1's meta")
    c.shard(40, "2/4", f[2], opts=["--meta", "git=abc", "--best-key", "loss"])
    check(harness.read_best(c.root) is None, "no best.json before the commit")
    doc, res = c.shard(40, "3/4", f[3])
    expect_committed(doc, 40, 4, "default", res)
    meta = expect_checkpoint(c, 40, {f"f{i}": (i, f"shard {i}\n".encode()) for i in range(4)}, 4)
    expect_eq(meta.get("metrics"), {"acc": 0.5, "loss": 1.0}, "merged metrics")
    expect_eq(meta.get("meta"), {"git": "abc", "host": "n1"}, "merged meta")
    best = harness.read_best(c.root)
    expect_eq((best.get("key"), best.get("value"), best.get("step")), ("loss", 1.0, 40), "best.json")


@scenario
def shards_best_key_and_weights(c):
    m0 = c.file("m0", "model shard 0\n")
    o0 = c.file("o0", "optim shard 0\n")
    e1 = c.file("ema1", "ema shard 1\n")
    m1 = c.file("m1", "model shard 1\n")
    p2 = c.file("p2", "plain shard 2\n")
    c.shard(50, "0/3", f"model/part0={m0}", f"optim/part0={o0}",
            opts=["--metric", "val_loss=0.25", "--best-key", "val_loss", "--keep-last", "5", "--weights", "model/*"])
    check(harness.read_best(c.root) is None, "no best.json while the step is pending")
    check(not (c.root / "last").exists(), "no last while the step is pending")
    c.shard(50, "1/3", f"model/part1={m1}", f"ema.bin={e1}", opts=["--weights", "ema.bin", "--weights", "model/part1"])
    # --weights names the writer's own stored paths.
    c.refused(["save", "--step", 50, "--shard", "2/3", p2, "--weights", "model/part0"], 2, "usage",
              what="--weights naming another shard's file")
    doc, res = c.shard(50, "2/3", p2)
    expect_committed(doc, 50, 3, "default", res)
    expect_eq(doc.get("best_updated"), True, "the commit updated best.json", res)
    meta = expect_checkpoint(c, 50, {"model/part0": (0, b"model shard 0\n"), "optim/part0": (0, b"optim shard 0\n"),
                                     "model/part1": (1, b"model shard 1\n"), "ema.bin": (1, b"ema shard 1\n"),
                                     "p2": (2, b"plain shard 2\n")}, 3)
    expect_eq(meta.get("weights"), ["ema.bin", "model/part0", "model/part1"], "weights of both shards")
    best = harness.read_best(c.root)
    expect_eq((best.get("key"), best.get("mode"), best.get("value"), best.get("step"), best.get("path")),
              ("val_loss", "min", 0.25, 50, name(50)), "best.json after the commit")
    harness.expect_best_marker(doc.get("best"), best, c.root, "the committing shard's best", res)
    policy = harness.load_json(c.root / "policy.json")
    expect_eq((policy.get("best_key"), policy.get("keep_last")), ("val_loss", 5), "policy.json from shard 0")
    res = c.run("--json", "load", "best", "--weights-only", code=0)
    expect_eq(sorted(harness.load_locations(res.json())), ["ema.bin", "model/part0", "model/part1"],
              "load best --weights-only", res)
    res = c.run("--json", "info", "latest", code=0)
    expect_eq(sorted(res.json().get("markers", [])), ["best", "last"], "markers of the sharded checkpoint", res)
    expect_clean(c.root)


# --------------------------------------------------------------------------
# pending steps


def three_of_four(c, step, root=None, group=None):
    for i in range(3):
        c.shard(step, f"{i}/4", c.file(f"s{step}/r{i}", f"step {step} shard {i}\n"), group=group, root=root)


@scenario
def shards_pending_in_info(c):
    three_of_four(c, 60, group="job:0")
    p = expect_pending(c, 60, "job:0", 4, [0, 1, 2])
    t = datetime.datetime.strptime(p["updated"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    age = abs((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds())
    check(age < 120, f"pending updated is about now: {p['updated']} ({age:.0f}s off)")
    doc = c.info()
    expect_eq(doc.get("checkpoints"), [], "no checkpoint")
    expect_eq(doc.get("last"), None, "last")
    res = c.run("info", code=0)
    lines = res.out.splitlines()
    idx = [i for i, line in enumerate(lines) if "pending" in line.lower()]
    check(idx, "the table has a pending section", res)
    rows = [line for line in lines[idx[0]:] if name(60) in line]
    check(len(rows) == 1, "one pending row for the step", res)
    cols = rows[0].split()
    check("job:0" in cols and "3/4" in cols and "3" in cols, f"the row shows group, shards in and missing: {rows[0]!r}",
          res)
    check(not any(name(60) in line for line in lines[:idx[0]]), "the pending step is not listed as a checkpoint", res)
    # Another pending step beside a committed checkpoint.
    c.run("save", "--step", 1, c.file("plain", "plain\n"), code=0)
    c.shard(61, "1/2", c.file("s61", "x\n"))
    doc = c.info()
    expect_eq([x["name"] for x in doc["checkpoints"]], [name(1)], "the checkpoints")
    expect_eq(sorted(x["name"] for x in doc["pending"]), [name(60), name(61)], "the pending steps")
    expect_pending(c, 61, "default", 2, [1])


@scenario
def shards_pending_never_a_checkpoint(c):
    three_of_four(c, 70)
    for args in (["info", "latest"], ["load", "latest"], ["info", "last", "--path"], ["info", "70"], ["load", "70"],
                 ["verify", "70"], ["info", "best"]):
        res = c.run("--json", *args)
        harness.expect_json_error(res, 3, "not_found")
    res = c.run("--json", "verify", code=0)
    expect_eq(res.json().get("checkpoints"), [], "verify sees no checkpoint", res)
    check(harness.step_dirs(c.root) == [], "no step directory in the root")
    # Beside a committed checkpoint, latest is that one.
    c.run("save", "--step", 1, c.file("plain", "plain\n"), code=0)
    res = c.run("--json", "info", "latest", code=0)
    expect_eq(res.json().get("name"), name(1), "info latest", res)
    res = c.run("--json", "load", "latest", code=0)
    expect_eq(sorted(harness.load_locations(res.json())), ["plain"], "load latest", res)
    res = c.run("--json", "verify", code=0)
    expect_eq([x["name"] for x in res.json()["checkpoints"]], [name(1)], "verify checks the committed one", res)
    # Retention neither counts nor removes the pending step.
    before = snapshot(c.root / ".ckpt" / "pending")
    res = c.run("--json", "prune", "--keep-last", "1", code=0)
    doc = res.json()
    expect_eq(doc.get("removed"), [], "prune removed nothing", res)
    expect_eq(doc.get("expired"), [], "prune expired nothing (default expiry)", res)
    expect_eq(snapshot(c.root / ".ckpt" / "pending"), before, "the pending set is intact after prune")
    expect_pending(c, 70, "default", 4, [0, 1, 2])


@scenario
def shards_abort(c):
    three_of_four(c, 80, group="g")
    c.run("save", "--step", 81, c.file("plain", "plain\n"), code=0)
    entry = pending_entry(c, 80)
    res = c.run("--json", "abort", "80", code=0)
    doc = res.json()
    expect_eq((doc.get("name"), doc.get("step"), doc.get("shards"), doc.get("replaces")),
              (name(80), 80, {"group": "g", "count": 4, "present": [0, 1, 2], "missing": [3]}, False),
              "abort's JSON", res)
    expect_eq({k: v for k, v in doc.items() if k not in ("schema_version", "root", "warnings")}, entry,
              "abort's JSON is the pending step as info listed it", res)
    expect_eq(c.pending(), [], "no pending step after abort")
    expect_clean(c.root)
    res = c.run("--json", "abort", "80")
    harness.expect_json_error(res, 3, "not_found")
    res = c.run("abort", "80")
    expect_rc(res, 3, "a second abort, without --json")
    before = snapshot(c.root)
    res = c.run("--json", "abort", "81")
    harness.expect_json_error(res, 3, "not_found")
    expect_eq(snapshot(c.root), before, "abort of a committed step touches nothing")
    harness.expect_json_error(c.run("--json", "abort", "x"), 2, "usage")
    # By name; and a shard arriving after the abort starts a new pending step.
    three_of_four(c, 82)
    c.run("abort", name(82), code=0)
    doc, res = c.shard(82, "3/4", c.file("late", "late\n"))
    expect_staged(doc, 82, 4, [3], "default", res)
    expect_pending(c, 82, "default", 4, [3])
    check(not (c.root / name(82)).exists(), "nothing committed")
    c.verify_ok()


@scenario
def shards_prune_pending_expiry(c):
    c.run("save", "--step", 1, c.file("plain1", "1\n"), code=0)
    c.run("save", "--step", 2, c.file("plain2", "2\n"), code=0)
    three_of_four(c, 90)
    res = c.run("--json", "prune", "--pending-expiry", "1h", code=0)
    expect_eq(res.json().get("expired"), [], "a just-updated pending step is kept with 1h", res)
    expect_pending(c, 90, "default", 4, [0, 1, 2])
    time.sleep(2.2)
    res = c.run("--json", "prune", "--dry-run", "--pending-expiry", "1s", code=0)
    doc = res.json()
    expect_eq(doc.get("dry_run"), True, "dry_run", res)
    expect_eq(harness.ref_names(doc.get("expired")), [name(90)], "the dry run reports the expired step", res)
    expect_eq((doc["expired"][0].get("step"), doc["expired"][0].get("shards")),
              (90, {"group": "default", "count": 4, "present": [0, 1, 2], "missing": [3]}),
              "the expired step's pending entry", res)
    expect_pending(c, 90, "default", 4, [0, 1, 2])
    res = c.run("--json", "prune", "--pending-expiry", "1h", code=0)
    expect_eq(res.json().get("expired"), [], "still kept with 1h", res)
    # A second pending step, updated just before the prune, outlives a 4s expiry; the older one does not.
    time.sleep(2.0)
    c.shard(91, "0/2", c.file("s91", "91\n"))
    before = snapshot(c.root, skip_top=(".ckpt",))
    res = c.run("--json", "prune", "--pending-expiry", "4s", code=0)
    doc = res.json()
    expect_eq(harness.ref_names(doc.get("expired")), [name(90)], "prune expires the idle step only", res)
    expect_eq(doc.get("removed"), [], "--pending-expiry alone removes no checkpoint", res)
    expect_eq(snapshot(c.root, skip_top=(".ckpt",)), before, "the committed checkpoints are untouched")
    expect_eq([p["name"] for p in c.pending()], [name(91)], "the fresh step stays pending")
    check(name(90) not in harness.private_entries(c.root, "pending"), "the expired step's data is gone")
    check(harness.private_entries(c.root, "trash") == [], "trash is empty")
    res = c.run("--json", "abort", "90")
    harness.expect_json_error(res, 3, "not_found")
    # The shard that would have completed step 90 starts a new pending step instead.
    doc, res = c.shard(90, "3/4", c.file("late90", "late\n"))
    expect_staged(doc, 90, 4, [3], "default", res)
    res = c.run("--json", "prune", "--pending-expiry", "bogus")
    harness.expect_json_error(res, 2, "usage")
    c.verify_ok()


if __name__ == "__main__":
    sys.exit(harness.main(sys.argv, __doc__, SCENARIOS, Ctx, "ckpt-shards"))
