# SPDX-License-Identifier: Apache-2.0
"""Run the ckpt command-line tool from Python: one file, standard library only (Python 3.9+).

Copy this file beside your training script and import it:

    from ckpt import Ckpt, NotFoundError

    ck = Ckpt("runs/exp1/checkpoints")        # the root; the binary: $CKPT_BIN, else `ckpt` on PATH
    try:
        got = ck.load("latest")               # verified before it returns
        model.load_state_dict(torch.load(got.files["model.pt"]))
        start = got["step"] + 1
    except NotFoundError as e:
        if e.reason != "empty_root":          # no_root (a mistyped root), ...: stop
            raise
        start = 0                             # a new run
    ...
    ck.save(step, from_dir="out", move=True, metrics={"val_loss": loss}, best_key="val_loss")

Every method runs `ckpt --json ...` and returns the command's JSON output, a dict
(its fields: ckpt(1), JSON OUTPUT, and docs/json/ in the ckpt sources). Every
failure raises a CkptError; its subclass says which one, from the exit status:

    1 IntegrityError     2 UsageError      3 NotFoundError (.reason)   4 ConflictError
    5 LockedError        6 CkptIOError     7 UnsupportedError          130 CkptInterrupted
    killed by a signal (a negative return code): KilledError

Any other command line runs through the same path: ck("info", "--limit", "2").
"""

import json
import operator
import os
import signal
import subprocess

__all__ = ["Ckpt", "Loaded", "ckpt", "CkptError", "IntegrityError", "UsageError", "NotFoundError",
           "ConflictError", "LockedError", "CkptIOError", "UnsupportedError", "CkptInterrupted", "KilledError"]


class CkptError(RuntimeError):
    """A failed ckpt command.

    code: the exit status (negative: killed by that signal). kind: the error kind ("integrity",
    "usage", "not_found", "conflict", "locked", "io", "unsupported", "interrupted"; "killed" for a
    signal). message: ckpt's message. reason: with exit 3, what was not found ("no_root",
    "empty_root", "no_checkpoint", "no_match", "no_source"); a few other errors give one too
    (rm's "protected"); else None. report: the JSON output the command printed anyway (verify's
    report on exit 1), else None. warnings: the warnings it gave. command: the command line that
    ran. stderr: its standard error, as printed."""

    def __init__(self, code, kind, message, reason=None, report=None, warnings=(), command=(), stderr=""):
        super().__init__(f"ckpt: {kind}: {message}")
        self.code, self.kind, self.message, self.reason = code, kind, message, reason
        self.report, self.warnings = report, list(warnings)
        self.command, self.stderr = list(command), stderr


class IntegrityError(CkptError):
    """Exit 1: a checkpoint failed verification (.report holds verify's report)."""


class UsageError(CkptError):
    """Exit 2: a bad option, value or ref, or refused input."""


class NotFoundError(CkptError):
    """Exit 3: no such root, checkpoint, ref target or source; .reason says which."""


class ConflictError(CkptError):
    """Exit 4: the step exists with other files, or the best key or mode differs from best.json."""


class LockedError(CkptError):
    """Exit 5: the root lock stayed busy longer than lock_timeout; retry later."""


class CkptIOError(CkptError):
    """Exit 6: an I/O or system error (disk full, permission, ...); nothing was lost."""


class UnsupportedError(CkptError):
    """Exit 7: written by a newer ckpt, or not a ckpt root."""


class CkptInterrupted(CkptError):
    """Exit 130: ckpt was interrupted (SIGINT or SIGTERM); it cleaned up its staging directory."""


class KilledError(CkptError):
    """ckpt was killed by a signal (kill -9, the OOM killer): it printed nothing; .code is -SIGNAL."""


ERRORS = {1: IntegrityError, 2: UsageError, 3: NotFoundError, 4: ConflictError, 5: LockedError,
          6: CkptIOError, 7: UnsupportedError, 130: CkptInterrupted}
KINDS = {1: "integrity", 2: "usage", 3: "not_found", 4: "conflict", 5: "locked", 6: "io",
         7: "unsupported", 130: "interrupted"}


