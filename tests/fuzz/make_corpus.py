#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the committed seed corpus of the fuzz targets (tests/fuzz/corpus/<target>/).

The seeds are small, meaningful inputs: valid documents, near misses and edge cases (empty,
deep nesting, huge numbers, duplicate keys, unicode, NUL bytes). Run it after editing a seed
here; it rewrites every seed directory from scratch (never add what a fuzzing run found
without a fix in the library: scripts/fuzz.sh fuzzes a copy and keeps crashes apart).
"""
import hashlib
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def h(text):
    return hashlib.sha256(text.encode()).hexdigest()


def dumps(obj, indent=2):
    return json.dumps(obj, indent=indent, ensure_ascii=False) + "\n"


def checkpoint(**over):
    files = [
        {"path": "model.safetensors", "size": 4096, "sha256": h("model")},
        {"path": "optim/shard-0.pt", "size": 100, "sha256": h("optim")},
    ]
    doc = {
        "format": "ckpt",
        "schema_version": 1,
        "name": "step-000001200",
        "step": 1200,
        "commit_seq": 17,
        "created": "2026-11-28T12:00:00.123Z",
        "metrics": {"val_loss": 1.23, "acc": 0.91},
        "meta": {"git_commit": "abc123"},
        "checksum": "sha256",
        "weights": ["model.safetensors"],
        "files": files,
        "total_size": 4196,
        "tool": "ckpt 0.1.0",
    }
    for k, v in over.items():
        if v is None:
            doc.pop(k, None)
        else:
            doc[k] = v
    return doc


def checkpoint_seeds():
    s = {}
    s["valid-spec.json"] = dumps(checkpoint())
    s["valid-compact.json"] = json.dumps(checkpoint(), separators=(",", ":"))
    s["valid-minimal.json"] = dumps(checkpoint(metrics=None, meta=None, weights=None, tool=None,
                                               files=[], total_size=0))
    s["valid-checksum-none.json"] = dumps(checkpoint(
        checksum="none", weights=[],
        files=[{"path": "a", "size": 1}, {"path": "b/c/d.bin", "size": 2}], total_size=3))
    s["valid-null-metric.json"] = dumps(checkpoint(metrics={"val_loss": None, "acc": -0.0,
                                                            "tiny": 5e-324, "big": 1.7e308}))
    s["valid-unicode.json"] = dumps(checkpoint(
        meta={"note": "\u00e9t\u00e9 \u2603 \U0001F600", "nul": "a\u0000b", "": ""},
        metrics={"\u00fcber": 1, "": 2},
        files=[{"path": "d\u00e9j\u00e0/\U0001F600.pt", "size": 7, "sha256": h("x")}],
        weights=[], total_size=7))
    s["valid-huge-numbers.json"] = dumps(checkpoint(
        name="step-9223372036854775807", step=9223372036854775807,
        commit_seq=18446744073709551615,
        files=[{"path": "a", "size": 18446744073709551615, "sha256": h("a")}],
        weights=[], total_size=18446744073709551615))
    s["valid-wide-name.json"] = dumps(checkpoint(name="step-00000000000000000000000001200"))
    s["valid-extra-fields.json"] = dumps(checkpoint(future={"x": [1, 2, {"y": None}]},
                                                    tool=42))
    s["valid-leap-second.json"] = dumps(checkpoint(created="2016-12-31T23:59:60.999999Z"))
    s["bom.json"] = "\ufeff" + dumps(checkpoint())
    # Duplicate keys: the last one wins in the parser; the name/step check sees it.
    s["dup-keys.json"] = dumps(checkpoint()).replace('"step": 1200,',
                                                     '"step": 1200,\n  "step": 1300,')
    s["schema-2.json"] = dumps(checkpoint(schema_version=2))
    s["schema-0.json"] = dumps(checkpoint(schema_version=0))
    s["schema-huge.json"] = dumps(checkpoint(schema_version=18446744073709551615))
    s["schema-float.json"] = dumps(checkpoint(schema_version=1.0))
    s["name-step-disagree.json"] = dumps(checkpoint(step=1201))
    s["step-2pow63.json"] = dumps(checkpoint(name="step-9223372036854775808",
                                             step=9223372036854775808))
    s["step-negative.json"] = dumps(checkpoint(step=-1))
    s["step-float.json"] = dumps(checkpoint(step=1200.0))
    s["step-exp.json"] = dumps(checkpoint()).replace('"step": 1200', '"step": 1.2e3')
    s["size-overflow.json"] = dumps(checkpoint(
        files=[{"path": "a", "size": 18446744073709551615, "sha256": h("a")},
               {"path": "b", "size": 1, "sha256": h("b")}], weights=[], total_size=0))
    s["size-beyond-u64.json"] = dumps(checkpoint()).replace('"total_size": 4196',
                                                            '"total_size": 18446744073709551616')
    s["total-mismatch.json"] = dumps(checkpoint(total_size=4197))
    s["path-dotdot.json"] = dumps(checkpoint(
        files=[{"path": "../evil", "size": 0, "sha256": h("")}], weights=[], total_size=0))
    s["path-reserved.json"] = dumps(checkpoint(
        files=[{"path": "SHA256SUMS", "size": 0, "sha256": h("")}], weights=[], total_size=0))
    s["path-twice.json"] = dumps(checkpoint(
        files=[{"path": "a", "size": 0, "sha256": h("")}, {"path": "a", "size": 0,
                                                           "sha256": h("")}],
        weights=[], total_size=0))
    s["path-nul.json"] = dumps(checkpoint(
        files=[{"path": "a\u0000b", "size": 0, "sha256": h("")}], weights=[], total_size=0))
    s["sha-upper.json"] = dumps(checkpoint()).replace(h("model"), h("model").upper())
    s["sha-missing.json"] = dumps(checkpoint(files=[{"path": "model.safetensors",
                                                     "size": 4196}]))
    s["weights-unknown.json"] = dumps(checkpoint(weights=["nope.bin"]))
    s["created-feb30.json"] = dumps(checkpoint(created="2026-02-30T12:00:00Z"))
    s["created-no-z.json"] = dumps(checkpoint(created="2026-11-28T12:00:00+00:00"))
    s["metric-string.json"] = dumps(checkpoint(metrics={"val_loss": "1.23"}))
    s["metric-nested.json"] = dumps(checkpoint(metrics={"val_loss": [[[1]]]}))
    s["deep-nesting.json"] = ('{"format":"ckpt","schema_version":1,"meta":' + "[" * 200 +
                              "]" * 200 + "}")
    s["deep-nesting-63.json"] = '{"x":' + "[" * 62 + "]" * 62 + "}"
    s["deep-in-string.json"] = dumps(checkpoint(meta={"brackets": "[" * 300 + "\\\"{" * 50}))
    s["nul-byte.json"] = dumps(checkpoint()).replace('"ckpt",', '"ck\x00pt",', 1)
    s["trailing-garbage.json"] = dumps(checkpoint()) + "x"
    s["truncated.json"] = dumps(checkpoint())[:200]
    s["not-object.json"] = "[1, 2, 3]\n"
    s["string.json"] = '"step-000001200"'
    s["invalid-utf8.json"] = b'{"format":"ckpt","name":"\xff\xfe"}'
    s["lone-surrogate.json"] = '{"format":"ckpt","meta":{"a":"\\ud800"}}'
    s["empty.json"] = ""
    return s


def sums_seeds():
    a, b = h("a"), h("b")
    s = {}
    s["valid.txt"] = f"{a}  model.safetensors\n{b}  optim/shard-0.pt\n"
    s["valid-binary-mode.txt"] = f"{a} *model.safetensors\n"
    s["valid-spaces.txt"] = f"{a}   leading space and trailing  \n"
    s["valid-unicode.txt"] = f"{a}  d\u00e9j\u00e0/\U0001F600.pt\n"
    s["empty.txt"] = ""
    s["no-final-newline.txt"] = f"{a}  model.safetensors"
    s["crlf.txt"] = f"{a}  model.safetensors\r\n"
    s["duplicate.txt"] = f"{a}  x\n{b}  x\n"
    s["upper-hex.txt"] = f"{a.upper()}  x\n"
    s["short-digest.txt"] = f"{a[:63]}  x\n"
    s["one-space.txt"] = f"{a} x\n"
    s["dotdot.txt"] = f"{a}  ../etc/passwd\n"
    s["absolute.txt"] = f"{a}  /etc/passwd\n"
    s["backslash-escaped.txt"] = f"\\{a}  a\\\\b\n"
    s["nul-path.txt"] = f"{a}  a\x00b\n"
    s["blank-line.txt"] = f"{a}  x\n\n"
    s["only-newline.txt"] = "\n"
    return s


def best(**over):
    doc = {"schema_version": 1, "key": "val_loss", "mode": "min", "value": 1.23,
           "step": 1200, "path": "step-000001200", "updated": "2026-11-28T12:00:00Z"}
    for k, v in over.items():
        if v is None:
            doc.pop(k, None)
        else:
            doc[k] = v
    return json.dumps(doc, ensure_ascii=False) + "\n"


def best_seeds():
    s = {}
    s["valid-spec.json"] = best()
    s["valid-max.json"] = best(mode="max", value=-1e-300, key="acc")
    s["valid-int-value.json"] = best(value=7)
    s["valid-negzero.json"] = best(value=-0.0)
    s["valid-dbl-max.json"] = best(value=1.7976931348623157e308)
    s["valid-denormal.json"] = best(value=5e-324)
    s["valid-no-updated.json"] = best(updated=None)
    s["valid-updated-number.json"] = best(updated=5)
    s["valid-unicode-key.json"] = best(key="\u00e9t\u00e9 \U0001F600 \u0000")
    s["valid-huge-step.json"] = best(step=9223372036854775807, path="step-9223372036854775807")
    s["valid-wide-path.json"] = best(path="step-0000000000000000000000001200")
    s["dup-keys.json"] = best().replace('"mode": "min"', '"mode": "min", "mode": "max"')
    s["step-2pow63.json"] = best(step=9223372036854775808, path="step-9223372036854775808")
    s["path-slash.json"] = best(path="step-000001200/../step-000001200")
    s["path-abs.json"] = best(path="/tmp/step-000001200")
    s["path-step-disagree.json"] = best(path="step-000001201")
    s["key-empty.json"] = best(key="")
    s["mode-upper.json"] = best(mode="MIN")
    s["value-string.json"] = best(value="1.23")
    s["value-null.json"] = best(value=None) .replace('"step"', '"value": null, "step"')
    s["schema-2.json"] = best(schema_version=2)
    s["schema-neg.json"] = best(schema_version=-1)
    s["deep.json"] = '{"schema_version":1,"key":' + "{" * 100 + "}"
    s["nul.json"] = best().replace("val_loss", "val\x00loss")
    s["empty.json"] = ""
    s["array.json"] = "[]"
    return s


def policy(**kw):
    doc = {"schema_version": 1}
    doc.update(kw)
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def policy_seeds():
    s = {}
    s["valid-spec.json"] = policy(best_key="val_loss", best_mode="min", keep_last=3, keep_best=1,
                                  keep_every=1000, keep_within="7d", checksum="sha256")
    s["valid-empty.json"] = policy()
    s["valid-max-none.json"] = policy(best_key="acc", best_mode="max", checksum="none")
    s["valid-within-compound.json"] = policy(keep_within="1w2d3h4m5s")
    s["valid-huge.json"] = policy(keep_last=18446744073709551615, keep_best=0,
                                  keep_every=18446744073709551615)
    s["valid-unicode-key.json"] = policy(best_key="\u00fcber \U0001F600")
    s["valid-extra.json"] = policy(future=True, keep_last=1)
    s["keep-every-zero.json"] = policy(keep_every=0)
    s["keep-last-negative.json"] = policy(keep_last=-1)
    s["keep-last-float.json"] = policy(keep_last=1.5)
    s["keep-last-beyond-u64.json"] = policy().replace("1\n}", "1, \"keep_last\": 18446744073709551616\n}")
    s["within-zero.json"] = policy(keep_within="0s")
    s["within-bad-unit.json"] = policy(keep_within="7x")
    s["within-number.json"] = policy(keep_within=7)
    s["within-huge.json"] = policy(keep_within="99999999999999w")
    s["checksum-md5.json"] = policy(checksum="md5")
    s["best-key-empty.json"] = policy(best_key="")
    s["best-mode-bad.json"] = policy(best_mode="median")
    s["best-key-null.json"] = policy(best_key=None)
    s["schema-2.json"] = policy().replace('"schema_version": 1', '"schema_version": 2')
    s["schema-missing.json"] = "{}\n"
    s["dup-keys.json"] = '{"schema_version": 1, "keep_last": 3, "keep_last": 0}\n'
    s["deep.json"] = '{"schema_version":1,"x":' + "[" * 70 + "]" * 70 + "}"
    s["nul.json"] = '{"schema_version": 1,\x00 "keep_last": 3}'
    s["empty.json"] = ""
    return s


def last_seeds():
    return {
        "canonical.txt": "step-000001200\n",
        "no-newline.txt": "step-000001200",
        "crlf.txt": "step-000001200\r\n",
        "two-lines.txt": "step-000000001\nstep-000000002\n",
        "wide.txt": "step-00000000000000000000000000001\n",
        "short.txt": "step-1\n",
        "max-step.txt": "step-9223372036854775807\n",
        "step-2pow63.txt": "step-9223372036854775808\n",
        "empty.txt": "",
        "newline-only.txt": "\n",
        "cr-only.txt": "\r\n",
        "nul.txt": "step-000000001\x00x\n",
        "absolute-path.txt": "/nonexistent/root/step-000000001\n",
        "relative-path.txt": "../other/step-000000001\n",
        "dot-slash.txt": "./step-000000005\n",
        "trailing-slash.txt": "step-000000001/\n",
        "dotdot-back.txt": "sub/../step-000000003\n",
        "dotdot.txt": "..\n",
        "slash.txt": "/\n",
        "garbage.txt": "garbage\n",
        "unicode.txt": "step-\u0661\u0662\u0663\n",
        "spaces.txt": " step-000000001 \n",
        "step-dash.txt": "step-\n",
        "invalid-utf8.txt": b"step-\xff\xfe\n",
    }


def refs_seeds():
    return {
        "latest.txt": "latest",
        "last.txt": "last",
        "best.txt": "best",
        "step-100.txt": "100",
        "step-2000.txt": "2000",
        "step-leading-zero.txt": "0000000100",
        "step-uncommitted.txt": "300",
        "step-symlink.txt": "400",
        "step-corrupt.txt": "500",
        "step-file.txt": "600",
        "step-missing.txt": "7",
        "step-2pow63.txt": "9223372036854775808",
        "step-20-digits.txt": "99999999999999999999",
        "name-100.txt": "step-000000100",
        "name-short.txt": "step-100",
        "name-2000.txt": "step-000002000",
        "name-symlink.txt": "step-000000400",
        "name-corrupt.txt": "step-000000500",
        "name-file.txt": "step-000000600",
        "name-dash.txt": "step-",
        "name-letters.txt": "step-x",
        "path-in-root.txt": "@/step-000000100",
        "path-trailing-slash.txt": "@/step-000002000/",
        "path-dot.txt": "@/./step-000002000",
        "path-back-in.txt": "@/../root/step-000000100",
        "path-sibling.txt": "@/../rootx/step-000000100",
        "path-prefix-sibling.txt": "@x/step-000000100",
        "path-outside.txt": "%/outside/step-000000400",
        "path-symlink.txt": "@/step-000000400",
        "path-uncommitted.txt": "@/step-000000300",
        "path-notes.txt": "@/notes",
        "path-root.txt": "@",
        "path-root-slash.txt": "@/",
        "path-deeper.txt": "@/step-000000100/model.bin",
        "path-relative.txt": "relative/step-000000100",
        "path-private.txt": "@/.ckpt/staging",
        "slash.txt": "/",
        "dotdot.txt": "..",
        "upper.txt": "LATEST",
        "empty.txt": "",
        "nul.txt": "best\x00",
        "nul-step.txt": "step-000000100\x00/..",
        "unicode.txt": "step-\u0661\u0662\u0663",
        "long-name.txt": "step-" + "0" * 200 + "100",
    }


def durations_seeds():
    return {
        "30m.txt": "30m",
        "12h.txt": "12h",
        "7d.txt": "7d",
        "2w.txt": "2w",
        "compound.txt": "1d12h",
        "90s.txt": "90s",
        "zero.txt": "0s",
        "zeros.txt": "0d0h0m",
        "bare-number.txt": "1",
        "bare-unit.txt": "d",
        "bad-unit.txt": "1x",
        "negative.txt": "1d-1h",
        "big.txt": "1000000000w",
        "too-big.txt": "99999999999999999999999w",
        "leading-zeros.txt": "0000000000000000000000001s",
        "rfc3339-ms.txt": "2026-11-28T12:00:00.123Z",
        "rfc3339.txt": "2026-11-28T12:00:00Z",
        "rfc3339-lower.txt": "2026-11-28t12:00:00z",
        "rfc3339-leap-day.txt": "2024-02-29T00:00:00Z",
        "rfc3339-no-leap-day.txt": "2023-02-29T00:00:00Z",
        "rfc3339-1900.txt": "1900-02-29T00:00:00Z",
        "rfc3339-before-epoch.txt": "1969-12-31T23:59:59.500Z",
        "rfc3339-leap-second.txt": "2016-12-31T23:59:60Z",
        "rfc3339-year0.txt": "0000-01-01T00:00:00Z",
        "rfc3339-year9999.txt": "9999-12-31T23:59:59.999999999Z",
        "rfc3339-offset.txt": "2026-11-28T12:00:00+01:00",
        "rfc3339-dot-only.txt": "2026-11-28T12:00:00.Z",
        "rfc3339-hour24.txt": "2026-11-28T24:00:00Z",
        "path.txt": "model.safetensors",
        "path-nested.txt": "optim/shard-0.pt",
        "path-empty-seg.txt": "a//b",
        "path-dot.txt": "./a",
        "path-dotdot.txt": "a/..",
        "path-abs.txt": "/abs",
        "path-backslash.txt": "a\\b",
        "path-trailing-slash.txt": "a/",
        "path-dotfile.txt": ".hidden/..x/...",
        "path-nul.txt": "a\x00b",
        "glob-star.txt": "*.pt\noptim/shard-0.pt",
        "glob-class.txt": "optim/shard-[0-9].pt\noptim/shard-7.pt",
        "glob-open-class.txt": "[a-\noptim",
        "glob-escape.txt": "a\\*b\na*b",
        "glob-question.txt": "model.?afetensors\nmodel.safetensors",
        "glob-many-stars.txt": "*a*a*a*a*a*a*a*a*a*a*a*a*b\n" + "a" * 60,
        "glob-negated.txt": "[!a]*\nbcd",
        "glob-unicode.txt": "\u00e9*\n\u00e9t\u00e9",
    }


TARGETS = {
    "fuzz_checkpoint_json": checkpoint_seeds,
    "fuzz_sums": sums_seeds,
    "fuzz_best_json": best_seeds,
    "fuzz_policy_json": policy_seeds,
    "fuzz_last": last_seeds,
    "fuzz_refs": refs_seeds,
    "fuzz_durations": durations_seeds,
}


def main():
    total = 0
    for target, make in TARGETS.items():
        d = os.path.join(CORPUS, target)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for name, data in sorted(make().items()):
            raw = data if isinstance(data, bytes) else data.encode("utf-8")
            with open(os.path.join(d, name), "wb") as f:
                f.write(raw)
            total += len(raw)
        print(f"{target}: {len(make())} seeds")
    print(f"total {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
