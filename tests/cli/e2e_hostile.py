#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Hostile-input end-to-end tests for `ckpt` (SPEC.md §1, §2, §3, §4, §5,
§6, §7, §8): hand-made malicious roots, read-only roots and directories that
are not roots.

The rule for every case: a clear error (a documented exit code, never a
crash, never a hang) or a reported problem, AND nothing read or written
outside the root. A sentinel tree outside the root (TMP/outside, TMP/elsewhere,
TMP/src) is snapshotted (path, kind, mode, size, sha256, link target; never
following links) and must be byte-identical after every command; a reader
(info, verify without --repair, load) must not change the root either; and
the content marker of TMP/outside/secret must never appear in any output.

Only the Python standard library is used; this file does not import e2e.py
(edited independently), so its scenario list is only its own.

    python3 tests/cli/e2e_hostile.py --list          one scenario name per line
    python3 tests/cli/e2e_hostile.py NAME [NAME...]  run scenarios; exit 0 when all pass
    python3 tests/cli/e2e_hostile.py --all           run every scenario

The binary comes from $CKPT_BIN, else ../../build/release/apps/ckpt/ckpt
relative to this file. Every scenario runs in a fresh temporary directory
/tmp/ckpt-hostile-NAME-* that is removed on success and kept (its path
printed) on failure; set CKPT_E2E_KEEP=1 to keep it on success too.

readonly_root needs root (a read-only bind mount); it fails, with a clear
message, when mounting is impossible.
"""

import hashlib
import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import BIN, Fail, check, expect_eq, load_json, name, sha256_file  # noqa: E402

DEFAULT_TIMEOUT = 15
FAST = 10.0  # seconds: the budget of one command on a huge or deeply nested file
DOCUMENTED = {0, 1, 2, 3, 4, 5, 6, 7}
CRASH_WORDS = ("Segmentation", "AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
               "runtime error:", "terminate called", "Aborted", "core dumped", "stack overflow",
               "std::bad_alloc", "what():")
BIG = 200 * 1024 * 1024

SCENARIOS, scenario = harness.registry()


# --------------------------------------------------------------------------
# filesystem helpers


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def write_json(path, doc):
    pathlib.Path(path).write_text(json.dumps(doc, indent=2) + "\n")


def write_sums(ckpt_dir, files):
    """SHA256SUMS consistent with a files list (entries that are not dicts with str path/sha256 are skipped)."""
    lines = []
    for e in files:
        if isinstance(e, dict) and isinstance(e.get("path"), str) and isinstance(e.get("sha256"), str):
            lines.append(f"{e['sha256']}  {e['path']}\n")
    pathlib.Path(ckpt_dir, "SHA256SUMS").write_bytes("".join(lines).encode("utf-8", "surrogateescape"))


def make_sparse(path, head, size=BIG):
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)


def deep_json(depth, close=True):
    return "[" * depth + ("]" * depth if close else "")


def inside(path, root):
    """True when the absolute path resolves (without needing to exist) strictly inside root."""
    rp = os.path.realpath(path)
    rr = os.path.realpath(root)
    return rp.startswith(rr + os.sep)


def rm_any(p):
    p = pathlib.Path(p)
    if p.is_symlink() or p.is_file() or (p.exists() and not p.is_dir()):
        p.unlink()
    elif p.is_dir():
        shutil.rmtree(p)


# --------------------------------------------------------------------------
# per-scenario context


class Ctx(harness.BaseCtx):
    earlier_title = "earlier failed cases"

    def __init__(self, tmp):
        super().__init__(tmp)
        self.hung = False
        self.case_label = ""
        self.cases = 0
        self.commands = 0
        self._hash_cache = {}
        self.never_walk = set()  # mount points: their content is the source's
        self.timeout = DEFAULT_TIMEOUT  # lowered where a hang is the expected failure mode (FIFOs)
        # the sentinel tree outside every root
        self.outside = self.tmp / "outside"
        self.elsewhere = self.tmp / "elsewhere"
        self.src = self.tmp / "src"
        self.marker = "HOSTILE-SECRET-" + os.urandom(8).hex()
        self.secret = self.outside / "secret"
        self.outside.mkdir()
        self.secret_bytes = (self.marker + "\n").encode()
        self.secret.write_bytes(self.secret_bytes)
        (self.outside / "sub").mkdir()
        (self.outside / "sub" / "victim.bin").write_bytes(os.urandom(300))
        (self.outside / "sub" / "notes.txt").write_text("outside notes " + self.marker + "\n")
        self.src.mkdir()
        (self.src / "optim").mkdir()
        self.model = self.src / "model.bin"
        self.model.write_bytes(os.urandom(1000))
        self.shard = self.src / "optim" / "shard-0.pt"
        self.shard.write_bytes(os.urandom(100))
        # a real-looking root outside: TMP/elsewhere with steps 1 and 9 (better val_loss)
        self.build(self.elsewhere, steps=(1, 9), values=(0.1, 0.05))
        # a copy of the optimizer shard outside (a symlinked optim/ would "verify")
        (self.outside / "optim-copy").mkdir()
        shutil.copyfile(self.shard, self.outside / "optim-copy" / "shard-0.pt")
        self.rebase()

    # -- the hooks of harness.run_one
    def failures_title(self):
        return f"{len(self.failures)} failure(s) in {self.cases} case(s)"

    def pass_details(self, seconds):
        return f"{self.cases} cases, {self.commands} commands, {seconds:.1f}s"

    # -- sub-cases
    def sub(self, label, fn, *args):
        """Run one independent case; a failure is recorded and the scenario goes on."""
        self.cases += 1
        self.hung = False
        self.case_label = label
        try:
            fn(*args)
        except Fail as e:
            self.failures.append(f"[{label}] {e}")
        except Exception:
            self.failures.append(f"[{label}] test error\n{traceback.format_exc()}")

    def part(self, label, fn, *args):
        """One group of checks inside a case: a failure is recorded and the case goes on with the next
        group (unless a command hung: the rest of the case is skipped to bound the runtime)."""
        if self.hung:
            return
        try:
            fn(*args)
        except Fail as e:
            self.failures.append(f"[{self.case_label} / {label}] {e}")

    # -- the sentinel snapshot
    def _entry(self, p):
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode):
            return ("link", os.readlink(p))
        if stat.S_ISDIR(st.st_mode):
            return ("dir", stat.S_IMODE(st.st_mode))
        if stat.S_ISREG(st.st_mode):
            key = (str(p), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            h = self._hash_cache.get(key)
            if h is None:
                h = sha256_file(p)
                self._hash_cache[key] = h
            return ("file", stat.S_IMODE(st.st_mode), st.st_size, h)
        return ("special", stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode))

    def take(self):
        """{absolute path: entry} for everything under TMP, never following links."""
        out = {}
        for dirpath, dirnames, filenames in os.walk(self.tmp):
            keep = []
            for n in dirnames:
                p = os.path.join(dirpath, n)
                if p in self.never_walk:
                    continue
                keep.append(n)
            dirnames[:] = keep
            for n in keep + filenames:
                p = os.path.join(dirpath, n)
                try:
                    out[p] = self._entry(p)
                except FileNotFoundError:
                    pass
        return out

    def rebase(self):
        self.base = self.take()

    def guard(self, res, may_change):
        """Everything under TMP outside the may_change trees is exactly as before the command."""
        now = self.take()

        def free(p):
            return any(p == m or p.startswith(m + os.sep) for m in may_change)

        before = {p: e for p, e in self.base.items() if not free(p)}
        after = {p: e for p, e in now.items() if not free(p)}
        self.base = now
        if before != after:
            added = sorted(set(after) - set(before))
            removed = sorted(set(before) - set(after))
            changed = sorted(p for p in set(before) & set(after) if before[p] != after[p])
            lines = []
            for title, items in (("created", added), ("removed", removed), ("changed", changed)):
                for p in items[:12]:
                    lines.append(f"    {title}: {p}  {before.get(p)} -> {after.get(p)}")
                if len(items) > 12:
                    lines.append(f"    ... {len(items) - 12} more {title}")
            allowed = ", ".join(sorted(may_change)) or "nothing"
            raise Fail(f"the command changed the filesystem outside what it may change ({allowed}):\n"
                       + "\n".join(lines) + "\n" + res.describe())

    # -- running the binary
    def raw(self, cmd, cwd=None, timeout=None):
        timeout = timeout or self.timeout
        self.commands += 1
        try:
            return harness.execute(cmd, cwd=str(cwd or self.tmp), env=harness.child_env(), timeout=timeout, input=None,
                                   timed=True, limit=4000, hang="command hung: did not finish")
        except harness.Timeout:
            self.hung = True
            raise

    def run(self, root, *args, codes=None, may_change=(), what="", timeout=None, json_out=False,
            budget=None, cwd=None):
        """Run `ckpt -C ROOT ARGS`; check: no crash, a documented exit code, no secret in the output,
        nothing changed outside ROOT (outside ROOT and may_change for commands that change the root;
        only may_change for readers), and the exit code in `codes` when given."""
        args = [str(a) for a in args]
        cmd = [BIN, "--lock-timeout", "5", "-C", str(root)] + (["--json"] if json_out else []) + args
        res = self.raw(cmd, cwd=cwd, timeout=timeout)
        label = f"{what}: " if what else ""
        check(isinstance(res.rc, int) and res.rc >= 0, f"{label}killed by signal {-res.rc if isinstance(res.rc, int) else res.rc} (a crash)", res)
        check(res.rc < 128, f"{label}exit code {res.rc} >= 128 (a crash)", res)
        for w in CRASH_WORDS:
            check(w not in res.err and w not in res.out, f"{label}crash report {w!r} in the output", res)
        check(res.rc in DOCUMENTED, f"{label}exit code {res.rc} is not a documented one (0-7)", res)
        check(self.marker not in res.out and self.marker not in res.err,
              f"{label}the content of a file outside the root ({self.secret}) appears in the output", res)
        if res.rc != 0:
            check(res.out.strip() != "" or res.err.strip() != "", f"{label}failed (exit {res.rc}) without a message", res)
        if res.rc in (2, 3, 4, 5, 6, 7):
            check(res.err.strip() != "", f"{label}exit {res.rc} with nothing on stderr", res)
        if budget is not None:
            check(res.elapsed < budget, f"{label}took {res.elapsed:.1f}s (budget {budget}s)", res)
        command = next((a for a in args if not a.startswith("-")), "")
        reader = command in ("info", "load") or (command == "verify" and "--repair" not in args)
        free = {str(p) for p in may_change}
        if not reader:
            free.add(os.path.abspath(str(root)))
        self.guard(res, free)
        if codes is not None:
            codes_set = {codes} if isinstance(codes, int) else set(codes)
            check(res.rc in codes_set, f"{label}expected exit code {' or '.join(map(str, sorted(codes_set)))}, got {res.rc}", res)
        return res

    # -- making roots
    def build(self, root, steps=(1, 2), values=(1.0, 0.5)):
        root = pathlib.Path(root)
        for s, v in zip(steps, values):
            cmd = [BIN, "--no-fsync", "-C", str(root), "save", "--step", str(s), str(self.model), str(self.src / "optim"),
                   "--metric", f"val_loss={v}", "--best-key", "val_loss"]
            res = self.raw(cmd)
            check(res.rc == 0, f"setup: save of a real checkpoint failed (exit {res.rc})", res)
        return root

    def root(self, label, steps=(1, 2), values=(1.0, 0.5)):
        r = self.build(self.tmp / f"r-{label}", steps, values)
        return r

    def done_setup(self):
        self.rebase()

    # -- checks on outputs
    def no_outside_path(self, res, root, what=""):
        """stdout names no path outside ROOT (of TMP/outside, TMP/elsewhere, or a resolved one). A --json
        result's "warnings" are left out: they are the warnings of stderr (which may quote a hostile marker)."""
        out = res.out
        try:
            doc = json.loads(out)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and "warnings" in doc:
            out = json.dumps({k: v for k, v in doc.items() if k != "warnings"}, ensure_ascii=False)
        for bad in (str(self.outside), str(self.elsewhere), os.path.realpath(self.outside), os.path.realpath(self.elsewhere)):
            check(bad not in out, f"{what}: stdout names a path outside the root ({bad})", res)

    def path_inside(self, res, root, what=""):
        """`info REF --path` that succeeded printed one absolute path of a checkpoint directory in ROOT."""
        p = res.out.strip()
        check("\n" not in p and os.path.isabs(p), f"{what}: --path must print one absolute path", res)
        check(inside(p, root), f"{what}: --path printed {p!r}, which resolves to {os.path.realpath(p)!r}, "
              f"outside the root {root}", res)
        check(os.path.dirname(os.path.realpath(p)) == os.path.realpath(root),
              f"{what}: --path printed {p!r}, not a checkpoint directory directly in the root", res)
        return p

    def load_paths_inside(self, res, root, what=""):
        for line in res.out.splitlines():
            if line.strip() == "":
                continue
            check(os.path.isabs(line), f"{what}: load printed a line that is not an absolute path: {line!r}", res)
            check(inside(line, root), f"{what}: load printed {line!r}, which resolves to {os.path.realpath(line)!r}, "
                  f"outside the root {root}", res)
            check(not os.path.islink(line), f"{what}: load printed {line!r}, which is a symbolic link", res)

    def outside_inodes(self):
        out = {}
        for top in (self.outside, self.elsewhere, self.src):
            for dirpath, _dirs, filenames in os.walk(top):
                for n in filenames:
                    p = os.path.join(dirpath, n)
                    st = os.lstat(p)
                    if stat.S_ISREG(st.st_mode):
                        out[(st.st_dev, st.st_ino)] = p
        return out

    def no_secret_under(self, d, what=""):
        """What load --to wrote: regular files, none with the secret, none a hard link to a file outside the root."""
        d = pathlib.Path(d)
        if not d.exists():
            return
        foreign = self.outside_inodes()
        for dirpath, dirnames, filenames in os.walk(d):
            for n in dirnames + filenames:
                p = os.path.join(dirpath, n)
                check(not os.path.islink(p), f"{what}: {p} is a symbolic link (load --to must write regular files)")
                st = os.lstat(p)
                if stat.S_ISREG(st.st_mode):
                    data = pathlib.Path(p).read_bytes()
                    check(self.marker.encode() not in data, f"{what}: {p} holds the content of {self.secret}")
                    twin = foreign.get((st.st_dev, st.st_ino))
                    check(twin is None, f"{what}: load --to made {p} a hard link to {twin}, a file outside the root "
                          f"(writing to the loaded file would change it)")


