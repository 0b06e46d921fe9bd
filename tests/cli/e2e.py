#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End-to-end tests for the `ckpt` command-line tool.

The contract under test is SPEC.md (format v1): commands, options, exit
codes, JSON fields and the on-disk layout. Only the Python standard library
is used.

    python3 tests/cli/e2e.py --list          one scenario name per line
    python3 tests/cli/e2e.py NAME [NAME...]  run scenarios; exit 0 when all pass
    python3 tests/cli/e2e.py --all           run every scenario

The binary comes from $CKPT_BIN, else ../../build/release/apps/ckpt/ckpt
relative to this file. Every scenario runs in a fresh temporary directory
that is removed on success and kept (its path printed) on failure; set
CKPT_E2E_KEEP=1 to keep it on success too.

Some scenarios need root (mounting a tiny tmpfs to produce "disk full").
"""

import datetime
import hashlib
import os
import pathlib
import pty
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (BIN, Fail, Result, check, expect_best_marker, expect_eq, expect_rc,  # noqa: E402
                     load_json, load_locations, make_big_file, manifest_view, meta, name, read_best, ref_name,
                     ref_names, sha256_file, snapshot, staging_bytes, staging_dirs, step_dirs, write_json)

# the version project() in CMakeLists.txt gives (the one place it is written)
VERSION = re.search(r"project\(ckpt VERSION ([0-9.]+)",
                    (harness.HERE.parent.parent / "CMakeLists.txt").read_text()).group(1)
SGR = re.compile(r"\x1b\[[0-9;]*m")  # colour / text attributes
DEFAULT_TIMEOUT = 60

SCENARIOS, scenario = harness.registry()


# --------------------------------------------------------------------------
# assertion helpers


def expect_text_error(res):
    check(any(line.startswith("ckpt: error: ") for line in res.err.splitlines()),
          "expected a 'ckpt: error: MESSAGE' line on stderr", res)


def expect_json_error(res, code, kind):
    return harness.expect_json_error(res, code, kind, message=True)


def deprecation_lines(res):
    return [line for line in res.err.splitlines() if "deprecated" in line.lower()]


# --------------------------------------------------------------------------
# filesystem helpers


def files_under(directory):
    """Relative '/'-separated paths of regular files under directory."""
    return {k for k, v in snapshot(directory).items() if v[0] == "file"}


def read_last(root):
    return (pathlib.Path(root) / "last").read_bytes()


def flip_byte(path, offset=None):
    data = bytearray(pathlib.Path(path).read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0xFF
    pathlib.Path(path).write_bytes(bytes(data))


def same_path(a, b):
    return os.path.realpath(a) == os.path.realpath(b)


def by_bytes(paths):
    return sorted(paths, key=lambda p: p.encode("utf-8"))


# --------------------------------------------------------------------------
# per-scenario context


class Ctx(harness.RootCtx):
    def __init__(self, tmp):
        super().__init__(tmp)
        self._std = None

    def sub(self, label, fn, *args):
        """Run one independent sub-case; a failure is recorded and the scenario goes on."""
        try:
            fn(*args)
        except Fail as e:
            self.failures.append(f"[{label}] {e}")

    # -- running the binary
    def raw(self, cmd, code=None, env=None, cwd=None, timeout=DEFAULT_TIMEOUT, input=None):
        return harness.execute(cmd, cwd=str(cwd or self.tmp), env=harness.child_env(env), timeout=timeout,
                               input=input if input is not None else b"", code=code, env_extra=env)

    def run(self, *args, root=None, code=None, env=None, cwd=None, timeout=DEFAULT_TIMEOUT,
            lock_timeout=True, use_root=True):
        cmd = [BIN]
        if lock_timeout:
            cmd += ["--lock-timeout", "5"]
        if use_root:
            cmd += ["-C", str(root or self.root)]
        cmd += list(args)
        return self.raw(cmd, code=code, env=env, cwd=cwd, timeout=timeout)

    def save(self, step, *sources, opts=(), root=None, code=0, **kw):
        # the synopsis order: ckpt save --step N [SOURCE...] [--from DIR] [options]
        # (options before sources are covered by save_option_order)
        return self.run("save", "--step", str(step), *[str(s) for s in sources], *opts, root=root, code=code, **kw)

    # -- making inputs
    def file(self, rel, data=None, size=1000):
        p = self.src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(size) if data is None else data)
        return p

    def std_sources(self):
        """model.bin (file) and optim/ (dir) -> model.bin, optim/shard-0.pt, optim/shard-1.pt."""
        if self._std is None:
            m = self.file("std/model.bin", size=4096)
            self.file("std/optim/shard-0.pt", size=1000)
            self.file("std/optim/shard-1.pt", size=1500)
            self._std = [m, self.src / "std" / "optim"]
        return list(self._std)

    def make_root(self, root, steps=(1, 2), opts=(), metrics=None):
        for i, s in enumerate(steps):
            extra = list(opts)
            if metrics is not None:
                for k, v in metrics[i].items():
                    extra += ["--metric", f"{k}={v}"]
            self.save(s, *self.std_sources(), opts=extra, root=root)
        return pathlib.Path(root)

    def no_partial(self, root, allowed_steps, what):
        """No checkpoint other than allowed_steps and no staging directory is left."""
        expect_eq(step_dirs(root), [name(s) for s in allowed_steps], f"{what}: checkpoint directories")
        expect_eq(staging_dirs(root), [], f"{what}: directories left under ROOT/.ckpt/staging")


# --------------------------------------------------------------------------
# save


@scenario
def save_last_tracks_newest(c):
    f = c.file("model.bin")
    seqs = []
    for step in (1, 2, 3, 10, 5):
        c.save(step, f)
        last = read_last(c.root)
        expect_eq(last, (name(step) + "\n").encode(), f"ROOT/last after save --step {step}")
        check(not (c.root / "last").is_symlink(), "ROOT/last must be a regular file, not a symlink")
        m = meta(c.root, step)
        expect_eq(m.get("name"), name(step), "_checkpoint.json name")
        expect_eq(m.get("step"), step, "_checkpoint.json step")
        check(isinstance(m.get("commit_seq"), int), f"commit_seq must be an integer, got {m.get('commit_seq')!r}")
        seqs.append(m["commit_seq"])
    for i in range(1, len(seqs)):
        check(seqs[i] == seqs[i - 1] + 1, f"commit_seq must increase by 1 per commit, got {seqs}")
    allowed = {"last", ".ckpt", "policy.json", "best.json"} | set(step_dirs(c.root))
    leftovers = set(os.listdir(c.root)) - allowed
    check(not leftovers, f"unexpected entries left in ROOT (temp files?): {sorted(leftovers)}")
    expect_eq(step_dirs(c.root), [name(s) for s in (1, 2, 3, 5, 10)], "checkpoint directories")


def check_stored(c, root, step, expected):
    """expected: {stored path: source path}."""
    m = meta(root, step)
    paths = [e.get("path") for e in m.get("files", [])]
    expect_eq(paths, by_bytes(expected), f"{name(step)}: _checkpoint.json files (sorted in byte order)")
    total = 0
    for e in m["files"]:
        srcp = expected[e["path"]]
        data = pathlib.Path(srcp).read_bytes()
        stored = root / name(step) / e["path"]
        check(stored.is_file() and not stored.is_symlink(), f"{stored} must be a regular file")
        check(stored.read_bytes() == data, f"{stored}: bytes differ from source {srcp}")
        expect_eq(e.get("size"), len(data), f"{e['path']}: size")
        expect_eq(e.get("sha256"), hashlib.sha256(data).hexdigest(), f"{e['path']}: sha256")
        total += len(data)
    expect_eq(m.get("total_size"), total, f"{name(step)}: total_size")
    on_disk = files_under(root / name(step))
    expect_eq(sorted(on_disk), sorted(set(expected) | {"_checkpoint.json", "SHA256SUMS"}),
              f"{name(step)}: files on disk")


@scenario
def save_sources_forms(c):
    model = c.file("model.bin", size=3000)
    c.file("optim/shard-0.pt")
    c.file("optim/sub/shard-1.pt")
    c.file("optim/_checkpoint.json", data=b"nested reserved name is fine\n")
    other = c.file("other.bin")
    other2 = c.file("other2.bin")
    x = c.file("x.bin")
    c.file("d2/a.txt")
    c.file("d2/b/c.txt")
    e_acute = c.file("\u00e9.bin")
    empty = c.file("empty.bin", data=b"")
    c.save(1, model, c.src / "optim", f"optim-extra.bin={other}", f"Upper.bin={other2}",
           f"nested/dest.bin={x}", f"state={c.src / 'd2'}", e_acute, empty)
    check_stored(c, c.root, 1, {
        "model.bin": model,
        "optim/shard-0.pt": c.src / "optim/shard-0.pt",
        "optim/sub/shard-1.pt": c.src / "optim/sub/shard-1.pt",
        "optim/_checkpoint.json": c.src / "optim/_checkpoint.json",
        "optim-extra.bin": other,
        "Upper.bin": other2,
        "nested/dest.bin": x,
        "state/a.txt": c.src / "d2/a.txt",
        "state/b/c.txt": c.src / "d2/b/c.txt",
        "\u00e9.bin": e_acute,
        "empty.bin": empty,
    })
    for p in (model, other, x, c.src / "d2/a.txt"):
        check(p.exists(), f"default transfer (--copy) must leave the source {p} in place")

    # --from DIR: contents at the top level
    fd = c.src / "fromdir"
    c.file("fromdir/a.txt")
    c.file("fromdir/b/c.txt")
    c.file("fromdir/model.bin")
    c.save(2, "--from", fd)
    check_stored(c, c.root, 2, {"a.txt": fd / "a.txt", "b/c.txt": fd / "b/c.txt", "model.bin": fd / "model.bin"})

    # --from DIR combined with a SOURCE
    extra = c.file("extra.bin")
    c.save(3, extra, "--from", fd)
    check_stored(c, c.root, 3, {"a.txt": fd / "a.txt", "b/c.txt": fd / "b/c.txt", "model.bin": fd / "model.bin",
                                "extra.bin": extra})

    # relative SOURCE, DEST=PATH and --from paths are relative to the working directory
    c.file("fromdir2/z.txt")
    c.file("fromdir2/y/w.txt")
    c.run("save", "--step", "4", "model.bin", "optim", "st=d2", "--from", "fromdir2", cwd=c.src, code=0)
    check_stored(c, c.root, 4, {
        "model.bin": model,
        "optim/shard-0.pt": c.src / "optim/shard-0.pt",
        "optim/sub/shard-1.pt": c.src / "optim/sub/shard-1.pt",
        "optim/_checkpoint.json": c.src / "optim/_checkpoint.json",
        "st/a.txt": c.src / "d2/a.txt",
        "st/b/c.txt": c.src / "d2/b/c.txt",
        "z.txt": c.src / "fromdir2/z.txt", "y/w.txt": c.src / "fromdir2/y/w.txt",
    })
    c.verify_ok()


@scenario
def save_metadata_fields(c):
    f = c.file("model.safetensors", size=2048)
    d = c.file("optim/shard-0.pt").parent
    c.save(7, f, d, opts=["--metric", "val_loss=1.25", "--metric", "acc=0.5", "--meta", "git_commit=abc123",
                          "--meta", "note=a b=c", "--weights", "model.safetensors"])
    m = meta(c.root, 7)
    expect_eq(m.get("format"), "ckpt", "format")
    expect_eq(m.get("schema_version"), 1, "schema_version")
    expect_eq(m.get("name"), name(7), "name")
    expect_eq(m.get("step"), 7, "step")
    expect_eq(m.get("metrics"), {"val_loss": 1.25, "acc": 0.5}, "metrics")
    expect_eq(m.get("meta"), {"git_commit": "abc123", "note": "a b=c"}, "meta")
    expect_eq(m.get("checksum"), "sha256", "checksum")
    expect_eq(m.get("weights"), ["model.safetensors"], "weights")
    expect_eq(m.get("tool"), f"ckpt {VERSION}", "tool")
    created = m.get("created")
    check(isinstance(created, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", created),
          f"created must be an ISO-8601 UTC timestamp like 2026-11-28T12:00:00.123Z, got {created!r}")
    ts = datetime.datetime.strptime(created[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    now = datetime.datetime.now(datetime.timezone.utc)
    check(abs((now - ts).total_seconds()) < 300, f"created {created} is not close to now ({now.isoformat()})")
    # metric values must be JSON numbers, not strings
    raw = (c.root / name(7) / "_checkpoint.json").read_text()
    check('"1.25"' not in raw, "metric values must be stored as JSON numbers, not strings")
    # bad --metric / --meta values are usage errors
    for bad in (["--metric", "val_loss=abc"], ["--metric", "novalue"], ["--meta", "novalue"]):
        res = c.save(8, f, opts=bad, code=None)
        expect_rc(res, 2, f"save with {bad}")
        c.no_partial(c.root, [7], f"save with {bad}")


@scenario
def save_option_order(c):
    """Repeatable single-value options must not swallow the SOURCE operands that follow them."""
    m = c.file("model.bin")
    o = c.file("other.bin")
    res = c.run("save", "--step", "1", "--metric", "val_loss=1.5", "--metric", "acc=0.25", "--meta", "k=v",
                "--weights", "model.bin", m, o)
    expect_rc(res, 0, "save with --metric/--meta/--weights before the sources")
    x = meta(c.root, 1)
    expect_eq(sorted(e["path"] for e in x["files"]), ["model.bin", "other.bin"], "files")
    expect_eq(x.get("metrics"), {"val_loss": 1.5, "acc": 0.25}, "metrics")
    expect_eq(x.get("meta"), {"k": "v"}, "meta")
    expect_eq(x.get("weights"), ["model.bin"], "weights")
    res = c.run("save", "--metric", "val_loss=1", "--step", "2", "--best-key", "val_loss", m)
    expect_rc(res, 0, "save with options in any order before the source")
    expect_eq([e["path"] for e in meta(c.root, 2)["files"]], ["model.bin"], "files of step 2")
    c.file("-dash.bin")
    res = c.run("save", "--step", "4", "--", "-dash.bin", cwd=c.src)
    expect_rc(res, 0, "save --step 4 -- -dash.bin")
    expect_eq([e["path"] for e in meta(c.root, 4)["files"]], ["-dash.bin"], "files of step 4")
    (c.src / "-dash.bin").unlink()
    res = c.run("save", "--step", "3", "--weights", "*.bin", "--from", c.src)
    expect_rc(res, 0, "save --weights GLOB --from DIR")
    expect_eq(sorted(meta(c.root, 3).get("weights", [])), ["model.bin", "other.bin"], "weights of step 3")


@scenario
def save_step_bounds(c):
    f = c.file("a.bin")
    c.save(0, f)
    check((c.root / "step-000000000").is_dir(), "step 0 must be stored as step-000000000")
    big = 2 ** 63 - 1
    c.save(big, f)
    check((c.root / f"step-{big}").is_dir(), f"step 2^63-1 must be stored as step-{big}")
    expect_eq(read_last(c.root), f"step-{big}\n".encode(), "last after step 2^63-1")
    expect_eq(meta(c.root, f"step-{big}").get("step"), big, "step field for 2^63-1")
    res = c.run("info", str(big), "--path", code=0)
    check(same_path(res.out.strip(), c.root / f"step-{big}"), "info 2^63-1 --path", res)
    c.save(1234567890, f)
    check((c.root / "step-1234567890").is_dir(), "10-digit step is stored without truncation")
    res = c.run("info", "1234567890", "--path", code=0)
    check(same_path(res.out.strip(), c.root / "step-1234567890"), "info 1234567890 --path", res)


@scenario
def save_sha256sum_compat(c):
    c.file("tree/model.bin", size=5000)
    c.file("tree/dir with space/f 1.bin")
    c.file("tree/optim/a/b/c.pt")
    c.file("tree/empty.bin", data=b"")
    c.save(1, "--from", c.src / "tree")
    ck = c.root / name(1)
    sums = ck / "SHA256SUMS"
    check(sums.is_file(), "SHA256SUMS must exist with the default checksum")
    res = c.raw(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=ck)
    expect_rc(res, 0, "coreutils sha256sum -c SHA256SUMS inside the checkpoint")
    m = meta(c.root, 1)
    digests = {e["path"]: e.get("sha256") for e in m["files"]}
    text = sums.read_text()
    check(text.endswith("\n"), "SHA256SUMS must end with a newline")
    listed = {}
    for line in text.splitlines():
        mm = re.fullmatch(r"([0-9a-f]{64})  (.+)", line)
        check(mm is not None, f"SHA256SUMS line not in coreutils format '<hex>  <path>': {line!r}")
        listed[mm.group(2)] = mm.group(1)
    expect_eq(listed, digests, "SHA256SUMS entries vs _checkpoint.json files")
    expect_eq(sorted(listed), sorted(["model.bin", "dir with space/f 1.bin", "optim/a/b/c.pt", "empty.bin"]),
              "paths listed in SHA256SUMS")

    c.save(2, "--from", c.src / "tree", opts=["--checksum", "none"])
    ck2 = c.root / name(2)
    check(not (ck2 / "SHA256SUMS").exists(), "--checksum none must not write SHA256SUMS")
    m2 = meta(c.root, 2)
    expect_eq(m2.get("checksum"), "none", "checksum with --checksum none")
    for e in m2["files"]:
        check("sha256" not in e, f"--checksum none: entry {e} must carry no sha256")
    c.verify_ok()
    res = c.save(3, c.src / "tree" / "model.bin", opts=["--checksum", "md5"], code=None)
    expect_rc(res, 2, "--checksum md5")


@scenario
def save_best_strict(c):
    f = c.file("model.bin")

    def best_step(root):
        b = read_best(root)
        return None if b is None else b.get("step")

    # min
    r = c.tmp / "rmin"
    first_updated = None
    for step, loss, exp_updated in ((1, "1.0", True), (2, "0.5", True), (3, "0.5", False), (4, "0.8", False)):
        res = c.save(step, f, opts=["--best-key", "val_loss", "--metric", f"val_loss={loss}", "--json"], root=r)
        j = res.json()
        expect_eq(j.get("best_updated"), exp_updated, f"save --json best_updated for step {step}", res)
        b = read_best(r)
        check(b is not None, f"best.json must exist after step {step}")
        expect_best_marker(j.get("best"), b, r, f"save --json best after step {step} (best.json)", res)
        want = 1 if step == 1 else 2
        expect_eq(b.get("step"), want, f"best.json step after saving step {step} (val_loss={loss}, min)")
        expect_eq(b.get("path"), name(want), "best.json path")
        expect_eq(b.get("key"), "val_loss", "best.json key")
        expect_eq(b.get("mode"), "min", "best.json mode")
        expect_eq(b.get("value"), 1.0 if step == 1 else 0.5, "best.json value")
        expect_eq(b.get("schema_version"), 1, "best.json schema_version")
        check(isinstance(b.get("updated"), str), "best.json updated must be a timestamp string")
        if step == 2:
            first_updated = b["updated"]
        if step > 2:
            expect_eq(b["updated"], first_updated, "best.json must not be rewritten without strict improvement")

    # max
    r = c.tmp / "rmax"
    for step, acc in ((1, "0.5"), (2, "0.9"), (3, "0.9"), (4, "0.7")):
        c.save(step, f, opts=["--best-key", "acc", "--mode", "max", "--metric", f"acc={acc}"], root=r)
        want = 1 if step == 1 else 2
        expect_eq(best_step(r), want, f"best.json step after saving step {step} (acc={acc}, max)")
        expect_eq(read_best(r).get("mode"), "max", "best.json mode")
    p = load_json(r / "policy.json")
    expect_eq((p.get("best_key"), p.get("best_mode")), ("acc", "max"), "policy.json records best key and --mode max")

    # missing key / non-finite values never become best
    r = c.tmp / "rnan"
    c.save(1, f, opts=["--best-key", "val_loss", "--metric", "other=1"], root=r)
    check(best_step(r) != 1, "a checkpoint without the best key must never become best")
    res = c.save(2, f, opts=["--best-key", "val_loss", "--metric", "val_loss=nan"], root=r)
    check("warning" in res.err.lower(), "a nan metric must be warned about on stderr", res)
    m = meta(r, 2)
    check("val_loss" in m.get("metrics", {}) and m["metrics"]["val_loss"] is None,
          f"nan must be stored as null in metrics, got {m.get('metrics')!r}")
    check(best_step(r) not in (1, 2), f"nan must never become best (best.json: {read_best(r)!r})")
    c.save(3, f, opts=["--best-key", "val_loss", "--metric", "val_loss=2.0"], root=r)
    expect_eq(best_step(r), 3, "first finite value becomes best")
    for step, v in ((4, "inf"), (5, "-inf")):
        res = c.save(step, f, opts=["--best-key", "val_loss", "--metric", f"val_loss={v}"], root=r)
        check("warning" in res.err.lower(), f"a {v} metric must be warned about on stderr", res)
        expect_eq(meta(r, step)["metrics"].get("val_loss", "MISSING"), None, f"{v} stored as null")
        expect_eq(best_step(r), 3, f"{v} must never become best")
    c.verify_ok(root=r)


@scenario
def save_policy_recorded(c):
    f = c.file("model.bin")
    c.save(1, f, opts=["--best-key", "val_loss", "--keep-last", "3", "--checksum", "none", "--metric", "val_loss=1.0"])
    p = load_json(c.root / "policy.json")
    expect_eq(p.get("schema_version"), 1, "policy.json schema_version")
    expect_eq(p.get("best_key"), "val_loss", "policy.json best_key")
    expect_eq(p.get("best_mode", "min"), "min", "policy.json best_mode")
    expect_eq(p.get("keep_last"), 3, "policy.json keep_last")
    expect_eq(p.get("checksum"), "none", "policy.json checksum")
    policy_bytes = (c.root / "policy.json").read_bytes()

    # later saves without options use the policy
    c.save(2, f, opts=["--metric", "val_loss=0.5"])
    m = meta(c.root, 2)
    expect_eq(m.get("checksum"), "none", "checksum of a save without --checksum (policy says none)")
    check(not (c.root / name(2) / "SHA256SUMS").exists(), "policy checksum none: no SHA256SUMS")
    check(all("sha256" not in e for e in m["files"]), "policy checksum none: no sha256 in entries")
    expect_eq(read_best(c.root).get("step"), 2, "best.json follows policy's best_key without --best-key")
    expect_eq((c.root / "policy.json").read_bytes(), policy_bytes, "policy.json unchanged by a save with no policy options")

    c.save(3, f, opts=["--metric", "val_loss=0.9"])
    res = c.save(4, f, opts=["--metric", "val_loss=0.8", "--json"])
    expect_eq(ref_names(res.json().get("pruned")), [name(1)], "save --json pruned (policy keep_last 3; step 2 is best)",
              res)
    expect_eq(step_dirs(c.root), [name(s) for s in (2, 3, 4)], "checkpoints after policy retention")
    res = c.save(5, f, opts=["--metric", "val_loss=0.7", "--json"])
    expect_eq(ref_names(res.json().get("pruned")), [], "nothing to prune at step 5 (best step 2 always kept)", res)
    expect_eq(step_dirs(c.root), [name(s) for s in (2, 3, 4, 5)], "checkpoints after step 5")

    # a new retention option replaces the recorded one; the best key stays
    res = c.save(6, f, opts=["--metric", "val_loss=0.95", "--keep-last", "1", "--json"])
    expect_eq(sorted(ref_names(res.json().get("pruned", []))), [name(s) for s in (3, 4, 5)], "pruned with --keep-last 1",
              res)
    expect_eq(step_dirs(c.root), [name(2), name(6)], "checkpoints after --keep-last 1 (last + best)")
    p = load_json(c.root / "policy.json")
    expect_eq(p.get("keep_last"), 1, "policy.json keep_last after --keep-last 1")
    res = c.run("info", "--json", code=0)
    expect_eq(res.json().get("policy"), {k: v for k, v in p.items() if k != "schema_version"},
              "info --json policy mirrors policy.json (its rules, without the file's schema_version)", res)
    expect_eq(p.get("best_key"), "val_loss", "policy.json best_key kept")
    c.verify_ok()


@scenario
def save_conflicts(c):
    f = c.file("model.bin", size=2000)
    c.save(1, f)
    before = snapshot(c.root / name(1))
    seq1 = meta(c.root, 1)["commit_seq"]
    f.write_bytes(os.urandom(2000))
    res = c.save(1, f, code=None)
    expect_rc(res, 4, "save of an existing step")
    expect_text_error(res)
    expect_eq(snapshot(c.root / name(1)), before, "the existing checkpoint must be byte-for-byte unchanged")
    expect_eq(staging_dirs(c.root), [], "staging after a refused save")
    expect_eq(read_last(c.root), (name(1) + "\n").encode(), "last after refused save")

    c.save(1, f, opts=["--force"])
    expect_eq((c.root / name(1) / "model.bin").read_bytes(), f.read_bytes(), "--force replaces the checkpoint")
    check(meta(c.root, 1)["commit_seq"] > seq1, "--force is a new commit (higher commit_seq)")
    expect_eq(step_dirs(c.root), [name(1)], "checkpoint dirs after --force")
    c.no_partial(c.root, [1], "after --force")
    expect_eq(read_last(c.root), (name(1) + "\n").encode(), "last after --force")
    allowed = {"last", ".ckpt", "policy.json", "best.json", name(1)}
    check(set(os.listdir(c.root)) <= allowed, f"leftovers in ROOT after --force: {sorted(os.listdir(c.root))}")
    c.verify_ok()

    # best key / mode conflicts
    r = c.tmp / "r2"
    c.save(1, f, opts=["--best-key", "val_loss", "--metric", "val_loss=1"], root=r)
    best_before = (r / "best.json").read_bytes()
    for opts in (["--best-key", "acc", "--metric", "acc=1"],
                 ["--best-key", "val_loss", "--mode", "max", "--metric", "val_loss=2"]):
        res = c.save(2, f, opts=opts, root=r, code=None)
        expect_rc(res, 4, f"save {opts} against best.json key val_loss/min")
        c.no_partial(r, [1], f"refused save {opts}")
        expect_eq((r / "best.json").read_bytes(), best_before, "best.json unchanged after a refused save")
    c.save(2, f, opts=["--best-key", "acc", "--mode", "max", "--metric", "acc=1", "--force"], root=r)
    check((r / name(2)).is_dir(), "--force allows a different best key")
    c.verify_ok(root=r)

    # --force replacing the best checkpoint with a worse value must not leave best.json lying
    r = c.tmp / "r3"
    c.save(1, f, opts=["--best-key", "val_loss", "--metric", "val_loss=1.0"], root=r)
    c.save(2, f, opts=["--best-key", "val_loss", "--metric", "val_loss=0.5"], root=r)
    c.save(2, f, opts=["--best-key", "val_loss", "--metric", "val_loss=0.9", "--force"], root=r)
    res = c.run("verify", "--strict", root=r)
    expect_rc(res, 0, "verify --strict after --force replaced the best checkpoint (markers must be consistent)")
    b = read_best(r)
    expect_eq((b.get("step"), b.get("value")), (2, 0.9), "best.json after replacing step 2 with val_loss 0.9")


@scenario
def save_refused_inputs(c):
    f = c.file("model.bin")
    c.save(1, f)
    last = read_last(c.root)

    reserved_src = c.file("res/_checkpoint.json")
    fromdir = c.src / "fromres"
    c.file("fromres/ok.bin")
    c.file("fromres/SHA256SUMS")
    link = c.src / "link.bin"
    os.symlink(f, link)
    ldir = c.src / "ldir"
    c.file("ldir/real.bin")
    os.symlink(f, ldir / "inner-link.bin")
    fifo = c.src / "fifo"
    os.mkfifo(fifo)
    fdir = c.src / "fdir"
    c.file("fdir/real.bin")
    os.mkfifo(fdir / "pipe")
    g = c.file("g.bin")

    cases = [
        ("DEST ../x", ["--step", "2", f"../x={f}"], 2),
        ("DEST absolute", ["--step", "2", f"/etc/x={f}"], 2),
        ("DEST with newline", ["--step", "2", f"a\nb={f}"], 2),
        ("DEST with backslash", ["--step", "2", f"a\\b={f}"], 2),
        ("DEST _checkpoint.json", ["--step", "2", f"_checkpoint.json={f}"], 2),
        ("DEST SHA256SUMS", ["--step", "2", f"SHA256SUMS={f}"], 2),
        ("DEST with . segment", ["--step", "2", f"a/./b={f}"], 2),
        ("DEST with empty segment", ["--step", "2", f"a//b={f}"], 2),
        ("DEST with inner ..", ["--step", "2", f"a/../b={f}"], 2),
        ("source named _checkpoint.json", ["--step", "2", reserved_src], 2),
        ("--from with SHA256SUMS at top", ["--step", "2", "--from", fromdir], 2),
        ("two sources with the same DEST", ["--step", "2", f, f"model.bin={g}"], 2),
        ("symlink source", ["--step", "2", link], 2),
        ("symlink inside a dir source", ["--step", "2", ldir], 2),
        ("FIFO source", ["--step", "2", fifo], 2),
        ("FIFO inside a dir source", ["--step", "2", fdir], 2),
        ("device source", ["--step", "2", "/dev/null"], 2),
        ("missing source", ["--step", "2", c.src / "nope.bin"], 3),
        ("missing --from dir", ["--step", "2", "--from", c.src / "nodir"], 3),
        ("missing source after a good one", ["--step", "2", f, c.src / "nope.bin"], 3),
        ("--step -1", ["--step", "-1", f], 2),
        ("--step abc", ["--step", "abc", f], 2),
        ("--step 1.5", ["--step", "1.5", f], 2),
        ("--step 2^63", ["--step", str(2 ** 63), f], 2),
        ("no --step", [f], 2),
    ]
    for label, args, code in cases:
        res = c.run("save", *args, code=None, timeout=20)
        expect_rc(res, code, f"save with {label}")
        expect_text_error(res)
        c.no_partial(c.root, [1], f"after refused save ({label})")
        expect_eq(read_last(c.root), last, f"last after refused save ({label})")
    check(fifo.exists() and f.exists(), "sources must be untouched")

    # --follow-symlinks stores the target's content
    c.save(2, link, ldir, opts=["--follow-symlinks"])
    ck = c.root / name(2)
    for stored in ("link.bin", "ldir/inner-link.bin"):
        p = ck / stored
        check(p.is_file() and not p.is_symlink(), f"--follow-symlinks: {stored} must be a regular file")
        expect_eq(p.read_bytes(), f.read_bytes(), f"--follow-symlinks: content of {stored}")
    c.verify_ok()


@scenario
def save_transfer_modes(c):
    # --move
    mf = c.file("mv/model.bin", size=3000)
    c.file("mv/dir/a.bin")
    c.file("mv/dir/sub/b.bin")
    expected = {"model.bin": sha256_file(mf), "dir/a.bin": sha256_file(c.src / "mv/dir/a.bin"),
                "dir/sub/b.bin": sha256_file(c.src / "mv/dir/sub/b.bin")}
    c.save(1, mf, c.src / "mv" / "dir", opts=["--move"])
    for rel in expected:
        check(not (c.src / "mv" / rel).exists(), f"--move must remove the source {rel}")
    check(not (c.src / "mv" / "dir").exists() or files_under(c.src / "mv" / "dir") == set(),
          "--move must leave no files in the source directory")
    for rel, d in expected.items():
        expect_eq(sha256_file(c.root / name(1) / rel), d, f"--move: content of {rel}")
    expect_eq(c.run("verify", name(1)).rc, 0, "verify after --move")

    # --link
    lf = c.file("ln/model.bin", size=3000)
    c.file("ln/dir/a.bin")
    c.save(2, lf, c.src / "ln" / "dir", opts=["--link"])
    for rel, srcp in (("model.bin", lf), ("dir/a.bin", c.src / "ln/dir/a.bin")):
        st, ss = os.stat(c.root / name(2) / rel), os.stat(srcp)
        check(st.st_ino == ss.st_ino and st.st_dev == ss.st_dev, f"--link: {rel} must be a hard link of the source")
    check(lf.exists(), "--link keeps the source")

    # --copy and the default
    cf = c.file("cp/model.bin", size=3000)
    for step, opts in ((3, ["--copy"]), (4, [])):
        c.save(step, cf, opts=opts)
        st, ss = os.stat(c.root / name(step) / "model.bin"), os.stat(cf)
        check(st.st_ino != ss.st_ino, f"{opts or 'default'}: stored file must not share the source inode")
        expect_eq((c.root / name(step) / "model.bin").read_bytes(), cf.read_bytes(), "copied bytes")
        check(cf.exists(), "copy keeps the source")
    res = c.save(5, cf, opts=["--copy", "--move"], code=None)
    expect_rc(res, 2, "--copy together with --move")
    c.verify_ok()


@scenario
def save_concurrent(c):
    c.save(1, c.file("seed.bin"))
    a = c.file("a.bin", size=8 << 20)
    b = c.file("b.bin", size=8 << 20)
    env = os.environ.copy()
    env["NO_COLOR"] = "1"
    procs = [subprocess.Popen([BIN, "--lock-timeout", "10", "-C", str(c.root), "save", "--step", str(s), str(p)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
             for s, p in ((2, a), (3, b))]
    for p in procs:
        out, err = p.communicate(timeout=60)
        check(p.returncode == 0, f"concurrent save failed: rc={p.returncode}\n{out.decode()}\n{err.decode()}")
    seqs = {s: meta(c.root, s)["commit_seq"] for s in (1, 2, 3)}
    expect_eq(sorted(seqs.values()), [seqs[1], seqs[1] + 1, seqs[1] + 2], "commit_seq of concurrent saves")
    newest = max((2, 3), key=lambda s: seqs[s])
    expect_eq(read_last(c.root), (name(newest) + "\n").encode(), "last names the highest commit_seq")
    c.no_partial(c.root, [1, 2, 3], "after concurrent saves")
    c.verify_ok()
    # the same step from two writers: exactly one wins, the other is a conflict
    procs = [subprocess.Popen([BIN, "--lock-timeout", "10", "-C", str(c.root), "save", "--step", "4", str(p)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
             for p in (a, b)]
    rcs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        rcs.append((p.returncode, out.decode(), err.decode()))
    check(sorted(r[0] for r in rcs) == [0, 4], f"two concurrent saves of step 4 must give exit 0 and 4: {rcs}")
    winner = a if rcs[0][0] == 0 else b
    expect_eq(sha256_file(c.root / name(4) / winner.name), sha256_file(winner), "the winner's bytes are stored")
    expect_eq(files_under(c.root / name(4)), {winner.name, "_checkpoint.json", "SHA256SUMS"},
              "no mixture of both writers in step 4")
    c.no_partial(c.root, [1, 2, 3, 4], "after racing saves of one step")
    c.verify_ok()


# --------------------------------------------------------------------------
# info


@scenario
def info_table_and_refs(c):
    c.make_root(c.root, steps=(1, 2, 3), opts=["--best-key", "val_loss"],
                metrics=[{"val_loss": 1.0}, {"val_loss": 0.5}, {"val_loss": 0.7}])
    res = c.run("info", code=0)
    for s in (1, 2, 3):
        check(name(s) in res.out, f"info table must list {name(s)}", res)

    def path_of(ref, want):
        r = c.run("info", ref, "--path", code=0)
        lines = r.out.splitlines()
        check(len(lines) == 1, f"info {ref} --path must print exactly one line", r)
        check(os.path.isabs(lines[0]), f"info {ref} --path must print an absolute path", r)
        check(same_path(lines[0], c.root / want), f"info {ref} --path must be {c.root / want}", r)

    path_of("latest", name(3))
    r = c.raw([BIN, "-C", "root", "info", "latest", "--path"], cwd=c.tmp, code=0)
    check(os.path.isabs(r.out.strip()) and same_path(r.out.strip(), c.root / name(3)),
          "info latest --path with a relative -C prints an absolute path", r)
    path_of("last", name(3))
    path_of("best", name(2))
    path_of("2", name(2))
    path_of(name(2), name(2))
    path_of(str(c.root / name(1)), name(1))
    path_of(str(c.root / name(1)) + "/", name(1))
    # relative path from inside the root
    r = c.run("info", f"./{name(1)}", "--path", code=0, cwd=c.root)
    check(same_path(r.out.strip(), c.root / name(1)), "relative ref ./step-… from cwd=ROOT", r)

    for ref in ("99", name(99)):
        expect_rc(c.run("info", ref), 3, f"info {ref}")
    other = c.make_root(c.tmp / "other", steps=(1,))
    for ref in ("../x", "foo", "-5", "2x", "step-abc", str(other / name(1)), str(c.tmp)):
        res = c.run("info", ref, code=None)
        expect_rc(res, 2, f"info {ref}")
        expect_text_error(res)

    j = c.run("info", "--json", code=0).json()
    for k in ("root", "last", "best", "policy", "checkpoints"):
        check(k in j, f"info --json must have key {k!r}: {sorted(j)}")
    check(same_path(j["root"], c.root), f"info --json root {j['root']!r}")
    expect_eq(ref_name(j["last"]), name(3), f"info --json last must name {name(3)}: {j['last']!r}")
    check(same_path(j["last"]["path"], c.root / name(3)) and j["last"]["step"] == 3, f"info --json last: {j['last']!r}")
    expect_best_marker(j["best"], read_best(c.root), c.root, "info --json best")
    expect_eq(ref_name(j["best"]), name(2), f"info --json best must name {name(2)}: {j['best']!r}")
    cks = {x.get("name"): x for x in j["checkpoints"]}
    expect_eq(sorted(cks), [name(s) for s in (1, 2, 3)], "info --json checkpoint names")
    for s in (1, 2, 3):
        x = cks[name(s)]
        for k in ("name", "path", "step", "commit_seq", "created", "metrics", "total_size", "file_count", "markers"):
            check(k in x, f"info --json checkpoint {name(s)} lacks {k!r}: {x}")
        m = meta(c.root, s)
        check(os.path.isabs(x["path"]) and same_path(x["path"], c.root / name(s)), f"path of {name(s)}: {x['path']!r}")
        expect_eq(x["step"], s, "step")
        expect_eq(x["commit_seq"], m["commit_seq"], "commit_seq")
        expect_eq(x["created"], m["created"], "created")
        expect_eq(x["metrics"], m["metrics"], "metrics")
        expect_eq(x["total_size"], m["total_size"], "total_size")
        expect_eq(x["file_count"], len(m["files"]), "file_count")
    expect_eq(sorted(cks[name(1)]["markers"]), [], "markers of step 1")
    expect_eq(sorted(cks[name(2)]["markers"]), ["best"], "markers of step 2")
    expect_eq(sorted(cks[name(3)]["markers"]), ["last"], "markers of step 3")

    res = c.run("info", "latest", "--json", code=0)
    j = res.json()
    m = meta(c.root, 3)
    for k, v in manifest_view(m).items():
        expect_eq(j.get(k), v, f"info latest --json field {k!r} vs _checkpoint.json", res)
    check("format" not in j, "info latest --json has no \"format\" field (the manifest's format_version is)", res)
    expect_eq(j.get("file_count"), len(m["files"]), "info latest --json file_count", res)
    check(same_path(j.get("path", ""), c.root / name(3)) and os.path.isabs(j["path"]), "info latest --json path", res)
    check("last" in j.get("markers", []), "info latest --json markers must contain 'last'", res)
    j = c.run("info", "best", "--json", code=0).json()
    check("best" in j.get("markers", []) and j.get("step") == 2, f"info best --json: {j}")


@scenario
def info_width_any(c):
    f = c.file("model.bin")
    c.save(5, f)
    c.save(7, f)
    os.rename(c.root / name(5), c.root / "step-05")
    res = c.run("info", "5", "--path")
    expect_rc(res, 0, "info 5 --path with the checkpoint in step-05 (readers accept any width)")
    check(same_path(res.out.strip(), c.root / "step-05"), "info 5 --path must give ROOT/step-05", res)
    res = c.run("info", "step-05", "--path", code=0)
    check(same_path(res.out.strip(), c.root / "step-05"), "info step-05 --path", res)
    res = c.run("info", "--json", code=0)
    steps = sorted(x.get("step") for x in res.json()["checkpoints"])
    expect_eq(steps, [5, 7], "info --json lists the narrow-width checkpoint", res)
    c.verify_ok()
    res = c.run("--json", "save", "--step", "5", f, code=0)
    expect_eq((res.json()["existing"], res.json()["name"]), (True, "step-05"),
              "save --step 5 with step-05's very files is the committed step-05")
    f.write_bytes(b"other content")
    res = c.save(5, f, code=None)
    expect_rc(res, 4, "save --step 5 with other content while step-05 exists (a step exists at most once)")
    expect_eq(step_dirs(c.root), ["step-000000007", "step-05"], "checkpoint directories after refused save")


@scenario
def info_latest_reads_one(c):
    c.make_root(c.root, steps=(1, 2, 3))
    (c.root / name(1) / "_checkpoint.json").write_bytes(b"garbage{")
    res = c.run("info", "latest", "--path", code=0)
    check(same_path(res.out.strip(), c.root / name(3)), "info latest --path ignores other checkpoints", res)
    res = c.run("info", "latest", "--json", code=0)
    expect_eq(res.json().get("step"), 3, "info latest --json with another checkpoint corrupt", res)
    # everything under .ckpt is private: a fake checkpoint there is never listed
    fake = c.root / ".ckpt" / "staging" / name(9)
    fake.mkdir(parents=True)
    shutil.copytree(c.root / name(2), fake, dirs_exist_ok=True)
    res = c.run("info", "--json")
    check(res.rc in (0, 1), "info with a corrupt checkpoint present", res)
    if res.rc == 0:
        names = [x.get("name") for x in res.json().get("checkpoints", [])]
        check(name(9) not in names, "readers must ignore .ckpt/", res)
    expect_rc(c.run("info", "9"), 3, "a directory under .ckpt/staging is not a checkpoint")
    shutil.rmtree(c.root / name(1))
    res = c.run("--lock-timeout", "0", "verify", "--json", lock_timeout=False)
    expect_rc(res, 0, "verify ignores a stale-looking staging directory")
    names = [x.get("name") for x in res.json().get("checkpoints", [])]
    expect_eq(sorted(names), [name(2), name(3)], "verify --json checkpoints", res)


@scenario
def info_incomplete_dir_not_a_checkpoint(c):
    """SPEC §1: only a directory holding a valid _checkpoint.json is a checkpoint; a ref naming nothing is exit 3."""
    c.make_root(c.root, steps=(1, 2))
    (c.root / name(9)).mkdir()
    (c.root / name(9) / "model.bin").write_bytes(b"partial")
    res = c.run("info", "--json")
    names = [x.get("name") for x in res.json().get("checkpoints", [])] if res.rc == 0 else None
    check(res.rc == 0 and names == [name(1), name(2)], "info --json must not list an incomplete directory", res)
    expect_rc(c.run("info", "latest"), 0, "info latest is unaffected")
    for args in (["info", "9"], ["info", name(9), "--path"], ["load", "9"]):
        expect_rc(c.run(*args), 3, " ".join(args) + " on a directory without _checkpoint.json")


@scenario
def info_empty_and_unknown_fields(c):
    c.root.mkdir()
    res = c.run("info", "--json", code=0)
    expect_eq(res.json().get("checkpoints"), [], "info --json on an empty root", res)
    expect_rc(c.run("info", "latest"), 3, "info latest on an empty root")
    expect_rc(c.run("load", "latest"), 3, "load latest on an empty root")
    expect_rc(c.run("info", "best"), 3, "info best on an empty root")
    c.verify_ok(what="verify on an empty root")
    c.make_root(c.root, steps=(1,))
    p = c.root / name(1) / "_checkpoint.json"
    doc = load_json(p)
    doc["future_field"] = {"x": [1, 2, 3]}
    write_json(p, doc)
    res = c.run("info", "1", "--json", code=0)
    expect_eq(res.json().get("step"), 1, "info on a _checkpoint.json with an unknown field", res)
    c.verify_ok(what="verify ignores unknown _checkpoint.json fields")


# --------------------------------------------------------------------------
# verify


def verify_json_problem(c, root, ck_name, kinds, path=None):
    res = c.run("verify", "--json", root=root)
    expect_rc(res, 1, "verify --json on a corrupt root")
    j = res.json()
    expect_eq(j.get("ok"), False, "verify --json ok", res)
    cks = {x.get("name"): x for x in j.get("checkpoints", [])}
    check(ck_name in cks, f"verify --json must report {ck_name}", res)
    x = cks[ck_name]
    expect_eq(x.get("ok"), False, f"{ck_name} ok", res)
    probs = x.get("problems", [])
    check(any(p.get("kind") in kinds and (path is None or p.get("path") == path) for p in probs),
          f"{ck_name} must have a problem of kind {sorted(kinds)}" + (f" for path {path!r}" if path else ""), res)
    for other, y in cks.items():
        if other != ck_name:
            expect_eq(y.get("ok"), True, f"intact checkpoint {other} ok", res)
    return j


@scenario
def verify_catches_corruption(c):
    def fresh(label):
        return c.make_root(c.tmp / f"r_{label}", steps=(1, 2))

    target = name(1)

    def case_flip():  # flipped byte (same size)
        r = fresh("flip")
        flip_byte(r / target / "model.bin")
        res = c.run("verify", root=r)
        expect_rc(res, 1, "verify after a byte flip")
        check(target in res.both and "model.bin" in res.both, "output must name the checkpoint and the file", res)
        verify_json_problem(c, r, target, {"digest_mismatch"}, "model.bin")
        expect_rc(c.run("verify", "--quick", root=r), 0, "verify --quick does not hash (same-size flip passes)")
        expect_rc(c.run("verify", name(2), root=r), 0, "verify of the intact checkpoint only")
        expect_rc(c.run("verify", target, root=r), 1, "verify of the corrupt checkpoint only")

    def case_truncated():  # truncated
        r = fresh("trunc")
        p = r / target / "optim" / "shard-0.pt"
        p.write_bytes(p.read_bytes()[:100])
        res = c.run("verify", root=r)
        expect_rc(res, 1, "verify after truncation")
        check(target in res.both and "optim/shard-0.pt" in res.both, "output must name the checkpoint and the file", res)
        verify_json_problem(c, r, target, {"size_mismatch", "digest_mismatch"}, "optim/shard-0.pt")
        expect_rc(c.run("verify", "--quick", root=r), 1, "verify --quick catches truncation")

    def case_deleted():  # deleted
        r = fresh("deleted")
        os.unlink(r / target / "model.bin")
        res = c.run("verify", root=r)
        expect_rc(res, 1, "verify after deletion")
        check(target in res.both and "model.bin" in res.both, "output must name the checkpoint and the file", res)
        verify_json_problem(c, r, target, {"missing"}, "model.bin")
        expect_rc(c.run("verify", "--quick", root=r), 1, "verify --quick catches deletion")

    def case_extra():  # extra file: warning only
        r = fresh("extra")
        (r / target / "extra.txt").write_text("surprise\n")
        res = c.run("verify", root=r)
        expect_rc(res, 0, "verify with an unlisted extra file (warning)")
        check("extra.txt" in res.both, "the extra file must be reported", res)
        res = c.run("verify", "--strict", root=r)
        expect_rc(res, 1, "verify --strict with an extra file")
        check("extra.txt" in res.both, "the extra file must be reported", res)
        res = c.run("verify", "--json", root=r, code=0)
        expect_eq(res.json().get("ok"), True, "verify --json ok with only a warning", res)
        check("extra.txt" in res.out, "verify --json must report the extra file", res)

    def case_metadata():  # garbage _checkpoint.json
        r = fresh("meta")
        (r / target / "_checkpoint.json").write_bytes(b"{not json at all\x00\xff")
        res = c.run("verify", root=r)
        expect_rc(res, 1, "verify with a garbage _checkpoint.json")
        check(target in res.both and "_checkpoint.json" in res.both, "output must name the checkpoint and the file", res)
        verify_json_problem(c, r, target, {"metadata"})

    def case_sha256sums():  # SHA256SUMS disagreeing with _checkpoint.json
        r = fresh("sums")
        s = r / target / "SHA256SUMS"
        text = s.read_text()
        first = text[0]
        s.write_text(("0" if first != "0" else "1") + text[1:])
        res = c.run("verify", root=r)
        expect_rc(res, 1, "verify with SHA256SUMS disagreeing with _checkpoint.json")
        check(target in res.both and "SHA256SUMS" in res.both, "output must name the checkpoint and SHA256SUMS", res)
        s.unlink()
        res = c.run("verify", root=r)
        expect_rc(res, 1, "verify with SHA256SUMS missing from a checksum=sha256 checkpoint")
        check(target in res.both and "SHA256SUMS" in res.both, "output must name the checkpoint and SHA256SUMS", res)

    def case_symlink():
        r = fresh("symlink")
        stored = r / target / "model.bin"
        copy = c.tmp / "model-copy.bin"
        shutil.copyfile(stored, copy)
        stored.unlink()
        os.symlink(copy, stored)
        res = c.run("verify", root=r)
        expect_rc(res, 1, "verify with a stored file replaced by a symlink to identical bytes")
        check(target in res.both and "model.bin" in res.both, "output must name the checkpoint and the file", res)
        res = c.run("load", "1", root=r)
        expect_rc(res, 1, "load of a checkpoint whose file is a symlink")

    c.sub("flip", case_flip)
    c.sub("symlink", case_symlink)
    c.sub("truncated", case_truncated)
    c.sub("deleted", case_deleted)
    c.sub("extra", case_extra)
    c.sub("metadata", case_metadata)
    c.sub("sha256sums", case_sha256sums)


@scenario
def verify_verbose_quiet(c):
    c.make_root(c.root, steps=(1, 2))
    res = c.run("verify", "-v", code=0)
    lines = set(line.strip() for line in res.out.splitlines())
    for s in (1, 2):
        for rel in ("model.bin", "optim/shard-0.pt", "optim/shard-1.pt"):
            check(f"{name(s)}/{rel}: OK" in lines, f"verify -v must print '{name(s)}/{rel}: OK'", res)
    res = c.run("verify", "-q", code=0)
    expect_eq((res.out, res.err), ("", ""), "verify -q on a good root prints nothing", res)
    res = c.run("verify", "--json", code=0)
    j = res.json()
    expect_eq(j.get("ok"), True, "verify --json ok", res)
    expect_eq(j.get("markers", {}).get("ok"), True, "verify --json markers.ok", res)
    expect_eq(sorted((x.get("name"), x.get("step"), x.get("ok"), x.get("problems")) for x in j.get("checkpoints", [])),
              [(name(1), 1, True, []), (name(2), 2, True, [])], "verify --json checkpoints", res)
    for x in j["checkpoints"]:
        check(os.path.isabs(x.get("path", "")) and same_path(x["path"], c.root / x["name"]),
              f"verify --json path of {x['name']}: {x.get('path')!r}", res)
    res = c.run("verify", name(2), "latest", "1", code=0)
    flip_byte(c.root / name(1) / "model.bin")
    for args in (["verify", "-q"], ["-q", "verify"]):
        res = c.run(*args)
        expect_rc(res, 1, " ".join(args) + " on a corrupt root")
        expect_eq((res.out, res.err), ("", ""), " ".join(args) + " must print nothing", res)
    res = c.run("verify", "-v")
    expect_rc(res, 1, "verify -v on a corrupt root")
    check(f"{name(1)}/optim/shard-0.pt: OK" in res.out, "verify -v still lists good files", res)
    check(f"{name(1)}/model.bin: OK" not in res.out, "verify -v must not call the corrupt file OK", res)


def marker_problem_kinds(j):
    mk = j.get("markers", {})
    return mk.get("ok"), [p.get("kind") for p in mk.get("problems", [])]


@scenario
def verify_markers(c):
    # last dangling
    r = c.make_root(c.tmp / "r_dangling", steps=(1, 2))
    (r / "last").write_text(name(9) + "\n")
    res = c.run("verify", root=r)
    expect_rc(res, 1, "verify with last naming a missing checkpoint")
    res = c.run("verify", "--json", root=r)
    expect_rc(res, 1, "verify --json with a dangling last")
    ok, kinds = marker_problem_kinds(res.json())
    check(ok is False and "last_dangling" in kinds, "markers.ok false with a last_dangling problem", res)
    before = {n: snapshot(r / n) for n in step_dirs(r)}
    res = c.run("verify", "--repair", root=r)
    check(res.rc in (0, 1), f"verify --repair must not crash (rc {res.rc})", res)
    expect_eq({n: snapshot(r / n) for n in step_dirs(r)}, before, "--repair never touches a checkpoint's files")
    expect_eq(read_last(r), (name(2) + "\n").encode(), "last after --repair")
    c.verify_ok(root=r, what="verify after --repair")

    # last naming an incomplete directory
    r = c.make_root(c.tmp / "r_incomplete", steps=(1, 2))
    (r / name(9)).mkdir()
    (r / name(9) / "model.bin").write_bytes(b"partial")
    (r / "last").write_text(name(9) + "\n")
    expect_rc(c.run("verify", root=r), 1, "verify with last naming an incomplete checkpoint directory")

    # garbage last
    r = c.make_root(c.tmp / "r_garbage_last", steps=(1, 2))
    (r / "last").write_bytes(b"\x00\xffnot a checkpoint\n")
    expect_rc(c.run("verify", root=r), 1, "verify with an unreadable last")

    # best.json value disagrees
    r = c.make_root(c.tmp / "r_bestval", steps=(1, 2), opts=["--best-key", "val_loss"],
                    metrics=[{"val_loss": 1.0}, {"val_loss": 0.5}])
    b = read_best(r)
    b["value"] = 0.123
    write_json(r / "best.json", b)
    expect_rc(c.run("verify", root=r), 1, "verify with best.json value disagreeing")
    res = c.run("verify", "--json", root=r)
    ok, kinds = marker_problem_kinds(res.json())
    check(ok is False and "best_value_mismatch" in kinds, "markers problem best_value_mismatch", res)
    c.run("verify", "--repair", root=r)
    b = read_best(r)
    check(b.get("step") == 2 and b.get("value") == 0.5, f"best.json after --repair: {b}")
    c.verify_ok(root=r, what="verify after --repair of best.json")

    # best.json naming a missing checkpoint; garbage best.json
    r = c.make_root(c.tmp / "r_bestdangling", steps=(1, 2), opts=["--best-key", "val_loss"],
                    metrics=[{"val_loss": 1.0}, {"val_loss": 0.5}])
    b = read_best(r)
    b["step"], b["path"] = 9, name(9)
    write_json(r / "best.json", b)
    expect_rc(c.run("verify", root=r), 1, "verify with best.json naming a missing checkpoint")
    (r / "best.json").write_bytes(b"{{{garbage")
    expect_rc(c.run("verify", root=r), 1, "verify with a garbage best.json")

    # stale last: warning only
    r = c.make_root(c.tmp / "r_stale", steps=(1, 2))
    (r / "last").write_text(name(1) + "\n")
    res = c.run("verify", root=r)
    expect_rc(res, 0, "verify with a stale last (warning)")
    check("last" in res.both, "the stale last must be reported", res)
    expect_rc(c.run("verify", "--strict", root=r), 1, "verify --strict with a stale last")
    c.run("verify", "--repair", root=r)
    expect_eq(read_last(r), (name(2) + "\n").encode(), "last after --repair of a stale last")
    expect_rc(c.run("verify", "--strict", root=r), 0, "verify --strict after --repair")
    (r / "last").write_text(name(1) + "\n")
    c.save(3, c.std_sources()[0], root=r)
    expect_eq(read_last(r), (name(3) + "\n").encode(), "a save brings a stale last up to date")

    # stale best: warning only
    r = c.make_root(c.tmp / "r_stalebest", steps=(1, 2), opts=["--best-key", "val_loss"],
                    metrics=[{"val_loss": 1.0}, {"val_loss": 0.5}])
    b = read_best(r)
    b["step"], b["path"], b["value"] = 1, name(1), 1.0
    write_json(r / "best.json", b)
    expect_rc(c.run("verify", root=r), 0, "verify with a stale best.json (warning)")
    expect_rc(c.run("verify", "--strict", root=r), 1, "verify --strict with a stale best.json")


# --------------------------------------------------------------------------
# load


@scenario
def load_paths(c):
    c.file("w/model.safetensors", size=3000)
    c.file("w/extra.safetensors", size=2000)
    c.file("w/optim/shard-0.pt")
    c.file("w/optim/shard-1.pt")
    c.file("w/rng.pt", size=100)
    src = c.src / "w"
    all_files = ["extra.safetensors", "model.safetensors", "optim/shard-0.pt", "optim/shard-1.pt", "rng.pt"]
    c.save(1, "--from", src, opts=["--weights", "model.safetensors"])
    c.save(2, "--from", src, opts=["--weights", "*.safetensors"])
    c.save(3, "--from", src)
    expect_eq(meta(c.root, 1).get("weights"), ["model.safetensors"], "weights of step 1")
    expect_eq(sorted(meta(c.root, 2).get("weights", [])), ["extra.safetensors", "model.safetensors"],
              "weights of step 2 (glob expanded to stored paths)")
    expect_eq(meta(c.root, 3).get("weights"), [], "weights of step 3")

    def printed(res, base, want):
        lines = res.lines()
        check(all(os.path.isabs(x) for x in lines), "load must print absolute paths", res)
        check(all(os.path.isfile(x) for x in lines), "printed paths must exist", res)
        expect_eq(sorted(os.path.realpath(x) for x in lines),
                  sorted(os.path.realpath(base / w) for w in want), "printed paths", res)
        expect_eq(len(lines), len(want), "one line per file", res)

    res = c.run("load", "latest", code=0)
    printed(res, c.root / name(3), all_files)
    res = c.run("load", "1", "--weights-only", code=0)
    printed(res, c.root / name(1), ["model.safetensors"])
    res = c.run("load", "2", "--weights-only", code=0)
    printed(res, c.root / name(2), ["extra.safetensors", "model.safetensors"])
    expect_rc(c.run("load", "3", "--weights-only"), 3, "load --weights-only of a checkpoint without weights")
    res = c.run("load", "1", "--only", "optim/*", code=0)
    printed(res, c.root / name(1), ["optim/shard-0.pt", "optim/shard-1.pt"])
    expect_rc(c.run("load", "99"), 3, "load 99")

    to = c.tmp / "out"
    res = c.run("load", "1", "--to", to, code=0)
    printed(res, to, all_files)
    for rel in all_files:
        expect_eq((to / rel).read_bytes(), (src / rel).read_bytes(), f"--to: bytes of {rel}")
    check(files_under(to) == set(all_files), f"--to must write only the selected files: {sorted(files_under(to))}")

    # --to never writes outside DIR, even through symlinks planted inside DIR
    to2 = c.tmp / "out2"
    to2.mkdir()
    outside = c.tmp / "outside"
    outside.mkdir()
    (outside / "victim.bin").write_bytes(b"do not overwrite")
    os.symlink(outside, to2 / "optim")
    os.symlink(outside / "victim.bin", to2 / "model.safetensors")
    res = c.run("load", "1", "--to", to2)
    check(res.rc in (0, 1, 2, 6), "load --to DIR with planted symlinks: unexpected exit code", res)
    expect_eq(sorted(os.listdir(outside)), ["victim.bin"], "load --to must not create files outside DIR", res)
    expect_eq((outside / "victim.bin").read_bytes(), b"do not overwrite", "load --to must not write through a symlink", res)

    res = c.run("load", "1", "--json", code=0)
    j = res.json()
    expect_eq(j.get("name"), name(1), "load --json name", res)
    check(same_path(j.get("path", ""), c.root / name(1)), "load --json path", res)
    files = load_locations(j)
    expect_eq(sorted(files), all_files, "load --json files paths", res)
    for k, v in files.items():
        check(os.path.isabs(v) and same_path(v, c.root / name(1) / k), f"load --json location of {k!r}", res)
    expect_eq(len(j["files"]), len(files), "load --json files: one entry per stored path", res)
    entries = {e["path"]: e for e in meta(c.root, 1)["files"]}
    for f in j["files"]:
        expect_eq((f["size"], f["sha256"]), (entries[f["path"]]["size"], entries[f["path"]]["sha256"]),
                  f"load --json size and sha256 of {f['path']!r} (as the manifest)", res)

    # corruption
    flip_byte(c.root / name(1) / "model.safetensors")
    res = c.run("load", "1")
    expect_rc(res, 1, "load of a corrupt checkpoint")
    expect_eq(res.out, "", "load of a corrupt checkpoint must print no paths", res)
    res = c.run("load", "1", "--only", "optim/*", code=0)
    printed(res, c.root / name(1), ["optim/shard-0.pt", "optim/shard-1.pt"])
    res = c.run("load", "1", "--no-verify", code=0)
    printed(res, c.root / name(1), all_files)


# --------------------------------------------------------------------------
# exit codes

LOCK_HOLDER = r"""
import fcntl, sys, time
f = open(sys.argv[1], 'a+')
fcntl.flock(f, fcntl.LOCK_EX)
try:
    fcntl.lockf(f, fcntl.LOCK_EX)
