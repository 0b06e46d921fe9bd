#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""--json through the real binary: every command's output, error object and progress event
validated against the published JSON Schemas (docs/json/), one vocabulary across commands
(the same name with the same type everywhere), and invalid checkpoints and warnings reported
inside the JSON.

Needs python3-jsonschema (Debian's package; found in /usr/lib/python3/dist-packages when this
runs under another python3).

Usage: e2e_json.py --list | --all | SCENARIO...   (binary: $CKPT_BIN)
"""
import json
import os
import pathlib
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, check, expect_eq, name  # noqa: E402

try:
    import jsonschema
except ImportError:
    sys.path.append("/usr/lib/python3/dist-packages")
    try:
        import jsonschema
    except ImportError:
        jsonschema = None

SCENARIOS, scenario = harness.registry()
SCHEMAS = pathlib.Path(__file__).resolve().parent.parent.parent / "docs" / "json"
STEP_NAME = re.compile(r"^step-[0-9]{9,}$")


def need_jsonschema():
    check(jsonschema is not None, "python3-jsonschema is not installed (apt-get install python3-jsonschema)")


def validator(schema_name):
    need_jsonschema()
    path = SCHEMAS / f"{schema_name}.schema.json"
    check(path.is_file(), f"no schema {path}")
    # each file stands alone: its shared objects are in its own $defs
    return jsonschema.Draft202012Validator(json.loads(path.read_text()))


def schema_errors(schema_name, doc):
    v = validator(schema_name)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in v.iter_errors(doc)]


class Ctx(harness.RootCtx):
    def __init__(self, tmp):
        super().__init__(tmp)
        self.docs = []        # (schema, document, result) of every output validated
        self.covered = set()  # schemas validated at least once

    def run(self, *args, root=None, code=None, env=None, what=""):
        cmd = [harness.BIN, "-C", str(root or self.root), *args]
        return harness.execute(cmd, cwd=str(self.tmp), env=harness.child_env(env), timeout=300,
                               code=code, what=what or " ".join(map(str, args)))

    def validate(self, schema_name, doc, res):
        errors = schema_errors(schema_name, doc)
        check(not errors, f"output does not match {schema_name}.schema.json:\n    " + "\n    ".join(errors[:20]), res)
        self.docs.append((schema_name, doc, res))
        self.covered.add(schema_name)
        return doc

    def ok(self, schema_name, *args, code=0, env=None):
        """`ckpt --json ARGS`: exit code, one JSON document on stdout matching the schema."""
        res = self.run("--json", *args, code=code, env=env)
        return self.validate(schema_name, res.json(), res)

    def error(self, code, kind, *args, env=None, root=None):
        """`ckpt --json ARGS` that fails: nothing on stdout, one error object on stderr."""
        res = self.run("--json", *args, env=env, root=root)
        harness.expect_json_error(res, code, kind, message=True)
        return self.validate("error", json.loads(res.err.strip().splitlines()[-1]), res)

    def file(self, rel, data):
        p = self.src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return p


def walk(doc, path=""):
    """Every (json-path, key, value) of a document, depth first."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield path, k, v
            yield from walk(v, f"{path}/{k}")
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from walk(v, f"{path}/{i}")


def check_vocabulary(c):
    """The same name with the same type in every output."""
    problems = []
    for schema_name, doc, res in c.docs:
        keys = list(doc)
        if keys[0] != "schema_version" or doc["schema_version"] != 1:
            problems.append(f"{schema_name}: schema_version is not the first field, 1")
        if schema_name != "progress" and keys[-1] != "warnings":
            problems.append(f"{schema_name}: warnings is not the last field")
        for where, k, v in walk(doc):
            at = f"{schema_name}{where}/{k}"
            if isinstance(v, dict) and "name" in v and "path" in v and STEP_NAME.match(str(v["name"])):
                # a checkpoint: its path is absolute and ends with its name
                if not (v["path"].startswith("/") and v["path"].endswith("/" + v["name"])):
                    problems.append(f"{at}: checkpoint path {v['path']!r} is not absolute or not its name's")
            if k == "files" and not isinstance(v, list):
                problems.append(f"{at}: files is a {type(v).__name__}, not a list")
            if k in ("best", "last", "with") and not (v is None or (isinstance(v, dict) and "name" in v)):
                problems.append(f"{at}: {k} is neither null nor a checkpoint object")
            if k in ("removed", "pruned", "kept", "checkpoints", "expired", "invalid") and where.count("/") == 0:
                if not all(isinstance(e, dict) and "name" in e for e in v):
                    problems.append(f"{at}: entries are not objects with a name")
            if k in ("created", "updated") and v is not None and not isinstance(v, str):
                problems.append(f"{at}: a time that is not a string")
            if k in ("total_size", "file_count", "size", "step", "commit_seq") and v is not None and not isinstance(v, int):
                problems.append(f"{at}: {k} is not an integer")
    check(not problems, "vocabulary:\n    " + "\n    ".join(problems))


