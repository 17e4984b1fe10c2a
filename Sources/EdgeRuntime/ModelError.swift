/// Why a model could not be loaded or compiled. Every message names what failed (the op, the
/// node, the tensor) and, where there is one, the fix; `fleet-agent` prints it as one line.
public struct ModelError: Error, Equatable, CustomStringConvertible, Sendable {
    public enum Reason: String, Sendable, Equatable {
        /// The bytes are not an ONNX ModelProto (or the file could not be read).
        case unreadable
        /// The protobuf parsed but the graph is inconsistent (missing value, bad shape, ...).
        case malformed
        /// The default-domain opset is outside what the runtime pins (13...17).
        case unsupportedOpset
        /// An operator (or an attribute value of one) that this runtime does not implement.
        case unsupportedOp
        /// An onnxruntime contrib op (domain com.microsoft): export QDQ instead.
        case contribOp
        /// The model needs something outside the supported subset (external data, dtype, ...).
        case unsupportedFeature
    }

    public var reason: Reason
    public var message: String

    public init(_ reason: Reason, _ message: String) {
        self.reason = reason
        self.message = message
    }

    public var description: String { message }
}

/// What went wrong running one input row (bad length, non-finite numbers are fine).
public struct InferenceError: Error, Equatable, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
