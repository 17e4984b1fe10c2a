/// Load-time rewrites of the graph IR, before lowering to kernels:
///
/// 1. QDQ: Gemm/MatMul whose A, B (and bias) come from DequantizeLinear of an 8-bit runtime
///    tensor and of constants becomes one `fleetwatch.QDense` (an int8 kernel); a single
///    QuantizeLinear on its output is absorbed as requantization.
/// 2. Gemm/MatMul with a constant B becomes `fleetwatch.Dense` (alpha, beta and transB folded
///    into the packed weights).
/// 3. BatchNormalization after a Conv or Dense is folded into its weights and bias.
/// 4. Dense + Add(constant row) becomes Dense with bias; Dense/Conv + Relu fuse the Relu.
///
/// A rewrite applies only when the intermediate value has no other consumer and is not a
/// graph output, so what the graph computes is unchanged. Constants are folded later, when
/// lowering (every node whose inputs are all constant runs once at load).
struct GraphOptimizer {
    static let domain = "fleetwatch"
    var graph: IRGraph
    private var removed: Set<Int> = []
    private var fresh = 0

    init(_ graph: IRGraph) { self.graph = graph }

    static func optimize(_ graph: IRGraph) throws -> IRGraph {
        var o = GraphOptimizer(graph)
        try o.fuseQDQ()
        o.compact()
        try o.fuseDynamicQuantization()
        o.compact()
        try o.foldConstantNodes()
        o.compact()
        try o.toDense()
        o.compact()
        try o.foldBatchNorm()
        o.compact()
        try o.fuseBiasAndRelu()
        o.compact()
        return o.graph
    }

    // MARK: - Helpers

    private var producers: [String: Int] {
        var p: [String: Int] = [:]
        for (i, n) in graph.nodes.enumerated() where !removed.contains(i) {
            for o in n.outputs where !o.isEmpty { p[o] = i }
        }
        return p
    }

    private var consumers: [String: [Int]] {
        var c: [String: [Int]] = [:]
        for (i, n) in graph.nodes.enumerated() where !removed.contains(i) {
            for v in n.inputs where !v.isEmpty { c[v, default: []].append(i) }
        }
        return c
    }

    private var graphOutputs: Set<String> { Set(graph.outputs.map(\.name)) }

    /// The one node that reads `value`, when exactly one does and it is not a graph output.
    private func soleConsumer(_ value: String, _ consumers: [String: [Int]]) -> Int? {
        guard !graphOutputs.contains(value), let c = consumers[value], c.count == 1 else { return nil }
        return c[0]
    }

    private mutating func constant(_ tensor: HostTensor, hint: String) -> String {
        fresh += 1
        let name = "fleetwatch::\(hint)::\(fresh)"
        graph.constants[name] = tensor
        return name
    }

    private mutating func compact() {
        graph.nodes = graph.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
        removed = []
    }

    /// A scalar constant (a per-tensor scale or zero point), or nil.
    private func scalar(_ name: String?) -> Double? {
        guard let name, let t = graph.constants[name], t.count == 1 else { return nil }
        return t.values[0]
    }

    /// The logical [K, N] matrix of Gemm's B input (transB applied), row-major.
    private func matrix(_ t: HostTensor, transposed: Bool) -> (k: Int, n: Int, values: [Double])? {
        guard t.shape.count == 2 else { return nil }
        if !transposed { return (t.shape[0], t.shape[1], t.values) }
        let (n, k) = (t.shape[0], t.shape[1])
        var v = [Double](repeating: 0, count: k * n)
        for i in 0..<n { for j in 0..<k { v[j * n + i] = t.values[i * k + j] } }
        return (k, n, v)
    }

    /// A bias broadcastable to [n] ([], [1], [n], [1, n]) expanded to n values.
    private func row(_ t: HostTensor, n: Int) -> [Double]? {
        if t.count == 1 { return Array(repeating: t.values[0], count: n) }
        if t.count == n && (t.shape == [n] || t.shape == [1, n]) { return t.values }
        return nil
    }

