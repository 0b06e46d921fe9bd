#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End-to-end scenarios of the operations examples, each run for real with the binary under test:
examples/ci-verify.sh (the CI step, and the GitHub Actions job of the README that calls it) and
examples/cron/ (the crontab line and the systemd units for ckpt prune).

    python3 tests/cli/e2e_examples.py --list          one scenario name per line
    python3 tests/cli/e2e_examples.py NAME [NAME...]  run scenarios; exit 0 when all pass
    python3 tests/cli/e2e_examples.py --all           run every scenario

The binary comes from $CKPT_BIN, else ../../build/release/apps/ckpt/ckpt relative
to this file; the examples name /usr/local/bin/ckpt and /data/runs/exp1/checkpoints,
which the scenarios replace with it and a root of their own. Every scenario runs in
a fresh temporary directory $TMPDIR/ckpt-examples-<name>-*, removed on success and
kept (its path printed) on failure; set CKPT_E2E_KEEP=1 to keep it on success too.
systemd-analyze, systemd-escape and shellcheck are used when installed, and the
units are checked and run without them too.
"""

import json
import os
import pathlib
import re
import shlex
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import BIN, check, expect_eq, expect_rc, name  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
TOP = (HERE / ".." / "..").resolve()
CI_VERIFY = TOP / "examples" / "ci-verify.sh"
CRON = TOP / "examples" / "cron"
EXAMPLE_BIN = "/usr/local/bin/ckpt"  # what the examples name, replaced by BIN
EXAMPLE_ROOT = "/data/runs/exp1/checkpoints"  # replaced by a root of the scenario's

SCENARIOS, scenario = harness.registry()


class Ctx(harness.RootCtx):
    def ckpt(self, *args, root=None, code=None, what=""):
        return harness.execute([BIN, "-C", str(root or self.root), *args], cwd=str(self.tmp),
                               env=harness.child_env(), timeout=120, code=code, what=what, limit=4000)

    def sh(self, cmd, *, env, cwd=None, code=None, what=""):
        """CMD as an argv, run with exactly ENV (no inherited variable)."""
        return harness.execute(cmd, cwd=str(cwd or self.tmp), env=env, timeout=300, input=None,
                               code=code, what=what, limit=6000)

    def ci_verify(self, *args, extra_env=None, code=None, what=""):
        env = harness.child_env()
        env.pop("GITHUB_ACTIONS", None)  # set when this suite itself runs under GitHub Actions
        env.update({"CKPT_BIN": BIN, **(extra_env or {})})
        return self.sh([str(CI_VERIFY), *[str(a) for a in args]], env=env, code=code, what=what)

    def seed(self, root, steps, losses=None):
        """Checkpoints of STEPS in ROOT, each with its own model.bin and the metric loss."""
        for i, step in enumerate(steps):
            f = self.src / "model.bin"
            f.write_bytes(b"weights of step %d " % step * 50)
            args = ["save", "--step", str(step), str(f)]
            if losses is not None:
                args += ["--metric", f"loss={losses[i]}", "--best-key", "loss"]
            self.ckpt("-q", *args, root=root, code=0, what=f"save {step}")

    def overfull_root(self, root):
        """A root holding 8 checkpoints and the policy keep-last 3, keep-best 1 (best: step 200), as a
        job leaves it that recorded its policy after saving without one. Returns the names prune removes."""
        self.seed(root, [100 * i for i in range(1, 9)], [0.9, 0.1, 0.5, 0.6, 0.7, 0.4, 0.3, 0.35])
        # the policy, written by ckpt itself on a scratch root, then copied in
        scratch = self.tmp / "scratch-root"
        self.ckpt("-q", "save", "--step", "1", str(self.src / "model.bin"), "--metric", "loss=1",
                  "--best-key", "loss", "--keep-last", "3", "--keep-best", "1", root=scratch, code=0)
        shutil.copyfile(scratch / "policy.json", pathlib.Path(root) / "policy.json")
        return [name(s) for s in (100, 300, 400, 500)]


def flip_byte(path, offset):
    data = bytearray(pathlib.Path(path).read_bytes())
    data[offset] ^= 0xFF
    pathlib.Path(path).write_bytes(bytes(data))


def readme_block(heading, lang):
    """The first ```LANG block of the README section HEADING."""
    text = (TOP / "README.md").read_text()
    m = re.search(r"^## " + re.escape(heading) + r"\n(.*?)(?=^## )", text, re.S | re.M)
    check(m, f"README.md has no section {heading!r}")
    blocks = [body for kind, body in re.findall(r"^```(\w*)\n(.*?)^```$", m.group(1), re.S | re.M) if kind == lang]
    check(blocks, f"README.md's section {heading!r} has no ```{lang} block")
    return blocks[0]


