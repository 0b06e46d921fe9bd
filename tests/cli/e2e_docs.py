#!/usr/bin/env python3
"""The command table agrees with --help, the man pages and the shell completions."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.normpath(os.path.join(HERE, "..", ".."))
BIN = harness.BIN
SCENARIOS, scenario = harness.registry()


def ckpt(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, NO_COLOR="1"))


def read(rel):
    with open(os.path.join(TOP, rel), encoding="utf-8") as f:
        return f.read()


def commands():
    """Command names from the Subcommands section of ckpt --help."""
    out = ckpt("--help").stdout
    section = out.split("Subcommands:", 1)[1]
    names = []
    for line in section.splitlines():
        m = re.match(r"^  (\S+)\s{2,}", line)
        if m:
            names.append(m.group(1))
    assert names, "no commands found in ckpt --help:\n" + out
    return [n for n in names if n != "help"]


def long_options(help_text):
    section = help_text.split("Options:", 1)[1]
    names = set()
    for line in section.splitlines():
        m = re.match(r"^  (?:-\w,)?--([a-z][a-z-]*)", line)  # option lines, not the footer
        if m and m.group(1) != "help":
            names.add(m.group(1))
    return sorted(names)


COMPLETIONS = {
    "bash": ("completions/ckpt.bash", lambda o: "--" + o),
    "zsh": ("completions/_ckpt", lambda o: "--" + o),
    "fish": ("completions/ckpt.fish", lambda o: "-l " + o),
}


@scenario
def docs_commands_agree():
    problems = []
    overview = read("man/ckpt.1")
    for cmd in commands():
        page = f"man/ckpt-{cmd}.1"
        if not os.path.exists(os.path.join(TOP, page)):
            problems.append(f"{page} is missing")
        elif f".TH CKPT\\-{cmd.upper().replace('-', chr(92) + '-')}" not in read(page):
            problems.append(f"{page} has no .TH header for {cmd}")
        if f"ckpt\\-{cmd.replace('-', chr(92) + '-')} (1)" not in overview \
                and f"ckpt\\-{cmd.replace('-', chr(92) + '-')}" not in overview:
            problems.append(f"man/ckpt.1 does not refer to ckpt-{cmd}(1)")
        for shell, (path, _) in COMPLETIONS.items():
            if not re.search(r"(?<![\w-])" + re.escape(cmd) + r"(?![\w-])", read(path)):
                problems.append(f"{path} ({shell}) does not offer {cmd}")
        if ckpt("help", cmd).returncode != 0:
            problems.append(f"ckpt help {cmd} fails")
    assert not problems, "\n".join(problems)


@scenario
def docs_options_agree():
    problems = []
    checked = 0
    global_opts = long_options(ckpt("--help").stdout)
    overview = read("man/ckpt.1")
    for opt in global_opts:
        if "\\-\\-" + opt.replace("-", "\\-") not in overview:
            problems.append(f"man/ckpt.1 does not document --{opt}")
        for shell, (path, spell) in COMPLETIONS.items():
            if spell(opt) not in read(path):
                problems.append(f"{path} ({shell}) does not offer --{opt}")
        checked += 1
    for cmd in commands():
        page = read(f"man/ckpt-{cmd}.1")
        for opt in long_options(ckpt("help", cmd).stdout):
            if "\\-\\-" + opt.replace("-", "\\-") not in page:
                problems.append(f"man/ckpt-{cmd}.1 does not document --{opt}")
            for shell, (path, spell) in COMPLETIONS.items():
                if spell(opt) not in read(path):
                    problems.append(f"{path} ({shell}) does not offer {cmd} --{opt}")
            checked += 1
    assert checked > 40, f"only {checked} options found: is --help parsed right?"
    assert not problems, "\n".join(problems)


@scenario
def docs_man_pages_render():
    groff = shutil.which("groff")
    assert groff, "groff is not installed (scripts/setup.sh installs groff-base)"
    pages = sorted(p for p in os.listdir(os.path.join(TOP, "man")) if re.search(r"\.[15]$", p))
    assert len(pages) >= 8, pages
    for p in pages:
        r = subprocess.run([groff, "-man", "-ww", "-z", os.path.join(TOP, "man", p)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and not r.stderr and not r.stdout, \
            f"groff -man -ww -z man/{p}: rc {r.returncode}\n{r.stderr}{r.stdout}"


@scenario
def docs_bash_completion_works():
    tmp = tempfile.mkdtemp(prefix="ckpt-docs-")
    try:
        root = os.path.join(tmp, "root")
        src = os.path.join(tmp, "f")
        with open(src, "w") as f:
            f.write("x")
        for step in (1, 2):
            r = ckpt("-C", root, "-q", "save", "--step", str(step), src)
            assert r.returncode == 0, r.stderr

        def complete(words):
            script = (f"source {os.path.join(TOP, 'completions', 'ckpt.bash')}\n"
                      f"COMP_WORDS=({words})\nCOMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))\n"
                      "_ckpt\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
            r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
            assert r.returncode == 0, r.stderr
            return set(r.stdout.split())

        assert "save" in complete("ckpt sa"), complete("ckpt sa")
        assert "promote-best" in complete("ckpt pro"), complete("ckpt pro")
        refs = complete(f"ckpt -C {root} info ''")
        assert {"latest", "best", "step-000000001", "step-000000002"} <= refs, refs
        assert "--dry-run" in complete("ckpt prune --d"), complete("ckpt prune --d")
        assert complete("ckpt save --mode ''") == {"min", "max"}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "--list":
        print("\n".join(SCENARIOS))
        return 0
    if len(sys.argv) != 2 or sys.argv[1] not in SCENARIOS:
        print("usage: e2e_docs.py --list | SCENARIO", file=sys.stderr)
        return 2
    try:
        SCENARIOS[sys.argv[1]]()
    except AssertionError as e:
        print(f"FAIL {sys.argv[1]}: {e}", file=sys.stderr)
        return 1
    print(f"PASS {sys.argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
