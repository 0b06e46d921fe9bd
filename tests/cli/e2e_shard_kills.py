#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Sharded saves (SPEC.md §10) under kills: many writers of one step, some of
them SIGKILLed, the committer killed in the middle of its commit, and writers
in two mount namespaces that see the root at two different paths.

  shard_kills_random
      Runs of N (2..8) writers of one step, each 1-3 files of random size (up
      to 4 MiB), started at once in a fresh root; a random subset is SIGKILLed
      at random delays (0-50 ms) or 0-30 ms after each one's staging
      directory appeared (mid-copy), or the committer (the holder of the root
      lock once .ckpt/pending/step-N/merge* appears, found in /proc/locks) is
      killed in the middle of its commit, alone, with others, or with
      everyone. A reader loop runs `ckpt info --json`, `ckpt verify` and looks
      at the root itself the whole time: no partial checkpoint is ever
      visible, the step is never committed twice. After the kills the step is
      absent or complete; every writer that was killed or did not report
      success runs again (same files, same group; in sequence or side by
      side); the step then is committed exactly once with the sources'
      content, `info --json` lists no pending step, and after `ckpt prune
      --keep-last 5` nothing is left in .ckpt/staging, .ckpt/pending or
      .ckpt/trash. `load latest` names the step after the reruns; ROOT/last
      must name it after that prune (a rerun that says "existing" leaves a
      stale `last` as it is: counted and printed, not failed). Prints how often a committer was killed mid-commit and how
      many writers were killed mid-staging.
  shard_kills_retry_during_commit
      Shards 0 and 1 of a 3-shard step are recorded; shard 2, which completes
      the set, runs under strace, SIGKILLed on entering each call that
      changes the file system after it took the root lock (recording its
      shard, merging, the commit rename, `last`, removing the pending step),
      one kill point per run. Then the step is absent (and pending) or
      complete, the checkpoint committed before is unchanged, and rerunning
      one shard (any one, once all three are recorded) commits it exactly once
      (or, when the kill came after the commit rename, says "existing": true
      and changes nothing); the kill points after which ROOT/last was still
      stale after that rerun are printed (the next prune must fix it).
  shard_two_mount_namespaces
      16 writers of one step, 8 in each of two mount (and PID) namespaces
      made by `unshare`: in one the shared root's directory is bind-mounted
      at hostA/, in the other at hostB/ (each cannot see the other's path;
      process IDs repeat across the two). The step commits exactly once and
      verifies, from the host and through both paths. Fails (never a silent
      pass) when unshare or mount namespaces are not available.

Only the Python standard library, strace and unshare are used; this file does
not import the other e2e files, so its scenario list is only its own.

    python3 tests/cli/e2e_shard_kills.py --list          one scenario name per line
    python3 tests/cli/e2e_shard_kills.py NAME [NAME...]  run scenarios; exit 0 when all pass
    python3 tests/cli/e2e_shard_kills.py --all           run every scenario

The binary comes from $CKPT_BIN, else ../../build/release/apps/ckpt/ckpt
relative to this file; strace from $STRACE, else the PATH. Every scenario runs
in a fresh temporary directory ckpt-shards-<name>-* (under /dev/shm when it
exists, so fsync is cheap) that is removed on success and kept (its path
printed) on failure; set CKPT_E2E_KEEP=1 to keep it on success too.