def verify_json(c, root, *args, what="verify", codes=1, **kw):
    res = c.run(root, "verify", *args, codes=codes, json_out=True, what=what, **kw)
    return res, res.json()


def ckpt_problems(doc, nm):
    for cp in doc.get("checkpoints", []):
        if cp.get("name") == nm:
            return cp.get("problems", [])
    return None


def failing(problems):
    return [p for p in problems or [] if p.get("severity", "failure") == "failure"]


def marker_kinds(doc):
    return [p.get("kind") for p in (doc.get("markers") or {}).get("problems", [])]


def expect_ckpt_problem(c, root, nm, kinds, res, doc, what):
    """verify reported a failing problem in checkpoint nm (of a kind in kinds, when given), or
    listed nothing for it while failing overall (a step directory that is no checkpoint)."""
    probs = ckpt_problems(doc, nm)
    check(doc.get("ok") is False, f"{what}: verify JSON ok must be false", res)
    check(probs is not None, f"{what}: verify must report {nm} (it is listed in last/best.json or a step directory)", res)
    bad = failing(probs)
    check(bad, f"{what}: verify reported no failing problem for {nm}", res)
    if kinds:
        check(any(p.get("kind") in kinds for p in bad),
              f"{what}: verify problem kinds for {nm} are {[p.get('kind') for p in bad]}, expected one of {sorted(kinds)}", res)


# --------------------------------------------------------------------------
# hand-made malicious manifests


def tamper_manifest(root, step, edit, sums=True):
    d = pathlib.Path(root) / name(step)
    m = load_json(d / "_checkpoint.json")
    edit(m)
    (d / "_checkpoint.json").write_text(json.dumps(m, indent=2, ensure_ascii=True) + "\n")
    if sums and isinstance(m.get("files"), list):
        write_sums(d, m["files"])
    return m


def entry_for(m, path):
    for e in m["files"]:
        if e["path"] == path:
            return e
    raise KeyError(path)


def reader_checks(c, root, step, verify_kinds, what, info_codes=(1,), load_codes=(1,), quick_codes=(1,)):
    """The readers on a root whose checkpoint `step` (the latest, the best) is malicious."""
    load_ok = 0 in load_codes
    nm = name(step)
    out = c.tmp / "out"

    def info():
        res = c.run(root, "info", step, codes=info_codes, what=f"{what}: info {step}")
        c.no_outside_path(res, root, what)
        res = c.run(root, "info", step, "--json", codes=info_codes, what=f"{what}: info {step} --json")
        c.no_outside_path(res, root, what)
        res = c.run(root, "info", step, "--path", what=f"{what}: info {step} --path")
        if res.rc == 0:
            c.path_inside(res, root, what)
        res = c.run(root, "info", "latest", "--path", what=f"{what}: info latest --path")
        if res.rc == 0:
            c.path_inside(res, root, what)
        c.run(root, "info", what=f"{what}: info (table)", codes=(0, 1))
        c.run(root, "info", "--json", what=f"{what}: info --json (table)", codes=(0, 1))

    def verify():
        res, doc = verify_json(c, root, what=f"{what}: verify")
        expect_ckpt_problem(c, root, nm, verify_kinds, res, doc, what)
        res, doc = verify_json(c, root, nm, what=f"{what}: verify {nm}")
        expect_ckpt_problem(c, root, nm, verify_kinds, res, doc, what + f" (verify {nm})")
        c.run(root, "verify", "--quick", codes=quick_codes, what=f"{what}: verify --quick")

    def load(extra):
        codes = ((0, 1, 3) if load_ok else (1, 3)) if extra == ("--weights-only",) else load_codes
        res = c.run(root, "load", step, *extra, what=f"{what}: load {step} {' '.join(extra)}")
        c.no_outside_path(res, root, what)
        c.load_paths_inside(res, root, what)
        check(res.rc in codes, f"{what}: load {step} {' '.join(extra)}: expected exit code "
              f"{' or '.join(map(str, codes))}, got {res.rc}", res)

    def load_to(extra):
        codes = ((0, 1, 3) if load_ok else (1, 3)) if extra == ("--weights-only",) else load_codes
        try:
            res = c.run(root, "load", step, *extra, "--to", out, may_change=[out],
                        what=f"{what}: load {step} {' '.join(extra)} --to out")
            c.no_outside_path(res, root, what)
            c.no_secret_under(out, f"{what}: load {step} {' '.join(extra)} --to out")
            check(res.rc in codes, f"{what}: load {step} {' '.join(extra)} --to out: expected exit code "
                  f"{' or '.join(map(str, codes))}, got {res.rc}", res)
        finally:
            if out.exists() or out.is_symlink():
                rm_any(out)
            c.rebase()

    def load_latest():
        res = c.run(root, "load", "latest", codes=load_codes, what=f"{what}: load latest")
        c.no_outside_path(res, root, what)

    c.part("info", info)
    c.part("verify", verify)
    for extra in ((), ("--no-verify",), ("--weights-only",)):
        c.part("load " + " ".join(extra), load, extra)
        c.part("load --to " + " ".join(extra), load_to, extra)
    c.part("load latest", load_latest)


def writer_checks(c, root, what, save_step=3):
    """The commands that change a root: nothing outside it may change (checked by run)."""
    c.run(root, "verify", "--repair", codes=(0, 1), what=f"{what}: verify --repair")
    c.run(root, "promote-best", codes=(0, 1, 2, 3), what=f"{what}: promote-best")
    c.run(root, "promote-best", "--key", "val_loss", "--mode", "min", "--force", codes=(0, 1, 2, 3),
          what=f"{what}: promote-best --force")
    c.run(root, "save", "--step", save_step, c.model, codes=(0, 1), what=f"{what}: save --step {save_step}")
    c.run(root, "prune", "--keep-last", "1", codes=(0, 1, 2), what=f"{what}: prune --keep-last 1")
    c.run(root, "prune", codes=(0, 1, 2), what=f"{what}: prune (policy.json)")


