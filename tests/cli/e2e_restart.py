#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""What a restarted training job meets: `latest` behind a stale `last`, re-saving a
step that is already committed, `save --move` and its journal, and what a script
reads to decide (SPEC.md §1, §4, §7 save/info/verify/load, §8; man/ckpt-load.1).

  - `latest` is the newest committed checkpoint (highest commit_seq) even when a
    save was killed between its commit and its `last` update (produced for real
    with strace), when `last` was rewritten to name an older step, when `last` or
    .ckpt/commit_seq is absent: load, info, verify (a warning; --strict fails),
    and the next save rewrites `last`.
  - Re-saving a committed step with the very same files is a success that changes
    no checkpoint ("existing": true, the recorded commit_seq) and completes the
    markers, policy.json and retention; other files are exit 4 and change
    nothing; --checksum none cannot be shown identical; --force still replaces.
  - --move renames the sources in (same inode), leaves the named directories in
    place and empty, copies a source with a second hard link, puts every source
    back when the save fails before its commit, and after a SIGKILL before the
    commit leaves a journal that `prune` (or the next save) uses to put the files
    back, never over something written since.
  - Not-found errors carry a "reason"; a failing verify says so on stderr; load
    --json carries the recorded values; load --dir prints one directory.

Only the Python standard library and strace are used; this file does not import
the other e2e files, so its scenario list is only its own.

    python3 tests/cli/e2e_restart.py --list          one scenario name per line
    python3 tests/cli/e2e_restart.py NAME [NAME...]  run scenarios; exit 0 when all pass
    python3 tests/cli/e2e_restart.py --all           run every scenario

