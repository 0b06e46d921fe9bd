#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End-to-end scenarios of the Python helper examples/python/ckpt.py: every method
against the real binary, and every exception class raised by a real failure of
that kind (a corrupt file, a bad option, a missing root, a held lock, ...).

The helper is what users copy and what examples/pytorch/train.py imports; these
scenarios run it in this process (any python3 from 3.9 on; standard library only).

    python3 tests/cli/e2e_python_helper.py --list          one scenario name per line
    python3 tests/cli/e2e_python_helper.py NAME [NAME...]  run scenarios; exit 0 when all pass
    python3 tests/cli/e2e_python_helper.py --all           run every scenario

The binary comes from $CKPT_BIN, else ../../build/release/apps/ckpt/ckpt
relative to this file, and is given to the helper as Ckpt(binary=...). Every
scenario runs in a fresh temporary directory $TMPDIR/ckpt-pyhelper-<name>-*,
removed on success and kept (its path printed) on failure; set CKPT_E2E_KEEP=1
to keep it on success too.
"""

import ast
import contextlib
import fcntl
import json
import os
import pathlib
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import BIN, Fail, check, expect_eq, name  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
HELPER_DIR = (HERE / ".." / ".." / "examples" / "python").resolve()
sys.path.insert(0, str(HELPER_DIR))
import ckpt as helper  # noqa: E402  (examples/python/ckpt.py)
from ckpt import (Ckpt, CkptError, CkptInterrupted, CkptIOError, ConflictError, IntegrityError,  # noqa: E402
                  KilledError, LockedError, NotFoundError, UnsupportedError, UsageError)

SCENARIOS, scenario = harness.registry()

EXCEPTIONS = {1: IntegrityError, 2: UsageError, 3: NotFoundError, 4: ConflictError, 5: LockedError,
              6: CkptIOError, 7: UnsupportedError, 130: CkptInterrupted}
KINDS = {1: "integrity", 2: "usage", 3: "not_found", 4: "conflict", 5: "locked", 6: "io", 7: "unsupported",
         130: "interrupted"}


class Ctx(harness.RootCtx):
    def ck(self, root=None, **options):
        """A Ckpt on ROOT (default: the scenario's root) running the binary under test."""
        return Ckpt(self.root if root is None else root, binary=BIN, **options)

    def write(self, rel, data):
        p = self.src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return p

    def fake(self, body):
        """A fake ckpt: a shell script with BODY, to give the helper what the real one never prints."""
        p = self.tmp / "fake-ckpt"
        p.write_text("#!/bin/sh\n" + body + "\n")
        p.chmod(0o755)
        return str(p)


def raises(cls, fn, *args, what, code=None, kind=None, reason="any", **kwargs):
    """Runs fn(*args, **kwargs), which must raise exactly CLS (a CkptError) with the exit code and
    kind of that class (or CODE, KIND) and, unless "any", this reason. Returns the exception."""
    try:
        got = fn(*args, **kwargs)
    except CkptError as e:
        check(type(e) is cls, f"{what}: expected {cls.__name__}, got {type(e).__name__}: {e}\n"
              f"  command: {e.command}\n  stderr: {e.stderr!r}")
        code = code if code is not None else next(c for c, k in EXCEPTIONS.items() if k is cls)
        expect_eq(e.code, code, f"{what}: .code")
        expect_eq(e.kind, kind or KINDS[code], f"{what}: .kind")
        if reason != "any":
            expect_eq(e.reason, reason, f"{what}: .reason")
        check(isinstance(e.message, str) and e.message, f"{what}: .message must be a non-empty string: {e!r}")
        check(isinstance(e.warnings, list), f"{what}: .warnings must be a list: {e.warnings!r}")
        check(str(e) == f"ckpt: {e.kind}: {e.message}", f"{what}: str(e) is {str(e)!r}")
        check(isinstance(e.command, list) and e.command[1:2] == ["--json"], f"{what}: .command is {e.command!r}")
        return e
    raise Fail(f"{what}: expected {cls.__name__}, but it returned {got!r}")


def flip_byte(path, offset=0):
    data = bytearray(pathlib.Path(path).read_bytes())
    data[offset] ^= 0xFF
    pathlib.Path(path).write_bytes(bytes(data))


@contextlib.contextmanager
def root_lock(root):
    """Holds ROOT's lock (.ckpt/lock, flock) in this process, as a ckpt committing a save would."""
    with open(pathlib.Path(root) / ".ckpt" / "lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def waiting_child(deadline):
    """The pid of our ckpt child once it holds a file of ROOT/.ckpt open (a save's staging lock: it is
    past its start and polls the root lock), or None."""
    while time.monotonic() < deadline:
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                stat = pathlib.Path(f"/proc/{d}/stat").read_text()
                if int(stat[stat.rfind(")") + 2:].split()[1]) != os.getpid():
                    continue
                fds = os.listdir(f"/proc/{d}/fd")
                if any("/.ckpt/" in os.readlink(f"/proc/{d}/fd/{fd}") for fd in fds):
                    return int(d)
            except (OSError, ValueError, IndexError):
                continue
        time.sleep(0.01)
    return None


def signal_when_waiting(sig, found):
    """A thread that sends SIG to our ckpt child once it waits on the root lock; found[0]: its pid."""
    def run():
        pid = waiting_child(time.monotonic() + 30)
        found.append(pid)
        if pid is not None:
            time.sleep(0.2)  # it is in its lock wait
            os.kill(pid, sig)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


# --------------------------------------------------------------------------
# the file itself


@scenario
def helper_is_one_stdlib_file(c):
    """examples/python/ckpt.py parses as Python 3.9, imports only the standard library (it imports in
    an isolated interpreter without site-packages) and exports what its docstring lists."""
    path = HELPER_DIR / "ckpt.py"
    source = path.read_text()
    try:
        ast.parse(source, feature_version=(3, 9))
    except SyntaxError as e:
        raise Fail(f"{path} is not Python 3.9: {e}")
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import ckpt; "
             "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] == 'ckpt')))")
    res = harness.execute([sys.executable, "-I", "-S", "-c", probe, str(HELPER_DIR)], cwd=str(c.tmp),
                          env=harness.child_env(), timeout=60, code=0, what="import ckpt with -I -S")
    expect_eq(res.out.split(), ["ckpt"], "the modules named ckpt once it is imported (one file, no package)", res)
    for n in helper.__all__:
        check(hasattr(helper, n), f"ckpt.__all__ names {n}, which the module does not define")
    for code, cls in EXCEPTIONS.items():
        check(issubclass(cls, CkptError) and helper.ERRORS[code] is cls, f"exit {code}: {cls.__name__}")
    check(issubclass(KilledError, CkptError), "KilledError is a CkptError")
    check(len(set(EXCEPTIONS.values()) | {KilledError}) == 9, "one class per exit status, and KilledError")


# --------------------------------------------------------------------------
# the methods, against the real binary


@scenario
def helper_round_trip(c):
    """save, info, path, verify, load (files, weights_only, only, to) and version return the
    documented JSON, and the files load gives are the ones saved."""
    ck = c.ck(lock_timeout=5, threads=2)
    model = c.write("model.bin", os.urandom(4096))
    c.write("work/optim.pt", b"optimizer state")
    c.write("work/sub/rng.pt", b"rng")
    third = 1 / 3
    s1 = ck.save(100, model, f"extra/notes.txt={c.write('notes', b'hello')}", from_dir=c.src / "work",
                 metrics={"val_loss": third, "tokens": 10 ** 15}, meta={"git": "abc123"}, weights="model.bin",
                 best_key="val_loss", keep_last=5)
    expect_eq((s1["name"], s1["step"], s1["existing"], s1["best_updated"], s1["pruned"]),
              (name(100), 100, False, True, []), "save 100: name, step, existing, best_updated, pruned")
    expect_eq(s1["metrics"], {"val_loss": third, "tokens": 10 ** 15}, "save 100: metrics, every digit kept")
    expect_eq(harness.meta(c.root, 100)["meta"], {"git": "abc123"}, "save 100: meta in the manifest")
    check(s1["warnings"] == [] and s1["root"] == str(c.root.resolve()), f"save 100: {s1}")
    again = ck.save(100, model, f"extra/notes.txt={c.src / 'notes'}", from_dir=str(c.src / "work"),
                    metrics={"val_loss": third, "tokens": 10 ** 15}, meta={"git": "abc123"}, weights=["model.bin"],
                    best_key="val_loss")
    check(again["existing"] is True, f"saving step 100 again with the same files: existing: {again}")
    s2 = ck.save(200, model, metrics={"val_loss": 0.5}, best_key="val_loss")
    check(s2["best_updated"] is False and s2["best"]["name"] == name(100), f"save 200 is no better: {s2}")

    table = ck.info()
    expect_eq(harness.ref_names(table["checkpoints"]), [name(100), name(200)], "info: the checkpoints")
    expect_eq((harness.ref_name(table["last"]), harness.ref_name(table["best"])), (name(200), name(100)),
              "info: last, best")
    one = ck.info("best")
    for k, v in harness.manifest_view(harness.meta(c.root, 100)).items():
        expect_eq(one.get(k), v, f"info best: {k} (the manifest's)")
    expect_eq(ck.info(limit=1)["checkpoints"][0]["name"], name(200), "info limit=1")
    expect_eq(ck.path(), str(c.root.resolve() / name(200)), "path(): latest")
    expect_eq(ck.path(100), str(c.root.resolve() / name(100)), "path(100)")

    report = ck.verify()
    check(report["ok"] is True and len(report["checkpoints"]) == 2, f"verify: {report}")
    expect_eq(ck.verify(100, quick=True)["checkpoints"][0]["name"], name(100), "verify 100 --quick")

    got = ck.load(100)
    check(isinstance(got, helper.Loaded) and isinstance(got, dict), f"load returns a Loaded dict: {type(got)}")
    expect_eq(sorted(got.files), ["extra/notes.txt", "model.bin", "optim.pt", "sub/rng.pt"], "load: stored paths")
    expect_eq(got.files, harness.load_locations(got), "load: .files is {path: location} of its files list")
    for stored, where in got.files.items():
        check(os.path.isabs(where), f"load: {stored} at {where} (not absolute)")
    expect_eq(pathlib.Path(got.files["model.bin"]).read_bytes(), model.read_bytes(), "load: model.bin's bytes")
    expect_eq(got["step"], 100, "load: step")
    expect_eq(list(ck.load(100, weights_only=True).files), ["model.bin"], "load weights_only")
    expect_eq(sorted(ck.load(100, only=["*.pt", "sub/*"]).files), ["optim.pt", "sub/rng.pt"], "load only")
    to = c.tmp / "restore"
    copied = ck.load("best", to=to)
    expect_eq(copied.files["optim.pt"], str(to.resolve() / "optim.pt"), "load to: the copy's location")
    expect_eq((to / "optim.pt").read_bytes(), b"optimizer state", "load to: the copy's bytes")

    v = ck.version()
    check(isinstance(v["version"], str) and v["format_version"] >= 1, f"version: {v}")


@scenario
def helper_changes(c):
    """prune (dry run and real), diff, promote_best, rm, rollback and abort through the helper."""
    ck = c.ck()
    f = c.write("w.bin", b"w")
    for step, loss in ((1, 0.9), (2, 0.3), (3, 0.5), (4, 0.7), (5, 0.6)):
        f.write_bytes(b"w%d" % step)
        ck.save(step, f, metrics={"loss": loss}, best_key="loss")
    plan = ck.prune(keep_last=2, dry_run=True)
    check(plan["dry_run"] is True and harness.ref_names(plan["removed"]) == [name(1), name(3)],
          f"prune keep_last=2 dry_run: removes 1 and 3 (keeps the best, 2): {plan}")
    expect_eq(len(harness.step_dirs(c.root)), 5, "a dry run removes nothing")
    done = ck.prune(keep_last=2)
    expect_eq(harness.ref_names(done["removed"]), [name(1), name(3)], "prune keep_last=2")
    expect_eq(harness.step_dirs(c.root), [name(2), name(4), name(5)], "the checkpoints after prune")

    d = ck.diff(2, "latest")
    check(d["differ"] is True and [x["path"] for x in d["changed"]] == ["w.bin"], f"diff 2 latest: {d}")
    expect_eq(d["metrics"]["loss"], {"a": 0.3, "b": 0.6}, "diff: metrics side by side")

    p = ck.promote_best(5, key="acc", mode="max", value=0.8, force=True)
    expect_eq(harness.ref_name(p["best"]), name(5), f"promote_best 5 --key acc --force: {p}")
    e = raises(ConflictError, ck.rm, 5, what="rm the best (and last) without force", reason="protected")
    check("--force" in e.message, f"the message says how: {e.message}")
    gone = ck.rm(4, dry_run=True)
    check(gone["dry_run"] is True and harness.ref_names(gone["removed"]) == [name(4)], f"rm 4 dry_run: {gone}")
    expect_eq(harness.ref_names(ck.rm(4)["removed"]), [name(4)], "rm 4")
    back = ck.rollback(2)
    expect_eq(harness.ref_names(back["removed"]), [name(5)], "rollback 2")
    expect_eq((c.root / "last").read_text(), name(2) + "\n", "last after rollback 2")

    # a pending sharded step, then abort
    ck.save(7, f, shard="0/2", group="g1")
    check(ck.info()["pending"], "a half-saved sharded step is pending")
    a = ck.abort(7)
    check(isinstance(a, dict) and not ck.info()["pending"], f"abort 7: {a}")
    expect_eq(ck.verify(strict=True)["ok"], True, "verify --strict at the end")


@scenario
def helper_raw_command_and_options(c):
    """ck("ARGS") runs any command line; module-level ckpt() does too; the global options, the root
    and $CKPT_BIN reach the command line as ckpt expects them."""
    ck = c.ck()
    f = c.write("a", b"a")
    ck("save", "--step", 3, f)
    doc = ck("info", "--limit", "1")
    expect_eq(harness.ref_names(doc["checkpoints"]), [name(3)], 'ck("info", "--limit", "1")')
    expect_eq(helper.ckpt("info", "latest", root=c.root, binary=BIN)["name"], name(3), "ckpt(..., root=)")
    check("Usage" in ck("info", "--help"), "output that is not JSON comes back as text")

    # what the binary is given: a fake that prints its arguments as JSON
    echo = c.fake(f'exec {sys.executable} -c "import json, sys; print(json.dumps(sys.argv[1:]))" "$@"')
    argv = Ckpt(c.root, binary=echo, lock_timeout=0, threads=1, no_fsync=True).save(
        5, f, "-odd", from_dir=["d1", "d2"], metrics={"loss": 0.1, "n": 7}, meta={"k": "v w"}, weights=["a", "b"],
        best_key="loss", mode="min", keep_last=3, keep_within="7d", move=True, dedup=False, shard="1/4")
    expect_eq(argv, ["--json", "-C", str(c.root), "--lock-timeout", "0", "--threads", "1", "--no-fsync",
                     "save", "--step", "5", "--from", "d1", "--from", "d2", "--metric", "loss=0.1", "--metric",
                     "n=7", "--meta", "k=v w", "--weights", "a", "--weights", "b", "--best-key", "loss",
                     "--mode", "min", "--keep-last", "3", "--keep-within", "7d", "--move", "--shard", "1/4",
                     "--no-dedup", "--", str(f), "-odd"], "the command line of a save")
    expect_eq(Ckpt(binary=echo).verify(quick=True), ["--json", "verify", "--quick"],
              "no root given: no -C (ckpt then uses $CKPT_ROOT, else the current directory)")
    saved = os.environ.get("CKPT_BIN")
    os.environ["CKPT_BIN"] = echo
    try:
        expect_eq(Ckpt(c.root).verify("best", strict=True), ["--json", "-C", str(c.root), "verify",
                  "--strict", "--", "best"], "$CKPT_BIN is the binary when none is given")
    finally:
        if saved is None:
            del os.environ["CKPT_BIN"]
        else:
            os.environ["CKPT_BIN"] = saved
    check(Ckpt(binary=None).binary in (saved or "ckpt", "ckpt"), "the binary: $CKPT_BIN, else ckpt")


# --------------------------------------------------------------------------
# one exception per exit status, each from a real failure


@scenario
def helper_integrity_error_has_the_report(c):
    """A corrupt file: verify raises IntegrityError whose .report names the file; load of that
    checkpoint raises IntegrityError too; the warnings of the failing command are on .warnings."""
    ck = c.ck()
    w = c.write("model.bin", os.urandom(1000))
    ck.save(1, w)
    ck.save(2, w)
    flip_byte(c.root / name(1) / "model.bin", 10)
    (c.root / "last").write_text("nonsense\n")  # a warning, too
    e = raises(IntegrityError, ck.verify, what="verify a corrupt checkpoint")
    check(isinstance(e.report, dict) and e.report.get("ok") is False, f"IntegrityError.report: {e.report!r}")
    bad = [(chk["name"], p["path"], p["severity"]) for chk in e.report["checkpoints"] for p in chk["problems"]]
    expect_eq(bad, [(name(1), "model.bin", "failure")], "the report names the corrupt file")
    check(any("last" in w for w in e.warnings), f"the stale last marker is on .warnings: {e.warnings}")
    e = raises(IntegrityError, ck.load, 1, what="load a corrupt checkpoint")
    expect_eq(e.report, None, "load prints no report: .report is None")
    expect_eq(ck.verify(2)["ok"], True, "the other checkpoint verifies")


@scenario
def helper_usage_error(c):
    """A bad option value, an unknown option and a bad ref raise UsageError."""
    ck = c.ck()
    f = c.write("a", b"a")
    ck.save(1, f)
    raises(UsageError, ck.save, 2, f, mode="sideways", what="save --mode sideways")
    raises(UsageError, ck, "info", "--no-such-option", what="an unknown option")
    raises(UsageError, ck.info, "../elsewhere", what="a ref outside the root")
    raises(UsageError, ck.prune, what="prune with no rule given or recorded")
    expect_eq(harness.step_dirs(c.root), [name(1)], "nothing changed")


@scenario
def helper_not_found_reasons(c):
    """NotFoundError's .reason tells a missing root from an empty one, a missing checkpoint, a
    selection of nothing and a missing save source."""
    missing = c.tmp / "typo" / "checkpoints"
    raises(NotFoundError, c.ck(missing).load, "latest", what="load from a missing root", reason="no_root")
    check(not missing.exists(), "a load from a missing root creates nothing")
    c.root.mkdir()
    raises(NotFoundError, c.ck().load, "latest", what="load from an empty root", reason="empty_root")
    ck = c.ck()
    ck.save(1, c.write("a.bin", b"a"))
    raises(NotFoundError, ck.load, 99, what="load 99", reason="no_checkpoint")
    raises(NotFoundError, ck.load, "best", what="load best without best.json", reason="no_checkpoint")
    raises(NotFoundError, ck.load, 1, only="*.pt", what="load --only matching nothing", reason="no_match")
    raises(NotFoundError, ck.save, 2, c.src / "missing.pt", what="save a missing source", reason="no_source")


@scenario
def helper_conflict_error(c):
    """Saving an existing step with other files raises ConflictError; force=True replaces it."""
    ck = c.ck()
    ck.save(1, c.write("a", b"a"))
    e = raises(ConflictError, ck.save, 1, c.write("b", b"b"), what="save step 1 again with other files")
    check("step 1" in e.message, f"the message names the step: {e.message}")
    ck.save(2, c.src / "a", metrics={"m": 1}, best_key="m")
    raises(ConflictError, ck.save, 3, c.src / "a", metrics={"m": 1}, best_key="m", mode="max",
           what="another best mode than best.json's")
    check(ck.save(1, c.src / "b", force=True)["existing"] is False, "force=True replaces step 1")


@scenario
def helper_locked_error(c):
    """With the root lock held, a command that changes the root raises LockedError at once with
    lock_timeout=0; once the lock is free it runs."""
    ck = c.ck(lock_timeout=0)
    f = c.write("a", b"a")
    ck.save(1, f)
    ck.save(2, f)
    with root_lock(c.root):
        t0 = time.monotonic()
        e = raises(LockedError, ck.prune, keep_last=1, what="prune with the lock held, lock_timeout=0")
        check(time.monotonic() - t0 < 10, "lock_timeout=0 fails at once")
        check("lock" in e.message, f"the message says the root is locked: {e.message}")
        raises(LockedError, ck.save, 3, f, what="save with the lock held, lock_timeout=0")
        expect_eq(ck.info()["total"], 2, "info takes no lock: it runs")
    expect_eq(harness.ref_names(ck.prune(keep_last=1)["removed"]), [name(1)], "prune once the lock is free")


@scenario
def helper_io_error(c):
    """Materialising under a path that is a file raises CkptIOError."""
    ck = c.ck()
    ck.save(1, c.write("a", b"a"))
    blocker = c.write("blocker", b"a file, not a directory")
    e = raises(CkptIOError, ck.load, 1, to=blocker / "restore", what="load --to under a regular file")
    check("blocker" in e.message, f"the message names the path: {e.message}")


@scenario
def helper_unsupported_error(c):
    """A checkpoint written by a newer format, and a directory that is not a root, raise UnsupportedError."""
    ck = c.ck()
    f = c.write("a", b"a")
    ck.save(1, f)
    ck.save(2, f)
    p = c.root / name(2) / "_checkpoint.json"
    doc = json.loads(p.read_text())
    doc["schema_version"] = 99
    p.write_text(json.dumps(doc))
    raises(UnsupportedError, ck.info, 2, what="info of a checkpoint of format 99")
    raises(UnsupportedError, ck.load, "latest", what="load latest of format 99")
    odd = c.tmp / "odd"
    odd.mkdir()
    (odd / "notes.txt").write_text("not a ckpt root")
    raises(UnsupportedError, c.ck(odd).info, what="info of a directory that is not a root")


@scenario
def helper_interrupted_and_killed(c):
    """A ckpt save waiting on the root lock: SIGTERM makes it exit 130 (CkptInterrupted), SIGKILL
    kills it (KilledError, code -9); nothing is committed either way."""
    ck = c.ck(lock_timeout=60)
    f = c.write("a", b"a")
    ck.save(1, f)
    for sig, cls, code, kind in ((signal.SIGTERM, CkptInterrupted, 130, "interrupted"),
                                 (signal.SIGKILL, KilledError, -signal.SIGKILL, "killed")):
        found = []
        with root_lock(c.root):
            t = signal_when_waiting(sig, found)
            e = raises(cls, ck.save, 2, f, what=f"a save sent {sig.name} while it waits on the lock",
                       code=code, kind=kind)
            t.join(30)
        check(found and found[0] is not None, f"{sig.name}: the waiting ckpt child was found")
        if cls is KilledError:
            check("SIGKILL" in e.message and e.report is None, f"KilledError: {e.message!r}, {e.report!r}")
        expect_eq(harness.step_dirs(c.root), [name(1)], f"after {sig.name}: nothing committed")
    expect_eq(ck.save(2, f)["name"], name(2), "the save runs once the lock is free")


@scenario
def helper_errors_without_json(c):
    """What a real ckpt never does, through a fake binary: killed by a signal it sent itself
    (KilledError), a plain-text error (the class of its exit status, kind from the table), an
    unknown status (CkptError itself)."""
    e = raises(KilledError, Ckpt(c.root, binary=c.fake('kill -KILL $$')).info, what="a ckpt that kills itself",
               code=-signal.SIGKILL, kind="killed")
    check("SIGKILL" in e.message, f"KilledError names the signal: {e.message!r}")
    e = raises(NotFoundError, Ckpt(c.root, binary=c.fake('echo "ckpt: error: gone" >&2; exit 3')).info,
               what="exit 3 with a plain-text error", reason=None)
    expect_eq(e.message, "ckpt: error: gone", "the message is stderr when it is no JSON error")
    e = raises(CkptError, Ckpt(c.root, binary=c.fake('echo oops >&2; exit 42')).info,
               what="an exit status ckpt does not use", code=42, kind="unknown")
    e = raises(IntegrityError, Ckpt(c.root, binary=c.fake('echo "{\\"ok\\": false}"; exit 1')).verify,
               what="exit 1 with a report and nothing on stderr")
    expect_eq((e.report, e.message), ({"ok": False}, "exit status 1"), "report and message")


if __name__ == "__main__":
    sys.exit(harness.main(sys.argv, __doc__, SCENARIOS, Ctx, "ckpt-pyhelper"))
