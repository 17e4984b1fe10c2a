#!/usr/bin/env python3
"""Builds the EdgeRuntime fixture models and onnxruntime's reference outputs for them.

Run from the repository root (only when the fixtures must change; tests never need Python):

    pip install onnx==1.23.2 onnxruntime==1.32.0 scikit-learn==1.9.1 skl2onnx==1.20.0 \
        numpy==2.4.6 cryptography
    python3 Tests/Fixtures/models/make_models.py

Everything is seeded, so a rerun with the same package versions rewrites the same bytes
(quantization calibration included). For each model NAME it writes:

    NAME.onnx             the model (opset 17)
    NAME.inputs.ndjson    20 input rows, `{"input": [...]}` (the `fleet-agent infer` input)
    NAME.expected.ndjson  onnxruntime's outputs for them, `{"outputs": {...}}` (its output)
    NAME.manifest.json    name, version, sha256 and an Ed25519 signature by the TEST key

and `models.json`, the index the Swift tests read (file names, kind, tolerance).
"""

import hashlib
import json
import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = [helper.make_opsetid("", 17)]
ROWS = 20


def f32(x):
    return np.asarray(x, dtype=np.float32)


def save(model, name):
    model.ir_version = 8  # what onnxruntime 1.32 and every consumer of opset 17 reads
    onnx.checker.check_model(model, full_check=True)
    path = os.path.join(HERE, name + ".onnx")
    onnx.save(model, path)
    return path


def init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


# MARK: - Models


def mlp(rng):
    """MLP 64-128-64-10: Gemm+Relu, Gemm+Relu, Gemm, Softmax. Layer 2 stores B untransposed."""
    w1 = f32(rng.normal(0, np.sqrt(2 / 64), (128, 64)))  # transB=1 (PyTorch layout)
    b1 = f32(rng.normal(0, 0.1, 128))
    w2 = f32(rng.normal(0, np.sqrt(2 / 128), (64, 128)))  # stored transposed, transB=0
    b2 = f32(rng.normal(0, 0.1, 64))
    w3 = f32(rng.normal(0, np.sqrt(2 / 64), (10, 64)))  # transB=1
    b3 = f32(rng.normal(0, 0.1, 10))
    nodes = [
        helper.make_node("Gemm", ["input", "w1", "b1"], ["h1"], name="fc1", transB=1),
        helper.make_node("Relu", ["h1"], ["a1"], name="relu1"),
        helper.make_node("Gemm", ["a1", "w2", "b2"], ["h2"], name="fc2"),
        helper.make_node("Relu", ["h2"], ["a2"], name="relu2"),
        helper.make_node("Gemm", ["a2", "w3", "b3"], ["logits"], name="fc3", transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        [init("w1", w1), init("b1", b1), init("w2", w2.T.copy()), init("b2", b2),
         init("w3", w3), init("b3", b3)])
    fp32 = helper.make_model(graph, opset_imports=OPSET, producer_name="fleetwatch-fixtures")

    # The same weights as MatMul+Add: quantize_dynamic quantizes MatMul, not Gemm.
    nodes = [
        helper.make_node("MatMul", ["input", "w1t"], ["m1"], name="fc1"),
        helper.make_node("Add", ["m1", "b1"], ["h1"], name="fc1_bias"),
        helper.make_node("Relu", ["h1"], ["a1"], name="relu1"),
        helper.make_node("MatMul", ["a1", "w2"], ["m2"], name="fc2"),
        helper.make_node("Add", ["m2", "b2"], ["h2"], name="fc2_bias"),
        helper.make_node("Relu", ["h2"], ["a2"], name="relu2"),
        helper.make_node("MatMul", ["a2", "w3t"], ["m3"], name="fc3"),
        helper.make_node("Add", ["m3", "b3"], ["logits"], name="fc3_bias"),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "mlp_matmul",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        [init("w1t", w1.T.copy()), init("b1", b1), init("w2", w2.T.copy()), init("b2", b2),
         init("w3t", w3.T.copy()), init("b3", b3)])
    matmul = helper.make_model(graph, opset_imports=OPSET, producer_name="fleetwatch-fixtures")
    return fp32, matmul


def cnn1d(rng):
    """1-D CNN over 3 channels x 48 samples: Conv(k5,pad2)+BN+Relu, MaxPool(2), grouped
    Conv(k3, groups 4, stride 1, dilation 2, pad 2)+BN+Relu, GlobalAveragePool, Flatten, Gemm,
    Softmax."""
    def bn(prefix, c):
        return [init(prefix + "_scale", f32(rng.uniform(0.5, 1.5, c))),
                init(prefix + "_bias", f32(rng.normal(0, 0.1, c))),
                init(prefix + "_mean", f32(rng.normal(0, 0.1, c))),
                init(prefix + "_var", f32(rng.uniform(0.5, 1.5, c)))]

    inits = [
        init("conv1_w", f32(rng.normal(0, np.sqrt(2 / 15), (16, 3, 5)))),
        init("conv1_b", f32(rng.normal(0, 0.1, 16))),
        *bn("bn1", 16),
        init("conv2_w", f32(rng.normal(0, np.sqrt(2 / 12), (32, 4, 3)))),
        init("conv2_b", f32(rng.normal(0, 0.1, 32))),
        *bn("bn2", 32),
        init("fc_w", f32(rng.normal(0, np.sqrt(2 / 32), (5, 32)))),
        init("fc_b", f32(rng.normal(0, 0.1, 5))),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "conv1_w", "conv1_b"], ["c1"], name="conv1",
                         kernel_shape=[5], pads=[2, 2]),
        helper.make_node("BatchNormalization",
                         ["c1", "bn1_scale", "bn1_bias", "bn1_mean", "bn1_var"], ["n1"],
                         name="bn1", epsilon=1e-5),
        helper.make_node("Relu", ["n1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2], strides=[2]),
        helper.make_node("Conv", ["p1", "conv2_w", "conv2_b"], ["c2"], name="conv2",
                         kernel_shape=[3], pads=[2, 2], dilations=[2], group=4),
        helper.make_node("BatchNormalization",
                         ["c2", "bn2_scale", "bn2_bias", "bn2_mean", "bn2_var"], ["n2"],
                         name="bn2", epsilon=1e-5),
        helper.make_node("Relu", ["n2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1),
    ]
    graph = helper.make_graph(
        nodes, "cnn1d",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 48])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 5])],
        inits)
    return helper.make_model(graph, opset_imports=OPSET, producer_name="fleetwatch-fixtures")


