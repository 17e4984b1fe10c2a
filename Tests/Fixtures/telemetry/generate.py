#!/usr/bin/env python3
"""Generate the fleetwatch telemetry conformance fixtures (stdlib only, deterministic).

    python3 generate.py            # (re)write valid/*.json, invalid/*.json, invalid/reasons.json
    python3 generate.py --check    # exit 1 if the files on disk differ from what would be written

valid/    messages the decoder must accept (`fleetwatch schema validate` prints OK).
invalid/  messages it must reject; invalid/reasons.json maps each file name to
          {"reason": exact rejection reason (docs/schema.md),
           "jsonschema": "invalid" | "valid"   (what plain JSON Schema + strict RFC 8259 parsing
                                                says: "valid" only for decoder-only rules),
           "rule": category (only when jsonschema is "valid"),
           "why": one line}.

Every fixture has exactly one defect unless its name starts with `order-` (those test which of
several defects is reported; "why" says so). Timestamps are around 2025-11-29 (T0 below), so
they are in the past for decades; future ones use 2200-01-01.
"""
import copy
import hashlib
import json
import math
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

T0 = 1764417600000            # 2025-11-29T12:00:00Z
SENT = T0 + 123
FUTURE = 7258118400000        # 2200-01-01T00:00:00Z: "more than 24 h in the future" for decades
INT64_MAX = 2**63 - 1
GAMMA = 1.01 / 0.99
MAX_BYTES = 262144
SHA = hashlib.sha256(b"defect-detector 1.4.0").hexdigest()

DECODER_RULES = {
    "duplicate_keys", "sketch_keys_order", "sketch_length_mismatch", "sketch_count_sum",
    "sketch_empty_nonzero", "sketch_min_max", "inference_consistency", "future_timestamp",
    "oversize",
}

# MARK: - serialisation helpers


def dumps(obj, ascii=False):
    return json.dumps(obj, ensure_ascii=ascii, separators=(",", ":"), allow_nan=False)


def enc(obj, ascii=False):
    return dumps(obj, ascii).encode("utf-8")


def sub(text, old, new, count=1):
    """Replace `old` by `new` in text; `old` must occur exactly `count` times (0 = any >= 1)."""
    n = text.count(old)
    if (count and n != count) or n == 0:
        raise AssertionError(f"expected {count or '>=1'} x {old!r}, found {n}")
    return text.replace(old, new)


def ptr(*parts):
    """RFC 6901 JSON pointer."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def get(obj, path):
    for p in path:
        obj = obj[p]
    return obj


def with_(msg, path, value):
    m = copy.deepcopy(msg)
    get(m, path[:-1])[path[-1]] = value
    return m


def without(msg, path):
    m = copy.deepcopy(msg)
    del get(m, path[:-1])[path[-1]]
    return m


# MARK: - building blocks


def rng_values(seed, n, median, sigma):
    """n log-normal latencies (µs), deterministic: only Random.random() is used (stable)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        u1, u2 = rng.random() or 1e-12, rng.random()
        z = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
        out.append(round(median * math.exp(sigma * z), 1))
    return out


def bucket(v):
    return 0 if v < 1 else math.ceil(math.log(v) / math.log(GAMMA))


def sketch(values):
    if not values:
        return {"count": 0, "sum": 0, "min": 0, "max": 0, "keys": [], "counts": []}
    b = {}
    for v in values:
        k = bucket(v)
        b[k] = b.get(k, 0) + 1
    keys = sorted(b)
    return {"count": len(values), "sum": round(sum(values), 1), "min": min(values),
            "max": max(values), "keys": keys, "counts": [b[k] for k in keys]}


