#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Object-store roots (SPEC §11) against a real S3 server (radosgw, the s3_store fixture): the
commands that read a root give on `-C s3://BUCKET/PREFIX` what they give on the directory the
checkpoints came from, catch what is changed behind ckpt's back, and fail with the documented exit
codes on a missing bucket, a missing prefix and wrong credentials.

A directory root is saved with ckpt, then copied into the bucket object by object with a plain S3
tool (tests/s3/s3_transfer_tool, as `aws s3 cp --recursive` would): a checkpoint copied between a
directory and a store with any tool stays valid (SPEC §11).

Usage: e2e_store.py --list | --all | SCENARIO...
  (binary: $CKPT_BIN; store: $CKPT_S3_ENV_FILE, written by tests/s3/store.sh; tool: $CKPT_S3_TOOL)
"""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, check, expect_eq, expect_json_error, expect_rc, name, sha256_file  # noqa: E402

SCENARIOS, scenario = harness.registry()


def store_env():
    """The variables of the fixture's store (AWS_ENDPOINT_URL, the keys, the region)."""
    path = os.environ.get("CKPT_S3_ENV_FILE")
    if not path or not os.path.isfile(path):
        raise Fail("no store: run through CTest (the s3_store fixture starts radosgw and writes "
                   "$CKPT_S3_ENV_FILE)")
    env = {}
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            env[k] = v
    return env


