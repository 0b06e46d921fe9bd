# SPDX-License-Identifier: Apache-2.0
"""The harness shared by the end-to-end test files tests/cli/e2e*.py.

Not a test file itself (CMake globs e2e*.py) and it registers no scenario.
Each e2e*.py puts this directory on sys.path, imports it and keeps its own
scenarios, its own Ctx (a subclass of BaseCtx) and its own temporary
directory prefix:

    SCENARIOS, scenario = harness.registry()
    ...
    if __name__ == "__main__":
        sys.exit(harness.main(sys.argv, __doc__, SCENARIOS, Ctx, "ckpt-e2e"))

Only the Python standard library is used.
"""

import hashlib
import json
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

HERE = pathlib.Path(__file__).resolve().parent
# the binary under test: $CKPT_BIN, else the release build of this checkout
BIN = os.path.abspath(os.environ.get("CKPT_BIN") or str(HERE / ".." / ".." / "build" / "release" / "apps" / "ckpt" / "ckpt"))


def registry():
    """A fresh (SCENARIOS, scenario): the name -> function dict, in definition order, and its decorator."""
    scenarios = {}

    def scenario(fn):
        scenarios[fn.__name__] = fn
        return fn

    return scenarios, scenario


# --------------------------------------------------------------------------
# assertion helpers


class Fail(AssertionError):
    pass


class Timeout(Fail):
    """A command that did not finish within its timeout (it was killed)."""


class SubCaseFailures(Fail):
    """Raised by run_one when a scenario returned but had recorded failed sub-cases."""


def indent(text, limit=None):
    if text == "":
        return "    <empty>"
    if limit is not None and len(text) > limit:
        text = text[:limit] + f"\n... ({len(text) - limit} more characters)"
    return "\n".join("    " + line for line in text.splitlines())


class Result:
    """One finished command. cwd, env_extra, note and elapsed only add lines to describe() when given;
    limit cuts long outputs there."""

    def __init__(self, cmd, rc, out, err, cwd=None, env_extra=None, *, note="", elapsed=None, limit=None):
        self.cmd = [str(a) for a in cmd]
        self.rc = rc
        self.out = out
        self.err = err
        self.cwd = cwd
        self.env_extra = env_extra or {}
        self.note = note
        self.elapsed = elapsed
        self.limit = limit

    @property
    def both(self):
        return self.out + "\n" + self.err

    def describe(self):
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self.env_extra.items()))
        return (
            f"  command  : {env + ' ' if env else ''}{shlex.join(self.cmd)}\n"
            + (f"  note     : {self.note}\n" if self.note else "")
            + (f"  cwd      : {self.cwd}\n" if self.cwd is not None else "")
            + f"  exit code: {self.rc}" + (f"   ({self.elapsed:.2f}s)" if self.elapsed is not None else "") + "\n"
            f"  --- stdout ---\n{indent(self.out, self.limit)}\n"
            f"  --- stderr ---\n{indent(self.err, self.limit)}"
        )

    def json(self):
        try:
            return json.loads(self.out)
        except ValueError as e:
            raise Fail(f"stdout is not one JSON document ({e})\n{self.describe()}")

    def json_error(self):
        """The "error" object of a --json failure, {"schema_version": 1, "error": {...}, "warnings": [...]}
        (one line on stderr), or a Fail."""
        lines = [line for line in self.err.splitlines() if line.strip()]
        check(self.out == "", "with --json a failure must print nothing on stdout", self)
        check(len(lines) == 1, f"with --json a failure must print exactly one line on stderr, got {len(lines)}", self)
        try:
            doc = json.loads(lines[0])
        except ValueError as e:
            raise Fail(f"stderr line is not JSON ({e})\n{self.describe()}")
        err = doc.get("error") if isinstance(doc, dict) else None
        check(isinstance(err, dict) and doc.get("schema_version") == 1 and isinstance(doc.get("warnings"), list)
              and all(isinstance(w, str) for w in doc["warnings"]),
              'stderr JSON must be {"schema_version": 1, "error": {...}, "warnings": [...]}', self)
        return err

    def lines(self):
        return [line for line in self.out.splitlines() if line != ""]


