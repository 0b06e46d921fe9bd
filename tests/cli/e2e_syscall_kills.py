#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""`ckpt save` killed at every system call that changes the file system, then
what the client does next (SPEC.md §2-§4, §7 save/verify/load/prune, §9).

Each scenario commits steps 1 and 2 from a work directory (model.pt,
optim/state.pt, rng.pt), writes new work files, and traces the next save
once under strace. Every call of that save that changes the file system is a
kill point: open/openat/creat for writing or creating, write/pwrite64/writev
to anything but stdout and stderr, every rename*, link*, unlink*, mkdir*,
rmdir, fsync, fdatasync, ftruncate, copy_file_range (and a few rarer ones:
fallocate, symlink*, fchmod*, utimensat, ...), and ioctl FICLONE. For each
point the starting state is restored and the same save runs under
`strace -e inject=NAME:signal=KILL:when=N`: SIGKILL on entering the Nth call
of NAME, before the call takes effect. strace numbers `when=` per traced
thread, not across the process tree, so the plan needs a save made by one
thread (CKPT_THREADS=1); every killed run's trace must show the killed call to be the same
one as the reference trace's Nth call. Then:

  (a) every checkpoint committed before is byte-for-byte unchanged (with
      --force: the replaced step is the old one or the complete new one; with
      retention: the oldest may be gone, only if the new one committed), and
      `ckpt verify` exits 0 (a stale marker is a warning, not a failure);
  (b) the new checkpoint is absent or complete, holding the files given, and
      no other directory is visible in the root;
  (c) `ckpt load latest` names the checkpoint with the highest commit_seq;
  (r) (not --move) the killed save, retried unchanged on a copy of that
      state, exits 0 and leaves the step holding the files given, the
      newest; when the kill came after the commit, the retry changes nothing
      and says "existing": true (re-saving a committed step with identical
      files is not a conflict);
  (e) (--move) after `ckpt prune --keep-last 100`, every work file that
      existed before the save is at its path or in the committed checkpoint,
      with the same content: nothing the user had is lost;
  (d) the client's next step: rewrite every work file in place (truncate and
      write the existing path, as torch.save does; with --link, write a new
      file and rename it over, as --link's promise asks), save the step again
      if the killed save did not commit it, then save step 4: both exit 0,
      every checkpoint committed so far is still byte-for-byte unchanged (a
      committed file sharing storage with a work file shows here), `ckpt
      verify` exits 0, `load latest` names step 4, and no staging or trash
      is left.

Only the Python standard library and strace are used; this file does not
import the other e2e files, so its scenario list is only its own.

    python3 tests/cli/e2e_syscall_kills.py --list          one scenario name per line
    python3 tests/cli/e2e_syscall_kills.py NAME [NAME...]  run scenarios; exit 0 when all pass
    python3 tests/cli/e2e_syscall_kills.py --all           run every scenario

The binary comes from $CKPT_BIN, else ../../build/release/apps/ckpt/ckpt
relative to this file; strace from $STRACE, else the PATH. Every scenario
runs in a fresh temporary directory ckpt-kills-<name>-* (under /dev/shm when
it exists, so fsync is cheap) that is removed on success and kept (its path
printed) on failure, with the state of each failed kill point in
failed/NAME-N/ (after-kill: right after the kill; end: when the check
failed); set CKPT_E2E_KEEP=1 to keep it on success too.