Knobs: CKPT_SOAK_RUNS (shard_kills_random: runs, default 100), CKPT_SEED (its
random seed; printed), CKPT_KILL_ONLY (shard_kills_retry_during_commit: a
comma-separated list of NAME:N, e.g. rename:2,fsync:5: run only those kill
points), CKPT_NS_ROUNDS (shard_two_mount_namespaces: steps saved, default 3).
"""

import hashlib
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
from harness import (BIN, Fail, Result, check, child_env, expect_eq, expect_rc, load_json, name,  # noqa: E402
                     private_entries, snapshot, step_dirs)

DEFAULT_TIMEOUT = 120
STRACE = os.environ.get("STRACE") or shutil.which("strace") or "strace"
UNSHARE = shutil.which("unshare")
TMP_DIR = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
RESERVED = ("_checkpoint.json", "SHA256SUMS")
# the staging directory of a shard writer (and its lock file): STEP.shard-I.SUFFIX[.lock], the suffix
# starting with the writer's pid (only the counts of where writers were killed rely on this)
STAGING_RE = re.compile(r"^step-\d+\.shard-(\d+)\.(\d+)\.[^/]*?(\.lock)?$")
# a recorded shard's data directory in .ckpt/pending/STEP: IIIII.SUFFIX
PENDING_DATA_RE = re.compile(r"^(\d{5})\.(\d+)\.[^/]*$")

SCENARIOS, scenario = harness.registry()


# --------------------------------------------------------------------------
# per-scenario context


class Ctx(harness.BaseCtx):
    def __init__(self, tmp):
        super().__init__(tmp)
        self.env = child_env()
        # LeakSanitizer cannot run under ptrace: a sanitized binary is traced without it
        asan = ":".join(x for x in [self.env.get("ASAN_OPTIONS", ""), "detect_leaks=0"] if x)
        # strace numbers when= per thread: one thread (--threads 1) makes "call N" one call.
        self.traced_env = child_env({"ASAN_OPTIONS": asan, "CKPT_THREADS": "1"})
        self.details = ""

    def pass_details(self, seconds):
        return f"{seconds:.1f}s" + (f", {self.details}" if self.details else "")

    def cmd(self, root, *args, json_out=False, lock_timeout=60):
        return ([BIN, "--lock-timeout", str(lock_timeout)] + (["--json"] if json_out else [])
                + ["-C", str(root)] + [str(a) for a in args])

    def run(self, root, *args, code=None, what="", json_out=False, env=None):
        return harness.execute(self.cmd(root, *args, json_out=json_out), cwd=str(self.tmp),
                               env=env or self.env, timeout=DEFAULT_TIMEOUT, code=code,
                               what=what or " ".join(str(a) for a in args), show_cwd=False)

    def jrun(self, root, *args, **kw):
        return self.run(root, *args, json_out=True, **kw)


# --------------------------------------------------------------------------
# the files of a step and the writers that save them


class Pool:
    """Random bytes that source files are cut from (cheaper than os.urandom for every file)."""

    def __init__(self, rng, size=(4 << 20) + (64 << 10)):
        self.data = rng.randbytes(size)

    def make(self, rng, path, size, tag):
        """Write a file of size bytes: a unique tag, then a random slice of the pool. Returns its sha256."""
        head = hashlib.sha256(tag.encode()).digest()
        off = rng.randrange(0, len(self.data) - size + 1) if size < len(self.data) else 0
        data = (head + self.data[off:off + size])[:size]
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return hashlib.sha256(data).hexdigest()


class Writer:
    """Shard `index` of `count` of one step: stored path -> source path; expected: stored path ->
    (size, sha256, shard)."""

    def __init__(self, step, index, count, group, files, expected, env_shard=False):
        self.step, self.index, self.count, self.group = step, index, count, group
        self.files = files
        self.expected = expected
        self.env_shard = env_shard  # --shard env with RANK/WORLD_SIZE, else --shard I/N

    def args(self):
        return (["save", "--step", self.step, "--shard", "env" if self.env_shard else f"{self.index}/{self.count}",
                 "--group", self.group] + [f"{rel}={src}" for rel, src in sorted(self.files.items())])

    def env(self, base):
        e = dict(base)
        if self.env_shard:
            e["RANK"], e["WORLD_SIZE"] = str(self.index), str(self.count)
        return e


def make_writers(pool, rng, src_dir, step, count, group, tag, max_files=3, sizes=None, env_shard_prob=0.3):
    """count writers of one step, each with 1..max_files files of random size under src_dir; the stored
    paths of different shards are disjoint, some share a directory (optim/)."""
    writers = []
    for i in range(count):
        files, expected = {}, {}
        for j in range(rng.randint(1, max_files)):
            if sizes is not None:
                size = sizes(rng)
            else:
                size = rng.choices([0, rng.randint(1, 4096), rng.randint(4096, 1 << 20), rng.randint(1 << 20, 4 << 20)],
                                   weights=[4, 20, 40, 36])[0]
            rel = rng.choice([f"model-{i:05d}-of-{count:05d}.part{j}.safetensors", f"optim/rank{i}/state-{j}.pt",
                              f"rank{i}/rng-{j}.bin"])
            src = pathlib.Path(src_dir) / f"w{i}" / f"f{j}"
            files[rel] = src
            expected[rel] = (size, pool.make(rng, src, size, f"{tag}/{i}/{j}"), i)
        writers.append(Writer(step, i, count, group, files, expected, env_shard=rng.random() < env_shard_prob))
    return writers


def expected_of(writers):
    out = {}
    for w in writers:
        out.update(w.expected)
    return out


def reap(popens):
    """SIGKILL and wait for those still running (after a failure)."""
    for p in popens:
        if p.poll() is None:
            p.kill()
            p.wait()


def finish(p, cmd, note=""):
    out, err = p.communicate(timeout=DEFAULT_TIMEOUT)
    return Result(cmd, p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), note=note)


def report_of(res, w, what):
    """The --json report of a save that exited 0, checked against its writer."""
    doc = res.json()
    sh = doc.get("shards")
    check(isinstance(sh, dict), f'{what}: the report has no "shards" object', res)
    expect_eq((sh.get("count"), sh.get("group")), (w.count, w.group), f"{what}: shards.count, shards.group", res)
    present, missing = sh.get("present"), sh.get("missing")
    check(isinstance(present, list) and isinstance(missing, list)
          and sorted(present + missing) == list(range(w.count)) and not set(present) & set(missing),
          f"{what}: shards.present and shards.missing must split 0..{w.count - 1}", res)
    check(w.index in present, f"{what}: the writer's own shard {w.index} is not in shards.present", res)
    check(isinstance(doc.get("committed"), bool) and isinstance(doc.get("existing"), bool),
          f'{what}: "committed" and "existing" must be booleans', res)
    check(not (doc["committed"] and doc["existing"]), f'{what}: "committed" and "existing" both true', res)
    if doc["committed"]:
        expect_eq(missing, [], f"{what}: shards.missing of the committing writer", res)
        check(isinstance(doc.get("commit_seq"), int), f"{what}: the committing writer reports no commit_seq", res)
    expect_eq(doc.get("name"), name(w.step), f"{what}: name", res)
    return doc


# --------------------------------------------------------------------------
# what a checkpoint of a sharded step must be


def tree_sizes(d):
    """{rel: size} of the regular files under d; anything else is a Fail."""
    out = {}
    for k, v in snapshot_sizes(d).items():
        check(v is not None, f"{d}/{k} is neither a regular file nor a directory")
        out[k] = v
    return out


def snapshot_sizes(d):
    out = {}
    d = pathlib.Path(d)
    for dirpath, dirnames, filenames in os.walk(d):
        for n in filenames + [x for x in dirnames if os.path.islink(os.path.join(dirpath, x))]:
            p = pathlib.Path(dirpath) / n
            st = os.lstat(p)
            out[p.relative_to(d).as_posix()] = st.st_size if p.is_file() and not p.is_symlink() else None
    return out


def quick_check(root, nm, step, expected, count, what):
    """A visible checkpoint of a sharded step, without reading its files: _checkpoint.json lists exactly
    the expected files of every shard, and the directory holds exactly those, with their sizes.
    Returns its identity (commit_seq, created)."""
    d = pathlib.Path(root) / nm
    try:
        doc = load_json(d / "_checkpoint.json")
    except (OSError, ValueError) as e:
        raise Fail(f"{what}: {nm} is visible without a valid _checkpoint.json ({e}); "
                   f"present: {sorted(snapshot_sizes(d)) if d.is_dir() else 'not a directory'}")
    check(isinstance(doc, dict), f"{what}: {nm}/_checkpoint.json is not an object")
    expect_eq((doc.get("name"), doc.get("step"), doc.get("shards")), (nm, step, count),
              f"{what}: {nm}/_checkpoint.json name, step, shards")
    listed = {f.get("path"): (f.get("size"), f.get("sha256"), f.get("shard")) for f in doc.get("files", [])}
    check(len(listed) == len(doc.get("files", [])), f"{what}: {nm}/_checkpoint.json lists a path twice")
    if listed != expected:
        diff = sorted(k for k in set(listed) | set(expected) if listed.get(k) != expected.get(k))
        raise Fail(f"{what}: {nm}/_checkpoint.json does not list exactly the files of the {count} shards; "
                   f"differing paths: " + ", ".join(f"{k}: listed {listed.get(k)}, expected {expected.get(k)}"
                                                    for k in diff[:8]))
    on_disk = tree_sizes(d)
    want = {k: v[0] for k, v in expected.items()}
    got = {k: v for k, v in on_disk.items() if k not in RESERVED}
    check(got == want, f"{what}: the files in {nm} are not the {len(want)} expected ones (path -> size): "
          f"missing {sorted(set(want) - set(got))[:8]}, extra {sorted(set(got) - set(want))[:8]}, "
          f"size differs {[k for k in set(got) & set(want) if got[k] != want[k]][:8]}")
    check(all(r in on_disk for r in RESERVED), f"{what}: {nm} lacks _checkpoint.json or SHA256SUMS")
    return (doc.get("commit_seq"), doc.get("created"))


def full_check(c, root, nm, step, expected, count, what):
    """quick_check, then the content: every file's sha256 against the source, `sha256sum -c SHA256SUMS`,
    and `ckpt verify`. Returns the identity."""
    ident = quick_check(root, nm, step, expected, count, what)
    d = pathlib.Path(root) / nm
    for rel, (_size, digest, _shard) in expected.items():
        expect_eq(harness.sha256_file(d / rel), digest, f"{what}: sha256 of {nm}/{rel} vs its source")
    sums = {}
    for line in (d / "SHA256SUMS").read_text().splitlines():
        h, _, rel = line.partition("  ")
        sums[rel] = h
    expect_eq(sums, {k: v[1] for k, v in expected.items()}, f"{what}: {nm}/SHA256SUMS (path -> sha256)")
    res = harness.execute(["sha256sum", "--quiet", "--strict", "-c", "SHA256SUMS"], cwd=str(d), env=c.env,
                          timeout=DEFAULT_TIMEOUT)
    expect_rc(res, 0, f"{what}: sha256sum -c SHA256SUMS in {nm}")
    res = c.run(root, "verify", nm)
    expect_rc(res, 0, f"{what}: ckpt verify {nm}")
    return ident


def pending_of(c, root, what):
    """`info --json`: (its "pending" list, its checkpoint names)."""
    res = c.jrun(root, "info", code=0, what=f"{what}: info --json")
    doc = res.json()
    pend = doc.get("pending")
    check(isinstance(pend, list), f'{what}: info --json has no "pending" list', res)
    return pend, [cp.get("name") for cp in doc.get("checkpoints", [])], res


def last_is_stale(c, root, nm, what):
    """`load latest` must name nm (the newest by commit_seq, whatever ROOT/last says); True when ROOT/last
    does not name it (absent or stale: a committer killed between its commit and its marker update)."""
    res = c.jrun(root, "load", "latest", code=0, what=f"{what}: load latest --json")
    expect_eq(res.json().get("name"), nm, f"{what}: the checkpoint `load latest` names", res)
    p = pathlib.Path(root) / "last"
    return not p.exists() or p.read_text() != nm + "\n"


def expect_clean_after_prune(c, root, newest, what):
    """prune --keep-last 5 leaves nothing in .ckpt/staging, pending, trash, and brings `last` up to date."""
    res = c.jrun(root, "prune", "--keep-last", 5, code=0, what=f"{what}: prune --keep-last 5")
    res.json()
    for sub in ("staging", "pending", "trash"):
        expect_eq(private_entries(root, sub), [], f"{what}: entries left in ROOT/.ckpt/{sub} after prune", res)
    expect_eq((pathlib.Path(root) / "last").read_text(), newest + "\n", f"{what}: ROOT/last after prune", res)
    c.run(root, "verify", "--strict", code=0, what=f"{what}: verify --strict after prune")


# --------------------------------------------------------------------------
# the reader loop: what anyone may see while writers run


class Reader(threading.Thread):
    """Looks at the root until stopped: each visible step-* directory must be one of `allowed` (name ->
    (step, expected, count)) and complete; `ckpt info --json` must list only those, and pending entries
    that make sense; `ckpt verify` must pass. Records each checkpoint's identity (commit_seq, created):
    a step committed twice, or a checkpoint that goes away, is an error."""

    def __init__(self, c, root, allowed, group, pending_steps, verify_every=2):
        super().__init__(daemon=True)
        self.c, self.root, self.allowed, self.group = c, pathlib.Path(root), allowed, group
        self.pending_steps = pending_steps  # names that may be listed as pending
        self.verify_every = verify_every
        self.stop_event = threading.Event()
        self.errors = []
        self.idents = {}  # name -> set of identities seen
        self.loops = self.infos = self.verifies = 0

    def stop(self):
        self.stop_event.set()
        self.join(timeout=DEFAULT_TIMEOUT)

    def run(self):
        while not self.stop_event.is_set() and len(self.errors) < 3:
            try:
                self.once()
            except Fail as e:
                self.errors.append(str(e))
            except Exception as e:  # noqa: BLE001
                self.errors.append(f"reader error: {e!r}")
            self.stop_event.wait(0.01)

    def seen(self, nm, ident):
        ids = self.idents.setdefault(nm, set())
        ids.add(ident)
        check(len(ids) == 1, f"reader: {nm} was seen with two identities (commit_seq, created): {sorted(ids)}: "
              f"committed twice")

    def once(self):
        if not (self.root / ".ckpt").is_dir():
            return
        self.loops += 1
        visible = [n for n in os.listdir(self.root) if n.startswith("step-")]
        for n in visible:
            check(n in self.allowed, f"reader: unexpected {n} in the root (allowed: {sorted(self.allowed)})")
            step, expected, count = self.allowed[n]
            self.seen(n, quick_check(self.root, n, step, expected, count, "reader"))
        for n in self.idents:
            check(n in visible, f"reader: {n} was visible and is gone")
        res = self.c.jrun(self.root, "info")
        self.infos += 1
        expect_rc(res, 0, "reader: info --json")
        doc = res.json()
        for cp in doc.get("checkpoints", []):
            check(cp.get("name") in self.allowed, f"reader: info lists {cp.get('name')}", res)
        for p in doc.get("pending", []):
            check(p.get("name") in self.pending_steps, f"reader: info lists {p.get('name')} as pending", res)
            sh = p.get("shards") or {}
            present, missing = sh.get("present"), sh.get("missing")
            check(sh.get("group") == self.group and isinstance(present, list) and isinstance(missing, list)
                  and sorted(present + missing) == list(range(sh.get("count") or 0)),
                  "reader: a pending entry with a wrong group or a present/missing that do not split 0..N-1", res)
            check(isinstance(p.get("updated"), str) and p.get("step") == int(p["name"][5:]),
                  "reader: a pending entry without step or updated", res)
        if self.loops % self.verify_every == 0:
            res = self.c.jrun(self.root, "verify")
            self.verifies += 1
            expect_rc(res, 0, "reader: verify")
            check(res.json().get("ok") is True, 'reader: verify --json says "ok": false', res)


# --------------------------------------------------------------------------
# shard_kills_random


def merge_dirs(root, nm):
    """The committer's merge directory in .ckpt/pending/STEP ("merge", or "merge-ID" named after the set)."""
    return [n for n in private_entries(root, f"pending/{nm}") if n == "merge" or n.startswith("merge-")]


