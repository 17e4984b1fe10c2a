import Foundation
import Testing

@testable import EdgeRuntime

/// Small ONNX models built in Swift with the generated protobuf types.
enum ProtoBuilder {
    static func node(_ op: String, _ inputs: [String], _ outputs: [String], name: String = "", domain: String = "", ints: [String: [Int64]] = [:], int: [String: Int64] = [:]) -> Onnx_NodeProto {
        var n = Onnx_NodeProto()
        n.opType = op
        n.input = inputs
        n.output = outputs
        n.name = name
        n.domain = domain
        for (k, v) in ints {
            var a = Onnx_AttributeProto()
            a.name = k; a.type = .ints; a.ints = v
            n.attribute.append(a)
        }
        for (k, v) in int {
            var a = Onnx_AttributeProto()
            a.name = k; a.type = .int; a.i = v
            n.attribute.append(a)
        }
        return n
    }

    static func value(_ name: String, _ dims: [Int64], type: Int32 = 1) -> Onnx_ValueInfoProto {
        var v = Onnx_ValueInfoProto()
        v.name = name
        var t = Onnx_TypeProto.Tensor()
        t.elemType = type
        var s = Onnx_TensorShapeProto()
        s.dim = dims.map { d in
            var dim = Onnx_TensorShapeProto.Dimension()
            if d < 0 { dim.dimParam = "N" } else { dim.dimValue = d }
            return dim
        }
        t.shape = s
        v.type.tensorType = t
        return v
    }

    /// A float tensor in float_data (typed) or raw_data.
    static func floats(_ name: String, _ dims: [Int64], _ values: [Float], raw: Bool) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        t.name = name
        t.dims = dims
        t.dataType = 1
        if raw {
            var bytes: [UInt8] = []
            for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 } }
            t.rawData = Data(bytes)
        } else {
            t.floatData = values
        }
        return t
    }

    /// An int8 tensor in int32_data (typed) or raw_data.
    static func int8s(_ name: String, _ dims: [Int64], _ values: [Int8], raw: Bool) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        t.name = name
        t.dims = dims
        t.dataType = 3
        if raw { t.rawData = Data(values.map { UInt8(bitPattern: $0) }) } else { t.int32Data = values.map { Int32($0) } }
        return t
    }

    static func model(
        _ nodes: [Onnx_NodeProto], inputs: [Onnx_ValueInfoProto], outputs: [Onnx_ValueInfoProto],
        initializers: [Onnx_TensorProto] = [], opsets: [(String, Int64)] = [("", 17)]
    ) -> [UInt8] {
        var g = Onnx_GraphProto()
        g.name = "test"
        g.node = nodes
        g.input = inputs
        g.output = outputs
        g.initializer = initializers
        var m = Onnx_ModelProto()
        m.irVersion = 8
        m.graph = g
        m.opsetImport = opsets.map { d, v in
            var o = Onnx_OperatorSetIdProto()
            o.domain = d
            o.version = v
            return o
        }
        return try! m.serializedBytes()
    }

    static func run(_ bytes: [UInt8], _ input: [Float], kernelISA: KernelISA? = nil) throws -> [[Double]] {
        let model = try CompiledModel(onnx: bytes, kernelISA: kernelISA)
        let s = InferenceSession(model)
        try s.setInput(0, input)
        s.run()
        return model.outputs.indices.map { s.output($0) }
    }
}

@Suite struct ModelImportTests {
    typealias P = ProtoBuilder

    func loadError(_ bytes: [UInt8]) -> ModelError? {
        do {
            _ = try CompiledModel(onnx: bytes)
            return nil
        } catch let e as ModelError {
            return e
        } catch {
            return nil
        }
    }

    @Test func unsupportedOpIsRefusedNamingOpAndNode() throws {
        let bytes = P.model(
            [P.node("Relu", ["x"], ["r"], name: "act"), P.node("Einsum", ["r"], ["y"], name: "mix")],
            inputs: [P.value("x", [1, 4])], outputs: [P.value("y", [1, 4])])
        let e = try #require(loadError(bytes))
        #expect(e.reason == .unsupportedOp)
        #expect(e.message.contains("Einsum") && e.message.contains("'mix'"), "\(e.message)")
    }

    @Test func microsoftOpsAreRefusedWithTheQDQFix() throws {
        let bytes = P.model(
            [P.node("QGemm", ["x"], ["y"], name: "fc1_quant", domain: "com.microsoft")],
            inputs: [P.value("x", [1, 4])], outputs: [P.value("y", [1, 4])],
            opsets: [("", 17), ("com.microsoft", 1)])
        let e = try #require(loadError(bytes))
        #expect(e.reason == .contribOp)
        #expect(e.message.contains("com.microsoft.QGemm") && e.message.contains("'fc1_quant'") && e.message.contains("QDQ"), "\(e.message)")
    }

