#!/usr/bin/env python3
"""Cross-check the telemetry fixtures against the JSON Schemas (Python side of conformance).

    python3 Tests/conformance/check_fixtures.py [REPO_ROOT]

For every fixture in Tests/Fixtures/telemetry/{valid,invalid}:
  * valid/*        : jsonschema_verdicts says "valid", size <= 262144, and a small Python model of
                     the decoder-only rules (docs/schema.md, "Rules the decoder adds") finds nothing;
  * invalid/*      : the verdict equals reasons.json's "jsonschema" field; "rule" is present exactly
                     when that field is "valid" and names the decoder-only rule that the model finds
                     first, with the expected reason; for schema violations that JSON Schema also
                     sees, the expected pointer is among the places the validator complains about.
Also checks that the fixtures are up to date with generate.py. Ends with "N passed, N failed".
"""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import jsonschema_verdicts as jv  # noqa: E402

MAX_BYTES = 262144
DAY_MS = 86400000
INT64_MAX = 2**63 - 1


def ptr(parts):
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class DuplicateKey(Exception):
    pass


def _no_dups(pairs):
    seen = set()
    for k, _ in pairs:
        if k in seen:
            raise DuplicateKey(k)
        seen.add(k)
    return dict(pairs)


def decoder_rule(data, now_ms):
    """First decoder-only violation of an otherwise schema-valid message, as (rule, reason)."""
    if len(data) > MAX_BYTES:
        return "oversize", "oversize"
    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=_no_dups)
    except DuplicateKey:
        return "duplicate_keys", "invalid_json"
    sv = "schema_violation:"
    for i, r in enumerate(doc.get("records", [])):
        if r.get("kind") != "inference":
            continue
        base = ["records", i]
        s = r["latency_us"]
        keys, counts = s["keys"], s["counts"]
        for j in range(1, len(keys)):
            if keys[j] <= keys[j - 1]:
                return "sketch_keys_order", sv + ptr(base + ["latency_us", "keys", j])
        if len(keys) != len(counts):
            return "sketch_length_mismatch", sv + ptr(base + ["latency_us", "counts"])
        total = sum(counts)
        if total > INT64_MAX or total != s["count"]:
            return "sketch_count_sum", sv + ptr(base + ["latency_us", "count"])
        if s["count"] == 0:
            for f in ("sum", "min", "max"):
                if s[f] != 0:
                    return "sketch_empty_nonzero", sv + ptr(base + ["latency_us", f])
        elif s["min"] > s["max"]:
            return "sketch_min_max", sv + ptr(base + ["latency_us", "min"])
        if r["errors"] > r["count"]:
            return "inference_consistency", sv + ptr(base + ["errors"])
        ok = r["count"] - r["errors"]
        if s["count"] != ok:
            return "inference_consistency", sv + ptr(base + ["latency_us", "count"])
        h = sum(r["confidence_hist"])
        if h > INT64_MAX or h != ok:
            return "inference_consistency", sv + ptr(base + ["confidence_hist"])
    # future timestamps, in document order
    limit = now_ms + DAY_MS
    for k in doc:
        if k == "sent_at_ms" and doc[k] > limit:
            return "future_timestamp", "future_timestamp:/sent_at_ms"
        if k == "records":
            for i, r in enumerate(doc[k]):
                if r["ts_ms"] > limit:
                    return "future_timestamp", f"future_timestamp:/records/{i}/ts_ms"
    return None, "OK"


def error_pointers(errors):
    """Every pointer a set of jsonschema errors points at, in the docs/schema.md convention."""
    out = set()
    stack = list(errors)
    while stack:
        e = stack.pop()
        stack.extend(e.context or [])
        path = list(e.absolute_path)
        out.add(ptr(path))
        if e.validator == "required" and isinstance(e.instance, dict):
            out.update(ptr(path + [m]) for m in e.validator_value if m not in e.instance)
        elif e.validator == "additionalProperties" and isinstance(e.instance, dict):
            known = set(e.schema.get("properties", {}))
            out.update(ptr(path + [m]) for m in e.instance if m not in known)
        elif e.validator == "propertyNames" or (e.relative_schema_path and
                                                 "propertyNames" in e.relative_schema_path):
            out.add(ptr(path + [e.instance]))
    return out


def main(argv):
    root = argv[0] if argv else os.path.normpath(os.path.join(HERE, "..", ".."))
    fx = os.path.join(root, "Tests", "Fixtures", "telemetry")
    validators = jv.load_validators(os.path.join(root, "schemas"))
    now_ms = int(time.time() * 1000)
    passed, failures = 0, []

    def ok(cond, what):
        nonlocal passed
        if cond:
            passed += 1
        else:
            failures.append(what)

    gen = subprocess.run([sys.executable, os.path.join(fx, "generate.py"), "--check"],
                         capture_output=True, text=True)
    ok(gen.returncode == 0, "generate.py --check: " + (gen.stderr.strip() or gen.stdout.strip()))

    vdir = os.path.join(fx, "valid")
    for name in sorted(os.listdir(vdir)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(vdir, name), "rb") as f:
            data = f.read()
        verdict, detail, _ = jv.verdict_for_bytes(data, validators)
        rule, reason = (None, "n/a") if verdict != "valid" else decoder_rule(data, now_ms)
        ok(verdict == "valid" and rule is None,
           f"valid/{name}: jsonschema {verdict} ({detail}); decoder model {reason}")

    idir = os.path.join(fx, "invalid")
    with open(os.path.join(idir, "reasons.json"), encoding="utf-8") as f:
        reasons = json.load(f)
    names = sorted(n for n in os.listdir(idir) if n.endswith(".json") and n != "reasons.json")
    ok(set(names) == set(reasons), "reasons.json lists exactly the invalid fixtures: "
       f"unlisted {sorted(set(names) - set(reasons))[:5]}, missing {sorted(set(reasons) - set(names))[:5]}")
    for name in names:
        meta = reasons.get(name)
        if meta is None:
            continue
        with open(os.path.join(idir, name), "rb") as f:
            data = f.read()
        verdict, detail, errors = jv.verdict_for_bytes(data, validators)
        expect = meta["jsonschema"]
        ok(verdict == expect, f"invalid/{name}: jsonschema says {verdict} ({detail}), "
           f"reasons.json says {expect}")
        ok(("rule" in meta) == (expect == "valid"), f"invalid/{name}: rule iff jsonschema valid")
        reason = meta["reason"]
        if meta.get("rule") and verdict == "valid":
            rule, got = decoder_rule(data, now_ms)
            ok((rule, got) == (meta["rule"], reason),
               f"invalid/{name}: decoder model finds {rule} {got}, expected {meta['rule']} {reason}")
        if reason.startswith("schema_violation:") and errors:
            want = reason[len("schema_violation:"):]
            got = error_pointers(errors)
            ok(want in got, f"invalid/{name}: {want} not among jsonschema's pointers {sorted(got)[:6]}")
        if reason != "oversize":
            ok(len(data) <= MAX_BYTES, f"invalid/{name}: {len(data)} bytes but reason {reason}")

    for f in failures:
        print("FAIL", f)
    print(f"fixtures: {passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
