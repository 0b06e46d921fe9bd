#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Sharded saves on a real distributed file system: a single-node Ceph cluster (tests/cluster/ceph-up.sh:
mon, mgr, OSD, MDS, all on 127.0.0.1) with CephFS mounted twice through ceph-fuse, as two hosts would
mount it. Half the writers of each step run on each mount; the commit must happen exactly once and the
checkpoint verify from both. ceph-fuse answers RENAME_NOREPLACE with EINVAL, so this also proves that
no commit depends on it.

Needs root and Debian's ceph-mon ceph-mgr ceph-osd ceph-mds ceph-fuse ceph-common (scripts/setup.sh
--test installs them); without them the scenario fails, it never passes by skipping.

Usage: e2e_cephfs.py --list | --all | SCENARIO...   (binary: $CKPT_BIN)
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, expect_eq, name  # noqa: E402

SCENARIOS, scenario = harness.registry()
CEPH_UP = pathlib.Path(__file__).resolve().parent.parent / "cluster" / "ceph-up.sh"


class Ctx(harness.BaseCtx):
    def __init__(self, tmp):
        super().__init__(tmp)
        self.cluster = None
        self.src = self.tmp / "src"
        self.src.mkdir()

    def ckpt(self, root, *args, code=None, what=""):
        return harness.execute([harness.BIN, "-C", str(root), *map(str, args)], cwd=str(self.tmp),
                               env=harness.child_env(), timeout=300, code=code,
                               what=what or " ".join(map(str, args)))

    def start_cluster(self):
        missing = [b for b in ("ceph-mon", "ceph-osd", "ceph-mds", "ceph-fuse") if not shutil.which(b)]
        check(not missing, f"{', '.join(missing)} not installed: run scripts/setup.sh --test "
                           "(Debian's ceph-mon ceph-mgr ceph-osd ceph-mds ceph-fuse ceph-common)")
        check(os.geteuid() == 0, "ceph-fuse mounts need root")
        # A short path: the daemons' admin sockets must fit in a socket address.
        self.cluster = pathlib.Path(tempfile.mkdtemp(prefix="ckpt-ceph-", dir="/tmp"))
        # Ports of its own, so that a developer's cluster on the defaults is no obstacle.
        env = dict(os.environ, CEPH_WITH_RGW="0", CEPH_FUSE_MOUNTS="2", CEPH_OSD_SIZE="4G",
                   CEPH_MON_PORT="47300", CEPH_PORT_MIN="47800", CEPH_PORT_MAX="47999")
        t = time.monotonic()
        res = harness.execute(["bash", str(CEPH_UP), "start", str(self.cluster)], cwd=str(self.tmp),
                              env=env, timeout=600, what="ceph-up.sh start")
        check(res.rc == 0, "the Ceph cluster started", res)
        print(f"  cluster up in {time.monotonic() - t:.1f} s", flush=True)
        mounts = [self.cluster / "mnt" / "host0", self.cluster / "mnt" / "host1"]
        for m in mounts:
            check(os.path.ismount(m), f"{m} is a ceph-fuse mount", res)
        return mounts

    def close(self):
        if self.cluster is not None:
            subprocess.run(["bash", str(CEPH_UP), "destroy", str(self.cluster)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)


def writers_on_two_mounts(c, mounts, n, step):
    """n writers of one step, even ranks on the first mount and odd ones on the second."""
    rel = pathlib.Path(f"run-{n}")
    files = {}
    procs = []
    for i in range(n):
        f = c.src / f"n{n}" / f"rank-{i}.bin"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(os.urandom(4096 + 977 * i))
        files[f"shards/rank-{i}.bin"] = harness.sha256_file(f)
        root = mounts[i % 2] / rel
        cmd = [harness.BIN, "-C", str(root), "--json", "save", "--step", str(step),
               "--shard", f"{i}/{n}", f"shards/rank-{i}.bin={f}"]
        if i == 0:
            cmd += ["--metric", "loss=0.25", "--best-key", "loss"]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      env=harness.child_env()))
    outs = []
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=600)
        check(p.returncode == 0, f"writer {i} of {n} (mount {i % 2}) exited {p.returncode}: "
                                 f"{err.decode(errors='replace')}")
        outs.append(json.loads(out))
    committed = [i for i, o in enumerate(outs) if o["committed"]]
    expect_eq(len(committed), 1, f"writers of {n} that report \"committed\": true")
    print(f"  {n} writers on two mounts: shard {committed[0]} (mount {committed[0] % 2}) committed",
          flush=True)
    for m in mounts:
        root = m / rel
        c.ckpt(root, "verify", code=0, what=f"verify through {m.name}")
        info = json.loads(c.ckpt(root, "--json", "info", code=0).out)
        expect_eq(info["pending"], [], f"pending steps seen through {m.name}")
        expect_eq(info["last"]["name"], name(step), f"latest through {m.name}")
    ckdir = mounts[1] / rel / name(step)
    res = harness.execute(["sha256sum", "-c", "SHA256SUMS"], cwd=str(ckdir), env=harness.child_env(),
                          timeout=120, code=0, what="sha256sum -c on CephFS")
    expect_eq(res.out.count(": OK"), n, "coreutils checks every shard's file", res)
    meta = json.loads((ckdir / "_checkpoint.json").read_text())
    expect_eq(meta["shards"], n, "shards in _checkpoint.json")
    expect_eq({f["path"]: f["sha256"] for f in meta["files"]}, files, "the stored files and digests")
    for m in mounts:
        for sub in ("staging", "pending", "trash"):
            d = m / rel / ".ckpt" / sub
            left = sorted(os.listdir(d)) if d.is_dir() else []
            expect_eq(left, [], f".ckpt/{sub} through {m.name}")


@scenario
def cephfs_shards_two_mounts(c):
    """2, 8 and 64 writers per step, half on each of two ceph-fuse mounts of one CephFS."""
    mounts = c.start_cluster()
    # ckpt itself never relies on RENAME_NOREPLACE; show that this file system lacks it.
    probe = subprocess.run([sys.executable, "-c",
                            "import ctypes, os, sys\n"
                            "libc = ctypes.CDLL(None, use_errno=True)\n"
                            "a, b = sys.argv[1].encode(), sys.argv[2].encode()\n"
                            "open(a, 'w').close()\n"
                            "rc = libc.renameat2(-100, a, -100, b, 1)\n"
                            "print(ctypes.get_errno() if rc != 0 else 0)\n",
                            str(mounts[0] / "probe-a"), str(mounts[0] / "probe-b")],
                           capture_output=True, text=True, timeout=60)
    print(f"  renameat2(RENAME_NOREPLACE) on ceph-fuse: errno {probe.stdout.strip()}", flush=True)
    for step, n in enumerate((2, 8, 64), start=1):
        writers_on_two_mounts(c, mounts, n, step * 100)


if __name__ == "__main__":
    sys.exit(harness.main(sys.argv, __doc__, SCENARIOS, Ctx, "ckpt-e2e-cephfs", tmp_dir="/var/tmp"))