def error_from(code, stdout, stderr, command=()):
    """The CkptError for a ckpt that exited with CODE, following "The rule for scripts" of ckpt(1):
    the error is the last line of stderr; stdout is empty, but for verify's report."""
    try:
        report = json.loads(stdout) if stdout.strip() else None
    except ValueError:
        report = None
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return KilledError(code, "killed", f"killed by {name}", report=report, command=command, stderr=stderr)
    lines = stderr.strip().splitlines()
    try:
        doc = json.loads(lines[-1])
        err, warnings = doc["error"], doc.get("warnings", [])
        kind, message = err["kind"], err["message"]
    except (IndexError, ValueError, KeyError, TypeError):  # not a --json error line
        err, warnings = {}, []
        kind, message = KINDS.get(code, "unknown"), stderr.strip() or f"exit status {code}"
    cls = ERRORS.get(code, CkptError)
    return cls(code, kind, message, err.get("reason"), report,
               warnings, command, stderr)


class Loaded(dict):
    """load's JSON output, plus .files: {stored path: absolute path to read} (from its "files" list,
    whose entries also hold each file's size and sha256)."""

    @property
    def files(self):
        return {f["path"]: f["location"] for f in self["files"]}


def _str(value):
    """A command-line value: a path or string as it is, an integer in full, and any other number
    as Python writes a float back (repr), so that no digit is lost."""
    if isinstance(value, (str, bytes, os.PathLike)):
        return os.fsdecode(value)
    if isinstance(value, bool):
        raise TypeError(f"not a number: {value!r}")
    try:
        return str(operator.index(value))  # int, numpy and torch integers
    except TypeError:
        return repr(float(value))  # float, numpy and torch floats


def _list(value):
    """None -> [], one value -> [value], an iterable of values -> a list."""
    if value is None:
        return []
    if isinstance(value, (str, bytes, os.PathLike)):
        return [value]
    return list(value)


def _options(**options):
    """--name VALUE for every option given (not None, not False); --name alone for True."""
    args = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is not None and value is not False:
            args += [flag, _str(value)]
    return args