@scenario
def json_schemas_published(c):
    """Every schema in docs/json is a valid draft 2020-12 schema, and every command has one."""
    need_jsonschema()
    files = sorted(SCHEMAS.glob("*.schema.json"))
    check(len(files) >= 10, f"too few schema files in {SCHEMAS}")
    for f in files:
        try:
            jsonschema.Draft202012Validator.check_schema(json.loads(f.read_text()))
        except jsonschema.SchemaError as e:
            raise Fail(f"{f.name} is not a valid schema: {e.message}")
    # the files are generate.py's output
    fresh = c.tmp / "generated"
    harness.execute([sys.executable, SCHEMAS / "generate.py", fresh], cwd=str(c.tmp), env=None, timeout=60, code=0)
    expect_eq(sorted(p.name for p in fresh.iterdir()), [p.name for p in files], "generate.py writes these files")
    stale = [p.name for p in files if p.read_text() != (fresh / p.name).read_text()]
    check(not stale, f"not generate.py's output (run python3 docs/json/generate.py): {stale}")
    res = c.run("--help", code=0)
    commands = re.findall(r"^  ([a-z][a-z-]+)\s{2,}", res.out.split("Subcommands:")[1], re.M)
    check("save" in commands and "rollback" in commands, "the command list of --help", res)
    missing = [cmd for cmd in commands if cmd != "help" and not (SCHEMAS / f"{cmd}.schema.json").is_file()]
    check(not missing, f"commands without a schema in docs/json: {missing}")


MAN = SCHEMAS.parent.parent / "man"
# the page that documents each schema's fields
PAGES = {"info": "ckpt-info.1", "info-ref": "ckpt-info.1", "info-path": "ckpt-info.1",
         "error": "ckpt.1", "progress": "ckpt.1", "version": "ckpt.1"}


def top_fields(schema):
    """The top-level field names of a schema, through a top-level $ref and oneOf."""
    names = set(schema.get("properties", {}))
    ref = schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        names |= top_fields(schema["$defs"][ref[len("#/$defs/"):]] | {"$defs": schema["$defs"]})
    for alt in schema.get("oneOf", []):
        names |= top_fields(alt | {"$defs": schema.get("$defs", {})})
    return names


@scenario
def json_fields_in_man_pages(c):
    """Every field of every schema is documented in its command's man page (in bold, or quoted in
    an example for the error object and progress events)."""
    missing = []
    for f in sorted(SCHEMAS.glob("*.schema.json")):
        cmd = f.name[: -len(".schema.json")]
        page = MAN / PAGES.get(cmd, f"ckpt-{cmd}.1")
        check(page.is_file(), f"no man page {page.name} for {f.name}")
        text = page.read_text()
        for field in sorted(top_fields(json.loads(f.read_text()))):
            forms = (f"\\fB{field}\\fR", f".B {field}\n", f".BR {field} ", f'"{field}"')
            if not any(form in text for form in forms):
                missing.append(f"{page.name}: {field} ({f.name})")
    check(not missing, "fields the man pages do not document:\n    " + "\n    ".join(missing))


