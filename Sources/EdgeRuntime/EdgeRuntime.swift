/// The edge inference runtime (issue 7): ONNX subset loading, kernels, integrity, sessions.
public enum EdgeRuntimeInfo {
    public static let supportedOpset = 17
}