The binary comes from $CKPT_BIN, else ../../build/release/apps/ckpt/ckpt
relative to this file; strace from $STRACE, else the PATH. Every scenario runs
in a fresh temporary directory ckpt-restart-<name>-* that is removed on success
and kept (its path printed) on failure; set CKPT_E2E_KEEP=1 to keep it on
success too.
"""

import fcntl
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (BIN, Fail, Result, check, child_env, expect_eq, expect_json_error,  # noqa: E402
                     load_json, load_locations, meta, name, private_entries, read_best, ref_name, ref_names,
                     snapshot, staging_dirs, step_dirs, write_json)

DEFAULT_TIMEOUT = 60
STRACE = os.environ.get("STRACE") or shutil.which("strace") or "strace"
LINE_RE = re.compile(r"^(\d+) +([a-z0-9_]+)\((.*)\) += (.*)$")

SCENARIOS, scenario = harness.registry()


# --------------------------------------------------------------------------
# per-scenario context


class Ctx(harness.RootCtx):
    """TMP/root (the root, not created), TMP/src (created); work directories are made under TMP."""

    def __init__(self, tmp):
        super().__init__(tmp)
        self.env = child_env()
        # LeakSanitizer cannot run under ptrace: a sanitized binary is traced without it
        asan = ":".join(x for x in [self.env.get("ASAN_OPTIONS", ""), "detect_leaks=0"] if x)
        # strace numbers when= per thread: one thread (--threads 1) makes "call N" one call.
        self.traced_env = child_env({"ASAN_OPTIONS": asan, "CKPT_THREADS": "1"})
        self.kills = 0

    def run(self, *args, root=None, code=None, what="", json_out=False, lock_timeout="5"):
        cmd = [BIN, "--lock-timeout", lock_timeout, "-C", str(root or self.root)]
        cmd += (["--json"] if json_out else []) + [str(a) for a in args]
        return harness.execute(cmd, cwd=str(self.tmp), env=self.env, timeout=DEFAULT_TIMEOUT, code=code,
                               what=what or " ".join(str(a) for a in args))

    def jrun(self, *args, **kw):
        """run() with --json."""
        return self.run(*args, json_out=True, **kw)

    def kill_at(self, syscall, when, *args, root=None):
        """Run `ckpt -C ROOT ARGS` under strace, SIGKILLed on entering call WHEN of SYSCALL (before it takes
        effect). Returns the arguments of the call it was killed at, as strace shows them."""
        if shutil.which(STRACE) is None:
            raise Fail(f"strace not found ({STRACE}); these scenarios need it (set $STRACE)")
        self.kills += 1
        trace = self.tmp / f"kill-{self.kills}.trace"
        cmd = [STRACE, "-f", "-qq", "-o", str(trace), "-e", f"trace={syscall}",
               "-e", f"inject={syscall}:signal=KILL:when={when}",
               BIN, "--lock-timeout", "5", "-C", str(root or self.root), *[str(a) for a in args]]
        res = harness.execute(cmd, cwd=str(self.tmp), env=self.traced_env, timeout=DEFAULT_TIMEOUT)
        text = trace.read_text(encoding="utf-8", errors="replace") if trace.exists() else ""
        calls = [m for m in (LINE_RE.match(line) for line in text.splitlines()) if m]
        check(res.rc in (-9, 128 + 9) and "+++ killed by SIGKILL +++" in text,
              f"the command was not killed at call {when} of {syscall} (it made {len(calls)} such calls)\n"
              f"  trace:\n{harness.indent(text, 3000)}", res)
        check(calls and calls[-1].group(4).strip() == "?",
              f"the last traced call is not the one killed\n  trace:\n{harness.indent(text, 3000)}", res)
        return calls[-1].group(3)

    # -- inputs
    def work(self, files, under="work"):
        """Write {rel: bytes} under TMP/UNDER (created); returns that directory."""
        d = self.tmp / under
        d.mkdir(parents=True, exist_ok=True)
        for rel, data in files.items():
            p = d / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        return d


# --------------------------------------------------------------------------
# helpers


def blob(tag, size):
    """size bytes, a function of (tag, size) only."""
    seed = f"{tag}:".encode()
    return (seed * (size // len(seed) + 1))[:size]


def files_of(directory):
    """{rel: bytes} of the regular files under directory."""
    out = {}
    for k, v in snapshot(directory).items():
        if v[0] == "file":
            out[k] = (pathlib.Path(directory) / k).read_bytes()
    return out


def user_files(c, step):
    """{stored path: bytes} of a checkpoint, without the two reserved files."""
    return {k: v for k, v in files_of(c.root / name(step)).items() if k not in ("_checkpoint.json", "SHA256SUMS")}


def inodes(directory, rels):
    return {rel: (os.lstat(pathlib.Path(directory) / rel).st_dev, os.lstat(pathlib.Path(directory) / rel).st_ino)
            for rel in rels}


def ckpt_state(c, step):
    """Everything a checkpoint is: the snapshot (kind, size, sha256 of each entry) and the raw manifest."""
    d = c.root / name(step)
    check(d.is_dir(), f"{name(step)} is not there (present: {step_dirs(c.root)})")
    return snapshot(d), (d / "_checkpoint.json").read_bytes()


def expect_ckpt_unchanged(c, step, before, what):
    snap, raw = ckpt_state(c, step)
    expect_eq(raw, before[1], f"{what}: {name(step)}/_checkpoint.json bytes")
    expect_eq(snap, before[0], f"{what}: {name(step)} (path -> kind, size, sha256)")


def root_state(c):
    """The visible root: markers, policy and every checkpoint (not .ckpt/)."""
    return snapshot(c.root, skip_top=(".ckpt",))


def read_last_text(c):
    p = c.root / "last"
    return p.read_text() if p.exists() else None


def warning_lines(res):
    return [line for line in res.err.splitlines() if line.startswith("ckpt: warning:")]


def expect_warning_naming(res, names, what):
    lines = [line for line in warning_lines(res) if all(n in line for n in names)]
    check(lines, f"{what}: expected a 'ckpt: warning:' line on stderr naming {' and '.join(names)}", res)


def expect_no_warning(res, what):
    check(not warning_lines(res), f"{what}: expected no warning on stderr", res)


def expect_no_staging(c, what):
    expect_eq(private_entries(c.root, "staging"), [], f"{what}: entries left in ROOT/.ckpt/staging")


def expect_sources_back(work, before, what):
    """Every source of `before` ({rel: (bytes, (dev, ino))}) is at its path, the very same file, unchanged."""
    for rel, (data, ino) in before.items():
        p = pathlib.Path(work) / rel
        check(p.is_file() and not p.is_symlink(), f"{what}: source {p} is not back at its path "
              f"(work dir now: {sorted(files_of(work))})")
        expect_eq(p.read_bytes(), data, f"{what}: content of source {p}")
        expect_eq((os.lstat(p).st_dev, os.lstat(p).st_ino), ino, f"{what}: (dev, inode) of source {p}")


def sources_with_inodes(work):
    return {rel: (data, inodes(work, [rel])[rel]) for rel, data in files_of(work).items()}


def expect_latest(c, step, what, warn_names=None):
    """load latest --json names step (and warns naming warn_names, else does not warn)."""
    res = c.jrun("load", "latest", code=0, what=f"{what}: load latest --json")
    expect_eq(res.json().get("name"), name(step), f"{what}: the checkpoint `load latest` names", res)
    if warn_names:
        expect_warning_naming(res, warn_names, f"{what}: load latest")
    else:
        expect_no_warning(res, f"{what}: load latest")
    return res


def counter(c):
    p = c.root / ".ckpt" / "commit_seq"
    return int(p.read_text().strip()) if p.exists() else None


def save_json(c, *args, code=0, what=""):
    res = c.jrun("save", *args, code=code, what=what)
    return res, (res.json() if code == 0 else None)


def kill_after_commit(c, work, step, *extra, move=False):
    """Save STEP from WORK, SIGKILLed on the rename that installs `last`: the checkpoint is committed, `last`
    still names the previous one. --move first renames its journal into place: one more rename."""
    args = ["save", "--step", step, "--from", work, *(["--move"] if move else []), *extra]
    killed = c.kill_at("rename", 3 if move else 2, *args)
    check(f'"{c.root / "last"}"' in killed, f"the save was killed at rename({killed}), not at the one that "
          f"installs ROOT/last")
    check((c.root / name(step) / "_checkpoint.json").is_file(),
          f"killed after its commit, {name(step)} must be committed (root: {sorted(os.listdir(c.root))})")


# --------------------------------------------------------------------------
# 1. latest is the newest committed checkpoint


@scenario
def restart_latest_after_killed_save(c):
    """A save killed between its commit and `last`: everything says the new checkpoint is latest."""
    work = c.work({"model.pt": blob("m1", 3000), "optim/state.pt": blob("o1", 1500)})
    c.run("save", "--step", 1, "--from", work, "--metric", "val_loss=1.0", "--best-key", "val_loss", code=0)
    c.work({"model.pt": blob("m2", 3000), "optim/state.pt": blob("o2", 1500)})
    kill_after_commit(c, work, 2, "--metric", "val_loss=0.5", "--best-key", "val_loss")
    expect_eq(read_last_text(c), name(1) + "\n", "ROOT/last after the kill (stale)")
    seq2 = meta(c.root, 2).get("commit_seq")
    expect_eq(counter(c), seq2, ".ckpt/commit_seq after the kill: the commit_seq of the committed step 2")
    check(seq2 > meta(c.root, 1).get("commit_seq"), "step 2 has the higher commit_seq")
    names = (name(1), name(2))

    res = c.run("load", "latest", code=0)
    expect_eq(res.lines(), [str(c.root / name(2) / p) for p in ("model.pt", "optim/state.pt")],
              "load latest: the paths of step 2's files", res)
    expect_warning_naming(res, names, "load latest")
    expect_latest(c, 2, "load latest --json", warn_names=names)

    res = c.run("info", "latest", "--path", code=0)
    expect_eq(res.out, str(c.root / name(2)) + "\n", "info latest --path", res)
    res = c.jrun("info", "latest", code=0)
    doc = res.json()
    expect_eq((doc.get("name"), doc.get("commit_seq")), (name(2), seq2), "info latest --json name, commit_seq", res)
    check("last" in (doc.get("markers") or []), "info latest --json: markers contains \"last\"", res)

    res = c.jrun("info", code=0)
    doc = res.json()
    expect_eq(ref_name(doc.get("last")), name(2), 'info --json "last"', res)
    marks = {cp.get("name"): cp.get("markers") or [] for cp in doc.get("checkpoints", [])}
    check("last" in marks.get(name(2), []) and "last" not in marks.get(name(1), []),
          f"info --json: step 2 carries the last marker, step 1 does not (markers: {marks})", res)
    res = c.run("info", code=0)
    rows = {line.split()[0]: line.split()[1:] for line in res.out.splitlines() if line.startswith("step-")}
    check("last" in rows.get(name(2), []) and "last" not in rows.get(name(1), []),
          "info table: the row of step 2 is marked last, the row of step 1 is not", res)

    res = c.run("verify", code=0, what="verify with a stale last (a warning)")
    check(any("last" in line and ("WARNING" in line.upper() or "stale" in line) for line in res.out.splitlines()),
          "verify reports the stale last on stdout", res)
    check("ckpt: error:" not in res.err, "a passing verify prints no error", res)
    res = c.jrun("verify", code=0)
    doc = res.json()
    probs = [p for p in doc.get("markers", {}).get("problems", []) if p.get("path") == "last"]
    check(doc.get("ok") is True and probs and all(n in probs[0].get("detail", "") for n in names),
          "verify --json: ok, with a problem on last naming both checkpoints", res)
    c.run("verify", "--strict", code=1, what="verify --strict with a stale last")

    c.work({"model.pt": blob("m3", 3000), "optim/state.pt": blob("o3", 1500)})
    res, doc = save_json(c, "--step", 3, "--from", work, "--metric", "val_loss=0.7", what="the next save")
    expect_eq(doc.get("existing"), False, 'the next save: "existing"', res)
    check(doc.get("commit_seq", 0) > seq2, "the next save gets a commit_seq above step 2's", res)
    expect_eq(read_last_text(c), name(3) + "\n", "ROOT/last after the next save")
    expect_latest(c, 3, "after the next save")
    expect_eq((read_best(c.root) or {}).get("path"), name(2), "best.json after the next save (step 2 is best)")
    c.run("verify", "--strict", code=0, what="verify --strict after the next save")


@scenario
def restart_latest_last_rewritten_or_absent(c):
    """`last` rewritten to an older step, `last` absent, .ckpt/commit_seq absent: latest is the newest."""
    work = c.work({"model.pt": blob("m", 100)})
    for step in (1, 2, 3):
        c.work({"model.pt": blob(f"m{step}", 100 + step)})
        c.run("save", "--step", step, "--from", work, code=0)
    seqs = {s: meta(c.root, s)["commit_seq"] for s in (1, 2, 3)}
    expect_eq(counter(c), seqs[3], ".ckpt/commit_seq")
    names = (name(1), name(3))

    (c.root / "last").write_text(name(1) + "\n")
    expect_latest(c, 3, "last rewritten to step 1", warn_names=names)
    res = c.run("info", "latest", "--path", code=0)
    expect_eq(res.out, str(c.root / name(3)) + "\n", "last rewritten: info latest --path", res)
    check("last" in (c.jrun("info", "latest", code=0).json().get("markers") or []),
          "last rewritten: info latest --json markers contains last")
    expect_eq(ref_name(c.jrun("info", code=0).json().get("last")), name(3), 'last rewritten: info --json "last"')
    c.run("verify", code=0, what="last rewritten: verify")
    c.run("verify", "--strict", code=1, what="last rewritten: verify --strict")
    res = c.run("load", "1", code=0)
    expect_eq(res.lines(), [str(c.root / name(1) / "model.pt")], "last rewritten: load 1 still loads step 1", res)

    os.remove(c.root / "last")
    expect_latest(c, 3, "last absent")
    expect_eq(ref_name(c.jrun("info", code=0).json().get("last")), name(3), 'last absent: info --json "last"')
    check("last" in (c.jrun("info", "latest", code=0).json().get("markers") or []),
          "last absent: info latest --json markers contains last")

    os.remove(c.root / ".ckpt" / "commit_seq")
    expect_latest(c, 3, "last and .ckpt/commit_seq absent")
    (c.root / "last").write_text(name(3) + "\n")
    expect_latest(c, 3, ".ckpt/commit_seq absent, last names step 3")
    (c.root / "last").write_text(name(2) + "\n")
    expect_latest(c, 3, ".ckpt/commit_seq absent, last names step 2", warn_names=(name(2), name(3)))
    res = c.run("info", "latest", "--path", code=0)
    expect_eq(res.out, str(c.root / name(3)) + "\n", ".ckpt/commit_seq absent: info latest --path", res)

    c.work({"model.pt": blob("m4", 104)})
    res, doc = save_json(c, "--step", 4, "--from", work, what="save after the counter was lost")
    check(doc.get("commit_seq", 0) > seqs[3], "a save after the counter was lost gets a commit_seq above all", res)
    expect_eq(read_last_text(c), name(4) + "\n", "ROOT/last after that save")
    expect_latest(c, 4, "after that save")
    c.run("verify", "--strict", code=0, what="verify --strict after that save")


@scenario
def restart_latest_counter_ahead(c):
    """A save killed on its commit rename leaves the counter ahead of every checkpoint: latest is the newest
    committed, and nothing is stale."""
    work = c.work({"model.pt": blob("m1", 500)})
    c.run("save", "--step", 1, "--from", work, code=0)
    c.work({"model.pt": blob("m2", 500)})
    killed = c.kill_at("renameat2", 1, "save", "--step", 2, "--from", work)
    check(f'"{c.root / name(2)}"' in killed, f"killed at renameat2({killed}), not the commit of step 2")
    expect_eq(step_dirs(c.root), [name(1)], "checkpoints after a kill before the commit")
    check((counter(c) or 0) > meta(c.root, 1)["commit_seq"], "the counter was written before the commit rename")
    expect_latest(c, 1, "counter ahead")
    check("last" in (c.jrun("info", "latest", code=0).json().get("markers") or []),
          "counter ahead: info latest --json markers contains last")
    c.run("verify", "--strict", code=0, what="counter ahead: verify --strict")
    res, doc = save_json(c, "--step", 2, "--from", work, what="the retried save")
    expect_eq(doc.get("existing"), False, "the retried save commits anew", res)
    expect_eq(read_last_text(c), name(2) + "\n", "ROOT/last after the retried save")
    expect_latest(c, 2, "after the retried save")
    expect_eq(user_files(c, 2), {"model.pt": blob("m2", 500)}, "step 2's files")


# --------------------------------------------------------------------------
# 2. re-saving a committed step


@scenario
def restart_resave_identical_completes_markers(c):
    """The restarted job re-saves the step it was killed in: exit 0, "existing", nothing changes, `last` and
    best.json are brought up to date."""
    work = c.work({"model.pt": blob("m1", 2000), "optim/state.pt": blob("o1", 700)})
    c.run("save", "--step", 1, "--from", work, "--metric", "val_loss=1.0", "--best-key", "val_loss", code=0)
    c.work({"model.pt": blob("m2", 2000), "optim/state.pt": blob("o2", 700)})
    marks = ["--metric", "val_loss=0.5", "--best-key", "val_loss"]
    args = ["--step", 2, "--from", work, *marks]
    kill_after_commit(c, work, 2, *marks)
    expect_eq(read_last_text(c), name(1) + "\n", "ROOT/last after the kill")
    expect_eq((read_best(c.root) or {}).get("path"), name(1), "best.json after the kill (stale)")
    before = ckpt_state(c, 2)
    recorded = meta(c.root, 2)

    res, doc = save_json(c, *args, what="re-save of the committed step 2, same files")
    expect_eq((doc.get("existing"), doc.get("committed")), (True, False), 're-save: "existing", "committed"', res)
    expect_eq((doc.get("name"), doc.get("path"), doc.get("step"), doc.get("commit_seq")),
              (name(2), str(c.root / name(2)), 2, recorded["commit_seq"]), "re-save: name, path, step, commit_seq", res)
    expect_eq((doc.get("file_count"), doc.get("total_size")), (2, recorded["total_size"]),
              "re-save: file_count, total_size", res)
    expect_no_warning(res, "re-save with the recorded metrics")
    expect_ckpt_unchanged(c, 2, before, "re-save")
    expect_eq(read_last_text(c), name(2) + "\n", "ROOT/last after the re-save")
    best = read_best(c.root) or {}
    expect_eq((best.get("path"), best.get("value")), (name(2), 0.5), "best.json after the re-save")
    expect_eq(counter(c), recorded["commit_seq"], ".ckpt/commit_seq after the re-save (no new commit)")
    c.run("verify", "--strict", code=0, what="verify --strict after the re-save")
    expect_latest(c, 2, "after the re-save")

    res = c.run("save", *args, code=0, what="re-save again, text output")
    check(name(2) in res.out and "already" in res.out, "the text summary says the step was already committed", res)
    expect_ckpt_unchanged(c, 2, before, "second re-save")
    c.work({"model.pt": blob("m3", 2000), "optim/state.pt": blob("o3", 700)})
    res, doc = save_json(c, "--step", 3, "--from", work, "--metric", "val_loss=0.7", what="a new step")
    expect_eq(doc.get("existing"), False, 'a new step: "existing"', res)


@scenario
def restart_resave_retention_and_policy(c):
    """A re-save records the policy options it is given and applies retention, given or recorded."""
    work = c.work({"model.pt": blob("m", 100)})
    for step in (1, 2, 3, 4):
        c.work({"model.pt": blob(f"m{step}", 300)})
        c.run("save", "--step", step, "--from", work, code=0)
    before = ckpt_state(c, 4)

    res, doc = save_json(c, "--step", 4, "--from", work, "--keep-last", 3, what="re-save with --keep-last 3")
    expect_eq(doc.get("existing"), True, 're-save: "existing"', res)
    expect_eq(ref_names(doc.get("pruned")), [name(1)], "re-save --keep-last 3: pruned", res)
    expect_eq(step_dirs(c.root), [name(s) for s in (2, 3, 4)], "checkpoints after re-save --keep-last 3")
    expect_eq(load_json(c.root / "policy.json").get("keep_last"), 3, "policy.json keep_last after the re-save")
    expect_ckpt_unchanged(c, 4, before, "re-save --keep-last 3")

    pol = load_json(c.root / "policy.json")
    pol["keep_last"] = 1
    write_json(c.root / "policy.json", pol)
    res, doc = save_json(c, "--step", 4, "--from", work, what="re-save with keep_last 1 recorded")
    expect_eq(ref_names(doc.get("pruned")), [name(2), name(3)], "re-save under the recorded keep_last 1: pruned", res)
    expect_eq(step_dirs(c.root), [name(4)], "checkpoints after that re-save")

    res, doc = save_json(c, "--step", 4, "--from", work, "--keep-every", 4, what="re-save with --keep-every 4")
    pol = load_json(c.root / "policy.json")
    expect_eq((pol.get("keep_last"), pol.get("keep_every")), (1, 4), "policy.json keep_last, keep_every", res)
    expect_ckpt_unchanged(c, 4, before, "every re-save")
    expect_eq(read_last_text(c), name(4) + "\n", "ROOT/last")
    c.run("verify", "--strict", code=0)


@scenario
def restart_resave_move(c):
    """An identical re-save with --move removes the sources; the named directories stay, empty."""
    files = {"model.pt": blob("m", 900), "sub/deep/opt.pt": blob("o", 300)}
    work = c.work(files)
    c.run("save", "--step", 1, "--from", work, code=0)
    before = ckpt_state(c, 1)
    res, doc = save_json(c, "--step", 1, "--from", work, "--move", what="re-save --move --from")
    expect_eq(doc.get("existing"), True, 're-save --move: "existing"', res)
    expect_ckpt_unchanged(c, 1, before, "re-save --move")
    check(work.is_dir(), f"--from {work} stays")
    expect_eq(sorted(os.listdir(work)), [], f"{work} after re-save --move (sources and emptied subdirectories go)")

    single = c.work({"model.pt": blob("m2", 500)}, under="single")
    optim = c.work({"a.pt": blob("a", 10), "x/b.pt": blob("b", 20)}, under="optim")
    c.run("save", "--step", 2, single / "model.pt", optim, code=0)
    before2 = ckpt_state(c, 2)
    res, doc = save_json(c, "--step", 2, single / "model.pt", optim, "--move", what="re-save --move SOURCE...")
    expect_eq(doc.get("existing"), True, 're-save --move SOURCE: "existing"', res)
    expect_ckpt_unchanged(c, 2, before2, "re-save --move SOURCE")
    check(not os.path.lexists(single / "model.pt"), "the file source is removed")
    check(optim.is_dir(), "the directory source stays")
    expect_eq(sorted(os.listdir(optim)), [], "the directory source after re-save --move")
    c.run("verify", "--strict", code=0)


@scenario
def restart_resave_refused(c):
    """Other content, a missing or extra file, a size change: exit 4 and nothing changes (--move too)."""
    files = {"model.pt": blob("m", 1000), "sub/opt.pt": blob("o", 500)}
    work = c.work(files)
    c.run("save", "--step", 1, "--from", work, "--metric", "loss=1", code=0)
    c.run("save", "--step", 2, "--from", work, "--metric", "loss=2", code=0)
    (c.root / "last").write_text(name(1) + "\n")  # stale: a refused re-save must not touch it either
    state = root_state(c)

    def flip(d):
        p = d / "model.pt"
        data = bytearray(p.read_bytes())
        data[500] ^= 0xFF
        p.write_bytes(bytes(data))

    cases = {
        "other content, same size": flip,
        "a missing file": lambda d: os.remove(d / "sub" / "opt.pt"),
        "an extra file": lambda d: (d / "extra.pt").write_bytes(b"extra"),
        "a size change": lambda d: (d / "model.pt").write_bytes(files["model.pt"] + b"!"),
        "a file under another path": lambda d: os.rename(d / "sub" / "opt.pt", d / "sub" / "opt2.pt"),
    }
    for i, (label, mutate) in enumerate(cases.items()):
        for move in (False, True):
            what = f"re-save of step 1 with {label}{' --move' if move else ''}"
            d = c.tmp / f"case{i}{'m' if move else ''}"
            shutil.copytree(work, d)
            mutate(d)
            srcs = sources_with_inodes(d)
            res = c.jrun("save", "--step", 1, "--from", d, "--metric", "loss=1", *(["--move"] if move else []))
            try:
                expect_json_error(res, 4, "conflict", message=True)
                expect_eq(root_state(c), state, f"{what}: the root (markers and checkpoints)")
                expect_no_staging(c, what)
                expect_sources_back(d, srcs, what)
            except Fail as e:
                c.failures.append(f"[{what}] {e}")
    c.run("save", "--step", 1, "--from", work, "--metric", "loss=1", code=0, what="the same files still re-save")


@scenario
def restart_resave_checksum_none(c):
    """A checkpoint recorded with --checksum none cannot be shown identical: exit 4, nothing changes."""
    work = c.work({"model.pt": blob("m", 800)})
    c.run("save", "--step", 1, "--from", work, "--checksum", "none", code=0)
    check(all("sha256" not in f for f in meta(c.root, 1).get("files", [])), "--checksum none records no digest")
    state = root_state(c)
    for extra in ([], ["--checksum", "sha256"], ["--checksum", "none"]):
        what = f"re-save of a --checksum none step {' '.join(extra)}".strip()
        res = c.jrun("save", "--step", 1, "--from", work, *extra)
        expect_json_error(res, 4, "conflict", message=True)
        expect_eq(root_state(c), state, f"{what}: the root")
        expect_no_staging(c, what)
        check((work / "model.pt").is_file(), f"{what}: the source stays")


@scenario
def restart_resave_metrics_differ(c):
    """Identical files with other metrics: exit 0, a warning that the recorded metrics are kept."""
    work = c.work({"model.pt": blob("m", 600)})
    c.run("save", "--step", 1, "--from", work, "--metric", "loss=1.0", "--meta", "run=a", code=0)
    before = ckpt_state(c, 1)
    res, doc = save_json(c, "--step", 1, "--from", work, "--metric", "loss=0.5", "--meta", "run=a",
                         what="re-save with another metric value")
    expect_eq(doc.get("existing"), True, 're-save: "existing"', res)
    check(any("metrics" in line and "kept" in line and name(1) in line for line in warning_lines(res)),
          "a warning names the checkpoint and says its recorded metrics are kept", res)
    expect_ckpt_unchanged(c, 1, before, "re-save with other metrics")
    expect_eq(meta(c.root, 1).get("metrics"), {"loss": 1.0}, "the recorded metrics")
    res, doc = save_json(c, "--step", 1, "--from", work, "--metric", "loss=1.0", "--meta", "run=a",
                         what="re-save with the recorded metrics and meta")
    expect_no_warning(res, "re-save with the recorded metrics and meta")
    res, doc = save_json(c, "--step", 1, "--from", work, "--metric", "loss=1.0", "--metric", "acc=0.9",
                         "--meta", "run=a", what="re-save with an extra metric")
    check(any("metrics" in line for line in warning_lines(res)), "an extra metric is warned about too", res)
    expect_ckpt_unchanged(c, 1, before, "re-save with an extra metric")


@scenario
def restart_resave_force_replaces(c):
    """--force still replaces, with the same files (a new commit) or other ones."""
    work = c.work({"model.pt": blob("m1", 700)})
    c.run("save", "--step", 1, "--from", work, code=0)
    seq1 = meta(c.root, 1)["commit_seq"]
    res, doc = save_json(c, "--step", 1, "--from", work, "--force", what="--force with the same files")
    expect_eq(doc.get("existing"), False, '--force with the same files: "existing"', res)
    check(doc.get("commit_seq", 0) > seq1, "--force with the same files: a new commit_seq", res)
    expect_eq(meta(c.root, 1)["commit_seq"], doc["commit_seq"], "the replacement's recorded commit_seq")
    c.work({"model.pt": blob("m2", 900)})
    res, doc = save_json(c, "--step", 1, "--from", work, "--force", what="--force with other files")
    expect_eq(doc.get("existing"), False, '--force with other files: "existing"', res)
    expect_eq(user_files(c, 1), {"model.pt": blob("m2", 900)}, "step 1 after --force with other files")
    c.run("verify", "--strict", code=0)


# --------------------------------------------------------------------------
# 3. --move


@scenario
def restart_move_renames_sources_in(c):
    """--move renames each source in (same inode); --from DIR and a directory SOURCE stay, empty; later
    writes and saves never change the checkpoint."""
    work = c.work({"model.pt": blob("m1", 1200), "sub/deep/opt.pt": blob("o1", 400)})
    optim = c.work({"q.pt": blob("q1", 50), "x/p.pt": blob("p1", 60)}, under="optim")
    ino_w = inodes(work, ["model.pt", "sub/deep/opt.pt"])
    ino_o = inodes(optim, ["q.pt", "x/p.pt"])
    c.run("save", "--step", 1, "--from", work, "--move", code=0)
    for rel, ino in ino_w.items():
        expect_eq(inodes(c.root / name(1), [rel])[rel], ino, f"(dev, inode) of {name(1)}/{rel}: the source's")
        check(not os.path.lexists(work / rel), f"the source {work / rel} no longer exists")
    check(work.is_dir(), "--from DIR stays")
    expect_eq(sorted(os.listdir(work)), [], "--from DIR after --move (emptied subdirectories removed)")

    c.run("save", "--step", 2, optim, "--move", code=0)
    for rel, ino in ino_o.items():
        expect_eq(inodes(c.root / name(2), [f"optim/{rel}"])[f"optim/{rel}"], ino,
                  f"(dev, inode) of {name(2)}/optim/{rel}: the source's")
    check(optim.is_dir(), "the directory SOURCE stays")
    expect_eq(sorted(os.listdir(optim)), [], "the directory SOURCE after --move")
    c.run("verify", "--strict", code=0)
    s1, s2 = ckpt_state(c, 1), ckpt_state(c, 2)

    # The job goes on writing where it wrote before.
    c.work({"model.pt": blob("m2", 1200), "sub/deep/opt.pt": blob("o2", 400)})
    c.work({"q.pt": blob("q2", 50), "x/p.pt": blob("p2", 60)}, under="optim")
    expect_ckpt_unchanged(c, 1, s1, "new files written into the work dir")
    expect_ckpt_unchanged(c, 2, s2, "new files written into the optim dir")
    c.run("save", "--step", 3, "--from", work, "--move", code=0)
    c.run("save", "--step", 4, optim, "--move", code=0)
    c.work({"model.pt": blob("m3", 10)})
    with open(work / "model.pt", "r+b") as f:  # and rewritten in place
        f.write(b"in place")
    expect_ckpt_unchanged(c, 1, s1, "the later saves")
    expect_ckpt_unchanged(c, 2, s2, "the later saves")
    expect_eq(user_files(c, 3), {"model.pt": blob("m2", 1200), "sub/deep/opt.pt": blob("o2", 400)}, "step 3")
    c.run("verify", "--strict", code=0)


@scenario
def restart_move_hardlinked_source_copied(c):
    """A source with a second hard link is copied, not renamed; the other name is the user's alone."""
    work = c.work({"a.bin": blob("a", 1000), "b.bin": blob("b", 800)})
    other = c.tmp / "keep.bin"
    os.link(work / "a.bin", other)
    ino = inodes(work, ["a.bin", "b.bin"])
    c.run("save", "--step", 1, "--from", work, "--move", code=0)
    d = c.root / name(1)
    check(inodes(d, ["a.bin"])["a.bin"] != ino["a.bin"], "a.bin (two links) is copied: another inode")
    expect_eq(inodes(d, ["b.bin"])["b.bin"], ino["b.bin"], "b.bin (one link) is renamed in: the same inode")
    check(not os.path.lexists(work / "a.bin") and not os.path.lexists(work / "b.bin"),
          "both sources are removed after the commit")
    expect_eq(other.read_bytes(), blob("a", 1000), "the other name keeps its content")
    expect_eq(os.lstat(other).st_nlink, 1, "the other name's link count")
    before = ckpt_state(c, 1)
    with open(other, "r+b") as f:
        f.write(b"rewritten in place")
    expect_ckpt_unchanged(c, 1, before, "the other name rewritten in place")
    c.run("verify", "--strict", code=0)


