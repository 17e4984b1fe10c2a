import Foundation
import SwiftProtobuf

// MARK: - Graph IR

/// One attribute value of a node, decoded from AttributeProto.
enum AttrValue: Sendable {
    case int(Int)
    case float(Float)
    case ints([Int])
    case floats([Float])
    case string(String)
    case tensor(HostTensor)
    case unsupported(String)
}

/// A node of the graph IR: ONNX's node with decoded attributes. Fusions create nodes in the
/// private domain `fleetwatch` (see GraphOptimizer).
struct IRNode: Sendable {
    var op: String
    var domain: String
    var name: String
    var inputs: [String]
    var outputs: [String]
    var attrs: [String: AttrValue]

    /// The node as a message names it: `'fc1' (Gemm)`.
    var label: String { "'\(name)' (\(op))" }

    func int(_ key: String, _ fallback: Int) throws -> Int {
        switch attrs[key] {
        case nil: return fallback
        case .int(let v): return v
        default: throw ModelError(.malformed, "node \(label): attribute \(key) is not an int")
        }
    }

    func float(_ key: String, _ fallback: Float) throws -> Float {
        switch attrs[key] {
        case nil: return fallback
        case .float(let v): return v
        case .int(let v): return Float(v)
        default: throw ModelError(.malformed, "node \(label): attribute \(key) is not a float")
        }
    }

    func ints(_ key: String) throws -> [Int]? {
        switch attrs[key] {
        case nil: return nil
        case .ints(let v): return v
        case .int(let v): return [v]
        default: throw ModelError(.malformed, "node \(label): attribute \(key) is not a list of ints")
        }
    }

    func string(_ key: String, _ fallback: String) throws -> String {
        switch attrs[key] {
        case nil: return fallback
        case .string(let v): return v
        default: throw ModelError(.malformed, "node \(label): attribute \(key) is not a string")
        }
    }

    /// Input `i`, or nil when it is absent or the empty name (an omitted optional input).
    func input(_ i: Int) -> String? {
        i < inputs.count && !inputs[i].isEmpty ? inputs[i] : nil
    }
}

/// A graph input or output: its element type and dims (nil for a symbolic dim).
struct IRValueInfo: Sendable {
    var name: String
    var type: ElementType
    var dims: [Int?]
}

/// The model as the compiler sees it: nodes in topological order, constants by name.
struct IRGraph: Sendable {
    var name: String
    var inputs: [IRValueInfo]
    var outputs: [IRValueInfo]
    var constants: [String: HostTensor]
    var nodes: [IRNode]
}

// MARK: - Supported operators

/// The operator subset (opset 13...17 semantics) and the check that refuses everything else.
enum OperatorSupport {
    static let defaultDomain: Set<String> = [
        "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "Sigmoid", "Tanh", "Softmax",
        "Identity", "Flatten", "Reshape", "ReduceMean", "ArgMax", "Cast", "Conv", "MaxPool",
        "GlobalAveragePool", "BatchNormalization", "QuantizeLinear", "DequantizeLinear",
        "DynamicQuantizeLinear", "MatMulInteger", "Constant",
    ]
    /// ai.onnx.ml: the one op skl2onnx classifiers need to map class indices to labels.
    static let mlDomain: Set<String> = ["ArrayFeatureExtractor"]
    static let opsetRange = 13...17

    static func check(_ node: IRNode) throws {
        switch node.domain {
        case "", "ai.onnx":
            if defaultDomain.contains(node.op) { return }
        case "ai.onnx.ml":
            if mlDomain.contains(node.op) { return }
        case "com.microsoft":
            throw ModelError(
                .contribOp,
                "node \(node.label) uses the onnxruntime contrib op com.microsoft.\(node.op), which the edge runtime does not run: export the model in QDQ form (onnxruntime.quantization.quantize_static with quant_format=QuantFormat.QDQ, or quantize_dynamic) and save it before onnxruntime's graph optimizations"
            )
        default: break
        }
        let domain = node.domain.isEmpty ? "ai.onnx" : node.domain
        throw ModelError(
            .unsupportedOp,
            "unsupported operator \(domain).\(node.op) in node '\(node.name)'; the edge runtime runs \(defaultDomain.sorted().joined(separator: ", ")) and ai.onnx.ml.ArrayFeatureExtractor"
        )
    }
}

// MARK: - Import

