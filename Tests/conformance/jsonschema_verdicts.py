#!/usr/bin/env python3
"""Independent JSON Schema verdicts for fleetwatch telemetry messages.

Usage:
    python3 jsonschema_verdicts.py SCHEMAS_DIR FILE...
    python3 jsonschema_verdicts.py --self-test [SCHEMAS_DIR]

Prints one JSON object to stdout: {"<file path>": {"verdict": "valid"|"invalid", "detail": "..."}}.

This is the Python side of the conformance check: it says what *plain JSON Schema validation*
(plus a strict RFC 8259 parse) thinks of each file, independently of the Swift decoder.
It deliberately does NOT apply the decoder-only rules of docs/schema.md (duplicate keys, sketch
and inference consistency, future timestamps, size), so fixtures that break only those rules
come out "valid" here; Tests/Fixtures/telemetry/invalid/reasons.json records which ones.

Parsing is strict RFC 8259: a UTF-8 BOM, invalid UTF-8 (including overlong forms and encoded
surrogates), NaN/Infinity/-Infinity, lone UTF-16 surrogates in \\u escapes and nesting deeper than
64 levels are rejected. Duplicate object keys are ACCEPTED (RFC 8259 allows them; the last one
wins, as in json.loads): rejecting them is a decoder rule. Size is not checked either (oversize
is a transport rule).

Needs the `jsonschema` package (4.x).
"""
import json
import os
import re
import sys

import jsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

MAX_DEPTH = 64  # the top-level object or array is depth 1

SCHEMA_FILES = {
    "fleet.telemetry/1": "fleet.telemetry.v1.json",
    "fleet.telemetry/2": "fleet.telemetry.v2.json",
}


# MARK: - ECMA-262 patterns

def ecma_to_python(pattern):
    """Translate the (small) regex subset our schemas use from ECMA-262 to Python semantics.

    Why: JSON Schema patterns are ECMA-262, where `$` (without the m flag) matches only at the
    very end of the input. In Python's `re`, `$` also matches just before a trailing "\\n", so
    re.search("^[a-z]+$", "cam\\n") succeeds and "cam-1\\n" would pass as a device id. We
    replace a final unescaped `$` with `\\Z` (Python's true end-of-string). Our schemas only
    anchor at the end, so no other `$` needs translating. `^` without re.MULTILINE already
    means start-of-string in both dialects, and the schemas use explicit ASCII classes
    ([0-9], not \\d, which is Unicode-aware in Python).
    """
    if pattern.endswith("$"):
        backslashes = len(pattern[:-1]) - len(pattern[:-1].rstrip("\\"))
        if backslashes % 2 == 0:  # the `$` is not itself escaped
            return pattern[:-1] + r"\Z"
    return pattern


_compiled = {}


def _ecma_pattern(validator, pattern, instance, schema):
    if not validator.is_type(instance, "string"):
        return
    rx = _compiled.get(pattern)
    if rx is None:
        rx = _compiled[pattern] = re.compile(ecma_to_python(pattern))
    if not rx.search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


EcmaValidator = jsonschema.validators.extend(
    Draft202012Validator, validators={"pattern": _ecma_pattern})


# MARK: - strict RFC 8259 parsing

class StrictJSONError(ValueError):
    pass


def _reject_constant(name):
    raise StrictJSONError(f"non-standard literal {name}")


