import json, os, subprocess

class CkptError(RuntimeError):
    """A failed ckpt command: its exit code, error kind, not-found reason and message.
    report: the command's JSON output when it printed one anyway (verify's report)."""
    def __init__(self, code, kind, message, reason=None, report=None):
        super().__init__(f"ckpt: {kind}: {message}")
        self.code, self.kind, self.reason, self.report = code, kind, reason, report

def ckpt(*args, root=None):
    """Runs `ckpt --json`; returns its JSON output, or raises CkptError for every failure."""
    root = root or os.environ.get("CKPT_ROOT", "runs/exp1/checkpoints")
    r = subprocess.run(["ckpt", "--json", "-C", root, *args], capture_output=True, text=True)
    if r.returncode == 0:
        return json.loads(r.stdout) if r.stdout.strip() else None
    if r.returncode < 0:  # killed by a signal: it printed nothing to go by
        raise CkptError(r.returncode, "signal", f"killed by signal {-r.returncode}")
    try:
        out = json.loads(r.stdout) if r.stdout.strip() else None  # verify's report
    except ValueError:
        out = None
    lines = r.stderr.strip().splitlines()
    try:
        err = json.loads(lines[-1])["error"]
    except (IndexError, ValueError, KeyError, TypeError):
        raise CkptError(r.returncode, "unknown", r.stderr.strip() or "no message", report=out)
    raise CkptError(err["code"], err["kind"], err["message"], err.get("reason"), out)
