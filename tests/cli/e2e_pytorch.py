#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End-to-end scenarios with a real client of `ckpt`: the PyTorch training job
examples/pytorch/train.py, SIGKILLed at random moments and started again until
it finishes, must end exactly where an uninterrupted run of it ends.

Each scenario first runs train.py once without interruption into its own root
(the reference), then again into a fresh root, killing it at least 20 times:
the Python process alone at a random moment (an orphaned `ckpt save` then runs
on), or its whole process group while a `ckpt save` child runs. After each
kill, once every process of the group has exited (as a scheduler would wait),
`ckpt verify` must pass, every checkpoint seen before must be unchanged, and
every committed step and val_loss must be the reference's. At the end the final
weights must equal the reference's bit for bit, and the two roots must hold the
same checkpoints (names, steps, commit_seq, metrics, file digests), the same
markers and policy, and exactly what the retention policy keeps.

The test runner is the Python standard library only; train.py runs under
$CKPT_TORCH_PYTHON, else /usr/bin/python3, which must import torch (the
scenarios fail, never skip, when it cannot).

    python3 tests/cli/e2e_pytorch.py --list          one scenario name per line
    python3 tests/cli/e2e_pytorch.py NAME [NAME...]  run scenarios; exit 0 when all pass
    python3 tests/cli/e2e_pytorch.py --all           run every scenario

The binary comes from $CKPT_BIN, else ../../build/release/apps/ckpt/ckpt
relative to this file; train.py runs it through examples/python/ckpt.py, given
as $CKPT_BIN (a link named ckpt, first on PATH too). Every scenario runs
in a fresh temporary directory $TMPDIR/ckpt-pytorch-<name>-* (TMPDIR: /tmp by
default) that is removed on success and kept (its path printed) on failure; set
CKPT_E2E_KEEP=1 to keep it on success too. The output of each start of the
killed run is in kill/logs/ there.

Knobs: CKPT_SEED (the kill schedule's random seed; printed), CKPT_KILLS (kills
per run, default and least 20).
"""

import os
import pathlib
import random
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (BIN, Fail, check, child_env, expect_eq, expect_rc, load_json, name, staging_dirs,  # noqa: E402
                     step_dirs)

HERE = pathlib.Path(__file__).resolve().parent
TRAIN = (HERE / ".." / ".." / "examples" / "pytorch" / "train.py").resolve()
TORCH_PYTHON = os.environ.get("CKPT_TORCH_PYTHON") or "/usr/bin/python3"

STEPS, EVERY = 400, 10  # 40 saves; the reference run's val_loss is lowest near the middle
MIN_KILLS = 20
RUN_TIMEOUT = 150  # one uninterrupted start of train.py
GROUP_EXIT_TIMEOUT = 60  # the processes of a killed group must be gone by then
CKPT_TIMEOUT = 60
POLL = 0.002

SCENARIOS, scenario = harness.registry()


# --------------------------------------------------------------------------
# processes


def proc_table():
    """{pid: (ppid, pgrp, state)} of every process, zombies included."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                raw = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2:].split()
        out[int(d)] = (int(fields[1]), int(fields[2]), fields[0])
    return out