def _check_tree(value, depth):
    """Reject nesting deeper than MAX_DEPTH and strings/keys holding lone surrogates."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")  # strict: a lone surrogate cannot be encoded
        except UnicodeEncodeError:
            raise StrictJSONError("lone UTF-16 surrogate in a string") from None
    elif isinstance(value, (dict, list)):
        depth += 1
        if depth > MAX_DEPTH:
            raise StrictJSONError(f"nesting deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            for k, v in value.items():
                _check_tree(k, depth)
                _check_tree(v, depth)
        else:
            for v in value:
                _check_tree(v, depth)


def strict_parse(data):
    if data.startswith(b"\xef\xbb\xbf"):
        raise StrictJSONError("UTF-8 byte-order mark")
    try:
        text = data.decode("utf-8")  # strict: invalid, overlong and surrogate encodings fail
    except UnicodeDecodeError as e:
        raise StrictJSONError(f"invalid UTF-8 at byte {e.start}") from None
    try:
        # json.loads is otherwise RFC 8259 strict (control characters in strings, comments,
        # trailing commas, leading zeros... are errors). Duplicate keys: last wins.
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise StrictJSONError(str(e)) from None
    except RecursionError:
        raise StrictJSONError("nesting too deep") from None
    _check_tree(value, 0)
    return value


# MARK: - verdicts

def load_validators(schemas_dir):
    validators = {}
    for name, fname in SCHEMA_FILES.items():
        with open(os.path.join(schemas_dir, fname), encoding="utf-8") as f:
            schema = json.load(f)
        Draft202012Validator.check_schema(schema)
        validators[name] = EcmaValidator(schema)
    return validators


def _pointer(path):
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def verdict_for_bytes(data, validators):
    """Return (verdict, detail, errors) where errors is the list of ValidationErrors."""
    try:
        doc = strict_parse(data)
    except StrictJSONError as e:
        return "invalid", f"invalid JSON: {e}", []
    name = doc.get("schema") if isinstance(doc, dict) else None
    validator = validators.get(name) if isinstance(name, str) else None
    if validator is None:
        return "invalid", "unsupported or missing schema", []
    errors = list(validator.iter_errors(doc))
    if not errors:
        return "valid", "ok", []
    err = best_match(errors)
    return "invalid", f"{_pointer(err.absolute_path)}: {err.message}"[:300], errors


def main(argv):
    if len(argv) >= 1 and argv[0] == "--self-test":
        here = os.path.dirname(os.path.abspath(__file__))
        schemas_dir = argv[1] if len(argv) > 1 else os.path.join(here, "..", "..", "schemas")
        return self_test(schemas_dir)
    if len(argv) < 2:
        print("usage: jsonschema_verdicts.py SCHEMAS_DIR FILE... | --self-test [SCHEMAS_DIR]",
              file=sys.stderr)
        return 2
    validators = load_validators(argv[0])
    out = {}
    for path in argv[1:]:
        with open(path, "rb") as f:
            data = f.read()
        verdict, detail, _ = verdict_for_bytes(data, validators)
        out[path] = {"verdict": verdict, "detail": detail}
    json.dump(out, sys.stdout, indent=2, ensure_ascii=False, sort_keys=True)
    sys.stdout.write("\n")
    return 0


# MARK: - self test

def self_test(schemas_dir):
    failures = 0
    checks = 0

    def check(cond, what):
        nonlocal failures, checks
        print(("ok   " if cond else "FAIL ") + what)
        checks += 1
        failures += 0 if cond else 1

    for fname in SCHEMA_FILES.values():
        with open(os.path.join(schemas_dir, fname), encoding="utf-8") as f:
            schema = json.load(f)
        try:
            Draft202012Validator.check_schema(schema)
            check(True, f"check_schema {fname}")
        except jsonschema.SchemaError as e:
            check(False, f"check_schema {fname}: {e.message}")
    check(ecma_to_python("^a$") == r"^a\Z", "trailing $ becomes \\Z")
    check(ecma_to_python(r"^a\$") == r"^a\$", "escaped $ is kept")
    check(ecma_to_python(r"^a\\$") == r"^a\\\Z", "$ after an escaped backslash is an anchor")
    validators = load_validators(schemas_dir)
    v1 = validators["fleet.telemetry/1"]
    sub = EcmaValidator({"$defs": v1.schema["$defs"], "$ref": "#/$defs/deviceId"})
    check(sub.is_valid("cam-1"), "device id cam-1 is valid")
    check(not sub.is_valid("cam-1\n"), "device id 'cam-1\\n' is invalid (ECMA $)")
    for bad, what in [(b"\xef\xbb\xbf{}", "BOM"), (b'{"a":NaN}', "NaN"),
                      (b'{"a":"\\ud800"}', "lone surrogate"), (b'{"a":"\xff"}', "bad UTF-8"),
                      (b"[" * 65 + b"]" * 65, "65 levels")]:
        try:
            strict_parse(bad)
            check(False, f"strict parse rejects {what}")
        except StrictJSONError:
            check(True, f"strict parse rejects {what}")
    check(strict_parse(b'{"a":1,"a":2}') == {"a": 2}, "duplicate keys accepted, last wins")
    check(strict_parse(b"[" * 64 + b"]" * 64) is not None, "64 levels accepted")
    print(f"self-test: {checks - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