def check(cond, msg, res=None):
    if not cond:
        raise Fail(msg + ("\n" + res.describe() if res is not None else ""))


def expect_rc(res, code, what=""):
    """code: one exit code, or a tuple/list/set of the acceptable ones."""
    codes = code if isinstance(code, (tuple, list, set)) else (code,)
    check(res.rc in codes, f"{what + ': ' if what else ''}expected exit code "
          f"{' or '.join(str(c) for c in codes)}, got {res.rc}", res)


def expect_eq(actual, expected, what, res=None):
    check(actual == expected, f"{what}:\n    expected {expected!r}\n    actual   {actual!r}", res)


def expect_json_error(res, code, kind, message=False):
    """A --json failure with this exit code and error kind; message=True also wants a non-empty error.message."""
    expect_rc(res, code)
    err = res.json_error()
    expect_eq(err.get("code"), code, "error.code", res)
    expect_eq(err.get("kind"), kind, "error.kind", res)
    if message:
        check(isinstance(err.get("message"), str) and err["message"] != "",
              "error.message must be a non-empty string", res)
    return err


# --------------------------------------------------------------------------
# reading --json output (its vocabulary: docs/json/README.md)


def ref_names(refs):
    """The names of a list of refs ({"name", "path", "step"}: "removed", "pruned", ...), in order."""
    return [r["name"] for r in refs]


def ref_name(ref):
    """The name of one ref or best marker ("last", "best", "shared.with"), None for null."""
    return None if ref is None else ref["name"]


def load_locations(doc):
    """{stored path: absolute path to read} of a `load --json` output (its "files" list)."""
    return {f["path"]: f["location"] for f in doc["files"]}


def manifest_view(m):
    """What `info REF --json` reports of a _checkpoint.json m: its fields but "format", with the manifest's
    schema_version as "format_version", a sharded one's shard count and group as the "shards" set, and
    every file's sha256 (null when not recorded)."""
    out = {}
    for k, v in m.items():
        if k == "format":
            continue
        if k == "schema_version":
            out["format_version"] = v
        elif k == "shards":
            out["shards"] = {"group": m.get("shard_group", ""), "count": v, "present": list(range(v)), "missing": []}
        elif k in ("shard_group", "shard_retired"):
            continue
        elif k == "files":
            out["files"] = [{**e, "sha256": e.get("sha256")} for e in v]
        else:
            out[k] = v
    return out


def expect_best_marker(best, best_file, root, what, res=None):
    """A --json "best" marker stands for best_file, the contents of ROOT/best.json (read_best; None: no
    best.json): its name is best.json's path, its path is ROOT/that name (absolute), and step, key, mode,
    value and updated are best.json's."""
    if best_file is None:
        expect_eq(best, None, f"{what} (no best.json)", res)
        return
    check(isinstance(best, dict), f"{what}: a best marker object, got {best!r}", res)
    expect_eq(best.get("name"), best_file.get("path"), f"{what}: name (best.json path)", res)
    for k in ("step", "key", "mode", "value", "updated"):
        expect_eq(best.get(k), best_file.get(k), f"{what}: {k} (best.json {k})", res)
    p = best.get("path")
    check(isinstance(p, str) and os.path.isabs(p)
          and os.path.realpath(p) == os.path.realpath(os.path.join(root, best_file.get("path", ""))),
          f"{what}: path must be the absolute path of ROOT/{best_file.get('path')}, got {p!r}", res)


# --------------------------------------------------------------------------
# running the binary


def child_env(extra=None):
    """The environment of a ckpt child: ours without CKPT_ROOT, with NO_COLOR=1, then extra."""
    e = os.environ.copy()
    e.pop("CKPT_ROOT", None)
    e.pop("CKPT_THREADS", None)
    e["NO_COLOR"] = "1"
    e.update(extra or {})
    return e


