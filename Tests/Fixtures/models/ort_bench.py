#!/usr/bin/env python3
"""onnxruntime's side of `fleetwatch-bench edge`: batch-1 latency of each model, one thread.

    python3 Tests/Fixtures/models/ort_bench.py [--runs N] MODEL.onnx INPUTS.ndjson [...]

For each model (and an in-memory Identity model of the same input size, the floor of
onnxruntime's per-call overhead) prints one JSON line: p50/p99 in microseconds of
`session.run()` and of `run_with_iobinding()` with input and output bound to preallocated
OrtValues, each over N timed runs after N/10 warm-up runs, plus the resident set growth of
creating the session.
"""

import json
import sys
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def percentile(samples, q):
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))] / 1000.0


def options():
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    o.inter_op_num_threads = 1
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return o


def measure(name, source, first_row, runs):
    before = rss_kb()
    sess = ort.InferenceSession(source, options(), providers=["CPUExecutionProvider"])
    grown = rss_kb() - before
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    x = np.asarray(first_row, dtype=np.float32).reshape(shape)
    feeds = {inp.name: x}
    timer = time.perf_counter_ns

    for _ in range(runs // 10):
        sess.run(None, feeds)
    plain = []
    for _ in range(runs):
        t0 = timer()
        sess.run(None, feeds)
        plain.append(timer() - t0)

    io = sess.io_binding()
    io.bind_ortvalue_input(inp.name, ort.OrtValue.ortvalue_from_numpy(x))
    for o, value in zip(sess.get_outputs(), sess.run(None, feeds)):
        io.bind_ortvalue_output(o.name, ort.OrtValue.ortvalue_from_numpy(np.empty_like(value)))
    for _ in range(runs // 10):
        sess.run_with_iobinding(io)
    bound = []
    for _ in range(runs):
        t0 = timer()
        sess.run_with_iobinding(io)
        bound.append(timer() - t0)

    return {"name": name, "run_p50_us": percentile(plain, 0.5), "run_p99_us": percentile(plain, 0.99),
            "iobinding_p50_us": percentile(bound, 0.5), "iobinding_p99_us": percentile(bound, 0.99),
            "session_rss_kb": grown}


def identity(size):
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, size])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, size])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()


def main():
    args = sys.argv[1:]
    runs = 10000
    if args[:1] == ["--runs"]:
        runs = int(args[1])
        args = args[2:]
    print(json.dumps({"onnxruntime": ort.__version__, "runs": runs}), flush=True)
    sizes = set()
    for model, inputs in zip(args[::2], args[1::2]):
        with open(inputs) as f:
            row = json.loads(f.readline())["input"]
        sizes.add(len(np.ravel(row)))
        name = model.rsplit("/", 1)[-1].removesuffix(".onnx")
        print(json.dumps(measure(name, model, row, runs)), flush=True)
    for size in sorted(sizes):
        print(json.dumps(measure(f"identity[{size}]", identity(size), [0.5] * size, runs)), flush=True)


if __name__ == "__main__":
    main()