    // MARK: - QDQ

    /// DequantizeLinear(aq, sa, za) -> Gemm/MatMul <- DequantizeLinear(Wq const, sw, zw), bias
    /// DequantizeLinear(int32 const) or absent, optionally -> QuantizeLinear(sy, zy).
    private mutating func fuseQDQ() throws {
        let prod = producers, cons = consumers
        for (i, n) in graph.nodes.enumerated() where (n.op == "Gemm" || n.op == "MatMul") && n.domain.isEmpty {
            if n.op == "Gemm" {
                guard try n.int("transA", 0) == 0, try n.float("alpha", 1) == 1, try n.float("beta", 1) == 1 else { continue }
            }
            guard let aName = n.input(0), let bName = n.input(1),
                let ai = prod[aName], graph.nodes[ai].op == "DequantizeLinear",
                let bi = prod[bName], graph.nodes[bi].op == "DequantizeLinear"
            else { continue }
            let adq = graph.nodes[ai], bdq = graph.nodes[bi]
            guard let aq = adq.input(0), graph.constants[aq] == nil,
                let sa = scalar(adq.input(1)),
                let wqName = bdq.input(0), let wq = graph.constants[wqName], wq.type.isQuantized,
                let sw = scalar(bdq.input(1))
            else { continue }
            let za = adq.input(2).flatMap { scalar($0) } ?? 0
            let zw = bdq.input(2).flatMap { scalar($0) } ?? 0
            let transB = n.op == "Gemm" ? try n.int("transB", 0) == 1 : false
            guard let w = matrix(wq, transposed: transB) else { continue }

            // Bias: DequantizeLinear of int32 constants in accumulator units (scale sa*sw).
            var biasName = ""
            if n.op == "Gemm", let cName = n.input(2) {
                guard let ci = prod[cName], graph.nodes[ci].op == "DequantizeLinear",
                    let bq = graph.nodes[ci].input(0).flatMap({ graph.constants[$0] }), bq.type == .int32,
                    let sb = scalar(graph.nodes[ci].input(1)),
                    (graph.nodes[ci].input(2).flatMap { scalar($0) } ?? 0) == 0,
                    abs(sb - Double(Float(sa) * Float(sw))) <= 1e-6 * abs(sb),
                    let b = row(bq, n: w.n)
                else { continue }
                biasName = constant(HostTensor(type: .int32, shape: [w.n], values: b), hint: "qbias")
            }

            var output = n.outputs[0]
            var attrs: [String: AttrValue] = [:]
            if let qi = soleConsumer(output, cons), graph.nodes[qi].op == "QuantizeLinear",
                let sy = scalar(graph.nodes[qi].input(1))
            {
                let q = graph.nodes[qi]
                let zyTensor = q.input(2).flatMap { graph.constants[$0] }
                if q.input(2) == nil || zyTensor?.count == 1 {
                    let zy = zyTensor?.values[0] ?? 0
                    let yType = zyTensor?.type ?? .uint8
                    attrs["y_scale"] = .float(Float(sy))
                    attrs["y_zero_point"] = .float(Float(zy))
                    attrs["y_type"] = .int(Int(yType.rawValue))
                    output = q.outputs[0]
                    removed.insert(qi)
                }
            }
            attrs["a_scale"] = .float(Float(sa))
            attrs["a_zero_point"] = .float(Float(za))
            attrs["w_scale"] = .float(Float(sw))
            attrs["w_zero_point"] = .float(Float(zw))
            let wName = constant(HostTensor(type: wq.type, shape: [w.k, w.n], values: w.values), hint: "qweights")
            graph.nodes[i] = IRNode(
                op: "QDense", domain: Self.domain, name: n.name, inputs: [aq, wName, biasName], outputs: [output],
                attrs: attrs)
        }
    }

    // MARK: - Dynamic quantization

