#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The shell completions in the real shells: bash (with bash-completion) and zsh (with compinit),
each interactive on a pseudo-terminal where a TAB is typed and the line read back, and fish through
`complete -C`. Commands, options and their values; checkpoints from -C and --root before or after
the command, from --root=DIR, $CKPT_ROOT and ~; roots and file names with spaces; a TAB over
1,500 checkpoints that offers every one and starts no more processes than a TAB over 3 (counted
by strace around the shell: a structural check, not a timed one; the time is printed, and
bench/run --only completion measures it against the shell's own directory completion); and where
`cmake --install` puts the files, against where each shell looks. A shell (or strace) that is not
installed fails its scenarios (CI installs zsh, fish, bash-completion and strace).

Usage: e2e_completions.py --list | --all | SCENARIO...
  binary: $CKPT_BIN; completion files: $CKPT_COMPLETIONS (default: completions/ of this checkout);
  strace: $STRACE, else the PATH
"""
import collections
import fcntl
import json
import os
import pathlib
import pty
import re
import select
import shlex
import shutil
import signal
import struct
import sys
import termios
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, expect_eq, name  # noqa: E402

SCENARIOS, scenario = harness.registry()

TOP = harness.HERE.parent.parent
COMPLETIONS = pathlib.Path(os.environ.get("CKPT_COMPLETIONS") or TOP / "completions").resolve()
BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"
BIG = 1500
SMALL = 3
# What one TAB may start, however many checkpoints the root holds: processes created (fork, vfork,
# clone and clone3 without CLONE_THREAD) and programs run (execve), each counted by strace.
MAX_PROCESSES = 2
STRACE = os.environ.get("STRACE") or shutil.which("strace") or "strace"
COMMANDS = ["abort", "copy", "diff", "help", "info", "load", "promote-best", "prune", "rm", "rollback", "save",
            "verify", "version"]
GLOBAL_LONG = ["--help", "--json", "--lock-timeout", "--no-fsync", "--progress", "--quiet", "--root",
               "--threads"]
MARKERS = ["best", "last", "latest"]


def steps(*ns):
    return [name(n) for n in ns]


# --------------------------------------------------------------------------
# the shells


def need(shell):
    path = shutil.which(shell)
    check(path is not None, f"{shell} is not installed: these scenarios need zsh, fish and bash-completion "
                            "(apt-get install zsh fish bash-completion)")
    if shell == "bash":
        check(os.path.isfile(BASH_COMPLETION), f"{BASH_COMPLETION} is missing: apt-get install bash-completion")
    return path


def strace_argv(trace):
    """strace of a shell and of everything it starts, into TRACE: the calls that make processes and run
    programs (%process), and openat, which shows the marker files that bound each TAB. With
    --seccomp-bpf the shell stops only at those calls."""
    check(shutil.which(STRACE) is not None or os.access(STRACE, os.X_OK),
          f"strace not found ({STRACE}): these scenarios count processes with it (apt-get install strace, "
          "or set STRACE)")
    return [STRACE, "-f", "-qq", "--seccomp-bpf", "-e", "trace=%process,openat", "-e", "signal=none",
            "-o", str(trace)]


TRACE_CALL = re.compile(r"^(\d+)\s+(?:<\.\.\. (\w+) resumed>(.*)|(\w+)\((.*))$")
TRACE_RET = re.compile(r"\s=\s(-?\d+|\?)(?:\s+E[A-Z0-9]+(?:\s\(.*\))?)?$")


class Started:
    """What the shell started during one TAB: processes (the pids that fork, vfork, clone and clone3 without
    CLONE_THREAD returned: threads are not processes) and programs (pid and path of each execve that
    succeeded)."""

    def __init__(self):
        self.processes, self.programs = [], []

    def counts(self):
        return len(self.processes), len(self.programs)

    def describe(self):
        ran = collections.Counter(os.path.basename(path) for _, path in self.programs)
        forks = len(set(self.processes) - {pid for pid, _ in self.programs})
        what = [f"{prog} ×{n:,}" for prog, n in ran.most_common()] + ([f"fork without exec ×{forks:,}"]
                                                                       if forks else [])
        return (f"{len(self.processes):,} processes, {len(self.programs):,} programs run"
                + (f" ({', '.join(what)})" if what else ""))


def started_per_tab(trace, begin, end):
    """The strace -f log TRACE, cut into windows from each openat of BEGIN to the next openat of END (the
    marker files a TAB is written between): what was started in each window, in order."""
    windows, cur = [], None
    pending = {}  # pid -> (call, arguments) of a call the log shows <unfinished ...>
    marks = {f'"{begin}"': "begin", f'"{end}"': "end"}
    for line in pathlib.Path(trace).read_text(errors="replace").splitlines():
        m = TRACE_CALL.match(line)
        if not m:
            continue  # +++ exited with 0 +++ and the like
        pid = int(m.group(1))
        if m.group(2):  # <... call resumed>: its arguments were on the unfinished line
            call, args = pending.pop(pid, (m.group(2), ""))
            tail = m.group(3)
        else:
            call, args = m.group(4), m.group(5)
            tail = args
            if call == "openat":
                mark = next((v for k, v in marks.items() if k in args), None)
                if mark == "begin":
                    cur = Started()
                elif mark == "end" and cur is not None:
                    windows.append(cur)
                    cur = None
            if args.endswith("<unfinished ...>"):
                pending[pid] = (call, args)
                continue
        ret = TRACE_RET.search(tail)
        if cur is None or ret is None or ret.group(1) == "?":
            continue
        rc = int(ret.group(1))
        if call in ("fork", "vfork", "clone", "clone3") and rc > 0 and "CLONE_THREAD" not in args:
            cur.processes.append(rc)
        elif call in ("execve", "execveat") and rc == 0:
            path = re.search(r'"((?:[^"\\]|\\.)*)"', args)
            cur.programs.append((pid, path.group(1) if path else "?"))
    return windows


def check_no_process_per_checkpoint(shell, trace, small, big, warm_up=None):
    """One TAB over SMALL and over BIG checkpoints starts as many processes and runs as many programs (at
    most MAX_PROCESSES each): nothing per checkpoint. small: a Started; big: a list of them."""
    where = f"\n  the strace log: {trace}"
    for b in big:
        check(b.counts() == small.counts() and max(small.counts()) <= MAX_PROCESSES,
              f"{shell}: a TAB over {BIG:,} checkpoints started {b.describe()}; over {SMALL}: {small.describe()}. "
              f"Completion must start no process per checkpoint (at most {MAX_PROCESSES} processes and "
              f"{MAX_PROCESSES} programs a TAB, as many over {BIG:,} as over {SMALL}){where}")
    first = f"; the first TAB of the shell: {warm_up.describe()}" if warm_up else ""
    print(f"  {shell}: one TAB started {small.describe()} over {SMALL} checkpoints, and the same over "
          f"{BIG:,}{first}")


def show_tab_time(shell, seconds, what):
    """The time of the TAB over BIG checkpoints, for a person to read: not checked (bench/run --only
    completion measures it, against the shell's own directory completion)."""
    print(f"  {shell}: the TAB over {BIG:,} checkpoints took {seconds * 1000:.0f} ms {what} (under strace; "
          "not checked)")


def shell_env(home, extra=None):
    """A clean environment for a shell: HOME a fresh directory, no CKPT_ROOT, no XDG_DATA_DIRS."""
    env = harness.child_env()
    for k in ("XDG_DATA_DIRS", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "BASH_ENV", "ENV", "ZDOTDIR",
              "BASH_COMPLETION_USER_DIR", "BASH_COMPLETION_USER_FILE", "CDPATH", "PROMPT_COMMAND"):
        env.pop(k, None)
    env.update({"HOME": str(home), "TERM": "dumb", "INPUTRC": "/dev/null", "LC_ALL": "C.UTF-8",
                "PATH": os.path.dirname(harness.BIN) + os.pathsep + env.get("PATH", "")})
    env.update(extra or {})
    return env


def screen_text(raw):
    """Terminal output as text: escape sequences and carriage returns dropped, backspaces applied."""
    text = raw.decode("utf-8", "replace")
    text = re.sub(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]|\x07", "", text)
    out = []
    for line in text.replace("\r\n", "\n").split("\n"):
        cells = []
        for ch in line.split("\r")[-1] if "\r" in line else line:
            if ch == "\b":
                if cells:
                    cells.pop()
            else:
                cells.append(ch)
        out.append("".join(cells).rstrip())
    return "\n".join(out)


class Completion:
    """What one TAB did: line (the buffer after it), words (what the completion offered, or None when
    it never ran), the screen output, wall (seconds from the TAB to the line read back) and func
    (seconds in the completion function, measured inside the shell)."""

    def __init__(self, typed, line, words, screen, wall, func=None, extra=None):
        self.typed, self.line, self.words, self.screen = typed, line, words, screen
        self.wall, self.func, self.extra = wall, func, extra or {}

    def describe(self):
        words = "<not run>" if self.words is None else (
            " ".join(self.words[:40]) + (f" ... ({len(self.words)} in all)" if len(self.words) > 40 else ""))
        return (f"  typed : {self.typed!r}+TAB\n  line  : {self.line!r}\n  offered: {words}\n"
                f"  screen:\n{harness.indent(self.screen, 3000)}")


class PtyShell:
    """An interactive shell on a pseudo-terminal. The setup binds ^T to write the line buffer to a file:
    complete(TEXT) types TEXT, a TAB and ^T, and the TAB is over when that file appears."""

    def __init__(self, ctx, label, argv, env, setup, cwd, begin_key=""):
        self.io = ctx.tmp / f"{label}-io-{len(ctx.shells)}"
        self.io.mkdir()
        self.label = label
        self.begin_key = begin_key  # typed before each TAB: its binding writes io/begin (traced shells)
        self.exited = False
        self.out = bytearray()
        pid, fd = pty.fork()
        if pid == 0:  # the child: the shell, on the terminal
            try:
                os.chdir(cwd)
                os.execvpe(argv[0], argv, env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 160, 0, 0))
        ctx.shells.append(self)
        for line in setup(self.io):
            self.send(line + "\n")
        self.send(f"echo $$ > {self.io}/pid; echo READY-$((6 * 7))\n")
        self.wait(lambda: b"READY-42" in self.out, 60, "the shell to start and run its setup")
        # not self.pid under strace; its process group holds the subshells of a completion too (a new session:
        # pty.fork's child calls setsid)
        self.shell_pid = int((self.io / "pid").read_text())
        self.shell_pgid = os.getpgid(self.shell_pid)

    def send(self, text):
        data = text.encode()
        while data:
            n = os.write(self.fd, data)
            data = data[n:]

    def drain(self, seconds):
        ready, _, _ = select.select([self.fd], [], [], seconds)
        if ready:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                screen = harness.indent(screen_text(bytes(self.out))[-3000:])
                raise harness.Fail(f"{self.label} exited\n  screen:\n{screen}")
            self.out += chunk

    def wait(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise harness.Fail(f"{self.label}: timed out waiting for {what}\n  screen:\n"
                                   f"{harness.indent(screen_text(bytes(self.out))[-3000:])}")
            self.drain(0.01)

    def complete(self, typed, timeout=30):
        files = {k: self.io / k for k in ("line", "words", "time")}
        for f in files.values():
            f.unlink(missing_ok=True)
        mark = len(self.out)
        t0 = time.monotonic()
        self.send(typed + self.begin_key + "\t\x14")
        # the binding ends the line with a newline: the file can exist, created but not yet written
        self.wait(lambda: files["line"].exists() and files["line"].read_text().endswith("\n"), timeout,
                  f"the TAB after {typed!r}")
        wall = time.monotonic() - t0
        self.drain(0.05)
        line = files["line"].read_text()[:-1]
        words = files["words"].read_text().splitlines() if files["words"].exists() else None
        func = extra = None
        if files["time"].exists():
            fields = files["time"].read_text().split()
            func = float(fields[1]) - float(fields[0])
            extra = {"count": int(fields[2])} if len(fields) > 2 else None
        self.send("\x15")  # kill the line
        return Completion(typed, line, words, screen_text(bytes(self.out[mark:])), wall, func, extra)

    def exit(self, timeout=60):
        """exit, typed on an empty line; returns once the shell (and strace, wrapped around it) has exited,
        so that the strace log is complete."""
        self.send("\x15exit\n")
        deadline = time.monotonic() + timeout
        while os.waitpid(self.pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                raise harness.Fail(f"{self.label}: did not exit within {timeout} s\n  screen:\n"
                                   f"{harness.indent(screen_text(bytes(self.out))[-3000:])}")
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(self.fd, 1 << 16)
                except OSError:
                    chunk = b""
                self.out += chunk
                if not chunk:
                    time.sleep(0.01)  # the terminal is closed: the shell is on its way out
        self.exited = True

    def close(self):
        if not self.exited:
            pgid = getattr(self, "shell_pgid", None)
            if pgid is not None and pgid != os.getpgrp():
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for pid in dict.fromkeys((getattr(self, "shell_pid", self.pid), self.pid)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
        os.close(self.fd)


def bash_setup(io, traced=False):
    """bash-completion, then completions/ckpt.bash as is, its _ckpt wrapped to record what it offered
    (COMPREPLY), its compopt options and its time; traced: ^B writes io/begin (a TAB's start in the
    strace log; ^T, its end)."""
    return [
        "PS1='$ '; PS2='> '; set +o history",
        f"source {BASH_COMPLETION}",
        f"source {shlex.quote(str(COMPLETIONS / 'ckpt.bash'))}",
        'f=$(declare -f _ckpt); eval "__ckpt_tested${f#_ckpt}"; unset f',
        "_ckpt() { local t0=$EPOCHREALTIME; __ckpt_tested \"$@\"; local rc=$? t1=$EPOCHREALTIME; "
        f"{{ ((${{#COMPREPLY[@]}})) && printf '%s\\n' \"${{COMPREPLY[@]}}\"; }} > {io}/words; "
        f"compopt > {io}/opts 2>&1; "
        f"printf '%s %s %s\\n' $t0 $t1 ${{#COMPREPLY[@]}} > {io}/time; return $rc; }}",
        f"bind -x '\"\\C-t\": printf \"%s\\n\" \"$READLINE_LINE\" > {io}/line'",
    ] + ([f"bind -x '\"\\C-b\": : > {io}/begin'"] if traced else [])


def zsh_setup(io, timed=False, traced=False):
    """compinit with COMPLETIONS first on $fpath; compadd wrapped to record what it adds; timed: the TAB
    widget wrapped too, to record its time and the number of matches; traced: ^B writes io/begin (a
    TAB's start in the strace log; ^T, its end)."""
    lines = [
        "PS1='%% '; bindkey -e; unsetopt beep",
        f"fpath=({shlex.quote(str(COMPLETIONS))} $fpath); autoload -Uz compinit; compinit -u -D",
        f"__dump_line() {{ print -r -- \"$BUFFER\" > {io}/line }}; zle -N __dump_line; bindkey '^T' __dump_line",
        "compadd() { if (( ${@[(I)-[OAD]]} )); then builtin compadd \"$@\"; return; fi; "
        "local -a __hits; builtin compadd -O __hits \"$@\"; "
        f"(( $#__hits )) && print -rl -- $__hits >> {io}/words; builtin compadd \"$@\" }}",
    ]
    if timed:
        lines += [
            "zmodload zsh/datetime; unsetopt autolist",
            "__timed_complete() { local t0=$EPOCHREALTIME; _main_complete; local rc=$?; "
            f"print -r -- $t0 $EPOCHREALTIME $compstate[nmatches] > {io}/time; return rc }}",
            "zle -C __timed_complete .complete-word __timed_complete; bindkey '^I' __timed_complete",
        ]
    if traced:
        lines.append(f"__mark_begin() {{ : > {io}/begin }}; zle -N __mark_begin; bindkey '^B' __mark_begin")
    return lines


def fish_times(stderr):
    """The seconds of each `time` report fish printed ("Executed in 1.23 millis")."""
    unit = {"micros": 1e-6, "millis": 1e-3, "secs": 1.0, "mins": 60.0}
    return [float(v) * unit[u] for v, u in re.findall(r"Executed in\s+([\d.]+) (micros|millis|secs|mins)", stderr)]


def fish_complete(ctx, *lines, env=None, cwd=None, source=True):
    """`complete -C LINE` in fish after sourcing ckpt.fish: for each line, the candidates (without
    their descriptions)."""
    fish = need("fish")
    script = ("source $argv[1]; " if source else "") + \
        "for l in $argv[2..-1]; echo '<<<>>>'; complete -C $l; end"
    res = harness.execute([fish, "--no-config", "-c", script, COMPLETIONS / "ckpt.fish", *lines],
                          cwd=str(cwd or ctx.tmp), env=shell_env(ctx.home, env), timeout=120, code=0,
                          what="fish complete -C")
    check(res.err == "", "fish printed errors", res)
    blocks = res.out.split("<<<>>>\n")[1:]
    check(len(blocks) == len(lines), "one answer per line", res)
    return [[w.split("\t")[0] for w in b.splitlines()] for b in blocks]


# --------------------------------------------------------------------------
# roots


class Ctx(harness.RootCtx):
    def __init__(self, tmp):
        super().__init__(tmp)
        self.home = self.tmp / "home"
        self.home.mkdir()
        self.shells = []

    def close(self):
        for s in self.shells:
            s.close()

    def ckpt(self, *args, code=0):
        return harness.execute([harness.BIN, *args], cwd=str(self.tmp), env=harness.child_env(), timeout=300,
                               code=code, what=" ".join(map(str, args)))

    def make_root(self, root, *step_numbers, pending=()):
        """A real root: ckpt save of each step (and pending sharded steps, one shard of two)."""
        data = self.src / "model.bin"
        data.write_bytes(b"weights")
        for s in step_numbers:
            self.ckpt("-C", root, "-q", "--no-fsync", "save", "--step", s, data)
        for s in pending:
            self.ckpt("-C", root, "-q", "--no-fsync", "save", "--step", s, "--shard", "0/2", data)
        return root

    def make_big_root(self, root, n=BIG):
        """n checkpoints: two saved by ckpt, the others copies of the second under their own step,
        name and commit number; ckpt info must list all n and verify --quick must pass."""
        self.make_root(root, 1, 2)
        second = root / name(2)
        meta = json.loads((second / "_checkpoint.json").read_text())
        for s in range(3, n + 1):
            d = root / name(s)
            d.mkdir()
            for f in second.iterdir():
                if f.name != "_checkpoint.json":
                    shutil.copyfile(f, d / f.name)
            meta.update(name=name(s), step=s, commit_seq=s)
            (d / "_checkpoint.json").write_text(json.dumps(meta, indent=2))
        (root / "last").write_text(name(n) + "\n")
        res = self.ckpt("-C", root, "--json", "info")
        expect_eq(len(res.json()["checkpoints"]), n, "checkpoints ckpt info lists", res)
        self.ckpt("-C", root, "-q", "verify", "--quick")
        return root

    def bash(self, cwd=None, env=None, trace=None):
        """An interactive bash; trace: under strace, into that file (each TAB between io/begin and io/line)."""
        need("bash")
        wrap = strace_argv(trace) if trace else []
        return PtyShell(self, "bash", [*wrap, "bash", "--norc", "--noprofile", "-i"], shell_env(self.home, env),
                        lambda io: bash_setup(io, bool(trace)), cwd or self.tmp, "\x02" if trace else "")

    def zsh(self, cwd=None, env=None, timed=False, trace=None):
        """An interactive zsh; trace: under strace, into that file (each TAB between io/begin and io/line)."""
        need("zsh")
        wrap = strace_argv(trace) if trace else []
        return PtyShell(self, "zsh", [*wrap, "zsh", "-f", "-i"], shell_env(self.home, env),
                        lambda io: zsh_setup(io, timed, bool(trace)), cwd or self.tmp, "\x02" if trace else "")

    def small_and_big_roots(self):
        """A root of SMALL checkpoints and one of BIG. No space in their names: the count of processes must
        not hang on quoting (the *_refs_from_the_root scenarios test a root with a space)."""
        return (self.make_root(self.tmp / "small-root", *range(1, SMALL + 1)),
                self.make_big_root(self.tmp / "big-root"))


def esc(path):
    """PATH as typed at a prompt with backslashes (bash, zsh and fish read it the same)."""
    return re.sub(r"([^A-Za-z0-9_./~=+-])", r"\\\1", str(path))


def expect_offered(comp, want, what, exact=False, absent=()):
    check(comp.words is not None, f"{what}: the completion did not run\n{comp.describe()}")
    got = set(comp.words)
    if exact:
        check(got == set(want), f"{what}: expected exactly {sorted(want)}\n{comp.describe()}")
    missing = [w for w in want if w not in got]
    check(not missing, f"{what}: not offered: {missing}\n{comp.describe()}")
    wrong = [w for w in absent if w in got]
    check(not wrong, f"{what}: offered, but must not be: {wrong}\n{comp.describe()}")


def expect_line(comp, want, what):
    check(comp.line == want, f"{what}: the line after TAB should be {want!r}\n{comp.describe()}")


def expect_candidates(got, want, what, exact=False, absent=()):
    """The same checks for fish's list of candidates."""
    c = Completion("", "", list(got), "", 0)
    expect_offered(c, want, what, exact, absent)


def sample_roots(c):
    """ROOT "my root" (steps 1, 20, 300, a pending 7) and HOME/runs/exp (steps 4, 5); the env root
    (step 9) for $CKPT_ROOT; a work directory holding "my file.bin" and "my dir/"."""
    spaced = c.make_root(c.tmp / "my root", 1, 20, 300, pending=(7,))
    home_root = c.make_root(c.home / "runs" / "exp", 4, 5)
    env_root = c.make_root(c.tmp / "env root", 9)
    work = c.tmp / "work"
    (work / "my dir").mkdir(parents=True)
    (work / "my file.bin").write_bytes(b"x")
    (work / "other.bin").write_bytes(b"x")
    return spaced, home_root, env_root, work


ALL_SPACED = MARKERS + steps(1, 20, 300)


# --------------------------------------------------------------------------
# bash


def commands_and_options(c, sh):
    """What bash and zsh both complete the same way: commands, options, option values, directories."""
    expect_offered(sh.complete("ckpt "), COMMANDS, "ckpt TAB: the commands", exact=True)
    expect_line(sh.complete("ckpt promo"), "ckpt promote-best ", "ckpt promo")
    expect_offered(sh.complete("ckpt -"), GLOBAL_LONG + ["-C", "-q", "-h", "-V", "--version"], "global options")
    expect_offered(sh.complete("ckpt info --"), GLOBAL_LONG + ["--path", "--limit", "--sort"],
                   "info's options and the global ones", absent=["--version", "--step"])
    expect_offered(sh.complete("ckpt save --"), ["--step", "--from", "--metric", "--mode", "--checksum", "--shard",
                                                 "--pending-expiry", "--no-dedup", "--root"], "save's options")
    expect_offered(sh.complete("ckpt prune -"), ["-n", "--dry-run", "--keep-last", "--pending-expiry"], "prune")
    expect_offered(sh.complete("ckpt --progress "), ["auto", "always", "never", "json"], "--progress", exact=True)
    expect_line(sh.complete("ckpt --progress=j"), "ckpt --progress=json ", "--progress=j")
    expect_offered(sh.complete("ckpt save --mode "), ["min", "max"], "--mode", exact=True)
    expect_offered(sh.complete("ckpt info --sort "), ["step", "commit"], "--sort", exact=True)
    expect_offered(sh.complete("ckpt help "), COMMANDS, "help COMMAND", exact=True)
    (c.tmp / "a dir" / "sub").mkdir(parents=True)
    (c.tmp / "a file").write_bytes(b"")
    expect_line(sh.complete("ckpt -C a\\ d"), "ckpt -C a\\ dir/", "-C completes directories, quoted")
    expect_line(sh.complete("ckpt --root=a\\ d"), "ckpt --root=a\\ dir/", "--root=DIR")
    expect_line(sh.complete("ckpt load latest --to a\\ dir/s"), "ckpt load latest --to a\\ dir/sub/", "--to")


@scenario
def bash_commands_and_options(c):
    """Commands, global options, a command's options, option values, directories for -C and --to."""
    sh = c.bash()
    commands_and_options(c, sh)
    expect_offered(sh.complete("ckpt pr"), ["promote-best", "prune"], "ckpt pr", exact=True)
    expect_line(sh.complete("ckpt pro"), "ckpt promote-best ", "ckpt pro")
    expect_offered(sh.complete("ckpt save --checksum "), ["sha256", "none"], "--checksum", exact=True)
    expect_offered(sh.complete("ckpt -C a"), ["a dir"], "-C offers directories only", exact=True)


def refs_from_the_root(c, start_shell):
    """What bash and zsh both complete the same way: the refs of the root however it is given."""
    spaced, home_root, env_root, _ = sample_roots(c)
    sh = start_shell(env={"CKPT_ROOT": str(env_root)})
    s = esc(spaced)
    for typed in (f"ckpt -C {s} info ", f"ckpt --root {s} verify ", f"ckpt --root={s} rm ",
                  f"ckpt -C{s} load ", f"ckpt info -C {s} ", f"ckpt rm --root={s} -n ",
                  f"ckpt -C '{spaced}' diff ", f"ckpt -C \"{spaced}\" rollback ",
                  f"ckpt -q --json -C {s} --threads 2 promote-best "):
        expect_offered(sh.complete(typed), ALL_SPACED, typed, exact=True)
    expect_line(sh.complete(f"ckpt -C {s} info step-00000002"), f"ckpt -C {s} info {name(20)} ", "a unique ref")
    expect_line(sh.complete(f"ckpt --root={s} diff latest b"), f"ckpt --root={s} diff latest best ",
                "diff's second ref")
    expect_offered(sh.complete("ckpt info "), MARKERS + steps(9), "$CKPT_ROOT", exact=True)
    expect_offered(sh.complete("ckpt -C ~/runs/exp info "), MARKERS + steps(4, 5), "-C ~/DIR", exact=True)
    expect_offered(sh.complete("ckpt verify --root=~/runs/exp "), MARKERS + steps(4, 5), "--root=~/DIR", exact=True)
    expect_offered(sh.complete(f"ckpt -C {s} abort "), steps(7), "abort: the pending steps", exact=True)
    return sh, s


@scenario
def bash_refs_from_the_root(c):
    """Checkpoints from -C DIR, --root DIR, --root=DIR, -CDIR (before or after the command), $CKPT_ROOT,
    ~/DIR and --root=~/DIR, in a root whose name has a space; pending steps for abort."""
    sh, s = refs_from_the_root(c, c.bash)
    expect_offered(sh.complete(f"ckpt -C {s} diff latest best "), [], "diff takes two refs", exact=True)


@scenario
def bash_file_names_with_spaces(c):
    """save SOURCE completes a file name with a space as one word, quoted on the line, and so do
    DEST=PATH and --from DIR; refs are not treated as files."""
    _, _, _, work = sample_roots(c)
    sh = c.bash(cwd=work)
    r = sh.complete("ckpt save --step 1 my\\ fi")
    expect_line(r, "ckpt save --step 1 my\\ file.bin ", "a file name with a space")
    expect_offered(r, ["my file.bin"], "one word, not two", exact=True)
    check("-o filenames" in (sh.io / "opts").read_text(), "save's files are completed with -o filenames "
          f"(readline quotes them): {(sh.io / 'opts').read_text()}")
    expect_line(sh.complete("ckpt save --step 1 'my fi"), "ckpt save --step 1 'my file.bin' ", "in quotes")
    expect_line(sh.complete("ckpt save --step 1 \"my fi"), "ckpt save --step 1 \"my file.bin\" ", "in double quotes")
    expect_line(sh.complete("ckpt save --step 1 w=my\\ fi"), "ckpt save --step 1 w=my\\ file.bin ", "DEST=PATH")
    expect_line(sh.complete("ckpt save --step 1 --from my\\ d"), "ckpt save --step 1 --from my\\ dir/", "--from DIR")
    r = sh.complete("ckpt save --step 1 my")
    expect_offered(r, ["my file.bin", "my dir"], "both names, each one word", exact=True)
    (c.home / "a b.bin").write_bytes(b"x")
    expect_line(sh.complete("ckpt save --step 1 ~/a"), "ckpt save --step 1 ~/a\\ b.bin ", "~/ kept, space quoted")


def traced_tabs(sh, small, big):
    """Under strace: a first TAB (over SMALL), then one over SMALL and one over BIG checkpoints. One over BIG
    is enough for a count; a script that forks per checkpoint takes a minute for it under strace."""
    return [sh.complete(f"ckpt -C {esc(root)} info ", timeout=300) for root in (small, small, big)]


@scenario
def bash_1500_checkpoints_no_process_per_checkpoint(c):
    """A TAB over 1,500 checkpoints offers every one and starts no more processes than a TAB over 3, at
    most 2 (bash under strace; the old script started basename per checkpoint: 4.5 s a TAB). The time
    in _ckpt is printed, not checked."""
    small, big = c.small_and_big_roots()
    trace = c.tmp / "bash.trace"
    sh = c.bash(trace=trace)
    tabs = traced_tabs(sh, small, big)
    sh.exit()
    started = started_per_tab(trace, sh.io / "begin", sh.io / "line")
    expect_eq(len(started), len(tabs), f"TABs found in the strace log {trace}")
    check_no_process_per_checkpoint("bash", trace, started[1], started[2:], started[0])
    expect_offered(tabs[1], MARKERS + steps(*range(1, SMALL + 1)), f"over {SMALL}", exact=True)
    for r in tabs[2:]:
        expect_offered(r, MARKERS + steps(*range(1, BIG + 1)), f"over {BIG}: every checkpoint", exact=True)
    show_tab_time("bash", tabs[2].func, "in _ckpt")


# --------------------------------------------------------------------------
# zsh


@scenario
def zsh_commands_and_options(c):
    """Commands, global options, a command's options, option values, directories for -C and --to."""
    commands_and_options(c, c.zsh())


@scenario
def zsh_refs_from_the_root(c):
    """Checkpoints from -C DIR, --root DIR, --root=DIR, -CDIR (before or after the command), $CKPT_ROOT,
    ~/DIR and --root=~/DIR, in a root whose name has a space; pending steps for abort."""
    sh, s = refs_from_the_root(c, c.zsh)
    # what a person sees: the list under the line
    r = sh.complete(f"ckpt -C {s} info ")
    for w in ALL_SPACED:
        check(re.search(r"(?<![\w-])" + re.escape(w) + r"(?![\w-])", r.screen),
              f"{w} is not listed on the screen\n{r.describe()}")


@scenario
def zsh_file_names_with_spaces(c):
    """save SOURCE completes a file name with a space as one word, quoted on the line, and so do
    DEST=PATH and --from DIR."""
    _, _, _, work = sample_roots(c)
    sh = c.zsh(cwd=work)
    expect_line(sh.complete("ckpt save --step 1 my\\ fi"), "ckpt save --step 1 my\\ file.bin ",
                "a file name with a space")
    expect_line(sh.complete("ckpt save --step 1 'my fi"), "ckpt save --step 1 'my file.bin' ", "in quotes")
    expect_line(sh.complete("ckpt save --step 1 w=my\\ fi"), "ckpt save --step 1 w=my\\ file.bin ", "DEST=PATH")
    expect_line(sh.complete("ckpt save --step 1 --from my\\ d"), "ckpt save --step 1 --from my\\ dir/", "--from DIR")
    r = sh.complete("ckpt save --step 1 my")
    expect_offered(r, ["my\\ file.bin", "my\\ dir"], "both names, each one word (quoted as zsh inserts them)")
    (c.home / "a b.bin").write_bytes(b"x")
    expect_line(sh.complete("ckpt save --step 1 ~/a"), "ckpt save --step 1 ~/a\\ b.bin ", "~/ kept, space quoted")


@scenario
def zsh_1500_checkpoints_no_process_per_checkpoint(c):
    """A TAB over 1,500 checkpoints offers every one (each a match) and starts no more processes than a
    TAB over 3, at most 2 (zsh under strace). The time in the completion widget is printed, not
    checked."""
    small, big = c.small_and_big_roots()
    trace = c.tmp / "zsh.trace"
    sh = c.zsh(timed=True, trace=trace)
    tabs = traced_tabs(sh, small, big)
    sh.exit()
    started = started_per_tab(trace, sh.io / "begin", sh.io / "line")
    expect_eq(len(started), len(tabs), f"TABs found in the strace log {trace}")
    check_no_process_per_checkpoint("zsh", trace, started[1], started[2:], started[0])
    for r, n in zip(tabs[1:], (SMALL, BIG)):
        check(r.func is not None, f"the timed widget did not run\n{r.describe()}")
        expect_eq(r.extra["count"], n + 3, f"matches over {n}")
        expect_offered(r, MARKERS + steps(*range(1, n + 1)), f"over {n}: every checkpoint", exact=True)
    show_tab_time("zsh", tabs[2].func, "in the completion widget")


# --------------------------------------------------------------------------
# fish


@scenario
def fish_commands_and_options(c):
    """Commands, global options with -h, a command's options, option values, --root=DIR."""
    (c.tmp / "a dir" / "sub").mkdir(parents=True)
    (c.tmp / "a file").write_bytes(b"")
    got = fish_complete(c, "ckpt ", "ckpt -", "ckpt info --", "ckpt save --", "ckpt prune -", "ckpt --progress ",
                        "ckpt --progress=", "ckpt save --mode ", "ckpt info --sort ", "ckpt help ", "ckpt -C a\\ d",
                        "ckpt --root=a\\ d", "ckpt load latest --to a\\ dir/s", "ckpt info -")
    expect_candidates(got[0], COMMANDS, "ckpt TAB: the commands", exact=True)
    expect_candidates(got[1], ["-C", "-q", "-h", "-V"], "global short options")
    expect_candidates(got[2], GLOBAL_LONG + ["--path", "--limit", "--sort"], "info's options and the global ones",
                      absent=["--version", "--step"])
    expect_candidates(got[3], ["--step", "--from", "--metric", "--mode", "--checksum", "--shard",
                               "--pending-expiry", "--no-dedup", "--root"], "save's options")
    expect_candidates(got[4], ["-n", "--dry-run", "--keep-last", "--pending-expiry"], "prune")
    expect_candidates(got[5], ["auto", "always", "never", "json"], "--progress", exact=True)
    expect_candidates(got[6], ["--progress=auto", "--progress=json"], "--progress=")
    expect_candidates(got[7], ["min", "max"], "--mode", exact=True)
    expect_candidates(got[8], ["step", "commit"], "--sort", exact=True)
    expect_candidates(got[9], COMMANDS, "help COMMAND", exact=True)
    expect_candidates(got[10], ["a dir/"], "-C completes directories", exact=True)
    expect_candidates(got[11], ["--root=a dir/"], "--root=DIR", exact=True)
    expect_candidates(got[12], ["a dir/sub/"], "--to", exact=True)
    expect_candidates(got[13], ["-h", "--help"], "-h after the command", absent=["-V", "--version"])


@scenario
def fish_refs_from_the_root(c):
    """Checkpoints from -C DIR, --root DIR, --root=DIR, -CDIR (before or after the command), $CKPT_ROOT,
    ~/DIR and --root=~/DIR, in a root whose name has a space; pending steps for abort."""
    spaced, home_root, env_root, _ = sample_roots(c)
    s = esc(spaced)
    lines = [f"ckpt -C {s} info ", f"ckpt --root {s} verify ", f"ckpt --root={s} rm ", f"ckpt -C{s} load ",
             f"ckpt info -C {s} ", f"ckpt rm --root={s} -n ", f"ckpt -C '{spaced}' diff ",
             f"ckpt -C \"{spaced}\" rollback ", f"ckpt -q --json -C {s} --threads 2 promote-best "]
    got = fish_complete(c, *lines, "ckpt info ", "ckpt -C ~/runs/exp info ", "ckpt verify --root=~/runs/exp ",
                        f"ckpt -C {s} abort ", f"ckpt -C {s} info step-00000002", env={"CKPT_ROOT": str(env_root)})
    for typed, words in zip(lines, got):
        expect_candidates(words, ALL_SPACED, typed, exact=True)
    expect_candidates(got[len(lines)], MARKERS + steps(9), "$CKPT_ROOT", exact=True)
    expect_candidates(got[len(lines) + 1], MARKERS + steps(4, 5), "-C ~/DIR", exact=True)
    expect_candidates(got[len(lines) + 2], MARKERS + steps(4, 5), "--root=~/DIR", exact=True)
    expect_candidates(got[len(lines) + 3], steps(7), "abort: the pending steps", exact=True)
    expect_candidates(got[len(lines) + 4], steps(20), "a unique ref", exact=True)


@scenario
def fish_file_names_with_spaces(c):
    """save SOURCE completes a file name with a space as one candidate, and so do --from DIR and ~/."""
    _, _, _, work = sample_roots(c)
    (c.home / "a b.bin").write_bytes(b"x")
    got = fish_complete(c, "ckpt save --step 1 my\\ fi", "ckpt save --step 1 'my fi", "ckpt save --step 1 my",
                        "ckpt save --step 1 --from my\\ d", "ckpt save --step 1 ~/a", cwd=work)
    expect_candidates(got[0], ["my file.bin"], "a file name with a space", exact=True)
    expect_candidates(got[1], ["my file.bin"], "in quotes", exact=True)
    expect_candidates(got[2], ["my file.bin", "my dir/"], "both names, each one word", exact=True)
    expect_candidates(got[3], ["my dir/"], "--from DIR", exact=True)
    expect_candidates(got[4], ["~/a b.bin"], "~/", exact=True)


@scenario
def fish_1500_checkpoints_no_process_per_checkpoint(c):
    """complete -C over 1,500 checkpoints offers every one and starts no more processes than over 3, at
    most 2 (fish under strace; the old script started basename per checkpoint). The time is printed
    (measured inside fish), not checked."""
    small, big = c.small_and_big_roots()
    fish = need("fish")
    io = c.tmp / "fish-io"
    io.mkdir()
    trace = c.tmp / "fish.trace"
    # each complete -C between the markers, timed by fish's own `time` (on stderr): nothing else runs
    script = ("source $argv[1]; set -l io $argv[2]; for l in $argv[3..-1]; true > $io/begin; "
              "time begin; set -g out (complete -C $l); end; true > $io/end; "
              "echo '<<<>>>' (count $out); printf '%s\\n' $out; end")
    lines = [f"ckpt -C {esc(root)} info " for root in (small, small, big)]
    res = harness.execute([*strace_argv(trace), fish, "--no-config", "-c", script, COMPLETIONS / "ckpt.fish", io,
                           *lines], cwd=str(c.tmp), env=shell_env(c.home), timeout=300, code=0, what="fish",
                          limit=2000)
    started = started_per_tab(trace, io / "begin", io / "end")
    expect_eq(len(started), len(lines), f"complete -C calls found in the strace log {trace}", res)
    check_no_process_per_checkpoint("fish", trace, started[1], started[2:], started[0])
    blocks = [b.splitlines() for b in res.out.split("<<<>>> ")[1:]]
    expect_eq(len(blocks), len(lines), "answers", res)
    for block, n in zip(blocks[1:], (SMALL, BIG)):
        words = sorted({w.split("\t")[0] for w in block[1:]})
        expect_eq(int(block[0]), n + 3, f"how many are offered over {n}", res)
        expect_candidates(words, MARKERS + steps(*range(1, n + 1)), f"over {n}: every checkpoint", exact=True)
    times = fish_times(res.err)
    expect_eq(len(times), len(lines), "times from fish's time", res)
    show_tab_time("fish", times[2], "in complete -C, by fish's time")


# --------------------------------------------------------------------------
# cmake --install


def build_dir():
    """The build directory of $CKPT_BIN (BUILD/apps/ckpt/ckpt)."""
    d = pathlib.Path(harness.BIN).resolve().parent.parent.parent
    check((d / "cmake_install.cmake").is_file(), f"{d} is not the build directory of {harness.BIN}: "
                                                 "no cmake_install.cmake")
    return d


def bash_completion_dirs(c):
    """The directories bash-completion's loader tries for a command, in a default environment."""
    res = harness.execute(["bash", "--norc", "-c", f"source {BASH_COMPLETION}; set -x; "
                           "__load_completion ckpt-no-such-command-e2e"], cwd=str(c.tmp), env=shell_env(c.home),
                          timeout=60)
    dirs = re.findall(r"^\++ \[\[ -d (.*) \]\]$", res.err, re.M)
    check(dirs, "no directory found in the trace of __load_completion", res)
    return dirs


@scenario
def install_where_the_shells_look(c):
    """cmake --install (into a DESTDIR) with --prefix /usr/local and /usr puts each completion in a directory
    its shell searches for that prefix in a default environment (no XDG_DATA_DIRS, a fresh HOME; as
    the shell reports its path), and the shell's own loader, pointed at the DESTDIR copy of that
    directory, loads it and completes ckpt's commands."""
    for sh in ("bash", "zsh", "fish"):
        need(sh)
    cmake = shutil.which("cmake")
    check(cmake is not None, "cmake is not installed")
    build = build_dir()
    zsh_fpath = harness.execute(["zsh", "-fc", "print -rl -- $fpath"], cwd=str(c.tmp), env=shell_env(c.home),
                                timeout=60, code=0).lines()
    fish_path = harness.execute(["fish", "-c", "printf '%s\\n' $fish_complete_path"], cwd=str(c.tmp),
                                env=shell_env(c.home), timeout=60, code=0).lines()
    bash_dirs = bash_completion_dirs(c)
    for prefix in ("/usr/local", "/usr"):
        dest = c.tmp / ("destdir" + prefix.replace("/", "-"))
        res = harness.execute([cmake, "--install", build, "--prefix", prefix], cwd=str(c.tmp),
                              env=harness.child_env({"DESTDIR": str(dest)}), timeout=300, code=0,
                              what="cmake --install")
        files = {"/" + p.relative_to(dest).as_posix(): p for p in dest.rglob("*") if p.is_file()}
        found = {}
        for key, fname in (("bash", "ckpt"), ("zsh", "_ckpt"), ("fish", "ckpt.fish")):
            hits = [f for f in files if f.endswith("/" + fname) and "/man" not in f and "/bin/" not in f]
            check(len(hits) == 1, f"--prefix {prefix}: {key}: expected one {fname} installed, got {hits}", res)
            found[key] = hits[0]
        where = f"--prefix {prefix}: "
        zdir = os.path.dirname(found["zsh"])
        check(zdir in zsh_fpath, where + f"_ckpt went to {zdir}, not on zsh's $fpath:\n  " + "\n  ".join(zsh_fpath))
        fdir = os.path.dirname(found["fish"])
        check(fdir in fish_path, where + f"ckpt.fish went to {fdir}, not on fish's $fish_complete_path "
              "(XDG_DATA_DIRS unset):\n  " + "\n  ".join(fish_path))
        bdir = os.path.dirname(found["bash"])
        check(bdir in bash_dirs, where + f"ckpt went to {bdir}, where bash-completion does not look:\n  "
              + "\n  ".join(bash_dirs))
        expect_eq(found["bash"].rsplit("/", 1)[1], "ckpt", "bash-completion loads the file named as the command")

        # each shell's own loader, its search path with that directory moved into DESTDIR
        staged = lambda d: str(dest) + d  # noqa: E731
        fpath = " ".join(shlex.quote(staged(d) if d == zdir else d) for d in zsh_fpath)
        res = harness.execute(["zsh", "-fc", f"fpath=({fpath}); autoload -Uz compinit; compinit -u -D; "
                               "autoload +X _ckpt; print -r -- $_comps[ckpt]; print -r -- $functions_source[_ckpt]"],
                              cwd=str(c.tmp), env=shell_env(c.home), timeout=60, code=0)
        expect_eq(res.lines(), ["_ckpt", staged(found["zsh"])], where + "zsh's compinit: ckpt -> _ckpt, from", res)
        res = harness.execute(["fish", "-c", "set fish_complete_path $argv; complete -C 'ckpt '",
                               *[staged(d) if d == fdir else d for d in fish_path]],
                              cwd=str(c.tmp), env=shell_env(c.home), timeout=60, code=0)
        expect_candidates([w.split("\t")[0] for w in res.lines()], COMMANDS, where + "fish autoloads ckpt.fish",
                          exact=True)
        share = bdir.rsplit("/bash-completion/completions", 1)[0]
        xdg = ":".join(staged(d) if d == share else d for d in ("/usr/local/share", "/usr/share"))
        res = harness.execute(["bash", "--norc", "-c", f"source {BASH_COMPLETION}; __load_completion ckpt; "
                               "complete -p ckpt; shopt -s extdebug; declare -F _ckpt; COMP_WORDS=(ckpt pr); "
                               "COMP_CWORD=1; _ckpt; printf '%s\\n' \"${COMPREPLY[@]}\""],
                              cwd=str(c.tmp), env=shell_env(c.home, {"XDG_DATA_DIRS": xdg}), timeout=60, code=0)
        lines = res.lines()
        check(len(lines) == 4, where + "bash-completion: complete -p, declare -F and two words expected", res)
        expect_eq(lines[0], "complete -F _ckpt ckpt", where + "bash-completion registers _ckpt for ckpt", res)
        check(lines[1].startswith("_ckpt ") and lines[1].endswith(" " + staged(found["bash"])),
              where + f"_ckpt must come from {staged(found['bash'])}", res)
        expect_eq(sorted(lines[2:]), ["promote-best", "prune"], where + "and completes with it", res)


if __name__ == "__main__":
    sys.exit(harness.main(sys.argv, __doc__, SCENARIOS, Ctx, "ckpt-e2e-completions"))