    @Test func opsetDomainsNoNodeUsesAreIgnored() throws {
        let bytes = P.model(
            [P.node("Relu", ["x"], ["y"])], inputs: [P.value("x", [1, 3])], outputs: [P.value("y", [1, 3])],
            opsets: [("", 17), ("com.microsoft", 1), ("ai.onnx.preview.training", 1), ("ai.onnx.ml", 99)])
        #expect(try P.run(bytes, [-1, 0, 2]) == [[0, 0, 2]])
    }

    @Test func otherOpsetsAreRefused() throws {
        let bytes = P.model([P.node("Relu", ["x"], ["y"])], inputs: [P.value("x", [1, 3])], outputs: [P.value("y", [1, 3])], opsets: [("", 18)])
        #expect(loadError(bytes)?.reason == .unsupportedOpset)
    }

    @Test func garbageIsUnreadable() {
        #expect(loadError([0xFF, 0xFF, 0xFF, 0x01, 0x02])?.reason == .unreadable)
        #expect(loadError([])?.reason == .unreadable)
    }

    @Test func undefinedInputIsMalformed() {
        let bytes = P.model([P.node("Relu", ["nowhere"], ["y"], name: "r")], inputs: [P.value("x", [1, 3])], outputs: [P.value("y", [1, 3])])
        let e = loadError(bytes)
        #expect(e?.reason == .malformed && e?.message.contains("nowhere") == true)
    }

    /// raw_data and typed fields decode to the same tensors: float_data for float, int32_data
    /// for int8 (and uint8).
    @Test(arguments: [false, true])
    func initializersInRawAndTypedFields(raw: Bool) throws {
        let w: [Float] = [1, 2, 3, 4, 5, 6]  // [3, 2]
        let q: [Int8] = [-128, -1, 0, 5, 127, 3]  // [3, 2]... used as [1, 2] rows after dequant
        let bytes = P.model(
            [
                P.node("Gemm", ["x", "w", "b"], ["g"]),
                P.node("DequantizeLinear", ["q", "qs", "qz"], ["dq"]),
                P.node("ReduceMean", ["dq"], ["m"], ints: ["axes": [0]], int: ["keepdims": 1]),
                P.node("Add", ["g", "m"], ["y"]),
            ],
            inputs: [P.value("x", [1, 3])], outputs: [P.value("y", [1, 2])],
            initializers: [
                P.floats("w", [3, 2], w, raw: raw), P.floats("b", [2], [0.5, -0.5], raw: raw),
                P.int8s("q", [3, 2], q, raw: raw), P.floats("qs", [], [0.5], raw: raw), P.int8s("qz", [], [1], raw: raw),
            ])
        let y = try P.run(bytes, [1, 1, 1])
        // Gemm: [1+3+5, 2+4+6] + b = [9.5, 11.5]; dequant (q-1)*0.5 column means: (-64.5-0.5+63)/3, (-1+2+1)/3
        #expect(y[0].count == 2)
        #expect(abs(y[0][0] - (9.5 + (-64.5 - 0.5 + 63) / 3)) < 1e-5)
        #expect(abs(y[0][1] - (11.5 + (-1 + 2 + 1) / 3)) < 1e-5)
    }

    @Test func generalBroadcastingAndSymbolicBatch() throws {
        let bytes = P.model(
            [P.node("Sub", ["x", "c"], ["y"])],
            inputs: [P.value("x", [-1, 2, 1])], outputs: [P.value("y", [-1, 2, 3])],
            initializers: [P.floats("c", [1, 3], [1, 2, 3], raw: false)])
        #expect(try P.run(bytes, [10, 20]) == [[9, 8, 7, 19, 18, 17]])
    }