SUMMARY = re.compile(r"^ci-verify: \S.*: \d+ checkpoint\(s\), \d+ failed, \d+ warning\(s\); markers (ok|FAILED)$")


# --------------------------------------------------------------------------
# examples/ci-verify.sh


@scenario
def examples_ci_verify(c):
    """ci-verify.sh: 0 on a good root, 1 on a corrupt one naming the file (and a GitHub annotation,
    and the JSON report kept), 3 on a missing root and on an empty one unless --allow-empty, 2 on
    a usage error, ckpt's 7 on a newer format; warnings fail only with --strict."""
    check(os.access(CI_VERIFY, os.X_OK), f"{CI_VERIFY} must be executable")
    if shutil.which("shellcheck"):
        c.sh(["shellcheck", "-s", "sh", str(CI_VERIFY)], env=harness.child_env(), code=0, what="shellcheck")
    c.seed(c.root, [1, 2, 3], [0.5, 0.4, 0.3])
    res = c.ci_verify(c.root, code=0, what="a good root")
    check(SUMMARY.match(res.lines()[0]) and "3 checkpoint(s), 0 failed" in res.out, "the summary line", res)
    res = c.ci_verify(c.root, "latest", 2, code=0, what="two refs")
    check("2 checkpoint(s), 0 failed" in res.out, "two checkpoints verified", res)
    res = c.ci_verify("--quick", extra_env={"CKPT_ROOT": str(c.root)}, code=0, what="the root from $CKPT_ROOT")
    check("3 checkpoint(s)" in res.out, "the root came from $CKPT_ROOT", res)

    # a corrupt file (same size: only the digest tells)
    flip_byte(c.root / name(2) / "model.bin", 7)
    report = c.tmp / "verify.json"
    res = c.ci_verify("--report", report, c.root, extra_env={"GITHUB_ACTIONS": "true"}, code=1,
                      what="a corrupt checkpoint")
    check("1 failed" in res.out and f"FAILED  {name(2)}/model.bin: digest_mismatch" in res.out,
          "the summary names the corrupt file and why", res)
    check(f"::error title=corrupt checkpoint::{name(2)}/model.bin: digest_mismatch" in res.out,
          "a GitHub Actions error annotation names the file", res)
    doc = harness.load_json(report)
    expect_eq((doc["ok"], [ch["name"] for ch in doc["checkpoints"] if not ch["ok"]]), (False, [name(2)]),
              "--report FILE holds verify's JSON report", res)
    res = c.ci_verify(c.root, code=1, what="a corrupt checkpoint, no GitHub")
    check("::error" not in res.out, "no annotation outside GitHub Actions", res)
    c.ci_verify(c.root, 1, 3, code=0, what="the refs that are not corrupt")
    c.ci_verify(c.root, 2, code=1, what="the corrupt ref alone")

    # warnings: an extra file, a stale marker
    (c.root / name(3) / "notes.txt").write_text("left by hand")
    res = c.ci_verify(c.root, 3, code=0, what="an extra file is a warning")
    check(f"warning {name(3)}/notes.txt: extra" in res.out, "the warning is listed", res)
    c.ci_verify("--strict", c.root, 3, code=1, what="--strict: the warning fails")

    # missing and empty roots, usage
    missing = c.tmp / "typo" / "root"
    res = c.ci_verify(missing, code=3, what="a missing root")
    check("no such root" in res.err and not missing.exists(), "the error says so, nothing created", res)
    empty = c.tmp / "empty"
    empty.mkdir()
    res = c.ci_verify(empty, code=3, what="an empty root")
    check("no checkpoint yet" in res.out and "--allow-empty" in res.out, "the summary says how to allow it", res)
    c.ci_verify("--allow-empty", empty, code=0, what="an empty root with --allow-empty")
    c.ci_verify(c.root, 99, code=3, what="a ref that names nothing")
    c.ci_verify(code=2, what="no root given, no $CKPT_ROOT")
    c.ci_verify("--bogus", c.root, code=2, what="an unknown option")

    # a checkpoint of a newer format: ckpt's own exit status, 7
    newer = c.root / name(3) / "_checkpoint.json"
    m = json.loads(newer.read_text())
    m["schema_version"] = 99
    newer.write_text(json.dumps(m))
    res = c.ci_verify(c.root, 3, code=7, what="a newer format")
    check("upgrade" in res.err or "99" in res.err, "ckpt's message is shown", res)