def lock_holders(root):
    """The pids that hold a WRITE flock on ROOT/.ckpt/lock (from /proc/locks)."""
    try:
        st = os.stat(pathlib.Path(root) / ".ckpt" / "lock")
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return set()
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    out = set()
    for line in lines:
        parts = line.split()
        if "->" in parts:
            continue  # a waiter
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[3] == "WRITE" and parts[5] == dev:
            out.add(int(parts[4]))
    return out


class Tally:
    def __init__(self):
        self.runs = 0
        self.modes = {}
        self.writers = 0
        self.killed = 0
        self.kill_noop = 0  # the process had exited before its SIGKILL
        self.mid_staging = 0  # killed before its shard was recorded, its staging directory left
        self.before_staging = 0  # killed before it made a staging directory
        self.after_record = 0  # killed after its shard was recorded (not as the committer mid-commit)
        self.committer = {"set complete, no merge/": 0, "merge/ in progress": 0, "after the commit rename": 0}
        self.commit_mode_missed = 0  # commit-mode runs whose commit ended before the kill landed
        self.not_committed_after_kills = 0
        self.reruns = 0
        self.parallel_reruns = 0
        self.reader = [0, 0]
        self.stale_last = 0  # runs whose ROOT/last did not name the step after the reruns (prune fixed it)

    def committer_runs(self):
        return sum(self.committer.values())

    def line(self):
        modes = ", ".join(f"{k} {v}" for k, v in sorted(self.modes.items()))
        committer = ", ".join(f"{k}: {v}" for k, v in self.committer.items())
        return (f"runs {self.runs} ({modes}); writers {self.writers}, SIGKILLed {self.killed} (+{self.kill_noop} "
                f"already done); committer killed mid-commit in {self.committer_runs()} runs ({committer}; "
                f"commit-mode kills that came too late: {self.commit_mode_missed}); writers killed mid-staging "
                f"{self.mid_staging}, before staging {self.before_staging}, after recording {self.after_record}; "
                f"runs left uncommitted by the kills {self.not_committed_after_kills}; reruns {self.reruns} "
                f"({self.parallel_reruns} runs side by side); ROOT/last stale after the reruns {self.stale_last}; "
                f"reader: {self.reader[0]} info, {self.reader[1]} verify")