@scenario
def hostile_manifest_paths(c):
    def case(label, stored, target_bytes=None, make=None):
        """Replace model.bin of step 2 in the manifest (and SHA256SUMS) by `stored`, with the digest of
        the secret (or of target_bytes), so that a check that only compares digests would pass."""
        def body():
            root = c.root(label)
            d = root / name(2)
            data = c.secret_bytes if target_bytes is None else target_bytes

            def edit(m):
                e = entry_for(m, "model.bin")
                e["path"] = stored
                e["size"] = len(data)
                e["sha256"] = sha256_bytes(data)
                m["files"].sort(key=lambda x: x["path"].encode("utf-8", "surrogatepass"))
                m["weights"] = [stored]
                m["total_size"] = sum(x["size"] for x in m["files"])
            tamper_manifest(root, 2, edit)
            if make:
                make(d)
            c.done_setup()
            reader_checks(c, root, 2, {"metadata"}, label)
            c.part("writers", writer_checks, c, root, label)
            check(c.secret.read_bytes() == c.secret_bytes, f"{label}: the secret changed")
        c.sub(label, body)

    case("dotdot", "../../outside/secret")
    case("dotdot-deep", "optim/../../../outside/secret")
    case("absolute", str(c.secret))
    case("absolute-etc", "/etc/hostname", target_bytes=pathlib.Path("/etc/hostname").read_bytes()
         if os.path.isfile("/etc/hostname") else b"x")

    def mk(stored_name):
        def make(d):
            p = d / stored_name
            p.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(c.model, p)
        return make
    # the file exists under its odd name with the right digest: only path validation can refuse it
    case("newline", "model\n.bin", target_bytes=c.model.read_bytes(), make=mk("model\n.bin"))
    case("backslash", "optim\\model.bin", target_bytes=c.model.read_bytes(), make=mk("optim\\model.bin"))
    case("backslash-escape", "..\\..\\outside\\secret")
    case("nul", "model.bin\u0000.evil", target_bytes=c.model.read_bytes())
    case("empty", "", target_bytes=b"")
    case("dot-segment", "./model.bin", target_bytes=c.model.read_bytes())
    case("empty-segment", "optim//model.bin", target_bytes=c.model.read_bytes(), make=mk("optim/model.bin"))
    case("trailing-slash", "optim/", target_bytes=b"")
    case("dotdot-inside", "optim/../model.bin", target_bytes=c.model.read_bytes())

    # a name field that tries to point elsewhere: the directory is what counts
    def hostile_name():
        root = c.root("name-field")
        tamper_manifest(root, 2, lambda m: m.__setitem__("name", "../elsewhere/" + name(1)))
        c.done_setup()
        for args in (("info", "2", "--path"), ("info", "latest", "--path"), ("info", "best", "--path")):
            res = c.run(root, *args, codes=(0, 1), what="name-field: " + " ".join(args))
            if res.rc == 0:
                c.path_inside(res, root, "name-field")
        for ref in ("2", "latest"):
            res = c.run(root, "load", ref, codes=(0, 1), what=f"name-field: load {ref}")
            c.load_paths_inside(res, root, "name-field")
            res = c.run(root, "load", ref, "--json", codes=(0, 1), what=f"name-field: load {ref} --json")
            c.no_outside_path(res, root, "name-field")
        res = c.run(root, "verify", codes=(0, 1), what="name-field: verify")
        writer_checks(c, root, "name-field")
    c.sub("name-field", hostile_name)

    # the weights list names a path that is not stored
    def hostile_weights():
        root = c.root("weights")
        tamper_manifest(root, 2, lambda m: m.__setitem__("weights", ["../../outside/secret"]))
        c.done_setup()
        res = c.run(root, "load", "2", "--weights-only", codes=(1, 3), what="weights: load --weights-only")
        c.no_outside_path(res, root, "weights")
        res = c.run(root, "load", "2", "--weights-only", "--to", c.tmp / "out", codes=(1, 3), may_change=[c.tmp / "out"],
                    what="weights: load --weights-only --to out")
        c.no_secret_under(c.tmp / "out", "weights")
        res, doc = verify_json(c, root, name(2), what="weights: verify")
        expect_ckpt_problem(c, root, name(2), {"metadata"}, res, doc, "weights")
        rm_any(c.tmp / "out") if (c.tmp / "out").exists() else None
        c.rebase()
    c.sub("weights-outside", hostile_weights)


# --------------------------------------------------------------------------
# symbolic links, FIFOs and directories inside a checkpoint


@scenario
def hostile_symlink_in_checkpoint(c):
    secret_sha = sha256_bytes(c.secret_bytes)

    def as_secret(m, path="model.bin"):
        e = entry_for(m, path)
        e["size"] = len(c.secret_bytes)
        e["sha256"] = secret_sha
        m["total_size"] = sum(x["size"] for x in m["files"])

    def case(label, make, kinds, edit=None, quick_kinds=None, info_codes=(0,), load_codes=(1,), hang=False,
             quick_codes=(1,)):
        """info reads only the metadata: exit 0 unless the metadata itself is hostile; load verifies
        the files against _checkpoint.json (SHA256SUMS is verify's business)."""
        def body():
            root = c.root(label)
            d = root / name(2)
            if edit:
                tamper_manifest(root, 2, edit)
            make(d)
            c.done_setup()
            c.timeout = 3 if hang else DEFAULT_TIMEOUT
            try:
                reader_checks(c, root, 2, kinds, label, info_codes=info_codes, load_codes=load_codes,
                              quick_codes=quick_codes)

                def quick():
                    res, doc = verify_json(c, root, "--quick", codes=quick_codes, what=f"{label}: verify --quick")
                    if res.rc == 1:
                        expect_ckpt_problem(c, root, name(2), quick_kinds or kinds, res, doc, label + " (--quick)")
                c.part("verify --quick", quick)
                c.part("writers", writer_checks, c, root, label)
            finally:
                c.timeout = DEFAULT_TIMEOUT
            check(c.secret.read_bytes() == c.secret_bytes, f"{label}: the secret changed")
        c.sub(label, body)

    def link_model(target):
        def make(d):
            (d / "model.bin").unlink()
            os.symlink(target, d / "model.bin")
        return make

    # the digest of the secret is recorded: a check that follows the link would pass
    case("file-symlink-abs", link_model(str(c.secret)), {"not_regular"}, edit=as_secret)
    case("file-symlink-rel", link_model("../../outside/secret"), {"not_regular"}, edit=as_secret)

    def link_optim(d):
        shutil.rmtree(d / "optim")
        os.symlink(str(c.outside / "optim-copy"), d / "optim")
    # an intermediate directory is a link to an identical copy outside: lstat of the file passes
    case("dir-symlink", link_optim, {"not_regular", "missing"})

    def link_meta(d):
        fake = c.outside / "fake-manifest.json"
        if not fake.exists():
            shutil.copyfile(d / "_checkpoint.json", fake)
        (d / "_checkpoint.json").unlink()
        os.symlink(str(fake), d / "_checkpoint.json")
    # reading _checkpoint.json through a link reads outside the root
    case("manifest-symlink", link_meta, {"metadata", "not_regular"}, info_codes=(1,))

    def link_sums(d):
        fake = c.outside / "fake-SHA256SUMS"
        if not fake.exists():
            shutil.copyfile(d / "SHA256SUMS", fake)
        (d / "SHA256SUMS").unlink()
        os.symlink(str(fake), d / "SHA256SUMS")
    # (--quick checks presence and sizes of the listed files: it may or may not look at SHA256SUMS)
    case("sums-symlink", link_sums, {"metadata", "not_regular", "sums_mismatch"}, load_codes=(0, 1), quick_codes=(0, 1))

    def fifo(d):
        (d / "model.bin").unlink()
        os.mkfifo(d / "model.bin")
    case("fifo", fifo, {"not_regular"}, hang=True)

    def fifo_manifest(d):
        (d / "_checkpoint.json").unlink()
        os.mkfifo(d / "_checkpoint.json")
    case("fifo-manifest", fifo_manifest, {"metadata", "not_regular"}, info_codes=(1,), hang=True)

    def fifo_sums(d):
        (d / "SHA256SUMS").unlink()
        os.mkfifo(d / "SHA256SUMS")
    case("fifo-sums", fifo_sums, {"metadata", "not_regular", "sums_mismatch"}, load_codes=(0, 1), hang=True,
         quick_codes=(0, 1))

    def dir_model(d):
        (d / "model.bin").unlink()
        (d / "model.bin").mkdir()
        (d / "model.bin" / "x").write_bytes(b"x")
    case("dir-instead-of-file", dir_model, {"not_regular"})

    # an old checkpoint full of links to outside: prune and a forced replace delete it without following
    def prune_links():
        root = c.root("prune-links", steps=(1, 2, 3), values=(3.0, 2.0, 1.0))
        d = root / name(1)
        (d / "model.bin").unlink()
        os.symlink(str(c.secret), d / "model.bin")
        shutil.rmtree(d / "optim")
        os.symlink(str(c.outside / "sub"), d / "optim")
        os.symlink(str(c.outside), d / "outside-link")
        os.symlink("../../outside", d / "outside-rel")
        d2 = root / name(2)
        os.symlink(str(c.outside), d2 / "outside-link")
        c.done_setup()
        c.run(root, "save", "--step", "2", "--force", c.model, codes=(0, 1, 2), what="prune-links: save --step 2 --force")
        c.run(root, "prune", "--keep-last", "1", codes=(0, 1, 2), what="prune-links: prune --keep-last 1")
        c.run(root, "prune", "--keep-last", "1", codes=(0, 1, 2), what="prune-links: prune --keep-last 1 (again)")
        check(c.secret.read_bytes() == c.secret_bytes, "prune-links: the secret changed")
        check((c.outside / "sub" / "victim.bin").exists(), "prune-links: prune deleted through a link")
    c.sub("prune-through-links", prune_links)


# --------------------------------------------------------------------------
# a checkpoint directory that is a link to a checkpoint outside


@scenario
def hostile_step_dir_symlink(c):
    target = c.elsewhere / name(9)

    def body(label, how, marker_edit=None):
        root = c.root(label)
        link = root / name(9)
        os.symlink(str(target) if how == "abs" else f"../elsewhere/{name(9)}", link)
        if marker_edit:
            marker_edit(root)
        c.done_setup()
        res = c.run(root, "info", "--json", codes=(0, 1), what=f"{label}: info --json")
        names = [cp.get("name") for cp in res.json().get("checkpoints", [])] if res.rc == 0 else []
        check(name(9) not in names, f"{label}: info lists the linked {name(9)} as a checkpoint", res)
        c.no_outside_path(res, root, label)
        res = c.run(root, "info", codes=(0, 1), what=f"{label}: info")
        c.no_outside_path(res, root, label)
        for ref in ("9", name(9), str(link)):
            res = c.run(root, "info", ref, codes=(2, 3), what=f"{label}: info {ref}")
            c.no_outside_path(res, root, label)
            res = c.run(root, "info", ref, "--path", codes=(2, 3), what=f"{label}: info {ref} --path")
            c.no_outside_path(res, root, label)
            res = c.run(root, "load", ref, codes=(2, 3), what=f"{label}: load {ref}")
            c.no_outside_path(res, root, label)
            res = c.run(root, "verify", ref, codes=(1, 2, 3), what=f"{label}: verify {ref}")
            check(f"{name(9)}/model.bin: OK" not in res.out, f"{label}: verify followed the link", res)
        res = c.run(root, "verify", "-v", codes=(0, 1), what=f"{label}: verify -v")
        check(f"{name(9)}/model.bin: OK" not in res.out and f"{name(9)}/optim/shard-0.pt: OK" not in res.out,
              f"{label}: verify followed the link {link} -> {target}", res)
        for ref in ("latest", "best"):
            res = c.run(root, "info", ref, "--path", codes=(0, 1, 2, 3), what=f"{label}: info {ref} --path")
            if res.rc == 0:
                p = c.path_inside(res, root, label)
                check(not os.path.islink(p), f"{label}: info {ref} --path printed the link {p}", res)
            res = c.run(root, "load", ref, codes=(0, 1, 2, 3), what=f"{label}: load {ref}")
            c.load_paths_inside(res, root, label)
        c.run(root, "promote-best", "9", "--force", codes=(2, 3), what=f"{label}: promote-best 9 --force")
        c.run(root, "promote-best", "--key", "val_loss", "--force", codes=(0, 1), what=f"{label}: promote-best --force")
        best = load_json(root / "best.json") if (root / "best.json").is_file() else {}
        check(best.get("path") != name(9), f"{label}: promote-best made the linked {name(9)} best: {best}")
        c.run(root, "verify", "--repair", codes=(0, 1), what=f"{label}: verify --repair")
        check((root / "last").read_text() != name(9) + "\n", f"{label}: verify --repair made last name the link")
        # the name is taken by something that is no checkpoint: refused (or replaced), never written through
        for extra in ((), ("--force",)):
            c.run(root, "save", "--step", "9", c.model, *extra, codes=(0, 2, 4, 6), what=f"{label}: save --step 9 {' '.join(extra)}")
            st = root / ".ckpt" / "staging"
            left = [n for n in os.listdir(st) if not n.endswith(".lock")] if st.is_dir() else []
            expect_eq(left, [], f"{label}: staging left after save --step 9 {' '.join(extra)}")
        c.run(root, "prune", "--keep-last", "1", codes=(0, 1, 2), what=f"{label}: prune --keep-last 1")
        c.run(root, "prune", "--keep-last", "1", codes=(0, 1, 2), what=f"{label}: prune --keep-last 1 (again)")
        check((target / "_checkpoint.json").is_file() and (target / "model.bin").is_file(),
              f"{label}: the checkpoint outside the root lost files")

    def last_names_link(root):
        (root / "last").write_text(name(9) + "\n")

    def best_names_link(root):
        b = load_json(root / "best.json")
        b.update({"path": name(9), "step": 9, "value": 0.05})
        write_json(root / "best.json", b)

    for label, how, edit in (("abs", "abs", None), ("rel", "rel", None), ("last-names-link", "abs", last_names_link),
                             ("best-names-link", "rel", best_names_link)):
        c.sub(label, body, label, how, edit)