class Ctx(harness.RootCtx):
    def __init__(self, tmp):
        super().__init__(tmp)
        self.s3 = store_env()
        self.tool = os.environ.get("CKPT_S3_TOOL", "")
        check(os.access(self.tool, os.X_OK), f"$CKPT_S3_TOOL is not a program: {self.tool!r}")
        # One bucket per scenario and run: the fixture's store outlives a scenario.
        nm = os.path.basename(str(tmp)).lower()
        self.bucket = re.sub(r"[^a-z0-9-]", "-", nm)[-63:].strip("-")
        self.url = f"s3://{self.bucket}/runs/a"

    def env(self, extra=None):
        e = harness.child_env(self.s3)
        # Nothing of the machine's own AWS set-up.
        for k in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            e.pop(k, None)
        e["HOME"] = str(self.tmp)
        e.update(extra or {})
        return e

    def run(self, *args, root=None, code=None, what="", env=None, lock_timeout=5):
        cmd = [harness.BIN, "--lock-timeout", lock_timeout, "-C", str(root or self.url), *args]
        return harness.execute(cmd, cwd=str(self.tmp), env=self.env(env), timeout=300, code=code,
                               what=what or " ".join(map(str, args)))

    def local(self, *args, code=None, what=""):
        return self.run(*args, root=self.root, code=code, what=what)

    def tool_run(self, *args, code=0):
        return harness.execute([self.tool, *args], cwd=str(self.tmp), env=self.env(), timeout=300,
                               code=code, what="s3_transfer_tool " + " ".join(map(str, args)))

    def file(self, rel, data):
        p = self.src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return p

    def seed(self):
        """Three checkpoints in the directory root (a best by loss, weights, a nested file, one
        file of several parts), then the whole root copied into the bucket."""
        big = self.file("big.bin", os.urandom(21 << 20))  # 2 parts of 16 MiB
        for s in (1, 2, 3):
            model = self.file("model.bin", f"weights {s}\n".encode() * 1000)
            opt = self.file(f"opt/state-{s}.pt", f"optimizer {s}\n".encode())
            self.local("save", "--step", s, model, f"nested/opt.pt={opt}", big,
                       "--metric", f"loss={[0.5, 0.25, 0.4][s - 1]}", "--best-key", "loss",
                       "--weights", "model.bin", code=0)
        self.tool_run("mb", self.bucket)
        self.tool_run("put-tree", self.bucket, "runs/a", self.root)

    def seed_local(self):
        """The three checkpoints of seed(), in the directory root only."""
        big = self.file("big.bin", os.urandom(21 << 20))
        for s in (1, 2, 3):
            model = self.file("model.bin", f"weights {s}\n".encode() * 1000)
            opt = self.file(f"opt/state-{s}.pt", f"optimizer {s}\n".encode())
            self.local("save", "--step", s, model, f"nested/opt.pt={opt}", big,
                       "--metric", f"loss={[0.5, 0.25, 0.4][s - 1]}", "--best-key", "loss",
                       "--weights", "model.bin", "--meta", f"run=r{s}", code=0)

    def key(self, step, path):
        return f"runs/a/{name(step)}/{path}"

    def objects(self, prefix=""):
        """{key: size} of every object in the bucket under prefix."""
        out = {}
        for line in self.tool_run("ls", self.bucket, prefix).out.splitlines():
            size, key = line.split("  ", 1)
            out[key] = int(size)
        return out

    def versions(self, prefix=""):
        """{key: (ETag, time stored)} of every object in the bucket under prefix."""
        out = {}
        for line in self.tool_run("versions", self.bucket, prefix).out.splitlines():
            etag, when, key = line.split("  ", 2)
            out[key] = (etag, when)
        return out

    def uploads(self, prefix=""):
        """The keys of the multipart uploads in progress under prefix."""
        return [line.split("  ", 1)[0] for line in
                self.tool_run("uploads", self.bucket, prefix).out.splitlines()]

    def spawn(self, *args, lock_timeout=120):
        """A ckpt command on the store root, started and not waited for."""
        cmd = [harness.BIN, "--lock-timeout", str(lock_timeout), "-C", self.url, *map(str, args)]
        return subprocess.Popen(cmd, cwd=str(self.tmp), env=self.env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def first_checkpoint(self):
        """A new bucket whose root holds one small checkpoint, step 1."""
        self.tool_run("mb", self.bucket)
        first = self.tmp / "first.bin"
        first.write_bytes(b"first")
        self.run("save", "--step", 1, first, code=0)

    def start_upload(self, step, src):
        """`save --step STEP --from SRC` on the store root, returned once it is mid-upload (a
        multipart upload of the step is in the store) and still running."""
        p = self.spawn("save", "--step", step, "--from", src)
        deadline = time.monotonic() + 120
        while not self.uploads(self.key(step, "")) and p.poll() is None:
            check(time.monotonic() < deadline, "the writer started no multipart upload")
            time.sleep(0.05)
        check(p.poll() is None, "the writer was still uploading")
        return p


# What differs between two saves of the same files: when they were made.
TIMES = ("created", "updated")


def timeless(doc):
    """doc without the commit and marker times."""
    if isinstance(doc, dict):
        return {k: timeless(v) for k, v in doc.items() if k not in TIMES}
    if isinstance(doc, list):
        return [timeless(v) for v in doc]
    return doc


def tree(top):
    """{relative path: sha256} of every file under top."""
    return {str(p.relative_to(top)): sha256_file(p) for p in sorted(top.rglob("*")) if p.is_file()}


def swap_roots(doc, local, url):
    """doc with every string naming the directory root rewritten to name the store root."""
    if isinstance(doc, dict):
        return {k: swap_roots(v, local, url) for k, v in doc.items()}
    if isinstance(doc, list):
        return [swap_roots(v, local, url) for v in doc]
    if isinstance(doc, str) and (doc == local or doc.startswith(local + "/")):
        return url + doc[len(local):]
    if isinstance(doc, str):
        return re.sub(re.escape(local) + r"(?=[/ ]|$)", url, doc)  # a root named in a message
    return doc


@scenario
def store_reads_match_directory(c):
    """info, info REF, verify, diff and load give on the store what they give on the directory."""
    c.seed()
    local = str(c.root)
    for args in (["info"], ["info", "latest"], ["info", "best"], ["info", "2"], ["info", name(1)],
                 ["verify"], ["verify", "--quick"], ["verify", "best", "1"], ["diff", "1", "3"],
                 ["info", "--limit", "2", "--sort", "loss"]):
        want = c.local(*args, "--json", code=0)
        got = c.run(*args, "--json", code=0)
        expect_eq(got.json(), swap_roots(want.json(), local, c.url), f"{' '.join(args)} --json", got)
        # The text form too, the root's name aside.
        want_text = c.local(*args, code=0).out.replace(local, c.url)
        expect_eq(c.run(*args, code=0).out, want_text, " ".join(args), got)
    # A ref given as the checkpoint's full address.
    res = c.run("info", f"{c.url}/{name(2)}", "--json", code=0)
    expect_eq(res.json().get("name"), name(2), "info s3://…/step-N", res)
    # load --to downloads and verifies: the same bytes as the directory's.
    for args, want in ((["best"], ["big.bin", "model.bin", "nested/opt.pt"]),
                       (["latest", "--weights-only"], ["model.bin"]),
                       (["1", "--only", "nested/*"], ["nested/opt.pt"])):
        out = c.tmp / f"out-{len(want)}-{args[0]}"
        res = c.run("load", *args, "--to", out, "--json", code=0)
        ref = res.json()["name"]
        got = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
        expect_eq(got, want, f"load {' '.join(args)} --to: the files", res)
        for rel in want:
            expect_eq(sha256_file(out / rel), sha256_file(c.root / ref / rel),
                      f"load {' '.join(args)}: {rel} as saved", res)
        expect_eq({f["path"]: f["location"] for f in res.json()["files"]},
                  {rel: str(out / rel) for rel in want}, "load --json: where each file is", res)
    # What an object store cannot do is refused with a usage error, before the store is asked.
    res = c.run("load", "latest", code=2, what="load without --to")
    check("--to" in res.err, "the message says to give --to", res)
    c.run("load", "latest", "--to", c.tmp / "x", "--link", code=2, what="load --link")
    check(not (c.tmp / "x").exists(), "a refused load writes nothing")
    before = c.objects()
    res = c.run("verify", "--repair", "--json", code=0, what="verify --repair on a sound store")
    expect_eq(res.json()["repaired"], [], "nothing to repair", res)
    expect_eq({k: n for k, n in c.objects().items() if "/.ckpt/" not in k},
              {k: n for k, n in before.items() if "/.ckpt/" not in k},
              "no checkpoint or marker object changed", res)


@scenario
def store_verify_catches_changes(c):
    """An object overwritten, shortened, deleted or added behind ckpt's back."""
    c.seed()
    c.verify_ok()
    # The same size, other bytes: only the digest tells.
    c.tool_run("put-text", c.bucket, c.key(1, "nested/opt.pt"), "optimizer X\n")
    res = c.run("verify", "--json", code=1, what="verify after an overwrite")
    doc = res.json()
    bad = {ck["name"]: ck for ck in doc["checkpoints"] if not ck["ok"]}
    expect_eq(sorted(bad), [name(1)], "only the changed checkpoint fails", res)
    expect_eq([(p["path"], p["kind"]) for p in bad[name(1)]["problems"]],
              [("nested/opt.pt", "digest_mismatch")], "the problem", res)
    # --quick compares sizes only: it passes.
    c.run("verify", "--quick", code=0, what="verify --quick after a same-size overwrite")
    # load of the damaged checkpoint fails and puts nothing at --to.
    out = c.tmp / "out"
    res = c.run("load", "1", "--to", out, code=1, what="load of a damaged checkpoint")
    check("digest_mismatch" in res.err, "load names the problem", res)
    check(not out.exists() or not any(p.is_file() for p in out.rglob("*")),
          "nothing of it is put at --to (no file, no temporary)", res)

    c.tool_run("put-text", c.bucket, c.key(2, "model.bin"), "short")
    c.tool_run("rm", c.bucket, c.key(3, "nested/opt.pt"))
    c.tool_run("put-text", c.bucket, c.key(3, "stray.txt"), "not listed")
    res = c.run("verify", "--json", code=1)
    found = {(ck["name"], p["path"], p["kind"], p["severity"])
             for ck in res.json()["checkpoints"] for p in ck["problems"]}
    expect_eq(found, {(name(1), "nested/opt.pt", "digest_mismatch", "failure"),
                      (name(2), "model.bin", "size_mismatch", "failure"),
                      (name(3), "nested/opt.pt", "missing", "failure"),
                      (name(3), "stray.txt", "extra", "warning")}, "every change found", res)
    # latest still names step 3 (its manifest is whole); the markers point at incomplete ones.
    res = c.run("verify", "3", code=1)
    check("missing" in res.out, "verify REF reports the missing object", res)


@scenario
def store_uncommitted_objects_are_invisible(c):
    """Data objects without their _checkpoint.json (a save still uploading, or killed): no
    checkpoint, not an invalid one, and no ref reaches them; a stale `last` is never followed."""
    c.seed()
    c.tool_run("put-text", c.bucket, c.key(9, "model.bin"), "half uploaded")
    res = c.run("info", "--json", code=0)
    expect_eq([ck["name"] for ck in res.json()["checkpoints"]], [name(s) for s in (1, 2, 3)],
              "the listing", res)
    expect_eq(res.json().get("invalid", []), [], "nothing invalid", res)
    c.run("info", "9", code=3, what="info of the uncommitted step")
    expect_eq(c.run("info", "latest", "--json", code=0).json()["name"], name(3), "latest", res)
    c.run("verify", code=0, what="verify ignores the uncommitted objects")
    # `last` left behind by a save killed after its commit: latest is still the newest.
    c.tool_run("put-text", c.bucket, "runs/a/last", name(2) + "\n")
    res = c.run("info", "latest", "--json", code=0)
    expect_eq(res.json()["name"], name(3), "latest with a stale last", res)
    res = c.run("verify", "--json", code=0)
    kinds = [p["kind"] for p in res.json()["markers"]["problems"]]
    check("last_stale" in kinds, "verify reports the stale last", res)
    # An unparsable manifest is reported as invalid, as in a directory.
    c.tool_run("put-text", c.bucket, c.key(2, "_checkpoint.json"), "{not json")
    res = c.run("info", "--json", code=0)
    expect_eq([i["name"] for i in res.json().get("invalid", [])], [name(2)], "invalid", res)
    c.run("verify", code=1, what="verify of a root with an invalid checkpoint")


@scenario
def store_errors_and_credentials(c):
    """Exit codes of SPEC §11: a missing bucket or prefix 3, a prefix holding something else 7,
    access denied 6 with no secret in any output, a malformed address 2."""
    c.seed()
    secret = c.s3["AWS_SECRET_ACCESS_KEY"]
    res = c.run("info", root=f"s3://{c.bucket}-none/runs/a", code=3, what="a missing bucket")
    check("no such bucket" in res.err, "the message names the missing bucket", res)
    res = c.run("info", "--json", root=f"s3://{c.bucket}/runs/none", code=3)
    expect_json_error(res, 3, "not_found")
    c.tool_run("put-text", c.bucket, "other/notes.txt", "hello")
    res = c.run("info", root=f"s3://{c.bucket}/other", code=7, what="a prefix that is no root")
    check("not a ckpt root" in res.err, "the message says why", res)
    for bad in ({"AWS_SECRET_ACCESS_KEY": secret[::-1]}, {"AWS_ACCESS_KEY_ID": "NOSUCHKEY0000000"}):
        for args in (["info"], ["verify"], ["info", "latest", "--json"], ["load", "1", "--to", c.tmp / "o"]):
            res = c.run(*args, env=bad, code=6, what=f"{' '.join(map(str, args))} with {sorted(bad)}")
            check("denied" in res.err or "denied" in res.out, "the message says access was denied", res)
            for v in bad.values():
                check(v not in res.out and v not in res.err, "no key or secret in the output", res)
            check(secret not in res.out and secret not in res.err, "no secret in the output", res)
    # A usage error is one whatever the store would answer: refused before it is asked.
    c.run("load", "latest", env=bad, code=2, what="load without --to, wrong credentials")
    for args in (["verify", "--repair"], ["prune", "--keep-last", "1"], ["rm", "1"]):
        c.run(*args, root=f"s3://{c.bucket}-none/runs/a", code=3,
              what=f"{' '.join(args)}, missing bucket")
    no_creds = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    res = c.run("info", env=no_creds, code=6, what="no credentials")
    check("credentials" in res.err, "the message says credentials are missing", res)
    for url in ("s3://", "s3://b/a//b", "s3://Bad_Bucket!/x", "s3://bucket/../x"):
        c.run("info", root=url, code=2, what=f"malformed address {url}")
    # The commands that change a root, with wrong credentials: exit 6 and nothing written;
    # abort of a step that is not pending: 3.
    before = c.tool_run("ls", c.bucket, "").out
    for args in (["prune", "--keep-last", "1"], ["rm", "1", "--force"], ["rollback", "1"],
                 ["promote-best", "1", "--key", "loss", "--force"], ["verify", "--repair"],
                 ["abort", "2"], ["save", "--step", 9, "--shard", "0/2", c.tmp / "none"]):
        res = c.run(*args, env={"AWS_SECRET_ACCESS_KEY": secret[::-1]}, code=6,
                    what=" ".join(map(str, args)) + " with a wrong secret")
        check(secret not in res.err and secret[::-1] not in res.err, "no secret in the output", res)
    res = c.run("abort", "2", code=3, what="abort of a step that is not pending")
    check("no pending step 2" in res.err, "the message says why", res)
    expect_eq(c.tool_run("ls", c.bucket, "").out, before, "every object in the bucket is as it was")
    check(not (c.tmp / "s3:").exists(), "nothing was written under a directory named s3:")



def save_series(c, root):
    """The same three saves into root (a directory or the store): a best by loss, weights, a
    nested path and one file of two parts. The --json of each."""
    big = c.tmp / "in" / "big.bin"
    if not big.exists():
        big.parent.mkdir(parents=True)
        big.write_bytes(os.urandom(21 << 20))
    out = []
    for s in (1, 2, 3):
        model = c.tmp / "in" / "model.bin"
        model.write_bytes(f"weights {s}\n".encode() * 1000)
        opt = c.tmp / "in" / "opt.pt"
        opt.write_bytes(f"optimizer {s}\n".encode())
        res = c.run("save", "--step", s, model, f"nested/opt.pt={opt}", big,
                    "--metric", f"loss={[0.5, 0.25, 0.4][s - 1]}", "--best-key", "loss",
                    "--weights", "model.bin", "--json", root=root, code=0)
        out.append(res.json())
    return out


@scenario
def store_save_matches_directory(c):
    """save into the store commits what the same saves commit into a directory: the same save
    reports, listing, refs, verify and files; and the objects, copied into a directory with a
    plain tool, are a root that ckpt verifies (the layout mirrors the directory's)."""
    c.tool_run("mb", c.bucket)
    local = str(c.root)
    want = save_series(c, c.root)
    got = save_series(c, c.url)
    for w, g in zip(want, got):
        expect_eq(timeless(g), timeless(swap_roots(w, local, c.url)), "save --json", None)
    for args in (["info"], ["info", "latest"], ["info", "best"], ["verify"], ["diff", "1", "3"]):
        w = c.local(*args, "--json", code=0).json()
        res = c.run(*args, "--json", code=0)
        expect_eq(timeless(res.json()), timeless(swap_roots(w, local, c.url)), " ".join(args), res)
    # Exactly the directory's names, as objects (the private .ckpt/ aside).
    objs = {k[len("runs/a/"):]: n for k, n in c.objects("runs/a/").items()}
    files = {str(p.relative_to(c.root)): p.stat().st_size for p in c.root.rglob("*")
             if p.is_file() and not str(p.relative_to(c.root)).startswith(".ckpt")}
    expect_eq({k: n for k, n in objs.items() if not k.startswith(".ckpt/")}, files,
              "the objects are the directory's files, name for name and size for size")
    # Loaded back: the bytes saved.
    out = c.tmp / "out"
    c.run("load", "best", "--to", out, code=0)
    expect_eq(tree(out), {"big.bin": sha256_file(c.tmp / "in" / "big.bin"),
                          "model.bin": sha256_file(c.root / name(2) / "model.bin"),
                          "nested/opt.pt": sha256_file(c.root / name(2) / "nested/opt.pt")},
              "load best --to: the files of step 2")
    # A plain tool's copy of the store root is a root ckpt reads and verifies.
    copy = c.tmp / "copy"
    c.tool_run("get-tree", c.bucket, "runs/a", copy)
    res = c.run("verify", "--json", root=copy, code=0)
    res = c.run("info", "--json", root=copy, code=0)
    expect_eq(timeless(swap_roots(res.json(), str(copy), c.url)),
              timeless(c.run("info", "--json", code=0).json()), "the copy lists as the store", res)


@scenario
def store_save_races(c):
    """16 writers of one step with different files: one commits, the 15 others exit 4 and
    change nothing; then 8 writers of 8 steps at once all commit, with distinct commit_seqs and
    `last` on the newest."""
    c.tool_run("mb", c.bucket)
    procs = []
    for i in range(16):
        d = c.tmp / f"w{i}"
        d.mkdir()
        (d / "model.bin").write_bytes(os.urandom((1 << 20) + i))
        procs.append(c.spawn("save", "--step", 5, "--from", d, "--json"))
    rcs = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        rcs.append((p.returncode, out.decode(), err.decode()))
    winners = [i for i, (rc, _, _) in enumerate(rcs) if rc == 0]
    expect_eq(sorted(rc for rc, _, _ in rcs), [0] + [4] * 15,
              f"exit codes of 16 writers of one step (stderr: {[e for _, _, e in rcs if e][:2]})")
    for rc, _, err in rcs:
        if rc == 4:
            check("already exists" in err, f"a loser says the step exists: {err!r}")
    w = winners[0]
    check(json.loads(rcs[w][1])["committed"] is True, "the winner reports its commit")
    out = c.tmp / "out"
    c.run("load", "5", "--to", out, code=0)
    expect_eq(tree(out), {"model.bin": sha256_file(c.tmp / f"w{w}" / "model.bin")},
              "the committed files are the winner's, whole")
    c.verify_ok()
    expect_eq(c.uploads("runs/a/"), [], "no multipart upload left behind")

    procs = []
    for s in range(10, 18):
        f = c.tmp / f"s{s}.bin"
        f.write_bytes(os.urandom(300_000))
        procs.append(c.spawn("save", "--step", s, f, "--metric", f"loss={s}", "--best-key", "loss",
                             "--json"))
    seqs = {}
    for s, p in zip(range(10, 18), procs):
        out, err = p.communicate(timeout=600)
        check(p.returncode == 0, f"writer of step {s} exit {p.returncode}: {err.decode()!r}")
        seqs[s] = json.loads(out)["commit_seq"]
    expect_eq(sorted(seqs.values()), list(range(2, 10)), "distinct commit_seqs, no gap")
    newest = max(seqs, key=seqs.get)
    res = c.run("info", "--json", code=0)
    doc = res.json()
    expect_eq(doc["last"]["name"], name(newest), "last names the newest commit", res)
    expect_eq(c.run("info", "latest", "--json", code=0).json()["name"], name(newest), "latest", res)
    expect_eq(doc["best"]["name"], name(10), "best.json names the lowest loss", res)
    res = c.run("verify", "--json", code=0)
    expect_eq(res.json()["markers"]["problems"], [], "the markers are consistent", res)


@scenario
def store_save_killed_midway(c):
    """kill -9 of a writer mid-upload: nothing of it is visible; the job's restart saves the
    step again at once (the dead writer's lease is not waited out) and leaves neither its
    objects nor its multipart uploads behind."""
    c.first_checkpoint()
    work = c.tmp / "work"
    work.mkdir()
    (work / "model.bin").write_bytes(os.urandom(96 << 20))  # 6 parts
    (work / "extra.bin").write_bytes(b"only in the killed save")
    p = c.start_upload(2, work)
    p.kill()
    p.wait()
    res = c.run("info", "--json", code=0)
    expect_eq([ck["name"] for ck in res.json()["checkpoints"]], [name(1)], "nothing new", res)
    c.run("info", "2", code=3, what="the killed save's step")
    c.verify_ok()
    # The restart: resume from latest, rewrite the work files, save again. The dead writer's
    # lease (30 s) would outlast --lock-timeout 5: the save must take it over at once.
    c.run("load", "latest", "--to", c.tmp / "resume", code=0)
    (work / "extra.bin").unlink()
    (work / "model.bin").write_bytes(os.urandom(20 << 20))
    c.run("save", "--step", 2, "--from", work, code=0, what="the restarted save", lock_timeout=5)
    expect_eq(c.uploads("runs/a/"), [], "no multipart upload left in the store")
    expect_eq(sorted(k.rsplit("/", 1)[-1] for k in c.objects(c.key(2, ""))),
              ["SHA256SUMS", "_checkpoint.json", "model.bin"],
              "the step holds the new save's objects only")
    res = c.run("verify", "--json", code=0)
    expect_eq([p for ck in res.json()["checkpoints"] for p in ck["problems"]], [],
              "no problem, no extra object", res)
    out = c.tmp / "out"
    c.run("load", "latest", "--to", out, code=0)
    expect_eq(tree(out), {"model.bin": sha256_file(work / "model.bin")}, "the restarted save's files")


@scenario
def store_save_same_step_and_refusals(c):
    """A step saved again with the same files is a success that commits nothing; other files
    exit 4 (and --force replaces them: store_save_force_replaces_as_directory); a missing bucket 3;
    wrong credentials 6. None of them changes an object."""
    c.tool_run("mb", c.bucket)
    src = c.tmp / "src1"
    src.mkdir(exist_ok=True)
    (src / "model.bin").write_bytes(b"weights one\n" * 100)
    c.run("save", "--step", 1, "--from", src, "--metric", "loss=1", code=0)
    before = c.objects()
    res = c.run("save", "--step", 1, "--from", src, "--metric", "loss=1", "--json", code=0)
    doc = res.json()
    check(doc["existing"] is True and doc["committed"] is False, "the same files: existing", res)
    expect_eq(doc["commit_seq"], 1, "the committed checkpoint's commit_seq", res)
    other = c.tmp / "other"
    other.mkdir()
    (other / "model.bin").write_bytes(b"weights two\n" * 100)
    secret = c.s3["AWS_SECRET_ACCESS_KEY"]
    refusals = [
        (["save", "--step", 1, "--from", other], 4, "already exists"),
        (["save", "--step", 2, "--from", c.tmp / "none"], 3, "does not exist"),
        (["save", "--step", 2, "--from", other, "--weights", "nope*"], 2, "matches no"),
    ]
    for args, code, words in refusals:
        res = c.run(*args, code=code, what=" ".join(map(str, args)))
        check(words in res.err, f"the message says why ({words!r})", res)
    res = c.run("save", "--step", 2, "--from", other, root=f"s3://{c.bucket}-none/runs/a", code=3,
                what="save into a missing bucket")
    check("no such bucket" in res.err, "the message names the missing bucket", res)
    res = c.run("save", "--step", 2, "--from", other, env={"AWS_SECRET_ACCESS_KEY": secret[::-1]},
                code=6, what="save with a wrong secret")
    check(secret not in res.err and secret[::-1] not in res.err, "no secret in the output", res)
    expect_eq(c.objects(), before, "every object is as it was")
    # --link cannot link into a store: a warning, and a copy.
    res = c.run("save", "--step", 3, "--from", other, "--link", code=0)
    check("copying instead" in res.err, "--link warns that it copies", res)
    # --move: the sources go once committed; the directory named stays, empty.
    res = c.run("save", "--step", 4, "--from", other, "--move", code=0)
    check(other.is_dir() and not any(other.iterdir()), "--move emptied the source directory", res)
    c.verify_ok()



def force_series(c, root):
    """save_series, then step 2 (the best) replaced with --force by other files and a worse
    loss; the --json of that save, then of info, info best and verify."""
    save_series(c, root)
    f = c.tmp / "in" / "replacement.bin"
    f.write_bytes(b"replacement\n" * 5000)
    out = [c.run("save", "--step", 2, f, "--metric", "loss=0.9", "--force", "--json", root=root,
                 code=0).json()]
    for args in (["info"], ["info", "best"], ["verify"]):
        out.append(c.run(*args, "--json", root=root, code=0).json())
    return out


@scenario
def store_save_force_replaces_as_directory(c):
    """save --force over a committed step: on the store, the --json of the save, info and
    verify that a directory gives; `last` names the replacement, best.json (which named the
    step) is rebuilt by its rule, the old objects are gone and nothing stays staged. A
    replacement killed mid-upload leaves the old checkpoint whole; prune removes what it staged
    once idle, and the job's save again replaces the step."""
    c.tool_run("mb", c.bucket)
    local = str(c.root)
    want = force_series(c, c.root)
    got = force_series(c, c.url)
    for what, w, g in zip(("save --force", "info", "info best", "verify"), want, got):
        expect_eq(timeless(g), timeless(swap_roots(w, local, c.url)), what)
    expect_eq(got[1]["last"]["name"], name(2), "last names the replacement")
    expect_eq(got[2]["name"], name(3), "best.json rebuilt: step 3 has the least loss now")
    objs = {k[len("runs/a/"):]: n for k, n in c.objects("runs/a/").items()}
    files = {str(p.relative_to(c.root)): p.stat().st_size for p in c.root.rglob("*")
             if p.is_file() and not str(p.relative_to(c.root)).startswith(".ckpt")}
    expect_eq({k: n for k, n in objs.items() if not k.startswith(".ckpt/")}, files,
              "the objects are the directory's files: none of the replaced step's is left")
    expect_eq([k for k in objs if k.startswith(".ckpt/replacing/") or k.startswith(".ckpt/saving/")],
              [], "nothing staged, no step lease left")
    out = c.tmp / "out"
    c.run("load", "2", "--to", out, code=0)
    expect_eq(tree(out), {"replacement.bin": sha256_file(c.tmp / "in" / "replacement.bin")},
              "step 2 loads as the replacement")

    # A replacement of step 3 killed while it uploads: step 3 stays as it was.
    before = c.run("info", "3", "--json", code=0).json()
    work = c.tmp / "work"
    work.mkdir()
    (work / "model.bin").write_bytes(os.urandom(96 << 20))  # 6 parts
    p = c.spawn("save", "--step", 3, "--from", work, "--force")
    staged = "runs/a/.ckpt/replacing/"
    deadline = time.monotonic() + 120
    while not c.uploads(staged) and p.poll() is None:
        check(time.monotonic() < deadline, "the replacement started no multipart upload")
        time.sleep(0.05)
    check(p.poll() is None, "the replacement was still uploading")
    p.kill()
    p.wait()
    res = c.run("info", "3", "--json", code=0)
    expect_eq(timeless(res.json()), timeless(before), "step 3 as it was", res)
    c.verify_ok()
    time.sleep(1.5)
    res = c.run("prune", "--pending-expiry", "1s", "--json", code=0)
    cleaned = res.json()["cleaned"]
    check(len(cleaned) == 1 and cleaned[0].startswith(f".ckpt/replacing/{name(3)}/")
          and cleaned[0].endswith("/"), "prune removes what the killed replacement staged", res)
    expect_eq((c.uploads(staged), list(c.objects(staged))), ([], []), "nothing staged is left")
    # The job saves again: step 3 replaced, and the new bytes load.
    c.run("save", "--step", 3, "--from", work, "--force", code=0)
    res = c.run("info", "--json", code=0)
    expect_eq(res.json()["last"]["name"], name(3), "last names the replacement", res)
    out = c.tmp / "out3"
    c.run("load", "3", "--to", out, code=0)
    expect_eq(tree(out), {"model.bin": sha256_file(work / "model.bin")}, "step 3 replaced")
    c.verify_ok()
    expect_eq(list(c.objects(staged)), [], "nothing staged is left")
    # Sharded: --force of a step not committed is a plain sharded save; over a committed step
    # it is refused before anything is uploaded (exit 7), with the way round.
    for rank in (0, 1):
        (work / f"rank{rank}.bin").write_bytes(f"rank {rank}\n".encode())
        c.run("save", "--step", 5, f"{work}/rank{rank}.bin", "--shard", f"{rank}/2", "--force",
              code=0)
    expect_eq(len(c.run("info", "5", "--json", code=0).json()["files"]), 2,
              "step 5 committed by its two shards")
    before = c.objects()
    res = c.run("save", "--step", 5, f"{work}/rank0.bin", "--shard", "0/2", "--force", code=7)
    check("ckpt rm 5" in res.err, "the refusal says how to replace the step", res)
    expect_eq(c.objects(), before, "nothing uploaded")


@scenario
def store_save_dedup_copies_unchanged(c):
    """--dedup on a store: files the newest checkpoint holds unchanged (path, size, SHA-256) are
    copied by the store, not uploaded; the report says what was shared and with which checkpoint;
    policy.json keeps it on; --move removes the sources after the commit. A shared object damaged
    behind ckpt's back is copied as it is (nothing is uploaded), and verify finds it in both."""
    c.tool_run("mb", c.bucket)
    src = c.tmp / "run"
    src.mkdir()
    frozen = os.urandom(6 << 20)  # one part, copied in one request
    (src / "frozen.bin").write_bytes(frozen)
    (src / "tok.json").write_bytes(b'{"vocab": 32000}\n')
    (src / "model.bin").write_bytes(os.urandom(1 << 20))
    c.run("save", "--step", 1, "--from", src, code=0)
    (src / "model.bin").write_bytes(os.urandom(1 << 20))
    res = c.run("save", "--step", 2, "--from", src, "--dedup", "--json", code=0)
    doc = res.json()
    expect_eq(doc["shared"]["file_count"], 2, "frozen.bin and tok.json shared", res)
    expect_eq(doc["shared"]["total_size"], len(frozen) + len(b'{"vocab": 32000}\n'),
              "their bytes", res)
    expect_eq(doc["shared"]["with"]["name"], name(1), "shared with the newest checkpoint", res)
    res = c.run("save", "--step", 1, "--from", src, "--dedup", code=4, what="step 1 again")
    check("already" in res.err, "other files for a committed step: exit 4", res)
    res = c.run("save", "--step", 4, "--from", c.tmp / "nothing", "--dedup", code=3)
    # policy.json keeps --dedup: the next save shares without being told.
    (src / "model.bin").write_bytes(os.urandom(1 << 20))
    doc = c.run("save", "--step", 3, "--from", src, "--json", code=0).json()
    expect_eq((doc["shared"]["file_count"], doc["shared"]["with"]["name"]), (2, name(2)),
              "policy.json's dedup shares with step 2", doc)
    c.verify_ok()
    out = c.tmp / "out"
    c.run("load", "3", "--to", out, code=0)
    expect_eq(tree(out), tree(src), "step 3 loads as the sources")
    # A shared object damaged in the store (the same size): the copy is the store's, so
    # step 4 holds the damage too, and verify reports it in both checkpoints.
    c.tool_run("put-text", c.bucket, c.key(3, "tok.json"), "x" * len(b'{"vocab": 32000}\n'))
    (src / "model.bin").write_bytes(os.urandom(1 << 20))
    doc = c.run("save", "--step", 4, "--from", src, "--move", "--json", code=0).json()
    expect_eq(doc["shared"]["file_count"], 2, "shared again", doc)
    check(src.is_dir() and not any(src.iterdir()), "--move removed every source after the commit")
    res = c.run("verify", "--json", code=1, what="verify after the damage")
    bad = sorted((ck["name"], p["path"], p["kind"]) for ck in res.json()["checkpoints"]
                 for p in ck["problems"])
    expect_eq(bad, [(name(3), "tok.json", "digest_mismatch"), (name(4), "tok.json", "digest_mismatch")],
              "the damaged object, in both checkpoints", res)


def changes(c, root):
    """The commands that change a root, in the order a run's life takes them, on root (a
    directory or the store): (what, exit code, --json document or error) of each."""
    out = []

    def step(what, *args, code=0):
        res = c.run(*args, "--json", root=root, code=code, what=what)
        out.append((what, res.rc, res.json() if res.rc == 0 else res.json_error()))

    save_series(c, root)  # steps 1-3, best step 2 by loss
    f = c.tmp / "in" / "more.bin"
    for s, loss in ((4, 0.3), (5, 0.6), (6, 0.1)):
        f.write_bytes(f"step {s}\n".encode() * 999)
        step(f"save {s} --keep-last 2", "save", "--step", s, f, "--metric", f"loss={loss}",
             "--keep-last", "2")
    step("prune --dry-run", "prune", "--keep-last", "1", "--dry-run")
    step("prune --keep-last 1", "prune", "--keep-last", "1")
    f.write_bytes(b"seven\n" * 999)
    step("save 7", "save", "--step", 7, f, "--metric", "loss=0.2")
    step("rm best", "rm", "best", code=4)
    step("rm best --force", "rm", "best", "--force")
    step("promote-best 7 (already)", "promote-best", "7")
    f.write_bytes(b"eight\n" * 999)
    step("save 8", "save", "--step", 8, f, "--metric", "loss=0.9")
    step("promote-best 8 (worse)", "promote-best", "8")
    step("promote-best 8 --force", "promote-best", "8", "--force")
    step("promote-best --key loss (rebuild)", "promote-best", "--key", "loss")
    step("rollback 7 --dry-run", "rollback", "7", "--dry-run")
    step("rollback 7", "rollback", "7")
    step("info", "info")
    step("verify", "verify")
    return out


@scenario
def store_changes_match_directory(c):
    """save --keep-*, prune, rm, promote-best and rollback give on the store the exit codes and
    --json they give on a directory; verify --repair mends a damaged `last` in both; nothing is
    left in the store of what was removed, and no step lease stays behind."""
    c.tool_run("mb", c.bucket)
    local = str(c.root)
    want = changes(c, c.root)
    got = changes(c, c.url)
    for (what, wrc, wdoc), (_, grc, gdoc) in zip(want, got):
        expect_eq(grc, wrc, f"{what}: exit code")
        expect_eq(timeless(gdoc), timeless(swap_roots(wdoc, local, c.url)), f"{what}: --json")
    # Exactly the directory's checkpoints and files, as objects.
    objs = {k[len("runs/a/"):]: n for k, n in c.objects("runs/a/").items()}
    files = {str(p.relative_to(c.root)): p.stat().st_size for p in c.root.rglob("*")
             if p.is_file() and not str(p.relative_to(c.root)).startswith(".ckpt")}
    expect_eq({k: n for k, n in objs.items() if not k.startswith(".ckpt/")}, files,
              "the objects left are the directory's files")
    expect_eq([k for k in objs if k.startswith(".ckpt/saving/")], [], "no step lease left")
    expect_eq(c.uploads("runs/a/"), [], "no multipart upload left")
    # `last` damaged behind ckpt's back: verify reports it, --repair mends it, in both.
    (c.root / "last").write_text("step-000000099\n")
    c.tool_run("put-text", c.bucket, "runs/a/last", "step-000000099\n")
    for root in (c.root, c.url):
        res = c.run("verify", "--json", root=root, code=1, what="verify of a dangling last")
        check(any(p["path"] == "last" for p in res.json()["markers"]["problems"]),
              "verify reports `last`", res)
    w = c.run("verify", "--repair", "--json", root=c.root, code=0).json()
    res = c.run("verify", "--repair", "--json", code=0)
    expect_eq(timeless(res.json()), timeless(swap_roots(w, local, c.url)), "verify --repair", res)
    expect_eq(res.json()["repaired"], ["last"], "--repair rewrote `last`", res)
    expect_eq(c.run("info", "latest", "--json", code=0).json()["name"], name(7),
              "latest after the repair", res)
    res = c.run("verify", "--json", code=0)
    expect_eq(res.json()["markers"]["problems"], [], "the markers are consistent", res)


@scenario
def store_prune_cleans_killed_save(c):
    """kill -9 of a writer mid-upload, then prune: its objects and multipart uploads stay while
    younger than the pending expiry, then go, with its lease; a live writer's upload, idle as
    long, is left alone (its lease is held) and commits; the committed checkpoints are
    untouched."""
    c.first_checkpoint()
    work = c.tmp / "work"
    work.mkdir()
    (work / "a.bin").write_bytes(b"small, stored first")
    (work / "model.bin").write_bytes(os.urandom(96 << 20))  # 6 parts
    p = c.start_upload(2, work)
    p.kill()
    p.wait()
    check(c.uploads(c.key(2, "")), "the killed save left a multipart upload")
    # Younger than the expiry (24 h by default): left, as the pending steps of a directory.
    res = c.run("prune", "--pending-expiry", "1h", "--json", code=0)
    expect_eq(res.json()["cleaned"], [], "nothing cleaned within the expiry", res)
    check(c.uploads(c.key(2, "")), "the upload is still there")
    # A live writer, stopped as long: its lease is held, so its upload stays.
    live = c.tmp / "live"
    live.mkdir()
    (live / "model.bin").write_bytes(os.urandom(96 << 20))
    q = c.start_upload(3, live)
    q.send_signal(19)  # SIGSTOP
    try:
        time.sleep(2.5)
        res = c.run("prune", "--pending-expiry", "1s", "--dry-run", "--json", code=0)
        expect_eq(res.json()["cleaned"], [name(2) + "/"], "--dry-run lists the killed save's step only",
                  res)
        check(c.uploads(c.key(2, "")), "--dry-run removes nothing")
        res = c.run("prune", "--pending-expiry", "1s", "--json", code=0)
        expect_eq(res.json()["cleaned"], [name(2) + "/"], "prune cleans the killed save's step only",
                  res)
        expect_eq(c.uploads(c.key(2, "")), [], "the killed save's multipart upload is aborted")
        expect_eq(list(c.objects(c.key(2, ""))), [], "no object of the killed save remains")
        expect_eq(list(c.objects(f"runs/a/.ckpt/saving/{name(2)}")), [], "nor its lease")
        check(c.uploads(c.key(3, "")), "the live writer's upload is left")
    finally:
        q.send_signal(18)  # SIGCONT
    out, err = q.communicate(timeout=600)
    check(q.returncode == 0, f"the live writer commits: exit {q.returncode}, {err.decode()!r}")
    res = c.run("info", "--json", code=0)
    expect_eq([ck["name"] for ck in res.json()["checkpoints"]], [name(1), name(3)],
              "steps 1 and 3", res)
    c.verify_ok()
    out = c.tmp / "out"
    c.run("load", "3", "--to", out, code=0)
    expect_eq(tree(out), {"model.bin": sha256_file(live / "model.bin")}, "step 3 whole")
    expect_eq(c.uploads("runs/a/"), [], "no multipart upload left")
    expect_eq(list(c.objects("runs/a/.ckpt/saving/")), [], "no step lease left")


def sharded(c, root):
    """Sharded saves (SPEC §10) in the order a job's life takes them, on root (a directory or
    the store): (what, exit code, --json document or error) of each."""
    out = []

    def step(what, *args, code=0, env=None):
        res = c.run(*args, "--json", root=root, code=code, what=what, env=env)
        out.append((what, res.rc, res.json() if res.rc == 0 else res.json_error()))

    src = c.tmp / "shards"
    for i in range(3):
        d = src / f"r{i}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"model-{i}.pt").write_bytes(f"rank {i} weights\n".encode() * (2000 + i))
        (d / "opt").mkdir(exist_ok=True)
        (d / "opt" / f"rank-{i}.pt").write_bytes(f"rank {i} optimizer\n".encode() * 99)
    big = src / "r2" / "big.bin"
    if not big.exists():
        big.write_bytes(os.urandom(21 << 20))  # a multipart upload, the same bytes in both roots
    step("shard 0/3 of step 1", "save", "--step", 1, "--shard", "0/3", "--group", "g",
         "--from", src / "r0", "--metric", "loss=0.5", "--best-key", "loss", "--weights", "model-*")
    step("shard 1/3 of step 1", "save", "--step", 1, "--shard", "1/3", "--group", "g",
         "--from", src / "r1", "--weights", "model-*")
    step("info with a pending step", "info")
    step("a plain save of the pending step", "save", "--step", 1, src / "r0" / "model-0.pt",
         code=4)
    step("shard 1/3 with shard 0's path", "save", "--step", 1, "--shard", "1/3", "--group", "g",
         "--from", src / "r0", code=4)
    step("shard 2/4 (another count)", "save", "--step", 1, "--shard", "2/4", "--group", "g",
         "--from", src / "r2", code=4)
    step("shard 2/3 with another loss", "save", "--step", 1, "--shard", "2/3", "--group", "g",
         "--from", src / "r2", "--metric", "loss=0.7", code=4)
    step("shard 2/3 completes step 1", "save", "--step", 1, "--shard", "2/3", "--group", "g",
         "--from", src / "r2", "--weights", "model-*")
    step("shard 1/3 again, committed", "save", "--step", 1, "--shard", "1/3", "--group", "g",
         "--from", src / "r1", "--weights", "model-*")
    step("shard 1/3 of step 1 with other files", "save", "--step", 1, "--shard", "1/3",
         "--group", "g", "--from", src / "r0", code=4)
    # The job restarts (torchrun's restart count): the new attempt retires the old one's shards.
    step("shard 0/2 of step 2, group a", "save", "--step", 2, "--shard", "0/2", "--group", "a",
         "--from", src / "r0", "--metric", "loss=0.4")
    step("shard 0/2 of step 2, restarted", "save", "--step", 2, "--shard", "0/2",
         "--from", src / "r0", "--metric", "loss=0.4",
         env={"TORCHELASTIC_RUN_ID": "job", "TORCHELASTIC_RESTART_COUNT": "1"})
    step("a late shard of group a", "save", "--step", 2, "--shard", "1/2", "--group", "a",
         "--from", src / "r1", code=4)
    step("info, step 2 pending", "info")
    step("abort 2", "abort", "2")
    step("abort 2 again", "abort", "2", code=3)
    step("shard 0/2 of step 3", "save", "--step", 3, "--shard", "0/2", "--group", "h",
         "--from", src / "r0", "--metric", "loss=0.3")
    step("prune within the pending expiry", "prune", "--pending-expiry", "1h")
    step("info, step 3 pending", "info")
    step("verify", "verify")
    return out


@scenario
def store_sharded_save_matches_directory(c):
    """Sharded saves on the store give the exit codes and --json they give on a directory:
    staged shards, the commit by the last one in, the merged manifest, pending steps in info,
    disjoint paths, one count, one value per metric, a rerun after the commit, a restarted
    attempt retiring the old one, superseded late shards, abort, prune within the expiry. The
    store then holds the directory's files, and nothing of the aborted or retired attempts."""
    c.tool_run("mb", c.bucket)
    local = str(c.root)
    want = sharded(c, c.root)
    got = sharded(c, c.url)
    for (what, wrc, wdoc), (_, grc, gdoc) in zip(want, got):
        expect_eq(grc, wrc, f"{what}: exit code")
        expect_eq(timeless(gdoc), timeless(swap_roots(wdoc, local, c.url)), f"{what}: --json")
    wm, gm = manifests(c, c.root), manifests(c, c.url)
    expect_eq(gm, wm, "the merged manifests")
    doc = json.loads((c.root / name(1) / "_checkpoint.json").read_text())
    expect_eq(doc.get("shards"), 3, "the manifest records the shard count")
    objs = {k[len("runs/a/"):]: n for k, n in c.objects("runs/a/").items()}
    files = {str(p.relative_to(c.root)): p.stat().st_size for p in c.root.rglob("*")
             if p.is_file() and not str(p.relative_to(c.root)).startswith(".ckpt")}
    pending_objs = {k: n for k, n in objs.items() if k.startswith(name(3) + "/")}
    expect_eq({k: n for k, n in objs.items() if not k.startswith(".ckpt/") and k not in pending_objs},
              files, "the objects of the committed steps are the directory's files")
    expect_eq(sorted(pending_objs), [f"{name(3)}/model-0.pt", f"{name(3)}/opt/rank-0.pt"],
              "the pending step 3 holds its one shard's objects")
    check(not any(k.startswith(name(2) + "/") or k.startswith(f".ckpt/pending/{name(2)}")
                  for k in objs), "nothing is left of the aborted step 2")
    expect_eq(c.uploads("runs/a/"), [], "no multipart upload left")
    # sha256sum -c accepts the merged SHA256SUMS, as stored.
    got_dir = c.tmp / "got"
    c.tool_run("get-tree", c.bucket, f"runs/a/{name(1)}", got_dir)
    res = harness.execute(["sha256sum", "-c", "SHA256SUMS"], cwd=str(got_dir), env=c.env(),
                          timeout=120, code=0, what="sha256sum -c")
    # The pending step 3 expires: prune removes its record and objects, as on the directory.
    time.sleep(1.5)
    for root in (c.root, c.url):
        res = c.run("prune", "--pending-expiry", "1s", "--json", root=root, code=0)
        expect_eq([p["name"] for p in res.json()["expired"]], [name(3)],
                  "prune removes the idle pending step", res)
    expect_eq([k for k in c.objects("runs/a/") if name(3) in k], [],
              "no object of the expired step is left")
    res = c.run("info", "--json", code=0)
    expect_eq(res.json()["pending"], [], "no pending step left", res)


@scenario
def store_sharded_writers(c):
    """8 writers of one step, side by side and with no lock: each exits 0, exactly one reports
    the commit, and the checkpoint is every shard's files, verified. Then one of 4 writers is
    killed with kill -9 mid-upload: the step stays pending with that shard missing, nothing of
    it is visible, and rerunning that shard (as a restarted rank does) clears what the killed
    writer left and commits; prune then aborts its multipart upload."""
    c.tool_run("mb", c.bucket)
    src = c.tmp / "ranks"
    procs = []
    for i in range(8):
        d = src / f"r{i}"
        d.mkdir(parents=True)
        (d / f"model-{i:02}.pt").write_bytes(os.urandom((1 << 20) + i))
        (d / f"rng-{i:02}.pt").write_bytes(f"rng {i}".encode())
        procs.append(c.spawn("save", "--step", 1, "--shard", f"{i}/8", "--group", "g",
                             "--from", d, "--metric", "loss=0.5", "--json"))
    docs = []
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=600)
        check(p.returncode == 0, f"shard {i}: exit {p.returncode}: {err.decode()!r}")
        docs.append(json.loads(out))
    expect_eq(sum(1 for d in docs if d["committed"]), 1, "exactly one writer commits")
    res = c.run("info", "1", "--json", code=0)
    expect_eq(res.json()["file_count"], 16, "the checkpoint holds every shard's files", res)
    out = c.tmp / "out"
    c.run("load", "1", "--to", out, code=0)
    want = {}
    for i in range(8):
        want.update({p.name: sha256_file(p) for p in (src / f"r{i}").iterdir()})
    expect_eq(tree(out), want, "every shard's bytes")
    c.verify_ok()
    expect_eq(c.run("info", "--json", code=0).json()["pending"], [], "no pending step")
    expect_eq([k for k in c.objects("runs/a/.ckpt/") if "pending" in k or "saving" in k], [],
              "no pending record and no step lease left")

    # kill -9 of shard 3 of 4 mid-upload.
    work = c.tmp / "w2"
    for i in range(4):
        d = work / f"r{i}"
        d.mkdir(parents=True)
        (d / f"part-{i}.pt").write_bytes(os.urandom(300_000 + i))
    (work / "r3" / "huge.bin").write_bytes(os.urandom(96 << 20))  # 6 parts
    p = c.spawn("save", "--step", 2, "--shard", "3/4", "--group", "g2", "--from", work / "r3")
    deadline = time.monotonic() + 120
    # Killed once its small file is stored and its big one is mid-upload (on a busy machine the
    # small one may take longer to land than the big one to start).
    while (not c.uploads(c.key(2, "")) or c.key(2, "part-3.pt") not in c.objects(c.key(2, ""))) \
            and p.poll() is None:
        check(time.monotonic() < deadline, "the writer started no multipart upload")
        time.sleep(0.05)
    check(p.poll() is None, "the writer was still uploading")
    p.kill()
    p.wait()
    for i in range(3):
        c.run("save", "--step", 2, "--shard", f"{i}/4", "--group", "g2", "--from", work / f"r{i}",
              code=0)
    res = c.run("info", "--json", code=0)
    pend = res.json()["pending"]
    expect_eq([(x["name"], x["shards"]["present"], x["shards"]["missing"]) for x in pend],
              [(name(2), [0, 1, 2], [3])], "step 2 pending without shard 3", res)
    c.run("info", "2", code=3, what="a pending step is no checkpoint")
    c.verify_ok()
    # The restarted rank 3. Its small file was stored before the kill: the rerun's create-only
    # upload is refused, the object cleared under the step's lease, and stored again.
    check(c.key(2, "part-3.pt") in c.objects(c.key(2, "")), "the killed writer stored part-3.pt")
    res = c.run("save", "--step", 2, "--shard", "3/4", "--group", "g2", "--from", work / "r3",
                "--json", code=0)
    check(res.json()["committed"] is True, "the rerun shard commits the step", res)
    out2 = c.tmp / "out2"
    c.run("load", "2", "--to", out2, code=0)
    want = {}
    for i in range(4):
        want.update({p.name: sha256_file(p) for p in (work / f"r{i}").iterdir()})
    expect_eq(tree(out2), want, "step 2 is every shard's bytes")
    c.verify_ok()
    check(c.uploads(c.key(2, "")), "the killed writer's multipart upload is still open")
    time.sleep(1.5)
    res = c.run("prune", "--pending-expiry", "1s", "--json", code=0)
    expect_eq(c.uploads("runs/a/"), [], "prune aborted the killed writer's upload")
    expect_eq(sorted(k.rsplit("/", 1)[-1] for k in c.objects(c.key(2, ""))),
              sorted(["SHA256SUMS", "_checkpoint.json", *want]), "step 2 holds its own objects")