def classify_killed(root, step, killed, committer_pid, tally):
    """Where each killed writer was when it died, from what it left behind."""
    nm = name(step)
    staging = {}
    for n in private_entries(root, "staging"):
        m = STAGING_RE.match(n)
        if m:
            staging.setdefault(int(m.group(2)), set()).add("lock" if m.group(3) else "dir")
    recorded_pids = set()
    for n in private_entries(root, f"pending/{nm}"):
        m = PENDING_DATA_RE.match(n)
        if m:
            recorded_pids.add(int(m.group(2)))
    committed = (pathlib.Path(root) / nm).is_dir()
    for pid in killed:
        if pid == committer_pid:
            continue
        if "dir" in staging.get(pid, set()):
            tally.mid_staging += 1
        elif pid in recorded_pids or committed:
            tally.after_record += 1
        else:
            tally.before_staging += 1


def one_random_run(c, rng, pool, k, tally):
    run_dir = c.tmp / f"run-{k}"
    root = run_dir / "root"
    step = rng.randrange(1, 1 << 40)
    nm = name(step)
    count = rng.randint(2, 8)
    group = f"run-{k}.attempt-{rng.randrange(1000)}"
    writers = make_writers(pool, rng, run_dir / "src", step, count, group, f"run-{k}")
    expected = expected_of(writers)
    mode = rng.choices(["delays", "staging", "commit", "commit_all"], weights=[35, 25, 25, 15])[0]
    tally.runs += 1
    tally.modes[mode] = tally.modes.get(mode, 0) + 1
    tally.writers += count
    where = f"run {k} (step {step}, {count} writers, kill mode {mode})"

    reader = Reader(c, root, {nm: (step, expected, count)}, group, {nm})
    reader.start()
    procs, ps = [], []
    try:
        for w in writers:
            cmd = c.cmd(root, *w.args(), json_out=True)
            procs.append((w, cmd, subprocess.Popen(cmd, cwd=str(c.tmp), env=w.env(c.env), stdin=subprocess.DEVNULL,
                                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)))
        t0 = time.monotonic()
        by_pid = {p.pid: (w, p) for w, _cmd, p in procs}
        killed_pids, committer_pid = set(), None
        notes = {}

        def kill(w, p, why):
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                killed_pids.add(p.pid)
                notes[w.index] = f"{why}, {(time.monotonic() - t0) * 1000:.1f} ms after start"

        if mode == "delays":
            victims = rng.sample(range(count), rng.randint(1, count))
            due = sorted((rng.uniform(0, 0.050), i) for i in victims)
            for at, i in due:
                time.sleep(max(0.0, t0 + at - time.monotonic()))
                w, _cmd, p = procs[i]
                kill(w, p, f"at {at * 1000:.1f} ms")
        elif mode == "staging":
            # each victim once it is copying: its staging directory appeared, then 0-30 ms more
            victims = {procs[i][2].pid: procs[i] for i in rng.sample(range(count), rng.randint(1, count))}
            due = {}
            deadline = time.monotonic() + DEFAULT_TIMEOUT
            while victims and time.monotonic() < deadline:
                now = time.monotonic()
                for pid in [pid for pid, at in due.items() if at <= now]:
                    w, _cmd, p = victims.pop(pid)
                    del due[pid]
                    kill(w, p, "mid-staging")
                for pid in [pid for pid, (_w, _c, p) in victims.items() if pid not in due and p.poll() is not None]:
                    del victims[pid]
                for n in private_entries(root, "staging"):
                    m = STAGING_RE.match(n)
                    if m and not m.group(3) and int(m.group(2)) in victims and int(m.group(2)) not in due:
                        due[int(m.group(2))] = now + rng.uniform(0, 0.030)
                time.sleep(0.0005)
        else:
            deadline = time.monotonic() + DEFAULT_TIMEOUT
            while any(p.poll() is None for _w, _c, p in procs) and time.monotonic() < deadline:
                if merge_dirs(root, nm):
                    break
                time.sleep(0.0005)
            if merge_dirs(root, nm):
                time.sleep(rng.choice([0.0, rng.uniform(0, 0.008)]))
                holders = [pid for pid in lock_holders(root) if pid in by_pid]
                for pid in holders:
                    committer_pid = pid
                    w, p = by_pid[pid]
                    kill(w, p, "the lock holder, merge/ seen")
                others = [i for i, (w, _c, p) in enumerate(procs) if p.pid not in holders]
                if mode == "commit_all":
                    chosen = others
                else:
                    chosen = rng.sample(others, rng.randint(0, len(others)))
                for i in chosen:
                    w, _cmd, p = procs[i]
                    kill(w, p, "merge/ seen")
                if not holders:
                    tally.commit_mode_missed += 1
            else:
                tally.commit_mode_missed += 1

        results = {}
        for w, cmd, p in procs:
            results[w.index] = finish(p, cmd, note=f"{where}; writer {w.index}: {notes.get(w.index, 'not killed')}")
        real_kills = {pid for pid in killed_pids if by_pid[pid][1].returncode == -signal.SIGKILL}
        tally.killed += len(real_kills)
        tally.kill_noop += len(killed_pids) - len(real_kills)

        # the survivors: exit 0 with a report that says where the set stands
        reported_commits = []
        staged_ok = set()
        for w in writers:
            res = results[w.index]
            if res.rc == -signal.SIGKILL:
                continue
            expect_rc(res, 0, f"{where}: writer {w.index}, not killed")
            doc = report_of(res, w, f"{where}: writer {w.index}")
            check(not doc["existing"], f"{where}: writer {w.index} of a fresh step says existing", res)
            staged_ok.add(w.index)
            if doc["committed"]:
                reported_commits.append((w.index, doc["commit_seq"]))
        check(len(reported_commits) <= 1, f"{where}: more than one writer says it committed: {reported_commits}")

        # after the kills: the step is absent or complete
        visible = nm in step_dirs(root)
        check(set(step_dirs(root)) <= {nm}, f"{where}: unexpected directories in the root: {step_dirs(root)}")
        ident = full_check(c, root, nm, step, expected, count, f"{where}: after the kills") if visible else None
        if reported_commits:
            check(visible, f"{where}: writer {reported_commits[0][0]} said committed, {nm} is not there")
            expect_eq(ident[0], reported_commits[0][1], f"{where}: commit_seq of {nm} vs the committer's report")
        if root.exists():
            res = c.run(root, "verify")
            expect_rc(res, 0, f"{where}: verify after the kills")
            pend, _cps, info = pending_of(c, root, f"{where}: after the kills")
        else:
            # every writer died before it created the root
            pend, info = [], None
        merge_left = bool(merge_dirs(root, nm))
        if visible:
            expect_eq(pend, [], f"{where}: pending steps once {nm} is committed", info)
            if not reported_commits:
                tally.committer["after the commit rename"] += 1
        else:
            tally.not_committed_after_kills += 1
            if (root / ".ckpt" / "pending" / nm / "set.json").exists():
                check(len(pend) == 1 and pend[0].get("name") == nm, f"{where}: {nm} is not listed as pending", info)
                p0 = pend[0]
                sh0 = p0.get("shards") or {}
                expect_eq((p0.get("step"), sh0.get("group"), sh0.get("count")), (step, group, count),
                          f"{where}: the pending entry's step, shards.group, shards.count", info)
                check(staged_ok <= set(sh0.get("present", [])),
                      f"{where}: writers {sorted(staged_ok)} reported their shard staged, pending says present "
                      f"{sh0.get('present')}", info)
                if not sh0.get("missing"):
                    tally.committer["merge/ in progress" if merge_left else "set complete, no merge/"] += 1
            else:
                check(not staged_ok, f"{where}: writers {sorted(staged_ok)} reported success, no pending set")
                expect_eq(pend, [], f"{where}: pending steps with no set.json", info)
        classify_killed(root, step, real_kills, committer_pid, tally)

        # rerun every writer that was killed or did not report success, in sequence or side by side
        again = [w for w in writers if w.index not in staged_ok]
        tally.reruns += len(again)
        side_by_side = len(again) > 1 and rng.random() < 0.5
        tally.parallel_reruns += side_by_side
        rerun_results = {}
        if side_by_side:
            ps = [(w, c.cmd(root, *w.args(), json_out=True)) for w in again]
            ps = [(w, cmd, subprocess.Popen(cmd, cwd=str(c.tmp), env=w.env(c.env), stdin=subprocess.DEVNULL,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)) for w, cmd in ps]
            for w, cmd, p in ps:
                rerun_results[w.index] = finish(p, cmd, note=f"{where}: rerun of writer {w.index} (side by side)")
        else:
            for w in again:
                rerun_results[w.index] = harness.execute(c.cmd(root, *w.args(), json_out=True), cwd=str(c.tmp),
                                                         env=w.env(c.env), timeout=DEFAULT_TIMEOUT, show_cwd=False)
        rerun_commits = []
        for w in again:
            res = rerun_results[w.index]
            expect_rc(res, 0, f"{where}: rerun of writer {w.index}")
            doc = report_of(res, w, f"{where}: rerun of writer {w.index}")
            if visible:
                check(doc["existing"] and not doc["committed"], f'{where}: the rerun of writer {w.index} of a '
                      f'committed step must say "existing": true, "committed": false', res)
            if doc["committed"]:
                rerun_commits.append((w.index, doc["commit_seq"]))
        if visible:
            expect_eq(rerun_commits, [], f"{where}: reruns that say they committed an already committed step")
        else:
            check(len(rerun_commits) == 1, f"{where}: {nm} was not committed after the kills, so exactly one "
                  f"rerun must commit it; committed: {rerun_commits}")
        commits = len(reported_commits) + len(rerun_commits) + (1 if visible and not reported_commits else 0)
        expect_eq(commits, 1, f"{where}: commits of {nm} over the whole run")
    finally:
        reader.stop()
        reap([p for _w, _c, p in procs + ps])
    tally.reader[0] += reader.infos
    tally.reader[1] += reader.verifies
    check(not reader.errors, f"{where}: the reader saw:\n" + "\n".join(reader.errors))

    # the end: committed once with the sources' content, nothing pending, nothing left after prune
    final = full_check(c, root, nm, step, expected, count, f"{where}: at the end")
    if ident is not None:
        expect_eq(final, ident, f"{where}: identity (commit_seq, created) of {nm} after the reruns")
    if rerun_commits:
        expect_eq(final[0], rerun_commits[0][1], f"{where}: commit_seq of {nm} vs the committing rerun's report")
    seen = reader.idents.get(nm, set())
    check(seen <= {final}, f"{where}: the reader saw {nm} as {sorted(seen)}, it ends as {final}")
    pend, cps, info = pending_of(c, root, f"{where}: at the end")
    expect_eq(pend, [], f"{where}: pending steps at the end", info)
    expect_eq(cps, [nm], f"{where}: checkpoints at the end", info)
    stale = last_is_stale(c, root, nm, f"{where}: at the end")
    check(not stale, f"{where}: ROOT/last names {nm} once the killed writers ran again")
    tally.stale_last += stale
    expect_clean_after_prune(c, root, nm, where)
    expect_eq(step_dirs(root), [nm], f"{where}: checkpoints after prune")
    shutil.rmtree(run_dir, ignore_errors=True)