class Ckpt:
    """One ckpt root, and how to run ckpt on it.

    root: the root directory (None: $CKPT_ROOT, else the current directory, as ckpt decides).
    binary: the ckpt executable (default: $CKPT_BIN, else "ckpt" on PATH).
    lock_timeout: seconds a command that changes the root waits for its lock (ckpt's default 60;
    0 fails at once with LockedError). threads: threads that copy, hash and fsync (1 leaves the
    cores to training). no_fsync: skip fsync (scratch file systems only). timeout: seconds after
    which the ckpt process is killed and subprocess.TimeoutExpired raised (default: none)."""

    def __init__(self, root=None, *, binary=None, lock_timeout=None, threads=None, no_fsync=False, timeout=None):
        self.root = None if root is None else os.fspath(root)
        self.binary = binary or os.environ.get("CKPT_BIN") or "ckpt"
        self.lock_timeout, self.threads, self.no_fsync, self.timeout = lock_timeout, threads, no_fsync, timeout

    def command(self, *args):
        """The command line that runs ckpt ARGS with --json and this object's global options."""
        cmd = [self.binary, "--json"] + (["-C", self.root] if self.root is not None else [])
        cmd += _options(lock_timeout=self.lock_timeout, threads=self.threads, no_fsync=self.no_fsync)
        return cmd + [_str(a) for a in args]

    def __call__(self, *args):
        """Runs `ckpt --json ARGS`: returns its JSON output (a dict; the text itself if it is not
        JSON, as for --help), or raises the CkptError of its exit status."""
        cmd = self.command(*args)
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, encoding="utf-8",
                           errors="replace", timeout=self.timeout)
        if r.returncode != 0:
            raise error_from(r.returncode, r.stdout, r.stderr, cmd)
        try:
            return json.loads(r.stdout)
        except ValueError:
            return r.stdout

    def save(self, step, *sources, from_dir=None, metrics=None, meta=None, weights=None, best_key=None,
             mode=None, keep_last=None, keep_best=None, keep_every=None, keep_within=None, checksum=None,
             move=False, link=False, force=False, follow_symlinks=False, dedup=None, shard=None, group=None,
             pending_expiry=None):
        """Commits SOURCES (paths, or "DEST=PATH") and the contents of from_dir (one directory or a
        list) as the checkpoint of STEP. metrics: {name: number}; meta: {key: string}; weights: the
        stored paths or globs that are weights; best_key and mode ("min", "max"): the metric that
        decides best.json; keep_*: retention rules, recorded in policy.json and applied right after
        the commit; move or link instead of copying; dedup: True or False (None: the policy's);
        shard: "I/N" or "env". Returns {"name", "path", "step", "existing", "best_updated",
        "pruned", ...}; a step already committed with the same files gives "existing": True."""
        args = ["save", "--step", int(step)]
        for d in _list(from_dir):
            args += ["--from", d]
        for key, value in (metrics or {}).items():
            args += ["--metric", f"{key}={_str(value)}"]
        for key, value in (meta or {}).items():
            args += ["--meta", f"{key}={value}"]
        for w in _list(weights):
            args += ["--weights", w]
        args += _options(best_key=best_key, mode=mode, keep_last=keep_last, keep_best=keep_best,
                         keep_every=keep_every, keep_within=keep_within, checksum=checksum, move=move,
                         link=link, force=force, follow_symlinks=follow_symlinks, shard=shard, group=group,
                         pending_expiry=pending_expiry)
        if dedup is not None:
            args.append("--dedup" if dedup else "--no-dedup")
        return self(*args, "--", *sources) if sources else self(*args)

    def info(self, ref=None, *, limit=None, sort=None):
        """Without REF: the table, {"checkpoints": [...], "last", "best", "pending", "invalid", ...}.
        With REF ("latest", "best", a step, a name or a path): that checkpoint's manifest."""
        args = ["info"] + _options(limit=limit, sort=sort)
        return self(*args, "--", ref) if ref is not None else self(*args)

    def path(self, ref="latest"):
        """The absolute path of REF's directory (reads the `last` marker and one manifest)."""
        return self("info", "--path", "--", ref)["path"]

    def verify(self, *refs, quick=False, strict=False, repair=False):
        """Verifies REFS (default: every checkpoint and the markers). Returns the report
        ({"ok": True, "checkpoints": [...], "markers": ...}); a failure raises IntegrityError,
        whose .report is the same report, naming each bad file in "problems"."""
        args = ["verify"] + _options(quick=quick, strict=strict, repair=repair)
        return self(*args, "--", *refs) if refs else self(*args)

    def load(self, ref="latest", *, only=None, weights_only=False, to=None, link=False, no_verify=False):
        """Verifies REF and returns a Loaded: its manifest, with "dir" (the verified directory),
        "files" ({"path", "size", "sha256", "location"}) and .files, {stored path: absolute path}.
        only: globs of stored paths; to: materialise verified copies (link: hard links) there."""
        args = ["load"]
        for glob in _list(only):
            args += ["--only", glob]
        args += _options(weights_only=weights_only, to=to, link=link, no_verify=no_verify)
        return Loaded(self(*args, "--", ref))

    def prune(self, *, keep_last=None, keep_best=None, keep_every=None, keep_within=None, pending_expiry=None,
              dry_run=False):
        """Applies these retention rules, or without any, those of policy.json (the last and the best
        are always kept). Returns {"removed": [...], "kept": [...], "dry_run", ...}."""
        return self("prune", *_options(keep_last=keep_last, keep_best=keep_best, keep_every=keep_every,
                                       keep_within=keep_within, pending_expiry=pending_expiry, dry_run=dry_run))

    def promote_best(self, ref=None, *, key=None, mode=None, value=None, force=False):
        """Offers REF as best (best.json changes only on strict improvement, or with force);
        without REF, rebuilds best.json from every checkpoint."""
        args = ["promote-best"] + _options(key=key, mode=mode, value=value, force=force)
        return self(*args, "--", ref) if ref is not None else self(*args)

    def rm(self, *refs, force=False, dry_run=False):
        """Removes REFS (the one last or best.json names only with force). Returns {"removed": [...], ...}."""
        return self("rm", *_options(force=force, dry_run=dry_run), "--", *refs)

    def rollback(self, ref, *, dry_run=False):
        """Makes REF the latest: removes every checkpoint committed after it or of a later step."""
        return self("rollback", *_options(dry_run=dry_run), "--", ref)

    def diff(self, a, b):
        """The files added, removed and changed from A to B, and their metrics side by side
        ({"differ", "added", "removed", "changed", "metrics", ...}); no file is read."""
        return self("diff", "--", a, b)

    def abort(self, step):
        """Removes the pending sharded step STEP and the shards recorded for it."""
        return self("abort", "--", step)

    def version(self):
        """{"version", "format_version", ...} of the ckpt binary."""
        return self("version")


def ckpt(*args, root=None, **options):
    """One command: ckpt("load", "latest", root="runs/exp1") is Ckpt("runs/exp1")("load", "latest")."""
    return Ckpt(root, **options)(*args)