Knobs: CKPT_KILL_JOBS (kill points run side by side, default 2),
CKPT_KILL_ONLY (a comma-separated list of NAME:N, e.g. rename:3,fsync:12:
run only those kill points).
"""

import concurrent.futures
import hashlib
import os
import pathlib
import queue
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (BIN, Fail, check, child_env, expect_eq, load_json, name,  # noqa: E402
                     private_entries, sha256_file, snapshot, staging_dirs, step_dirs)

DEFAULT_TIMEOUT = 60
STRACE = os.environ.get("STRACE") or shutil.which("strace") or "strace"
JOBS = max(1, int(os.environ.get("CKPT_KILL_JOBS") or 2))
TMP_DIR = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None

# the work files (path under the work directory -> size); one sits in a subdirectory
FILES = {"model.pt": 3000, "optim/state.pt": 1500, "rng.pt": 200}
# val_loss by step: each save is a new best, so each moves best.json too
LOSS = {1: "1.0", 2: "0.5", 3: "0.25", 4: "0.125"}
FORCED_LOSS = "0.4"  # the replacement of step 2 (--force): better than the step it replaces

# the system calls traced: a superset of those that can change a file system
OPENS = {"open", "openat", "openat2", "creat"}
WRITES = {"write", "pwrite64", "writev", "pwritev", "pwritev2", "sendfile", "splice"}
ALWAYS = {"rename", "renameat", "renameat2", "link", "linkat", "unlink", "unlinkat", "mkdir", "mkdirat", "rmdir",
          "fsync", "fdatasync", "ftruncate", "truncate", "copy_file_range", "fallocate", "symlink", "symlinkat",
          "mknod", "mknodat", "sync_file_range", "syncfs", "chmod", "fchmod", "fchmodat", "chown", "fchown",
          "lchown", "fchownat", "utimes", "futimesat", "utimensat", "setxattr", "lsetxattr", "fsetxattr",
          "removexattr", "lremovexattr", "fremovexattr"}
TRACED = sorted(OPENS | WRITES | ALWAYS | {"ioctl"})

LINE_RE = re.compile(r"^(\d+) +([a-z0-9_]+)\((.*)\) += (.*)$")
QUOTED_RE = re.compile(r'"(?:[^"\\]|\\.)*"(?:\.\.\.)?')
OPEN_WRITE_RE = re.compile(r"\bO_(?:WRONLY|RDWR|CREAT|TRUNC)\b")
HEX_RE = re.compile(r"[0-9a-f]{8,}")

SCENARIOS, scenario = harness.registry()
TOTALS = {}  # scenario -> number of kill points, for the summary of a run of several


# --------------------------------------------------------------------------
# work files


def content(rel, tag):
    """FILES[rel] bytes, a function of (rel, tag) only, so that every run of a save sees the same files."""
    seed = hashlib.sha256(f"{rel}\0{tag}".encode()).digest()
    out = bytearray()
    i = 0
    while len(out) < FILES[rel]:
        out += hashlib.sha256(seed + i.to_bytes(4, "little")).digest()
        i += 1
    return bytes(out[:FILES[rel]])


def digest(data):
    return hashlib.sha256(data).hexdigest()


def write_in_place(work, rel, data):
    """Truncate and write the existing file (O_WRONLY|O_CREAT|O_TRUNC, the same inode), as torch.save does;
    create it, and its directories, when missing."""
    p = pathlib.Path(work) / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)


def write_by_rename(work, rel, data):
    """Write a new file next to it and rename it over: what --link's promise asks of the client."""
    p = pathlib.Path(work) / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.new")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, p)


def work_digests(work):
    """{rel: sha256} of the work files present."""
    out = {}
    for rel in FILES:
        p = pathlib.Path(work) / rel
        if p.is_file() and not p.is_symlink():
            out[rel] = sha256_file(p)
    return out


def file_entries(snap):
    """{rel: sha256} of the regular files of a snapshot(), without the two reserved files."""
    return {k: v[2] for k, v in snap.items() if v[0] == "file" and k not in ("_checkpoint.json", "SHA256SUMS")}