@scenario
def shard_kills_random(c):
    """N writers of one step, a random subset SIGKILLed (the committer too, mid-commit), then reruns."""
    runs = int(os.environ.get("CKPT_SOAK_RUNS") or 100)
    seed = int(os.environ.get("CKPT_SEED") or random.randrange(1 << 31))
    rng = random.Random(seed)
    print(f"shard_kills_random: seed {seed} (CKPT_SEED={seed} repeats the plan; the timing differs), runs {runs}")
    pool = Pool(rng)
    tally = Tally()
    t0 = time.monotonic()
    for k in range(runs):
        one_random_run(c, rng, pool, k, tally)
        if (k + 1) % 25 == 0 and k + 1 < runs:
            print(f"  {k + 1} runs, {time.monotonic() - t0:.0f}s")
    print("  " + tally.line())
    if runs >= 50:
        # the point of the scenario: both kinds of kill happened (the schedule makes each likely every few runs)
        check(tally.committer_runs() > 0, f"no run killed a committer mid-commit: {tally.line()}")
        check(tally.mid_staging > 0, f"no writer was killed mid-staging: {tally.line()}")
    c.details = (f"{tally.runs} runs, committer killed mid-commit in {tally.committer_runs()}, "
                 f"writers killed mid-staging {tally.mid_staging}")


# --------------------------------------------------------------------------
# shard_kills_retry_during_commit


OPENS = {"open", "openat", "openat2", "creat"}
WRITES = {"write", "pwrite64", "writev", "pwritev", "pwritev2", "sendfile", "splice"}
ALWAYS = {"rename", "renameat", "renameat2", "link", "linkat", "unlink", "unlinkat", "mkdir", "mkdirat", "rmdir",
          "fsync", "fdatasync", "ftruncate", "truncate", "copy_file_range", "fallocate", "symlink", "symlinkat",
          "mknod", "mknodat", "sync_file_range", "syncfs", "chmod", "fchmod", "fchmodat", "chown", "fchown",
          "lchown", "fchownat", "utimes", "futimesat", "utimensat", "setxattr", "lsetxattr", "fsetxattr",
          "removexattr", "lremovexattr", "fremovexattr"}