    /// DynamicQuantizeLinear(x) -> MatMulInteger(xq, W const, xz, wz const) -> Cast(float) ->
    /// Mul(·, Mul(xs, ws const)) [-> Add(bias const)] [-> Relu], as quantize_dynamic writes
    /// it, becomes one `fleetwatch.DynQDense`.
    private mutating func fuseDynamicQuantization() throws {
        var prod = producers, cons = consumers
        for (i, mm) in graph.nodes.enumerated() where mm.op == "MatMulInteger" && mm.domain.isEmpty && !removed.contains(i) {
            guard let aq = mm.input(0), let di = prod[aq], graph.nodes[di].op == "DynamicQuantizeLinear",
                graph.nodes[di].outputs.count == 3, mm.input(2) == graph.nodes[di].outputs[2],
                let wName = mm.input(1), let w = graph.constants[wName], w.shape.count == 2, w.type.isQuantized,
                let ci = soleConsumer(mm.outputs[0], cons), graph.nodes[ci].op == "Cast",
                try graph.nodes[ci].int("to", 0) == Int(ElementType.float.rawValue),
                let mi = soleConsumer(graph.nodes[ci].outputs[0], cons), graph.nodes[mi].op == "Mul"
            else { continue }
            let dq = graph.nodes[di]
            let zw = mm.input(3).flatMap { scalar($0) } ?? 0
            if mm.input(3) != nil && mm.input(3).flatMap({ scalar($0) }) == nil { continue }
            let m = graph.nodes[mi]
            guard let sp = m.inputs.first(where: { $0 != graph.nodes[ci].outputs[0] }), let si = prod[sp],
                graph.nodes[si].op == "Mul", soleConsumer(sp, cons) == mi
            else { continue }
            let sm = graph.nodes[si]
            guard sm.inputs.contains(dq.outputs[1]), let swName = sm.inputs.first(where: { $0 != dq.outputs[1] }),
                let sw = scalar(swName)
            else { continue }
            // DynamicQuantizeLinear's outputs feed only this MatMulInteger and the scale Mul.
            let users = Set(dq.outputs.flatMap { cons[$0] ?? [] })
            guard users.isSubset(of: [i, si]), !dq.outputs.contains(where: { graphOutputs.contains($0) }) else { continue }

            var output = m.outputs[0]
            var gone = [di, ci, mi, si]
            var inputs = [dq.inputs[0], wName]
            if let ai = soleConsumer(output, cons), graph.nodes[ai].op == "Add", graph.nodes[ai].inputs.count == 2 {
                let a = graph.nodes[ai]
                let other = a.inputs[0] == output ? a.inputs[1] : a.inputs[0]
                if let b = graph.constants[other], b.type == .float, let r = row(b, n: w.shape[1]) {
                    inputs.append(constant(HostTensor(type: .float, shape: [w.shape[1]], values: r), hint: "bias"))
                    output = a.outputs[0]
                    gone.append(ai)
                }
            }
            var attrs: [String: AttrValue] = ["w_scale": .float(Float(sw)), "w_zero_point": .float(Float(zw))]
            if let ri = soleConsumer(output, cons), graph.nodes[ri].op == "Relu" {
                attrs["relu"] = .int(1)
                output = graph.nodes[ri].outputs[0]
                gone.append(ri)
            }
            graph.nodes[i] = IRNode(op: "DynQDense", domain: Self.domain, name: mm.name, inputs: inputs, outputs: [output], attrs: attrs)
            removed.formUnion(gone)
            prod = producers
            cons = consumers
        }
    }

    // MARK: - Constants

