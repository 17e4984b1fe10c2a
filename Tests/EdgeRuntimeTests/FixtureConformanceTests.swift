import Foundation
import Testing

@testable import EdgeRuntime

/// Every fixture model against onnxruntime's outputs (Tests/Fixtures/models/*.expected.ndjson),
/// with every kernel set this CPU runs (baseline, and avx2+fma where the CPU has it).
@Suite struct FixtureConformanceTests {
    @Test(arguments: Fixtures.index, EdgeRuntimeInfo.availableKernelISAs)
    func matchesOnnxruntime(_ entry: Fixtures.Entry, _ isa: KernelISA) throws {
        try check(entry, compactInt8Weights: false, isa: isa)
    }

    /// int8 weights kept as int8 (widened in registers) give the same answers.
    @Test(arguments: Fixtures.index.filter { $0.kind.hasPrefix("int8") }, EdgeRuntimeInfo.availableKernelISAs)
    func compactInt8WeightsMatchOnnxruntime(_ entry: Fixtures.Entry, _ isa: KernelISA) throws {
        try check(entry, compactInt8Weights: true, isa: isa)
    }

    func check(_ entry: Fixtures.Entry, compactInt8Weights: Bool, isa: KernelISA) throws {
        let model = try CompiledModel(contentsOf: Fixtures.path(entry.model), compactInt8Weights: compactInt8Weights, kernelISA: isa)
        #expect(model.kernelISA == isa)
        let session = InferenceSession(model)
        let inputs = Fixtures.lines(entry.inputs)
        let expected = Fixtures.lines(entry.expected)
        #expect(inputs.count == 20 && expected.count == 20)
        var worst = 0.0
        for (row, (input, want)) in zip(inputs, expected).enumerated() {
            try session.setInput(0, try NDJSONRows.parseInput(input))
            session.run()
            let reference = Fixtures.expected(want)
            #expect(Set(reference.keys) == Set(model.outputs.map(\.name)))
            for (i, info) in model.outputs.enumerated() {
                let ours = session.output(i)
                let ref = try #require(reference[info.name])
                #expect(ours.count == ref.count, "\(entry.name) row \(row) output \(info.name): \(ours.count) values, expected \(ref.count)")
                let (excess, diff) = Fixtures.compare(ours, ref, entry.tolerance)
                worst = max(worst, diff)
                #expect(excess <= 0, "\(entry.name) row \(row) output \(info.name): off by \(diff) (tolerance \(entry.tolerance))")
            }
        }
        print("\(entry.name)\(compactInt8Weights ? " (int8 weights)" : "") [\(isa)]: max |ours - onnxruntime| = \(worst) over 20 rows (tolerance abs \(entry.tolerance.abs), rel \(entry.tolerance.rel))")
    }

    /// The same rows run as one batch of 4 give the batch-1 answers. (Not for dynamic
    /// quantization: DynamicQuantizeLinear picks one scale for the whole batch tensor, so a
    /// batch legitimately differs from its rows run alone, in onnxruntime too.)
    @Test(arguments: Fixtures.index.filter { $0.kind != "int8-dynamic" })
    func smallBatchesMatchBatchOne(_ entry: Fixtures.Entry) throws {
        let single = InferenceSession(try CompiledModel(contentsOf: Fixtures.path(entry.model)))
        let batched = try CompiledModel(contentsOf: Fixtures.path(entry.model), batch: 4)
        let session = InferenceSession(batched)
        let rows = try Fixtures.lines(entry.inputs).prefix(4).map { try NDJSONRows.parseInput($0) }
        try session.setInput(0, rows.flatMap { $0 })
        session.run()
        for (i, info) in batched.outputs.enumerated() {
            let all = session.output(i)
            let per = all.count / 4
            for (r, row) in rows.enumerated() {
                try single.setInput(0, row)
                single.run()
                let one = single.output(i)
                let slice = Array(all[(r * per)..<((r + 1) * per)])
                // logreg's label is [N] but ArrayFeatureExtractor makes it [1, N]: same values.
                #expect(Fixtures.compare(slice, one, .init(abs: 1e-6, rel: 1e-6)).excess <= 0, "\(entry.name) \(info.name) row \(r)")
            }
        }
    }

    @Test func mlpPlanIsFusedAndSmall() throws {
        let model = try CompiledModel(contentsOf: Fixtures.path("mlp.onnx"))
        // Gemm+Relu, Gemm+Relu, Gemm, Softmax: four kernels.
        #expect(model.steps.count == 4, "\(model.steps)")
        #expect(model.inputs == [TensorInfo(name: "input", type: .float, shape: [1, 64])])
        #expect(model.outputs == [TensorInfo(name: "probabilities", type: .float, shape: [1, 10])])
        // input 64 + two 128/64 activations + logits + probabilities, 64-byte rounded.
        #expect(model.sessionBytes <= 2048, "\(model.sessionBytes)")
    }

    @Test func qdqMlpRunsInt8Kernels() throws {
        let model = try CompiledModel(contentsOf: Fixtures.path("mlp_int8_qdq.onnx"))
        // QuantizeLinear, three fused QDense (requantizing), DequantizeLinear, Softmax,
        // QuantizeLinear, DequantizeLinear.
        #expect(model.steps.filter { $0.contains("(QDense)") }.count == 3, "\(model.steps)")
        #expect(!model.steps.contains { $0.contains("(Gemm)") }, "\(model.steps)")
        let fp32 = try CompiledModel(contentsOf: Fixtures.path("mlp.onnx"))
        let compact = try CompiledModel(contentsOf: Fixtures.path("mlp_int8_qdq.onnx"), compactInt8Weights: true)
        #expect(model.weightBytes <= fp32.weightBytes)
        #expect(compact.weightBytes * 3 < fp32.weightBytes, "int8 panels: \(compact.weightBytes) bytes, fp32: \(fp32.weightBytes)")
    }

    @Test func dynamicMlpIsFusedPerLayer() throws {
        let model = try CompiledModel(contentsOf: Fixtures.path("mlp_int8_dynamic.onnx"))
        #expect(model.steps.filter { $0.contains("(DynQDense)") }.count == 3, "\(model.steps)")
        #expect(model.steps.count == 4, "\(model.steps)")
    }

    @Test func cnnFoldsBatchNormAndRelu() throws {
        let model = try CompiledModel(contentsOf: Fixtures.path("cnn1d.onnx"))
        #expect(!model.steps.contains { $0.contains("BatchNormalization") || $0.contains("(Relu)") }, "\(model.steps)")
    }
}