def _text(data):
    return (data or b"").decode("utf-8", "replace")


def execute(cmd, *, cwd, env, timeout, input=b"", code=None, what="", show_cwd=True, timed=False,
            env_extra=None, limit=None, hang="command did not finish"):
    """Run cmd to completion with captured output; a Result, or a Timeout (a Fail) when it was killed.

    input: bytes for stdin (None: /dev/null). code: expected exit code(s), checked with what.
    show_cwd, timed, env_extra, limit: what the Result's describe() shows. hang: how a timeout is told."""
    cmd = [str(a) for a in cmd]
    t0 = time.monotonic()
    stdin = {"stdin": subprocess.DEVNULL} if input is None else {"input": input}
    extra = dict(cwd=cwd if show_cwd else None, env_extra=env_extra, limit=limit)
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, timeout=timeout, **stdin)
    except subprocess.TimeoutExpired as ex:
        fake = Result(cmd, "TIMEOUT", _text(ex.stdout), _text(ex.stderr),
                      elapsed=time.monotonic() - t0 if timed else None, **extra)
        raise Timeout(f"{hang} within {timeout}s (killed)\n{fake.describe()}")
    res = Result(cmd, p.returncode, _text(p.stdout), _text(p.stderr),
                 elapsed=time.monotonic() - t0 if timed else None, **extra)
    if code is not None:
        expect_rc(res, code, what)
    return res


# --------------------------------------------------------------------------
# filesystem helpers


def name(step):
    return f"step-{step:09d}"


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def snapshot(directory, skip_top=()):
    """{relative path: (kind, size or link target, sha256)} of everything under directory, never following
    links; entries of directory itself named in skip_top are left out."""
    out = {}
    directory = pathlib.Path(directory)
    for dirpath, dirnames, filenames in os.walk(directory):  # os.walk does not descend into directory links
        if pathlib.Path(dirpath) == directory:
            dirnames[:] = [d for d in dirnames if d not in skip_top]
            filenames = [f for f in filenames if f not in skip_top]
        for n in dirnames + filenames:
            p = pathlib.Path(dirpath) / n
            rel = p.relative_to(directory).as_posix()
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p), None)
            elif p.is_dir():
                out[rel] = ("dir", None, None)
            elif p.is_file():
                out[rel] = ("file", p.stat().st_size, sha256_file(p))
            else:
                out[rel] = ("other", None, None)
    return out


def load_json(path):
    with open(path, "rb") as f:
        return json.loads(f.read())


def write_json(path, doc):
    with open(path, "w") as f:
        json.dump(doc, f)


def meta(root, step_or_name):
    """The _checkpoint.json of a checkpoint given by step number or directory name."""
    n = name(step_or_name) if isinstance(step_or_name, int) else step_or_name
    return load_json(pathlib.Path(root) / n / "_checkpoint.json")


def read_best(root):
    p = pathlib.Path(root) / "best.json"
    return load_json(p) if p.exists() else None


def step_dirs(root):
    root = pathlib.Path(root)
    if not root.is_dir():
        return []
    return sorted(n for n in os.listdir(root) if n.startswith("step-") and (root / n).is_dir())


def private_entries(root, sub):
    """Sorted names in ROOT/.ckpt/SUB ([] when it is not there)."""
    try:
        return sorted(os.listdir(pathlib.Path(root) / ".ckpt" / sub))
    except (FileNotFoundError, NotADirectoryError):
        return []


def staging_dirs(root):
    st = pathlib.Path(root) / ".ckpt" / "staging"
    return [n for n in private_entries(root, "staging") if (st / n).is_dir() and not (st / n).is_symlink()]


def staging_bytes(root):
    st = pathlib.Path(root) / ".ckpt" / "staging"
    total = 0
    for dirpath, _dirs, files in os.walk(st):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def make_big_file(path, total):
    chunk = os.urandom(64 << 20)
    with open(path, "wb") as fh:
        written = 0
        while written < total:
            n = min(len(chunk), total - written)
            fh.write(chunk[:n])
            written += n