    /// Constant nodes become constants, and DequantizeLinear of constants (weights the QDQ
    /// fusion did not take, e.g. per-channel) becomes float constants, so the rewrites below
    /// see a constant B. Everything else constant is folded when lowering.
    private mutating func foldConstantNodes() throws {
        for (i, n) in graph.nodes.enumerated() where n.domain.isEmpty {
            if n.op == "Constant" {
                let value: HostTensor
                switch (n.attrs["value"], n.attrs["value_float"], n.attrs["value_floats"], n.attrs["value_int"], n.attrs["value_ints"]) {
                case (.tensor(let t)?, _, _, _, _): value = t
                case (_, .float(let f)?, _, _, _): value = HostTensor(type: .float, shape: [], values: [Double(f)])
                case (_, _, .floats(let f)?, _, _): value = HostTensor(type: .float, shape: [f.count], values: f.map { Double($0) })
                case (_, _, _, .int(let v)?, _): value = HostTensor(type: .int64, shape: [], values: [Double(v)])
                case (_, _, _, _, .ints(let v)?): value = HostTensor(type: .int64, shape: [v.count], values: v.map { Double($0) })
                default: throw ModelError(.unsupportedOp, "node \(n.label): only value, value_float(s) and value_int(s) Constants are supported")
                }
                graph.constants[n.outputs[0]] = value
                removed.insert(i)
            } else if n.op == "DequantizeLinear", let x = n.input(0).flatMap({ graph.constants[$0] }),
                let s = n.input(1).flatMap({ graph.constants[$0] })
            {
                let z = n.input(2).flatMap { graph.constants[$0] }
                guard z == nil || z!.count == s.count else { continue }
                var inner = 1
                if s.count > 1 {
                    guard let a = normalizeAxis(try n.int("axis", 1), rank: x.shape.count), x.shape[a] == s.count else { continue }
                    inner = product(Array(x.shape[(a + 1)...]))
                }
                let ss = s.values.map { Float($0) }, zz = z?.values.map { Float($0) } ?? Array(repeating: 0, count: s.count)
                var out = [Double](repeating: 0, count: x.count)
                for idx in 0..<x.count {
                    let c = s.count == 1 ? 0 : (idx / inner) % s.count
                    out[idx] = Double((Float(x.values[idx]) - zz[c]) * ss[c])
                }
                graph.constants[n.outputs[0]] = HostTensor(type: .float, shape: x.shape, values: out)
                removed.insert(i)
            }
        }
    }

    // MARK: - Dense

    private mutating func toDense() throws {
        for (i, n) in graph.nodes.enumerated() where n.domain.isEmpty && (n.op == "Gemm" || n.op == "MatMul") {
            guard let aName = n.input(0), let bName = n.input(1), let b = graph.constants[bName], b.type == .float,
                b.shape.count == 2
            else { continue }
            var weights: (k: Int, n: Int, values: [Double])
            var bias: [Double]? = nil
            if n.op == "Gemm" {
                guard try n.int("transA", 0) == 0 else { continue }
                let alpha = Double(try n.float("alpha", 1)), beta = Double(try n.float("beta", 1))
                guard let w = matrix(b, transposed: try n.int("transB", 0) == 1) else { continue }
                weights = (w.k, w.n, w.values.map { $0 * alpha })
                if let cName = n.input(2) {
                    guard let c = graph.constants[cName], let r = row(c, n: w.n) else { continue }
                    bias = r.map { $0 * beta }
                }
            } else {
                weights = (b.shape[0], b.shape[1], b.values)
            }
            var inputs = [aName, constant(HostTensor(type: .float, shape: [weights.k, weights.n], values: weights.values), hint: "weights")]
            if let bias { inputs.append(constant(HostTensor(type: .float, shape: [weights.n], values: bias), hint: "bias")) }
            graph.nodes[i] = IRNode(op: "Dense", domain: Self.domain, name: n.name, inputs: inputs, outputs: n.outputs, attrs: ["gemm": .int(n.op == "Gemm" ? 1 : 0)])
        }
    }

    // MARK: - BatchNormalization