TRACED = sorted(OPENS | WRITES | ALWAYS | {"ioctl", "flock"})
LINE_RE = re.compile(r"^(\d+) +([a-z0-9_]+)\((.*)\) += (.*)$")
QUOTED_RE = re.compile(r'"(?:[^"\\]|\\.)*"(?:\.\.\.)?')
OPEN_WRITE_RE = re.compile(r"\bO_(?:WRONLY|RDWR|CREAT|TRUNC)\b")
HEX_RE = re.compile(r"[0-9a-f]{8,}")


class Call:
    def __init__(self, pid, sc, args, result):
        self.pid, self.sc, self.args, self.result = pid, sc, args, result

    def changes_fs(self):
        if self.sc in ALWAYS:
            return True
        if self.sc in OPENS:
            return self.sc == "creat" or OPEN_WRITE_RE.search(QUOTED_RE.sub('""', self.args)) is not None
        if self.sc in WRITES:
            fd = self.args.split(",", 1)[0]
            if fd.split("<", 1)[0].strip() in ("1", "2"):
                return False
            return "<" not in fd or fd.split("<", 1)[1].startswith("/")
        if self.sc == "ioctl":
            return "FICLONE" in self.args
        return False

    def shape(self, slot):
        """The call without what differs from run to run: the slot, the pid, random hex, what a write writes."""
        args = self.args.replace(str(slot), "SLOT")
        args = re.sub(rf"\b{self.pid}\b", "PID", args)
        args = HEX_RE.sub("H", args)
        if self.sc in WRITES:
            args = args.split(",", 1)[0]
        return f"{self.sc}({args})"


def parse_trace(path):
    """(calls, killed pids, lines that tell of more than one traced thread)."""
    calls, killed, interleaved = [], set(), []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.endswith("+++ killed by SIGKILL +++"):
                killed.add(int(line.split()[0]))
                continue
            if "<unfinished ...>" in line or " resumed>" in line:
                interleaved.append(line)
                continue
            m = LINE_RE.match(line)
            if m:
                calls.append(Call(int(m.group(1)), m.group(2), m.group(3), m.group(4)))
    return calls, killed, interleaved


def only_points():
    raw = os.environ.get("CKPT_KILL_ONLY", "").strip()
    if not raw:
        return None
    out = set()
    for item in raw.split(","):
        sc, _, n = item.strip().partition(":")
        if not n.isdigit():
            raise Fail(f"CKPT_KILL_ONLY: {item!r} is not NAME:N")
        out.add((sc, int(n)))
    return out


@scenario
def shard_kills_retry_during_commit(c):
    """The writer that completes a 3-shard set, SIGKILLed (strace) at each call it makes under the root lock."""
    check(shutil.which(STRACE) is not None or os.access(STRACE, os.X_OK),
          f"strace not found ({STRACE}); this scenario needs it (set STRACE)")
    rng = random.Random(7)
    pool = Pool(rng, size=64 << 10)
    base, slot = c.tmp / "base", c.tmp / "slot"
    base_root, root = base / "root", slot / "root"
    count, group = 3, "job-42:0"
    sizes = lambda r: r.randint(1, 20000)  # noqa: E731
    # a committed step first (its own three shards), then step 4's shards 0 and 1 recorded
    prior = make_writers(pool, rng, c.tmp / "src3", 3, count, group, "step-3", max_files=2, sizes=sizes,
                         env_shard_prob=0)
    for w in prior:
        c.jrun(base_root, *w.args(), "--metric", "val_loss=1.0", "--best-key", "val_loss", code=0,
               what=f"save step 3, shard {w.index}")
    writers = make_writers(pool, rng, c.tmp / "src4", 4, count, group, "step-4", max_files=1, sizes=sizes,
                           env_shard_prob=0)
    # the shard that completes the set stores two files, one in a directory of its own
    last = writers[2]
    for j, rel in enumerate(("rank2/a/state.pt", "rank2/rng.bin")):
        src = c.tmp / "src4" / "w2" / f"g{j}"
        last.files[rel] = src
        last.expected[rel] = (4000 + j, pool.make(rng, src, 4000 + j, f"step-4/2/g{j}"), 2)
    for w in writers[:2]:
        doc = c.jrun(base_root, *w.args(), code=0, what=f"save step 4, shard {w.index}").json()
        check(not doc["committed"], "shard 0 or 1 of step 4 committed")
    expected4, expected3 = expected_of(writers), expected_of(prior)
    n3, n4 = name(3), name(4)
    snap3 = snapshot(base_root / n3)

    def fresh():
        shutil.rmtree(slot, ignore_errors=True)
        slot.mkdir()
        shutil.copytree(base_root, root, symlinks=True)

    # the reference trace: which calls shard 2 makes after it took the root lock
    fresh()
    trace = slot / "reference.trace"
    res = harness.execute([STRACE, "-f", "-qq", "-y", "-o", str(trace), "-e", "trace=" + ",".join(TRACED), BIN,
                           "--json", "-C", str(root), *last.args()], cwd=str(slot), env=c.traced_env,
                          timeout=DEFAULT_TIMEOUT, code=0, what="the traced shard 2")
    check(res.json().get("committed") is True, "the traced shard 2 did not commit", res)
    calls, _killed, interleaved = parse_trace(trace)
    pids = sorted({x.pid for x in calls})
    check(len(pids) == 1 and not interleaved, f"the traced save ran in {len(pids)} threads {pids}: strace numbers "
          f"when= per thread, so one numbering per call name does not apply", res)
    locked = [i for i, x in enumerate(calls) if x.sc == "flock" and x.args.split(",")[0].endswith("/.ckpt/lock>")
              and "LOCK_EX" in x.args and x.result.strip() == "0"]
    check(locked, "the reference trace shows no flock(LOCK_EX) on ROOT/.ckpt/lock", res)
    points, seen = [], {}
    for i, x in enumerate(calls):
        seen[x.sc] = seen.get(x.sc, 0) + 1
        if i > locked[0] and x.changes_fs():
            points.append((x.sc, seen[x.sc], x.shape(slot)))
    check(any(sc.startswith("rename") for sc, _n, _s in points), "no rename under the lock in the reference trace")
    only = only_points()
    if only is not None:
        unknown = only - {(sc, n) for sc, n, _s in points}
        check(not unknown, f"CKPT_KILL_ONLY names no kill point under the lock: {sorted(unknown)}")
        points = [p for p in points if (p[0], p[1]) in only]
    by_name = {}
    for sc, _n, _s in points:
        by_name[sc] = by_name.get(sc, 0) + 1
    print(f"  {len(points)} kill points under the root lock: "
          + ", ".join(f"{k} {v}" for k, v in sorted(by_name.items())))

    outcomes = {"not recorded": 0, "recorded, pending": 0, "committed": 0}
    stale_points = []  # ROOT/last did not name step 4 after the rerun (the next prune fixed it)
    for k, (sc, n, shape) in enumerate(points):
        label = f"kill at {sc}:{n} {shape}"
        try:
            outcome, stale = kill_point(c, root, slot, sc, n, shape, k, writers, expected3, expected4, snap3, group)
            outcomes[outcome] += 1
            if stale:
                stale_points.append(f"{sc}:{n}")
        except Fail as e:
            c.failures.append(f"  {label}\n" + harness.indent(str(e)))
            keep = c.tmp / "failed" / f"{sc}-{n}"
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(slot, keep, symlinks=True)
    print(f"  after the kill: shard 2 not recorded {outcomes['not recorded']}, recorded with {n4} pending "
          f"{outcomes['recorded, pending']}, {n4} committed {outcomes['committed']}; ROOT/last stale after the "
          f"rerun (\"existing\": true leaves the markers as they are) at {len(stale_points)}: {' '.join(stale_points)}")
    c.details = f"{len(points)} kill points"
    check(outcomes["recorded, pending"] > 0 and outcomes["committed"] > 0,
          f"the kill points missed the commit: {outcomes}")