# --------------------------------------------------------------------------
# last and best.json pointing outside


@scenario
def hostile_markers(c):
    out_ckpt = c.elsewhere / name(1)
    c.timeout = 5  # every command here is instant; a FIFO marker must not make one hang

    def last_case(label, make, repair_codes=(0,)):
        def body():
            root = c.root("last-" + label)
            p = root / "last"
            p.unlink()
            make(p, root)
            c.done_setup()
            res = c.run(root, "info", "latest", "--path", codes=(0, 1, 2, 3), what=f"last {label}: info latest --path")
            if res.rc == 0:
                got = c.path_inside(res, root, f"last {label}")
                expect_eq(os.path.basename(got), name(2), f"last {label}: info latest --path falls back to the newest", res)
                check("warning" in res.err.lower(), f"last {label}: a fallback to a scan must warn", res)
            for args in (("info", "latest"), ("info", "latest", "--json"), ("load", "latest"), ("load", "latest", "--json"),
                         ("info", "--json"), ("info",)):
                res = c.run(root, *args, codes=(0, 1, 2, 3), what=f"last {label}: {' '.join(args)}")
                c.no_outside_path(res, root, f"last {label}")
                if args == ("load", "latest") and res.rc == 0:
                    c.load_paths_inside(res, root, f"last {label}")
            res, doc = verify_json(c, root, what=f"last {label}: verify")
            check("last_invalid" in marker_kinds(doc),
                  f"last {label}: verify must report last_invalid, got {marker_kinds(doc)}", res)
            c.run(root, "prune", "--keep-last", "1", codes=(0, 1, 2) + tuple(x for x in repair_codes if x),
                  what=f"last {label}: prune --keep-last 1")
            res = c.run(root, "verify", "--repair", codes=repair_codes, what=f"last {label}: verify --repair")
            if res.rc != 0:
                check(p.is_dir(), f"last {label}: a refused --repair must leave the directory alone", res)
                res, doc = verify_json(c, root, what=f"last {label}: verify after a refused --repair")
                check("last_invalid" in marker_kinds(doc), f"last {label}: verify must still report last_invalid", res)
                return
            check(not p.is_symlink() and p.is_file(), f"last {label}: after --repair last must be a regular file")
            expect_eq(p.read_bytes(), (name(2) + "\n").encode(), f"last {label}: last after verify --repair")
            c.run(root, "verify", codes=0, what=f"last {label}: verify after --repair")
        c.sub("last-" + label, body)

    last_case("text-relative", lambda p, r: p.write_text(f"../elsewhere/{name(1)}\n"))
    last_case("text-absolute", lambda p, r: p.write_text(f"{out_ckpt}\n"))
    last_case("text-via-checkpoint", lambda p, r: p.write_text(f"{name(2)}/../../elsewhere/{name(1)}\n"))
    last_case("symlink-relative", lambda p, r: os.symlink(f"../elsewhere/{name(1)}", p))
    last_case("symlink-absolute", lambda p, r: os.symlink(str(out_ckpt), p))
    last_case("symlink-to-secret", lambda p, r: os.symlink(str(c.secret), p))
    last_case("symlink-loop", lambda p, r: os.symlink("last", p))
    last_case("text-nul", lambda p, r: p.write_bytes(name(2).encode() + b"\0../elsewhere\n"))
    last_case("text-dotdot", lambda p, r: p.write_text("..\n"))
    # a directory is not ckpt's to delete: replacing it may be refused (exit 6, naming it)
    last_case("directory", lambda p, r: (p.mkdir(), (p / "user-file").write_text("keep\n")), repair_codes=(0, 6))
    last_case("fifo", lambda p, r: os.mkfifo(p))
    last_case("huge", lambda p, r: make_sparse(p, name(2).encode()))

    def best_case(label, make, kinds=("best_invalid",), repair_codes=(0,)):
        def body():
            root = c.root("best-" + label)
            p = root / "best.json"
            doc = load_json(p)
            p.unlink()
            make(p, doc)
            c.done_setup()
            res = c.run(root, "info", "best", "--path", codes=(0, 1, 2, 3, 7), what=f"best {label}: info best --path")
            if res.rc == 0:
                c.path_inside(res, root, f"best {label}")
            for args in (("info", "best"), ("info", "best", "--json"), ("load", "best"), ("load", "best", "--json"),
                         ("info", "--json"), ("info",)):
                res = c.run(root, *args, codes=(0, 1, 2, 3, 7), what=f"best {label}: {' '.join(args)}")
                c.no_outside_path(res, root, f"best {label}")
                if args == ("load", "best") and res.rc == 0:
                    c.load_paths_inside(res, root, f"best {label}")
            res, d = verify_json(c, root, what=f"best {label}: verify")
            check(any(k in kinds for k in marker_kinds(d)),
                  f"best {label}: verify must report one of {list(kinds)}, got {marker_kinds(d)}", res)
            c.run(root, "prune", "--keep-last", "1", codes=(0, 1, 2) + tuple(x for x in repair_codes if x),
                  what=f"best {label}: prune --keep-last 1")
            res = c.run(root, "verify", "--repair", codes=repair_codes, what=f"best {label}: verify --repair")
            if res.rc != 0:
                check(p.is_dir(), f"best {label}: a refused --repair must leave the directory alone", res)
                res, d = verify_json(c, root, what=f"best {label}: verify after a refused --repair")
                check(any(k in kinds for k in marker_kinds(d)), f"best {label}: verify must still report it", res)
                return
            check(not p.is_symlink() and p.is_file(), f"best {label}: after --repair best.json must be a regular file")
            b = load_json(p)
            expect_eq((b.get("path"), b.get("step"), b.get("value"), b.get("key")), (name(2), 2, 0.5, "val_loss"),
                      f"best {label}: best.json (path, step, value, key) after verify --repair")
            c.run(root, "verify", codes=0, what=f"best {label}: verify after --repair")
        c.sub("best-" + label, body)

    def with_path(path, step=1, value=0.1):
        def make(p, doc):
            doc.update({"path": path, "step": step, "value": value})
            write_json(p, doc)
        return make

    best_case("path-relative", with_path(f"../elsewhere/{name(1)}"))
    best_case("path-absolute", with_path(str(out_ckpt)))
    best_case("path-absolute-outside", with_path(str(c.outside)))
    best_case("path-via-checkpoint", with_path(f"{name(2)}/../../elsewhere/{name(1)}"))
    best_case("path-empty", with_path(""))
    best_case("path-dot", with_path("."))
    best_case("path-dotdot", with_path(".."))
    best_case("path-secret", with_path(str(c.secret)))
    best_case("symlink-outside", lambda p, doc: os.symlink(str(c.elsewhere / "best.json"), p),
              kinds=("best_invalid", "best_value_mismatch", "best_dangling"))
    best_case("fifo", lambda p, doc: os.mkfifo(p))
    best_case("directory", lambda p, doc: (p.mkdir(), (p / "user-file").write_text("keep\n")), repair_codes=(0, 6))
    best_case("huge", lambda p, doc: make_sparse(p, b"{"))


# --------------------------------------------------------------------------
# names that look like checkpoints


