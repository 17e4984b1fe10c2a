import FleetCore
import Foundation
import SwiftProtobuf

/// Builds small ONNX models in memory, for the simulator and tests that need a real model
/// without a file on disk.
///
/// The bytes are a standard ONNX ModelProto (opset 17) and go through the same import,
/// optimisation and compilation as a model file, so inference on them is the runtime's real
/// path, not a shortcut.
public enum ModelBuilder {
    /// A classifier MLP: `Gemm+Relu` for every hidden layer, then `Gemm` and `Softmax`.
    ///
    /// `layers` are the widths from input to output (at least two, e.g. `[64, 128, 64, 10]`).
    /// Weights are seeded He-normal scaled by `weightScale` (larger: more confident outputs);
    /// biases are small. The same seed gives the same bytes. Input `input` [1, layers[0]],
    /// output `probabilities` [1, layers.last].
    public static func mlp(name: String, layers: [Int], seed: UInt64, weightScale: Float = 1) -> [UInt8] {
        precondition(layers.count >= 2 && layers.allSatisfy { $0 >= 1 }, "an MLP has an input and an output width")
        var rng = SplitMix64(seed: seed)
        var graph = Onnx_GraphProto()
        graph.name = name
        graph.input = [valueInfo("input", [1, layers[0]])]
        graph.output = [valueInfo("probabilities", [1, layers.last!])]
        var x = "input"
        for l in 0..<(layers.count - 1) {
            let (fanIn, fanOut) = (layers[l], layers[l + 1])
            let std = (2 / Float(fanIn)).squareRoot() * weightScale
            // transB = 1: W is stored [out, in], as PyTorch exports it.
            let w = (0..<(fanIn * fanOut)).map { _ in Float(rng.gaussian()) * std }
            let b = (0..<fanOut).map { _ in Float(rng.gaussian()) * 0.05 }
            graph.initializer.append(tensor("w\(l)", [fanOut, fanIn], w))
            graph.initializer.append(tensor("b\(l)", [fanOut], b))
            let last = l == layers.count - 2
            let h = last ? "logits" : "h\(l)"
            graph.node.append(node("Gemm", [x, "w\(l)", "b\(l)"], [h], name: "fc\(l)", ints: ["transB": 1]))
            if !last {
                graph.node.append(node("Relu", [h], ["a\(l)"], name: "relu\(l)"))
                x = "a\(l)"
            }
        }
        graph.node.append(node("Softmax", ["logits"], ["probabilities"], name: "softmax", ints: ["axis": -1]))
        var model = Onnx_ModelProto()
        model.irVersion = 8
        model.producerName = "fleetwatch ModelBuilder"
        var opset = Onnx_OperatorSetIdProto()
        opset.domain = ""
        opset.version = Int64(EdgeRuntimeInfo.supportedOpset)
        model.opsetImport = [opset]
        model.graph = graph
        // Serialising a message we built cannot fail.
        return [UInt8](try! model.serializedData())
    }

    private static func valueInfo(_ name: String, _ shape: [Int]) -> Onnx_ValueInfoProto {
        var t = Onnx_TypeProto.Tensor()
        t.elemType = 1  // FLOAT
        var s = Onnx_TensorShapeProto()
        s.dim = shape.map { d in
            var dim = Onnx_TensorShapeProto.Dimension()
            dim.dimValue = Int64(d)
            return dim
        }
        t.shape = s
        var v = Onnx_ValueInfoProto()
        v.name = name
        v.type.tensorType = t
        return v
    }

    private static func tensor(_ name: String, _ dims: [Int], _ values: [Float]) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        t.name = name
        t.dims = dims.map(Int64.init)
        t.dataType = 1  // FLOAT
        t.floatData = values
        return t
    }

    private static func node(_ op: String, _ inputs: [String], _ outputs: [String], name: String, ints: [String: Int64] = [:]) -> Onnx_NodeProto {
        var n = Onnx_NodeProto()
        n.opType = op
        n.name = name
        n.input = inputs
        n.output = outputs
        n.attribute = ints.sorted { $0.key < $1.key }.map { k, v in
            var a = Onnx_AttributeProto()
            a.name = k
            a.type = .int
            a.i = v
            return a
        }
        return n
    }
}