@scenario
def examples_ci_verify_readme_job(c):
    """The README's GitHub Actions job: it builds the target that makes the ckpt binary, points
    CKPT_BIN at where that lands, and its ci-verify.sh step runs as written (with the root
    replaced): 0 on a good root, 1 on a corrupt one; the README's sample output is the script's."""
    text = readme_block("Verify in CI", "yaml")
    try:
        import yaml  # not the standard library: the structure is checked where PyYAML is installed
    except ImportError:
        yaml = None
    if yaml is not None:
        doc = yaml.safe_load(text)
        steps = [s for job in doc["jobs"].values() for s in job["steps"]]
        runs = [s for s in steps if "ci-verify.sh" in s.get("run", "")]
        check(len(runs) == 1, f"one step runs ci-verify.sh: {steps}")
    m = re.search(r"--target (\S+)", text)
    check(m and re.search(r"add_executable\(" + re.escape(m.group(1)) + r"\b",
                          (TOP / "apps" / "ckpt" / "CMakeLists.txt").read_text()),
          f"the job builds a target that apps/ckpt/CMakeLists.txt defines: {m and m.group(1)}")
    m = re.search(r"CKPT_BIN: (\S+?)\}?$", text, re.M)
    check(m and m.group(1).endswith("/build/apps/ckpt/ckpt"), f"CKPT_BIN names the built binary: {m and m.group(1)}")
    line = next((ln for ln in text.splitlines() if "ci-verify.sh" in ln and "run:" in ln), None)
    check(line, "the job has a `run:` line calling ci-verify.sh")
    argv = shlex.split(line.split("run:", 1)[1])
    check(argv[0].endswith("examples/ci-verify.sh") and EXAMPLE_ROOT in argv,
          f"the step runs examples/ci-verify.sh on {EXAMPLE_ROOT}: {argv}")
    argv = [str(CI_VERIFY)] + [str(c.root) if a == EXAMPLE_ROOT else a for a in argv[1:]]
    env = harness.child_env({"CKPT_BIN": BIN})
    c.seed(c.root, [10, 20])
    res = c.sh(argv, env=env, code=0, what="the README's step on a good root")
    first = res.lines()[0]
    check(SUMMARY.match(first), "the script's summary line", res)
    flip_byte(c.root / name(20) / "model.bin", 3)
    res = c.sh(argv, env=env, code=1, what="the README's step on a corrupt root")
    check(f"{name(20)}/model.bin" in res.out, "it names the corrupt file", res)
    check((c.tmp / "verify.json").is_file() or "--report" not in argv, "the report the job uploads", res)
    sample = readme_block("Verify in CI", "").splitlines()
    check(SUMMARY.match(sample[0]) and sample[1].startswith("  FAILED  step-"),
          f"the README's sample output has the script's form: {sample}")


# --------------------------------------------------------------------------
# examples/cron: the crontab line


