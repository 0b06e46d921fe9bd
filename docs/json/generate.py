#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the JSON Schemas of ckpt's --json outputs (docs/json/*.schema.json).

The schemas are this file's output: edit here, run `python3 docs/json/generate.py`, and
commit both. Each schema file stands alone (the shared objects it uses are in its own
$defs), so that any validator takes one file. tests/cli/e2e_json.py checks that the files
are this script's output and validates real outputs of every command against them.

Usage: generate.py [OUT_DIR]   (default: this folder)
"""
import json
import pathlib
import sys

OUT = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent
D = "#/$defs/"
def ref(name): return {"$ref": D + name}
def closed(base, **props):
    s = {"$ref": D + base, "unevaluatedProperties": False}
    if props: s["properties"] = props
    return s
def arr(item): return {"type": "array", "items": item}
def obj(props, required=None, extra=None):
    s = {"type": "object", "properties": props, "required": required if required is not None else list(props)}
    return s
NULL = {"type": "null"}
def nullable(s): return {"oneOf": [s, NULL]}

defs = {
  "schema_version": {"description": "The version of this JSON vocabulary; raised on a breaking change.", "const": 1},
  "warnings": {"description": "Every warning of the command, as printed on stderr without --json.", "type": "array", "items": {"type": "string"}},
  "root": {"description": "The checkpoint root: an absolute directory, or an object-store root (s3://BUCKET/PREFIX).", "$ref": D + "location"},
  "abs_path": {"type": "string", "pattern": "^/"},
  "location": {"description": "An absolute path, or an object-store address (s3://BUCKET/KEY).", "type": "string", "pattern": "^(/|s3://)"},
  "name": {"description": "A checkpoint's directory name.", "type": "string", "pattern": "^step-[0-9]{9,}$"},
  "step": {"type": "integer", "minimum": 0},
  "time": {"description": "RFC 3339, UTC.", "type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?Z$"},
  "count": {"type": "integer", "minimum": 0},
  "metrics": {"description": "Metric values; null where the value was not finite.", "type": "object", "additionalProperties": {"type": ["number", "null"]}},
  "meta": {"type": "object", "additionalProperties": {"type": "string"}},
  "sha256": {"oneOf": [{"type": "string", "pattern": "^[0-9a-f]{64}$"}, NULL]},
  "file_fields": obj({"path": {"description": "The stored path, relative to the checkpoint.", "type": "string"},
                      "size": {"$ref": D + "count"}, "sha256": {"$ref": D + "sha256"},
                      "shard": {"description": "Sharded checkpoints: the shard that wrote the file.", "$ref": D + "count"}},
                     ["path", "size", "sha256"]),
  "file": {"$ref": D + "file_fields", "unevaluatedProperties": False},
  "ref_fields": obj({"name": {"$ref": D + "name"}, "path": {"$ref": D + "location"}, "step": {"$ref": D + "step"}}),
  "ref": {"description": "A checkpoint named in a list.", "$ref": D + "ref_fields", "unevaluatedProperties": False},
  "refs": {"type": "array", "items": {"$ref": D + "ref"}},
  "last": {"description": "The checkpoint `last` names; null when there is none.", "oneOf": [{"$ref": D + "ref"}, NULL]},
  "marker": {"description": "best.json: the checkpoint it names and the rule.", "$ref": D + "ref_fields",
             "properties": {"key": {"type": "string"}, "mode": {"enum": ["min", "max"]}, "value": {"type": "number"},
                            "updated": {"oneOf": [{"$ref": D + "time"}, NULL]}},
             "required": ["key", "mode", "value", "updated"], "unevaluatedProperties": False},
  "best": {"description": "best.json; null when there is none.", "oneOf": [{"$ref": D + "marker"}, NULL]},
  "summary_fields": {"$ref": D + "ref_fields",
                     "properties": {"commit_seq": {"$ref": D + "count"}, "created": {"$ref": D + "time"},
                                    "metrics": {"$ref": D + "metrics"}, "total_size": {"$ref": D + "count"},
                                    "file_count": {"$ref": D + "count"}},
                     "required": ["commit_seq", "created", "metrics", "total_size", "file_count"]},
  "summary": {"description": "A checkpoint as a list shows it.", "$ref": D + "summary_fields", "unevaluatedProperties": False},
  "markers": {"description": "The markers naming the checkpoint.", "type": "array", "items": {"enum": ["last", "best"]}},
  "shards": {"description": "A sharded step's set.", **obj({"group": {"type": "string"}, "count": {"type": "integer", "minimum": 1},
                 "present": arr({"$ref": D + "count"}), "missing": arr({"$ref": D + "count"})}), "additionalProperties": False},
  "pending_fields": {"$ref": D + "ref_fields",
                     "properties": {"shards": {"$ref": D + "shards"}, "updated": {"oneOf": [{"$ref": D + "time"}, NULL]},
                                    "replaces": {"type": "boolean"}},
                     "required": ["shards", "updated", "replaces"]},
  "pending": {"description": "A sharded step not yet committed.", "$ref": D + "pending_fields", "unevaluatedProperties": False},
  "problem": {**obj({"path": {"type": "string"}, "kind": {"type": "string"}, "detail": {"type": "string"},
                     "severity": {"enum": ["failure", "warning"]}}), "additionalProperties": False},
  "policy": {"description": "policy.json's rules; null when there is none.",
             "oneOf": [{"type": "object", "properties": {
                 "best_key": {"type": "string"}, "best_mode": {"enum": ["min", "max"]},
                 "keep_last": {"$ref": D + "count"}, "keep_best": {"$ref": D + "count"},
                 "keep_every": {"$ref": D + "count"}, "keep_within": {"type": "string"},
                 "checksum": {"enum": ["sha256", "none"]}, "dedup": {"type": "boolean"},
                 "pending_expiry": {"type": "string"}}, "additionalProperties": False}, NULL]},
}
def result(title, desc, props, required=None):
    p = {"schema_version": ref("schema_version"), "root": ref("root")}
    p.update(props)
    p["warnings"] = ref("warnings")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": title, "description": desc,
            "type": "object", "properties": p, "required": required or list(p), "additionalProperties": False}

def result_ext(title, desc, base, props, required):
    p = {"schema_version": ref("schema_version"), "root": ref("root")}
    p.update(props)
    p["warnings"] = ref("warnings")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": title, "description": desc,
            "type": "object", "$ref": D + base, "properties": p,
            "required": ["schema_version", "root"] + required + ["warnings"], "unevaluatedProperties": False}

schemas = {}
save_props = {
  "name": ref("name"), "path": ref("location"), "step": ref("step"),
  "commit_seq": {"description": "null for a shard that did not complete its step.", "oneOf": [ref("count"), NULL]},
  "committed": {"type": "boolean"}, "existing": {"type": "boolean"},
  "metrics": ref("metrics"), "total_size": ref("count"), "file_count": ref("count"),
  "best_updated": {"type": "boolean"}, "best": ref("best"), "pruned": ref("refs"),
  "shared": {**obj({"file_count": ref("count"), "total_size": ref("count"), "with": {"oneOf": [ref("ref"), NULL]}}), "additionalProperties": False},
  "shards": {"oneOf": [ref("shards"), NULL]}}
schemas["save"] = result("ckpt save --json", "The result of a save (one line on stdout).", save_props)
schemas["copy"] = result("ckpt copy --json", "The commit at the destination root (root), as save reports it, and the checkpoint copied (source, in the source root).",
                         {**save_props, "source": ref("ref")})
info_entry = {"$ref": D + "summary_fields", "properties": {"markers": ref("markers")}, "required": ["markers"], "unevaluatedProperties": False}
invalid = {"type": "object", "properties": {"name": {"type": "string"}, "path": ref("location"),
           "step": {"oneOf": [ref("step"), NULL]}, "reason": {"type": "string"}}, "required": ["name", "path", "step", "reason"],
           "additionalProperties": False}
schemas["info"] = result("ckpt info --json", "The checkpoints of a root (info without REF).", {
  "last": ref("last"), "best": ref("best"), "policy": ref("policy"),
  "checkpoints": arr(info_entry), "total": ref("count"), "pending": arr(ref("pending")),
  "invalid": {"description": "Directories named like checkpoints that are not valid ones.", **arr(invalid)}})
schemas["info-ref"] = result_ext("ckpt info REF --json", "One checkpoint: its manifest, where it is and its markers.", "summary_fields", {
  "meta": ref("meta"), "weights": arr({"type": "string"}), "checksum": {"enum": ["sha256", "none"]},
  "files": arr(ref("file")), "tool": {"type": "string"}, "format_version": {"type": "integer", "minimum": 1},
  "shards": {"description": "Sharded checkpoints: the set that wrote it (every shard present).", **ref("shards")},
  "markers": ref("markers")}, ["meta", "weights", "checksum", "files", "tool", "format_version", "markers"])
schemas["info-path"] = result("ckpt info REF --path --json", "Where a checkpoint is.", {
  "name": ref("name"), "path": ref("location"), "step": ref("step")})
vcheck = {"type": "object", "properties": {"name": {"type": "string"}, "path": ref("location"),
          "step": {"oneOf": [ref("step"), NULL]}, "ok": {"type": "boolean"}, "problems": arr(ref("problem"))},
          "required": ["name", "path", "step", "ok", "problems"], "additionalProperties": False}
schemas["verify"] = result("ckpt verify --json", "The checks of checkpoints and markers.", {
  "ok": {"type": "boolean"}, "checkpoints": arr(vcheck),
  "markers": {"description": "null when REFs were given (markers not checked).",
              "oneOf": [{**obj({"ok": {"type": "boolean"}, "problems": arr(ref("problem"))}), "additionalProperties": False}, NULL]},
  "repaired": {"description": "Marker files rewritten by --repair.", **arr({"type": "string"})}})
loaded = {"$ref": D + "file_fields", "properties": {"location": ref("abs_path")}, "required": ["location"], "unevaluatedProperties": False}
schemas["load"] = result_ext("ckpt load --json", "A verified checkpoint and where its selected files are.", "summary_fields", {
  "meta": ref("meta"), "weights": arr({"type": "string"}), "checksum": {"enum": ["sha256", "none"]},
  "dir": ref("abs_path"), "files": {"description": "The selected files; location is the absolute path to read.", **arr(loaded)}},
  ["meta", "weights", "checksum", "dir", "files"])
kept = {"$ref": D + "ref_fields", "properties": {"reasons": arr({"type": "string"})}, "required": ["reasons"], "unevaluatedProperties": False}
schemas["prune"] = result("ckpt prune --json", "What retention kept and removed.", {
  "dry_run": {"type": "boolean"}, "kept": arr(kept), "removed": ref("refs"),
  "cleaned": {"description": "Leftovers of interrupted commands removed, as paths relative to the root (under .ckpt/; on an object-store root, step-NNNNNNNNN/ for the objects of a killed save).", **arr({"type": "string"})},
  "expired": {"description": "Pending sharded steps removed (idle past pending_expiry).", **arr(ref("pending"))}})
schemas["promote-best"] = result("ckpt promote-best --json", "Whether best.json changed, why, and what it names.", {
  "promoted": {"type": "boolean"}, "reason": {"type": "string"}, "best": ref("best")})
schemas["abort"] = result_ext("ckpt abort --json", "The pending step that was removed.", "pending_fields", {}, [])
schemas["diff"] = result("ckpt diff --json", "Files and metrics of two checkpoints.", {
  "a": ref("summary"), "b": ref("summary"), "compared_by": {"enum": ["sha256", "size"]}, "differ": {"type": "boolean"},
  "added": arr(ref("file")), "removed": arr(ref("file")),
  "changed": arr({**obj({"path": {"type": "string"}, "a": ref("file"), "b": ref("file")}), "additionalProperties": False}),
  "unchanged": ref("count"),
  "metrics": {"type": "object", "additionalProperties": {**obj({"a": {"type": ["number", "null"]}, "b": {"type": ["number", "null"]}}), "additionalProperties": False}}})
for cmd, desc in (("rm", "The checkpoints removed (or that would be) and the markers afterwards."),
                  ("rollback", "The checkpoints after REF removed (or that would be) and the markers afterwards.")):
    schemas[cmd] = result(f"ckpt {cmd} --json", desc, {"dry_run": {"type": "boolean"}, "removed": ref("refs"),
                          "last": ref("last"), "best": ref("best")})
v = result("ckpt version --json", "The tool's version, and the manifest format it writes.", {
  "tool": {"type": "string"}, "version": {"type": "string"}, "format_version": {"type": "integer", "minimum": 1}})
del v["properties"]["root"]; v["required"].remove("root")
schemas["version"] = v
err = result("ckpt --json: an error", "A failing command's one line on stderr.", {
  "error": {"type": "object", "properties": {
      "code": {"enum": [1, 2, 3, 4, 5, 6, 7, 130]},
      "kind": {"enum": ["integrity", "usage", "not_found", "conflict", "locked", "io", "unsupported", "interrupted"]},
      "reason": {"type": "string"}, "message": {"type": "string"}},
    "required": ["code", "kind", "message"], "additionalProperties": False}})
del err["properties"]["root"]; err["required"].remove("root")
schemas["error"] = err
schemas["progress"] = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "ckpt --progress json: an event",
  "description": "One line on stderr per event: progress (about once a second), then done.",
  "oneOf": [
    {"type": "object", "properties": {"schema_version": ref("schema_version"), "event": {"const": "progress"},
       "done": ref("count"), "total": ref("count"), "rate": {"description": "Bytes a second.", **{"$ref": D + "count"}},
       "eta": {"description": "Seconds left; null when unknown.", "oneOf": [ref("count"), NULL]}},
     "required": ["schema_version", "event", "done", "total", "rate", "eta"], "additionalProperties": False},
    {"type": "object", "properties": {"schema_version": ref("schema_version"), "event": {"const": "done"},
       "done": ref("count"), "total": ref("count"), "elapsed": {"description": "Seconds.", "type": "number", "minimum": 0},
       "rate": ref("count")},
     "required": ["schema_version", "event", "done", "total", "elapsed", "rate"], "additionalProperties": False}]}

def used_defs(node, found):
    """The names of the $defs a schema refers to, transitively."""
    if isinstance(node, dict):
        r = node.get("$ref")
        if isinstance(r, str) and r.startswith(D) and r[len(D):] not in found:
            found.add(r[len(D):])
            used_defs(defs[r[len(D):]], found)
        for v in node.values():
            used_defs(v, found)
    elif isinstance(node, list):
        for v in node:
            used_defs(v, found)
    return found


def render(doc):
    names = used_defs(doc, set())
    out = dict(doc)
    out["$defs"] = {k: defs[k] for k in defs if k in names}
    return json.dumps(out, indent=2) + "\n"


def main(out):
    out.mkdir(parents=True, exist_ok=True)
    for k, s in schemas.items():
        (out / f"{k}.schema.json").write_text(render(s))


if __name__ == "__main__":
    main(OUT)