    private mutating func foldBatchNorm() throws {
        let prod = producers, cons = consumers
        for (i, bn) in graph.nodes.enumerated() where bn.op == "BatchNormalization" && bn.domain.isEmpty {
            guard bn.outputs.count == 1 || bn.outputs.dropFirst().allSatisfy(\.isEmpty),
                try bn.int("training_mode", 0) == 0,
                let x = bn.input(0), let pi = prod[x], soleConsumer(x, cons) == i,
                let scale = bn.input(1).flatMap({ graph.constants[$0] }),
                let beta = bn.input(2).flatMap({ graph.constants[$0] }),
                let mean = bn.input(3).flatMap({ graph.constants[$0] }),
                let variance = bn.input(4).flatMap({ graph.constants[$0] })
            else { continue }
            let eps = Double(try bn.float("epsilon", 1e-5))
            let c = scale.count
            guard beta.count == c, mean.count == c, variance.count == c else { continue }
            let a = (0..<c).map { Double(Float(scale.values[$0])) / Double(Float(variance.values[$0] + eps).squareRoot()) }
            var p = graph.nodes[pi]
            if p.op == "Conv" && p.domain.isEmpty {
                guard let w = p.input(1).flatMap({ graph.constants[$0] }), w.type == .float, w.shape.first == c else { continue }
                let per = w.count / c
                var wv = w.values
                for m in 0..<c { for j in 0..<per { wv[m * per + j] *= a[m] } }
                let b0 = p.input(2).flatMap { graph.constants[$0]?.values } ?? Array(repeating: 0, count: c)
                guard b0.count == c else { continue }
                let bv = (0..<c).map { (b0[$0] - mean.values[$0]) * a[$0] + beta.values[$0] }
                let wName = constant(HostTensor(type: .float, shape: w.shape, values: wv), hint: "bn_weights")
                let bName = constant(HostTensor(type: .float, shape: [c], values: bv), hint: "bn_bias")
                p.inputs = [p.inputs[0], wName, bName]
            } else if p.op == "Dense" && p.domain == Self.domain {
                guard let w = graph.constants[p.inputs[1]], w.shape.count == 2, w.shape[1] == c else { continue }
                let k = w.shape[0]
                var wv = w.values
                for kk in 0..<k { for m in 0..<c { wv[kk * c + m] *= a[m] } }
                let b0 = p.input(2).flatMap { graph.constants[$0]?.values } ?? Array(repeating: 0, count: c)
                let bv = (0..<c).map { (b0[$0] - mean.values[$0]) * a[$0] + beta.values[$0] }
                let wName = constant(HostTensor(type: .float, shape: w.shape, values: wv), hint: "bn_weights")
                let bName = constant(HostTensor(type: .float, shape: [c], values: bv), hint: "bn_bias")
                p.inputs = [p.inputs[0], wName, bName]
            } else {
                continue
            }
            p.outputs = [bn.outputs[0]]
            graph.nodes[pi] = p
            removed.insert(i)
        }
    }

    // MARK: - Bias and Relu

    private mutating func fuseBiasAndRelu() throws {
        var changed = true
        while changed {
            changed = false
            let cons = consumers
            for (i, n) in graph.nodes.enumerated() where !removed.contains(i) {
                let isDense = n.op == "Dense" && n.domain == Self.domain
                let isConv = n.op == "Conv" && n.domain.isEmpty
                guard isDense || isConv, n.attrs["relu"] == nil, let next = soleConsumer(n.outputs[0], cons) else { continue }
                let m = graph.nodes[next]
                if isDense, n.input(2) == nil, m.op == "Add", m.domain.isEmpty, m.inputs.count == 2,
                    let n2 = graph.constants[n.inputs[1]]?.shape.last
                {
                    let other = m.inputs[0] == n.outputs[0] ? m.inputs[1] : m.inputs[0]
                    guard m.inputs.contains(n.outputs[0]), let c = graph.constants[other], c.type == .float,
                        c.shape.count <= 2, let r = row(c, n: n2)
                    else { continue }
                    var f = n
                    f.inputs = [n.inputs[0], n.inputs[1], constant(HostTensor(type: .float, shape: [n2], values: r), hint: "bias")]
                    f.outputs = m.outputs
                    graph.nodes[i] = f
                    removed.insert(next)
                    changed = true
                } else if m.op == "Relu" && m.domain.isEmpty {
                    var f = n
                    f.attrs["relu"] = .int(1)
                    f.outputs = m.outputs
                    graph.nodes[i] = f
                    removed.insert(next)
                    changed = true
                }
                if changed { break }
            }
        }
    }
}