CRON_FIELDS = [("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
               ("day of week", 0, 7)]


def check_cron_field(field, what, lo, hi):
    for item in field.split(","):
        m = re.fullmatch(r"(\*|(\d+)(?:-(\d+))?)(?:/(\d+))?", item)
        check(m, f"crontab {what} field {field!r}: {item!r} is not *, N, N-M or one of them /STEP")
        for v in (m.group(2), m.group(3)):
            check(v is None or lo <= int(v) <= hi, f"crontab {what} field {field!r}: {v} outside {lo}-{hi}")
        check(m.group(4) is None or int(m.group(4)) >= 1, f"crontab {what} field {field!r}: step 0")


def crontab_jobs(text):
    """The job lines of a user crontab (comments, blank lines and NAME=VALUE lines left out):
    [(five time fields, command)]."""
    jobs = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s*=", line):
            continue
        parts = line.split(None, 5)
        check(len(parts) == 6, f"crontab line {raw!r}: five time fields and a command")
        for field, (what, lo, hi) in zip(parts[:5], CRON_FIELDS):
            check_cron_field(field, what, lo, hi)
        jobs.append((parts[:5], parts[5]))
    return jobs


def cron_env(home):
    """What cron gives a job: a short PATH, /bin/sh, HOME; nothing else."""
    return {"PATH": "/usr/bin:/bin", "SHELL": "/bin/sh", "HOME": str(home), "LOGNAME": "ckpt-test",
            "LANG": "C.UTF-8"}


@scenario
def examples_cron_crontab(c):
    """examples/cron/crontab: one valid line (five time fields, a command without %); the README
    shows it as it is; its command, run as cron runs it (sh -c, cron's PATH, HOME) on a root
    with more checkpoints than its policy keeps, prunes exactly what the policy drops, prints
    nothing (cron mails nothing) and logs one JSON line per run; a failure goes to stderr."""
    jobs = crontab_jobs((CRON / "crontab").read_text())
    check(len(jobs) == 1, f"examples/cron/crontab holds one job line, found {len(jobs)}")
    fields, command = jobs[0]
    check("%" not in command, f"a % in a crontab command ends it (cron turns it into a newline): {command}")
    argv = shlex.split(command)
    check(argv[0] == EXAMPLE_BIN, f"the command names the binary in full, {EXAMPLE_BIN}: {argv[0]}")
    check("prune" in argv and "--lock-timeout" in argv and float(argv[argv.index("--lock-timeout") + 1]) > 0,
          f"the command is a prune that waits for the lock: {argv}")
    readme = readme_block("Retention from cron", "").strip()
    expect_eq(readme, " ".join(fields) + " " + command, "the README's crontab line (examples/cron/crontab's)")
    check(" ".join(fields) + " " + command in (CRON / "README.md").read_text(),
          "examples/cron/README.md shows the line as it is")

    root = c.tmp / "data dir" / "exp1"  # a space: the command must quote nothing it should not
    removed = c.overfull_root(root)
    for old, new in ((EXAMPLE_BIN, BIN), (EXAMPLE_ROOT, str(root))):
        check(command.count(old) == 1, f"the command names {old} once: {command}")
        command = command.replace(old, shlex.quote(new))
    home = c.tmp / "home"
    home.mkdir()
    log = home / "ckpt-prune.jsonl"
    res = c.sh(["/bin/sh", "-c", command], env=cron_env(home), cwd=home, code=0, what="the crontab command")
    expect_eq((res.out, res.err), ("", ""), "a successful run prints nothing (cron would mail it)", res)
    lines = log.read_text().splitlines()
    check(len(lines) == 1, f"one JSON line logged per run: {lines}")
    doc = json.loads(lines[0])
    expect_eq(harness.ref_names(doc["removed"]), removed, "the checkpoints the policy drops", res)
    expect_eq(harness.step_dirs(root), sorted({name(100 * i) for i in range(1, 9)} - set(removed)),
              "the checkpoints left: the last 3 and the best")
    c.sh(["/bin/sh", "-c", command], env=cron_env(home), cwd=home, code=0, what="the next run")
    lines = log.read_text().splitlines()
    check(len(lines) == 2 and json.loads(lines[1])["removed"] == [], f"the next run removes nothing: {lines}")
    c.ckpt("verify", "--strict", root=root, code=0, what="verify after the cron runs")

    shutil.rmtree(root)
    res = c.sh(["/bin/sh", "-c", command], env=cron_env(home), cwd=home, what="the command on a missing root")
    expect_rc(res, 3, "a missing root")
    check(res.out == "" and json.loads(res.err.strip().splitlines()[-1])["error"]["reason"] == "no_root",
          "the failure is the JSON error on stderr (what cron mails)", res)
    expect_eq(len(log.read_text().splitlines()), 2, "a failed run logs nothing")


# --------------------------------------------------------------------------
# examples/cron: the systemd units


UNIT_KEYS = {
    "Unit": {"Description", "Documentation"},
    "Service": {"Type", "ExecStart", "User", "Group", "Nice", "IOSchedulingClass", "NoNewPrivileges",
                "ProtectSystem", "ReadWritePaths", "ProtectHome", "PrivateTmp", "PrivateDevices",
                "ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups", "RestrictSUIDSGID",
                "LockPersonality"},
    "Timer": {"OnCalendar", "RandomizedDelaySec", "Persistent", "AccuracySec"},
    "Install": {"WantedBy"},
}
BOOLEAN_KEYS = {"NoNewPrivileges", "PrivateTmp", "PrivateDevices", "ProtectKernelTunables", "ProtectKernelModules",
                "ProtectControlGroups", "RestrictSUIDSGID", "LockPersonality", "Persistent"}


def parse_unit(path):
    """{section: {key: [values]}} of a unit file, each line a comment, a [Section] or KEY=VALUE."""
    sections, cur = {}, None
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        check(not line.endswith("\\"), f"{path.name}:{n}: no line continuations here")
        if line.startswith("[") and line.endswith("]"):
            check(line[1:-1] in UNIT_KEYS, f"{path.name}:{n}: unexpected section {line}")
            cur = sections.setdefault(line[1:-1], {})
            continue
        check(cur is not None and "=" in line, f"{path.name}:{n}: neither a comment, a [Section] nor KEY=VALUE")
        key, value = (s.strip() for s in line.split("=", 1))
        section = next(s for s, d in sections.items() if d is cur)
        check(key in UNIT_KEYS[section], f"{path.name}:{n}: {key}= is not a [{section}] key of these units")
        if key in BOOLEAN_KEYS:
            check(value in ("yes", "no", "true", "false"), f"{path.name}:{n}: {key}={value} is not a boolean")
        cur.setdefault(key, []).append(value)
    return sections


def systemd_escape_path(path):
    """What `systemd-escape --path PATH` prints."""
    p = path.strip("/")
    out = []
    for i, ch in enumerate(p):
        if ch == "/":
            out.append("-")
        elif ch.isascii() and (ch.isalnum() or ch in ":_" or (ch == "." and i > 0)):
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode())
    return "".join(out) or "-"