def kill_point(c, root, slot, sc, n, shape, k, writers, expected3, expected4, snap3, group):
    n3, n4 = name(3), name(4)
    last = writers[2]
    shutil.rmtree(slot, ignore_errors=True)
    slot.mkdir()
    shutil.copytree(c.tmp / "base" / "root", root, symlinks=True)
    trace = slot / "kill.trace"
    cmd = [STRACE, "-f", "-qq", "-y", "-o", str(trace), "-e", f"trace={sc}", "-e", f"inject={sc}:signal=KILL:when={n}",
           BIN, "--json", "-C", str(root), *last.args()]
    res = harness.execute(cmd, cwd=str(slot), env=c.traced_env, timeout=DEFAULT_TIMEOUT)
    calls, killed, _inter = parse_trace(trace)
    mine = [x for x in calls if x.sc == sc]
    check(killed and res.rc in (-9, 128 + 9) and len(mine) == n and mine[-1].result == "?",
          f"shard 2 was not killed at call {n} of {sc} (trace shows {len(mine)} such calls)", res)
    expect_eq(mine[-1].shape(slot), shape, "the killed call vs the reference trace's", res)

    # the state the kill left: step 3 untouched, step 4 absent (pending) or complete
    check(set(step_dirs(root)) <= {n3, n4}, f"unexpected directories in the root: {step_dirs(root)}")
    expect_eq(snapshot(root / n3), snap3, f"{n3} (committed before) after the kill")
    visible = n4 in step_dirs(root)
    ident = full_check(c, root, n4, 4, expected4, 3, "after the kill") if visible else None
    c.run(root, "verify", code=0, what="verify after the kill")
    pend, _cps, info = pending_of(c, root, "after the kill")
    if visible:
        expect_eq(pend, [], f"pending steps once {n4} is committed", info)
        outcome = "committed"
        again = writers[k % 3]
    else:
        check(len(pend) == 1, f"{n4} must stay pending after the kill", info)
        p = pend[0]
        sh = p.get("shards") or {}
        expect_eq((p.get("name"), sh.get("group"), sh.get("count")), (n4, group, 3), "the pending entry", info)
        check({0, 1} <= set(sh.get("present", [])), "shards 0 and 1 must stay recorded", info)
        recorded = 2 in sh["present"]
        outcome = "recorded, pending" if recorded else "not recorded"
        # once all three are recorded any one shard completes the set; else shard 2 must come again
        again = writers[k % 3] if recorded else last

    res = c.jrun(root, *again.args(), code=0, what=f"rerun of shard {again.index} after the kill")
    doc = report_of(res, again, f"rerun of shard {again.index}")
    if visible:
        check(doc["existing"] and not doc["committed"], f'the rerun of a shard of the committed {n4} must say '
              f'"existing": true, "committed": false', res)
    else:
        check(doc["committed"] and not doc["existing"], f"the rerun of shard {again.index} must commit {n4}", res)
    final = full_check(c, root, n4, 4, expected4, 3, f"after the rerun of shard {again.index}")
    if ident is not None:
        expect_eq(final, ident, f"identity (commit_seq, created) of {n4} after the rerun")
    else:
        expect_eq(final[0], doc["commit_seq"], f"commit_seq of {n4} vs the rerun's report")
    expect_eq(snapshot(root / n3), snap3, f"{n3} after the rerun")
    quick_check(root, n3, 3, expected3, 3, "after the rerun")
    pend, cps, info = pending_of(c, root, "after the rerun")
    expect_eq(pend, [], "pending steps after the rerun", info)
    expect_eq(sorted(cps), [n3, n4], "checkpoints after the rerun", info)
    stale = last_is_stale(c, root, n4, "after the rerun")
    check(not stale, f"ROOT/last names {n4} after the rerun (a rerun finishes the markers)")
    expect_clean_after_prune(c, root, n4, "after the rerun")
    return outcome, stale


# --------------------------------------------------------------------------
# shard_two_mount_namespaces


NS_HELPER = r'''
import json, os, subprocess, sys, time
cfg = json.load(open(sys.argv[1]))
def die(msg):
    print(msg, file=sys.stderr)
    sys.exit(3)
r = subprocess.run(["mount", "--bind", cfg["shared"], cfg["at"]], capture_output=True, text=True)
if r.returncode != 0:
    die(f"mount --bind {cfg['shared']} {cfg['at']} failed in the new mount namespace: {r.stderr.strip()}")
if os.listdir(cfg["other"]):
    die(f"{cfg['other']} (the other namespace's mount point) is not empty here: the namespaces are not apart")
if not os.path.isdir(os.path.join(cfg["at"], "marker")):
    die(f"{cfg['at']}/marker is missing: the bind mount does not show the shared directory")
def barrier(mine, go):
    open(mine, "w").close()
    deadline = time.monotonic() + 120
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            die(f"no {go} within 120s")
        time.sleep(0.002)
barrier(cfg["ready"], cfg["go"])
procs = []
for w in cfg["writers"]:
    env = dict(os.environ)
    env.update(w["env"])
    procs.append((w, subprocess.Popen(w["cmd"], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE)))
out = []
for w, p in procs:
    o, e = p.communicate()
    out.append({"index": w["index"], "pid": p.pid, "rc": p.returncode, "out": o.decode(), "err": e.decode(),
                "cmd": w["cmd"]})
# the checks through this namespace's path, once the writers of both namespaces are done
barrier(cfg["done"], cfg["go2"])
checks = []
for args in cfg["after"]:
    r = subprocess.run(args, capture_output=True, text=True)
    checks.append({"cmd": args, "rc": r.returncode, "out": r.stdout, "err": r.stderr})
json.dump({"writers": out, "checks": checks, "pid": os.getpid()}, open(cfg["results"], "w"))
'''


def start_namespace(c, cfg_path):
    cmd = [UNSHARE, "--mount", "--pid", "--fork", "--propagation", "private", sys.executable,
           str(c.tmp / "ns_helper.py"), str(cfg_path)]
    return cmd, subprocess.Popen(cmd, cwd=str(c.tmp), env=c.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)