@scenario
def restart_move_failure_puts_sources_back(c):
    """A --move save that fails before its commit leaves every source at its path, the same file."""
    seed = c.work({"m.pt": blob("seed", 10)}, under="seed")
    c.run("save", "--step", 1, "--from", seed, "--metric", "val_loss=1", "--metric", "acc=0.5",
          "--best-key", "val_loss", code=0)
    work = c.work({"model.pt": blob("m", 1500), "sub/opt.pt": blob("o", 300)})
    srcs = sources_with_inodes(work)
    state = root_state(c)

    def after(what):
        expect_sources_back(work, srcs, what)
        check((work / "sub").is_dir(), f"{what}: the source subdirectory stays")
        expect_eq(root_state(c), state, f"{what}: the root")
        expect_no_staging(c, what)

    # a conflicting best key (refused before anything is staged)
    res = c.jrun("save", "--step", 2, "--from", work, "--move", "--best-key", "other", "--metric", "other=1")
    expect_json_error(res, 4, "conflict", message=True)
    after("--best-key other")

    # the root lock busy: refused after the sources were renamed into staging
    fd = os.open(c.root / ".ckpt" / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        res = c.jrun("save", "--step", 2, "--from", work, "--move", "--metric", "val_loss=0.5", lock_timeout="0")
        expect_json_error(res, 5, "locked", message=True)
        after("root lock busy, --lock-timeout 0")

        # best.json switched to another key while the save waits for the lock: refused under the lock
        cmd = [BIN, "--lock-timeout", "60", "--json", "-C", str(c.root), "save", "--step", "2", "--from",
               str(work), "--move", "--metric", "val_loss=0.5", "--best-key", "val_loss"]
        p = subprocess.Popen(cmd, cwd=str(c.tmp), env=c.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 30  # a wait for a state, not a timed assertion
            while any((work / rel).exists() for rel in srcs) and p.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            check(p.poll() is None and not any((work / rel).exists() for rel in srcs),
                  f"the save should be waiting for the lock with its sources moved in (exit {p.poll()}, "
                  f"work dir: {sorted(files_of(work))})")
            best = read_best(c.root)
            best.update({"key": "acc", "mode": "max", "value": 0.5})
            write_json(c.root / "best.json", best)
            state = root_state(c)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            try:
                out, err = p.communicate(timeout=DEFAULT_TIMEOUT)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
        res = Result(cmd, p.returncode, out.decode(errors="replace"), err.decode(errors="replace"))
        expect_json_error(res, 4, "conflict", message=True)
        after("best.json switched while the save waited for the lock")
    finally:
        os.close(fd)
    expect_latest(c, 1, "after the failed saves")


@scenario
def restart_move_killed_before_commit(c):
    """SIGKILL on the commit rename of a --move save: the files wait in staging with a journal; prune
    --dry-run lists them, prune puts them back, never over something written since."""
    seed = c.work({"m.pt": blob("seed", 10)}, under="seed")
    c.run("save", "--step", 1, "--from", seed, code=0)
    work = c.work({"a.bin": blob("a", 1000), "sub/deep/b.bin": blob("b", 500)})
    srcs = sources_with_inodes(work)
    killed = c.kill_at("renameat2", 3, "save", "--step", 2, "--from", work, "--move")
    check(f'"{c.root / name(2)}"' in killed and "staging" in killed,
          f"killed at renameat2({killed}), not at the commit rename of the staging directory")
    expect_eq(step_dirs(c.root), [name(1)], "checkpoints after the kill")
    expect_eq(files_of(work), {}, "the work dir after the kill (its files were renamed into staging)")
    st = staging_dirs(c.root)
    check(len(st) == 1 and st[0].startswith(name(2) + "."), f"one staging directory {name(2)}.<id> (got {st})")
    sdir = c.root / ".ckpt" / "staging" / st[0]
    check((c.root / ".ckpt" / "staging" / (st[0] + ".moves")).is_file(), f"a journal {st[0]}.moves beside it "
          f"(staging: {private_entries(c.root, 'staging')})")
    for rel, (data, ino) in srcs.items():
        expect_eq(inodes(sdir, [rel])[rel], ino, f"the staged {rel} is the source file")
    expect_latest(c, 1, "after the kill")
    c.run("verify", "--strict", code=0, what="verify after the kill")

    staging_before = snapshot(c.root / ".ckpt" / "staging")
    res = c.jrun("prune", "--keep-last", 10, "--dry-run", code=0)
    expected = sorted(f"{work / rel} (put back)" for rel in srcs)
    expect_eq(sorted(x for x in res.json().get("cleaned", []) if x.endswith("(put back)")), expected,
              "prune --dry-run --json: cleaned lists each source it would put back", res)
    res = c.run("prune", "--keep-last", 10, "--dry-run", code=0)
    expect_eq(files_of(work), {}, "the work dir after prune --dry-run (nothing moved)")
    expect_eq(snapshot(c.root / ".ckpt" / "staging"), staging_before, "staging after prune --dry-run")

    # the job wrote a new a.bin meanwhile: it stays, the staged one is dropped
    (work / "a.bin").write_bytes(b"written after the kill")
    res = c.jrun("prune", "--keep-last", 10, code=0)
    cleaned = res.json().get("cleaned", [])
    check(f"{work / 'sub/deep/b.bin'} (put back)" in cleaned and f"{work / 'a.bin'} (put back)" not in cleaned,
          "prune --json: cleaned lists sub/deep/b.bin as put back, and not a.bin", res)
    expect_eq((work / "a.bin").read_bytes(), b"written after the kill", "a.bin written after the kill stays")
    expect_sources_back(work, {"sub/deep/b.bin": srcs["sub/deep/b.bin"]}, "after prune")
    expect_no_staging(c, "after prune")
    expect_eq(step_dirs(c.root), [name(1)], "checkpoints after prune")
    c.run("verify", "--strict", code=0, what="verify after prune")


@scenario
def restart_move_killed_recovered_by_next_save(c):
    """A --move save killed between two of its renames; the next save, of another step and other files,
    puts the moved file back first; then the step saves."""
    work = c.work({"a.bin": blob("a", 300), "b.bin": blob("b", 400), "sub/c.bin": blob("c", 500)})
    srcs = sources_with_inodes(work)
    killed = c.kill_at("renameat2", 2, "save", "--step", 2, "--from", work, "--move")
    check(str(work) in killed and ".ckpt/staging/" in killed,
          f"killed at renameat2({killed}), not at the rename of a source into staging")
    check(0 < len(files_of(work)) < len(srcs), f"some sources moved, some not (work dir: {sorted(files_of(work))})")
    other = c.work({"o.bin": blob("o", 50)}, under="other")
    res, doc = save_json(c, "--step", 7, "--from", other, what="the next save, of step 7")
    expect_eq(doc.get("name"), name(7), "the next save commits its own step", res)
    expect_sources_back(work, srcs, "after the next save")
    expect_no_staging(c, "after the next save")
    expect_eq(step_dirs(c.root), [name(7)], "checkpoints after the next save")
    c.run("save", "--step", 2, "--from", work, "--move", code=0)
    expect_eq(user_files(c, 2), {rel: data for rel, (data, _ino) in srcs.items()}, "step 2's files")
    expect_eq(sorted(os.listdir(work)), [], "the work dir after step 2's --move")
    expect_latest(c, 2, "after step 2")
    c.run("verify", "--strict", code=0)


@scenario
def restart_move_killed_after_commit(c):
    """A --move save killed after its commit: the files belong to the checkpoint, prune puts nothing back;
    with --force, the replaced checkpoint's files are never given to the user."""
    work = c.work({"a.bin": blob("a", 300), "sub/b.bin": blob("b", 200)})
    srcs = sources_with_inodes(work)
    c.run("save", "--step", 1, "--from", c.work({"s": b"s"}, under="seed"), code=0)
    kill_after_commit(c, work, 2, move=True)
    for rel, (data, ino) in srcs.items():
        expect_eq(inodes(c.root / name(2), [rel])[rel], ino, f"{name(2)}/{rel} is the moved source")
    before = ckpt_state(c, 2)
    expect_latest(c, 2, "after the kill", warn_names=(name(1), name(2)))
    c.run("prune", "--keep-last", 10, code=0)
    expect_eq(files_of(work), {}, "the work dir after prune: nothing put back")
    expect_ckpt_unchanged(c, 2, before, "prune after the kill")
    expect_no_staging(c, "after prune")
    c.run("verify", code=0)

    # --force --move: the exchange parks the replaced step 2 in staging, where the journal points
    c.work({"a.bin": blob("a2", 300), "sub/b.bin": blob("b2", 200)})
    srcs2 = sources_with_inodes(work)
    kill_after_commit(c, work, 2, "--force", move=True)
    expect_eq(user_files(c, 2), {rel: data for rel, (data, _i) in srcs2.items()}, "step 2 replaced")
    before = ckpt_state(c, 2)
    res = c.jrun("prune", "--keep-last", 10, code=0)
    check(not any(x.endswith("(put back)") for x in res.json().get("cleaned", [])), "nothing is put back", res)
    expect_eq(files_of(work), {}, "the work dir after prune: the replaced checkpoint's files are not put there")
    expect_ckpt_unchanged(c, 2, before, "prune after the --force kill")
    expect_no_staging(c, "after prune")
    c.run("verify", code=0)


# --------------------------------------------------------------------------
# 4-6. what a script reads


@scenario
def restart_not_found_reasons(c):
    """Not found is exit 3, with a reason telling a wrong root from a new run from a missing ref."""
    def reason(res, expected, what):
        err = expect_json_error(res, 3, "not_found", message=True)
        expect_eq(err.get("reason"), expected, f"{what}: error.reason", res)

    reason(c.jrun("load", "latest", root=c.tmp / "nope"), "no_root", "load latest, no such root")
    empty = c.tmp / "empty"
    empty.mkdir()
    reason(c.jrun("load", "latest", root=empty), "empty_root", "load latest, empty root")
    reason(c.jrun("load", "best", root=empty), "empty_root", "load best, empty root")
    work = c.work({"model.pt": blob("m", 100)})
    c.run("save", "--step", 1, "--from", work, code=0)
    reason(c.jrun("load", "999"), "no_checkpoint", "load 999")
    reason(c.jrun("load", name(999)), "no_checkpoint", f"load {name(999)}")
    reason(c.jrun("load", "best"), "no_checkpoint", "load best without best.json")
    reason(c.jrun("load", "latest", "--only", "nomatch"), "no_match", "load latest --only nomatch")
    reason(c.jrun("load", "latest", "--weights-only"), "no_match", "load latest --weights-only, none recorded")
    reason(c.jrun("save", "--step", 2, c.tmp / "missing.bin"), "no_source", "save --step 2 missing.bin")
    expect_eq(step_dirs(c.root), [name(1)], "checkpoints")


@scenario
def restart_verify_failure_on_stderr(c):
    """A failing verify: the report on stdout and one error on stderr (--json: one JSON line); -q: nothing."""
    work = c.work({"model.pt": blob("m", 2000), "opt.pt": blob("o", 100)})
    c.run("save", "--step", 1, "--from", work, code=0)
    res = c.run("verify", code=0)
    expect_eq(res.err, "", "a passing verify: stderr", res)
    res = c.jrun("verify", code=0)
    expect_eq(res.err, "", "a passing verify --json: stderr", res)
    check(res.json().get("ok") is True, "a passing verify --json: ok", res)

    p = c.root / name(1) / "model.pt"
    data = bytearray(p.read_bytes())
    data[1000] ^= 0xFF
    p.write_bytes(bytes(data))

    res = c.jrun("verify", code=1)
    doc = res.json()
    check(doc.get("ok") is False and any(not cp.get("ok") for cp in doc.get("checkpoints", [])),
          "verify --json on stdout: ok false, the checkpoint not ok", res)
    lines = [line for line in res.err.splitlines() if line.strip()]
    check(len(lines) == 1, "verify --json: exactly one line on stderr", res)
    try:
        err = json.loads(lines[0]).get("error") or {}
    except ValueError as e:
        raise Fail(f"verify --json: the stderr line is not JSON ({e})\n{res.describe()}")
    expect_eq((err.get("code"), err.get("kind")), (1, "integrity"), "verify --json: error code, kind", res)

    res = c.run("verify", code=1)
    check(any(line.startswith("ckpt: error: verification failed") for line in res.err.splitlines()),
          "verify: a 'ckpt: error: verification failed...' line on stderr", res)
    check("model.pt" in res.out, "verify: the report on stdout names the file", res)
    res = c.run("-q", "verify", code=1)
    expect_eq((res.out, res.err), ("", ""), "verify -q: stdout, stderr", res)


@scenario
def restart_load_json_and_dir(c):
    """load --json carries the recorded values; --dir prints the one verified directory."""
    work = c.work({"a.bin": blob("a", 700), "sub/w.safetensors": blob("w", 300)})
    c.run("save", "--step", 7, "--from", work, "--metric", "loss=nan", "--metric", "acc=0.5", "--meta", "git=abc",
          "--weights", "sub/*.safetensors", code=0)
    m = meta(c.root, 7)
    d = c.root / name(7)
    res = c.jrun("load", "7", code=0)
    doc = res.json()
    for key in ("name", "step", "commit_seq", "created", "metrics", "meta", "weights", "total_size", "checksum"):
        expect_eq(doc.get(key), m.get(key), f"load --json {key} (= _checkpoint.json)", res)
    expect_eq(doc.get("file_count"), len(m["files"]), "load --json file_count", res)
    expect_eq(doc.get("metrics"), {"acc": 0.5, "loss": None}, "load --json metrics (nan -> null)", res)
    expect_eq(doc.get("weights"), ["sub/w.safetensors"], "load --json weights", res)
    expect_eq((doc.get("path"), doc.get("dir")), (str(d), str(d)), "load --json path, dir", res)
    expect_eq(load_locations(doc), {"a.bin": str(d / "a.bin"), "sub/w.safetensors": str(d / "sub/w.safetensors")},
              "load --json files (stored path: location)", res)
    expect_eq([{k: v for k, v in f.items() if k != "location"} for f in doc["files"]], m["files"],
              "load --json files: path, size and sha256 as _checkpoint.json records them", res)

    res = c.run("load", "latest", "--dir", code=0)
    expect_eq(res.out, f"{d}\n", "load latest --dir: one line, the checkpoint directory", res)
    res = c.run("load", "7", "--weights-only", "--dir", code=0)
    expect_eq(res.out, f"{d}\n", "load 7 --weights-only --dir", res)
    res = c.run("load", "7", "--to", "D", "--dir", code=0)
    expect_eq(res.out, f"{c.tmp / 'D'}\n", "load --to D --dir (D relative): one line, D absolute", res)
    expect_eq(files_of(c.tmp / "D"), {"a.bin": blob("a", 700), "sub/w.safetensors": blob("w", 300)},
              "the files under D")
    res = c.jrun("load", "7", "--to", "D2", "--only", "a.bin", code=0)
    expect_eq((res.json().get("dir"), load_locations(res.json())),
              (str(c.tmp / "D2"), {"a.bin": str(c.tmp / "D2" / "a.bin")}), "load --json --to D2: dir, files", res)

    p = d / "a.bin"
    data = bytearray(p.read_bytes())
    data[10] ^= 0xFF
    p.write_bytes(bytes(data))
    for args in (("--dir",), ("--to", "D3", "--dir"), ("--json",)):
        res = c.run("load", "7", *args, code=1, what=f"load 7 {' '.join(args)} with a corrupt file")
        expect_eq(res.out, "", f"load 7 {' '.join(args)} with a corrupt file: stdout", res)


if __name__ == "__main__":
    sys.exit(harness.main(sys.argv, __doc__, SCENARIOS, Ctx, "ckpt-restart"))