@scenario
def store_sharded_commit_fails_then_ranks_rerun(c):
    """The last shard of a set cannot commit (another host holds the root's lease past
    --lock-timeout): exit 5, the set complete and pending, nothing listed. The restarted job then
    reruns every rank with the same files: the first rerun finds its objects there (a small
    file and a multipart one), keeps them, and commits; the others are reruns of a committed
    step (exit 0, existing). No object is stored twice, and nothing is left pending."""
    c.first_checkpoint()
    src = c.tmp / "ranks"
    for i in range(3):
        d = src / f"r{i}"
        d.mkdir(parents=True)
        (d / f"model-{i}.pt").write_bytes(os.urandom(200_000 + i))
    (src / "r0" / "big.bin").write_bytes(os.urandom(21 << 20))  # a multipart upload
    for i in range(2):
        c.run("save", "--step", 2, "--shard", f"{i}/3", "--group", "g", "--from", src / f"r{i}",
              code=0)
    # A live lease on the root, held by a writer on another host.
    held = {"token": "elsewhere", "expires_ms": int(time.time() * 1000) + 120_000,
            "holder": {"pid": 1, "host": "another-host", "command": "ckpt prune"}}
    c.tool_run("put-text", c.bucket, "runs/a/.ckpt/lock", json.dumps(held) + "\n")
    res = c.run("save", "--step", 2, "--shard", "2/3", "--group", "g", "--from", src / "r2",
                code=5, lock_timeout=1)
    check("recorded and completes" in res.err and "run any one shard again" in res.err,
          "the message says the set is complete and how to commit it", res)
    res = c.run("info", "--json", code=0)
    expect_eq([ck["name"] for ck in res.json()["checkpoints"]], [name(1)], "nothing new listed",
              res)
    expect_eq([(p["name"], p["shards"]["missing"]) for p in res.json()["pending"]], [(name(2), [])],
              "step 2 pending with every shard in", res)
    c.tool_run("rm", c.bucket, "runs/a/.ckpt/lock")
    before = {k: v for k, v in c.versions(c.key(2, "")).items()
              if not k.endswith("/SHA256SUMS")}  # the committer writes that one
    time.sleep(1.1)  # a rewrite would show a later time stored
    docs = [c.run("save", "--step", 2, "--shard", f"{i}/3", "--group", "g", "--from",
                  src / f"r{i}", "--json", code=0).json() for i in range(3)]
    expect_eq([(d["committed"], d["existing"]) for d in docs],
              [(True, False), (False, True), (False, True)],
              "the first rerun commits; the others find the step committed with their files")
    after = c.versions(c.key(2, ""))
    expect_eq({k: v for k, v in after.items() if k in before}, before,
              "every object stored before is kept as it was, not stored again")
    expect_eq(sorted(k.rsplit("/", 1)[-1] for k in after),
              sorted(["SHA256SUMS", "_checkpoint.json", "big.bin", "model-0.pt", "model-1.pt",
                      "model-2.pt"]), "the step's objects, once each")
    expect_eq(c.uploads("runs/a/"), [], "no multipart upload left open")
    c.verify_ok()
    expect_eq(c.run("info", "--json", code=0).json()["pending"], [], "nothing pending")
    out = c.tmp / "out"
    c.run("load", "2", "--to", out, code=0)
    want = {}
    for i in range(3):
        want.update({p.name: sha256_file(p) for p in (src / f"r{i}").iterdir()})
    expect_eq(tree(out), want, "every shard's bytes")