def autoencoder(rng):
    """Anomaly autoencoder 32-8-32 with its score in the graph: Tanh encoder, Sigmoid decoder,
    score = mean((reconstruction - input)^2), ratio = score / threshold reshaped to [N]."""
    inits = [
        init("enc_w", f32(rng.normal(0, 0.3, (32, 8)))),
        init("enc_b", f32(rng.normal(0, 0.1, 8))),
        init("dec_w", f32(rng.normal(0, 0.5, (8, 32)))),
        init("dec_b", f32(rng.normal(0, 0.1, 32))),
        init("threshold", f32([0.05])),
        init("ratio_shape", np.array([-1], dtype=np.int64)),
    ]
    nodes = [
        helper.make_node("MatMul", ["input", "enc_w"], ["e"], name="encode"),
        helper.make_node("Add", ["e", "enc_b"], ["eb"], name="encode_bias"),
        helper.make_node("Tanh", ["eb"], ["code"], name="tanh"),
        helper.make_node("MatMul", ["code", "dec_w"], ["d"], name="decode"),
        helper.make_node("Add", ["d", "dec_b"], ["db"], name="decode_bias"),
        helper.make_node("Sigmoid", ["db"], ["recon"], name="sigmoid"),
        helper.make_node("Identity", ["recon"], ["reconstruction"], name="identity"),
        helper.make_node("Sub", ["recon", "input"], ["diff"], name="residual"),
        helper.make_node("Mul", ["diff", "diff"], ["sq"], name="square"),
        helper.make_node("ReduceMean", ["sq"], ["score"], name="mse", axes=[1], keepdims=1),
        helper.make_node("Div", ["score", "threshold"], ["r"], name="ratio"),
        helper.make_node("Reshape", ["r", "ratio_shape"], ["anomaly_ratio"], name="flat"),
    ]
    graph = helper.make_graph(
        nodes, "autoencoder",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 32])],
        [helper.make_tensor_value_info("reconstruction", TensorProto.FLOAT, ["N", 32]),
         helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1]),
         helper.make_tensor_value_info("anomaly_ratio", TensorProto.FLOAT, ["N"])],
        inits)
    return helper.make_model(graph, opset_imports=OPSET, producer_name="fleetwatch-fixtures")


