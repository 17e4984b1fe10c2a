/// The ONNX element types the runtime stores (TensorProto.DataType numbering).
public enum ElementType: Int32, Sendable, CustomStringConvertible {
    case float = 1
    case uint8 = 2
    case int8 = 3
    case int32 = 6
    case int64 = 7
    case bool = 9
    case double = 11

    /// Bytes of one element in an inference session's memory.
    var size: Int {
        switch self {
        case .uint8, .int8, .bool: 1
        case .float, .int32: 4
        case .int64, .double: 8
        }
    }

    var isQuantized: Bool { self == .uint8 || self == .int8 }

    /// The representable range of an 8-bit quantized type.
    var quantRange: (lo: Double, hi: Double) {
        self == .uint8 ? (0, 255) : (-128, 127)
    }

    public var description: String {
        switch self {
        case .float: "float"
        case .uint8: "uint8"
        case .int8: "int8"
        case .int32: "int32"
        case .int64: "int64"
        case .bool: "bool"
        case .double: "double"
        }
    }

    static func onnx(_ code: Int32) -> ElementType? { ElementType(rawValue: code) }
}

/// A tensor known at load time (an initializer, a Constant, a folded value). Values are kept
/// as Double whatever the element type: every supported type converts exactly (int64 up to
/// 2^53, far beyond any shape or class label), which keeps folding and packing code generic.
struct HostTensor: Sendable {
    var type: ElementType
    var shape: [Int]
    var values: [Double]

    var count: Int { values.count }
    var isScalarLike: Bool { values.count == 1 }

    init(type: ElementType, shape: [Int], values: [Double]) {
        precondition(shape.reduce(1, *) == values.count, "shape does not match value count")
        self.type = type
        self.shape = shape
        self.values = values
    }

    var floats: [Float] { values.map { Float($0) } }
    var ints: [Int] { values.map { Int($0) } }
}

@inline(__always)
func product(_ dims: [Int]) -> Int { dims.reduce(1, *) }

/// Resolves a possibly negative axis against a rank.
func normalizeAxis(_ axis: Int, rank: Int) -> Int? {
    let a = axis < 0 ? axis + rank : axis
    return (0..<max(rank, 1)).contains(a) ? a : nil
}