    /// BatchNormalization on a graph input cannot fold into anything: it runs as a kernel.
    @Test func unfoldedBatchNormalizationRuns() throws {
        let bytes = P.model(
            [P.node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name: "bn")],
            inputs: [P.value("x", [1, 2, 2])], outputs: [P.value("y", [1, 2, 2])],
            initializers: [
                P.floats("s", [2], [2, 1], raw: false), P.floats("b", [2], [0, 1], raw: false),
                P.floats("m", [2], [1, 0], raw: false), P.floats("v", [2], [4 - 1e-5, 1 - 1e-5], raw: false),
            ])
        let y = try P.run(bytes, [1, 3, 2, 4])[0]
        let want: [Double] = [0, 2, 3, 5]  // ch0: (x-1)/2*2, ch1: x+1
        #expect(zip(y, want).allSatisfy { abs($0 - $1) < 1e-5 }, "\(y)")
    }

    /// Conv1D with stride, SAME_UPPER padding and groups against a direct computation.
    @Test(arguments: EdgeRuntimeInfo.availableKernelISAs)
    func stridedGroupedConvMatchesDirectSum(_ isa: KernelISA) throws {
        let (c, l, m, k, group, stride) = (4, 9, 6, 3, 2, 2)
        let w = (0..<(m * (c / group) * k)).map { Float(($0 * 7) % 5) - 2 }
        let x = (0..<(c * l)).map { Float(($0 * 3) % 11) / 4 }
        let bytes = P.model(
            [P.node("Conv", ["x", "w"], ["y"], ints: ["strides": [Int64(stride)], "kernel_shape": [Int64(k)]], int: ["group": Int64(group)])],
            inputs: [P.value("x", [1, Int64(c), Int64(l)])], outputs: [P.value("y", [1, Int64(m), 4])],
            initializers: [P.floats("w", [Int64(m), Int64(c / group), Int64(k)], w, raw: false)])
        let y = try P.run(bytes, x, kernelISA: isa)[0]
        let lo = (l - k) / stride + 1
        #expect(y.count == m * lo)
        for oc in 0..<m {
            let g = oc / (m / group)
            for o in 0..<lo {
                var s: Float = 0
                for ci in 0..<(c / group) {
                    for kk in 0..<k { s += w[(oc * (c / group) + ci) * k + kk] * x[(g * (c / group) + ci) * l + o * stride + kk] }
                }
                #expect(abs(y[oc * lo + o] - Double(s)) < 1e-4)
            }
        }
    }

    /// DynamicQuantizeLinear and MatMulInteger as plain kernels (the fusion does not apply
    /// when the quantized tensors are graph outputs), against the formulas.
    @Test func unfusedDynamicQuantizationKernels() throws {
        let w: [Int8] = [3, -2, 7, 0, -128, 127]  // [3, 2]
        let bytes = P.model(
            [
                P.node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
                P.node("MatMulInteger", ["xq", "w", "xz", "wz"], ["acc"]),
            ],
            inputs: [P.value("x", [1, 3])],
            outputs: [P.value("acc", [1, 2], type: 6), P.value("xq", [1, 3], type: 2), P.value("xs", [], type: 1), P.value("xz", [], type: 2)],
            initializers: [P.int8s("w", [3, 2], w, raw: true), P.int8s("wz", [], [1], raw: false)])
        let x: [Float] = [-1, 0.5, 2]
        let out = try P.run(bytes, x)
        let scale = Float(3) / 255  // range [-1, 2]
        let zp = (Float(1) / scale).rounded(.toNearestOrAwayFromZero)  // 85
        let q = x.map { min(max(($0 / scale).rounded(.toNearestOrEven) + zp, 0), 255) }
        #expect(out[1] == q.map(Double.init))
        #expect(out[2] == [Double(scale)] && out[3] == [Double(zp)])
        let want = (0..<2).map { j in (0..<3).reduce(0.0) { $0 + Double(q[$1] - zp) * Double(Int(w[$1 * 2 + j]) - 1) } }
        #expect(out[0] == want)
    }

    /// QDQ around a Conv is not fused: its constant DequantizeLinear folds into float weights
    /// and the Conv runs in float (QuantizeLinear/DequantizeLinear kernels around it).
    @Test func qdqConvRunsDequantizedInFloat() throws {
        let bytes = P.model(
            [
                P.node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
                P.node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
                P.node("DequantizeLinear", ["wq", "ws"], ["wd"]),
                P.node("Conv", ["xd", "wd"], ["y"], ints: ["kernel_shape": [2]]),
            ],
            inputs: [P.value("x", [1, 1, 4])], outputs: [P.value("y", [1, 1, 3])],
            initializers: [
                P.floats("s", [], [0.5], raw: false), { var t = P.int8s("z", [], [0], raw: false); t.dataType = 2; return t }(),
                P.int8s("wq", [1, 1, 2], [2, -4], raw: false), P.floats("ws", [], [0.25], raw: false),
            ])
        // x quantized to steps of 0.5 (uint8, so negatives clamp to 0): [0, 1, 1.5, 3]; w = [0.5, -1]
        #expect(try P.run(bytes, [-1, 1.1, 1.4, 3.2]) == [[-1, -1, -2.25]])
    }
}