def logreg(rng):
    """sklearn LogisticRegression, 8 features, 3 classes, exported without ZipMap and without
    the ai.onnx.ml LinearClassifier (so it is MatMul, Add, ArgMax, Softmax, Cast, Reshape and
    the ArrayFeatureExtractor that maps class indices to labels)."""
    from sklearn.linear_model import LogisticRegression
    from skl2onnx import to_onnx

    x = f32(rng.normal(size=(300, 8)))
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 0.8)
    clf = LogisticRegression(max_iter=1000).fit(x, y)
    model = to_onnx(clf, x[:1], options={id(clf): {"zipmap": False}},
                    target_opset={"": 17, "ai.onnx.ml": 1}, black_op={"LinearClassifier"})
    return model


# MARK: - Quantization


class Calibration:
    """CalibrationDataReader for quantize_static: 64 seeded MLP inputs."""

    def __init__(self, rows):
        self.rows = iter([{"input": r[None, :]} for r in rows])

    def get_next(self):
        return next(self.rows, None)

    def rewind(self):
        pass


def quantize_mlp(fp32, matmul, rng):
    from onnxruntime.quantization import (QuantFormat, QuantType, quantize_dynamic,
                                          quantize_static)

    calib = f32(rng.normal(size=(64, 64)))
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "mlp.onnx")
        onnx.save(fp32, src)
        dst = os.path.join(tmp, "mlp_int8_qdq.onnx")
        quantize_static(src, dst, Calibration(calib), quant_format=QuantFormat.QDQ,
                        per_channel=False, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8)
        qdq = onnx.load(dst)
        src = os.path.join(tmp, "mlp_matmul.onnx")
        onnx.save(matmul, src)
        dst = os.path.join(tmp, "mlp_int8_dynamic.onnx")
        quantize_dynamic(src, dst, per_channel=False, weight_type=QuantType.QInt8)
        dyn = onnx.load(dst)
    for m in (qdq, dyn):
        del m.opset_import[:]
        m.opset_import.extend(OPSET)
    return qdq, dyn


# MARK: - Reference outputs


def fmt(x):
    """Shortest text that reads back as the same float32."""
    v = np.float32(x)
    if not np.isfinite(v):
        raise ValueError("non-finite reference value")
    s = np.format_float_positional(v, unique=True, trim="-")
    return s if len(s) <= 12 else np.format_float_scientific(v, unique=True, trim="-")


def write_rows(path, rows):
    with open(path, "w") as f:
        for row in rows:
            f.write(row + "\n")


def reference(name, path, inputs, kind, tolerance, shared_inputs=None):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    first = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in first.shape]
    in_rows, out_rows = [], []
    for x in inputs:
        x = f32(x).reshape(shape)
        in_rows.append('{"input": [' + ", ".join(fmt(v) for v in x.ravel()) + "]}")
        outs = sess.run(None, {first.name: x})
        parts = []
        for meta, value in zip(sess.get_outputs(), outs):
            flat = np.asarray(value).astype(np.float64).ravel()
            parts.append(json.dumps(meta.name) + ": [" + ", ".join(fmt(v) for v in flat) + "]")
        out_rows.append('{"outputs": {' + ", ".join(parts) + "}}")
    inputs_file = (shared_inputs or name) + ".inputs.ndjson"
    if shared_inputs is None:
        write_rows(os.path.join(HERE, inputs_file), in_rows)
    else:
        with open(os.path.join(HERE, inputs_file)) as f:
            assert f.read() == "".join(r + "\n" for r in in_rows), "shared inputs differ"
    write_rows(os.path.join(HERE, name + ".expected.ndjson"), out_rows)
    return {"name": name, "model": name + ".onnx", "inputs": inputs_file,
            "expected": name + ".expected.ndjson", "manifest": name + ".manifest.json",
            "kind": kind, "tolerance": tolerance}


