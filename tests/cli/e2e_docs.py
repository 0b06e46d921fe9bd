#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The command table agrees with --help, the man pages and the shell completions."""
import ast
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


HELPER = "examples/python/ckpt.py"  # the one Python helper: the README's loop and the PyTorch example import it


def readme_loop():
    """The README's training loop: its one ```python block that imports the helper (module ckpt)."""
    blocks = re.findall(r"^```python\n(.*?)^```$", read("README.md"), re.S | re.M)
    loops = [b for b in blocks if re.search(r"^from ckpt import ", b, re.M)]
    assert len(loops) == 1, f"the README should hold one python block importing the helper, found {len(loops)}"
    return loops[0]


def top_level_names(source):
    """The classes, functions and variables a module defines at its top level."""
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def man_unescape(line):
    return line.replace("\\-", "-").replace("\\e", "\\").replace("\\(aq", "'")


@scenario
def docs_readme_helper_is_the_example():
    """One helper, not two: the README's loop, the PyTorch example and ckpt(1)'s excerpt all use
    examples/python/ckpt.py, so that none of them can drift from the file the tests drive."""
    helper = read(HELPER)
    defined = top_level_names(helper)
    methods = {n.name for c in ast.parse(helper).body if isinstance(c, ast.ClassDef) and c.name == "Ckpt"
               for n in c.body if isinstance(n, ast.FunctionDef)}
    problems = []

    # no other helper: no other Python file under examples/ runs ckpt itself or defines its errors
    for dirpath, _dirs, files in os.walk(os.path.join(TOP, "examples")):
        for f in files:
            path = os.path.relpath(os.path.join(dirpath, f), TOP)
            if f.endswith(".py") and path != HELPER:
                text = read(path)
                if re.search(r"\bsubprocess\b|class \w*Error\b|def ckpt\b", text):
                    problems.append(f"{path} runs ckpt or defines errors itself: use {HELPER}")

    # the README's loop imports names the helper defines and calls methods a Ckpt has (the loop runs
    # in docs_readme_python_runs, with the helper file copied beside it)
    loop = readme_loop()
    tree = ast.parse(loop)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "ckpt":
            problems += [f"the README imports {a.name} from ckpt, which {HELPER} does not define"
                         for a in node.names if a.name not in defined]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "ck" \
                and node.func.attr not in methods:
            problems.append(f"the README calls ck.{node.func.attr}(), which Ckpt does not have")
    if HELPER not in read("README.md"):
        problems.append(f"the README does not name {HELPER}")

    # the PyTorch example imports that very file (not a copy): load train.py as a module, not as
    # __main__, and ask where its `ckpt` came from
    probe = ("import importlib.util, sys\n"
             "spec = importlib.util.spec_from_file_location('train', sys.argv[1])\n"
             "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
             "print(sys.modules['ckpt'].__file__)\n")
    r = subprocess.run([TORCH_PYTHON, "-c", probe, os.path.join(TOP, "examples", "pytorch", "train.py")],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    if r.returncode != 0:
        problems.append(f"importing examples/pytorch/train.py under {TORCH_PYTHON} failed:\n{r.stderr}")
    elif os.path.realpath(r.stdout.strip()) != os.path.realpath(os.path.join(TOP, HELPER)):
        problems.append(f"examples/pytorch/train.py imports ckpt from {r.stdout.strip()}, not {HELPER}")

    # ckpt(1)'s abridged helper: every line but those with "..." is a line of the file (comments aside)
    man = read("man/ckpt.1")
    m = re.search(r"examples/python/ckpt\.py.*?^\.EX\n(.*?)^\.EE$", man, re.S | re.M)
    if not m:
        problems.append(f"man/ckpt.1 shows no excerpt of {HELPER}")
    else:
        file_lines = {line.split("  #")[0].strip() for line in helper.splitlines()}
        shown = [man_unescape(line) for line in m.group(1).splitlines()]
        checked = [line for line in shown if "..." not in line and line.strip()]
        problems += [f"man/ckpt.1's excerpt has a line that {HELPER} does not: {line.strip()!r}"
                     for line in checked if line.split("  #")[0].strip() not in file_lines]
        if len(checked) < 10:
            problems.append(f"man/ckpt.1's excerpt: only {len(checked)} lines checked")
    assert not problems, "\n".join(problems)


def run_readme_loop(tmp, root, timeout=300):
    """Runs the README's loop as a script in tmp, with the helper copied beside it (as the README says)
    and this ckpt as $CKPT_BIN."""
    script = os.path.join(tmp, "readme_loop.py")
    with open(script, "w") as f:
        f.write(readme_loop())
    shutil.copyfile(os.path.join(TOP, HELPER), os.path.join(tmp, "ckpt.py"))
    env = dict(os.environ, CKPT_ROOT=root, CKPT_BIN=BIN, PYTHONDONTWRITEBYTECODE="1")
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
        assert r.returncode != 0 and "NotFoundError" in r.stderr and "no such root" in r.stderr, \
            f"the README loop on a missing root must stop with NotFoundError (no_root): rc {r.returncode}\n{r.stderr}"
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