# --------------------------------------------------------------------------
# per-scenario context and runner


class BaseCtx:
    """Base of each file's per-scenario context: the hooks run_one calls, with their defaults."""

    earlier_title = "earlier failed sub-cases"

    def __init__(self, tmp):
        self.tmp = pathlib.Path(tmp)
        self.failures = []  # sub-case failures recorded while the scenario went on

    def failures_title(self):
        """The first line of the failure that recorded sub-case failures cause."""
        return f"{len(self.failures)} sub-case(s) failed"

    def close(self):
        """Called once the scenario is over, passed or failed (errors are ignored)."""

    def pass_details(self, seconds):
        """What the PASS line shows in parentheses."""
        return f"{seconds:.1f}s"


class RootCtx(BaseCtx):
    """A context with a root to be, TMP/root (not created), and a directory for inputs, TMP/src (created)."""

    def __init__(self, tmp):
        super().__init__(tmp)
        self.root = self.tmp / "root"
        self.src = self.tmp / "src"
        self.src.mkdir()

    def verify_ok(self, *args, root=None, what="verify"):
        """`ckpt verify [ARGS]` through the subclass's run(); it must exit 0."""
        res = self.run("verify", *args, root=root)
        expect_rc(res, 0, what)
        return res


def run_one(nm, scenarios, make_ctx, prefix, tmp_dir=None):
    """Run one scenario in a fresh temporary directory PREFIX-NAME-* (under tmp_dir, else the default);
    it is removed on success (kept with CKPT_E2E_KEEP) and kept on failure. Returns the exit code."""
    fn = scenarios.get(nm)
    if fn is None:
        print(f"unknown scenario {nm!r}; see --list", file=sys.stderr)
        return 2
    if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
        print(f"FAIL {nm}: ckpt binary not found or not executable: {BIN} (set CKPT_BIN)", file=sys.stderr)
        return 1
    tmp = tempfile.mkdtemp(prefix=f"{prefix}-{nm}-", dir=tmp_dir)
    t0 = time.monotonic()
    ctx = None
    failed = None
    try:
        ctx = make_ctx(tmp)
        fn(ctx)
        if ctx.failures:
            raise SubCaseFailures(f"{ctx.failures_title()}:\n" + "\n".join(ctx.failures))
    except Fail as e:
        if ctx is not None and ctx.failures and not isinstance(e, SubCaseFailures):
            e = Fail(f"{e}\n{ctx.earlier_title}:\n" + "\n".join(ctx.failures))
        failed = f"FAIL {nm}: {e}"
    except Exception:  # noqa: BLE001
        failed = f"FAIL {nm}: test error\n{traceback.format_exc()}"
    finally:
        if ctx is not None:
            try:
                ctx.close()
            except Exception:  # noqa: BLE001
                pass
    if failed:
        print(failed, file=sys.stderr)
        print(f"  temp dir kept: {tmp}", file=sys.stderr)
        return 1
    if os.environ.get("CKPT_E2E_KEEP"):
        print(f"  temp dir kept: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"PASS {nm} ({ctx.pass_details(time.monotonic() - t0)})")
    return 0


def main(argv, doc, scenarios, make_ctx, prefix, tmp_dir=None):
    """--list | --all | NAME... (doc: the file's usage text, printed for no argument or --help)."""
    if len(argv) == 1 or argv[1] in ("-h", "--help"):
        print(doc.strip())
        return 0 if len(argv) > 1 else 2
    if argv[1] == "--list":
        for nm in scenarios:
            print(nm)
        return 0
    todo = list(scenarios) if argv[1] == "--all" else argv[1:]
    failed = [nm for nm in todo if run_one(nm, scenarios, make_ctx, prefix, tmp_dir) != 0]
    if len(todo) > 1:
        print(f"{len(todo) - len(failed)}/{len(todo)} passed" + (f"; failed: {' '.join(failed)}" if failed else ""))
    return 1 if failed else 0