@scenario
def json_every_command_matches_schema(c):
    """Real outputs of every command (each form: plain, sharded, dry run, refused) against the
    schemas; then one vocabulary across all of them; every schema is exercised."""
    w = c.file("run/model.bin", b"w" * 4096)
    c.file("run/optim/0.pt", b"o" * 100)
    run = c.src / "run"
    c.ok("save", "save", "--step", "1", "--from", run, "--metric", "loss=0.9", "--best-key", "loss",
         "--weights", "model.bin", "--keep-last", "10")
    c.file("run/optim/0.pt", b"p" * 100)
    j = c.ok("save", "save", "--step", "2", "--from", run, "--metric", "loss=0.5", "--dedup")
    expect_eq((j["best_updated"], j["best"]["name"], j["shared"]["with"]["name"]), (True, name(2), name(1)),
              "save: best and shared")
    j = c.ok("save", "save", "--step", "2", "--from", run, "--metric", "loss=0.5")
    expect_eq((j["existing"], j["committed"], j["commit_seq"]), (True, False, 2), "save of an existing step")
    r2 = c.tmp / "r2"
    res = c.run("--json", "save", "--step", "3", "--from", run, "--metric", "loss=nan", "--checksum", "none",
                root=r2, code=0)
    c.validate("save", res.json(), res)
    j = c.ok("save", "save", "--step", "4", "--shard", "0/2", w)
    expect_eq((j["committed"], j["commit_seq"], j["shards"]["missing"]), (False, None, [1]), "shard 0 of 2")
    c.ok("save", "save", "--step", "5", "--shard", "0/2", w)
    j = c.ok("save", "save", "--step", "5", "--shard", "1/2", "other.bin=" + str(w))
    expect_eq((j["committed"], j["shards"]["missing"]), (True, []), "the last shard commits")
    c.error(4, "conflict", "save", "--step", "1", w)
    c.error(2, "usage", "save", "--hlep")
    c.error(2, "usage")  # no command at all
    c.error(2, "usage", "save", "--step", "6", "--metric", "a b=1")

    j = c.ok("info", "info")
    expect_eq(([e["name"] for e in j["checkpoints"]], j["last"]["name"], [p["name"] for p in j["pending"]]),
              ([name(1), name(2), name(5)], name(5), [name(4)]), "info")
    c.ok("info", "info", "--limit", "2", "--sort", "loss")
    j = c.ok("info-ref", "info", "best")
    expect_eq((j["name"], j["markers"], [f["path"] for f in j["files"]]),
              (name(2), ["best"], ["model.bin", "optim/0.pt"]), "info best")
    j = c.ok("info-ref", "info", "5")
    expect_eq((j["shards"]["count"], j["shards"]["present"], j["shards"]["missing"], sorted(f["shard"] for f in j["files"])),
              (2, [0, 1], [], [0, 1]), "a sharded checkpoint")
    res = c.run("--json", "info", "3", root=r2, code=0)
    j = c.validate("info-ref", res.json(), res)
    expect_eq((j["checksum"], j["files"][0]["sha256"], j["metrics"]), ("none", None, {"loss": None}),
              "--checksum none and a metric that is not finite")
    j = c.ok("info-path", "info", "latest", "--path")
    expect_eq(j["path"], str(c.root / name(5)), "info latest --path")
    c.error(3, "not_found", "info", "99")
    c.error(3, "not_found", "info", root=c.tmp / "nowhere")

    c.ok("verify", "verify")
    c.ok("verify", "verify", "2", "--quick")
    j = c.ok("load", "load", "best")
    expect_eq({f["path"]: f["location"] for f in j["files"]},
              {"model.bin": str(c.root / name(2) / "model.bin"), "optim/0.pt": str(c.root / name(2) / "optim/0.pt")},
              "load: files and where they are")
    j = c.ok("load", "load", "1", "--weights-only", "--to", c.tmp / "out")
    expect_eq([(f["path"], f["location"]) for f in j["files"]], [("model.bin", str(c.tmp / "out" / "model.bin"))],
              "load --weights-only --to")
    c.ok("diff", "diff", "1", "2")
    c.ok("diff", "diff", "1", "2", "--exit-code", code=1)
    j = c.ok("promote-best", "promote-best", "1")
    expect_eq((j["promoted"], j["best"]["name"]), (False, name(2)), "promote-best of a worse one")
    j = c.ok("prune", "prune", "--keep-last", "1", "--dry-run")
    expect_eq([e["name"] for e in j["removed"]], [name(1)], "prune --dry-run")
    time.sleep(1.1)
    j = c.ok("prune", "prune", "--keep-last", "1", "--pending-expiry", "1s")
    expect_eq(([e["name"] for e in j["expired"]], sorted(e["name"] for e in j["removed"])),
              ([name(4)], [name(1)]), "prune: removed and expired")
    c.ok("save", "save", "--step", "7", "--shard", "0/3", w)
    j = c.ok("abort", "abort", "7")
    expect_eq((j["name"], j["shards"]["present"]), (name(7), [0]), "abort")
    c.error(3, "not_found", "abort", "7")
    for step in (8, 9):
        c.ok("save", "save", "--step", str(step), w, "--metric", f"loss={step}")
    j = c.ok("rm", "rm", "8", "--dry-run")
    expect_eq(([e["name"] for e in j["removed"]], j["dry_run"]), ([name(8)], True), "rm --dry-run")
    c.error(4, "conflict", "rm", "9")
    c.ok("rm", "rm", "9", "--force")
    j = c.ok("rollback", "rollback", "2", "--dry-run")
    expect_eq([e["name"] for e in j["removed"]], [name(5), name(8)], "rollback --dry-run")
    j = c.ok("rollback", "rollback", "2")
    expect_eq((j["last"]["name"], j["best"]["name"]), (name(2), name(2)), "rollback")
    dest = c.tmp / "dest"
    j = c.ok("copy", "copy", "2", dest)
    expect_eq((j["root"], j["name"], j["source"]["name"], j["source"]["path"], j["committed"]),
              (str(dest), name(2), name(2), str(c.root / name(2)), True), "copy")
    j = c.ok("copy", "copy", "2", dest)
    expect_eq((j["existing"], j["committed"]), (True, False), "copy again: the same files")
    c.error(2, "usage", "copy", "2", c.root)
    c.ok("version", "version")
    c.ok("version", "--version")

    # verify that fails: the report on stdout, the error on stderr, each in its schema
    (c.root / name(2) / "model.bin").write_bytes(b"x" * 4096)
    res = c.run("--json", "verify", code=1)
    c.validate("verify", res.json(), res)
    c.validate("error", json.loads(res.err.strip().splitlines()[-1]), res)

    # --progress json: every event line
    big = c.file("big.bin", os.urandom(1 << 20) * 48)
    for args in (("save", "--step", "20", big), ("verify", "20"), ("load", "20", "--to", c.tmp / "big")):
        res = c.run("--progress", "json", "--json", *args, code=0)
        events = [json.loads(line) for line in res.err.splitlines() if line.startswith("{")]
        check(events and events[-1]["event"] == "done", "--progress json ends with a done event", res)
        for e in events:
            c.validate("progress", e, res)
    # an operation that fails ends its events with the error object, never with "done"
    with open(c.root / name(20) / "big.bin", "r+b") as f:
        f.seek(20 << 20)
        f.write(b"corrupt")
    res = c.run("--progress", "json", "--json", "load", "20", "--to", c.tmp / "big2", code=1)
    lines = [json.loads(line) for line in res.err.splitlines() if line.startswith("{")]
    check(lines and "error" in lines[-1], "the last line is the error object", res)
    check(all(e.get("event") != "done" for e in lines), "no done event for a failed load", res)
    for e in lines[:-1]:
        c.validate("progress", e, res)
    c.validate("error", lines[-1], res)

    check_vocabulary(c)
    unused = {f.name[: -len(".schema.json")] for f in SCHEMAS.glob("*.schema.json")} - c.covered - {"defs"}
    check(not unused, f"schemas no output was validated against: {sorted(unused)}")