/// Turns ONNX protobuf bytes into the graph IR, refusing what the runtime cannot run.
enum ONNXImport {
    static func graph(from bytes: [UInt8]) throws -> IRGraph {
        let model: Onnx_ModelProto
        do {
            var options = BinaryDecodingOptions()
            options.messageDepthLimit = 64
            model = try Onnx_ModelProto(serializedBytes: bytes, options: options)
        } catch {
            throw ModelError(.unreadable, "not an ONNX model (protobuf: \(error))")
        }
        guard model.hasGraph, !model.graph.node.isEmpty || !model.graph.output.isEmpty else {
            throw ModelError(.unreadable, "not an ONNX model (no graph)")
        }
        let g = model.graph
        if !g.sparseInitializer.isEmpty {
            throw ModelError(.unsupportedFeature, "sparse initializers are not supported")
        }

        // Opsets: only the domains some node uses matter.
        var opsets: [String: Int] = [:]
        for o in model.opsetImport {
            let d = o.domain == "ai.onnx" ? "" : o.domain
            opsets[d] = max(opsets[d] ?? 0, Int(o.version))
        }

        var nodes: [IRNode] = []
        nodes.reserveCapacity(g.node.count)
        for (i, n) in g.node.enumerated() {
            var attrs: [String: AttrValue] = [:]
            let name = n.name.isEmpty ? "#\(i)" : n.name
            for a in n.attribute {
                attrs[a.name] = try attribute(a, node: name)
            }
            let node = IRNode(
                op: n.opType, domain: n.domain == "ai.onnx" ? "" : n.domain, name: name,
                inputs: n.input, outputs: n.output, attrs: attrs)
            try OperatorSupport.check(node)
            guard let version = opsets[node.domain] else {
                throw ModelError(.malformed, "node \(node.label) uses domain '\(node.domain.isEmpty ? "ai.onnx" : node.domain)', which the model does not import")
            }
            if node.domain.isEmpty, !OperatorSupport.opsetRange.contains(version) {
                throw ModelError(.unsupportedOpset, "the model uses ai.onnx opset \(version); the edge runtime supports opsets \(OperatorSupport.opsetRange.lowerBound)...\(OperatorSupport.opsetRange.upperBound) (re-export with opset 17)")
            }
            nodes.append(node)
        }

        var constants: [String: HostTensor] = [:]
        for t in g.initializer {
            constants[t.name] = try tensor(t)
        }
        var inputs: [IRValueInfo] = []
        for v in g.input where constants[v.name] == nil {
            inputs.append(try valueInfo(v))
        }
        guard !inputs.isEmpty else { throw ModelError(.malformed, "the graph has no inputs") }
        let outputs = try g.output.map { try valueInfo($0) }
        return IRGraph(name: g.name, inputs: inputs, outputs: outputs, constants: constants, nodes: nodes)
    }

    static func valueInfo(_ v: Onnx_ValueInfoProto) throws -> IRValueInfo {
        guard case .tensorType(let t)? = v.type.value else {
            throw ModelError(.unsupportedFeature, "graph value '\(v.name)' is not a tensor (sequences and maps are not supported)")
        }
        guard let type = ElementType.onnx(t.elemType) else {
            throw ModelError(.unsupportedFeature, "graph value '\(v.name)' has element type \(t.elemType), which is not supported")
        }
        let dims: [Int?] = t.shape.dim.map { d in
            if case .dimValue(let v)? = d.value, v > 0 { return Int(v) }
            return nil
        }
        return IRValueInfo(name: v.name, type: type, dims: dims)
    }

    static func attribute(_ a: Onnx_AttributeProto, node: String) throws -> AttrValue {
        switch a.type {
        case .int: return .int(Int(a.i))
        case .float: return .float(a.f)
        case .ints: return .ints(a.ints.map { Int($0) })
        case .floats: return .floats(a.floats)
        case .string: return .string(String(decoding: a.s, as: UTF8.self))
        case .tensor: return .tensor(try tensor(a.t))
        default:
            // Old exporters leave `type` unset; infer it from what is filled in.
            if a.hasI { return .int(Int(a.i)) }
            if a.hasF { return .float(a.f) }
            if !a.ints.isEmpty { return .ints(a.ints.map { Int($0) }) }
            if !a.floats.isEmpty { return .floats(a.floats) }
            if a.hasS { return .string(String(decoding: a.s, as: UTF8.self)) }
            if a.hasT { return .tensor(try tensor(a.t)) }
            return .unsupported("\(a.type)")
        }
    }

    /// Decodes an initializer from `raw_data` (little-endian) or from its typed field.
    static func tensor(_ t: Onnx_TensorProto) throws -> HostTensor {
        guard let type = ElementType.onnx(t.dataType) else {
            throw ModelError(.unsupportedFeature, "tensor '\(t.name)' has element type \(t.dataType), which is not supported (float, double, int8, uint8, int32, int64, bool are)")
        }
        if t.dataLocation == .external {
            throw ModelError(.unsupportedFeature, "tensor '\(t.name)' keeps its data in an external file; save the model with all data inside it")
        }
        let shape = t.dims.map { Int($0) }
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw ModelError(.malformed, "tensor '\(t.name)' has a negative dim")
        }
        let count = product(shape)
        var values: [Double]
        if t.hasRawData {
            let raw = [UInt8](t.rawData)
            guard raw.count == count * type.size else {
                throw ModelError(.malformed, "tensor '\(t.name)': raw_data has \(raw.count) bytes, expected \(count * type.size)")
            }
            values = raw.withUnsafeBytes { p in
                (0..<count).map { i -> Double in
                    let o = i * type.size
                    switch type {
                    case .float: return Double(Float(bitPattern: p.loadUnaligned(fromByteOffset: o, as: UInt32.self).littleEndian))
                    case .double: return Double(bitPattern: p.loadUnaligned(fromByteOffset: o, as: UInt64.self).littleEndian)
                    case .uint8, .bool: return Double(p[o])
                    case .int8: return Double(Int8(bitPattern: p[o]))
                    case .int32: return Double(Int32(littleEndian: p.loadUnaligned(fromByteOffset: o, as: Int32.self)))
                    case .int64: return Double(Int64(littleEndian: p.loadUnaligned(fromByteOffset: o, as: Int64.self)))
                    }
                }
            }
        } else {
            switch type {
            case .float: values = t.floatData.map { Double($0) }
            case .double: values = t.doubleData
            case .int64: values = t.int64Data.map { Double($0) }
            // int8, uint8, bool and int32 travel in int32_data (one value per element).
            case .int32, .int8, .uint8, .bool: values = t.int32Data.map { Double($0) }
            }
            guard values.count == count else {
                throw ModelError(.malformed, "tensor '\(t.name)' has \(values.count) values for shape \(shape)")
            }
        }
        return HostTensor(type: type, shape: shape, values: values)
    }
}