@scenario
def shard_two_mount_namespaces(c):
    """16 writers of one step, half in each of two mount namespaces that see the root at different paths."""
    check(UNSHARE is not None, "unshare (util-linux) not found: this scenario cannot run two mount namespaces "
          "without it (it fails rather than passing untested)")
    check(os.geteuid() == 0, "this scenario needs root (mount --bind in a new mount namespace); it fails rather "
          "than passing untested")
    probe = harness.execute([UNSHARE, "--mount", "--pid", "--fork", "--propagation", "private", "true"],
                            cwd=str(c.tmp), env=c.env, timeout=DEFAULT_TIMEOUT)
    expect_rc(probe, 0, "unshare --mount --pid cannot make namespaces here (no CAP_SYS_ADMIN?); the scenario "
              "fails rather than passing untested")
    rounds = int(os.environ.get("CKPT_NS_ROUNDS") or 3)
    rng = random.Random(11)
    pool = Pool(rng, size=2 << 20)
    (c.tmp / "ns_helper.py").write_text(NS_HELPER)
    shared = c.tmp / "shared"  # the shared file system's directory; the root is shared/root
    (shared / "marker").mkdir(parents=True)
    mounts = {"A": c.tmp / "hostA", "B": c.tmp / "hostB"}
    for d in mounts.values():
        d.mkdir()
    root = shared / "root"
    count = 16
    allowed = {}
    overlaps = []
    committed_in = []  # the namespace of each round's committer
    for r in range(rounds):
        step = 100 * (r + 1)
        nm = name(step)
        group = f"slurm-{r}:0"
        writers = make_writers(pool, rng, c.tmp / f"src{r}", step, count, group, f"ns-{r}", max_files=2,
                               sizes=lambda x: x.randint(200_000, 1_500_000), env_shard_prob=0)
        expected = expected_of(writers)
        allowed[nm] = (step, expected, count)
        # shards alternate between the two namespaces; in one of them every writer takes --shard env
        env_side = "AB"[r % 2]
        procs = {}
        for side, other in (("A", "B"), ("B", "A")):
            at = mounts[side]
            mine = [w for w in writers if "AB"[w.index % 2] == side]
            for w in mine:
                w.env_shard = side == env_side
            cfg = {"shared": str(shared), "at": str(at), "other": str(mounts[other]),
                   "ready": str(c.tmp / f"ready-{r}-{side}"), "go": str(c.tmp / f"go-{r}"),
                   "done": str(c.tmp / f"done-{r}-{side}"), "go2": str(c.tmp / f"go2-{r}"),
                   "results": str(c.tmp / f"results-{r}-{side}.json"),
                   "writers": [{"index": w.index, "cmd": c.cmd(at / "root", *w.args(), json_out=True),
                                "env": w.env({})} for w in mine],
                   "after": [c.cmd(at / "root", "verify", nm, json_out=True),
                             c.cmd(at / "root", "info", json_out=True)]}
            cfg_path = c.tmp / f"ns-{r}-{side}.json"
            harness.write_json(cfg_path, cfg)
            procs[side] = (mine, cfg) + start_namespace(c, cfg_path)
        reader = Reader(c, root, dict(allowed), group, {nm})
        reader.start()
        try:
            def barrier(key, go, why):
                deadline = time.monotonic() + DEFAULT_TIMEOUT
                while not all(os.path.exists(procs[s][1][key]) for s in procs):
                    for s, (_m, _cfg, cmd, p) in procs.items():
                        if p.poll() is not None:
                            res = finish(p, cmd)
                            raise Fail(f"round {r}: namespace {s} ended before {why}\n{res.describe()}")
                    check(time.monotonic() < deadline, f"round {r}: the namespaces were not {key} in time")
                    time.sleep(0.005)
                (c.tmp / go).touch()

            barrier("ready", f"go-{r}", "it was ready (mount namespaces not usable here?)")
            barrier("done", f"go2-{r}", "its writers were done")
            pids = {}
            reports = []
            for s, (mine, cfg, cmd, p) in procs.items():
                res = finish(p, cmd, note=f"round {r}, namespace {s}")
                expect_rc(res, 0, f"round {r}: namespace {s}")
                out = load_json(cfg["results"])
                pids[s] = {w["pid"] for w in out["writers"]}
                for wr in out["writers"]:
                    w = writers[wr["index"]]
                    wres = Result(wr["cmd"], wr["rc"], wr["out"], wr["err"],
                                  note=f"round {r}, namespace {s}, at {mounts[s]}")
                    expect_rc(wres, 0, f"round {r}: writer {w.index} in namespace {s}")
                    reports.append((w, report_of(wres, w, f"round {r}: writer {w.index} in namespace {s}"), wres))
                for ch in out["checks"]:
                    cres = Result(ch["cmd"], ch["rc"], ch["out"], ch["err"], note=f"round {r}, in namespace {s}")
                    expect_rc(cres, 0, f"round {r}: {' '.join(ch['cmd'][-2:])} through {mounts[s]} in namespace {s}")
                    doc = cres.json()
                    if "pending" in doc:
                        expect_eq(doc["pending"], [], f"round {r}: pending through {mounts[s]}", cres)
                        expect_eq(sorted(cp.get("name") for cp in doc.get("checkpoints", [])), sorted(allowed),
                                  f"round {r}: checkpoints through {mounts[s]}", cres)
                    else:
                        check(doc.get("ok") is True, f"round {r}: verify through {mounts[s]} not ok", cres)
        finally:
            reader.stop()
            reap([p for _m, _cfg, _cmd, p in procs.values()])
        check(not reader.errors, f"round {r}: the reader saw:\n" + "\n".join(reader.errors))
        overlaps.append(len(pids["A"] & pids["B"]))
        commits = [(w.index, doc["commit_seq"]) for w, doc, _res in reports if doc["committed"]]
        expect_eq(len(reports), count, f"round {r}: writer reports")
        check(len(commits) == 1, f"round {r}: exactly one of the 16 writers must commit; committed: {commits}")
        committed_in.append("AB"[commits[0][0] % 2])
        check(not any(doc["existing"] for _w, doc, _res in reports), f"round {r}: a writer said existing")
        final = full_check(c, root, nm, step, expected, count, f"round {r}")
        expect_eq(final[0], commits[0][1], f"round {r}: commit_seq of {nm} vs the committer's report")
        check(reader.idents.get(nm, set()) <= {final}, f"round {r}: the reader saw {nm} as "
              f"{sorted(reader.idents.get(nm, set()))}")
        pend, cps, info = pending_of(c, root, f"round {r}")
        expect_eq(pend, [], f"round {r}: pending steps", info)
        expect_eq(sorted(cps), sorted(allowed), f"round {r}: checkpoints", info)
        expect_eq((root / "last").read_text(), nm + "\n", f"round {r}: ROOT/last")
        meta = load_json(root / nm / "_checkpoint.json")
        check(str(mounts["A"]) not in json.dumps(meta) and str(mounts["B"]) not in json.dumps(meta),
              f"round {r}: {nm}/_checkpoint.json names a namespace's mount path")
        for prev, (pstep, pexp, pcount) in allowed.items():
            quick_check(root, prev, pstep, pexp, pcount, f"round {r}: earlier checkpoint")
    expect_clean_after_prune(c, root, name(100 * rounds), "at the end")
    print(f"  {rounds} rounds of {count} writers; committed from namespace {' '.join(committed_in)}; writer pids "
          f"shared by the two namespaces per round: {overlaps}")
    c.details = f"{rounds} rounds of {count} writers"


if __name__ == "__main__":
    sys.exit(harness.main(sys.argv, __doc__, SCENARIOS, Ctx, "ckpt-shards", tmp_dir=TMP_DIR))