@scenario
def json_reports_invalid_and_warnings(c):
    """A directory that is not a valid checkpoint (no manifest, a malformed one, a newer format) is in
    info's "invalid" with its reason, its warning in "warnings" (with --quiet too), and verify fails it."""
    w = c.file("w.bin", b"weights")
    c.run("save", "--step", "1", w, code=0)
    c.run("save", "--step", "2", w, code=0)
    (c.root / name(10)).mkdir()
    bad = c.root / name(11)
    bad.mkdir()
    (bad / "_checkpoint.json").write_text("{not json")
    newer = c.root / name(12)
    shutil.copytree(c.root / name(2), newer)
    m = json.loads((newer / "_checkpoint.json").read_text())
    m.update(schema_version=2, step=12, name=name(12))
    (newer / "_checkpoint.json").write_text(json.dumps(m))

    for quiet in ((), ("-q",)):
        res = c.run("--json", *quiet, "info", code=0)
        j = c.validate("info", res.json(), res)
        expect_eq([e["name"] for e in j["checkpoints"]], [name(1), name(2)], "the valid checkpoints")
        invalid = {e["name"]: e for e in j["invalid"]}
        expect_eq(sorted(invalid), [name(10), name(11), name(12)], "invalid ones listed", res)
        check("_checkpoint.json is missing" in invalid[name(10)]["reason"], "reason: no manifest", res)
        check("schema_version 2" in invalid[name(12)]["reason"], "reason: a newer format", res)
        expect_eq(invalid[name(12)]["path"], str(newer), "invalid path")
        for n in (name(10), name(11), name(12)):
            check(any(n in warning for warning in j["warnings"]), f"a warning names {n}", res)
        if quiet:
            expect_eq(res.err, "", "--quiet: nothing on stderr")
        else:
            expect_eq(res.err.count("ckpt: warning:"), 3, "the warnings on stderr too")
    # verify does not vouch for a newer format (exit 7), and fails the others (exit 1)
    err = c.error(7, "unsupported", "verify")
    check(name(12) in err["error"]["message"], "the error names the newer checkpoint")
    shutil.rmtree(newer)
    res = c.run("--json", "verify", code=1)
    j = c.validate("verify", res.json(), res)
    failed = sorted(e["name"] for e in j["checkpoints"] if not e["ok"])
    expect_eq(failed, [name(10), name(11)], "verify fails the invalid ones", res)

    # a deprecated spelling's warning is in the JSON of the command, and of its error
    res = c.run("--json", "--info", code=0)
    j = c.validate("info", res.json(), res)
    check(any("deprecated" in warning for warning in j["warnings"]), "the alias warning in warnings", res)
    res = c.run("--json", "--info", "99")
    err = c.validate("error", json.loads(res.err.strip().splitlines()[-1]), res)
    check(any("deprecated" in warning for warning in err["warnings"]), "warnings in the error object", res)


if __name__ == "__main__":
    sys.exit(harness.main(sys.argv, __doc__, SCENARIOS, Ctx, "ckpt-e2e-json"))