def manifests(c, root):
    """{name: (step, metrics, meta, weights, files)} of every checkpoint of root, read by ckpt."""
    out = {}
    for ck in c.run("info", "--json", root=root, code=0).json()["checkpoints"]:
        d = c.run("info", ck["name"], "--json", root=root, code=0).json()
        out[d["name"]] = (d["step"], d["metrics"], d["meta"], d["weights"], d["files"])
    return out


@scenario
def store_copy_round_trip(c):
    """ckpt copy directory -> store -> directory: the same files, byte for byte, and the same
    metadata, verified at each end; repeated copies are successes; a source that differs from
    its manifest is never committed at the destination."""
    c.seed_local()
    c.tool_run("mb", c.bucket)
    for ref in ("1", "best", "latest"):
        res = c.local("copy", ref, c.url, "--json", code=0)
        doc = res.json()
        expect_eq((doc["root"], doc["committed"], doc["source"]["path"]),
                  (c.url, True, str(c.root / doc["source"]["name"])), f"copy {ref} --json", res)
    c.verify_ok()
    expect_eq(manifests(c, c.url), manifests(c, c.root), "the store holds the same checkpoints")
    res = c.run("info", "best", "--json", code=0)
    expect_eq(res.json()["name"], name(2), "the store ranks by the source's best key", res)
    # Again: nothing new.
    res = c.local("copy", "latest", c.url, "--json", code=0)
    check(res.json()["existing"] is True, "a repeated copy is existing", res)
    # And back into a new directory.
    back = c.tmp / "back"
    tmpdir = c.tmp / "tmpdir"
    tmpdir.mkdir()
    for ref in ("3", "1", "2"):
        c.run("copy", ref, back, code=0, env={"TMPDIR": str(tmpdir)})
    expect_eq(list(tmpdir.iterdir()), [], "the download's temporary directory is gone")
    c.run("verify", root=back, code=0)
    expect_eq(manifests(c, back), manifests(c, c.root), "the directory holds the same checkpoints")
    for s in (1, 2, 3):
        # The manifest aside (its commit_seq and commit time are the destination's).
        got, want = tree(back / name(s)), tree(c.root / name(s))
        for t in (got, want):
            del t["_checkpoint.json"]
        expect_eq(got, want, f"{name(s)} byte for byte")
    # --step: another step at the destination, the same files.
    res = c.local("copy", "1", c.url, "--step", "100", "--json", code=0)
    expect_eq(res.json()["name"], name(100), "copy --step", res)
    got = manifests(c, c.url)[name(100)]
    expect_eq(got[1:], manifests(c, c.root)[name(1)][1:], "copy --step keeps the metadata")
    c.local("copy", "1", c.root, code=2, what="copy into its own root and step")

    # A damaged source: a file of the directory changed behind ckpt's back, the same size.
    f = c.root / name(3) / "nested/opt.pt"
    f.write_bytes(bytes(b ^ 1 for b in f.read_bytes()))
    other = f"s3://{c.bucket}/runs/other"
    res = c.local("copy", "3", other, code=1, what="copy of a damaged checkpoint")
    check("nested/opt.pt" in res.err and "nothing was committed" in res.err, "says what and that "
          "nothing was committed", res)
    expect_eq([k for k in c.objects("runs/other/") if k.startswith("runs/other/step-")], [],
              "no object of the step stays at the destination")
    # A damaged object in the store: copied back, it is caught before the destination sees it.
    c.tool_run("put-text", c.bucket, c.key(2, "nested/opt.pt"), "optimizer X\n")
    dest = c.tmp / "dest2"
    res = c.run("copy", "2", dest, code=1, what="copy of a damaged object",
                env={"TMPDIR": str(tmpdir)})
    check("digest_mismatch" in res.err, "names the damage", res)
    check(not dest.exists() or not any(dest.glob("step-*")), "no checkpoint at the destination")
    expect_eq(list(tmpdir.iterdir()), [], "the failed copy's temporary directory is gone")


if __name__ == "__main__":
    sys.exit(harness.main(sys.argv, __doc__, SCENARIOS, Ctx, "ckpt-e2e"))