def argv_of(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def group_alive(pgid):
    """The pids of the process group that have not exited (zombies count as exited)."""
    return sorted(pid for pid, (_pp, pg, state) in proc_table().items() if pg == pgid and state != "Z")


class SaveWatch:
    """Finds the live `ckpt save` processes of one process group. Processes of other groups are looked at
    once (a process keeps its group here), so a poll reads little more than the listing of /proc."""

    def __init__(self, pgid):
        self.pgid = pgid
        self.foreign = set()

    def children(self):
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit() or int(d) in self.foreign:
                continue
            pid = int(d)
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    raw = f.read().decode("utf-8", "replace")
            except OSError:
                continue
            fields = raw[raw.rfind(")") + 2:].split()
            if int(fields[2]) != self.pgid:
                self.foreign.add(pid)
                continue
            if fields[0] == "Z":
                continue
            argv = argv_of(pid)  # read each time: a child shows python's argv until it execs
            if argv and os.path.basename(argv[0]) == "ckpt" and "save" in argv[1:]:
                out.append(pid)
        return out


def step_arg(pid):
    """The --step value of a ckpt save process (None once it is gone)."""
    argv = argv_of(pid)
    return next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--step"), None)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("utf-8", "replace")
    except OSError:
        return False
    return raw[raw.rfind(")") + 2:].split()[0] != "Z"


def wait_group_gone(pgid, what):
    deadline = time.monotonic() + GROUP_EXIT_TIMEOUT
    while True:
        left = group_alive(pgid)
        if not left:
            return
        if time.monotonic() > deadline:
            raise Fail(f"{what}: processes of the killed group still run after {GROUP_EXIT_TIMEOUT}s: "
                       + "; ".join(f"{p} {' '.join(argv_of(p))}" for p in left))
        time.sleep(0.002)


# --------------------------------------------------------------------------
# per-scenario context


class Ctx(harness.BaseCtx):
    def __init__(self, tmp):
        super().__init__(tmp)
        # train.py's helper runs $CKPT_BIN, else `ckpt` from PATH: both are a link of our own named ckpt
        # (SaveWatch knows a save by that name)
        bindir = self.tmp / "bin"
        bindir.mkdir()
        (bindir / "ckpt").symlink_to(BIN)
        self.env = child_env({"PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
                              "CKPT_BIN": str(bindir / "ckpt"),
                              "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"})
        self.groups = []  # process groups started, ended in close()

    def ckpt(self, root, *args, code=None, what="", cwd=None):
        res = harness.execute([BIN, "--lock-timeout", "60", "-C", str(root), *args], cwd=str(cwd or self.tmp),
                              env=self.env, timeout=CKPT_TIMEOUT, show_cwd=False, limit=4000)
        if code is not None:
            expect_rc(res, code, what)
        return res

    def train_cmd(self, root, work, out, cfg):
        cmd = [TORCH_PYTHON, str(TRAIN), "--root", root, "--work", work, "--steps", STEPS, "--every", EVERY,
               "--best-key", "val_loss", "--out", out]
        if cfg["keep_last"] is not None:
            cmd += ["--keep-last", cfg["keep_last"]]
        if cfg["move"]:
            cmd.append("--move")
        return [str(a) for a in cmd]

    def start(self, cmd, log):
        with open(log, "wb") as f:
            p = subprocess.Popen(cmd, cwd=str(self.tmp), env=self.env, stdin=subprocess.DEVNULL, stdout=f,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        self.groups.append(p.pid)
        return p

    def close(self):
        for pgid in self.groups:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass


def log_tail(path, n=40):
    try:
        lines = pathlib.Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "    <no log>"
    return harness.indent("\n".join(lines[-n:]))


def require_torch(c):
    try:
        r = subprocess.run([TORCH_PYTHON, "-c", "import torch; print(torch.__version__)"], env=c.env,
                           capture_output=True, text=True, timeout=120)
    except OSError as e:
        raise Fail(f"cannot run {TORCH_PYTHON} ({e}): these scenarios need a Python with torch "
                   f"(Debian: apt-get install python3-torch; or set CKPT_TORCH_PYTHON)")
    check(r.returncode == 0, f"{TORCH_PYTHON} cannot import torch: these scenarios need it (Debian: apt-get "
          f"install python3-torch; or set CKPT_TORCH_PYTHON)\n{harness.indent(r.stderr.strip(), 2000)}")
    return r.stdout.strip()


def saves_logged(log):
    """[(step, val_loss repr)] of the `saved ...` lines of a train.py log, in order."""
    out = []
    for line in pathlib.Path(log).read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[0] == "saved" and parts[2] == "step" and parts[4] == "val_loss":
            out.append((int(parts[3]), parts[5]))
    return out


def manifests(root):
    """{name: _checkpoint.json} of every step-* directory (each must have a parsable one naming itself)."""
    out = {}
    for n in step_dirs(root):
        p = pathlib.Path(root) / n / "_checkpoint.json"
        check(p.is_file(), f"{n} is visible without a _checkpoint.json (holds {sorted(os.listdir(p.parent))})")
        try:
            doc = load_json(p)
        except ValueError as e:
            raise Fail(f"{n}/_checkpoint.json does not parse: {e}")
        check(isinstance(doc, dict) and doc.get("name") == n, f"{n}/_checkpoint.json names {doc.get('name')!r}")
        out[n] = doc
    return out


COMPARED = ("name", "step", "commit_seq", "metrics", "weights", "checksum", "files", "total_size")


def essential(doc):
    return {k: doc.get(k) for k in COMPARED}


def shared_inodes(work, root):
    """Files of WORK that are the same inode as a file of a checkpoint in ROOT: 'work/x = step-.../x'."""
    inodes = {}
    for n in step_dirs(root):
        for dirpath, _dirs, files in os.walk(pathlib.Path(root) / n):
            for f in files:
                st = os.lstat(os.path.join(dirpath, f))
                inodes[(st.st_dev, st.st_ino)] = os.path.relpath(os.path.join(dirpath, f), root)
    out = []
    if pathlib.Path(work).is_dir():
        for f in sorted(os.listdir(work)):
            st = os.lstat(os.path.join(work, f))
            if (st.st_dev, st.st_ino) in inodes:
                out.append(f"work/{f} = {inodes[(st.st_dev, st.st_ino)]}")
    return out


# --------------------------------------------------------------------------
# the reference run


def reference_run(c, cfg):
    """One uninterrupted run; measures when the first save starts, the save interval and a save's duration."""
    d = c.tmp / "ref"
    root, work, out, log = d / "root", d / "work", d / "final.bin", d / "train.log"
    d.mkdir()
    root.mkdir()
    cmd = c.train_cmd(root, work, out, cfg)
    t0 = time.monotonic()
    p = c.start(cmd, log)
    watcher = SaveWatch(p.pid)
    seen = {}  # save child pid -> [first seen, last seen]
    while p.poll() is None:
        now = time.monotonic()
        for pid in watcher.children():
            seen.setdefault(pid, [now, now])[1] = now
        if now - t0 > RUN_TIMEOUT:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            raise Fail(f"the reference run did not finish within {RUN_TIMEOUT}s\n  command: {' '.join(cmd)}\n"
                       f"{log_tail(log)}")
        time.sleep(POLL)
    total = time.monotonic() - t0
    wait_group_gone(p.pid, "the reference run")
    check(p.returncode == 0, f"the reference run exited {p.returncode}\n  command: {' '.join(cmd)}\n{log_tail(log)}")
    saves = saves_logged(log)
    expect_eq([s for s, _ in saves], list(range(EVERY, STEPS + 1, EVERY)), "the steps train.py reports saving")
    check(out.is_file() and out.stat().st_size > 0, f"the reference run wrote no {out.name}")
    firsts = sorted(v[0] for v in seen.values())
    first = (firsts[0] - t0) if firsts else total / 2
    interval = (total - first) / max(1, len(saves) - 1)
    durations = [v[1] - v[0] for v in seen.values()]
    save_dur = max(statistics.median(durations) if durations else 0.0, 0.002)
    print(f"  reference: {total:.1f}s, {len(saves)} saves; first save after {first:.2f}s, one every "
          f"{interval * 1000:.0f} ms, a ckpt save runs about {save_dur * 1000:.0f} ms", flush=True)
    return dict(root=root, work=work, out=out, saves=saves, first=first, interval=interval, save_dur=save_dur)


# --------------------------------------------------------------------------
# the killed run


def latest_step(root):
    steps = [int(n.split("-", 1)[1]) for n in step_dirs(root)]
    return max(steps) if steps else 0


def killed_run(c, cfg, ref, seed, n_kills):
    rng = random.Random(seed)
    d = c.tmp / "kill"
    root, work, out, logs = d / "root", d / "work", d / "final.bin", d / "logs"
    logs.mkdir(parents=True)
    root.mkdir()  # the launcher makes the root once; train.py never does
    cmd = c.train_cmd(root, work, out, cfg)
    expected = {name(s): float(v) for s, v in ref["saves"]}
    first, interval, save_dur = ref["first"], ref["interval"], ref["save_dur"]

    def watch(p, watcher, pids, until=None, count=None):
        """Poll until train.py exits (False), or the time `until` comes, or `count` ckpt save children have
        begun (True); pids collects the save children seen, in order."""
        while p.poll() is None:
            for pid in watcher.children():
                if pid not in pids:
                    pids.append(pid)
            if count is not None and len(pids) >= count:
                return True
            now = time.monotonic()
            if until is not None and now >= until:
                return True
            check(now - t_start < RUN_TIMEOUT, f"start {starts}: train.py still runs after {RUN_TIMEOUT}s "
                  f"(waiting for ckpt save #{count})\n{log_tail(log)}")
            time.sleep(POLL if until is None else max(0.0, min(POLL, until - now)))
        return False

    seen = {}  # name -> essential manifest when first seen
    seqs = {}  # step -> commit_seq, of every checkpoint seen
    history = []  # (the kill, the newest step committed after it)
    gaps = set()
    best_value = None
    kills = {"python": 0, "group": 0}
    in_save = 0  # group kills that caught a ckpt save still running
    after_commit = 0  # of those, the ones that came once its checkpoint had appeared
    orphaned = 0  # python kills that left a ckpt save running
    warnings = {}
    starts = 0
    while True:
        starts += 1
        check(starts <= n_kills + 40, f"{starts - 1} starts and no finish (seed {seed}): the job makes no progress")
        log = logs / f"start-{starts:03d}.txt"
        left = n_kills - sum(kills.values())
        # when few saves remain for the kills still to come, a start gets at most two saves further
        tight = (STEPS - latest_step(root)) // EVERY <= 2 * left + 4
        t_start = time.monotonic()
        p = c.start(cmd, log)
        pgid = p.pid
        watcher = SaveWatch(pgid)
        kind = note = None
        if left > 0:
            kind = rng.choice(["python", "group"])
            t0 = time.monotonic()
            pids = []  # the ckpt save children of this start, in order
            if kind == "python":
                # the python process alone dies, its ckpt child runs on: mostly in the training loop (steps,
                # torch.save into --work, a ckpt save), sometimes earlier (import, ckpt load); never later
                # than the start of ckpt save #(j + 1), so that a start gets at most j + 1 saves further
                if rng.random() < 0.25:
                    running = watch(p, watcher, pids, until=t0 + rng.uniform(0, first), count=1)
                else:
                    j = 1 if tight else rng.choice([1, 2])
                    running = watch(p, watcher, pids, count=j)
                    running = running and watch(p, watcher, pids, until=time.monotonic() + rng.uniform(0, interval),
                                                count=j + 1)
                if running:
                    busy = [pid for pid in pids if alive(pid)]
                    os.kill(p.pid, signal.SIGKILL)
                    orphaned += bool(busy)
                    note = (f"SIGKILL to python alone {time.monotonic() - t0:.3f}s after start, after {len(pids)} "
                            f"ckpt save(s) of this start began" + (" (one ran on)" if busy else ""))
            else:
                # the whole group: inside (or just after) ckpt save #nth of this start, or the moment its
                # checkpoint directory appears (committed, markers not yet updated, --move sources not yet gone)
                nth = 1 if tight else rng.choice([1, 1, 2, 3])
                at_commit = rng.random() < 1 / 3
                extra = 0.0 if at_commit else rng.choice([0.0, rng.uniform(0, 1.5 * save_dur)])
                running = watch(p, watcher, pids, count=nth)
                target = None
                if running and at_commit:
                    step = step_arg(pids[nth - 1])
                    target = root / name(int(step)) if step else None
                    while target is not None and alive(pids[nth - 1]) and not target.exists():
                        time.sleep(0.0001)
                elif running:
                    running = watch(p, watcher, pids, until=time.monotonic() + extra, count=nth + 1)
                if running:
                    busy = alive(pids[nth - 1])
                    committed = target is not None and target.exists()
                    os.killpg(pgid, signal.SIGKILL)
                    in_save += busy
                    after_commit += busy and committed
                    when = (f"as the checkpoint of ckpt save #{nth} of this start appeared" if committed else
                            f"once ckpt save #{nth} of this start ended (no checkpoint appeared)" if at_commit else
                            f"up to {extra * 1000:.1f} ms after ckpt save #{nth} of this start began")
                    note = (f"SIGKILL to the group {(time.monotonic() - t0):.3f}s after start, {when} "
                            f"({'still running' if busy else 'it had finished'})")
        try:
            rc = p.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            p.wait()
            raise Fail(f"start {starts}: train.py did not finish within {RUN_TIMEOUT}s\n{log_tail(log)}")
        what = f"start {starts} ({note or 'not killed'}; seed {seed})"
        before = f"\n  the kill before it: {history[-1][0]}" if history else ""
        if note is None or rc == 0:
            wait_group_gone(pgid, what)
            check(rc == 0, f"{what}: train.py exited {rc}\n  command: {' '.join(cmd)}{before}\n{log_tail(log)}")
            break
        check(rc == -signal.SIGKILL, f"{what}: train.py exited {rc}, not by the SIGKILL{before}\n{log_tail(log)}")
        kills[kind] += 1
        wait_group_gone(pgid, what)

        # what a scheduler's restart finds: a root that verifies, committed checkpoints unchanged, each one
        # the step and val_loss the reference run committed
        v = c.ckpt(root, "--json", "verify")
        if v.rc != 0:
            links = shared_inodes(work, root) if cfg["move"] else []
            raise Fail(f"{what}: ckpt verify must pass after a kill (stale markers are warnings)\n{v.describe()}"
                       + (f"\n  work files that are hard links into checkpoints: {links}" if links else "")
                       + f"\n  this start's log:\n{log_tail(log)}")
        for chk in v.json().get("checkpoints", []) + [v.json().get("markers") or {}]:
            for prob in chk.get("problems", []):
                warnings[prob.get("kind")] = warnings.get(prob.get("kind"), 0) + 1
        now = manifests(root)
        for n, doc in now.items():
            e = essential(doc)
            if n in seen:
                expect_eq(e, seen[n], f"{what}: {n}/_checkpoint.json changed after its commit")
            seen[n] = e
            check(n in expected, f"{what}: {n} was committed, but the reference run saved no such step")
            expect_eq(doc.get("metrics", {}).get("val_loss"), expected[n], f"{what}: {n}'s val_loss vs the "
                      "reference run's (a resume that did not restore the exact state)")
        # each step is committed once, in order: the next step's commit_seq is one more (SPEC §3)
        history.append((what, latest_step(root)))
        for n, doc in now.items():
            seqs[doc["step"]] = doc.get("commit_seq")
        for st in sorted(seqs):
            nxt = st + EVERY
            if nxt in seqs and nxt not in gaps and seqs[nxt] != seqs[st] + 1:
                gaps.add(nxt)
                between = [w for w, newest in history if newest == st] or ["(no kill seen in between)"]
                c.failures.append(f"- commit_seq: {name(st)} has {seqs[st]} and {name(nxt)} has {seqs[nxt]}, "
                                  "not one more (SPEC §3: it increases by one with every commit); the kill(s) "
                                  "after which " + name(st) + " was the newest:\n      " + "\n      ".join(between))
        best = harness.read_best(root)
        if best is not None:
            check(best_value is None or best["value"] <= best_value,
                  f"{what}: best.json's value went up from {best_value} to {best['value']}: {best}")
            check(best["path"] in now, f"{what}: best.json names {best['path']}, which is gone: {sorted(now)}")
            best_value = best["value"]

    total = sum(kills.values())
    resaved = sum(1 for f in logs.iterdir() for line in f.read_text(errors="replace").splitlines()
                  if "(already committed)" in line)
    print(f"  killed run (seed {seed}; CKPT_SEED={seed} reproduces the schedule): {starts} starts, {total} kills "
          f"(python alone {kills['python']}, of which {orphaned} left a ckpt save running; whole group "
          f"{kills['group']}, of which {in_save} inside a ckpt save, {after_commit} of them after its commit); "
          f"steps saved again after a resume from a stale marker: {resaved}; verify warnings seen: "
          f"{warnings or 'none'}; checkpoints seen: {len(seen)}", flush=True)
    check(total >= MIN_KILLS, f"only {total} kills landed before the job finished (seed {seed}); "
          f"at least {MIN_KILLS} are needed: give train.py more steps")
    return dict(root=root, work=work, out=out, seen=seen)


# --------------------------------------------------------------------------
# the end state


def soft(c, fn, *args):
    """Run one end-state check; a failure is recorded and the next check still runs."""
    try:
        return fn(*args)
    except Fail as e:
        c.failures.append(f"- {e}")
        return None


def best_of(saves):
    """(step, value) of the first save with the lowest val_loss: best.json moves only on strict improvement."""
    low = min(float(v) for _, v in saves)
    return min(s for s, v in saves if float(v) == low), low


def check_root(c, root, work, cfg, saves, what):
    """The end state of one root, each check on its own; returns the manifests."""
    root = pathlib.Path(root)
    steps = [s for s, _ in saves]
    best_step, low = best_of(saves)

    def verify():
        c.ckpt(root, "verify", "--strict", code=0, what=f"{what}: ckpt verify --strict at the end")

    def sums():
        for n in step_dirs(root):
            r = harness.execute(["sha256sum", "-c", "SHA256SUMS"], cwd=str(root / n), env=c.env,
                                timeout=CKPT_TIMEOUT, limit=4000)
            expect_rc(r, 0, f"{what}: sha256sum -c SHA256SUMS in {n}")

    def info_best():
        info = c.ckpt(root, "--json", "info", "best", code=0, what=f"{what}: ckpt info best")
        doc = info.json()
        expect_eq((doc.get("name"), doc.get("step"), doc.get("metrics", {}).get("val_loss")),
                  (name(best_step), best_step, low),
                  f"{what}: ckpt info best: name, step, val_loss (the lowest of all {len(saves)} saves)", info)

    def retention():
        present = step_dirs(root)
        if cfg["keep_last"] is None:
            kept = set(steps)
        else:
            kept = set(steps[-cfg["keep_last"]:]) | {best_step}
            check(len(present) <= cfg["keep_last"] + 1, f"{what}: {len(present)} checkpoints remain with "
                  f"--keep-last {cfg['keep_last']} (at most {cfg['keep_last']} + the best): {present}")
        expect_eq(present, sorted(name(s) for s in kept), f"{what}: the checkpoints left (the last "
                  f"{cfg['keep_last'] or 'all'} saves and the best, {name(best_step)})")

    def markers():
        expect_eq((root / "last").read_text(), name(steps[-1]) + "\n", f"{what}: ROOT/last")
        best = harness.read_best(root) or {}
        expect_eq((best.get("path"), best.get("value")), (name(best_step), low), f"{what}: best.json path, value")

    def leftovers():
        expect_eq(staging_dirs(root), [], f"{what}: staging directories left after the last save")
        if cfg["move"]:
            left = sorted(os.listdir(work)) if work.is_dir() else "<the directory is gone>"
            expect_eq(left, [], f"{what}: the --work directory after the last save --move (kept, empty)")

    for fn in (verify, sums, info_best, retention, markers, leftovers):
        soft(c, fn)
    return soft(c, manifests, root) or {}


def compare(c, ref, run):
    """The killed run's root and final weights against the reference's."""
    def weights():
        a, b = run["out"].read_bytes(), ref["out"].read_bytes()
        at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        check(a == b, f"the final parameters differ from the reference run's ({len(a)} vs {len(b)} bytes, "
              f"first difference at byte {at})")

    def checkpoints():
        docs, ref_docs = manifests(run["root"]), manifests(ref["root"])
        expect_eq(sorted(docs), sorted(ref_docs), "the checkpoints of the killed run vs the reference's")
        for n in sorted(set(docs) & set(ref_docs)):
            a, b = essential(docs[n]), essential(ref_docs[n])
            a.pop("commit_seq")
            b.pop("commit_seq")
            expect_eq(a, b, f"{n}/_checkpoint.json (but commit_seq): killed run vs reference")

    def commit_seqs():
        # SPEC §3: commit_seq increases by one with every commit, and each step is committed once in both runs
        seqs = {n: d.get("commit_seq") for n, d in manifests(run["root"]).items()}
        ref_seqs = {n: d.get("commit_seq") for n, d in manifests(ref["root"]).items()}
        expect_eq(seqs, ref_seqs, "commit_seq of each checkpoint: killed run vs reference (a killed save that "
                  "did not commit must not use up a number)")

    def files():
        for f in ("last", "policy.json"):
            expect_eq((run["root"] / f).read_bytes(), (ref["root"] / f).read_bytes(),
                      f"ROOT/{f}: killed run vs reference")
        strip = lambda b: {k: v for k, v in (b or {}).items() if k != "updated"}  # noqa: E731
        expect_eq(strip(harness.read_best(run["root"])), strip(harness.read_best(ref["root"])),
                  "best.json (but its time): killed run vs reference")

    for fn in (weights, checkpoints, commit_seqs, files):
        soft(c, fn)


def run_scenario(c, cfg):
    version = require_torch(c)
    seed = int(os.environ.get("CKPT_SEED") or random.randrange(1 << 31))
    n_kills = max(MIN_KILLS, int(os.environ.get("CKPT_KILLS") or MIN_KILLS))
    print(f"  torch {version} under {TORCH_PYTHON}; train.py --steps {STEPS} --every {EVERY}"
          f"{' --keep-last ' + str(cfg['keep_last']) if cfg['keep_last'] is not None else ''}"
          f"{' --move' if cfg['move'] else ''}; seed {seed}, {n_kills} kills", flush=True)
    ref = reference_run(c, cfg)
    if cfg["keep_last"] is not None:
        best_step, _ = best_of(ref["saves"])
        check(best_step not in [s for s, _ in ref["saves"]][-cfg["keep_last"]:],
              f"the reference run's best ({name(best_step)}) is one of the last {cfg['keep_last']} saves: "
              "this scenario would not show that retention keeps the best")
    ref_docs = check_root(c, ref["root"], ref["work"], cfg, ref["saves"], "reference")
    run = killed_run(c, cfg, ref, seed, n_kills)
    docs = check_root(c, run["root"], run["work"], cfg, ref["saves"], "killed run")
    compare(c, ref, run)
    if not c.failures:
        print(f"  end: {len(docs)} checkpoints, the same as the reference's {len(ref_docs)}, final weights equal",
              flush=True)


# --------------------------------------------------------------------------
# scenarios


@scenario
def pytorch_copy_keep_last(c):
    """train.py with save (copy) --keep-last 3 --best-key val_loss, killed >= 20 times, ends as if never killed."""
    run_scenario(c, {"move": False, "keep_last": 3})


@scenario
def pytorch_move_keep_last(c):
    """train.py with save --move --keep-last 3 --best-key val_loss, killed >= 20 times, ends as if never killed."""
    run_scenario(c, {"move": True, "keep_last": 3})


@scenario
def pytorch_move_keep_all(c):
    """train.py with save --move and no retention, killed >= 20 times: every checkpoint equals the reference's."""
    run_scenario(c, {"move": True, "keep_last": None})


if __name__ == "__main__":
    sys.exit(harness.main(sys.argv, __doc__, SCENARIOS, Ctx, "ckpt-pytorch"))
