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
import sys

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

    def run(self, *args, root=None, code=None, what="", env=None):
        cmd = [harness.BIN, "--lock-timeout", "5", "-C", str(root or self.url), *args]
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

    def key(self, step, path):
        return f"runs/a/{name(step)}/{path}"


def swap_roots(doc, local, url):
    """doc with every string naming the directory root rewritten to name the store root."""
    if isinstance(doc, dict):
        return {k: swap_roots(v, local, url) for k, v in doc.items()}
    if isinstance(doc, list):
        return [swap_roots(v, local, url) for v in doc]
    if isinstance(doc, str) and (doc == local or doc.startswith(local + "/")):
        return url + doc[len(local):]
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
    res = c.run("verify", "--repair", code=7, what="verify --repair on a store")


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
    c.run("verify", "--repair", root=f"s3://{c.bucket}-none/runs/a", code=7,
          what="verify --repair, missing bucket")
    no_creds = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    res = c.run("info", env=no_creds, code=6, what="no credentials")
    check("credentials" in res.err, "the message says credentials are missing", res)
    for url in ("s3://", "s3://b/a//b", "s3://Bad_Bucket!/x", "s3://bucket/../x"):
        c.run("info", root=url, code=2, what=f"malformed address {url}")
    # The commands that change a root do not work on a store yet: refused, and nothing is
    # written anywhere (no directory named after the address either).
    model = c.file("model.bin", b"weights")
    before = c.tool_run("ls", c.bucket, "").out
    for args in (["save", "--step", "7", model], ["prune", "--keep-last", "1"], ["rm", "1"],
                 ["rollback", "1"], ["promote-best", "1", "--key", "loss"], ["abort", "2"],
                 ["verify", "--repair"]):
        res = c.run(*args, code=7, what=" ".join(map(str, args)) + " on a store")
        check("object-store root" in res.err, "the message says why", res)
    expect_eq(c.tool_run("ls", c.bucket, "").out, before, "every object in the bucket is as it was")
    check(not (c.tmp / "s3:").exists(), "nothing was written under a directory named s3:")


if __name__ == "__main__":
    sys.exit(harness.main(sys.argv, __doc__, SCENARIOS, Ctx, "ckpt-e2e"))
