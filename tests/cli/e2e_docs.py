#!/usr/bin/env python3
"""The command table agrees with --help, the man pages and the shell completions."""
import json
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
    return [n for n in names if n not in ("help", "version")]  # both in ckpt(1)


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


TORCH_PYTHON = "/usr/bin/python3"  # Debian's interpreter, the one python3-torch installs for


def readme_python_blocks():
    """The ```python blocks of the README, in order."""
    blocks = re.findall(r"^```python\n(.*?)^```$", read("README.md"), re.S | re.M)
    assert len(blocks) >= 2, f"the README should hold the helper and the loop, found {len(blocks)} python blocks"
    return blocks


@scenario
def docs_readme_helper_is_the_example():
    helper = readme_python_blocks()[0]
    assert helper == read("examples/pytorch/ckpt_helper.py"), \
        "the README's helper must be examples/pytorch/ckpt_helper.py as it is (the example and the tests import it)"


def run_readme_loop(tmp, root, timeout=300):
    """Runs the README's helper and loop as one script in tmp, with this ckpt first on PATH."""
    helper, loop = readme_python_blocks()[:2]
    script = os.path.join(tmp, "readme_loop.py")
    with open(script, "w") as f:
        f.write(helper + "\n" + loop)
    env = dict(os.environ, CKPT_ROOT=root, PATH=os.path.dirname(BIN) + os.pathsep + os.environ.get("PATH", ""))
    return subprocess.run([TORCH_PYTHON, script], cwd=tmp, capture_output=True, text=True,
                          timeout=timeout, env=env)


@scenario
def docs_readme_python_runs():
    r = subprocess.run([TORCH_PYTHON, "-c", "import torch"], capture_output=True, text=True)
    assert r.returncode == 0, f"{TORCH_PYTHON} cannot import torch (scripts/setup.sh --test installs python3-torch):\n{r.stderr}"
    tmp = tempfile.mkdtemp(prefix="ckpt-docs-")
    try:
        # A mistyped root: the loop stops with no_root and creates nothing.
        wrong = os.path.join(tmp, "typo", "checkpoints")
        r = run_readme_loop(tmp, wrong)
        assert r.returncode != 0 and "CkptError" in r.stderr and "no such root" in r.stderr, \
            f"the README loop on a missing root must stop with CkptError (no_root): rc {r.returncode}\n{r.stderr}"
        assert not os.path.exists(wrong), "the README loop created a mistyped root"

        # A new run: the launcher creates the root; the loop trains and commits 0, 10, 20, 30.
        root = os.path.join(tmp, "runs", "exp1", "checkpoints")
        os.makedirs(root)
        r = run_readme_loop(tmp, root)
        assert r.returncode == 0, f"the README loop failed: rc {r.returncode}\n{r.stdout}\n{r.stderr}"
        committed = re.findall(r"^committed (step-\d+)", r.stdout, re.M)
        assert committed == [f"step-{s:09d}" for s in (0, 10, 20, 30)], r.stdout
        assert os.path.isdir(os.path.join(tmp, "out")) and os.listdir(os.path.join(tmp, "out")) == [], \
            "after save --from out --move, out/ must stay in place, empty"
        info = json.loads(ckpt("--json", "-C", root, "info").stdout)
        names = [c["name"] for c in info["checkpoints"]]
        best = min(info["checkpoints"], key=lambda c: c["metrics"]["val_loss"])["name"] if names else None
        assert info["last"]["name"] == "step-000000030", info
        assert len(names) <= 4 and names[-3:] == [f"step-{s:09d}" for s in (10, 20, 30)], \
            f"--keep-last 3 keeps 10, 20 and 30 (and the best): {names}"
        assert info["best"]["name"] == best, f"best.json names {info['best']['name']}, lowest loss is {best}"
        r = ckpt("-C", root, "verify")
        assert r.returncode == 0, r.stdout + r.stderr

        # A restart after the end resumes at step 31 and has nothing left to do.
        before = {n: open(os.path.join(root, n, "_checkpoint.json")).read() for n in names}
        r = run_readme_loop(tmp, root)
        assert r.returncode == 0 and "committed" not in r.stdout, f"rc {r.returncode}\n{r.stdout}\n{r.stderr}"
        after = {n: open(os.path.join(root, n, "_checkpoint.json")).read() for n in names}
        assert before == after, "a restart after the last step changed a checkpoint"

        # A restart from step 10 (the later checkpoints gone) trains 11..30 again and commits them.
        shutil.rmtree(os.path.join(root, "step-000000030"))
        shutil.rmtree(os.path.join(root, "step-000000020"))
        r = run_readme_loop(tmp, root)
        assert r.returncode == 0, f"rc {r.returncode}\n{r.stdout}\n{r.stderr}"
        committed = re.findall(r"^committed (step-\d+)", r.stdout, re.M)
        assert committed == ["step-000000020", "step-000000030"], r.stdout
        r = ckpt("-C", root, "verify")
        assert r.returncode == 0, r.stdout + r.stderr
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