def unescape_path(instance):
    """%f of a unit: the instance unescaped as a path ("-" -> "/", \\xNN -> byte), absolute."""
    raw = re.sub(rb"\\x([0-9a-fA-F]{2})", lambda m: bytes([int(m.group(1), 16)]),
                 instance.replace("-", "/").encode())
    return "/" + raw.decode().strip("/")


def expand(word, unit, instance):
    """systemd's specifiers in one word of a command line (split first, then expanded)."""
    table = {"f": unescape_path(instance), "i": instance, "n": unit, "%": "%"}

    def one(m):
        check(m.group(1) in table, f"specifier %{m.group(1)} in {word!r}: not one these units should use")
        return table[m.group(1)]
    return re.sub(r"%(.)", one, word)


@scenario
def examples_systemd_units(c):
    """ckpt-prune@.service and .timer: the settings the README promises (oneshot, idle priority,
    hardening that leaves only the root writable, a 15-minute persistent timer), accepted by
    systemd-analyze verify when it is installed; the ExecStart of an instance for a root whose
    path needs escaping, run as systemd would run it, prunes what the policy drops, quietly."""
    service_path, timer_path = CRON / "ckpt-prune@.service", CRON / "ckpt-prune@.timer"
    service, timer = parse_unit(service_path), parse_unit(timer_path)
    svc = service.get("Service", {})
    for key, want in (("Type", ["oneshot"]), ("NoNewPrivileges", ["yes"]), ("ProtectSystem", ["strict"]),
                      ("Nice", ["19"]), ("IOSchedulingClass", ["idle"]), ("PrivateTmp", ["yes"])):
        expect_eq(svc.get(key), want, f"ckpt-prune@.service: {key}=")
    check(len(svc.get("ExecStart", [])) == 1, f"one ExecStart: {svc.get('ExecStart')}")
    expect_eq(timer.get("Install", {}).get("WantedBy"), ["timers.target"], "ckpt-prune@.timer: WantedBy=")
    t = timer.get("Timer", {})
    expect_eq((t.get("OnCalendar"), t.get("Persistent")), (["*:0/15"], ["true"]), "the timer: OnCalendar, Persistent")
    check("ckpt-prune@.service" in (TOP / "README.md").read_text() and "ckpt-prune@.timer" in
          (TOP / "README.md").read_text(), "the README names both unit files")

    root = c.tmp / "data dir" / "exp-1.run"  # a space and a dash: both escaped in the instance name
    instance = systemd_escape_path(str(root))
    if shutil.which("systemd-escape"):
        res = c.sh(["systemd-escape", "--path", str(root)], env=harness.child_env(), code=0, what="systemd-escape")
        expect_eq(res.out.strip(), instance, "systemd-escape --path agrees with this test's escaping", res)
    expect_eq(unescape_path(instance), str(root), f"%f of instance {instance}")
    unit = f"ckpt-prune@{instance}.service"

    # ReadWritePaths: the root, and nothing else
    rw = [expand(v, unit, instance) for v in svc.get("ReadWritePaths", [])]
    expect_eq([p.lstrip("-") for p in rw], [str(root)], "ReadWritePaths= of the instance: its root only")

    if shutil.which("systemd-analyze"):
        units = c.tmp / "units"
        units.mkdir()
        text = service_path.read_text()
        check(text.count(EXAMPLE_BIN) == 1, f"the service names {EXAMPLE_BIN} once")
        (units / service_path.name).write_text(text.replace(EXAMPLE_BIN, BIN))
        shutil.copyfile(timer_path, units / timer_path.name)
        for suffix, template in ((".service", service_path.name), (".timer", timer_path.name)):
            (units / f"ckpt-prune@{instance}{suffix}").symlink_to(template)
        env = harness.child_env({"SYSTEMD_LOG_COLOR": "0", "SYSTEMD_PAGER": ""})
        res = c.sh(["systemd-analyze", "verify", "--man=no", f"./ckpt-prune@{instance}.service",
                    f"./ckpt-prune@{instance}.timer"], env=env, cwd=units, what="systemd-analyze verify")
        expect_rc(res, 0, "systemd-analyze verify")
        expect_eq((res.out.strip(), res.err.strip()), ("", ""), "systemd-analyze verify: not a word of complaint", res)
        c.sh(["systemd-analyze", "calendar", t["OnCalendar"][0]], env=env, code=0, what="systemd-analyze calendar")
    else:
        print("  systemd-analyze is not installed: the units were checked by this test's own parser only")

    # ExecStart, as systemd runs it for that instance: split into words, then specifiers expanded
    exec_start = svc["ExecStart"][0]
    check(exec_start[:1] not in "-@+!:", f"ExecStart has no prefix: {exec_start}")
    argv = [expand(w, unit, instance) for w in shlex.split(exec_start)]
    check(argv[0] == EXAMPLE_BIN, f"ExecStart runs {EXAMPLE_BIN}: {argv}")
    check("prune" in argv and "--lock-timeout" in argv and "-q" in argv, f"a quiet prune that waits: {argv}")
    removed = c.overfull_root(root)
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    res = c.sh([BIN] + argv[1:], env=env, cwd="/", code=0, what=f"ExecStart of {unit}")
    expect_eq((res.out, res.err), ("", ""), "a successful run writes nothing to the journal", res)
    expect_eq(harness.step_dirs(root), sorted({name(100 * i) for i in range(1, 9)} - set(removed)),
              "the checkpoints left: the last 3 and the best (200)")
    c.ckpt("verify", "--strict", root=root, code=0, what="verify after the timer's run")

    # a mistyped root: ckpt's own error (ReadWritePaths=- lets the service start), exit 3
    typo = f"ckpt-prune@{instance}x.service"
    argv = [expand(w, typo, instance + "x") for w in shlex.split(exec_start)]
    res = c.sh([BIN] + argv[1:], env=env, cwd="/", what=f"ExecStart of {typo}")
    expect_rc(res, 3, "an instance whose root does not exist")
    check("no such root" in res.err, "the journal gets ckpt's message", res)


if __name__ == "__main__":
    sys.exit(harness.main(sys.argv, __doc__, SCENARIOS, Ctx, "ckpt-examples"))
