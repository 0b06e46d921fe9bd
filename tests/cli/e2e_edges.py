#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Edge cases found in review: sources overlapping the root, load --to copies, --repair with refs,
newer-schema checkpoints, non-finite lock timeouts.

Usage: e2e_edges.py --list | --all | SCENARIO...   (binary: $CKPT_BIN)
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, expect_rc, name, sha256_file, snapshot  # noqa: E402

SCENARIOS, scenario = harness.registry()


class Ctx(harness.RootCtx):
    def run(self, *args, root=None, code=None, what="", cwd=None):
        cmd = [harness.BIN, "--lock-timeout", "5", "-C", str(root or self.root), *args]
        return harness.execute(cmd, cwd=str(cwd or self.tmp), env=harness.child_env(), timeout=120,
                               code=code, what=what or " ".join(map(str, args)))

    def file(self, rel, data):
        p = self.src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return p

    def seed(self, steps=(1, 2)):
        for s in steps:
            f = self.file("model.bin", f"weights {s}\n".encode() * 100)
            self.run("save", "--step", s, f, "--metric", f"loss={1.0 / s}", "--best-key", "loss",
                     "--weights", "model.bin", code=0)


@scenario
def save_sources_overlapping_root(c):
    """--move/--link from inside the root, or a source holding the root, would eat checkpoints."""
    c.seed()
    before = snapshot(c.root)
    work = c.tmp / "work"
    (work / "sub").mkdir(parents=True)
    (work / "sub" / "f").write_text("x")
    inside_root = work / "ckpts"
    c.run("save", "--step", 1, inside_root / "x", root=inside_root, code=3, what="missing source")
    res = c.run("save", "--step", 9, "--move", "--from", work, root=work / "ckpts", code=2,
                what="--move --from a directory holding the root")
    check("contains the root" in res.err, "the message says why", res)
    res = c.run("save", "--step", 9, "--move", c.root / name(1) / "model.bin", code=2,
                what="--move of a committed file")
    check("inside the root" in res.err, "the message says why", res)
    c.run("save", "--step", 9, "--link", c.root / name(1), code=2, what="--link of a checkpoint")
    c.run("save", "--step", 9, c.root / ".ckpt", code=2, what="a source inside .ckpt")
    check(snapshot(c.root, skip_top=(".ckpt",)) == {k: v for k, v in before.items()
                                                    if not k.startswith(".ckpt")},
          "the root is unchanged by the refused saves")
    # Copying one committed file into a new checkpoint stays allowed.
    c.run("save", "--step", 9, "--copy", c.root / name(1) / "model.bin", code=0)
    c.verify_ok()


@scenario
def save_link_follows_symlinks(c):
    target = c.file("real.bin", b"real content\n")
    link = c.src / "alias.bin"
    os.symlink(target, link)
    for mode in ("--link", "--move"):
        step = 1 if mode == "--link" else 2
        c.run("save", "--step", step, mode, "--follow-symlinks", link, code=0, what=mode)
        stored = c.root / name(step) / "alias.bin"
        check(not stored.is_symlink() and stored.read_bytes() == b"real content\n",
              f"{mode} --follow-symlinks stores the target's content")
        if mode == "--move":
            check(not os.path.lexists(link), "--move removed the source link")
            check(target.exists(), "--move left the link's target alone")
        else:
            os.remove(link)
            os.symlink(target, link)
    c.verify_ok()