except OSError:
    pass
print('locked', flush=True)
time.sleep(120)
"""


@scenario
def exit_codes_all(c):
    f = c.file("model.bin")
    c.make_root(c.root, steps=(1,))
    # 0
    expect_rc(c.run("info"), 0, "info")
    # 2
    for args in (["save", f], ["--bogus-option", "info"], ["info", "--bogus"], ["frobnicate"],
                 ["save", "--step", "2", f, "--mode", "sideways", "--best-key", "x"],
                 ["prune", "--keep-last", "-1"], ["prune", "--keep-within", "7x"], ["prune", "--keep-within", ""],
                 ["--lock-timeout", "-1", "info"], ["--lock-timeout", "abc", "info"], ["--progress", "bogus", "info"],
                 ["save", "--step", "2", f, "--checksum", "crc32"], ["save", "--step", "2", f, "--keep-last", "x"]):
        res = c.run(*args)
        expect_rc(res, 2, "usage error " + " ".join(map(str, args)))
        expect_text_error(res)
    # 3
    for args in (["info"], ["verify"], ["load", "latest"], ["prune", "--keep-last", "1"]):
        res = c.run(*args, root=c.tmp / "no" / "such" / "root")
        expect_rc(res, 3, "nonexistent root: " + " ".join(args))
        expect_text_error(res)
    check(not (c.tmp / "no").exists(), "a read command must not create the root")
    expect_rc(c.run("info", "42"), 3, "info 42")
    # 4
    expect_rc(c.save(1, f, code=None), 4, "save of an existing step")
    # 7: not a ckpt root
    other = c.tmp / "notaroot"
    other.mkdir()
    (other / "thesis.tex").write_text("precious\n")
    (other / "data").mkdir()
    (other / "data" / "x.csv").write_text("1,2\n")
    before = snapshot(other)
    for args in (["info"], ["verify"], ["prune", "--keep-last", "1"], ["info", "latest"],
                 ["verify", "--repair"]):
        res = c.run(*args, root=other)
        expect_rc(res, 7, "not a ckpt root: " + " ".join(map(str, args)))
        expect_text_error(res)
    expect_eq(snapshot(other), before, "a directory that is not a root must be left untouched")
    # 7: newer schema
    c.save(2, f)
    p = c.root / name(2) / "_checkpoint.json"
    doc = load_json(p)
    doc["schema_version"] = 2
    write_json(p, doc)
    for args in (["info", name(2)], ["info", "latest"], ["load", "2"]):
        res = c.run(*args)
        expect_rc(res, 7, " ".join(args) + " on schema_version 2")
        msg = res.err
        check(re.search(r"(?<![\w.-])v?2(?![\w-])", msg) and re.search(r"(?<![\w.-])v?1(?![\w-])", msg),
              "the message must name both schema versions (2 and 1)", res)
    doc["schema_version"] = 1
    write_json(p, doc)
    # 1
    flip_byte(c.root / name(1) / "model.bin")
    expect_rc(c.run("verify"), 1, "verify on a corrupt checkpoint")
    res = c.run("load", "1")
    expect_rc(res, 1, "load of a corrupt checkpoint")
    expect_text_error(res)
    shutil.rmtree(c.root)
    c.make_root(c.root, steps=(1,))

    # 5: lock held by another process
    lockfile = c.root / ".ckpt" / "lock"
    check(lockfile.parent.is_dir(), "ROOT/.ckpt must exist after a save")
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(lockfile)], stdout=subprocess.PIPE)
    try:
        line = holder.stdout.readline()
        check(line.strip() == b"locked", "lock holder did not start")
        res = c.run("--lock-timeout", "0", "save", "--step", "2", f, lock_timeout=False)
        expect_rc(res, 5, "save while another process holds ROOT/.ckpt/lock (--lock-timeout 0)")
        expect_text_error(res)
        c.no_partial(c.root, [1], "after a save refused by the lock")
        t0 = time.monotonic()
        res = c.run("--lock-timeout", "1", "--json", "save", "--step", "2", f, lock_timeout=False)
        took = time.monotonic() - t0
        expect_json_error(res, 5, "locked")
        check(0.8 <= took < 5, f"--lock-timeout 1 should wait about 1 s, took {took:.2f}s", res)
        for args in (["info"], ["verify"], ["load", "latest"], ["info", "latest", "--path"]):
            expect_rc(c.run("--lock-timeout", "0", *args, lock_timeout=False), 0,
                      "readers take no lock: " + " ".join(args))
        res = c.run("--lock-timeout", "0", "prune", "--keep-last", "5", lock_timeout=False)
        expect_rc(res, 5, "prune while the lock is held")
        # interrupted while waiting for the lock: 130, staging removed
        env = os.environ.copy()
        env["NO_COLOR"] = "1"
        w = subprocess.Popen([BIN, "--lock-timeout", "30", "-C", str(c.root), "save", "--step", "2", str(f)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        time.sleep(1.0)
        check(w.poll() is None, "save should be waiting for the lock")
        w.send_signal(signal.SIGINT)
        out, err = w.communicate(timeout=20)
        check(w.returncode == 130, f"save interrupted while waiting for the lock: rc {w.returncode}, "
                                   f"expected 130\n{out.decode()}{err.decode()}")
        c.no_partial(c.root, [1], "after SIGINT while waiting for the lock")
    finally:
        holder.kill()
        holder.wait()
    # a lock held by a dead process is never an obstacle
    c.save(2, f, opts=[], lock_timeout=False)
    check((c.root / name(2)).is_dir(), "save after the lock holder died")

    # 6: disk full on a tiny tmpfs
    mnt = c.tmp / "tiny"
    mnt.mkdir()
    m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    check(m.returncode == 0, f"cannot mount a tmpfs (this scenario must run as root): {m.stderr.strip()}")
    try:
        r = mnt / "root"
        small = c.file("small.bin", size=1000)
        c.save(1, small, root=r)
        snap = snapshot(r / name(1))
        bigf = c.file("big4m.bin", size=4 << 20)
        res = c.save(2, bigf, root=r, code=None)
        expect_rc(res, 6, "save of 4 MiB onto a 1 MiB tmpfs")
        expect_text_error(res)
        check(re.search(r"no space|disk full", res.err, re.I), "message must say 'no space' / 'disk full'", res)
        c.no_partial(r, [1], "after disk full")
        expect_eq(snapshot(r / name(1)), snap, "earlier checkpoint intact after disk full")
        expect_eq(read_last(r), (name(1) + "\n").encode(), "last after disk full")
        c.verify_ok(root=r, what="verify after disk full")
        res = c.run("--json", "save", "--step", "2", bigf, root=r)
        expect_json_error(res, 6, "io")
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


@scenario
def exit_io_root_under_file(c):
    f = c.file("model.bin")
    blocker = c.tmp / "afile"
    blocker.write_text("I am a file\n")
    res = c.save(1, f, root=blocker / "sub" / "root", code=None)
    expect_rc(res, 6, "save with a root whose parent is a regular file (ENOTDIR)")
    expect_text_error(res)
    expect_eq(blocker.read_text(), "I am a file\n", "the blocking file is untouched")


# --------------------------------------------------------------------------
# JSON


@scenario
def json_errors(c):
    f = c.file("model.bin")
    c.make_root(c.root, steps=(1,))
    expect_json_error(c.run("--json", "save", f), 2, "usage")
    expect_json_error(c.run("save", "--step", "x", f, "--json"), 2, "usage")
    expect_json_error(c.run("--json", "info", "../x"), 2, "usage")
    expect_json_error(c.run("--json", "info", "99"), 3, "not_found")
    expect_json_error(c.run("--json", "info", root=c.tmp / "nope"), 3, "not_found")
    expect_json_error(c.run("--json", "save", "--step", "2", c.src / "missing"), 3, "not_found")
    expect_json_error(c.run("--json", "save", "--step", "1", f), 4, "conflict")
    odd = c.tmp / "odd"
    odd.mkdir()
    (odd / "notes.txt").write_text("x")
    expect_json_error(c.run("--json", "info", root=odd), 7, "unsupported")
    flip_byte(c.root / name(1) / "model.bin")
    expect_json_error(c.run("--json", "load", "1"), 1, "integrity")
    # without --json: the human form
    res = c.run("info", "99")
    expect_rc(res, 3, "info 99")
    expect_text_error(res)
    expect_eq(res.out, "", "stdout on failure", res)


@scenario
def json_save_fields(c):
    model = c.file("model.bin", size=1234)
    c.file("d/a.bin", size=100)
    c.file("d/b.bin", size=200)
    res = c.save(3, model, c.src / "d", opts=["--json", "--best-key", "val_loss", "--metric", "val_loss=0.5"])
    j = res.json()
    for k in ("schema_version", "root", "name", "path", "step", "commit_seq", "committed", "existing", "metrics",
              "total_size", "file_count", "best_updated", "best", "pruned", "shared", "shards", "warnings"):
        check(k in j, f"save --json must have {k!r}", res)
    check("files" not in j, "save --json counts the files in file_count (there is no \"files\")", res)
    m = meta(c.root, 3)
    expect_eq(j["schema_version"], 1, "schema_version", res)
    check(same_path(j["root"], c.root) and os.path.isabs(j["root"]), "root must be absolute", res)
    expect_eq(j["name"], name(3), "name", res)
    check(os.path.isabs(j["path"]) and same_path(j["path"], c.root / name(3)), "path must be absolute", res)
    expect_eq(j["step"], 3, "step", res)
    expect_eq(j["commit_seq"], m["commit_seq"], "commit_seq", res)
    expect_eq((j["committed"], j["existing"]), (True, False), "committed, existing", res)
    expect_eq(j["metrics"], {"val_loss": 0.5}, "metrics", res)
    expect_eq(j["file_count"], 3, "file_count", res)
    expect_eq(j["total_size"], 1234 + 100 + 200, "total_size", res)
    expect_eq(j["best_updated"], True, "best_updated", res)
    expect_eq((ref_name(j["best"]), j["best"].get("key"), j["best"].get("value")), (name(3), "val_loss", 0.5),
              "best", res)
    expect_best_marker(j["best"], read_best(c.root), c.root, "save --json best", res)
    expect_eq(j["pruned"], [], "pruned", res)
    expect_eq(j["shards"], None, "shards of a save without --shard", res)
    expect_eq(j["shared"], {"file_count": 0, "total_size": 0, "with": None}, "shared without --dedup", res)
    expect_eq(j["warnings"], [], "warnings", res)
    res = c.save(4, model, opts=["--json", "--metric", "val_loss=0.9"])
    j = res.json()
    expect_eq(j["best_updated"], False, "best_updated on a worse value", res)
    expect_eq(j["best"].get("key"), "val_loss", "best.key", res)
    expect_eq(ref_name(j["best"]), name(3), "best still names step 3", res)
    res = c.save(5, model, opts=["--json", "--metric", "val_loss=0.8", "--keep-last", "1"])
    j = res.json()
    expect_eq(sorted(ref_names(j["pruned"])), [name(4)], "pruned with --keep-last 1 (step 3 is best)", res)
    expect_eq(j["pruned"][0].get("step"), 4, "pruned[0].step", res)
    check(os.path.isabs(j["pruned"][0].get("path", "")) and same_path(j["pruned"][0]["path"], c.root / name(4)),
          "pruned[0].path: the absolute path the checkpoint had", res)
    res = c.save(6, model, opts=["--json", "--progress", "always", "--metric", "val_loss=0.95"])
    expect_eq(res.json().get("step"), 6, "--progress always keeps stdout pure JSON", res)
    res = c.run("-q", "save", "--step", "7", model, code=0)
    expect_eq(res.out, "", "save -q prints nothing on stdout", res)


# --------------------------------------------------------------------------
# legacy


@scenario
def legacy_aliases(c):
    f = c.file("model.safetensors")
    g = c.file("other.bin")

    def one_warning(res, opt):
        dl = deprecation_lines(res)
        check(len(dl) == 1, f"exactly one deprecation warning line expected for {opt}, got {len(dl)}", res)
        check(dl[0].startswith("ckpt: warning:") and opt in dl[0],
              f"warning line must start with 'ckpt: warning:' and name {opt}", res)

    def out_dir():
        r1 = c.tmp / "r_out_dir"
        res = c.raw([BIN, "--out_dir", r1, "save", "--step", "1", f], code=0)
        one_warning(res, "--out_dir")
        check((r1 / name(1)).is_dir(), "--out_dir acts as -C")
        r2 = c.tmp / "r_out-dir"
        res = c.raw([BIN, "save", "--step", "1", f, "--out-dir", r2], code=0)
        one_warning(res, "--out-dir")
        check((r2 / name(1)).is_dir(), "--out-dir acts as -C")

    def option_aliases():
        res = c.save(1, f, g, opts=["--best_key", "val_loss", "--metric", "val_loss=1", "--weights", "model.safetensors"])
        one_warning(res, "--best_key")
        expect_eq(read_best(c.root).get("key"), "val_loss", "--best_key acts as --best-key")
        c.save(2, f, g, opts=["--metric", "val_loss=2", "--weights", "model.safetensors"])
        res = c.save(3, f, g, opts=["--keep_last_k", "2", "--metric", "val_loss=3", "--weights", "model.safetensors"])
        one_warning(res, "--keep_last_k")
        expect_eq(load_json(c.root / "policy.json").get("keep_last"), 2, "--keep_last_k acts as --keep-last")
        expect_eq(step_dirs(c.root), [name(1), name(2), name(3)], "retention with keep_last 2 (step 1 is best)")
        c.save(4, f, g, opts=["--metric", "val_loss=4", "--weights", "model.safetensors"])
        expect_eq(step_dirs(c.root), [name(1), name(3), name(4)], "retention from policy (keep_last 2 + best)")
        res = c.run("load", "latest", "--weights_only", code=0)
        one_warning(res, "--weights_only")
        expect_eq([os.path.basename(x) for x in res.lines()], ["model.safetensors"], "--weights_only output", res)

    def info_flag():
        r = c.make_root(c.tmp / "r_info_flag", steps=(1, 2))
        b = c.run("--json", "info", "latest", root=r, code=0).json()

        def same_but_warning(res, what):
            # the same object, but for "warnings": the deprecation warning --info gives (also on stderr)
            j = res.json()
            expect_eq({k: v for k, v in j.items() if k != "warnings"}, {k: v for k, v in b.items() if k != "warnings"},
                      what, res)
            w = j.get("warnings")
            check(isinstance(w, list) and len(w) == 1 and "--info" in w[0] and "deprecated" in w[0].lower()
                  and f"ckpt: warning: {w[0]}" in res.err.splitlines(),
                  "--json warnings must hold the --info deprecation warning printed on stderr", res)

        res = c.raw([BIN, "--info", "latest", "-C", r, "--json"], code=0)
        same_but_warning(res, "ckpt --info latest -C ROOT --json must equal ckpt -C ROOT --json info latest")
        res = c.run("--json", "--info", "latest", root=r, code=0)
        same_but_warning(res, "ckpt -C ROOT --json --info latest (global options first) must equal info latest")
        res = c.run("--info", "latest", "--path", root=r, code=0)
        check(same_path(res.out.strip(), r / name(2)), "ckpt --info latest --path", res)

    def last_form(form):
        r = c.make_root(c.tmp / f"r_{form}", steps=(1, 2))
        lp = r / "last"
        lp.unlink()
        target = r / name(2)
        if form == "symlink_rel":
            os.symlink(name(2), lp)
        elif form == "symlink_abs":
            os.symlink(target, lp)
        elif form == "text_abs":
            lp.write_text(str(target) + "\n")
        else:
            lp.write_text(f"./{name(2)}\n")
        res = c.run("info", "latest", "--path", root=r)
        expect_rc(res, 0, f"info latest --path with a legacy last ({form})")
        check(same_path(res.out.strip(), target), f"legacy last ({form}) must resolve to {target}", res)
        check(len(deprecation_lines(res)) >= 1, f"legacy last ({form}) must produce a deprecation warning", res)
        expect_rc(c.run("verify", root=r), 0, f"verify with a legacy last ({form})")
        check(target.is_dir() and meta(r, 2)["step"] == 2, "the checkpoint a legacy symlink names is intact")
        c.save(3, f, root=r)
        check(not lp.is_symlink(), f"the next save must replace the legacy last ({form}) with a regular file")
        expect_eq(read_last(r), (name(3) + "\n").encode(), f"canonical last after save ({form})")
        check((r / name(2) / "_checkpoint.json").is_file(), f"{name(2)} intact after rewriting last ({form})")
        expect_eq(c.run("verify", root=r).rc, 0, f"verify after rewriting legacy last ({form})")

    c.sub("--out_dir/--out-dir", out_dir)
    c.sub("--best_key/--keep_last_k/--weights_only", option_aliases)
    c.sub("--info REF", info_flag)
    for form in ("symlink_rel", "symlink_abs", "text_abs", "text_rel"):
        c.sub(f"legacy last {form}", last_form, form)


@scenario
def global_options_after_command(c):
    c.make_root(c.root, steps=(1, 2))
    a = c.raw([BIN, "info", "--json", "-C", c.root], code=0).json()
    b = c.raw([BIN, "-C", c.root, "--json", "info"], code=0).json()
    expect_eq(a, b, "ckpt info --json -C ROOT vs ckpt -C ROOT --json info")
    d = c.raw([BIN, "info", "--json"], env={"CKPT_ROOT": str(c.root)}, code=0).json()
    expect_eq(d, b, "CKPT_ROOT is used when -C is absent")
    e = c.raw([BIN, "--json", "info"], cwd=c.root, code=0).json()
    e_root = e.pop("root", None)
    check(isinstance(e_root, str) and same_path(os.path.join(c.root, e_root), c.root),
          f"default root is '.': root field {e_root!r}")
    expect_eq(e, {k: v for k, v in b.items() if k != "root"}, "default root is '.'")
    res = c.raw([BIN, "--json", "-C", c.root, "info"], env={"CKPT_ROOT": str(c.tmp / "elsewhere")}, code=0)
    expect_eq(res.json(), b, "-C overrides CKPT_ROOT", res)
    res = c.raw([BIN, "save", "--step", "3", c.std_sources()[0], "-C", c.root, "--json", "--lock-timeout", "5"],
                code=0)
    expect_eq(res.json().get("step"), 3, "global options after positionals", res)
    res = c.raw([BIN, "info", "latest", "--path"], env={"CKPT_ROOT": str(c.root)}, code=0)
    check(same_path(res.out.strip(), c.root / name(3)), "info latest via CKPT_ROOT", res)

    for cmd in ([BIN, "help", "save"], [BIN, "save", "--help"], [BIN, "save", "-h"]):
        res = c.raw(cmd, code=0)
        check("--step" in res.out, f"{' '.join(map(str, cmd[1:]))} must document --step on stdout", res)
    for sub in ("info", "verify", "prune", "promote-best", "load"):
        res = c.raw([BIN, "help", sub], code=0)
        check(sub in res.out, f"ckpt help {sub}", res)
        res2 = c.raw([BIN, sub, "--help"], code=0)
        expect_eq(res2.out, res.out, f"ckpt {sub} --help equals ckpt help {sub}", res2)
    res = c.raw([BIN, "--help"], code=0)
    for sub in ("save", "info", "verify", "prune", "promote-best", "load"):
        check(sub in res.out, f"ckpt --help must list {sub}", res)
    res = c.raw([BIN, "--version"], code=0)
    expect_eq(res.out.splitlines(), [f"ckpt {VERSION} (checkpoint format 1)"], "ckpt --version", res)
    res = c.raw([BIN, "help", "nosuchcommand"])
    expect_rc(res, 2, "help of an unknown command")
    res = c.raw([BIN])
    expect_rc(res, 2, "no command")
    res = c.raw([BIN, "-C", c.root, "info"], env={"NO_COLOR": "1"}, code=0)
    check("\x1b[" not in res.out + res.err, "no escape sequences at all when not on a terminal", res)

    # on a terminal: NO_COLOR still means no colour; --progress never means no progress output
    big = c.file("big.bin", size=32 << 20)
    for args in (["verify", "-v"], ["info"], ["--progress", "never", "save", "--step", "9", str(big)],
                 ["--progress", "never", "verify"]):
        rc, out, err = run_on_tty([BIN, "-C", str(c.root), *args], {"NO_COLOR": "1"})
        check(rc == 0 and not SGR.search(out + err),
              f"on a tty with NO_COLOR=1, `ckpt {' '.join(args)}` must exit 0 and print no colour (SGR) sequences "
              f"(rc {rc})\n--- tty output ---\n{out!r}\n--- stderr ---\n{err!r}")
        if "never" in args:
            check(err == "", f"--progress never on a tty must print nothing on stderr: {err!r}")


def run_on_tty(cmd, env_extra, timeout=60):
    """Run cmd with stdout and stderr each on its own pseudo-terminal; returns (rc, stdout, stderr)."""
    env = os.environ.copy()
    env.pop("CKPT_ROOT", None)
    env.update(env_extra)
    out_m, out_s = pty.openpty()
    err_m, err_s = pty.openpty()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out_s, stderr=err_s, env=env)
    os.close(out_s)
    os.close(err_s)
    chunks = {out_m: b"", err_m: b""}
    deadline = time.monotonic() + timeout
    open_fds = [out_m, err_m]
    while open_fds and time.monotonic() < deadline:
        r, _, _ = select.select(open_fds, [], [], 0.2)
        for fd in r:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if data:
                chunks[fd] += data
            else:
                open_fds.remove(fd)
        if p.poll() is not None and not r:
            break
    if p.poll() is None:
        p.kill()
    p.wait()
    os.close(out_m)
    os.close(err_m)
    return p.returncode, chunks[out_m].decode("utf-8", "replace"), chunks[err_m].decode("utf-8", "replace")


# --------------------------------------------------------------------------
# prune and promote-best


@scenario
def prune_rules(c):
    f = c.file("model.bin")
    # no rule at all: refused
    r = c.make_root(c.tmp / "r_norule", steps=(1, 2, 3))
    res = c.run("prune", root=r)
    expect_rc(res, 2, "prune with no rule")
    expect_eq(step_dirs(r), [name(s) for s in (1, 2, 3)], "nothing deleted by a refused prune")

    # keep-last + keep-best (tie: earlier ranks higher) + keep-every; dry run first
    r = c.tmp / "r_union"
    for s, v in zip(range(1, 7), ("0.5", "0.9", "0.3", "0.8", "0.3", "0.7")):
        c.save(s, f, opts=["--best-key", "val_loss", "--metric", f"val_loss={v}"], root=r)
    expect_eq(read_best(r).get("step"), 3, "best is step 3 (tie with 5 keeps the earlier)")
    args = ["prune", "--keep-last", "1", "--keep-best", "1", "--keep-every", "4"]
    res = c.run(*args, "--dry-run", "--json", root=r, code=0)
    j = res.json()
    expect_eq(j.get("dry_run"), True, "dry_run", res)
    expect_eq(sorted(ref_names(j.get("removed", []))), [name(s) for s in (1, 2, 5)], "removed (dry run)", res)
    kept = {k.get("name"): set(k.get("reasons", [])) for k in j.get("kept", [])}
    expect_eq(sorted(kept), [name(s) for s in (3, 4, 6)], "kept (dry run)", res)
    for k in j["kept"] + j["removed"]:
        check(k.get("step") == int(k["name"][5:]) and same_path(k.get("path", ""), r / k["name"]),
              f"prune --json kept/removed entries have the checkpoint's step and absolute path: {k!r}", res)
    check({"last", "keep-last"} <= kept[name(6)], f"reasons for {name(6)}: {kept[name(6)]}", res)
    check({"best", "keep-best"} <= kept[name(3)], f"reasons for {name(3)}: {kept[name(3)]}", res)
    check("keep-every" in kept[name(4)], f"reasons for {name(4)}: {kept[name(4)]}", res)
    expect_eq(step_dirs(r), [name(s) for s in range(1, 7)], "--dry-run deletes nothing")
    res = c.run(*args, "--json", root=r, code=0)
    expect_eq(res.json().get("dry_run"), False, "dry_run false", res)
    expect_eq(step_dirs(r), [name(s) for s in (3, 4, 6)], "after prune")
    c.verify_ok(root=r)
    res = c.run(*args, "--json", root=r, code=0)
    expect_eq(res.json().get("removed"), [], "nothing to do is exit 0 with removed []", res)

    # keep-best never keeps a checkpoint without a finite value of the key
    r = c.tmp / "r_nonfinite"
    for s_, m_ in ((1, "val_loss=nan"), (2, "val_loss=0.5"), (3, "other=1"), (4, "val_loss=-inf"), (5, "val_loss=0.9")):
        c.save(s_, f, opts=["--best-key", "val_loss", "--metric", m_], root=r)
    res = c.run("prune", "--keep-best", "2", "--keep-last", "1", "--json", root=r, code=0)
    expect_eq(sorted(ref_names(res.json().get("removed", []))), [name(1), name(3), name(4)],
              "--keep-best 2 keeps only finite values (steps 2 and 5)", res)

    # keep-last counts commits, not step numbers
    r = c.tmp / "r_order"
    for s_ in (10, 20, 5):
        c.save(s_, f, root=r)
    res = c.run("prune", "--keep-last", "2", "--json", root=r, code=0)
    expect_eq(ref_names(res.json().get("removed")), [name(10)], "--keep-last 2 keeps the 2 most recently committed",
              res)
    expect_eq(step_dirs(r), [name(5), name(20)], "after --keep-last 2")

    # policy.json drives a bare prune (the cron case)
    r = c.make_root(c.tmp / "r_policy", steps=(1, 2, 3, 4))
    write_json(r / "policy.json", {"schema_version": 1, "keep_last": 2})
    c.run("prune", root=r, code=0)
    expect_eq(step_dirs(r), [name(3), name(4)], "bare prune applies policy.json keep_last 2")

    # keep-within relative to the newest checkpoint's creation time
    r = c.make_root(c.tmp / "r_within", steps=(1, 2, 3))
    newest = datetime.datetime.strptime(meta(r, 3)["created"][:19], "%Y-%m-%dT%H:%M:%S")
    for s, delta in ((1, datetime.timedelta(days=10)), (2, datetime.timedelta(hours=30))):
        p = r / name(s) / "_checkpoint.json"
        doc = load_json(p)
        doc["created"] = (newest - delta).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        write_json(p, doc)
    for dur in ("30m", "12h", "7d", "2w", "1d12h"):
        res = c.run("prune", "--keep-within", dur, "--dry-run", "--json", root=r, code=0)
        expect_eq(res.json().get("dry_run"), True, f"--keep-within {dur} --dry-run", res)
    res = c.run("prune", "--keep-within", "1d12h", "--dry-run", "--json", root=r, code=0)
    expect_eq(ref_names(res.json().get("removed")), [name(1)], "--keep-within 1d12h --dry-run removed", res)
    expect_eq(step_dirs(r), [name(s) for s in (1, 2, 3)], "dry run deletes nothing")
    c.run("prune", "--keep-within", "2d", root=r, code=0)
    expect_eq(step_dirs(r), [name(2), name(3)], "--keep-within 2d removes the 10-day-old checkpoint")
    c.run("prune", "--keep-within", "12h", root=r, code=0)
    expect_eq(step_dirs(r), [name(3)], "--keep-within 12h")


@scenario
def prune_never_follows_symlinks(c):
    r = c.make_root(c.root, steps=(1, 2, 3))
    outside = c.tmp / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me\n")
    os.symlink(outside, r / name(1) / "evil-dir")
    os.symlink(outside / "precious.txt", r / name(1) / "optim" / "evil-file")
    c.run("prune", "--keep-last", "1", code=0)
    expect_eq(step_dirs(r), [name(3)], "after prune --keep-last 1")
    expect_eq((outside / "precious.txt").read_text(), "keep me\n", "prune must never follow a symlink")
    trash = r / ".ckpt" / "trash"
    left = os.listdir(trash) if trash.exists() else []
    expect_eq(left, [], "prune leaves nothing in trash")

    # a step-* entry that is a symlink to a checkpoint-looking directory outside the root
    ext = c.tmp / "external-ckpt"
    shutil.copytree(r / name(3), ext)
    doc = load_json(ext / "_checkpoint.json")
    doc["step"], doc["name"] = 0, name(0)
    write_json(ext / "_checkpoint.json", doc)
    before = snapshot(ext)
    os.symlink(ext, r / name(0))
    c.save(4, c.std_sources()[0])
    res = c.run("prune", "--keep-last", "1")
    check(res.rc in (0, 1, 2, 7), f"prune with a symlinked step directory: unexpected rc {res.rc}", res)
    expect_eq(snapshot(ext), before, "prune must never delete through a symlinked step directory")


@scenario
def prune_killed_midway(c):
    """SIGKILL/SIGTERM during prune never leaves a half checkpoint visible; the next prune cleans up."""
    many = c.src / "many"
    for i in range(2000):
        c.file(f"many/d{i % 20}/f{i}.bin", data=b"%d" % i)
    for sig in (signal.SIGKILL, signal.SIGTERM):
        r = c.tmp / f"r_{sig.name}"
        c.save(1, "--from", many, opts=["--no-fsync"], root=r)
        c.save(2, "--from", many, opts=["--no-fsync"], root=r)
        c.save(3, c.std_sources()[0], opts=["--no-fsync"], root=r)
        env = os.environ.copy()
        env.pop("CKPT_ROOT", None)
        env["NO_COLOR"] = "1"
        cmd = [BIN, "--lock-timeout", "5", "--no-fsync", "-C", str(r), "prune", "--keep-last", "1"]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        deadline = time.monotonic() + 20
        while p.poll() is None and time.monotonic() < deadline:
            if len(step_dirs(r)) < 3 or os.path.exists(r / ".ckpt" / "trash") and os.listdir(r / ".ckpt" / "trash"):
                break
            time.sleep(0.0005)
        p.send_signal(sig)
        out, err = p.communicate(timeout=30)
        res = Result(cmd, p.returncode, out.decode(), err.decode(), str(c.tmp), {})
        allowed = (-signal.SIGKILL, 0) if sig == signal.SIGKILL else (130, 0)
        check(res.rc in allowed, f"prune interrupted by {sig.name}: rc must be one of {allowed}", res)
        # invariant: every visible checkpoint is complete and verifies; markers are fine
        res = c.run("verify", "--json", root=r)
        expect_rc(res, 0, f"verify after prune was interrupted by {sig.name}")
        for n in step_dirs(r):
            check((r / n / "_checkpoint.json").is_file(), f"{n} visible without _checkpoint.json after {sig.name}")
        check(name(3) in step_dirs(r), f"{name(3)} (last) must survive an interrupted prune")
        res = c.run("prune", "--keep-last", "1", "--json", root=r, code=0)
        expect_eq(step_dirs(r), [name(3)], f"prune after an interrupted prune ({sig.name})")
        trash = r / ".ckpt" / "trash"
        expect_eq(os.listdir(trash) if trash.exists() else [], [], f"trash emptied by the next prune ({sig.name})")
        c.verify_ok(root=r)


@scenario
def info_readers_during_saves(c):
    """Readers take no lock and always see complete checkpoints and markers, even while saves prune."""
    f = c.file("model.bin", size=200_000)
    c.save(1, f, opts=["--keep-last", "2", "--best-key", "val_loss", "--metric", "val_loss=1"])
    env = os.environ.copy()
    env.pop("CKPT_ROOT", None)
    env["NO_COLOR"] = "1"
    script = (f"for i in $(seq 2 30); do {shlex.quote(BIN)} --lock-timeout 10 -C {shlex.quote(str(c.root))} "
              f"save --step $i {shlex.quote(str(f))} --metric val_loss=$i >/dev/null || exit 1; done")
    writer = subprocess.Popen(["sh", "-c", script], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    n = 0
    try:
        while writer.poll() is None:
            for args in (["info", "--json"], ["info", "latest", "--json"], ["load", "latest"], ["info", "best", "--path"]):
                res = c.run(*args)
                expect_rc(res, 0, "a reader during concurrent saves/prunes")
                if args[0] == "info" and "--json" in args:
                    res.json()
                n += 1
    finally:
        if writer.poll() is None:
            writer.kill()
        _, werr = writer.communicate()
    check(writer.returncode == 0, f"writer loop failed: {werr.decode()}")
    check(n > 0, "no reader ran")
    expect_eq(step_dirs(c.root), [name(1), name(29), name(30)], "retention: keep-last 2 + best")
    c.verify_ok()


@scenario
def save_move_cross_fs(c):
    """--move from another file system copies, then removes the sources after the commit."""
    mnt = c.tmp / "srcfs"
    mnt.mkdir()
    m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True, text=True)
    check(m.returncode == 0, f"cannot mount a tmpfs (this scenario must run as root): {m.stderr.strip()}")
    try:
        (mnt / "dir").mkdir()
        data = {"model.bin": os.urandom(5000), "dir/a.bin": os.urandom(300)}
        for rel, d in data.items():
            (mnt / rel).write_bytes(d)
        c.save(1, mnt / "model.bin", mnt / "dir", opts=["--move"])
        for rel, d in data.items():
            check(not (mnt / rel).exists(), f"--move across file systems must remove the source {rel}")
            expect_eq((c.root / name(1) / rel).read_bytes(), d, f"content of {rel}")
        c.verify_ok()
        # a failed --move (conflict) must not remove the sources
        (mnt / "again.bin").write_bytes(b"again")
        res = c.save(1, mnt / "again.bin", opts=["--move"], code=None)
        expect_rc(res, 4, "--move onto an existing step")
        check((mnt / "again.bin").exists(), "a refused --move must keep its source")
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


@scenario
def promote_best(c):
    f = c.file("model.bin")
    for s, (vl, acc) in zip((1, 2, 3), ((0.5, 0.7), (0.9, 0.9), (0.3, 0.8))):
        c.save(s, f, opts=["--metric", f"val_loss={vl}", "--metric", f"acc={acc}"])
    check(read_best(c.root) is None, "no best.json without a best key")
    res = c.run("promote-best", "1", "--key", "val_loss", "--json", code=0)
    j = res.json()
    expect_eq(j.get("promoted"), True, "promote 1", res)
    check("reason" in j and isinstance(j.get("best"), dict), "promote-best --json fields", res)
    expect_eq(read_best(c.root).get("step"), 1, "best after promoting 1")
    expect_best_marker(j["best"], read_best(c.root), c.root, "promote-best --json best", res)
    res = c.run("promote-best", "2", "--key", "val_loss", "--json", code=0)
    expect_eq(res.json().get("promoted"), False, "a worse checkpoint is not promoted (exit 0)", res)
    expect_eq(read_best(c.root).get("step"), 1, "best unchanged")
    res = c.run("promote-best", "2", "--key", "val_loss", "--force", "--json", code=0)
    expect_eq(res.json().get("promoted"), True, "--force promotes", res)
    expect_eq(read_best(c.root).get("step"), 2, "best after --force")
    c.run("promote-best", "--key", "val_loss", "--force", code=0)
    b = read_best(c.root)
    expect_eq((b.get("step"), b.get("value")), (3, 0.3), "rebuild from every checkpoint (min val_loss)")
    c.run("promote-best", "--key", "acc", "--mode", "max", "--force", code=0)
    b = read_best(c.root)
    expect_eq((b.get("key"), b.get("mode"), b.get("step"), b.get("value")), ("acc", "max", 2, 0.9),
              "switch the best key to acc/max")
    expect_rc(c.run("promote-best", "99"), 3, "promote-best 99")
    c.verify_ok()

    # a checkpoint without the key, or with a non-finite value, never becomes best -- not even with --force
    c.save(4, f, opts=["--metric", "acc=nan"])
    c.save(5, f, opts=["--metric", "other=1"])
    for ref in ("4", "5"):
        res = c.run("promote-best", ref, "--key", "acc", "--mode", "max", "--force")
        check(res.rc in (0, 2, 3), f"promote-best {ref} --force (no finite acc): unexpected rc", res)
        expect_eq(read_best(c.root).get("step"), 2, f"best after offering step {ref} (acc missing/non-finite)")
    c.run("promote-best", "--key", "acc", "--mode", "max", "--force", code=0)
    expect_eq(read_best(c.root).get("step"), 2, "rebuild ignores missing and non-finite values")
    c.verify_ok()


# --------------------------------------------------------------------------
# interrupts


def start_and_interrupt(c, step, big, sig, extra=()):
    env = os.environ.copy()
    env.pop("CKPT_ROOT", None)
    env["NO_COLOR"] = "1"
    cmd = [BIN, "--lock-timeout", "5", "--no-fsync", "-C", str(c.root), *extra, "save", "--step", str(step), str(big)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 30
    try:
        while True:
            if p.poll() is not None:
                out, err = p.communicate()
                raise Fail(f"save finished (rc {p.returncode}) before it could be interrupted; "
                           f"make the source bigger\n{out.decode()}\n{err.decode()}")
            if staging_dirs(c.root) and staging_bytes(c.root) > 0:
                break
            if time.monotonic() > deadline:
                raise Fail(f"no staging directory with data appeared under {c.root / '.ckpt' / 'staging'} "
                           f"within 30s; .ckpt holds {sorted(os.listdir(c.root / '.ckpt'))}")
            time.sleep(0.002)
        p.send_signal(sig)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return Result(cmd, p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), str(c.tmp), {})


@scenario
def kill_during_save(c):
    small = c.file("small.bin")
    c.save(1, small)
    big = c.src / "big.bin"
    try:
        make_big_file(big, 1 << 30)

        def intact(what, steps=(1,)):
            expect_eq(step_dirs(c.root), [name(x) for x in steps], f"{what}: checkpoint directories")
            expect_eq(read_last(c.root), (name(steps[-1]) + "\n").encode(), f"{what}: last")
            c.verify_ok(what=f"verify after {what}")

        for sig in (signal.SIGINT, signal.SIGTERM):
            res = start_and_interrupt(c, 2, big, sig)
            expect_rc(res, 130, f"save interrupted by {sig.name}")
            expect_eq(staging_dirs(c.root), [], f"{sig.name}: staging removed")
            intact(sig.name)
        res = start_and_interrupt(c, 2, big, signal.SIGTERM, extra=["--json"])
        expect_json_error(res, 130, "interrupted")
        expect_eq(staging_dirs(c.root), [], "SIGTERM --json: staging removed")
        intact("SIGTERM --json")

        res = start_and_interrupt(c, 2, big, signal.SIGKILL)
        expect_rc(res, -signal.SIGKILL, "SIGKILL")
        intact("SIGKILL")
        # a later save is not disturbed by the dead writer's staging directory
        c.save(3, small)
        intact("save after SIGKILL", steps=(1, 3))

        # prune removes an abandoned staging directory (its writer is gone)
        res = start_and_interrupt(c, 4, big, signal.SIGKILL)
        expect_rc(res, -signal.SIGKILL, "second SIGKILL")
        check(staging_dirs(c.root) != [], "a SIGKILLed save leaves its staging directory (nothing can remove it)")
        intact("second SIGKILL", steps=(1, 3))
        res = c.run("prune", "--keep-last", "10", "--json", code=0)
        expect_eq(staging_dirs(c.root), [], "prune removes the abandoned staging directory of a killed save")
        check(res.json().get("cleaned"), "prune --json must list the cleaned staging directory", res)
        intact("prune after SIGKILL", steps=(1, 3))

        # prune must not touch the staging directory of a live writer
        mid = c.src / "mid.bin"
        make_big_file(mid, 384 << 20)
        env = os.environ.copy()
        env.pop("CKPT_ROOT", None)
        env["NO_COLOR"] = "1"
        cmd = [BIN, "--lock-timeout", "10", "--no-fsync", "-C", str(c.root), "save", "--step", "5", str(mid)]
        w = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            deadline = time.monotonic() + 30
            while not (staging_dirs(c.root) and staging_bytes(c.root) > 0):
                check(w.poll() is None and time.monotonic() < deadline, "live save: no staging data seen")
                time.sleep(0.002)
            res = c.run("prune", "--keep-last", "10", "--json", code=0)
            expect_eq(res.json().get("cleaned"), [], "prune must not clean a live writer's staging directory", res)
            # Still staging, or committed: the rename turns the staging directory into the step's
            # directory in one step, so reading staging first cannot miss both. (Polling the writer
            # first could: it may commit between the poll and the look.)
            still_staging = staging_dirs(c.root) != []
            check(still_staging or (c.root / name(5)).is_dir(),
                  "the live writer's staging must survive prune (neither staging nor committed)")
            out, err = w.communicate(timeout=60)
        finally:
            if w.poll() is None:
                w.kill()
                w.wait()
        res = Result(cmd, w.returncode, out.decode(), err.decode(), str(c.tmp), {})
        expect_rc(res, 0, "save that ran concurrently with prune")
        expect_eq(step_dirs(c.root), [name(1), name(3), name(5)], "checkpoints after the concurrent save")
        expect_eq(c.run("verify", "--quick").rc, 0, "verify --quick after the concurrent save")
        mid.unlink()
    finally:
        for leftover in (big, c.src / "mid.bin"):
            if leftover.exists():
                leftover.unlink()


# --------------------------------------------------------------------------
# runner


if __name__ == "__main__":
    sys.exit(harness.main(sys.argv, __doc__, SCENARIOS, Ctx, "ckpt-e2e"))