@scenario
def hostile_step_names(c):
    root = c.root("names", steps=(1, 2, 3), values=(3.0, 2.0, 1.0))
    m1 = (root / name(1) / "_checkpoint.json").read_bytes()
    odd = {}

    def mkdir(n, with_meta=True):
        d = root / n
        d.mkdir()
        if with_meta:
            (d / "_checkpoint.json").write_bytes(m1)
            shutil.copyfile(root / name(1) / "SHA256SUMS", d / "SHA256SUMS")
            shutil.copyfile(root / name(1) / "model.bin", d / "model.bin")
        odd[n] = d

    mkdir("step-abc")
    mkdir("step-")
    mkdir("step--1")
    mkdir("step-+5")
    mkdir("step- 6")
    mkdir("step-0x10")
    mkdir("step-1e3")
    mkdir("step-99999999999999999999")   # > 2^64
    mkdir("step-9223372036854775808")    # 2^63
    mkdir("step-000000004.tmp")
    mkdir("step-000000007", with_meta=False)  # an uncommitted directory: not a checkpoint
    (root / "step-000000005").write_text("a file, not a directory\n")
    odd["step-000000005"] = root / "step-000000005"
    os.mkfifo(root / "step-000000006")
    odd["step-000000006"] = root / "step-000000006"
    os.symlink("step-000000001", root / "step-000000008")  # a link inside the root
    odd["step-000000008"] = root / "step-000000008"
    c.done_setup()

    def snap_odd():
        out = {}
        for n, p in odd.items():
            out[n] = c._entry(p)
            if p.is_dir() and not p.is_symlink():
                for q in sorted(p.rglob("*")):
                    out[str(q)] = c._entry(q)
        return out
    before = snap_odd()
    valid = [name(1), name(2), name(3)]

    def listing():
        res = c.run(root, "info", "--json", codes=0, what="info --json")
        names = [cp.get("name") for cp in res.json().get("checkpoints", [])]
        for n in odd:
            check(n not in names, f"info lists {n!r} as a checkpoint", res)
        res = c.run(root, "info", codes=0, what="info")
        for n in ("step-abc", "step-99999999999999999999", "step-000000005", "step-000000008"):
            check(n not in res.out, f"info table shows {n!r}", res)
    c.sub("info-ignores", listing)

    def verify():
        res, doc = verify_json(c, root, codes=(0, 1), what="verify")
        for cp in doc.get("checkpoints", []):
            check(cp.get("name") in valid + ["step-000000007"], f"verify treats {cp.get('name')!r} as a checkpoint", res)
        for n in valid:
            check(not failing(ckpt_problems(doc, n)), f"verify reports a problem in the valid {n}", res)
        check(not any(k for k in marker_kinds(doc) if k and k.startswith(("last_inv", "best_inv"))),
              "verify reports an invalid marker in a root whose markers are fine", res)
        res = c.run(root, "verify", "--quick", codes=(0, 1), what="verify --quick")
    c.sub("verify-ignores", verify)

    def refs():
        def one(ref, args):
            best_before = (root / "best.json").read_bytes()
            res = c.run(root, *args, codes=(1, 2, 3), what=f"{' '.join(args[:1] + args[2:])} {ref!r}")
            c.no_outside_path(res, root, ref)
            expect_eq((root / "best.json").read_bytes(), best_before, f"best.json after {args[0]} {ref!r}", res)
        # malformed refs (an empty one is not "no REF": `ckpt info "$REF"` with REF unset must fail)
        for ref in ("step-abc", "step-", "abc", "-1", "1e3", "0x10", "99999999999999999999", "9223372036854775808",
                    "step-99999999999999999999", "step-9223372036854775808", "", " 1", "1 ", "latest/..", "best\n",
                    "step-000000004.tmp",
                    # names of entries that are no checkpoint: a file, a FIFO, a link, an uncommitted directory
                    "5", "step-000000005", "6", "8", "7"):
            for args in (("info", ref), ("info", ref, "--path"), ("load", ref), ("verify", ref),
                         ("promote-best", ref, "--force")):
                c.part(f"ref {ref!r}", one, ref, args)
    c.sub("refs-refused", refs)

    def writers():
        c.run(root, "prune", "--keep-last", "1", "--dry-run", codes=0, what="prune --dry-run")
        res = c.run(root, "prune", "--keep-last", "1", "--json", codes=0, what="prune --keep-last 1")
        removed = harness.ref_names(res.json().get("removed", []))
        check(set(removed) <= {name(1), name(2)}, f"prune removed {removed}, not only valid checkpoints", res)
        c.run(root, "verify", "--repair", codes=(0, 1), what="verify --repair")
        c.run(root, "promote-best", "--key", "val_loss", "--force", codes=0, what="promote-best --force")
        c.run(root, "save", "--step", "10", c.model, codes=0, what="save --step 10")
        c.run(root, "save", "--step", "5", c.model, codes=(2, 4, 6), what="save --step 5 (a file has that name)")
        c.run(root, "prune", "--keep-last", "1", codes=0, what="prune --keep-last 1 (again)")
        expect_eq(snap_odd(), before, "the odd step-* entries after prune, save, verify --repair, promote-best")
        best = load_json(root / "best.json")
        check(best.get("path") in (name(3), name(10)), f"best.json names {best.get('path')}")
        check((root / "last").read_text() in (name(10) + "\n",), "last must name step 10")
    c.sub("writers-ignore", writers)


# --------------------------------------------------------------------------
# huge and deeply nested JSON


@scenario
def hostile_huge_json(c):
    def case(label, target, make, commands):
        def body():
            root = c.root("huge-" + label)
            make(root / target)
            c.done_setup()
            for args, codes in commands:
                c.run(root, *args, codes=codes, budget=FAST, what=f"{label}: {' '.join(map(str, args))}")
            # no crash and nothing outside touched by the writers either
            c.run(root, "verify", "--repair", codes=(0, 1, 2, 7), budget=FAST, what=f"{label}: verify --repair")
            c.run(root, "save", "--step", "3", c.model, codes=(0, 1, 2, 7), budget=FAST, what=f"{label}: save --step 3")
            c.run(root, "prune", "--keep-last", "1", codes=(0, 1, 2, 7), budget=FAST, what=f"{label}: prune --keep-last 1")
            rm_any(root)
            c.rebase()
        c.sub(label, body)

    manifest = name(2) + "/_checkpoint.json"
    m_cmds = [(("info", "2"), (1, 2, 7)), (("info", "2", "--json"), (1, 2, 7)), (("info", "latest", "--path"), (0, 1, 2, 7)),
              (("info",), (0, 1)), (("verify",), (1,)), (("verify", "2"), (1,)), (("verify", "--quick"), (1,)),
              (("load", "2"), (1, 2, 7)), (("load", "latest"), (1, 2, 7))]
    case("manifest-200MB", manifest, lambda p: make_sparse(p, b"{"), m_cmds)
    case("manifest-200MB-string", manifest, lambda p: make_sparse(p, b'{"format": "ckpt", "name": "'), m_cmds)
    case("manifest-200MB-spaces", manifest, lambda p: p.write_bytes(b"{" + b" " * (64 << 20)), m_cmds)
    case("manifest-deep-10k", manifest, lambda p: p.write_text(deep_json(10000)), m_cmds)
    case("manifest-deep-objects-10k", manifest, lambda p: p.write_text('{"a":' * 10000 + "1" + "}" * 10000), m_cmds)
    case("manifest-deep-1M-unclosed", manifest, lambda p: p.write_text(deep_json(1000000, close=False)), m_cmds)

    def deep_extra(p):
        # a valid manifest with an unknown field nested 10,000 deep (unknown fields are ignored)
        m = load_json(p)
        txt = json.dumps(m)
        p.write_text(txt[:-1] + ', "x_unknown": ' + deep_json(10000) + ', "meta2": ' + '{"a":' * 10000 + "1" + "}" * 10000 + "}")
    case("manifest-deep-unknown-field", manifest, deep_extra,
         [(("info", "2"), (0, 1)), (("verify",), (0, 1)), (("load", "2"), (0, 1))])

    b_cmds = [(("info", "best", "--path"), (1, 2, 3, 7)), (("info", "best"), (1, 2, 3, 7)), (("info",), (0, 1)),
              (("verify",), (1,)), (("load", "best"), (1, 2, 3, 7)),
              (("promote-best",), (0, 1, 2, 7)), (("prune", "--keep-last", "1", "--dry-run"), (0, 1, 2, 7))]
    case("best-200MB", "best.json", lambda p: make_sparse(p, b"{"), b_cmds)
    case("best-deep-10k", "best.json", lambda p: p.write_text(deep_json(10000)), b_cmds)
    case("best-deep-1M-unclosed", "best.json", lambda p: p.write_text(deep_json(1000000, close=False)), b_cmds)

    # policy.json that cannot be read: prune without options must refuse rather than guess
    p_cmds = [(("prune",), (1, 2, 7)), (("prune", "--dry-run"), (1, 2, 7)), (("info",), (0, 1, 2, 7)),
              (("verify",), (0, 1, 7))]
    case("policy-200MB", "policy.json", lambda p: make_sparse(p, b"{"), p_cmds)
    case("policy-deep-10k", "policy.json", lambda p: p.write_text(deep_json(10000)), p_cmds)
    case("policy-deep-objects-10k", "policy.json", lambda p: p.write_text('{"a":' * 10000 + "1" + "}" * 10000), p_cmds)

    case("sums-200MB", name(2) + "/SHA256SUMS", lambda p: make_sparse(p, b"0" * 64 + b"  model.bin\n"),
         [(("verify",), (1,)), (("verify", "2"), (1,)), (("load", "2"), (0, 1)), (("info", "2"), (0, 1))])
    case("last-200MB", "last", lambda p: make_sparse(p, name(2).encode()),
         [(("info", "latest", "--path"), (0, 1, 2, 3)), (("verify",), (1,)), (("load", "latest"), (0, 1, 2, 3))])
    case("commit-seq-200MB", ".ckpt/commit_seq", lambda p: make_sparse(p, b"1"),
         [(("save", "--step", "4", str(c.model)), (0, 1, 6))])

    def policy_deep_unknown_field():
        # valid JSON (an unknown field nested 10,000 deep) around a valid rule: prune either refuses and
        # deletes nothing, or applies keep_last 1 exactly
        root = c.root("policy-deep-field", steps=(1, 2, 3), values=(3.0, 2.0, 1.0))
        (root / "policy.json").write_text('{"schema_version": 1, "best_key": "val_loss", "keep_last": 1, '
                                          '"x_unknown": ' + deep_json(10000) + "}\n")
        c.done_setup()
        res = c.run(root, "prune", codes=(0, 1, 2, 7), budget=FAST, what="policy-deep-field: prune")
        left = sorted(n for n in os.listdir(root) if n.startswith("step-"))
        expect_eq(left, [name(3)] if res.rc == 0 else [name(1), name(2), name(3)],
                  f"checkpoints after prune (exit {res.rc}) with policy keep_last 1", res)
    c.sub("policy-deep-unknown-field", policy_deep_unknown_field)

    def policy_deep_prune_refuses():
        # the keep rule is inside the unreadable part: prune must refuse, not run with no rule or a default
        root = c.root("policy-refuse", steps=(1, 2, 3), values=(3.0, 2.0, 1.0))
        (root / "policy.json").write_text('{"schema_version": 1, "keep_last": ' + deep_json(10000) + "}\n")
        c.done_setup()
        c.run(root, "prune", codes=(1, 2, 7), budget=FAST, what="policy-refuse: prune")
        expect_eq(sorted(n for n in os.listdir(root) if n.startswith("step-")), [name(1), name(2), name(3)],
                  "checkpoints after a refused prune")
    c.sub("policy-deep-prune-refuses", policy_deep_prune_refuses)


# --------------------------------------------------------------------------
# duplicate keys and wrong types


def replace_text(p, old, new):
    t = pathlib.Path(p).read_text()
    check(old in t, f"test setup: {old!r} not found in {p}")
    pathlib.Path(p).write_text(t.replace(old, new, 1))


