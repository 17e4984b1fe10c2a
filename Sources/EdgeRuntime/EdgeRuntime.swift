/// The edge inference runtime (issue 7): a pinned ONNX subset loaded with swift-protobuf
/// (`ONNXImport`), rewritten and fused (`GraphOptimizer`), lowered to SIMD kernels with all
/// memory planned at load (`GraphCompiler`, `CompiledModel`), run without allocation
/// (`InferenceSession`), and checked against a signed manifest (`ModelIntegrity`).
/// docs/edge-runtime.md describes the design, the operator subset and its limits.
public enum EdgeRuntimeInfo {
    /// The opset the fixtures and exporters target; opsets 13...17 load.
    public static let supportedOpset = 17
}
