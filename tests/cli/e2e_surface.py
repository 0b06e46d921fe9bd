#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""What a person at a terminal and a script reading stdout meet first: progress on a real
pseudo-terminal (counts, rate, time left, nothing left behind), --progress json, TERM=dumb, write
errors on standard output, and `created` as the commit time.

Usage: e2e_surface.py --list | --all | SCENARIO...   (binary: $CKPT_BIN)
"""
import json
import os
import pathlib
import pty
import re
import select
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, expect_eq, expect_rc, name  # noqa: E402

SCENARIOS, scenario = harness.registry()

BIG = 1 << 30  # big enough for several progress frames at any speed this machine has


class Ctx(harness.RootCtx):
    def run(self, *args, root=None, code=None, what="", env=None):
        cmd = [harness.BIN, "-C", str(root or self.root), *args]
        return harness.execute(cmd, cwd=str(self.tmp), env=harness.child_env(env), timeout=300,
                               code=code, what=what or " ".join(map(str, args)))

    def big_file(self):
        path = self.src / "model.bin"
        if not path.exists():
            harness.make_big_file(path, BIG)
        return path

    def on_terminal(self, *args, term="xterm-256color", no_color=True):
        """ckpt ARGS with stdin, stdout and stderr on one pseudo-terminal: (exit code, raw bytes)."""
        env = harness.child_env({"TERM": term})
        if not no_color:
            env.pop("NO_COLOR", None)
        master, slave = pty.openpty()
        p = subprocess.Popen([harness.BIN, "-C", str(self.root), *args], cwd=str(self.tmp),
                             env=env, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
        os.close(slave)
        raw = bytearray()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if not ready:
                if p.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the last writer closed the terminal
                break
            if not chunk:
                break
            raw += chunk
        os.close(master)
        try:
            rc = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            raise harness.Fail(f"ckpt {' '.join(args)} on a terminal did not finish")
        return rc, bytes(raw)


def screen(raw):
    """The lines a terminal shows after raw: \\r returns, ESC[K erases to the end of the line,
    \\n (the terminal's \\r\\n) starts a new line, other bytes overwrite at the cursor."""
    text = raw.decode("utf-8", "replace")
    lines, line, col = [], [], 0
    i = 0
    while i < len(text):
        ch = text[i]
        if text.startswith("\x1b[K", i):
            del line[col:]
            i += 3
            continue
        if ch == "\r":
            col = 0
        elif ch == "\n":
            lines.append("".join(line).rstrip())
            line, col = [], 0
        else:
            if col < len(line):
                line[col] = ch
            else:
                line.append(ch)
            col += 1
        i += 1
    if line:
        lines.append("".join(line).rstrip())
    return lines


FRAME = re.compile(r"^([\d.]+ (?:B|KiB|MiB|GiB)) / ([\d.]+ (?:B|KiB|MiB|GiB)) \((\d+)%\)"
                   r"(?:, ([\d.]+ (?:B|KiB|MiB|GiB))/s)?(?:, (\d+:\d\d) left)?$")
UNIT = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def size_of(text):
    value, unit = text.split()
    return float(value) * UNIT[unit]


def frames(raw):
    """The progress frames drawn on the terminal: the text after each \\r ESC[K."""
    text = raw.decode("utf-8", "replace")
    out = []
    for part in text.split("\r\x1b[K")[1:]:
        if part and "\n" not in part:  # what follows the last one is the output, a line
            out.append(part)
    return out


def check_frames(raw, total_text, what):
    """Every frame counts up to total_text and never past it; the later ones show a rate and the
    time left."""
    shown = frames(raw)
    check(shown, f"{what}: no progress frame on the terminal:\n{raw[:2000]!r}")
    done_before = -1.0
    with_rate = 0
    for f in shown:
        m = FRAME.match(f)
        check(m, f"{what}: a progress frame that is not 'DONE / TOTAL (P%), RATE/s, M:SS left': {f!r}")
        done, total, pct = size_of(m.group(1)), m.group(2), int(m.group(3))
        expect_eq(total, total_text, f"{what}: the total shown", None)
        check(done <= size_of(total) * 1.001 and pct <= 100,
              f"{what}: a frame counts past the total: {f!r}")
        check(done >= done_before, f"{what}: the count went down: {f!r} after {done_before}")
        done_before = done
        if m.group(4) and m.group(5):
            with_rate += 1
    check(with_rate >= 1, f"{what}: no frame shows a rate and the time left: {shown!r}")


@scenario
def progress_on_a_terminal(c):
    """save, verify and load of a 1 GiB file on a pseudo-terminal: frames count up to 1.0 GiB, show
    the rate and the time left, and the final screen holds the summary alone."""
    big = c.big_file()
    rc, raw = c.on_terminal("--threads", "1", "save", "--step", "1", str(big))
    expect_eq(rc, 0, f"save on a terminal: {raw[-2000:]!r}")
    check_frames(raw, "1.0 GiB", "save")
    lines = [ln for ln in screen(raw) if ln]
    expect_eq(lines, [lines[0], f"  {c.root / name(1)}"],
              "save: the final screen is the summary alone")
    check(lines[0].startswith(f"saved {name(1)}: 1 file"), f"save: the summary line: {lines!r}")

    rc, raw = c.on_terminal("--threads", "1", "verify")
    expect_eq(rc, 0, f"verify on a terminal: {raw[-2000:]!r}")
    check_frames(raw, "1.0 GiB", "verify")
    lines = [ln for ln in screen(raw) if ln]
    expect_eq(len(lines), 1, f"verify: the final screen is the summary alone: {lines!r}")
    check(lines[0].startswith("ok: 1 checkpoint"), f"verify: the summary line: {lines!r}")

    out = c.tmp / "out"
    rc, raw = c.on_terminal("--threads", "1", "load", "latest", "--to", str(out))
    expect_eq(rc, 0, f"load --to on a terminal: {raw[-2000:]!r}")
    check_frames(raw, "1.0 GiB", "load --to")
    lines = [ln for ln in screen(raw) if ln]
    expect_eq(lines, [str(out / "model.bin")], "load: the final screen is the path alone")

    # A warning in the middle of progress gets a line of its own.
    rc, raw = c.on_terminal("--threads", "1", "save", "--step", "2", "--keep_last_k", "5",
                            str(big))
    expect_eq(rc, 0, f"save with a deprecated option: {raw[-2000:]!r}")
    lines = [ln for ln in screen(raw) if ln]
    expect_eq(len(lines), 3, f"a warning and the summary, each on its own line: {lines!r}")
    check(lines[0].startswith("ckpt: warning: --keep_last_k is deprecated"), f"{lines!r}")
    check(lines[1].startswith(f"saved {name(2)}: 1 file"), f"{lines!r}")


@scenario
def progress_dumb_terminal(c):
    """TERM=dumb (and no TERM): no progress and no escape sequence, colour included; --progress
    always there prints plain lines."""
    big = c.big_file()
    c.run("save", "--step", "1", str(big), code=0)
    (c.root / name(1) / "model.bin").chmod(0o644)
    with open(c.root / name(1) / "model.bin", "r+b") as fh:
        fh.write(b"X")  # a FAILED line, which is red on a colour terminal
    rc, raw = c.on_terminal("verify", no_color=False)
    expect_eq(rc, 1, "verify of a damaged checkpoint")
    check(b"\x1b[31m" in raw, f"a capable terminal without NO_COLOR shows colour: {raw[-500:]!r}")
    check(b"\x1b[K" in raw, f"a capable terminal shows progress: {raw[-500:]!r}")
    for term in ("dumb", ""):
        rc, raw = c.on_terminal("verify", term=term, no_color=False)
        expect_eq(rc, 1, f"verify with TERM={term!r}")
        check(b"\x1b" not in raw and b"\r\x1b" not in raw,
              f"TERM={term!r}: no escape sequence at all: {raw[-500:]!r}")
        check(b"FAILED" in raw, f"TERM={term!r}: the report is there: {raw[-500:]!r}")
    rc, raw = c.on_terminal("--progress", "always", "--threads", "1", "save", "--step", "2",
                            str(big), term="dumb")
    expect_eq(rc, 0, "save --progress always on a dumb terminal")
    check(b"\x1b" not in raw and b"\r" not in raw.replace(b"\r\n", b"\n"),
          f"plain lines only: {raw[-800:]!r}")
    plain = [ln for ln in raw.decode().replace("\r\n", "\n").splitlines() if ln.startswith("ckpt: ")]
    check(plain and all(FRAME.match(ln[len("ckpt: "):]) for ln in plain),
          f"--progress always on a dumb terminal: 'ckpt: DONE / TOTAL ...' lines: {plain!r}")


@scenario
def progress_json_events(c):
    """--progress json: one JSON object per line on stderr, counting up to the total, then one
    "done" event; stdout keeps the --json result alone."""
    big = c.big_file()
    for args in (("save", "--step", "1", str(big)), ("verify",), ("load", "latest", "--to",
                                                                   str(c.tmp / "out"))):
        res = c.run("--json", "--progress", "json", "--threads", "1", *args, code=0)
        json.loads(res.out)  # the result, one object
        events = [json.loads(ln) for ln in res.err.splitlines()]
        check(events, f"{args[0]}: no progress event", res)
        progress = [e for e in events if e["event"] == "progress"]
        expect_eq([e["event"] for e in events[-1:]], ["done"], f"{args[0]}: the last event", res)
        expect_eq(len(events), len(progress) + 1, f"{args[0]}: progress events, then done", res)
        check(progress, f"{args[0]}: at least one progress event", res)
        check(all(e.get("schema_version") == 1 for e in events), f"{args[0]}: every event has schema_version 1", res)
        last = -1
        for e in progress:
            expect_eq(sorted(e), sorted(["schema_version", "event", "done", "total", "rate", "eta"]), "progress fields",
                      res)
            expect_eq(e["total"], BIG, f"{args[0]}: total", res)
            check(last <= e["done"] <= BIG, f"{args[0]}: done counts up to the total: {e}", res)
            check(isinstance(e["rate"], int) and e["rate"] >= 0, f"rate: {e}", res)
            check(e["eta"] is None or (isinstance(e["eta"], int) and e["eta"] >= 0), f"eta: {e}", res)
            last = e["done"]
        done = events[-1]
        expect_eq(sorted(done), sorted(["schema_version", "event", "done", "total", "elapsed", "rate"]), "done fields",
                  res)
        expect_eq((done["done"], done["total"]), (BIG, BIG), f"{args[0]}: done counts it all", res)
        check(done["elapsed"] >= 0 and done["rate"] >= 0, f"{args[0]}: done: {done}", res)


def to_full(c, args, env=None):
    """ckpt ARGS with stdout on /dev/full."""
    with open("/dev/full", "w") as full:
        p = subprocess.run([harness.BIN, *[str(a) for a in args]], cwd=str(c.tmp), stdout=full,
                           stderr=subprocess.PIPE, env=harness.child_env(env), timeout=300)
    return p.returncode, p.stderr.decode("utf-8", "replace")


@scenario
def stdout_write_errors(c):
    """Every command that prints, text and --json, with stdout on /dev/full: exit 6 and a message
    naming standard output (a command that failed already keeps its exit code)."""
    (c.src / "w.pt").write_bytes(b"weights")
    (c.src / "o.pt").write_bytes(b"optimizer")
    r = str(c.root)
    c.run("save", "--step", "1", str(c.src / "w.pt"), str(c.src / "o.pt"), "--weights", "w.pt",
          "--metric", "loss=2", "--best-key", "loss", code=0)
    c.run("save", "--step", "2", str(c.src / "w.pt"), "--metric", "loss=3", code=0)
    c.run("save", "--step", "9", "--shard", "0/2", "--group", "g", str(c.src / "w.pt"), code=0)
    commands = [
        ["--help"], ["--version"], ["help"], ["help", "save"], ["save", "--help"],
        ["-C", r, "save", "--step", "3", str(c.src / "w.pt")],
        ["-C", r, "info"], ["-C", r, "info", "latest"], ["-C", r, "info", "latest", "--path"],
        ["-C", r, "info", "best"], ["-C", r, "verify"], ["-C", r, "verify", "latest"],
        ["-C", r, "load", "latest"], ["-C", r, "load", "best", "--weights-only"],
        ["-C", r, "load", "latest", "--to", str(c.tmp / "out")],
        ["-C", r, "prune", "--keep-last", "10", "--dry-run"], ["-C", r, "prune", "--keep-last", "10"],
        ["-C", r, "promote-best", "latest"], ["-C", r, "diff", "1", "latest"], ["-V"], ["version"],
        ["-C", r, "rm", "--force", "--dry-run", "1"], ["-C", r, "rollback", "--dry-run", "1"],
    ]
    for args in commands:
        for variant in (args, args[:2] + ["--json"] + args[2:] if args[0] == "-C" else None):
            if variant is None:
                continue
            if "--json" in variant and "--path" in variant:
                continue
            rc, err = to_full(c, variant)
            expect_eq(rc, 6, f"ckpt {' '.join(variant)} >/dev/full: exit code (stderr: {err!r})")
            check("standard output" in err,
                  f"ckpt {' '.join(variant)} >/dev/full: the message names standard output: {err!r}")
    rc, err = to_full(c, ["-C", r, "--json", "abort", "9"])
    expect_eq(rc, 6, f"abort --json >/dev/full (stderr: {err!r})")
    check(not (c.root / ".ckpt" / "pending" / name(9)).exists(),
          "abort did its work before its output was refused")
    rc, err = to_full(c, ["-C", r, "info", "step-404"])
    expect_eq(rc, 3, "a command that failed already keeps its exit code")
    # The same commands into a pipe that is read work, and so does a closed reader's exit.
    res = c.run("info", "latest", "--path", code=0)
    expect_eq(res.out.strip(), str(c.root / name(3)), "info latest --path into a pipe")


@scenario
def created_is_commit_time(c):
    """Two saves side by side, the slower one started first: `created` orders them as commit_seq
    does (the commit time, not the start time)."""
    big = c.big_file()
    (c.src / "small.bin").write_bytes(b"small")
    slow = subprocess.Popen([harness.BIN, "-C", str(c.root), "--threads", "1", "--json", "save",
                             "--step", "1", str(big)], cwd=str(c.tmp), env=harness.child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    staging = c.root / ".ckpt" / "staging"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (staging.is_dir() and any(staging.iterdir())):
        time.sleep(0.01)
    check(staging.is_dir() and any(staging.iterdir()), "the slow save started staging")
    time.sleep(0.05)
    c.run("save", "--step", "2", str(c.src / "small.bin"), code=0)
    out, err = slow.communicate(timeout=300)
    expect_eq(slow.returncode, 0, f"the slow save: {err.decode()!r}")
    first, second = harness.meta(c.root, 2), harness.meta(c.root, 1)
    check(first["commit_seq"] < second["commit_seq"],
          f"the small save committed first: {first['commit_seq']} vs {second['commit_seq']}")
    check(first["created"] <= second["created"],
          f"created follows the commit order: step 2 {first['created']}, step 1 {second['created']}")
    info = json.loads(c.run("--json", "info", code=0).out)
    by_seq = [e["name"] for e in sorted(info["checkpoints"], key=lambda e: e["commit_seq"])]
    by_created = [e["name"] for e in sorted(info["checkpoints"], key=lambda e: e["created"])]
    expect_eq(by_created, by_seq, "info: created order is commit order")


@scenario
def messages_name_the_problem(c):
    """`ckpt help` is the overview; -V and `ckpt version` work; a negative --lock-timeout, an
    unknown option beside a missing required one and a command's parse error each say what is
    wrong and which help to read; metric names that print ambiguously are refused."""
    overview = c.run("help", code=0)
    check("Subcommands:" in overview.out and "promote-best" in overview.out
          and "Usage: ckpt help" not in overview.out, "ckpt help shows the command overview", overview)
    expect_eq(overview.out, c.run("--help", code=0).out, "ckpt help is ckpt --help")
    version = c.run("--version", code=0).out
    check(version.startswith("ckpt "), "--version", None)
    expect_eq(c.run("-V", code=0).out, version, "-V is --version")
    expect_eq(c.run("version", code=0).out, version, "ckpt version is --version")

    res = c.run("--lock-timeout", "-1", "info", code=2)
    check(len(res.err) < 200 and "--lock-timeout -1" in res.err and "0 or more" in res.err,
          "--lock-timeout -1: a short message naming the value", res)
    (c.src / "a.bin").write_bytes(b"a")
    res = c.run("save", "--hlep", str(c.src / "a.bin"), code=2)
    check("unknown option --hlep" in res.err and "--step is required" not in res.err,
          "save --hlep names the unknown option, not the missing --step", res)
    check("see ckpt save --help" in res.err, "a save error points at ckpt save --help", res)
    res = c.run("save", "--step", "1", str(c.src / "a.bin"), "--keep-last", code=2)
    check("see ckpt save --help" in res.err, "a parse error of save points at its help", res)
    res = c.run("info", "--bogus", code=2)
    check("see ckpt info --help" in res.err, "a parse error of info points at its help", res)
    res = c.run("--bogus", code=2)
    check("see ckpt --help" in res.err, "a global parse error points at ckpt --help", res)

    for bad in (["--metric", "val loss=1"], ["--metric", "a\tb=1"], ["--best-key", "a=b"],
                ["--best-key", "val loss"]):
        res = c.run("save", "--step", "1", str(c.src / "a.bin"), "--metric", "loss=1", *bad, code=2)
        check("metric name" in res.err, f"save {' '.join(bad)!r}: refused, saying why", res)
    check(not (c.root / name(1)).exists(), "nothing was saved by the refused commands")
    c.run("save", "--step", "1", str(c.src / "a.bin"), "--metric", "val_loss/ema=1",
          "--metric", "acc@1=0.5", "--best-key", "val_loss/ema", code=0)


@scenario
def diff_two_checkpoints(c):
    """ckpt diff A B: added, removed and changed files by digest and size, metrics side by side,
    text and JSON; exit 0 either way, and 1 on a difference with --exit-code."""
    d = c.src / "run"
    (d / "optim").mkdir(parents=True)
    (d / "model.bin").write_bytes(b"weights v1")
    (d / "same.bin").write_bytes(b"unchanged")
    (d / "gone.bin").write_bytes(b"removed later")
    (d / "optim" / "0.pt").write_bytes(b"optimizer v1")
    c.run("save", "--step", "100", "--from", str(d), "--metric", "loss=2.5", "--metric", "acc=0.5",
          code=0)
    (d / "gone.bin").unlink()
    (d / "model.bin").write_bytes(b"weights v2")  # same size, another digest
    (d / "optim" / "0.pt").write_bytes(b"optimizer v2, longer")
    (d / "optim" / "1.pt").write_bytes(b"a new shard")
    c.run("save", "--step", "200", "--from", str(d), "--metric", "loss=1.5", "--metric", "lr=0.1",
          code=0)
    c.run("save", "--step", "300", "--from", str(d), "--metric", "loss=1.5", code=0)

    res = c.run("--json", "diff", "100", "latest", code=0)
    j = res.json()
    expect_eq((j["a"]["name"], j["b"]["name"]), (name(100), name(300)), "the two sides", res)
    expect_eq((j["a"]["step"], j["b"]["path"]), (100, str(c.root / name(300))), "step, path", res)
    for side, step in (("a", 100), ("b", 300)):
        m = harness.meta(c.root, step)
        expect_eq(j[side], {"name": name(step), "path": str(c.root / name(step)), "step": step,
                            "commit_seq": m["commit_seq"], "created": m["created"], "metrics": m["metrics"],
                            "total_size": m["total_size"], "file_count": len(m["files"])},
                  f"side {side}: the checkpoint's summary, as its _checkpoint.json records it", res)
    expect_eq([f["path"] for f in j["added"]], ["optim/1.pt"], "added", res)
    expect_eq([f["path"] for f in j["removed"]], ["gone.bin"], "removed", res)
    expect_eq([f["path"] for f in j["changed"]], ["model.bin", "optim/0.pt"], "changed", res)
    model = j["changed"][0]
    expect_eq(model["a"]["size"], model["b"]["size"], "a same-size change is found by digest", res)
    check(model["a"]["sha256"] != model["b"]["sha256"], "the digests differ", res)
    expect_eq((j["unchanged"], j["differ"], j["compared_by"]), (1, True, "sha256"), "summary", res)
    expect_eq(j["metrics"], {"acc": {"a": 0.5, "b": None}, "loss": {"a": 2.5, "b": 1.5}},
              "metrics side by side", res)

    res = c.run("diff", "100", "latest", code=0)
    lines = res.out.splitlines()
    expect_eq(lines[0], f"{name(100)} -> {name(300)}", "the header", res)
    expect_eq(lines[1:5], ["- gone.bin  (13 B)", "+ optim/1.pt  (11 B)", "M model.bin  (10 B -> 10 B)",
                           "M optim/0.pt  (12 B -> 20 B)"], "a line a file", res)
    check(lines[5].startswith("1 added, 1 removed, 2 changed, 1 unchanged"), "the counts", res)
    check(any(re.match(r"^loss\s+2\.5\s+1\.5$", ln) for ln in lines), "the metric table", res)
    check(any(re.match(r"^acc\s+0\.5\s+-$", ln) for ln in lines), "a metric one side lacks", res)

    c.run("diff", "--exit-code", "100", "200", code=1)
    res = c.run("--json", "diff", "--exit-code", "200", "300", code=0)
    expect_eq((res.json()["differ"], res.json()["unchanged"]), (False, 4), "same files", res)
    expect_eq(c.run("-q", "diff", "--exit-code", "200", "300", code=0).out, "", "-q prints nothing")
    expect_eq(c.run("-q", "diff", "100", "200", code=0).out, "", "differ without --exit-code: 0")

    # sizes only when a side has no digests
    c.run("save", "--step", "400", "--from", str(d), "--checksum", "none", code=0)
    j = c.run("--json", "diff", "300", "400", code=0).json()
    expect_eq((j["compared_by"], j["differ"]), ("size", False), "no digests: compared by size")
    check("compared by size" in c.run("diff", "300", "400", code=0).out, "the text says so")

    harness.expect_json_error(c.run("--json", "diff", "100", "999"), 3, "not_found")
    c.run("diff", "100", code=2)
    c.run("diff", "100", "200", "300", code=2)


@scenario
def info_limit_and_sort(c):
    """info --limit N shows the newest N by commit; --sort step|commit|METRIC orders the table and
    the JSON; the footer and "total" say how many there are in all."""
    (c.src / "a.bin").write_bytes(b"a")
    # commit order differs from step order: 30, 10, 20, 40 (and 50 without the metric)
    for step, loss in ((30, 0.5), (10, 0.9), (20, 0.1), (40, 0.7)):
        c.run("save", "--step", str(step), str(c.src / "a.bin"), "--metric", f"loss={loss}", code=0)
    c.run("save", "--step", "50", str(c.src / "a.bin"), code=0)

    def names(*args):
        j = c.run("--json", "info", *args, code=0).json()
        expect_eq(j["total"], 5, f"info {' '.join(args)}: total counts them all")
        return [e["name"] for e in j["checkpoints"]]

    expect_eq(names(), [name(s) for s in (10, 20, 30, 40, 50)], "by step (the default)")
    expect_eq(names("--sort", "commit"), [name(s) for s in (30, 10, 20, 40, 50)], "by commit")
    expect_eq(names("--sort", "loss"), [name(s) for s in (20, 30, 40, 10, 50)],
              "by metric, lowest first, the one without it last")
    expect_eq(names("--limit", "2"), [name(s) for s in (40, 50)], "the newest 2 by commit")
    expect_eq(names("--limit", "3", "--sort", "loss"), [name(s) for s in (20, 40, 50)],
              "the newest 3 (20, 40, 50), by loss")
    expect_eq(names("--limit", "99"), [name(s) for s in (10, 20, 30, 40, 50)], "a limit above all")
    res = c.run("info", "--limit", "2", code=0)
    rows = [ln.split()[0] for ln in res.out.splitlines()[1:3]]
    expect_eq(rows, [name(40), name(50)], "the table shows the limited rows", res)
    check("2 of 5 checkpoints (the newest)" in res.out, "the footer says what is left out", res)
    check("5 checkpoints in" in c.run("info", code=0).out, "the footer without --limit")
    for bad in (["--limit", "0"], ["--limit", "x"], ["--limit", "-1"], ["--sort", "a=b"],
                ["latest", "--limit", "2"], ["latest", "--sort", "step"]):
        c.run("info", *bad, code=2)


HOLD = r"""
import fcntl, sys, time
f = open(sys.argv[1], 'a+')
fcntl.flock(f, fcntl.LOCK_EX)
print('locked', flush=True)
time.sleep(60)
"""


@scenario
def lock_conflict_names_the_holder(c):
    """Exit 5 names who holds the root lock: pid, command and for how long (written beside the
    lock by the holder, removed before it lets go); a stale or garbled entry is ignored."""
    strace = shutil.which("strace")
    check(strace, "strace is not installed (scripts/setup.sh --test installs it)")
    (c.src / "a.bin").write_bytes(b"a")
    c.run("save", "--step", "1", str(c.src / "a.bin"), code=0)
    holder_file = c.root / ".ckpt" / "lock.holder"
    check(not holder_file.exists(), "no holder entry once a save is over")
    # The save's first rename(2) installs its commit counter, under the lock: held 4 s there.
    slow = subprocess.Popen([strace, "-f", "-o", "/dev/null", "-e", "trace=rename",
                             "-e", "inject=rename:delay_exit=4000000:when=1", harness.BIN,
                             "-C", str(c.root), "save", "--step", "2", str(c.src / "a.bin")],
                            cwd=str(c.tmp), env=harness.child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not holder_file.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        check(holder_file.exists(), "the holder announced itself")
        t0 = time.monotonic()
        res = c.run("--lock-timeout", "0.5", "save", "--step", "3", str(c.src / "a.bin"), code=5)
        check(time.monotonic() - t0 < 3.5, "the conflict was reported while the holder held")
        m = re.search(r"is locked by pid (\d+) \((.*)\), for (\d+\.\d) s \(waited 0.5s\)", res.err)
        check(m, "the message names the holder's pid, command and time held", res)
        pid, command = int(m.group(1)), m.group(2)
        check("save --step 2" in command and command.split()[0].endswith("ckpt"),
              f"the holder's command line: {command!r}", res)
        cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        check("save --step 2" in cmdline, f"pid {pid} is the holding save: {cmdline!r}", res)
        err = harness.expect_json_error(c.run("--json", "--lock-timeout", "0", "prune",
                                              "--keep-last", "9"), 5, "locked")
        check(f"pid {pid}" in err["message"], "the JSON error's message names it too", res)
    finally:
        out, err = slow.communicate(timeout=60)
    expect_eq(slow.returncode, 0, f"the slow save: {err.decode()!r}")
    check(not holder_file.exists(), "the holder's entry went with the lock")

    # A stale entry (its process is gone) and a garbled one are not named.
    dead = subprocess.Popen(["true"])
    dead.wait()
    for text in (json.dumps({"pid": dead.pid, "host": os.uname().nodename, "command": "ckpt gone",
                             "since": "2026-01-01T00:00:00.000Z", "since_ms": 0}),
                 "{not json", ""):
        holder_file.write_text(text)
        hold = subprocess.Popen([sys.executable, "-c", HOLD, str(c.root / ".ckpt" / "lock")],
                                stdout=subprocess.PIPE)
        try:
            check(hold.stdout.readline().strip() == b"locked", "the lock holder started")
            res = c.run("--lock-timeout", "0", "save", "--step", "3", str(c.src / "a.bin"), code=5)
            check("locked by another ckpt process" in res.err and "pid" not in res.err,
                  f"entry {text[:20]!r}: not named", res)
        finally:
            hold.kill()
            hold.wait()
    holder_file.unlink()
    c.run("save", "--step", "3", str(c.src / "a.bin"), code=0)


if __name__ == "__main__":
    sys.exit(harness.main(sys.argv, __doc__, SCENARIOS, Ctx, "ckpt-e2e-surface"))