def hist_for(n):
    """A plausible 10-bin confidence histogram summing to n (skewed to high confidence)."""
    weights = [1, 1, 2, 3, 5, 9, 18, 43, 100, 218]
    h = [n * w // sum(weights) for w in weights]
    h[-1] += n - sum(h)
    return h


TYPICAL_LAT = rng_values(7, 1197, 18500.0, 0.045)


def inference(ts, count=1200, errors=3, latencies=None, classes=None):
    ok = count - errors
    lat = latencies if latencies is not None else TYPICAL_LAT[:ok]
    assert len(lat) == ok
    if classes is None:
        classes = {"ok": ok - ok // 20 - ok // 50 - ok // 150, "scratch": ok // 20,
                   "dent": ok // 50, "misaligned": ok // 150}
    return {"kind": "inference", "ts_ms": ts, "window_ms": 60000, "count": count,
            "errors": errors, "latency_us": sketch(lat), "confidence_hist": hist_for(ok),
            "class_counts": classes}


def resources(ts, cpu=63.5, mem=2875.2, temp=61.25, throttle=0):
    return {"kind": "resources", "ts_ms": ts, "cpu_pct": cpu, "mem_mb": mem, "temp_c": temp,
            "throttle_events": throttle}


def session(ts, sid="s-20251129-0007", status="exited", duration=3600000, errors=3):
    return {"kind": "session", "ts_ms": ts, "session_id": sid, "status": status,
            "duration_ms": duration, "errors": errors}


def error(ts, code="CAMERA_TIMEOUT", message="frame grab timed out after 500 ms on /dev/video0"):
    return {"kind": "error", "ts_ms": ts, "code": code, "message": message}


def deploy(ts, frm="1.3.2", to="1.4.0", result="installed"):
    return {"kind": "deploy", "ts_ms": ts, "from_version": frm, "to_version": to,
            "result": result}


def envelope(records, schema="fleet.telemetry/1", seq=1041):
    return {"schema": schema, "device_id": "cam-0042", "seq": seq, "sent_at_ms": SENT,
            "device": {"sku": "orin-nano-8g", "firmware": "5.1.2", "agent": "0.3.0"},
            "model": {"name": "defect-detector", "version": "1.4.0", "sha256": SHA},
            "records": records}


# Record indices of the base message (reasons below refer to them).
I_INF, I_RES, I_SES, I_ERR, I_DEP = range(5)
KIND_AT = {I_INF: "inference", I_RES: "resources", I_SES: "session", I_ERR: "error",
           I_DEP: "deploy"}


def base_v1():
    return envelope([
        inference(T0 - 60000),
        resources(T0 - 30000),
        session(T0 - 20000),
        error(T0 - 10000),
        deploy(T0),
    ])


INPUT_STATS = [
    {"name": "brightness", "mean": 0.472, "std": 0.118, "min": 0.051, "max": 0.982},
    {"name": "contrast", "mean": 0.31, "std": 0.067, "min": 0.12, "max": 0.55},
    {"name": "blur_laplacian_var", "mean": 812.4, "std": 143.9, "min": 240.0, "max": 1630.5},
    {"name": "exposure_us", "mean": 8250.0, "std": 0.0, "min": 8250.0, "max": 8250.0},
]


def base_v2(input_stats=True):
    m = base_v1()
    m["schema"] = "fleet.telemetry/2"
    m["device"]["accelerator"] = "gpu"
    if input_stats:
        m["records"][I_INF]["input_stats"] = copy.deepcopy(INPUT_STATS)
    return m


def heavy_ws(obj):
    """Serialise with every kind of JSON whitespace (space, tab, CR, LF) around every token."""
    pads = [" ", "\t", "\r\n", "\n    ", "  \t ", "\r\n\t\t", ""]
    state = {"i": 0}

    def w():
        state["i"] += 1
        return pads[state["i"] % len(pads)]

    def go(o):
        if isinstance(o, dict):
            items = [w() + json.dumps(k, ensure_ascii=False) + w() + ":" + w() + go(v) + w()
                     for k, v in o.items()]
            return "{" + ",".join(items) + "}"
        if isinstance(o, list):
            return "[" + ",".join(w() + go(v) + w() for v in o) + "]"
        return json.dumps(o, ensure_ascii=False)

    return ("\r\n \t" + go(obj) + "\n\n\t \r\n").encode("utf-8")


def reorder(o):
    """Reverse member order everywhere (schema comes last, kind last in each record)."""
    if isinstance(o, dict):
        return {k: reorder(v) for k, v in reversed(list(o.items()))}
    if isinstance(o, list):
        return [reorder(v) for v in o]
    return o


def code_points(s):
    return len(s)


# Text pieces whose code point, UTF-16 and grapheme counts all differ.
TRICKY = ("é"              # 1 cp (precomposed)
          "e\u0301"        # 2 cp, 1 grapheme (combining acute)
          "👍"             # 1 cp, 2 UTF-16 units, 4 UTF-8 bytes
          "👨\u200d👩\u200d👧"  # 5 cp, 1 grapheme (ZWJ family)
          "🇩🇪"           # 2 cp, 1 grapheme (flag)
          "日本語"          # 3 cp, 9 UTF-8 bytes
          )


def text_of(n, prefix=""):
    """A string of exactly n code points mixing TRICKY pieces and ASCII."""
    s = prefix
    while len(s) + len(TRICKY) + 1 <= n:
        s += TRICKY + " "
    s += "x" * (n - len(s))
    assert len(s) == n
    return s


def error_flood(target_bytes):
    """A schema-valid message of 1000 error records padded to exactly target_bytes."""
    recs = [error(T0 - 1000 + i, code="E_FLOOD", message="") for i in range(1000)]
    m = envelope(recs)
    size = len(enc(m))
    per, extra = divmod(target_bytes - size, 1000)
    assert per + 1 <= 512, "messages would exceed 512 code points"
    for i, r in enumerate(recs):
        n = per + (1 if i < extra else 0)
        r["message"] = ("watchdog: frame queue stalled; retrying " * 20)[:n]
    data = enc(m)
    assert len(data) == target_bytes, (len(data), target_bytes)
    return data


# MARK: - fixture registry

VALID = {}
INVALID = {}
REASONS = {}


def valid(name, data):
    if not isinstance(data, bytes):
        data = enc(data)
    assert name not in VALID, name
    VALID[name + ".json"] = data


def invalid(name, data, reason, why, rule=None, jsonschema=None):
    if not isinstance(data, bytes):
        data = enc(data)
    fname = name + ".json"
    assert fname not in INVALID, fname
    if rule is not None:
        assert rule in DECODER_RULES, rule
    js = jsonschema or ("valid" if rule else "invalid")
    assert (js == "valid") == (rule is not None), fname
    INVALID[fname] = data
    meta = {"reason": reason, "jsonschema": js, "why": why}
    if rule:
        meta["rule"] = rule
    REASONS[fname] = meta


def sv(*parts):
    return "schema_violation:" + ptr(*parts)


def rec(i, *parts):
    return ("records", i) + parts


def path_label(path, v2=False):
    parts = list(path)
    if len(parts) >= 2 and parts[0] == "records" and isinstance(parts[1], int):
        parts = [KIND_AT.get(parts[1], f"record{parts[1]}")] + parts[2:]
    return ("v2-" if v2 else "") + ".".join(str(p) for p in parts)


# MARK: - valid fixtures


def build_valid():
    typical = base_v1()
    valid("v1-typical", typical)

    valid("v2-typical", base_v2())
    valid("v2-without-input-stats", base_v2(input_stats=False))
    m = base_v2()
    m["records"][I_INF]["input_stats"] = [
        {"name": text_of(64) if i == 0 else f"feature_{i:02d}", "mean": -1e15 if i == 1 else 0.5,
         "std": 1e15 if i == 2 else 0.25, "min": -1e15 if i == 3 else 0.0,
         "max": 1e15 if i == 4 else 1.0} for i in range(64)]
    m["device"]["accelerator"] = "npu"
    valid("v2-input-stats-64-items-and-bounds", m)
    m = base_v2()
    m["records"][I_INF]["input_stats"] = []
    valid("v2-input-stats-empty", m)

    # 1000 records, mixed kinds, well under 256 KiB.
    recs = []
    small = rng_values(11, 40, 9000.0, 0.2)
    for i in range(1000):
        ts = T0 - 1000 * 1000 + i * 1000
        k = i % 5
        if k == 0:
            recs.append(resources(ts, cpu=round(20 + (i % 70) * 0.9, 1), temp=55.5))
        elif k == 1:
            recs.append(inference(ts, count=41, errors=1, latencies=small,
                                  classes={"ok": 38, "scratch": 2}))
        elif k == 2:
            recs.append(session(ts, sid=f"s-{i:04d}", status="started", duration=0, errors=0))
        elif k == 3:
            recs.append(error(ts, code="E_FRAME_DROP", message=f"dropped frame {i}"))
        else:
            recs.append(deploy(ts, frm="1.3.2", to="1.4.0", result="failed"))
    valid("records-1000", envelope(recs))

    # Every kind alone.
    valid("kind-inference-only", envelope([inference(T0)]))
    valid("kind-resources-only", envelope([resources(T0)]))
    valid("kind-session-only", envelope([session(T0, status="started", duration=0, errors=0)]))
    valid("kind-error-only", envelope([error(T0)]))
    valid("kind-deploy-only", envelope([deploy(T0)]))
    valid("session-all-statuses", envelope([
        session(T0, sid="a", status="started", duration=0, errors=0),
        session(T0 + 1, sid="a", status="exited", duration=1, errors=0),
        session(T0 + 2, sid="b", status="crashed", duration=4000, errors=7),
        session(T0 + 3, sid="c", status="abnormal", duration=0, errors=0)]))
    valid("deploy-all-results", envelope([
        deploy(T0, result="installed"), deploy(T0 + 1, result="rolled_back"),
        deploy(T0 + 2, result="failed")]))

    # Empty sketch: every inference failed (count == errors).
    valid("empty-sketch", envelope([inference(T0, count=5, errors=5, latencies=[])]))
    valid("inference-zero-count", envelope([inference(T0, count=0, errors=0, latencies=[],
                                                      classes={})]))
    # Sketch key bounds 0 (values < 1 µs) and 100000.
    m = envelope([inference(T0, count=3, errors=0, latencies=[0.4, 0.9, 1.0])])
    r = m["records"][0]
    r["latency_us"] = {"count": 3, "sum": 9.2e18, "min": 0.4, "max": 9.2e18, "keys": [0, 100000],
                       "counts": [2, 1]}
    valid("sketch-key-and-value-bounds", m)

    # Integral-valued numbers where ints are required (JSON Schema: 3.0 and 3e0 are integers).
    t = dumps(typical)
    t = sub(t, '"seq":1041', '"seq":1041.0')
    t = sub(t, f'"ts_ms":{T0 - 60000}', '"ts_ms":1.76441754e12')
    t = sub(t, f'"sent_at_ms":{SENT}', '"sent_at_ms":1764417600123E0')
    t = sub(t, f'"ts_ms":{T0}', '"ts_ms":1.7644176e12')
    t = sub(t, '"window_ms":60000', '"window_ms":6e4')
    t = sub(t, '"throttle_events":0', '"throttle_events":0.0e+5')
    t = sub(t, '"duration_ms":3600000', '"duration_ms":36E+5')
    t = sub(t, '"count":1200', '"count":12000e-1')
    valid("integral-floats", t.encode())

    valid("member-order-shuffled", reorder(typical))
    valid("heavy-whitespace", heavy_ws(typical))

    m = copy.deepcopy(typical)
    m["device_id"] = "C" + "a1.b-_" * 10 + "xyz"
    assert len(m["device_id"]) == 64
    valid("device-id-64-chars", m)

    # Strings at their maximum lengths (code points, not UTF-16 units, not graphemes).
    m = copy.deepcopy(typical)
    lab = "L" + "abc.DEF_9+-" * 5 + "0123456789"[:8]
    assert len(lab) == 64
    for k in ("sku", "firmware", "agent"):
        m["device"][k] = lab
    m["model"]["name"] = lab
    m["model"]["version"] = lab
    m["records"][I_SES]["session_id"] = text_of(64, "sess-")
    m["records"][I_ERR]["code"] = ("E" + "X_9" * 11)[:32]
    m["records"][I_ERR]["message"] = text_of(512, "failure: ")
    m["records"][I_DEP]["from_version"] = lab
    m["records"][I_DEP]["to_version"] = lab
    cc = m["records"][I_INF]["class_counts"]
    cc[text_of(64, "class-")] = cc.pop("misaligned")
    assert len(m["records"][I_ERR]["code"]) == 32
    valid("max-lengths", m)
    msg512 = m["records"][I_ERR]["message"]
    assert len(msg512.encode("utf-16-le")) // 2 > 512  # UTF-16 count would wrongly reject

    m = copy.deepcopy(typical)
    m["records"][I_ERR]["message"] = "\u001b]0;pwned\u0007 \u001b[2J\u001b[31mred\u001b[0m"
    valid("error-message-terminal-escapes", m)
    m = copy.deepcopy(typical)
    m["records"][I_ERR]["message"] = "nul:\u0000 bs:\b ff:\f nl:\n cr:\r tab:\t q:\" bsl:\\"
    valid("error-message-control-escapes", m)
    # DEL and C1 controls are allowed unescaped by RFC 8259 (only U+0000..U+001F must be escaped).
    m = copy.deepcopy(typical)
    m["records"][I_ERR]["message"] = "raw DEL:\u007f C1:\u0085\u009b end"
    valid("error-message-raw-del-and-c1", m)
    m = copy.deepcopy(typical)
    m["records"][I_ERR]["message"] = ""
    valid("error-message-empty", m)

    # \u escapes everywhere, surrogate pairs, escaped solidus, escaped member names and values.
    m = copy.deepcopy(typical)
    m["records"][I_ERR]["message"] = "grin 😀 café 日本 path /dev/video0"
    m["records"][I_SES]["session_id"] = "sess-😀-é"
    m["records"][I_INF]["class_counts"] = {"ok": 1104, "défaut-😀": 61, "dent": 24, "mis": 8}
    t = dumps(m, ascii=True)
    assert "\\ud83d\\ude00" in t
    t = sub(t, "path /dev/video0", "path \\/dev\\/video0")
    t = sub(t, '"schema":', '"sch\\u0065ma":')
    t = sub(t, '"kind":"error"', '"\\u006bind":"\\u0065rror"')
    t = sub(t, '"device_id":"cam-0042"', '"device_id":"cam\\u002D0042"')
    t = sub(t, '"result":"installed"', '"result":"\\u0069nstalled"')
    valid("unicode-escapes", t.encode())

    m = copy.deepcopy(typical)
    m["records"][I_DEP]["from_version"] = ""
    valid("deploy-first-install", m)

    m = copy.deepcopy(typical)
    m["records"][I_INF]["class_counts"] = {}
    valid("class-counts-empty", m)
    m = copy.deepcopy(typical)
    m["records"][I_INF]["class_counts"] = {f"c{i:03d}": i for i in range(256)}
    valid("class-counts-256", m)
    m = copy.deepcopy(typical)
    m["records"][I_INF]["class_counts"] = {"a/b": 1, "~0": 2, "with space": 3, "x~1y": 4,
                                           "😀": 5, "\"quoted\"": 6}
    valid("class-names-special-characters", m)

    m = copy.deepcopy(typical)
    m["seq"] = INT64_MAX
    valid("seq-int64-max", m)
    m = envelope([resources(0), session(0, status="started", duration=0, errors=0)])
    m["sent_at_ms"] = 0
    m["seq"] = 1
    valid("timestamps-zero-and-seq-1", m)

    valid("resources-bounds-inclusive", envelope([
        resources(T0, cpu=100, mem=1e9, temp=-273.15, throttle=INT64_MAX),
        resources(T0 + 1, cpu=0, mem=0, temp=1000, throttle=0),
        resources(T0 + 2, cpu=1e2, mem=0.0, temp=1e3, throttle=0)]))
    t = dumps(envelope([resources(T0)]))
    t = sub(t, '"cpu_pct":63.5', '"cpu_pct":-0.0')
    t = sub(t, '"throttle_events":0', '"throttle_events":-0')
    t = sub(t, '"mem_mb":2875.2', '"mem_mb":1e-400')
    valid("negative-zero-and-underflow", t.encode())

    m = copy.deepcopy(typical)
    m["device"]["sku"] = "Orin_Nano.8G"
    m["device"]["firmware"] = "5.1.2-rc.1+l4t"
    m["model"]["version"] = "1.4.0+build.7"
    m["records"][I_DEP]["to_version"] = "1.4.0+build.7"
    valid("labels-charset", m)

    valid("size-exactly-262144-bytes", error_flood(MAX_BYTES))

    # Deep but legal nesting is impossible inside a closed schema, so the depth limit is tested
    # only by invalid fixtures; here the deepest legal message: 4 levels (top/records/record/sketch).


# MARK: - invalid fixtures


WRONG_VALUES = {
    "string": [42, None, True, ["x"], {"a": "b"}],
    "int": ["3", True, None, 2.5, [1], {"n": 1}],
    "number": ["NaN", None, False, [1.0], {"v": 1}, "12.5"],
    "object": [[], "x", None, 1],
    "array": [{}, "x", None, 7],
}


def type_name(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "fraction" if v != int(v) else "float"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


# (path, type) of every member in the base messages. kind is covered separately.
V1_FIELDS = [
    (("device_id",), "string"), (("seq",), "int"), (("sent_at_ms",), "int"),
    (("device",), "object"), (("device", "sku"), "string"), (("device", "firmware"), "string"),
    (("device", "agent"), "string"),
    (("model",), "object"), (("model", "name"), "string"), (("model", "version"), "string"),
    (("model", "sha256"), "string"), (("records",), "array"),
    (rec(I_INF, "ts_ms"), "int"), (rec(I_INF, "window_ms"), "int"), (rec(I_INF, "count"), "int"),
    (rec(I_INF, "errors"), "int"), (rec(I_INF, "latency_us"), "object"),
    (rec(I_INF, "latency_us", "count"), "int"), (rec(I_INF, "latency_us", "sum"), "number"),
    (rec(I_INF, "latency_us", "min"), "number"), (rec(I_INF, "latency_us", "max"), "number"),
    (rec(I_INF, "latency_us", "keys"), "array"), (rec(I_INF, "latency_us", "counts"), "array"),
    (rec(I_INF, "latency_us", "keys", 0), "int"), (rec(I_INF, "latency_us", "counts", 0), "int"),
    (rec(I_INF, "confidence_hist"), "array"), (rec(I_INF, "confidence_hist", 9), "int"),
    (rec(I_INF, "class_counts"), "object"), (rec(I_INF, "class_counts", "scratch"), "int"),
    (rec(I_RES, "ts_ms"), "int"), (rec(I_RES, "cpu_pct"), "number"),
    (rec(I_RES, "mem_mb"), "number"), (rec(I_RES, "temp_c"), "number"),
    (rec(I_RES, "throttle_events"), "int"),
    (rec(I_SES, "ts_ms"), "int"), (rec(I_SES, "session_id"), "string"),
    (rec(I_SES, "status"), "string"), (rec(I_SES, "duration_ms"), "int"),
    (rec(I_SES, "errors"), "int"),
    (rec(I_ERR, "ts_ms"), "int"), (rec(I_ERR, "code"), "string"),
    (rec(I_ERR, "message"), "string"),
    (rec(I_DEP, "ts_ms"), "int"), (rec(I_DEP, "from_version"), "string"),
    (rec(I_DEP, "to_version"), "string"), (rec(I_DEP, "result"), "string"),
]
V2_FIELDS = [
    (("device", "accelerator"), "string"), (rec(I_INF, "input_stats"), "array"),
    (rec(I_INF, "input_stats", 0), "object"), (rec(I_INF, "input_stats", 0, "name"), "string"),
    (rec(I_INF, "input_stats", 0, "mean"), "number"), (rec(I_INF, "input_stats", 0, "std"), "number"),
    (rec(I_INF, "input_stats", 0, "min"), "number"), (rec(I_INF, "input_stats", 0, "max"), "number"),
]

# Required members of every object (path of the object, members).
V1_REQUIRED = [
    ((), ["schema", "device_id", "seq", "sent_at_ms", "device", "model", "records"]),
    (("device",), ["sku", "firmware", "agent"]),
    (("model",), ["name", "version", "sha256"]),
    (rec(I_INF), ["kind", "ts_ms", "window_ms", "count", "errors", "latency_us",
                  "confidence_hist", "class_counts"]),
    (rec(I_INF, "latency_us"), ["count", "sum", "min", "max", "keys", "counts"]),
    (rec(I_RES), ["kind", "ts_ms", "cpu_pct", "mem_mb", "temp_c", "throttle_events"]),
    (rec(I_SES), ["kind", "ts_ms", "session_id", "status", "duration_ms", "errors"]),
    (rec(I_ERR), ["kind", "ts_ms", "code", "message"]),
    (rec(I_DEP), ["kind", "ts_ms", "from_version", "to_version", "result"]),
]
V2_REQUIRED = [
    (("device",), ["accelerator"]),
    (rec(I_INF, "input_stats", 0), ["name", "mean", "std", "min", "max"]),
]
CLOSED_V1 = [(), ("device",), ("model",), rec(I_INF), rec(I_INF, "latency_us"), rec(I_RES),
             rec(I_SES), rec(I_ERR), rec(I_DEP)]
CLOSED_V2 = [(), ("device",), rec(I_INF), rec(I_INF, "input_stats", 0)]


def build_systematic():
    b1 = base_v1()
    b2 = base_v2()
    counter = 0
    for v2, fields, base in ((False, V1_FIELDS, b1), (True, V2_FIELDS, b2)):
        for path, typ in fields:
            choices = WRONG_VALUES["string" if typ == "string" else typ]
            value = choices[counter % len(choices)]
            counter += 1
            label = path_label(path, v2)
            invalid(f"wrong-type-{label}-{type_name(value)}", with_(base, path, value),
                    sv(*path), f"{label} must be {typ}, is {type_name(value)} {dumps(value)}")
    for v2, required, base in ((False, V1_REQUIRED, b1), (True, V2_REQUIRED, b2)):
        for obj_path, members in required:
            for member in members:
                path = obj_path + (member,)
                label = path_label(path, v2)
                why = f"required member {label} missing (found at the closing brace of its object)"
                if member == "schema":
                    why = "no schema member: a schema_violation, not unsupported_schema"
                invalid(f"missing-{label}", without(base, path), sv(*path), why)
    for v2, closed, base in ((False, CLOSED_V1, b1), (True, CLOSED_V2, b2)):
        for obj_path in closed:
            path = obj_path + ("x_extra",)
            label = path_label(path, v2)
            invalid(f"extra-member-{label}", with_(base, path, "surprise"), sv(*path),
                    f"closed object {path_label(obj_path, v2) or 'top level'} has member x_extra")


def build_bounds():
    b = base_v1()
    cases = [
        # (name, path, value, why)
        ("seq-zero", ("seq",), 0, "seq starts at 1"),
        ("seq-negative", ("seq",), -1, "seq >= 1"),
        ("seq-int64-overflow", ("seq",), INT64_MAX + 1, "9223372036854775808 > int64 max"),
        ("seq-huge-negative", ("seq",), -(2**63) - 1, "below int64 min"),
        ("seq-fraction", ("seq",), 3.5, "seq must be integral"),
        ("seq-string-nan", ("seq",), "NaN", "a NaN-like string is not an integer"),
        ("sent_at_ms-negative", ("sent_at_ms",), -1, "sent_at_ms >= 0"),
        ("sent_at_ms-overflow", ("sent_at_ms",), 2**64, "above int64 max"),
        ("ts_ms-negative", rec(I_RES, "ts_ms"), -5, "ts_ms >= 0"),
        ("ts_ms-fraction", rec(I_ERR, "ts_ms"), T0 + 0.5, "ts_ms must be integral"),
        ("inference-window_ms-zero", rec(I_INF, "window_ms"), 0, "window_ms >= 1"),
        ("inference-count-negative", rec(I_INF, "count"), -1, "count >= 0"),
        ("inference-count-bool", rec(I_INF, "count"), True, "a boolean is not an integer"),
        ("inference-errors-negative", rec(I_INF, "errors"), -3, "errors >= 0"),
        ("sketch-count-negative", rec(I_INF, "latency_us", "count"), -1197, "sketch count >= 0"),
        ("sketch-sum-negative", rec(I_INF, "latency_us", "sum"), -0.5, "sketch sum >= 0"),
        ("sketch-sum-too-large", rec(I_INF, "latency_us", "sum"), 1e19, "sketch sum <= 9.2e18"),
        ("sketch-min-negative", rec(I_INF, "latency_us", "min"), -1, "sketch min >= 0"),
        ("sketch-max-too-large", rec(I_INF, "latency_us", "max"), 9.3e18, "sketch max <= 9.2e18"),
        ("sketch-key-negative", rec(I_INF, "latency_us", "keys", 0), -1, "sketch keys >= 0"),
        ("confidence_hist-fraction-bin", rec(I_INF, "confidence_hist", 3), 2.5,
         "bins are ints (the histogram sum is then off too, but is checked later)"),
        ("class_counts-negative", rec(I_INF, "class_counts", "scratch"), -1, "counts >= 0"),
        ("class_counts-value-string", rec(I_INF, "class_counts", "dent"), "24", "counts are ints"),
        ("resources-cpu_pct-above-100", rec(I_RES, "cpu_pct"), 100.01, "cpu_pct <= 100"),
        ("resources-cpu_pct-negative", rec(I_RES, "cpu_pct"), -0.1, "cpu_pct >= 0"),
        ("resources-cpu_pct-string-nan", rec(I_RES, "cpu_pct"), "NaN",
         "NaN-like string is not a number"),
        ("resources-mem_mb-string-infinity", rec(I_RES, "mem_mb"), "Infinity",
         "Infinity-like string is not a number"),
        ("resources-mem_mb-negative", rec(I_RES, "mem_mb"), -1, "mem_mb >= 0"),
        ("resources-mem_mb-too-large", rec(I_RES, "mem_mb"), 1.5e9, "mem_mb <= 1e9"),
        ("resources-temp_c-below-absolute-zero", rec(I_RES, "temp_c"), -273.16, "temp_c >= -273.15"),
        ("resources-temp_c-too-hot", rec(I_RES, "temp_c"), 1000.5, "temp_c <= 1000"),
        ("resources-throttle_events-negative", rec(I_RES, "throttle_events"), -1, ">= 0"),
        ("resources-throttle_events-fraction", rec(I_RES, "throttle_events"), 1.5, "integral"),
        ("resources-cpu_pct-null", rec(I_RES, "cpu_pct"), None, "null is not a number"),
        ("session-session_id-empty", rec(I_SES, "session_id"), "", "session_id 1..64 code points"),
        ("session-session_id-65-code-points", rec(I_SES, "session_id"), text_of(65, "s-"),
         "65 code points (fewer graphemes) > 64"),
        ("session-status-unknown", rec(I_SES, "status"), "running", "status enum"),
        ("session-status-uppercase", rec(I_SES, "status"), "EXITED", "enum is case-sensitive"),
        ("session-duration_ms-negative", rec(I_SES, "duration_ms"), -1, "duration_ms >= 0"),
        ("session-errors-negative", rec(I_SES, "errors"), -1, "errors >= 0"),
        ("error-message-513-code-points", rec(I_ERR, "message"), text_of(513, "failure: "),
         "513 code points (fewer graphemes than 512) > 512"),
        ("deploy-result-unknown", rec(I_DEP, "result"), "succeeded", "result enum"),
        ("deploy-result-case", rec(I_DEP, "result"), "Rolled_Back", "enum is case-sensitive"),
        ("deploy-to_version-empty", rec(I_DEP, "to_version"), "", "only from_version may be \"\""),
        ("deploy-from_version-space", rec(I_DEP, "from_version"), " ", "not a label and not \"\""),
        ("deploy-from_version-null", rec(I_DEP, "from_version"), None, "null is not \"\""),
        ("model-null", ("model",), None, "model must be an object"),
        ("device-array", ("device",), ["orin-nano-8g"], "device must be an object"),
        ("records-not-array", ("records",), {"0": resources(T0)}, "records must be an array"),
        ("records-empty", ("records",), [], "1..1000 records"),
        ("record-not-object", rec(I_RES), "resources", "a record must be an object"),
        ("record-null", rec(I_SES), None, "a record must be an object"),
        ("record-kind-unknown", rec(I_RES, "kind"), "gpu", "unknown record kind"),
        ("record-kind-case", rec(I_RES, "kind"), "Resources", "kind is case-sensitive"),
        ("record-kind-number", rec(I_RES, "kind"), 3, "kind must be a string"),
    ]
    for name, path, value, why in cases:
        invalid(name, with_(b, path, value), sv(*path), why)

    # Element bounds that keep the sums right (one defect only).
    m = copy.deepcopy(b)
    c = get(m, rec(I_INF, "latency_us", "counts"))
    c[3] += c[2]
    c[2] = 0
    invalid("sketch-counts-zero", m, sv(*rec(I_INF, "latency_us", "counts", 2)),
            "sketch counts >= 1 (sum unchanged)")
    m = copy.deepcopy(b)
    h = get(m, rec(I_INF, "confidence_hist"))
    h[9] += h[3] + 1
    h[3] = -1
    invalid("confidence_hist-negative-bin", m, sv(*rec(I_INF, "confidence_hist", 3)),
            "bins >= 0 (sum unchanged)")

    # Numbers written in ways Python's json would turn into inf: still schema violations.
    t = dumps(b)
    invalid("seq-1e400", sub(t, '"seq":1041', '"seq":1e400').encode(), sv("seq"),
            "1e400 is valid JSON but out of int64 range")
    invalid("resources-cpu_pct-1e400", sub(t, '"cpu_pct":63.5', '"cpu_pct":1e400').encode(),
            sv(*rec(I_RES, "cpu_pct")), "1e400 > 100 (not Infinity)")
    invalid("resources-temp_c-minus-1e400", sub(t, '"temp_c":61.25', '"temp_c":-1e400').encode(),
            sv(*rec(I_RES, "temp_c")), "-1e400 < -273.15")
    invalid("seq-9.3e18", sub(t, '"seq":1041', '"seq":9.3e18').encode(), sv("seq"),
            "integral but above int64 max")

    # Patterns.
    pattern_cases = [
        ("device_id-empty", ("device_id",), ""),
        ("device_id-65-chars", ("device_id",), "c" * 65),
        ("device_id-leading-dash", ("device_id",), "-cam-0042"),
        ("device_id-leading-dot", ("device_id",), ".cam"),
        ("device_id-trailing-newline", ("device_id",), "cam-1\n"),
        ("device_id-leading-newline", ("device_id",), "\ncam-1"),
        ("device_id-cyrillic-homoglyph", ("device_id",), "c\u0430m-0042"),
        ("device_id-fullwidth-digits", ("device_id",), "cam-\uff10\uff10\uff14\uff12"),
        ("device_id-zero-width-space", ("device_id",), "cam\u200b-0042"),
        ("device_id-rtl-override", ("device_id",), "cam-\u202e2400"),
        ("device_id-nul", ("device_id",), "cam\u00000042"),
        ("device_id-plus", ("device_id",), "cam+0042"),
        ("device_id-slash", ("device_id",), "cam/0042"),
        ("device_id-mqtt-wildcard", ("device_id",), "cam-#"),
        ("device_id-space", ("device_id",), "cam 0042"),
        ("device-sku-space", ("device", "sku"), "orin nano"),
        ("device-sku-trailing-newline", ("device", "sku"), "orin-nano-8g\n"),
        ("device-firmware-65-chars", ("device", "firmware"), "5" * 65),
        ("device-firmware-leading-dot", ("device", "firmware"), ".5.1.2"),
        ("device-agent-empty", ("device", "agent"), ""),
        ("device-agent-non-ascii", ("device", "agent"), "0.3.0-\u03b2"),
        ("model-name-slash", ("model", "name"), "defect/detector"),
        ("model-version-space", ("model", "version"), "1.4.0 beta"),
        ("model-sha256-uppercase", ("model", "sha256"), SHA.upper()),
        ("model-sha256-63-digits", ("model", "sha256"), SHA[:63]),
        ("model-sha256-65-digits", ("model", "sha256"), SHA + "0"),
        ("model-sha256-non-hex", ("model", "sha256"), "g" + SHA[1:]),
        ("model-sha256-trailing-newline", ("model", "sha256"), SHA + "\n"),
        ("error-code-lowercase", rec(I_ERR, "code"), "camera_timeout"),
        ("error-code-leading-digit", rec(I_ERR, "code"), "9CAMERA"),
        ("error-code-leading-underscore", rec(I_ERR, "code"), "_CAMERA"),
        ("error-code-33-chars", rec(I_ERR, "code"), "E" * 33),
        ("error-code-empty", rec(I_ERR, "code"), ""),
        ("error-code-dash", rec(I_ERR, "code"), "CAMERA-TIMEOUT"),
        ("error-code-trailing-newline", rec(I_ERR, "code"), "CAMERA_TIMEOUT\n"),
        ("deploy-to_version-65-chars", rec(I_DEP, "to_version"), "1" * 65),
        ("deploy-from_version-trailing-newline", rec(I_DEP, "from_version"), "1.3.2\n"),
    ]
    for name, path, value in pattern_cases:
        invalid(name, with_(b, path, value), sv(*path), f"{dumps(value, True)} fails the pattern")

    cc = rec(I_INF, "class_counts")
    m = copy.deepcopy(b)
    get(m, cc)[""] = 1
    invalid("class_counts-name-empty", m, sv(*cc, ""),
            "class names are 1..64 code points; pointer to the empty key ends in /")
    m = copy.deepcopy(b)
    long_name = text_of(65, "class-")
    get(m, cc)[long_name] = 1
    invalid("class_counts-name-65-code-points", m, sv(*cc, long_name),
            "65 code points (fewer graphemes) > 64")
    m = copy.deepcopy(b)
    get(m, cc)["a/b~c"] = -2
    invalid("class_counts-pointer-escaping", m, sv(*cc, "a/b~c"),
            "negative count under key a/b~c: pointer escapes / and ~ as ~1 and ~0")
    m = copy.deepcopy(b)
    get(m, cc).clear()
    get(m, cc).update({f"c{i:03d}": 1 for i in range(257)})
    invalid("class_counts-257-classes", m, sv(*cc), "at most 256 classes: the object's pointer")
    m = copy.deepcopy(b)
    get(m, cc)["x"] = INT64_MAX + 1
    invalid("class_counts-value-overflow", m, sv(*cc, "x"), "count above int64 max")

    hist = rec(I_INF, "confidence_hist")
    for n in (9, 11):
        m = copy.deepcopy(b)
        h = get(m, hist)
        if n == 9:
            h[8] += h.pop()
        else:
            h.append(0)
        invalid(f"confidence_hist-{n}-bins", m, sv(*hist), f"exactly 10 bins, got {n}")

    lat = rec(I_INF, "latency_us")
    m = copy.deepcopy(b)
    s = get(m, lat)
    s["keys"][-1] = 100001
    invalid("sketch-key-too-large", m, sv(*lat, "keys", len(s["keys"]) - 1),
            "last key 100001 > 100000 (still increasing)")
    m = envelope([inference(T0, count=4097, errors=0, latencies=[float(i + 1) for i in range(4097)])])
    s = m["records"][0]["latency_us"]
    s["keys"] = list(range(4097))
    s["counts"] = [1] * 4097
    invalid("order-sketch-4097-keys", m, sv("records", 0, "latency_us", "keys"),
            "keys and counts both have 4097 items (> 4096): keys comes first in the document")
    m = envelope([inference(T0, count=4097, errors=0, latencies=[float(i + 1) for i in range(4097)])])
    s = m["records"][0]["latency_us"]
    s["keys"] = list(range(4096))
    s["counts"] = [1] * 4097
    invalid("order-sketch-4097-counts", m, sv("records", 0, "latency_us", "counts"),
            "counts has 4097 items (> 4096); the keys/counts length mismatch is found later, "
            "at the sketch's closing brace")

    # Records count.
    invalid("records-1001", envelope([resources(T0 - 2000 + i) for i in range(1001)]),
            sv("records"), "at most 1000 records")

    # Session rule expressed in the schema.
    m = copy.deepcopy(b)
    get(m, rec(I_SES))["status"] = "started"
    invalid("session-started-nonzero-duration", m, sv(*rec(I_SES, "duration_ms")),
            "a started session has duration_ms 0")

    # v2 bounds.
    b2 = base_v2()
    st = rec(I_INF, "input_stats")
    v2_cases = [
        ("v2-accelerator-space", ("device", "accelerator"), "gpu 0"),
        ("v2-accelerator-empty", ("device", "accelerator"), ""),
        ("v2-input_stats-std-negative", st + (0, "std"), -0.001),
        ("v2-input_stats-mean-too-large", st + (1, "mean"), 1.5e15),
        ("v2-input_stats-min-too-small", st + (2, "min"), -1e16),
        ("v2-input_stats-max-string-nan", st + (3, "max"), "NaN"),
        ("v2-input_stats-name-empty", st + (1, "name"), ""),
        ("v2-input_stats-name-65-code-points", st + (1, "name"), text_of(65)),
    ]
    for name, path, value in v2_cases:
        invalid(name, with_(b2, path, value), sv(*path), f"{path_label(path, True)} = "
                f"{dumps(value, True)} is out of bounds")
    m = copy.deepcopy(b2)
    get(m, st)[:] = [dict(INPUT_STATS[0], name=f"f{i}") for i in range(65)]
    invalid("v2-input_stats-65-items", m, sv(*st), "at most 64 features")
    t = dumps(b2)
    invalid("v2-input_stats-mean-1e400", sub(t, '"mean":0.472', '"mean":1e400').encode(),
            sv(*st, 0, "mean"), "1e400 > 1e15")
    m = copy.deepcopy(b2)
    get(m, rec(I_RES))["input_stats"] = []
    invalid("v2-input_stats-on-resources-record", m, sv(*rec(I_RES, "input_stats")),
            "input_stats belongs to inference records only")

    # v2-only members in a v1 message.
    m = copy.deepcopy(b)
    m["device"]["accelerator"] = "gpu"
    invalid("v1-with-accelerator", m, sv("device", "accelerator"), "accelerator is v2 only")
    m = copy.deepcopy(b)
    get(m, rec(I_INF))["input_stats"] = copy.deepcopy(INPUT_STATS)
    invalid("v1-with-input_stats", m, sv(*rec(I_INF, "input_stats")), "input_stats is v2 only")
    m = copy.deepcopy(b)
    get(m, rec(I_SES))["cpu_pct"] = 12.5
    invalid("session-with-resources-member", m, sv(*rec(I_SES, "cpu_pct")),
            "a member of another kind is not allowed")

    # Deep nesting inside an extra member: 60 arrays stay within 64 levels -> schema violation.
    t = dumps(b)
    for n, why in ((60, "60 nested arrays (61 levels) parse; x_deep is not allowed"),
                   (63, "63 nested arrays + top object = 64 levels: parses; x_deep not allowed")):
        invalid(f"nesting-{n}-arrays-in-extra-member",
                sub(t, '"seq":1041,', '"seq":1041,"x_deep":' + "[" * n + "]" * n + ",").encode(),
                sv("x_deep"), why)


def build_syntax():
    b = base_v1()
    t = dumps(b)
    tb = t.encode()
    msg = "frame grab timed out after 500 ms on /dev/video0"

    def js(name, data, why):
        invalid(name, data if isinstance(data, bytes) else data.encode("utf-8"), "invalid_json",
                why)

    js("bom", b"\xef\xbb\xbf" + tb, "UTF-8 byte-order mark")
    js("invalid-utf8-byte", tb.replace(b"frame grab", b"frame \xff grab"), "0xFF never occurs in UTF-8")
    js("invalid-utf8-continuation", tb.replace(b"frame grab", b"frame \x80 grab"),
       "stray continuation byte")
    js("invalid-utf8-truncated-sequence", tb.replace(b"frame grab", b"frame \xe2\x82 grab"),
       "3-byte sequence cut short")
    js("overlong-utf8", tb.replace(b"/dev/video0", b"\xc0\xafdev\xc0\xafvideo0"),
       "overlong encoding of /")
    js("utf8-encoded-surrogate", tb.replace(b"frame grab", b"frame \xed\xa0\x80 grab"),
       "UTF-8 encoding of surrogate U+D800 (CESU-8) is not UTF-8")
    js("utf8-above-u10ffff", tb.replace(b"frame grab", b"frame \xf4\x90\x80\x80 grab"),
       "code point above U+10FFFF")
    js("lone-high-surrogate-escape", sub(t, msg, "bad \\ud800 here"), "lone \\ud800 is not text")
    js("lone-low-surrogate-escape", sub(t, msg, "bad \\udc00"), "lone \\udc00 is not text")
    js("surrogate-pair-reversed", sub(t, msg, "\\ude00\\ud83d"), "low then high surrogate")
    js("lone-surrogate-in-key", sub(t, '"dent":', '"\\ud83d":'), "lone surrogate in a member name")
    js("raw-control-char-in-string", sub(t, msg, "bell \x07 here"), "U+0007 must be escaped")
    js("raw-newline-in-string", sub(t, msg, "line one\nline two"), "raw LF inside a string")
    js("raw-tab-in-string", sub(t, msg, "col\tcol"), "raw TAB inside a string")
    js("raw-nul-in-string", sub(t, msg, "nul \x00 here"), "raw NUL inside a string")
    js("raw-nul-after-document", tb + b"\x00", "NUL byte after the value")
    js("nan-literal", sub(t, '"cpu_pct":63.5', '"cpu_pct":NaN'), "NaN is not JSON")
    js("infinity-literal", sub(t, '"mem_mb":2875.2', '"mem_mb":Infinity'), "Infinity is not JSON")
    js("minus-infinity-literal", sub(t, '"temp_c":61.25', '"temp_c":-Infinity'), "-Infinity")
    js("number-leading-zero", sub(t, '"seq":1041', '"seq":01041'), "leading zero")
    js("number-plus-sign", sub(t, '"seq":1041', '"seq":+1041'), "leading +")
    js("number-leading-dot", sub(t, '"cpu_pct":63.5', '"cpu_pct":.5'), ".5")
    js("number-trailing-dot", sub(t, '"seq":1041', '"seq":1041.'), "1041.")
    js("number-hex", sub(t, '"seq":1041', '"seq":0x411'), "hex literal")
    js("number-incomplete-exponent", sub(t, '"seq":1041', '"seq":1e'), "1e")
    js("number-minus-only", sub(t, '"seq":1041', '"seq":-'), "lone minus")
    js("literal-uppercase-true", sub(t, '"seq":1041', '"seq":True'), "True is not a literal")
    js("comment-line", sub(t, '"seq":1041,', '"seq":1041, // sequence\n'), "// comment")
    js("comment-block", sub(t, '"seq":1041,', '/* seq */"seq":1041,'), "/* comment */")
    js("trailing-comma-object", t[:-1] + ",}", "trailing comma in object")
    js("trailing-comma-array", sub(t, '"result":"installed"}]', '"result":"installed"},]'),
       "trailing comma in records array")
    js("single-quotes", sub(t, '"schema":"fleet.telemetry/1"', "'schema':'fleet.telemetry/1'"),
       "single-quoted strings")
    js("unquoted-key", sub(t, '"seq":', 'seq:'), "unquoted member name")
    js("missing-comma", sub(t, '"seq":1041,', '"seq":1041 '), "members not separated")
    js("missing-colon", sub(t, '"seq":1041', '"seq" 1041'), "no colon")
    js("invalid-escape", sub(t, msg, "bad \\x41 escape"), "\\x is not a JSON escape")
    js("invalid-unicode-escape-short", sub(t, msg, "bad \\u12 escape"), "\\u needs 4 hex digits")
    js("invalid-escape-upper-u", sub(t, msg, "\\U0001F600"), "\\U is not a JSON escape")
    js("formfeed-as-whitespace", sub(t, '"seq":1041,', '"seq":1041,\f'), "FF is not JSON whitespace")
    js("nbsp-as-whitespace", sub(t, '"seq":1041,', '"seq":1041,\u00a0'),
       "U+00A0 is not JSON whitespace")
    js("truncated", tb[: len(tb) // 2], "message cut in the middle")
    js("truncated-after-last-brace-missing", tb[:-1], "final } missing")
    js("empty-file", b"", "no value at all")
    js("whitespace-only", b" \n\t\r\n", "no value at all")
    js("two-values-concatenated", tb + b"\n" + tb, "two JSON values")
    js("two-values-adjacent", tb + b"{}", "a second value after the first")
    deep = "[" * 100 + "]" * 100
    js("nesting-100-arrays-in-extra-member", sub(t, '"seq":1041,', f'"seq":1041,"x_deep":{deep},'),
       "101 levels > 64: invalid_json before any schema check")
    deep = "[" * 64 + "]" * 64
    js("nesting-64-arrays-in-extra-member", sub(t, '"seq":1041,', f'"seq":1041,"x_deep":{deep},'),
       "64 nested arrays + the top object = 65 levels > 64")

    # Top-level values that are not objects: valid JSON, schema violation at the root.
    for name, data in (("top-level-array", "[" + t + "]"), ("top-level-string", '"fleet.telemetry/1"'),
                       ("top-level-null", "null"), ("top-level-number", "1041")):
        invalid(name, data.encode(), "schema_violation:",
                "valid JSON but the root must be an object: root pointer is the empty string")

    # Duplicate keys: RFC 8259 allows them (json.loads keeps the last), the decoder rejects them.
    def dup(name, text, why):
        invalid(name, text.encode(), "invalid_json", why, rule="duplicate_keys")

    dup("duplicate-key-top-level", sub(t, '"seq":1041,', '"seq":1041,"seq":1041,'), "seq twice")
    dup("duplicate-key-top-level-different-values", sub(t, '"seq":1041,', '"seq":7,"seq":1041,'),
        "seq twice with different values (json.loads keeps the last)")
    dup("duplicate-key-device", sub(t, '"sku":"orin-nano-8g",', '"sku":"orin-nano-8g","sku":"orin-nano-8g",'),
        "device.sku twice")
    dup("duplicate-key-class_counts", sub(t, '"dent":23,', '"dent":23,"dent":23,'),
        "class name twice")
    dup("duplicate-key-class_counts-escaped", sub(t, '"ok":', '"a":0,"\\u0061":0,"ok":'),
        '"a" and "\\u0061" are the same key after unescaping')
    dup("duplicate-key-record", sub(t, '"kind":"deploy",', '"kind":"deploy","kind":"deploy",'),
        "kind twice in a record")
    dup("duplicate-key-escaped-member-name", sub(t, '"seq":1041,', '"seq":1041,"s\\u0065q":1041,'),
        "seq and s\\u0065q")
    dup("duplicate-key-sketch", sub(t, '"latency_us":{"count":1197,', '"latency_us":{"count":1197,"count":1197,'),
        "sketch count twice")

    # Schema member.
    for name, value in (("unsupported-schema-v3", "fleet.telemetry/3"),
                        ("unsupported-schema-trailing-space", "fleet.telemetry/1 "),
                        ("unsupported-schema-uppercase", "FLEET.TELEMETRY/1"),
                        ("unsupported-schema-empty-string", ""),
                        ("unsupported-schema-v0", "fleet.telemetry/0"),
                        ("unsupported-schema-trailing-newline", "fleet.telemetry/1\n")):
        invalid(name, with_(b, ("schema",), value), "unsupported_schema",
                f"{dumps(value, True)} names no version we know")
    invalid("schema-number", with_(b, ("schema",), 1), sv("schema"), "a non-string schema")
    invalid("schema-null", with_(b, ("schema",), None), sv("schema"), "a non-string schema")
    invalid("schema-array", with_(b, ("schema",), ["fleet.telemetry/1"]), sv("schema"),
            "a non-string schema")


def build_decoder_rules():
    b = base_v1()
    lat = rec(I_INF, "latency_us")
    inf = rec(I_INF)

    def m_with(fn):
        m = copy.deepcopy(b)
        fn(get(m, inf), get(m, lat))
        return m

    def keys_dup(r, s):
        s["keys"][5] = s["keys"][4]
    invalid("sketch-keys-repeated", m_with(keys_dup), sv(*lat, "keys", 5),
            "keys[5] == keys[4]: keys must be strictly increasing", rule="sketch_keys_order")

    def keys_dec(r, s):
        s["keys"][7], s["keys"][8] = s["keys"][8], s["keys"][7]
    invalid("sketch-keys-decreasing", m_with(keys_dec), sv(*lat, "keys", 8),
            "keys[8] < keys[7]: the first j whose key is <= the one before", rule="sketch_keys_order")

    def len_mismatch(r, s):
        s["keys"].append(s["keys"][-1] + 1)
    invalid("sketch-keys-counts-length-mismatch", m_with(len_mismatch), sv(*lat, "counts"),
            "one more key than counts (counts still sum to count)", rule="sketch_length_mismatch")

    def len_mismatch2(r, s):
        s["counts"][-2] += s["counts"].pop()
    invalid("sketch-counts-shorter-than-keys", m_with(len_mismatch2), sv(*lat, "counts"),
            "one fewer count than keys (counts still sum to count)", rule="sketch_length_mismatch")

    def sum_mismatch(r, s):
        s["counts"][0] += 1
    invalid("sketch-counts-sum-not-count", m_with(sum_mismatch), sv(*lat, "count"),
            "counts sum to count + 1", rule="sketch_count_sum")

    m = envelope([inference(T0, count=1, errors=0, latencies=[100.0])])
    r = m["records"][0]
    r["count"] = INT64_MAX
    r["latency_us"].update(count=INT64_MAX, keys=[10, 11], counts=[INT64_MAX, 1])
    r["confidence_hist"] = [0] * 9 + [INT64_MAX]
    r["class_counts"] = {}
    invalid("sketch-counts-sum-overflow", m, sv("records", 0, "latency_us", "count"),
            "counts int64max + 1 overflows int64 (everything else consistent)",
            rule="sketch_count_sum")

    def empty(field):
        def fn(r, s):
            r.update(count=3, errors=3, confidence_hist=[0] * 10)
            s.update(count=0, sum=0, min=0, max=0, keys=[], counts=[])
            s[field] = 12.5
        return fn
    for field in ("sum", "min", "max"):
        invalid(f"sketch-empty-nonzero-{field}", m_with(empty(field)), sv(*lat, field),
                f"empty sketch (count 0) with {field} 12.5", rule="sketch_empty_nonzero")

    def min_gt_max(r, s):
        s["min"], s["max"] = s["max"], s["min"]
    invalid("sketch-min-greater-than-max", m_with(min_gt_max), sv(*lat, "min"),
            "min > max in a non-empty sketch", rule="sketch_min_max")

    def errors_gt_count(r, s):
        r.update(count=2, errors=3)
    invalid("inference-errors-greater-than-count", m_with(errors_gt_count), sv(*inf, "errors"),
            "errors > count (so count - errors is negative and the other equalities fail too; "
            "errors > count is checked first)", rule="inference_consistency")

    def latency_count(r, s):
        r["count"] += 1
        r["confidence_hist"][9] += 1
    invalid("inference-latency-count-mismatch", m_with(latency_count), sv(*lat, "count"),
            "latency_us.count != count - errors (histogram matches)", rule="inference_consistency")

    def hist_sum(r, s):
        r["confidence_hist"][0] += 1
    invalid("inference-histogram-sum-mismatch", m_with(hist_sum), sv(*inf, "confidence_hist"),
            "sum(confidence_hist) != count - errors", rule="inference_consistency")

    m = envelope([inference(T0, count=1, errors=0, latencies=[100.0])])
    r = m["records"][0]
    r["count"] = INT64_MAX
    r["latency_us"].update(count=INT64_MAX, keys=[10], counts=[INT64_MAX])
    r["confidence_hist"] = [1] + [0] * 8 + [INT64_MAX]
    r["class_counts"] = {}
    invalid("inference-histogram-sum-overflow", m, sv("records", 0, "confidence_hist"),
            "histogram int64max + 1 overflows int64 (sketch consistent)",
            rule="inference_consistency")

    # Future timestamps.
    m = copy.deepcopy(b)
    m["sent_at_ms"] = FUTURE
    invalid("future-sent_at_ms", m, "future_timestamp:/sent_at_ms", "sent_at_ms in 2200",
            rule="future_timestamp")
    m = copy.deepcopy(b)
    get(m, rec(I_SES))["ts_ms"] = FUTURE
    invalid("future-record-ts_ms", m, "future_timestamp:" + ptr(*rec(I_SES, "ts_ms")),
            "records/2 ts_ms in 2200", rule="future_timestamp")
    m = copy.deepcopy(b)
    get(m, rec(I_DEP))["ts_ms"] = INT64_MAX
    invalid("future-ts_ms-int64-max", m, "future_timestamp:" + ptr(*rec(I_DEP, "ts_ms")),
            "ts_ms = int64 max: valid int, far future (now + 24 h must not overflow)",
            rule="future_timestamp")

    # Oversize (valid JSON, schema-valid, too big).
    data = error_flood(300 * 1024)
    invalid("oversize-300kib", data, "oversize", f"{len(data)} bytes > 262144", rule="oversize")
    data = error_flood(MAX_BYTES + 1)
    invalid("oversize-262145-bytes", data, "oversize", "one byte over 262144", rule="oversize")


def build_order():
    """Fixtures with several defects: which one is reported."""
    b = base_v1()
    m = copy.deepcopy(b)
    get(m, rec(I_INF))["window_ms"] = 0
    get(m, rec(I_RES))["cpu_pct"] = 101
    invalid("order-first-violation-wins", m, sv(*rec(I_INF, "window_ms")),
            "two defects: records/0/window_ms and records/1/cpu_pct; the first in the document wins")

    m = copy.deepcopy(b)
    del m["device"]["sku"]
    m["device"]["agent"] = "0.3.0 beta"
    invalid("order-missing-member-found-at-closing-brace", m, sv("device", "agent"),
            "two defects: device.sku missing (found at device's }) and device.agent bad (found before)")

    m = copy.deepcopy(b)
    m = {k: m[k] for k in ("schema", "device_id", "sent_at_ms", "device", "seq", "model", "records")}
    del m["device"]["sku"]
    m["seq"] = 0
    invalid("order-missing-member-before-later-sibling", m, sv("device", "sku"),
            "two defects: device.sku missing (device's } comes first) and seq 0 after device")

    m = copy.deepcopy(b)
    del m["model"]
    get(m, rec(I_RES))["cpu_pct"] = 101
    invalid("order-missing-top-level-member-found-last", m, sv(*rec(I_RES, "cpu_pct")),
            "two defects: model missing (found at the final }) and records/1/cpu_pct 101 (found before)")

    m = copy.deepcopy(b)
    del get(m, rec(I_INF))["ts_ms"]
    get(m, rec(I_RES))["cpu_pct"] = 101
    invalid("order-missing-in-earlier-record", m, sv(*rec(I_INF, "ts_ms")),
            "two defects: records/0/ts_ms missing (records/0's } comes first) and records/1/cpu_pct")

    t = dumps(with_(b, rec(I_RES, "cpu_pct"), 101))
    invalid("order-invalid-json-beats-schema", (t[:-1] + ",}").encode(), "invalid_json",
            "two defects: cpu_pct 101 early and a trailing comma at the end: invalid_json wins")

    t = dumps(with_(b, rec(I_RES, "cpu_pct"), 101))
    invalid("order-duplicate-key-beats-schema",
            sub(t, '"result":"installed"', '"result":"installed","result":"installed"').encode(),
            "invalid_json",
            "two defects: cpu_pct 101 early, duplicate key late: invalid_json wins "
            "(jsonschema sees only the cpu_pct violation)")

    m = {k: v for k, v in copy.deepcopy(b).items() if k != "schema"}
    get(m, rec(I_RES))["cpu_pct"] = 101
    m["schema"] = "fleet.telemetry/9"
    invalid("order-unsupported-schema-beats-violation", m, "unsupported_schema",
            "two defects: cpu_pct 101, then (last member) schema fleet.telemetry/9: "
            "unsupported_schema wins")

    m = copy.deepcopy(b)
    m["sent_at_ms"] = FUTURE
    get(m, rec(I_RES))["cpu_pct"] = 101
    invalid("order-schema-violation-beats-future", m, sv(*rec(I_RES, "cpu_pct")),
            "two defects: future sent_at_ms (earlier) and cpu_pct 101: schema_violation wins")

    m = copy.deepcopy(b)
    m["sent_at_ms"] = FUTURE
    get(m, rec(I_ERR))["ts_ms"] = FUTURE
    invalid("order-future-first-in-document", m, "future_timestamp:/sent_at_ms",
            "two defects: sent_at_ms and records/3/ts_ms both in 2200: the first wins",
            rule="future_timestamp")

    lat = rec(I_INF, "latency_us")

    m = copy.deepcopy(b)
    s = get(m, lat)
    s["min"], s["max"] = s["max"], s["min"]
    get(m, rec(I_INF))["errors"] = 5000
    invalid("order-sketch-before-consistency", m, sv(*lat, "min"),
            "two defects: sketch min > max (sketch's }) then errors > count (record's }): sketch first",
            rule="sketch_min_max")

    m = copy.deepcopy(b)
    s = get(m, lat)
    s["keys"].append(s["keys"][-1] + 1)
    s["min"], s["max"] = s["max"], s["min"]
    invalid("order-sketch-length-before-min-max", m, sv(*lat, "counts"),
            "two defects at the sketch's }: length mismatch is checked before min > max",
            rule="sketch_length_mismatch")

    m = copy.deepcopy(b)
    s = get(m, lat)
    s["counts"][0] += 1
    s["min"], s["max"] = s["max"], s["min"]
    invalid("order-sketch-sum-before-min-max", m, sv(*lat, "count"),
            "two defects at the sketch's }: counts sum is checked before min > max",
            rule="sketch_count_sum")

    m = copy.deepcopy(b)
    s = get(m, lat)
    s["keys"][2] = s["keys"][1]
    s["counts"][0] += 1
    invalid("order-keys-order-found-at-element", m, sv(*lat, "keys", 2),
            "two defects: keys[2] == keys[1] (found at the element) and counts sum wrong "
            "(sketch's }): keys first", rule="sketch_keys_order")

    m = copy.deepcopy(b)
    r = get(m, rec(I_INF))
    r["count"] += 1
    invalid("order-latency-before-histogram", m, sv(*lat, "count"),
            "two defects at the record's }: latency count and histogram sum both != count - errors;"
            " latency is checked first", rule="inference_consistency")

    m = copy.deepcopy(b)
    get(m, rec(I_SES))["status"] = "started"
    get(m, rec(I_SES))["errors"] = -1
    invalid("order-started-duration-at-closing-brace", m, sv(*rec(I_SES, "errors")),
            "two defects: started with duration 3600000 (cross-field: record's }) and errors -1 "
            "(found at the member): errors first")


# MARK: - main


def build_all():
    build_valid()
    build_systematic()
    build_bounds()
    build_syntax()
    build_decoder_rules()
    build_order()
    for name, data in list(VALID.items()) + list(INVALID.items()):
        if not name.startswith("oversize"):
            assert len(data) <= MAX_BYTES, (name, len(data))
    files = {}
    for name, data in VALID.items():
        files[os.path.join("valid", name)] = data
    for name, data in INVALID.items():
        files[os.path.join("invalid", name)] = data
    files[os.path.join("invalid", "reasons.json")] = (
        json.dumps(REASONS, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode("utf-8")
    return files


def main(argv):
    files = build_all()
    check = "--check" in argv
    stale = []
    for sub_dir in ("valid", "invalid"):
        d = os.path.join(HERE, sub_dir)
        os.makedirs(d, exist_ok=True)
        for f in sorted(os.listdir(d)):
            rel = os.path.join(sub_dir, f)
            if f.endswith(".json") and rel not in files:
                stale.append(rel)
    changed = []
    for rel, data in sorted(files.items()):
        path = os.path.join(HERE, rel)
        old = None
        if os.path.exists(path):
            with open(path, "rb") as f:
                old = f.read()
        if old != data:
            changed.append(rel)
            if not check:
                with open(path, "wb") as f:
                    f.write(data)
    if not check:
        for rel in stale:
            os.remove(os.path.join(HERE, rel))
    nv, ni = len(VALID), len(INVALID)
    if check:
        if changed or stale:
            print(f"fixtures out of date: {len(changed)} differ, {len(stale)} stale "
                  f"(e.g. {(changed + stale)[:5]}); run generate.py", file=sys.stderr)
            return 1
        print(f"fixtures up to date: {nv} valid, {ni} invalid")
        return 0
    print(f"wrote {nv} valid, {ni} invalid fixtures ({len(changed)} changed, {len(stale)} removed)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