def diff_snapshots(a, b):
    lines = [f"      {k}: {a.get(k, 'ABSENT')} -> {b.get(k, 'ABSENT')}"
             for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return "\n".join(lines[:20]) + ("\n      ..." if len(lines) > 20 else "")


def multiply_linked(directory):
    out = []
    for dirpath, _dirs, files in os.walk(directory):
        for f in files:
            p = os.path.join(dirpath, f)
            st = os.lstat(p)
            if st.st_nlink > 1:
                out.append(os.path.relpath(p, directory))
    return out


def copy_state(src, dst):
    """Copy ROOT and WORK of src (whichever exist) to dst, which is emptied first."""
    src, dst = pathlib.Path(src), pathlib.Path(dst)
    for sub in ("root", "work"):
        shutil.rmtree(dst / sub, ignore_errors=True)
        if (src / sub).exists():
            shutil.copytree(src / sub, dst / sub, symlinks=True)


def checkpoint_seqs(root):
    """{name: commit_seq} of every visible step-* directory (each must hold a valid _checkpoint.json)."""
    out = {}
    for n in step_dirs(root):
        try:
            doc = load_json(pathlib.Path(root) / n / "_checkpoint.json")
        except (OSError, ValueError) as e:
            raise Fail(f"{n} is visible without a valid _checkpoint.json ({e})")
        check(isinstance(doc, dict) and isinstance(doc.get("commit_seq"), int),
              f"{n}/_checkpoint.json has no integer commit_seq")
        out[n] = doc["commit_seq"]
    return out


def newest(root):
    seqs = checkpoint_seqs(root)
    return max(seqs, key=lambda n: seqs[n]) if seqs else None


# --------------------------------------------------------------------------
# traces


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
            # strace -y names what the descriptor is: only a file is a change, not a pipe
            # (the sanitizers' runtime writes to one of its own)
            return "<" not in fd or fd.split("<", 1)[1].startswith("/")
        if self.sc == "ioctl":
            return "FICLONE" in self.args  # also FICLONERANGE
        return False

    def shape(self, slot):
        """The call without what differs from run to run: the slot directory, the pid, random hex names,
        and what a write writes (only its descriptor and that one's path are kept)."""
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


def trace_cmd(trace_file, *extra):
    """strace of the whole process tree, -y: a descriptor is shown with its path."""
    return [STRACE, "-f", "-qq", "-y", "-o", str(trace_file), *extra]


# --------------------------------------------------------------------------
# the scenarios' shape


class Mode:
    """How one scenario saves. transfer: --move/--link or nothing (copy); sources: "from" (--from work) or
    "files" (DEST=work/DEST each); target: the step of the killed save; force: the killed save replaces an
    existing step; keep_last: the retention the killed save (and the later ones) give."""

    def __init__(self, transfer=(), sources="from", target=3, force=False, keep_last=None):
        self.transfer = list(transfer)
        self.sources = sources
        self.target = target
        self.force = force
        self.keep_last = keep_last
        self.move = "--move" in self.transfer
        self.link = "--link" in self.transfer
        self.write = write_by_rename if self.link else write_in_place

    def source_args(self):
        if self.sources == "from":
            return ["--from", "work"]
        return [f"{rel}=work/{rel}" for rel in FILES]

    def save_args(self, step, setup=False):
        loss = FORCED_LOSS if (self.force and step == self.target and not setup) else LOSS[step]
        args = ["save", "--step", str(step), *self.source_args(), *self.transfer,
                "--metric", f"val_loss={loss}", "--best-key", "val_loss"]
        if not setup:
            if self.force and step == self.target:
                args.append("--force")
            if self.keep_last is not None:
                args += ["--keep-last", str(self.keep_last)]
        return args

    def final_steps(self):
        if self.keep_last is not None:
            return {name(s) for s in (self.target, 4)}
        return {name(s) for s in (1, 2, self.target, 4)}


class Ctx(harness.BaseCtx):
    earlier_title = "failed kill points before it"

    def __init__(self, tmp):
        super().__init__(tmp)
        self.env = child_env()
        # LeakSanitizer cannot run under ptrace
        asan = ":".join(x for x in [self.env.get("ASAN_OPTIONS", ""), "detect_leaks=0"] if x)
        # strace numbers when= per thread: the traced save copies, hashes and
        # fsyncs on one thread (--threads 1) so that its Nth call of a name is
        # the same call from run to run. The threaded paths are killed at
        # random moments by e2e_restart.py and failed at every operation by
        # the unit tests.
        self.traced_env = child_env({"ASAN_OPTIONS": asan, "CKPT_THREADS": "1"})
        self.points = 0

    def failures_title(self):
        return f"{len(self.failures)} of {self.points} kill point(s) failed"

    def pass_details(self, seconds):
        return f"{seconds:.1f}s, {self.points} kill points"

    def run(self, cwd, cmd, code=None, what=""):
        return harness.execute(cmd, cwd=str(cwd), env=self.env, timeout=DEFAULT_TIMEOUT, code=code, what=what)

    def traced(self, cwd, cmd, code=None, what=""):
        """cmd is strace running ckpt."""
        return harness.execute(cmd, cwd=str(cwd), env=self.traced_env, timeout=DEFAULT_TIMEOUT, code=code,
                               what=what)

    def ckpt(self, cwd, *args, code=None, what="", json_out=False):
        cmd = [BIN] + (["--json"] if json_out else []) + ["-C", "root"] + [str(a) for a in args]
        return self.run(cwd, cmd, code=code, what=what)


# --------------------------------------------------------------------------
# one kill point


class Point:
    def __init__(self, sc, n, call, shape):
        self.sc, self.n, self.call, self.shape = sc, n, call, shape

    @property
    def label(self):
        return f"{self.sc}:{self.n}"


class Start:
    """The starting state of every kill point: base/{root,work}, and what it holds."""

    def __init__(self, base, committed, seqs, pre):
        self.base = base
        self.committed = committed  # name -> snapshot() of each committed checkpoint
        self.seqs = seqs  # name -> commit_seq
        self.pre = pre  # rel -> sha256 of the work files the killed save is given


def expect_unchanged(root, nm, snap, what):
    d = pathlib.Path(root) / nm
    check(d.is_dir(), f"{what}: committed checkpoint {nm} is gone (present: {step_dirs(root)})")
    now = snapshot(d)
    check(now == snap, f"{what}: committed checkpoint {nm} changed:\n{diff_snapshots(snap, now)}")


def expect_new_complete(root, nm, start, mode, what):
    """nm holds exactly the files the killed save was given, and a commit_seq above those before."""
    d = pathlib.Path(root) / nm
    snap = snapshot(d)
    expect_eq(file_entries(snap), start.pre, f"{what}: the files of {nm} (path -> sha256)")
    check(snap.get("_checkpoint.json", ("",))[0] == "file", f"{what}: {nm} has no _checkpoint.json")
    check(snap.get("SHA256SUMS", ("",))[0] == "file", f"{what}: {nm} has no SHA256SUMS")
    doc = load_json(d / "_checkpoint.json")
    expect_eq((doc.get("name"), doc.get("step")), (nm, mode.target), f"{what}: {nm}/_checkpoint.json name, step")
    check(doc.get("commit_seq", 0) > max(start.seqs.values()),
          f"{what}: {nm} has commit_seq {doc.get('commit_seq')}, not above those before ({start.seqs})")
    return snap


def expect_latest(c, cwd, expected, what):
    res = c.ckpt(cwd, "load", "latest", json_out=True, code=0, what=f"{what}: load latest")
    expect_eq(res.json().get("name"), expected, f"{what}: the checkpoint `load latest` names "
              f"(the newest committed, by commit_seq)", res)


def kill_point(c, mode, start, slot, point):
    """Run one kill point in slot; [] when every check passed, else the text of each failed check."""
    after_kill = slot / "after-kill"
    errors = []
    try:
        _kill_point(c, mode, start, slot, point, after_kill, errors)
    except Fail as e:
        errors.append(str(e))
    if not errors:
        return errors
    keep = c.tmp / "failed" / f"{point.sc}-{point.n}"
    shutil.rmtree(keep, ignore_errors=True)
    keep.mkdir(parents=True)
    if after_kill.exists():
        shutil.copytree(after_kill, keep / "after-kill", symlinks=True)
    copy_state(slot, keep / "end")
    return errors


def soft(errors, fn, *args, **kw):
    """Run one check whose failure does not stop the kill point's later checks: record it and go on."""
    try:
        fn(*args, **kw)
    except Fail as e:
        errors.append(str(e))


def _kill_point(c, mode, start, slot, point, after_kill, errors):
    tnm = name(mode.target)
    root, work = slot / "root", slot / "work"
    copy_state(start.base, slot)
    shutil.rmtree(after_kill, ignore_errors=True)

    # the kill: SIGKILL on entering call N of NAME, checked against the reference trace
    trace = slot / "kill.trace"
    cmd = trace_cmd(trace, "-e", f"trace={point.sc}", "-e", f"inject={point.sc}:signal=KILL:when={point.n}",
                    BIN, "-C", "root", *mode.save_args(mode.target))
    res = c.traced(slot, cmd)
    calls, killed, interleaved = parse_trace(trace)
    check(not interleaved, f"more than one traced thread: {interleaved[:3]}", res)
    check(killed and res.rc in (-9, 128 + 9),
          f"the save was not killed at call {point.n} of {point.sc} (it made {len(calls)} such calls): "
          f"the plan does not match the save", res)
    mine = [x for x in calls if x.sc == point.sc]
    check(len(mine) == point.n and mine[-1].result == "?",
          f"the kill trace shows {len(mine)} {point.sc} calls, the last returning {mine[-1].result if mine else '-'}"
          f" (expected {point.n}, the last killed)", res)
    expect_eq(mine[-1].shape(slot), point.shape, "the killed call vs the reference trace's", res)
    copy_state(slot, after_kill)

    # (a) committed checkpoints unchanged; (b) the new one absent or complete
    present = set(step_dirs(root))
    new_committed = False
    if mode.force:
        check(tnm in present, f"(a) {tnm}, which --force replaces, is not visible (present: {sorted(present)})")
        if snapshot(root / tnm) != start.committed[tnm]:
            expect_new_complete(root, tnm, start, mode, f"(b) {tnm} changed, so it must be the complete replacement")
            new_committed = True
    elif tnm in present:
        expect_new_complete(root, tnm, start, mode, f"(b) {tnm} is visible")
        new_committed = True
    for nm, snap in start.committed.items():
        if nm == tnm and mode.force:
            continue
        if mode.keep_last is not None and new_committed and nm not in present:
            continue  # retention may delete the oldest once the new one is committed
        expect_unchanged(root, nm, snap, "(a)")
    expected = set(start.committed) | ({tnm} if new_committed else set())
    check(present <= expected, f"(b) unexpected directories in the root: {sorted(present - expected)}")
    soft(errors, c.ckpt, slot, "verify", code=0, what="(a) verify after the kill")

    # (c) latest is the newest committed
    soft(errors, expect_latest, c, slot, newest(root), "(c) after the kill")

    if not mode.move:
        expect_eq(work_digests(work), start.pre, "the work files after the killed save (it never changes them)")
        soft(errors, retry_unchanged, c, mode, start, slot, after_kill, new_committed)
    else:
        # (e) no user file is lost: after the next command that changes the root, each is at its path
        # or in the committed checkpoint
        c.ckpt(slot, "prune", "--keep-last", 100, code=0, what="(e) prune right after the killed --move")
        at_path = work_digests(work)
        stored = file_entries(snapshot(root / tnm)) if new_committed else {}
        lost = [rel for rel, d in start.pre.items() if at_path.get(rel) != d and stored.get(rel) != d]
        check(not lost, f"(e) work files lost (neither at their path nor in a committed {tnm}): {lost}; "
              f"at their path: {sorted(at_path)}, in {tnm}: {sorted(stored)}, "
              f"staging: {private_entries(root, 'staging')}")

    # (d) the client's next step
    committed = dict(start.committed)
    if new_committed:
        committed[tnm] = snapshot(root / tnm)
    for rel in FILES:
        mode.write(work, rel, content(rel, f"retry-{mode.target}"))
    if not new_committed:
        c.ckpt(slot, *mode.save_args(mode.target), json_out=True, code=0,
               what=f"(d) save {tnm} again after the kill, from rewritten work files")
        committed[tnm] = snapshot(root / tnm)
    for rel in FILES:
        mode.write(work, rel, content(rel, "step-4"))
    c.ckpt(slot, *mode.save_args(4), json_out=True, code=0, what="(d) save step 4")
    present = set(step_dirs(root))
    soft(errors, expect_eq, present, mode.final_steps(), "(d) the checkpoints after step 4")
    for nm, snap in committed.items():
        if nm in present:
            soft(errors, expect_unchanged, root, nm, snap, "(d) after the client rewrote its work files and saved "
                 "step 4")
    soft(errors, c.ckpt, slot, "verify", code=0, what="(d) verify after step 4")
    soft(errors, expect_latest, c, slot, name(4), "(d) after step 4")
    soft(errors, expect_eq, staging_dirs(root), [], "(d) directories left in ROOT/.ckpt/staging after step 4")
    soft(errors, expect_eq, private_entries(root, "trash"), [], "(d) entries left in ROOT/.ckpt/trash after step 4")


def retry_unchanged(c, mode, start, slot, after_kill, new_committed):
    """(r) the client retries the killed save as it was, on a copy of the state the kill left."""
    tnm = name(mode.target)
    retry = slot / "retry"
    copy_state(after_kill, retry)
    try:
        before = snapshot(retry / "root" / tnm) if new_committed else None
        r = c.ckpt(retry, *mode.save_args(mode.target), json_out=True, code=0,
                   what="(r) the killed save retried unchanged")
        doc = r.json()
        if new_committed and not mode.force:
            check(doc.get("existing") is True and doc.get("committed") is False,
                  '(r) the retry of a committed save with identical files must say "existing": true, '
                  '"committed": false (it committed nothing)', r)
            expect_eq(snapshot(retry / "root" / tnm), before, f"(r) {tnm} after the retry", r)
        expect_eq(file_entries(snapshot(retry / "root" / tnm)), start.pre, f"(r) the files of {tnm}", r)
        expect_latest(c, retry, tnm, "(r) after the retry")
        c.ckpt(retry, "verify", code=0, what="(r) verify after the retry")
    finally:
        shutil.rmtree(retry, ignore_errors=True)


# --------------------------------------------------------------------------
# the driver


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


def prepare(c, mode):
    """base/{root,work}: steps 1 and 2 committed the way the scenario saves, then the work files of the
    killed save."""
    check(shutil.which(STRACE) is not None or os.access(STRACE, os.X_OK),
          f"strace not found ({STRACE}); this test needs it (set STRACE)")
    base = c.tmp / "base"
    (base / "work").mkdir(parents=True)
    for step in (1, 2):
        for rel in FILES:
            mode.write(base / "work", rel, content(rel, f"step-{step}"))
        c.ckpt(base, *mode.save_args(step, setup=True), code=0, what=f"save step {step} (the starting state)")
    for rel in FILES:
        mode.write(base / "work", rel, content(rel, f"step-{mode.target}"))
    root = base / "root"
    committed = {nm: snapshot(root / nm) for nm in step_dirs(root)}
    expect_eq(sorted(committed), [name(1), name(2)], "checkpoints of the starting state")
    # copies of the starting state are faithful only without hard links
    expect_eq(multiply_linked(base), [], "files with more than one link in the starting state")
    pre = work_digests(base / "work")
    expect_eq(pre, {rel: digest(content(rel, f"step-{mode.target}")) for rel in FILES}, "the work files")
    return Start(base, committed, checkpoint_seqs(root), pre)


def plan(c, mode, start, slot):
    """Trace the save once (on a copy of the starting state) and list its kill points."""
    copy_state(start.base, slot)
    trace = slot / "reference.trace"
    res = c.traced(slot, trace_cmd(trace, "-e", "trace=" + ",".join(TRACED), BIN, "-C", "root",
                                   *mode.save_args(mode.target)),
                   code=0, what="the traced save")
    calls, _killed, interleaved = parse_trace(trace)
    pids = sorted({x.pid for x in calls})
    check(len(pids) == 1 and not interleaved,
          f"the traced save ran in {len(pids)} threads or processes {pids}: strace numbers when= per thread, "
          f"so this plan (one numbering per call name) does not apply", res)
    check(name(mode.target) in step_dirs(slot / "root"), "the traced save did not commit", res)
    points, seen = [], {}
    for x in calls:
        seen[x.sc] = seen.get(x.sc, 0) + 1
        if x.changes_fs():
            points.append(Point(x.sc, seen[x.sc], x, x.shape(slot)))
    for sc in ("openat", "write", "fsync", "mkdir"):
        check(any(p.sc == sc for p in points), f"the traced save made no {sc} that changes the file system: "
              f"the trace was not read right", res)
    return points


def run_kills(c, mode):
    start = prepare(c, mode)
    slots = [c.tmp / f"w{i}" for i in range(JOBS)]
    for s in slots:
        s.mkdir()
    points = plan(c, mode, start, slots[0])
    only = only_points()
    if only is not None:
        unknown = only - {(p.sc, p.n) for p in points}
        check(not unknown, f"CKPT_KILL_ONLY names no kill point of this save: {sorted(unknown)}")
        points = [p for p in points if (p.sc, p.n) in only]
    c.points = len(points)
    TOTALS[c.tmp.name] = len(points)
    by_name = {}
    for p in points:
        by_name[p.sc] = by_name.get(p.sc, 0) + 1
    print(f"  {len(points)} kill points: " + ", ".join(f"{k} {v}" for k, v in sorted(by_name.items())))

    free = queue.Queue()
    for s in slots:
        free.put(s)

    def job(point):
        slot = free.get()
        try:
            return kill_point(c, mode, start, slot, point)
        finally:
            free.put(slot)

    with concurrent.futures.ThreadPoolExecutor(max_workers=JOBS) as pool:
        results = list(pool.map(job, points))
    failed = [(p, r) for p, r in zip(points, results) if r]
    for i, (p, errs) in enumerate(failed):
        # in full for the first few kill points that failed, then the first line of each failed check
        text = "\n".join(errs) if i < 3 else "\n".join(e.splitlines()[0] for e in errs)
        c.failures.append(f"  kill at {p.label} {p.shape}\n" + harness.indent(text))
    print(f"  passed {len(points) - len(failed)} of {len(points)}"
          + (f"; failed: {' '.join(p.label for p, _ in failed)}" if failed else ""))


@scenario
def kill_save_copy(c):
    """save (copy, the default) --from WORK killed at each call that changes the file system."""
    run_kills(c, Mode())


@scenario
def kill_save_move_from(c):
    """save --move --from WORK killed at each call: no user file lost, nothing committed shares a work file."""
    run_kills(c, Mode(transfer=["--move"]))


@scenario
def kill_save_move_files(c):
    """save --move DEST=PATH... killed at each call: no user file lost, nothing committed shares a work file."""
    run_kills(c, Mode(transfer=["--move"], sources="files"))


@scenario
def kill_save_link(c):
    """save --link --from WORK killed at each call; the client then replaces its files by rename."""
    run_kills(c, Mode(transfer=["--link"]))


@scenario
def kill_save_force(c):
    """save --step 2 --force (replacing a committed step) killed at each call."""
    run_kills(c, Mode(target=2, force=True))


@scenario
def kill_save_retention(c):
    """save --keep-last 2 (the save prunes step 1 after its commit) killed at each call."""
    run_kills(c, Mode(keep_last=2))


if __name__ == "__main__":
    rc = harness.main(sys.argv, __doc__, SCENARIOS, Ctx, "ckpt-kills", tmp_dir=TMP_DIR)
    if len(TOTALS) > 1:
        print(f"kill points in all: {sum(TOTALS.values())} over {len(TOTALS)} scenarios")
    sys.exit(rc)