@scenario
def load_to_makes_copies(c):
    c.seed()
    out = c.tmp / "out"
    res = c.run("load", "latest", "--to", out, code=0)
    loaded = out / "model.bin"
    check(res.out.split() == [str(loaded)], "load --to prints the materialised path", res)
    committed = c.root / name(2) / "model.bin"
    check(os.stat(loaded).st_ino != os.stat(committed).st_ino, "the loaded file is a copy")
    with open(loaded, "r+b") as f:  # a program rewriting its input in place
        f.write(b"CORRUPT")
    c.verify_ok(what="verify after the loaded copy was modified")
    c.run("load", "latest", "--to", out, code=0, what="load --to again")
    check(sorted(os.listdir(out)) == ["model.bin"], f"no stray temporary files: {os.listdir(out)}")
    check(loaded.read_bytes() == committed.read_bytes(), "the second load replaced the copy")
    res = c.run("load", "latest", "--to", c.root / name(1), code=2, what="--to inside the root")
    check("inside the root" in res.err, "the message says why", res)
    linked = c.tmp / "linked"
    c.run("load", "latest", "--to", linked, "--link", code=0)
    c.run("load", "latest", "--to", linked, "--link", code=0, what="--link again")
    check(os.stat(linked / "model.bin").st_ino == os.stat(committed).st_ino, "--link hard-links")
    check(sorted(os.listdir(linked)) == ["model.bin"], f"no stray files: {os.listdir(linked)}")
    check(os.stat(committed).st_nlink == 2, f"one extra link only: {os.stat(committed).st_nlink}")
    c.run("load", "latest", "--link", code=2, what="--link without --to")
    c.verify_ok()


@scenario
def verify_repair_needs_whole_root(c):
    c.seed((1, 2))
    (c.root / "last").write_text(name(1) + "\n")
    c.run("verify", "--repair", "2", code=2, what="--repair with a REF")
    check((c.root / "last").read_text() == name(1) + "\n", "nothing was repaired")
    c.run("verify", "--repair", code=0)
    check((c.root / "last").read_text() == name(2) + "\n", "--repair moved last to the newest")


@scenario
def newer_schema_checkpoint(c):
    c.seed((1, 2))
    p = c.root / name(2) / "_checkpoint.json"
    doc = json.loads(p.read_text())
    doc["schema_version"] = 2
    p.write_text(json.dumps(doc))
    res = c.run("verify", code=7, what="verify meets a newer checkpoint")
    check("2" in res.err and "1" in res.err, "the message names both versions", res)
    c.run("prune", "--keep-last", "1", code=0)
    check((c.root / "last").read_text() == name(2) + "\n",
          "prune did not move last back from the newer checkpoint")
    check((c.root / name(2)).is_dir(), "prune left the newer checkpoint alone")


@scenario
def lock_timeout_must_be_finite(c):
    c.seed((1,))
    for value in ("nan", "inf", "-1", ""):
        res = harness.execute([harness.BIN, "--lock-timeout", value, "-C", str(c.root), "prune",
                               "--keep-last", "1"], cwd=str(c.tmp), env=harness.child_env(),
                              timeout=30)
        expect_rc(res, 2, f"--lock-timeout {value!r}")


@scenario
def prune_cleans_marker_temp_files(c):
    """A crash mid marker write leaves .last.tmp.* beside the markers; the next prune removes it."""
    c.seed((1,))
    stray = [c.root / ".last.tmp.999.0.deadbeef", c.root / ".best.json.tmp.999.1.deadbeef",
             c.root / ".ckpt" / ".commit_seq.tmp.999.2.deadbeef"]
    for p in stray:
        p.write_text("half")
    keep = c.root / ".notes.tmp.txt"  # not ours: never touched
    keep.write_text("mine")
    res = c.run("--json", "prune", "--keep-last", "1", "--dry-run", code=0)
    cleaned = json.loads(res.out)["cleaned"]
    check(sorted(cleaned) == sorted([".last.tmp.999.0.deadbeef", ".best.json.tmp.999.1.deadbeef",
                                     ".ckpt/.commit_seq.tmp.999.2.deadbeef"]),
          f"dry run lists the temp files: {cleaned}", res)
    check(all(p.exists() for p in stray), "the dry run removed nothing")
    c.run("prune", "--keep-last", "1", code=0)
    check(not any(p.exists() for p in stray), "prune removed the temp files")
    check(keep.read_text() == "mine", "a file that is not a marker temp file stays")
    c.verify_ok()


if __name__ == "__main__":
    sys.exit(harness.main(sys.argv, __doc__, SCENARIOS, Ctx, "ckpt-edges"))