# MARK: - Manifests (TEST key only)

TEST_KEY_SEED = hashlib.sha256(b"fleetwatch TEST-ONLY model signing key, never trust it").digest()


def sign_manifest(name, path):
    """Writes NAME.manifest.json; the signed bytes are CanonicalManifest in ModelManifest.swift."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    import base64

    key = Ed25519PrivateKey.from_private_bytes(TEST_KEY_SEED)
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key_id = hashlib.sha256(public).hexdigest()[:16]
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    fields = {"name": name, "version": "1.0.0", "sha256": sha, "key_id": key_id}
    canonical = "fleetwatch.model-manifest/1\n" + "".join(
        f"{k}={fields[k]}\n" for k in ("name", "version", "sha256", "key_id"))
    signature = base64.b64encode(key.sign(canonical.encode())).decode()
    manifest = {"schema": "fleetwatch.model-manifest/1", **fields, "signature": signature}
    with open(os.path.join(HERE, name + ".manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    with open(os.path.join(HERE, "test-signing-key.pub.hex"), "w") as f:
        f.write(public.hex() + "\n")
    with open(os.path.join(HERE, "TEST-ONLY-signing-key.private.hex"), "w") as f:
        f.write(TEST_KEY_SEED.hex() + "\n")


# MARK: - Main


def main():
    rng = np.random.default_rng(20240917)
    fp32, matmul = mlp(rng)
    qdq, dyn = quantize_mlp(fp32, matmul, rng)
    # (name, model, input generator, kind, file of inputs shared with an earlier model)
    models = [
        ("mlp", fp32, lambda r: r.normal(size=64), "fp32", None),
        ("mlp_int8_qdq", qdq, lambda r: r.normal(size=64), "int8-qdq", "mlp"),
        ("mlp_int8_dynamic", dyn, lambda r: r.normal(size=64), "int8-dynamic", "mlp"),
        ("cnn1d", cnn1d(rng), lambda r: r.normal(size=(3, 48)), "fp32", None),
        ("autoencoder", autoencoder(rng), lambda r: r.uniform(0, 1, 32), "fp32", None),
        ("logreg", logreg(rng), lambda r: r.normal(size=8), "fp32", None),
    ]
    index = []
    for name, model, gen, kind, shared in models:
        path = save(model, name)
        data = np.random.default_rng(1000 + (len(index) if shared is None else 0))
        inputs = [gen(data) for _ in range(ROWS)]
        index.append(reference(name, path, inputs, kind, tolerance(model, kind), shared))
        sign_manifest(name, path)
    with open(os.path.join(HERE, "models.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(HERE, n)) for n in os.listdir(HERE))
    print(f"wrote {len(index)} models to {HERE} ({total} bytes in the folder)", file=sys.stderr)


def tolerance(model, kind):
    """How close the runtime must come to onnxruntime, per output value: |ours - ort| <=
    abs + rel * |ort|. fp32: 1e-5 both. QDQ int8: one quantization step of the output (the
    scale of the DequantizeLinear that produces it) plus 1e-6 for float rounding. Dynamic int8: its integer path is exact
    and its float epilogue is the same sequence of float32 operations, so fp32's tolerance."""
    if kind == "int8-qdq":
        out = model.graph.output[0].name
        inits = {t.name: t for t in model.graph.initializer}
        for node in model.graph.node:
            if node.output[0] == out and node.op_type == "DequantizeLinear":
                step = float(numpy_helper.to_array(inits[node.input[1]]))
                return {"abs": step + 1e-6, "rel": 0.0}  # + float rounding of k * step
        raise ValueError("QDQ model output is not produced by DequantizeLinear")
    return {"abs": 1e-5, "rel": 1e-5}


if __name__ == "__main__":
    main()
