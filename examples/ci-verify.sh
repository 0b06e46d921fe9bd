#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# A CI step that fails on a corrupt checkpoint: runs `ckpt --json verify` on a root, prints a
# short summary that lists every failed file, and exits nonzero unless everything verified.
# Under GitHub Actions each failure is also an ::error:: annotation.
#
#   examples/ci-verify.sh [--allow-empty] [--strict] [--quick] [--report FILE] [ROOT [REF...]]
#
# ROOT: the checkpoint root (default: $CKPT_ROOT). REF...: the checkpoints to verify (latest,
# best, a step, a name); default: every checkpoint and the markers (last, best.json).
#   --allow-empty   a root that holds no checkpoint yet passes (default: it fails, exit 3)
#   --strict        warnings (extra files, stale markers) fail too
#   --quick         check presence and sizes only, no hashing
#   --report FILE   also write verify's JSON report to FILE (a CI artifact to keep)
# The binary is $CKPT_BIN, else ckpt on PATH; the summary is read from the JSON by python3.
#
# Exit status: 0 every checkpoint verified; 1 a corrupt checkpoint (or marker); 2 usage;
# 3 no such root, a REF that names nothing, or an empty root without --allow-empty; any other
# status is ckpt's own (5 locked, 6 I/O, 7 written by a newer ckpt; see ckpt(1), EXIT STATUS).
set -u

usage() {
  echo "usage: ci-verify.sh [--allow-empty] [--strict] [--quick] [--report FILE] [ROOT [REF...]]"
}

allow_empty=0 strict='' quick='' report=''
while [ $# -gt 0 ]; do
  case $1 in
    --allow-empty) allow_empty=1 ;;
    --strict) strict=--strict ;;
    --quick) quick=--quick ;;
    --report)
      [ $# -ge 2 ] || { usage >&2; exit 2; }
      report=$2
      shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; break ;;
    -*) echo "ci-verify: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) break ;;
  esac
  shift
done
root=${1:-${CKPT_ROOT:-}}
[ $# -gt 0 ] && shift
if [ -z "$root" ]; then
  echo "ci-verify: no root: give ROOT or set CKPT_ROOT" >&2
  usage >&2
  exit 2
fi
ckpt=${CKPT_BIN:-ckpt}

tmp=$(mktemp -d) || exit 6
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

"$ckpt" --json -C "$root" verify ${strict:+"$strict"} ${quick:+"$quick"} -- "$@" >"$tmp/report" 2>"$tmp/stderr"
rc=$?
if [ -n "$report" ]; then
  cp "$tmp/report" "$report" || exit 6
fi

if ! command -v python3 >/dev/null 2>&1; then
  echo "ci-verify: python3 not found: ckpt's own output follows" >&2
  cat "$tmp/report" "$tmp/stderr" >&2
  exit "$rc"
fi

# The summary, and the exit status: ckpt's, or 3 for an empty root without --allow-empty.
python3 - "$tmp/report" "$tmp/stderr" "$rc" "$allow_empty" "$root" "$#" <<'EOF'
import json, os, sys

report_path, stderr_path, rc, allow_empty, root, nrefs = sys.argv[1:]
rc, allow_empty, nrefs = int(rc), allow_empty == "1", int(nrefs)
gha = os.environ.get("GITHUB_ACTIONS") == "true"


def load(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


report = load(open(report_path, encoding="utf-8", errors="replace").read() or "null")
stderr = open(stderr_path, encoding="utf-8", errors="replace").read().strip()
if report is None:  # ckpt failed before it verified anything: its error is stderr's last line
    err = load(stderr.splitlines()[-1] if stderr else "") or {}
    err = err.get("error") if isinstance(err, dict) else None
    message = err["message"] if isinstance(err, dict) else (stderr or f"ckpt exited {rc}")
    print(f"ci-verify: {root}: {message}", file=sys.stderr)
    if gha:
        print(f"::error title=ckpt verify::{root}: {message}")
    sys.exit(rc if rc != 0 else 1)

checkpoints = report.get("checkpoints", [])
markers = report.get("markers") or {"ok": True, "problems": []}
problems = [(c["name"] + "/" + p["path"], p) for c in checkpoints for p in c.get("problems", [])]
problems += [(p["path"], p) for p in markers.get("problems", [])]
failed = [c["name"] for c in checkpoints if not c.get("ok")]
failures = sum(1 for _, p in problems if p.get("severity") == "failure")
warnings = len(problems) - failures
if not checkpoints and nrefs == 0 and rc == 0:
    print(f"ci-verify: {report.get('root', root)}: no checkpoint yet"
          + (" (allowed by --allow-empty)" if allow_empty else "; --allow-empty lets an empty root pass"))
    sys.exit(0 if allow_empty else 3)
print(f"ci-verify: {report.get('root', root)}: {len(checkpoints)} checkpoint(s), {len(failed)} failed, "
      f"{warnings} warning(s); markers {'ok' if markers.get('ok', True) else 'FAILED'}")
for where, p in problems:
    bad = p.get("severity") == "failure"
    print(f"  {'FAILED ' if bad else 'warning'} {where}: {p.get('kind')} ({p.get('detail')})")
    if gha and bad:
        print(f"::error title=corrupt checkpoint::{where}: {p.get('kind')} ({p.get('detail')})")
sys.exit(rc)
EOF