@scenario
def hostile_wrong_types(c):
    def mcase(label, edit=None, text=None, kinds=("metadata",), info_codes=(1,), load_codes=(1,)):
        def body():
            root = c.root("m-" + label)
            p = root / name(2) / "_checkpoint.json"
            if edit:
                tamper_manifest(root, 2, edit)
            if text:
                text(p)
            c.done_setup()
            res = c.run(root, "info", "2", codes=info_codes, what=f"{label}: info 2")
            res = c.run(root, "info", "2", "--json", codes=info_codes, what=f"{label}: info 2 --json")
            res, doc = verify_json(c, root, what=f"{label}: verify")
            expect_ckpt_problem(c, root, name(2), set(kinds), res, doc, label)
            c.run(root, "verify", "--quick", codes=1, what=f"{label}: verify --quick")
            res = c.run(root, "load", "2", codes=load_codes, what=f"{label}: load 2")
            c.load_paths_inside(res, root, label)
            c.run(root, "info", codes=(0, 1), what=f"{label}: info")
            c.run(root, "prune", "--keep-last", "1", codes=(0, 1, 2), what=f"{label}: prune --keep-last 1")
        c.sub("manifest-" + label, body)

    # duplicate keys: two different values for one key must not be silently accepted
    # (first-wins and last-wins parsers must not disagree silently: either order is refused)
    mcase("dup-step", text=lambda p: replace_text(p, '"step": 2,', '"step": 2, "step": 7,'))
    mcase("dup-step-last-wins", text=lambda p: replace_text(p, '"step": 2,', '"step": 7, "step": 2,'))
    mcase("dup-files", text=lambda p: replace_text(p, '"files": [', '"files": [], "files": ['))
    mcase("dup-path", text=lambda p: replace_text(p, '"path": "model.bin"', '"path": "model.bin", "path": "../../outside/secret"'))
    mcase("dup-path-last-wins", text=lambda p: replace_text(p, '"path": "model.bin"', '"path": "../../outside/secret", "path": "model.bin"'))
    mcase("dup-metrics", text=lambda p: replace_text(p, '"val_loss": 0.5', '"val_loss": 0.5, "val_loss": 0.001'))
    mcase("step-string", edit=lambda m: m.__setitem__("step", "2"))
    mcase("step-negative", edit=lambda m: m.__setitem__("step", -2))
    mcase("step-float", edit=lambda m: m.__setitem__("step", 2.5))
    mcase("step-2^63", text=lambda p: replace_text(p, '"step": 2,', '"step": 9223372036854775808,'))
    mcase("step-2^64", text=lambda p: replace_text(p, '"step": 2,', '"step": 18446744073709551618,'))
    mcase("step-1e400", text=lambda p: replace_text(p, '"step": 2,', '"step": 1e400,'))
    mcase("step-mismatch", edit=lambda m: m.__setitem__("step", 7))
    mcase("step-missing", edit=lambda m: m.pop("step"))
    mcase("files-object", edit=lambda m: m.__setitem__("files", {e["path"]: e for e in m["files"]}))
    mcase("files-null", edit=lambda m: m.__setitem__("files", None))
    mcase("files-entry-string", edit=lambda m: m.__setitem__("files", ["model.bin"] + m["files"][1:]))
    mcase("size-negative", edit=lambda m: m["files"][0].__setitem__("size", -1))
    mcase("size-string", edit=lambda m: m["files"][0].__setitem__("size", str(m["files"][0]["size"])))
    mcase("size-float", edit=lambda m: m["files"][0].__setitem__("size", m["files"][0]["size"] + 0.5))
    mcase("size-2^64", text=lambda p: replace_text(p, '"size": 1000', '"size": 18446744073709551616'),
          kinds=("metadata", "size_mismatch"))
    mcase("size-huge-sum", edit=lambda m: [e.__setitem__("size", 2 ** 63 - 1) for e in m["files"]],
          kinds=("metadata", "size_mismatch"))
    mcase("sha-not-hex", edit=lambda m: m["files"][0].__setitem__("sha256", "z" * 64))
    mcase("sha-short", edit=lambda m: m["files"][0].__setitem__("sha256", m["files"][0]["sha256"][:63]))
    mcase("sha-number", edit=lambda m: m["files"][0].__setitem__("sha256", 12345))
    mcase("duplicate-entry", edit=lambda m: m["files"].insert(0, dict(m["files"][0])))
    mcase("metrics-string", edit=lambda m: m["metrics"].__setitem__("val_loss", "0.5"))
    mcase("metrics-list", edit=lambda m: m.__setitem__("metrics", [0.5]))
    mcase("metrics-nested", edit=lambda m: m["metrics"].__setitem__("val_loss", {"v": 0.5}))
    mcase("weights-string", edit=lambda m: m.__setitem__("weights", "model.bin"))
    mcase("weights-number", edit=lambda m: m.__setitem__("weights", [1]))
    mcase("meta-number", edit=lambda m: m.__setitem__("meta", {"k": 5}))
    mcase("schema-string", edit=lambda m: m.__setitem__("schema_version", "1"))
    mcase("schema-missing", edit=lambda m: m.pop("schema_version"), info_codes=(1, 7), load_codes=(1, 7))
    mcase("format-other", edit=lambda m: m.__setitem__("format", "notckpt"), info_codes=(1, 7), load_codes=(1, 7))
    mcase("commit-seq-negative", edit=lambda m: m.__setitem__("commit_seq", -1))
    mcase("commit-seq-string", edit=lambda m: m.__setitem__("commit_seq", "2"))
    mcase("created-garbage", edit=lambda m: m.__setitem__("created", "yesterday"))
    mcase("checksum-md5", edit=lambda m: m.__setitem__("checksum", "md5"), info_codes=(1, 7), load_codes=(1, 7))
    mcase("not-an-object", text=lambda p: p.write_text("[1, 2, 3]\n"))
    mcase("null", text=lambda p: p.write_text("null\n"))
    mcase("empty-file", text=lambda p: p.write_bytes(b""))
    mcase("trailing-garbage", text=lambda p: p.write_text(p.read_text() + "{}garbage\n"))
    mcase("truncated", text=lambda p: p.write_text(p.read_text()[: len(p.read_text()) // 2]))
    mcase("invalid-utf8", text=lambda p: p.write_bytes(p.read_bytes().replace(b'"model.bin"', b'"model\xff.bin"')))
    mcase("nan-literal", text=lambda p: replace_text(p, '"val_loss": 0.5', '"val_loss": NaN'))

    def bcase(label, edit=None, text=None):
        def body():
            root = c.root("b-" + label)
            p = root / "best.json"
            b = load_json(p)
            if edit:
                edit(b)
            write_json(p, b)  # '"key": value' spacing, for the text edits
            if text:
                text(p)
            c.done_setup()
            res = c.run(root, "info", "best", "--path", codes=(0, 1, 2, 3, 7), what=f"best {label}: info best --path")
            if res.rc == 0:
                c.path_inside(res, root, f"best {label}")
            res, doc = verify_json(c, root, what=f"best {label}: verify")
            check(any(k and k.startswith("best_") for k in marker_kinds(doc)),
                  f"best {label}: verify must report a best.json problem, got {marker_kinds(doc)}", res)
            res = c.run(root, "load", "best", codes=(0, 1, 2, 3, 7), what=f"best {label}: load best")
            c.load_paths_inside(res, root, f"best {label}")
            c.run(root, "prune", "--keep-last", "1", codes=(0, 1, 2), what=f"best {label}: prune --keep-last 1")
            c.run(root, "verify", "--repair", codes=0, what=f"best {label}: verify --repair")
            c.run(root, "verify", codes=0, what=f"best {label}: verify after --repair")
        c.sub("best-" + label, body)

    bcase("dup-step", text=lambda p: replace_text(p, '"step": 2,', '"step": 2, "step": 1,'))
    bcase("dup-step-last-wins", text=lambda p: replace_text(p, '"step": 2,', '"step": 1, "step": 2,'))
    bcase("dup-path", text=lambda p: replace_text(p, '"path": "step-000000002"',
                                                  '"path": "step-000000002", "path": "../elsewhere/step-000000001"'))
    bcase("dup-path-last-wins", text=lambda p: replace_text(p, '"path": "step-000000002"',
                                                            '"path": "../elsewhere/step-000000001", "path": "step-000000002"'))
    bcase("dup-value", text=lambda p: replace_text(p, '"value": 0.5,', '"value": 0.5, "value": 0.01,'))
    bcase("dup-value-last-wins", text=lambda p: replace_text(p, '"value": 0.5,', '"value": 0.01, "value": 0.5,'))
    bcase("value-string", edit=lambda b: b.__setitem__("value", "0.5"))
    bcase("step-string", edit=lambda b: b.__setitem__("step", "2"))
    bcase("path-number", edit=lambda b: b.__setitem__("path", 2))
    bcase("key-number", edit=lambda b: b.__setitem__("key", 5))
    bcase("mode-median", edit=lambda b: b.__setitem__("mode", "median"))
    bcase("not-an-object", text=lambda p: p.write_text("[]\n"))
    bcase("empty-file", text=lambda p: p.write_bytes(b""))

    def pcase(label, edit=None, text=None):
        """policy.json that cannot be applied: prune without options refuses and deletes nothing."""
        def body():
            root = c.root("p-" + label, steps=(1, 2, 3), values=(3.0, 2.0, 1.0))
            p = root / "policy.json"
            pol = load_json(p)
            pol["keep_last"] = 1
            if edit:
                edit(pol)
            write_json(p, pol)
            if text:
                text(p)
            c.done_setup()
            c.run(root, "prune", codes=(1, 2, 7), what=f"policy {label}: prune")
            c.run(root, "prune", "--dry-run", codes=(1, 2, 7), what=f"policy {label}: prune --dry-run")
            expect_eq(sorted(n for n in os.listdir(root) if n.startswith("step-")), [name(1), name(2), name(3)],
                      f"policy {label}: checkpoints after a refused prune")
            c.run(root, "save", "--step", "4", c.model, codes=(0, 1, 2, 7), what=f"policy {label}: save --step 4")
        c.sub("policy-" + label, body)

    pcase("keep-last-string", edit=lambda p: p.__setitem__("keep_last", "1"))
    pcase("keep-last-negative", edit=lambda p: p.__setitem__("keep_last", -1))
    pcase("keep-last-float", edit=lambda p: p.__setitem__("keep_last", 1.5))
    pcase("keep-within-garbage", edit=lambda p: p.__setitem__("keep_within", "forever"))
    pcase("best-mode-median", edit=lambda p: p.__setitem__("best_mode", "median"))
    pcase("dup-keep-last", text=lambda p: replace_text(p, '"keep_last": 1', '"keep_last": 1, "keep_last": 100'))
    pcase("dup-keep-last-last-wins", text=lambda p: replace_text(p, '"keep_last": 1', '"keep_last": 100, "keep_last": 1'))
    pcase("not-an-object", text=lambda p: p.write_text("[]\n"))


# --------------------------------------------------------------------------
# load --to into a hostile destination


@scenario
def hostile_load_to(c):
    root = c.root("load")
    out = c.tmp / "out"

    def fresh_out():
        if out.exists() or out.is_symlink():
            rm_any(out)

    def case(label, make, codes=(2,)):
        def body():
            fresh_out()
            make()
            c.rebase()
            res = c.run(root, "load", "2", "--to", out, codes=codes, may_change=[out], what=f"{label}: load 2 --to out")
            check(c.secret.read_bytes() == c.secret_bytes, f"{label}: the secret was overwritten", res)
            if res.rc == 0:
                for rel in ("model.bin", "optim/shard-0.pt"):
                    q = out / rel
                    check(q.is_file() and not q.is_symlink() and not any(
                        pathlib.Path(*q.parts[:i]).is_symlink() for i in range(len(out.parts) + 1, len(q.parts))),
                        f"{label}: {q} must be a regular file reached without a link", res)
            fresh_out()
            c.rebase()
        c.sub(label, body)

    def link_optim():
        out.mkdir()
        os.symlink("../outside", out / "optim")
    case("optim-dir-link", link_optim)

    def link_optim_abs():
        out.mkdir()
        os.symlink(str(c.outside / "sub"), out / "optim")
    case("optim-dir-link-abs", link_optim_abs)

    def link_model():
        out.mkdir()
        os.symlink("../outside/secret", out / "model.bin")
    case("model-file-link", link_model, codes=(0, 2))

    def link_shard():
        (out / "optim").mkdir(parents=True)
        os.symlink(str(c.outside / "sub" / "victim.bin"), out / "optim" / "shard-0.pt")
    case("shard-file-link", link_shard, codes=(0, 2))

    def dangling_link():
        out.mkdir()
        os.symlink(str(c.outside / "created-by-load"), out / "model.bin")
    case("model-dangling-link", dangling_link, codes=(0, 2))

    def out_is_file():
        out.write_text("a file\n")
    case("to-is-a-file", out_is_file, codes=(2, 6))

    def optim_is_file():
        out.mkdir()
        (out / "optim").write_text("a file where a directory goes\n")
    case("optim-is-a-file", optim_is_file, codes=(2, 6))

    def fifo_model():
        out.mkdir()
        os.mkfifo(out / "model.bin")
    case("model-is-a-fifo", fifo_model, codes=(0, 2, 6))

    # a stored path that escapes: invalid metadata (exit 1), nothing written anywhere
    token = os.urandom(6).hex()

    def escape(label, stored):
        def body():
            r = c.root("escape-" + label)

            def edit(m):
                e = entry_for(m, "model.bin")
                e["path"] = stored
                m["files"].sort(key=lambda x: x["path"])
            tamper_manifest(r, 2, edit)
            fresh_out()
            c.rebase()
            res = c.run(r, "load", "2", "--to", out, codes=1, may_change=[out], what=f"escape {label}: load 2 --to out")
            res = c.run(r, "load", "2", "--no-verify", "--to", out, codes=1, may_change=[out],
                        what=f"escape {label}: load 2 --no-verify --to out")
            check(not (c.tmp / "x").exists(), f"escape {label}: load wrote TMP/x")
            leaked = [n for n in os.listdir("/tmp") if n.startswith(f"ckpt-hostile-escape-{token}")]
            check(not leaked, f"escape {label}: load wrote {leaked} in /tmp")
            fresh_out()
            c.rebase()
        c.sub("escape-" + label, body)

    escape("dotdot", "../x")
    escape("dotdot-2", f"../../ckpt-hostile-escape-{token}")
    escape("absolute", str(c.tmp / "x"))
    escape("inner-dotdot", "optim/../../x")

    def only_globs():
        fresh_out()
        c.rebase()
        for glob in ("../*", "../../outside/*", "/*", str(c.outside) + "/*", "**/../*"):
            res = c.run(root, "load", "2", "--only", glob, "--to", out, codes=(0, 2, 3), may_change=[out],
                        what=f"load --only {glob!r} --to out")
            c.no_secret_under(out, f"--only {glob}")
            fresh_out()
            c.rebase()
            res = c.run(root, "load", "2", "--only", glob, codes=(0, 2, 3), what=f"load --only {glob!r}")
            c.load_paths_inside(res, root, f"--only {glob}")
    c.sub("only-globs", only_globs)

    def to_empty():
        c.run(root, "load", "2", "--to", "", codes=2, what="load 2 --to ''")
    c.sub("to-empty", to_empty)


# --------------------------------------------------------------------------
# refs that point outside the root


@scenario
def hostile_refs(c):
    root = c.root("refs")
    c.done_setup()
    outside_refs = [str(c.elsewhere / name(1)), f"../elsewhere/{name(1)}", str(root / name(2) / ".." / ".." / "elsewhere" / name(1)),
                    str(root / ".." / "elsewhere" / name(1)), str(c.outside), str(c.secret), "/", "..",
                    str(root), str(root / name(2) / "optim"), str(root / ".ckpt")]

    def body():
        for ref in outside_refs:
            for args in (("info", ref), ("info", ref, "--path"), ("load", ref), ("load", ref, "--to", c.tmp / "out"),
                         ("verify", ref)):
                res = c.run(root, *args, codes=(2, 3), may_change=[c.tmp / "out"], what=f"{args[0]} {ref}",
                            cwd=root)
                c.no_outside_path(res, root, ref)
                check(not (c.tmp / "out").exists() or not any((c.tmp / "out").iterdir()),
                      f"{args[0]} {ref}: load wrote files for a refused ref")
            before = (root / "best.json").read_bytes()
            c.run(root, "promote-best", ref, "--force", codes=(2, 3), what=f"promote-best {ref} --force", cwd=root)
            expect_eq((root / "best.json").read_bytes(), before, f"promote-best {ref}: best.json")
        # a ref inside the root through .. is fine
        res = c.run(root, "info", str(root / name(1) / ".." / name(2)), "--path", codes=(0, 2), what="info in-root ..")
        if res.rc == 0:
            c.path_inside(res, root, "in-root ref")
    c.sub("outside-refs", body)


# --------------------------------------------------------------------------
# hostile private directory .ckpt/


@scenario
def hostile_private_dir(c):
    def case(label, make, save_codes=(0,)):
        def body():
            root = c.root("priv-" + label)
            make(root / ".ckpt", root)
            c.done_setup()
            c.run(root, "info", codes=0, what=f"{label}: info")
            c.run(root, "verify", codes=(0, 1), what=f"{label}: verify")
            c.run(root, "prune", "--keep-last", "1", codes=(0, 1, 2, 6, 7), what=f"{label}: prune --keep-last 1")
            c.run(root, "verify", "--repair", codes=(0, 1, 6, 7), what=f"{label}: verify --repair")
            c.run(root, "promote-best", "--key", "val_loss", "--force", codes=(0, 6, 7), what=f"{label}: promote-best --force")
            c.run(root, "save", "--step", "5", c.model, codes=save_codes, what=f"{label}: save --step 5")
            c.run(root, "prune", "--keep-last", "1", codes=(0, 1, 2, 6, 7), what=f"{label}: prune --keep-last 1 (again)")
            check(c.secret.read_bytes() == c.secret_bytes, f"{label}: the secret changed")
        c.sub(label, body)

    case("trash-link-abs", lambda p, r: os.symlink(str(c.outside), p / "trash" / "evil"))
    case("trash-link-rel", lambda p, r: os.symlink("../../../outside", p / "trash" / "evil"))

    def trash_dir_with_links(p, r):
        d = p / "trash" / "step-000000001.deleted"
        d.mkdir()
        os.symlink(str(c.outside), d / "outside")
        os.symlink(str(c.secret), d / "model.bin")
    case("trash-dir-with-links", trash_dir_with_links)
    case("staging-link", lambda p, r: os.symlink(str(c.outside), p / "staging" / "step-000000007.abandoned"))

    def staging_dir_with_links(p, r):
        d = p / "staging" / "step-000000007.abandoned"
        d.mkdir()
        os.symlink(str(c.outside / "sub"), d / "optim")
        os.symlink("../../../../outside/secret", d / "model.bin")
    case("staging-dir-with-links", staging_dir_with_links)

    def lock_link(p, r):
        (p / "lock").unlink()
        os.symlink(str(c.secret), p / "lock")
    case("lock-link-to-secret", lock_link, save_codes=(0, 6, 7))

    def trash_is_link(p, r):
        shutil.rmtree(p / "trash")
        decoy = c.outside / "decoy-trash"
        if not decoy.exists():
            decoy.mkdir()
            (decoy / "important.txt").write_text("do not delete\n")
        os.symlink(str(decoy), p / "trash")
    case("trash-is-link", trash_is_link, save_codes=(0, 6, 7))

    def staging_is_link(p, r):
        shutil.rmtree(p / "staging")
        decoy = c.outside / "decoy-staging"
        if not decoy.exists():
            decoy.mkdir()
            (decoy / "step-000000007.x").mkdir()
            (decoy / "step-000000007.x" / "important.txt").write_text("do not delete\n")
        os.symlink(str(decoy), p / "staging")
    case("staging-is-link", staging_is_link, save_codes=(0, 6, 7))

    def seq(value):
        def make(p, r):
            (p / "commit_seq").write_bytes(value)
        return make

    # a bad counter: save must still give the new checkpoint the highest commit_seq, or refuse
    for label, value in (("seq-garbage", b"abc\n"), ("seq-negative", b"-5\n"), ("seq-low", b"1\n"),
                         ("seq-max", b"18446744073709551615\n"), ("seq-overflow", b"99999999999999999999999\n"),
                         ("seq-empty", b"")):
        def body(label=label, value=value):
            root = c.root("priv-" + label)
            (root / ".ckpt" / "commit_seq").write_bytes(value)
            c.done_setup()
            res = c.run(root, "save", "--step", "3", c.model, codes=(0, 1, 6, 7), what=f"{label}: save --step 3")
            if res.rc == 0:
                m = load_json(root / name(3) / "_checkpoint.json")
                check(isinstance(m.get("commit_seq"), int) and m["commit_seq"] > 2,
                      f"{label}: the new checkpoint's commit_seq is {m.get('commit_seq')!r}, not above 2", res)
                expect_eq((root / "last").read_text(), name(3) + "\n", f"{label}: last after save", res)
                c.run(root, "verify", codes=0, what=f"{label}: verify after save")
            else:
                expect_eq(sorted(n for n in os.listdir(root) if n.startswith("step-")), [name(1), name(2)],
                          f"{label}: checkpoints after a refused save")
        c.sub(label, body)


@scenario
def hostile_private_dir_symlink(c):
    """ROOT/.ckpt is itself a link to a directory outside: nothing there may be deleted."""
    def body(label, abs_link):
        root = c.root("privlink-" + label)
        shutil.rmtree(root / ".ckpt")
        fake = c.outside / f"fake-private-{label}"
        (fake / "trash" / "old").mkdir(parents=True)
        (fake / "trash" / "old" / "important.txt").write_text("do not delete\n")
        (fake / "staging" / "step-000000007.x").mkdir(parents=True)
        (fake / "staging" / "step-000000007.x" / "important.txt").write_text("do not delete\n")
        os.symlink(str(fake) if abs_link else f"../outside/fake-private-{label}", root / ".ckpt")
        c.done_setup()
        c.run(root, "info", codes=0, what=f"{label}: info")
        c.run(root, "verify", codes=(0, 1), what=f"{label}: verify")
        # Every writer refuses a private directory that leads out of the root (7).
        c.run(root, "prune", "--keep-last", "1", codes=7, what=f"{label}: prune --keep-last 1")
        c.run(root, "verify", "--repair", codes=7, what=f"{label}: verify --repair")
        c.run(root, "save", "--step", "5", c.model, codes=7, what=f"{label}: save --step 5")
        c.run(root, "promote-best", "--key", "val_loss", "--force", codes=7, what=f"{label}: promote-best")
        c.run(root, "prune", "--keep-last", "1", codes=7, what=f"{label}: prune --keep-last 1 (again)")
    c.sub("absolute-link", body, "abs", True)
    c.sub("relative-link", body, "rel", False)


# --------------------------------------------------------------------------
# schema_version 2


@scenario
def hostile_schema_version(c):
    def manifest_v2():
        root = c.root("schema-manifest", steps=(1, 2, 3), values=(3.0, 2.0, 1.0))
        # the newest and the oldest checkpoint were written by a newer ckpt
        for step in (1, 3):
            tamper_manifest(root, step, lambda m: m.__setitem__("schema_version", 2))
        c.done_setup()
        for args in (("info", "3"), ("info", "3", "--json"), ("info", "latest"), ("load", "3"), ("load", "latest"),
                     ("load", "3", "--no-verify")):
            res = c.run(root, *args, codes=7, what=" ".join(args))
            check("2" in res.err and "1" in res.err and "schema" in res.err.lower(),
                  f"{' '.join(args)}: the message must name schema versions 2 and 1", res)
        res = c.run(root, "info", "3", json_out=True, codes=7, what="--json info 3")
        doc = json.loads(res.err.strip().splitlines()[-1])
        expect_eq(doc.get("error", {}).get("kind"), "unsupported", "--json error kind", res)
        check(res.out == "", "--json failure prints nothing on stdout", res)
        res = c.run(root, "verify", "3", codes=(1, 7), what="verify 3")
        check("2" in res.out + res.err, "verify 3 must name schema version 2", res)
        c.run(root, "verify", codes=(1, 7), what="verify")
        c.run(root, "info", codes=(0, 1, 7), what="info (table)")
        # a checkpoint written by a newer ckpt is never deleted by this one
        c.run(root, "prune", "--keep-last", "1", codes=(0, 1, 2, 7), what="prune --keep-last 1")
        for step in (1, 3):
            check((root / name(step) / "_checkpoint.json").is_file(),
                  f"prune --keep-last 1 deleted {name(step)}, a schema 2 checkpoint it cannot read")
        c.run(root, "save", "--step", "4", c.model, codes=(0, 7), what="save --step 4")
        c.run(root, "prune", "--keep-last", "1", codes=(0, 1, 2, 7), what="prune --keep-last 1 (after save)")
        for step in (1, 3):
            check((root / name(step) / "_checkpoint.json").is_file(),
                  f"prune --keep-last 1 deleted {name(step)}, a schema 2 checkpoint it cannot read")
    c.sub("manifest-v2", manifest_v2)

    def best_v2():
        root = c.root("schema-best")
        b = load_json(root / "best.json")
        b["schema_version"] = 2
        write_json(root / "best.json", b)
        before = (root / "best.json").read_bytes()
        c.done_setup()
        res = c.run(root, "info", "best", "--path", codes=7, what="info best --path")
        check("2" in res.err and "1" in res.err, "info best: the message must name versions 2 and 1", res)
        res, doc = verify_json(c, root, codes=(1, 7), what="verify")
        c.run(root, "load", "best", codes=7, what="load best")
        # a newer best.json is never silently rewritten in the old format
        res = c.run(root, "promote-best", "1", "--force", codes=(0, 7), what="promote-best 1 --force")
        if res.rc != 0:
            expect_eq((root / "best.json").read_bytes(), before, "best.json after a refused promote-best")
        c.rebase()
        res = c.run(root, "save", "--step", "3", c.model, "--metric", "val_loss=0.01", codes=(0, 7), what="save --step 3 (better)")
        check(res.rc == 7 or "warning" in res.err.lower() or (root / "best.json").read_bytes() == before,
              "save silently rewrote a schema 2 best.json", res)
        c.run(root, "prune", "--keep-last", "1", codes=(0, 2, 7), what="prune --keep-last 1")
    c.sub("best-v2", best_v2)

    def policy_v2():
        root = c.root("schema-policy", steps=(1, 2, 3), values=(3.0, 2.0, 1.0))
        pol = load_json(root / "policy.json")
        pol.update({"schema_version": 2, "keep_last": 1, "keep_newfangled": "x"})
        write_json(root / "policy.json", pol)
        before = (root / "policy.json").read_bytes()
        c.done_setup()
        for args in (("prune",), ("prune", "--dry-run")):
            res = c.run(root, *args, codes=7, what=" ".join(args))
            check("2" in res.err and "1" in res.err, f"{' '.join(args)}: the message must name versions 2 and 1", res)
        expect_eq(sorted(n for n in os.listdir(root) if n.startswith("step-")), [name(1), name(2), name(3)],
                  "checkpoints after prune refused a schema 2 policy.json")
        res = c.run(root, "save", "--step", "4", c.model, "--keep-last", "2", codes=(0, 7), what="save --keep-last 2")
        if res.rc == 7:
            expect_eq((root / "policy.json").read_bytes(), before, "policy.json after a refused save")
            expect_eq(sorted(n for n in os.listdir(root) if n.startswith("step-")), [name(1), name(2), name(3)],
                      "checkpoints after a refused save")
        c.run(root, "info", codes=(0, 7), what="info")
    c.sub("policy-v2", policy_v2)


# --------------------------------------------------------------------------
# read-only roots


def mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


@scenario
def readonly_root(c):
    src = c.root("ro-src", steps=(1, 2, 3), values=(3.0, 2.0, 1.0))
    dst = c.tmp / "ro"
    dst.mkdir()
    c.never_walk.add(str(dst))
    r = subprocess.run(["mount", "--bind", str(src), str(dst)], capture_output=True, text=True)
    check(r.returncode == 0, f"cannot bind-mount {src} on {dst} (this scenario needs root and mount(8)): "
          f"exit {r.returncode}: {r.stderr.strip()}")
    try:
        r = subprocess.run(["mount", "-o", "remount,bind,ro", str(dst)], capture_output=True, text=True)
        check(r.returncode == 0, f"cannot remount {dst} read-only: exit {r.returncode}: {r.stderr.strip()}")
        try:
            (dst / "probe").write_text("x")
            raise Fail(f"{dst} is writable after the read-only remount")
        except OSError:
            pass
        c.rebase()
        out = c.tmp / "out"

        def readers():
            c.run(dst, "info", codes=0, what="info")
            c.run(dst, "info", "--json", codes=0, what="info --json")
            res = c.run(dst, "info", "latest", "--path", codes=0, what="info latest --path")
            expect_eq(res.out.strip(), str(dst / name(3)), "info latest --path on the read-only root", res)
            res = c.run(dst, "info", "best", "--path", codes=0, what="info best --path")
            c.run(dst, "verify", codes=0, what="verify")
            c.run(dst, "verify", "--quick", codes=0, what="verify --quick")
            c.run(dst, "verify", "--strict", codes=0, what="verify --strict")
            res = c.run(dst, "load", "latest", codes=0, what="load latest")
            expect_eq(sorted(res.out.split()), sorted([str(dst / name(3) / "model.bin"), str(dst / name(3) / "optim" / "shard-0.pt")]),
                      "load latest paths", res)
            res = c.run(dst, "load", "best", "--to", out, codes=0, may_change=[out], what="load best --to out")
            expect_eq((out / "model.bin").read_bytes(), c.model.read_bytes(), "load --to out: model.bin")
            rm_any(out)
            c.rebase()
        c.sub("readers", readers)

        def writers():
            for args, codes in ((("save", "--step", "4", c.model), (6,)),
                                (("save", "--step", "3", "--force", c.model), (6,)),
                                (("prune", "--keep-last", "1"), (5, 6)),
                                (("prune", "--keep-last", "1", "--dry-run"), (0, 5, 6)),
                                (("promote-best", "1", "--force"), (5, 6)),
                                (("verify", "--repair"), (0, 5, 6))):
                res = c.run(dst, *args, codes=codes, what=" ".join(map(str, args)))
                if res.rc == 6:
                    check("read-only" in res.err.lower(), f"{args[0]}: the message must say the root is read-only", res)
            res = c.run(dst, "save", "--step", "4", c.model, json_out=True, codes=6, what="--json save")
            doc = json.loads(res.err.strip().splitlines()[-1])
            expect_eq(doc.get("error", {}).get("kind"), "io", "--json save: error kind", res)
            check(res.out == "", "--json failure prints nothing on stdout", res)
            c.run(dst, "verify", codes=0, what="verify after the refused writers")
        c.sub("writers-refused", writers)
    finally:
        for _ in range(3):
            if not mounted(dst):
                break
            subprocess.run(["umount", str(dst)], capture_output=True)
        c.never_walk.discard(str(dst))
    check(not mounted(dst), f"could not unmount {dst}")


# --------------------------------------------------------------------------
# directories that are not roots


@scenario
def foreign_not_a_root(c):
    foreign = c.tmp / "foreign"
    (foreign / "data").mkdir(parents=True)
    (foreign / "notes.txt").write_text("my notes\n")
    (foreign / "data" / "train.csv").write_text("a,b\n1,2\n")
    (foreign / "data" / "lastfile").write_text("step-000000001\n")
    missing = c.tmp / "nope" / "deeper"
    regular = c.tmp / "regular-file"
    regular.write_text("not a directory\n")
    link_to_foreign = c.tmp / "link-to-foreign"
    os.symlink(str(foreign), link_to_foreign)
    c.rebase()
    commands = [("info",), ("info", "--json"), ("info", "latest"), ("info", "latest", "--path"), ("info", "best", "--path"),
                ("verify",), ("verify", "--quick"), ("verify", "--repair"), ("prune", "--keep-last", "1"),
                ("prune", "--keep-last", "1", "--dry-run"), ("prune",), ("promote-best",),
                ("promote-best", "--key", "val_loss", "--force"), ("load", "latest"), ("load", "latest", "--to", c.tmp / "out")]

    def on(root, codes, label):
        for args in commands:
            res = c.run(root, *args, codes=codes, may_change=[], what=f"{label}: {' '.join(map(str, args))}")
            check(not (c.tmp / "out").exists(), f"{label}: load created the --to directory for a missing root", res)
        res = c.run(root, "info", json_out=True, codes=codes, what=f"{label}: --json info")
        doc = json.loads(res.err.strip().splitlines()[-1])
        kind = {7: "unsupported", 3: "not_found", 2: "usage"}
        check(doc.get("error", {}).get("kind") in [kind[x] for x in ([codes] if isinstance(codes, int) else codes)],
              f"{label}: --json error kind", res)

    def foreign_dir():
        # the guard in run() covers foreign/ itself (it may not change: the commands are no root's)
        on(foreign, 7, "foreign")
        check(not (foreign / ".ckpt").exists(), "a .ckpt/ appeared in the foreign directory")
        on(link_to_foreign, 7, "link to foreign")
    c.sub("foreign-directory", foreign_dir)

    def not_there():
        on(missing, 3, "missing")
        check(not (c.tmp / "nope").exists(), "the parent of a missing root was created")
    c.sub("missing-root", not_there)

    def regular_file():
        on(regular, (2, 7), "regular file")
        expect_eq(regular.read_text(), "not a directory\n", "the regular file given as -C")
    c.sub("file-as-root", regular_file)

    def env_root():
        res = c.raw([BIN, "--lock-timeout", "5", "prune", "--keep-last", "1"], cwd=foreign)
        check(res.rc == 7, "prune in a foreign cwd (default root '.') must exit 7", res)
        c.guard(res, set())
    c.sub("cwd-foreign", env_root)


# --------------------------------------------------------------------------
# runner


if __name__ == "__main__":
    sys.exit(harness.main(sys.argv, __doc__, SCENARIOS, Ctx, "ckpt-hostile"))
