// MARK: - Lowering: one IR node -> output types/shapes and a kernel builder

extension GraphCompiler {
    func shape(_ v: Int) -> [Int] { values[v].shape }
    func type(_ v: Int) -> ElementType { values[v].type }
    func constant(_ ins: [Int], _ i: Int) -> HostTensor? { i < ins.count && ins[i] >= 0 ? values[ins[i]].constant : nil }

    func fail(_ node: IRNode, _ what: String) -> ModelError {
        ModelError(.unsupportedOp, "node \(node.label): \(what)")
    }

    func bad(_ node: IRNode, _ what: String) -> ModelError {
        ModelError(.malformed, "node \(node.label): \(what)")
    }

    func requireFloat(_ node: IRNode, _ ins: [Int], _ idx: [Int]) throws {
        for i in idx where i < ins.count && ins[i] >= 0 && type(ins[i]) != .float {
            throw fail(node, "input \(i) is \(type(ins[i])); this operator runs on float tensors")
        }
    }

    func lower(_ node: IRNode, _ ins: [Int]) throws -> Lowered {
        let required = ["Gemm": 2, "MatMul": 2, "Add": 2, "Sub": 2, "Mul": 2, "Div": 2, "Reshape": 2, "Conv": 2,
                        "BatchNormalization": 5, "QuantizeLinear": 2, "DequantizeLinear": 2, "MatMulInteger": 2,
                        "ArrayFeatureExtractor": 2, "Dense": 2, "QDense": 2, "DynQDense": 2][node.op] ?? (node.op == "Constant" ? 0 : 1)
        guard ins.count >= required, ins.prefix(required).allSatisfy({ $0 >= 0 }) else {
            throw bad(node, "expects \(required) inputs")
        }
        switch node.op {
        case "Dense": return try lowerDense(node, ins)
        case "QDense": return try lowerQDense(node, ins)
        case "DynQDense": return try lowerDynQDense(node, ins)
        case "Gemm", "MatMul": return try lowerMatMul(node, ins)
        case "Add": return try lowerBinary(node, ins, AddOp.self)
        case "Sub": return try lowerBinary(node, ins, SubOp.self)
        case "Mul": return try lowerBinary(node, ins, MulOp.self)
        case "Div": return try lowerBinary(node, ins, DivOp.self)
        case "Relu", "Sigmoid", "Tanh":
            try requireFloat(node, ins, [0])
            let op: UnaryOp = node.op == "Relu" ? .relu : node.op == "Sigmoid" ? .sigmoid : .tanh
            let count = values[ins[0]].count
            return .kernel(outputs: [(.float, shape(ins[0]))], scratch: []) { l, i, o, _ in
                UnaryKernel(x: l.off(i[0]), y: l.off(o[0]), count: count, op: op)
            }
        case "Softmax":
            try requireFloat(node, ins, [0])
            let s = shape(ins[0])
            guard let axis = normalizeAxis(try node.int("axis", -1), rank: s.count) else { throw bad(node, "axis out of range") }
            let outer = product(Array(s[..<axis])), n = s[axis], inner = product(Array(s[(axis + 1)...]))
            let ks = kernels
            return .kernel(outputs: [(.float, s)], scratch: []) { l, i, o, _ in
                SoftmaxKernel(x: l.off(i[0]), y: l.off(o[0]), outer: outer, n: n, inner: inner, kernels: ks)
            }
        case "Identity":
            return .alias(type(ins[0]), shape(ins[0]))
        case "Flatten":
            let s = shape(ins[0])
            guard let axis = try node.int("axis", 1) == s.count ? s.count : normalizeAxis(try node.int("axis", 1), rank: s.count) else {
                throw bad(node, "axis out of range")
            }
            return .alias(type(ins[0]), [product(Array(s[..<axis])), product(Array(s[axis...]))])
        case "Reshape": return try lowerReshape(node, ins)
        case "ReduceMean": return try lowerReduceMean(node, ins)
        case "ArgMax": return try lowerArgMax(node, ins)
        case "Cast":
            guard let to = ElementType.onnx(Int32(try node.int("to", 0))) else {
                throw fail(node, "cast to element type \(try node.int("to", 0)) is not supported")
            }
            let from = type(ins[0]), count = values[ins[0]].count
            if from == to { return .alias(to, shape(ins[0])) }
            return .kernel(outputs: [(to, shape(ins[0]))], scratch: []) { l, i, o, _ in
                CastKernel(x: l.off(i[0]), from: from, y: l.off(o[0]), to: to, count: count)
            }
        case "Conv": return try lowerConv(node, ins)
        case "MaxPool": return try lowerMaxPool(node, ins)
        case "GlobalAveragePool":
            try requireFloat(node, ins, [0])
            let s = shape(ins[0])
            guard s.count >= 3 else { throw bad(node, "input must be [N, C, ...]") }
            let planes = s[0] * s[1], spatial = product(Array(s[2...]))
            return .kernel(outputs: [(.float, [s[0], s[1]] + Array(repeating: 1, count: s.count - 2))], scratch: []) { l, i, o, _ in
                GlobalAveragePoolKernel(x: l.off(i[0]), y: l.off(o[0]), planes: planes, spatial: spatial)
            }
        case "BatchNormalization": return try lowerBatchNorm(node, ins)
        case "QuantizeLinear", "DequantizeLinear": return try lowerQuantize(node, ins)
        case "DynamicQuantizeLinear":
            try requireFloat(node, ins, [0])
            let count = values[ins[0]].count
            let ks = kernels
            return .kernel(outputs: [(.uint8, shape(ins[0])), (.float, []), (.uint8, [])], scratch: []) { l, i, o, _ in
                DynamicQuantizeKernel(x: l.off(i[0]), y: l.off(o[0]), scale: l.off(o[1]), zeroPoint: l.off(o[2]), count: count, kernels: ks)
            }
        case "MatMulInteger": return try lowerMatMulInteger(node, ins)
        case "ArrayFeatureExtractor": return try lowerArrayFeatureExtractor(node, ins)
        case "Constant":
            throw bad(node, "Constant should have been folded")
        default:
            throw fail(node, "no kernel")
        }
    }

    // MARK: - Matrix products

    /// Packs a float [K, N] matrix and bias into a GemmKernel step.
    func dense(_ a: Int, k: Int, n: Int, weights: [Float], bias: [Float]?, relu: Bool, node: IRNode) throws -> Lowered {
        try requireFloat(node, [a], [0])
        let s = shape(a)
        guard let last = s.last, last == k else { throw bad(node, "input has shape \(s), expected [..., \(k)]") }
        let m = values[a].count / max(k, 1)
        let packed = PanelMatrix.packF32(k: k, n: n) { weights[$0 * n + $1] }
        let b = packBias(bias, n: n)
        let ks = kernels
        return .kernel(outputs: [(.float, Array(s.dropLast()) + [n])], scratch: [], packed: [1, 2]) { l, i, o, _ in
            GemmKernel(a: l.off(i[0]), y: l.off(o[0]), m: m, weights: packed, bias: b, relu: relu, kernels: ks)
        }
    }

    func lowerDense(_ node: IRNode, _ ins: [Int]) throws -> Lowered {
        guard let w = constant(ins, 1), w.shape.count == 2 else { throw bad(node, "weights must be a constant matrix") }
        let a = ins[0]
        if node.attrs["gemm"].map({ if case .int(1) = $0 { return true } else { return false } }) == true, shape(a).count != 2 {
            throw bad(node, "Gemm input A must be 2-D, got \(shape(a))")
        }
        let bias = constant(ins, 2)?.floats
        return try dense(a, k: w.shape[0], n: w.shape[1], weights: w.floats, bias: bias, relu: try node.int("relu", 0) == 1, node: node)
    }

    /// Gemm/MatMul the optimizer left alone: a constant B that only became constant by
    /// folding, or MatMul of two runtime tensors.
    func lowerMatMul(_ node: IRNode, _ ins: [Int]) throws -> Lowered {
        let a = ins[0], b = ins[1]
        try requireFloat(node, ins, [0, 1, 2])
        if node.op == "Gemm" {
            guard try node.int("transA", 0) == 0 else { throw fail(node, "Gemm with transA=1 is not supported") }
            guard let bt = values[b].constant, bt.shape.count == 2 else { throw fail(node, "Gemm with a runtime B is not supported (use MatMul)") }
            let alpha = try node.float("alpha", 1), beta = try node.float("beta", 1)
            let trans = try node.int("transB", 0) == 1
            let k = trans ? bt.shape[1] : bt.shape[0], n = trans ? bt.shape[0] : bt.shape[1]
            var w = [Float](repeating: 0, count: k * n)
            for kk in 0..<k { for j in 0..<n { w[kk * n + j] = alpha * Float(trans ? bt.values[j * k + kk] : bt.values[kk * n + j]) } }
            var bias: [Float]? = nil
            if let c = constant(ins, 2) {
                guard c.count == 1 || c.count == n else { throw fail(node, "Gemm bias of shape \(c.shape) is not supported ([N] or scalar are)") }
                bias = (0..<n).map { beta * Float(c.values[c.count == 1 ? 0 : $0]) }
            } else if ins.count > 2 && ins[2] >= 0 {
                throw fail(node, "Gemm with a runtime C is not supported")
            }
            return try dense(a, k: k, n: n, weights: w, bias: bias, relu: false, node: node)
        }
        if let bt = values[b].constant, bt.shape.count == 2 {
            return try dense(a, k: bt.shape[0], n: bt.shape[1], weights: bt.floats, bias: nil, relu: false, node: node)
        }
        let sa = shape(a), sb = shape(b)
        guard sa.count >= 2, sb.count >= 2, sa[sa.count - 1] == sb[sb.count - 2] else {
            throw fail(node, "MatMul of shapes \(sa) and \(sb) is not supported")
        }
        let bBatched = sb.count > 2
        guard !bBatched || Array(sa.dropLast(2)) == Array(sb.dropLast(2)) else {
            throw fail(node, "MatMul batch dims must match (\(sa) x \(sb))")
        }
        let m = sa[sa.count - 2], k = sa[sa.count - 1], n = sb[sb.count - 1]
        let batchCount = product(Array(sa.dropLast(2)))
        return .kernel(outputs: [(.float, Array(sa.dropLast()) + [n])], scratch: []) { l, i, o, _ in
            MatMulDynamicKernel(a: l.off(i[0]), b: l.off(i[1]), y: l.off(o[0]), batch: batchCount, m: m, k: k, n: n, bBatched: bBatched)
        }
    }

    /// Packs quantized weights as exact float panels of (w - zw), or, when `compactInt8` is
    /// set and the zero point is 0, as int8 panels. Returns whether float accumulation stays
    /// exact (|sum| < 2^24; else the kernel takes its int64 path).
    func packQuantized(_ w: HostTensor, zeroPoint zw: Double, aType: ElementType, aZeroPoint za: Double?, bias: [Double]?) -> (PanelMatrix, Bool) {
        let k = w.shape[0], n = w.shape[1]
        let packed: PanelMatrix
        if compactInt8 && w.type == .int8 && zw == 0 {
            packed = PanelMatrix.packI8(k: k, n: n) { Int8(w.values[$0 * n + $1]) }
        } else {
            packed = PanelMatrix.packF32(k: k, n: n) { Float(w.values[$0 * n + $1] - zw) }
        }
        let (lo, hi) = aType.quantRange
        let maxA = za.map { max(abs(lo - $0), abs(hi - $0)) } ?? max(abs(lo), hi) * 2
        let maxW = w.values.map { abs($0 - zw) }.max() ?? 0
        let maxB = bias?.map { abs($0) }.max() ?? 0
        return (packed, Double(k) * maxA * maxW + maxB < 16_777_216)
    }

    func lowerQDense(_ node: IRNode, _ ins: [Int]) throws -> Lowered {
        let a = ins[0]
        let aType = type(a)
        guard aType.isQuantized, let w = constant(ins, 1), w.shape.count == 2 else { throw bad(node, "malformed fused QDQ node") }
        let k = w.shape[0], n = w.shape[1]
        let s = shape(a)
        guard s.last == k else { throw bad(node, "input has shape \(s), expected [..., \(k)]") }
        let sa = try node.float("a_scale", 1), za = try node.float("a_zero_point", 0)
        let sw = try node.float("w_scale", 1), zw = try node.float("w_zero_point", 0)
        let bias = constant(ins, 2)?.values
        let (packed, exact) = packQuantized(w, zeroPoint: Double(zw), aType: aType, aZeroPoint: Double(za), bias: bias)
        let b = packBias(bias.map { $0.map { Float($0) } }, n: n)
        let output: QuantizedOutput
        let outType: ElementType
        if case .int(let t)? = node.attrs["y_type"], let yType = ElementType.onnx(Int32(t)) {
            let sy = try node.float("y_scale", 1), zy = try node.float("y_zero_point", 0)
            output = .quantized(yType, multiplier: sa * sw / sy, zeroPoint: zy)
            outType = yType
        } else {
            output = .float(scale: sa * sw)
            outType = .float
        }
        let m = values[a].count / max(k, 1)
        let panels = packed.panels
        let ks = kernels
        return .kernel(outputs: [(outType, Array(s.dropLast()) + [n])], scratch: [(.float, k), (.float, panels * panelWidth)], packed: [1, 2]) { l, i, o, sc in
            QuantizedGemmKernel(
                a: l.off(i[0]), aType: aType, aZeroPoint: za, aZeroPointOffset: nil, y: l.off(o[0]), m: m,
                weights: packed, bias: b, output: output, exactInFloat: exact, rowScratch: sc[0], accScratch: sc[1], kernels: ks)
        }
    }

    func lowerDynQDense(_ node: IRNode, _ ins: [Int]) throws -> Lowered {
        try requireFloat(node, ins, [0])
        guard let w = constant(ins, 1), w.shape.count == 2 else { throw bad(node, "malformed fused dynamic quantization node") }
        let k = w.shape[0], n = w.shape[1]
        let s = shape(ins[0])
        guard s.last == k else { throw bad(node, "input has shape \(s), expected [..., \(k)]") }
        let zw = try node.float("w_zero_point", 0), sw = try node.float("w_scale", 1)
        // The input zero point is picked at run time, within [0, 255].
        let (packed, exact) = packQuantized(w, zeroPoint: Double(zw), aType: .uint8, aZeroPoint: nil, bias: nil)
        let bias = packBias(constant(ins, 2)?.floats, n: n)
        let count = values[ins[0]].count
        let relu = try node.int("relu", 0) == 1
        let ks = kernels
        return .kernel(outputs: [(.float, Array(s.dropLast()) + [n])], scratch: [(.float, k), (.float, packed.panels * panelWidth)], packed: [1, 2]) { l, i, o, sc in
            DynamicQuantizedDenseKernel(
                x: l.off(i[0]), y: l.off(o[0]), count: count, weights: packed, weightScale: sw, bias: bias, relu: relu,
                exactInFloat: exact, rowScratch: sc[0], accScratch: sc[1], kernels: ks)
        }
    }

    func lowerMatMulInteger(_ node: IRNode, _ ins: [Int]) throws -> Lowered {
        let a = ins[0]
        let aType = type(a)
        guard aType.isQuantized else { throw fail(node, "A must be uint8 or int8") }
        guard let w = constant(ins, 1), w.shape.count == 2, w.type.isQuantized else {
            throw fail(node, "MatMulInteger with a runtime or non-2-D B is not supported")
        }
        let k = w.shape[0], n = w.shape[1]
        let s = shape(a)
        guard s.last == k else { throw bad(node, "input has shape \(s), expected [..., \(k)]") }
        var zaConst: Double? = 0
        var zaValue: Int? = nil
        if ins.count > 2 && ins[2] >= 0 {
            if let c = values[ins[2]].constant {
                guard c.count == 1 else { throw fail(node, "per-row A zero points are not supported") }
                zaConst = c.values[0]
            } else {
                guard values[ins[2]].count == 1, type(ins[2]) == aType else { throw fail(node, "A zero point must be a scalar of A's type") }
                zaConst = nil
                zaValue = ins[2]
            }
        }
        var zw = 0.0
        if let z = constant(ins, 3) {
            guard z.count == 1 else { throw fail(node, "per-column B zero points are not supported") }
            zw = z.values[0]
        } else if ins.count > 3 && ins[3] >= 0 {
            throw fail(node, "a runtime B zero point is not supported")
        }
        let (packed, exact) = packQuantized(w, zeroPoint: zw, aType: aType, aZeroPoint: zaConst, bias: nil)
        let b = packBias(nil, n: n)
        let m = values[a].count / max(k, 1)
        let panels = packed.panels
        let za = Float(zaConst ?? 0)
        let ks = kernels
        return .kernel(outputs: [(.int32, Array(s.dropLast()) + [n])], scratch: [(.float, k), (.float, panels * panelWidth)], packed: zaValue == nil ? [1, 2, 3] : [1, 3]) { l, i, o, sc in
            QuantizedGemmKernel(
                a: l.off(i[0]), aType: aType, aZeroPoint: za, aZeroPointOffset: zaValue.map { l.off($0) }, y: l.off(o[0]), m: m,
                weights: packed, bias: b, output: .int32, exactInFloat: exact, rowScratch: sc[0], accScratch: sc[1], kernels: ks)
        }
    }

    // MARK: - Elementwise and shape

    func lowerBinary<Op: BinaryOperation>(_ node: IRNode, _ ins: [Int], _: Op.Type) throws -> Lowered {
        try requireFloat(node, ins, [0, 1])
        let sa = shape(ins[0]), sb = shape(ins[1])
        guard let out = broadcastShape(sa, sb) else { throw bad(node, "shapes \(sa) and \(sb) do not broadcast") }
        let plan = BroadcastPlan.make(a: sa, b: sb, out: out)
        return .kernel(outputs: [(.float, out)], scratch: []) { l, i, o, _ in
            BinaryKernel<Op>(a: l.off(i[0]), b: l.off(i[1]), y: l.off(o[0]), plan: plan)
        }
    }

    func lowerReshape(_ node: IRNode, _ ins: [Int]) throws -> Lowered {
        guard let target = constant(ins, 1) else { throw fail(node, "Reshape with a runtime shape is not supported") }
        let s = shape(ins[0])
        let allowZero = try node.int("allowzero", 0) == 1
        var out = target.ints
        var inferred: Int? = nil
        for (i, d) in out.enumerated() {
            if d == 0 && !allowZero {
                guard i < s.count else { throw bad(node, "shape \(out) copies a dim the input \(s) does not have") }
                out[i] = s[i]
            } else if d == -1 {
                guard inferred == nil else { throw bad(node, "shape \(out) has more than one -1") }
                inferred = i
            }
        }
        let total = values[ins[0]].count
        if let i = inferred {
            let rest = out.enumerated().filter { $0.offset != i }.reduce(1) { $0 * $1.element }
            guard rest > 0, total % rest == 0 else { throw bad(node, "cannot reshape \(s) to \(target.ints)") }
            out[i] = total / rest
        }
        guard product(out) == total else { throw bad(node, "cannot reshape \(s) to \(target.ints)") }
        return .alias(type(ins[0]), out)
    }

    func lowerReduceMean(_ node: IRNode, _ ins: [Int]) throws -> Lowered {
        try requireFloat(node, ins, [0])
        let s = shape(ins[0])
        var axesList = try node.ints("axes")
        if axesList == nil, let c = constant(ins, 1) { axesList = c.ints }
        if axesList == nil && ins.count > 1 && ins[1] >= 0 { throw fail(node, "runtime axes are not supported") }
        let list = axesList ?? []
        let noop = try node.int("noop_with_empty_axes", 0) == 1
        if list.isEmpty && noop { return .alias(.float, s) }
        var axes = Set<Int>()
        for a in (list.isEmpty ? Array(0..<s.count) : list) {
            guard let n = normalizeAxis(a, rank: s.count) else { throw bad(node, "axis \(a) out of range") }
            axes.insert(n)
        }
        let keep = try node.int("keepdims", 1) == 1
        var out: [Int] = []
        for (d, v) in s.enumerated() {
            if axes.contains(d) { if keep { out.append(1) } } else { out.append(v) }
        }
        return .kernel(outputs: [(.float, out)], scratch: [], packed: [1]) { l, i, o, _ in
            ReduceMeanKernel(x: l.off(i[0]), y: l.off(o[0]), shape: s, axes: axes)
        }
    }

    func lowerArgMax(_ node: IRNode, _ ins: [Int]) throws -> Lowered {
        try requireFloat(node, ins, [0])
        let s = shape(ins[0])
        guard let axis = normalizeAxis(try node.int("axis", 0), rank: s.count) else { throw bad(node, "axis out of range") }
        let keep = try node.int("keepdims", 1) == 1
        var out = s
        if keep { out[axis] = 1 } else { out.remove(at: axis) }
        let outer = product(Array(s[..<axis])), n = s[axis], inner = product(Array(s[(axis + 1)...]))
        let last = try node.int("select_last_index", 0) == 1
        return .kernel(outputs: [(.int64, out)], scratch: []) { l, i, o, _ in
            ArgMaxKernel(x: l.off(i[0]), y: l.off(o[0]), outer: outer, n: n, inner: inner, selectLast: last)
        }
    }

    func lowerArrayFeatureExtractor(_ node: IRNode, _ ins: [Int]) throws -> Lowered {
        let s = shape(ins[0])
        let indexType = type(ins[1])
        guard indexType == .int64 || indexType == .int32 else { throw bad(node, "indices must be int64") }
        let count = values[ins[1]].count
        guard let width = s.last, width > 0 else { throw bad(node, "X must have at least one dim") }
        let out = s.count == 1 ? [1, count] : Array(s.dropLast()) + [count]
        let rows = values[ins[0]].count / width
        let t = type(ins[0])
        return .kernel(outputs: [(t, out)], scratch: []) { l, i, o, _ in
            ArrayFeatureExtractorKernel(
                x: l.off(i[0]), indices: l.off(i[1]), indexType: indexType, y: l.off(o[0]),
                rows: rows, width: width, count: count, elementSize: t.size)
        }
    }

    // MARK: - Convolution and pooling

    /// pads [begin, end] for one spatial dim, from `pads` or `auto_pad`.
    func pads1D(_ node: IRNode, length: Int, kernel: Int, stride: Int, dilation: Int) throws -> (Int, Int) {
        let auto = try node.string("auto_pad", "NOTSET")
        switch auto {
        case "NOTSET":
            let p = try node.ints("pads") ?? [0, 0]
            guard p.count == 2 else { throw fail(node, "only 1-D pads are supported") }
            return (p[0], p[1])
        case "VALID": return (0, 0)
        case "SAME_UPPER", "SAME_LOWER":
            let out = (length + stride - 1) / stride
            let total = max(0, (out - 1) * stride + (kernel - 1) * dilation + 1 - length)
            return auto == "SAME_UPPER" ? (total / 2, total - total / 2) : (total - total / 2, total / 2)
        default: throw bad(node, "auto_pad \(auto)")
        }
    }

    func lowerConv(_ node: IRNode, _ ins: [Int]) throws -> Lowered {
        try requireFloat(node, ins, [0])
        let s = shape(ins[0])
        guard s.count == 3 else { throw fail(node, "only 1-D convolution ([N, C, L] input) is supported, got \(s)") }
        guard let w = constant(ins, 1), w.shape.count == 3 else { throw fail(node, "Conv weights must be a constant [M, C/group, K] tensor") }
        let group = try node.int("group", 1)
        let (batch, c, len) = (s[0], s[1], s[2])
        let (m, cg, kw) = (w.shape[0], w.shape[1], w.shape[2])
        guard group >= 1, c % group == 0, m % group == 0, cg == c / group else {
            throw bad(node, "weights \(w.shape) do not match \(c) input channels in \(group) groups")
        }
        if let ks = try node.ints("kernel_shape"), ks != [kw] { throw bad(node, "kernel_shape \(ks) does not match weights") }
        let stride = (try node.ints("strides") ?? [1]).first ?? 1
        let dilation = (try node.ints("dilations") ?? [1]).first ?? 1
        let (pb, pe) = try pads1D(node, length: len, kernel: kw, stride: stride, dilation: dilation)
        let outLen = (len + pb + pe - dilation * (kw - 1) - 1) / stride + 1
        guard outLen > 0 else { throw bad(node, "output length would be \(outLen)") }
        var bias = [Float](repeating: 0, count: m)
        if let b = constant(ins, 2) { bias = b.floats } else if ins.count > 2 && ins[2] >= 0 { throw fail(node, "a runtime Conv bias is not supported") }
        let geometry = Conv1DKernel.Geometry(
            batch: batch, channels: c, length: len, outChannels: m, kernel: kw, group: group,
            padBegin: pb, padEnd: pe, stride: stride, dilation: dilation, outLength: outLen)
        let weights = w.floats
        let relu = try node.int("relu", 0) == 1
        let ks = kernels
        return .kernel(outputs: [(.float, [batch, m, outLen])], scratch: [(.float, c * geometry.paddedLength + panelWidth)], packed: [1, 2]) { l, i, o, sc in
            Conv1DKernel(x: l.off(i[0]), y: l.off(o[0]), scratch: sc[0], geometry: geometry, weights: weights, bias: bias, relu: relu, kernels: ks)
        }
    }

    func lowerMaxPool(_ node: IRNode, _ ins: [Int]) throws -> Lowered {
        try requireFloat(node, ins, [0])
        let s = shape(ins[0])
        guard s.count == 3 else { throw fail(node, "only 1-D pooling ([N, C, L] input) is supported, got \(s)") }
        if node.outputs.count > 1 && !node.outputs[1].isEmpty { throw fail(node, "the Indices output is not supported") }
        guard let ks = try node.ints("kernel_shape"), ks.count == 1 else { throw bad(node, "kernel_shape must have one dim") }
        let k = ks[0]
        let stride = (try node.ints("strides") ?? [1]).first ?? 1
        let dilation = (try node.ints("dilations") ?? [1]).first ?? 1
        let (pb, pe) = try pads1D(node, length: s[2], kernel: k, stride: stride, dilation: dilation)
        let span = s[2] + pb + pe - ((k - 1) * dilation + 1)
        var outLen: Int
        if try node.int("ceil_mode", 0) == 1 {
            outLen = (span + stride - 1) / stride + 1
            if (outLen - 1) * stride >= s[2] + pb { outLen -= 1 }
        } else {
            outLen = span / stride + 1
        }
        guard outLen > 0 else { throw bad(node, "output length would be \(outLen)") }
        let planes = s[0] * s[1], len = s[2]
        let kernelSet = kernels
        return .kernel(outputs: [(.float, [s[0], s[1], outLen])], scratch: []) { l, i, o, _ in
            MaxPool1DKernel(
                x: l.off(i[0]), y: l.off(o[0]), planes: planes, length: len, outLength: outLen, kernel: k, stride: stride, padBegin: pb,
                dilation: dilation, kernels: kernelSet)
        }
    }

    func lowerBatchNorm(_ node: IRNode, _ ins: [Int]) throws -> Lowered {
        try requireFloat(node, ins, [0])
        if try node.int("training_mode", 0) == 1 { throw fail(node, "training_mode=1 is not supported") }
        let s = shape(ins[0])
        guard s.count >= 2 else { throw bad(node, "input must be [N, C, ...]") }
        guard let scale = constant(ins, 1), let beta = constant(ins, 2), let mean = constant(ins, 3), let variance = constant(ins, 4),
            [scale.count, beta.count, mean.count, variance.count].allSatisfy({ $0 == s[1] })
        else { throw fail(node, "BatchNormalization needs constant per-channel scale, B, mean and var") }
        let eps = Double(try node.float("epsilon", 1e-5))
        let a = (0..<s[1]).map { Float(scale.values[$0] / (variance.values[$0] + eps).squareRoot()) }
        let t = (0..<s[1]).map { Float(beta.values[$0]) - Float(mean.values[$0]) * a[$0] }
        let batch = s[0], channels = s[1], spatial = product(Array(s[2...]))
        return .kernel(outputs: [(.float, s)], scratch: [], packed: [1, 2, 3, 4]) { l, i, o, _ in
            ChannelAffineKernel(x: l.off(i[0]), y: l.off(o[0]), batch: batch, channels: channels, spatial: spatial, scale: a, shift: t)
        }
    }

    // MARK: - Quantize / dequantize

    func lowerQuantize(_ node: IRNode, _ ins: [Int]) throws -> Lowered {
        let quantize = node.op == "QuantizeLinear"
        let s = shape(ins[0])
        guard let scale = constant(ins, 1) else { throw fail(node, "a runtime scale is not supported") }
        let zp = constant(ins, 2)
        if zp == nil && ins.count > 2 && ins[2] >= 0 { throw fail(node, "a runtime zero point is not supported") }
        var outer = 1, channels = 1, inner = values[ins[0]].count
        if scale.count > 1 {
            guard let axis = normalizeAxis(try node.int("axis", 1), rank: s.count), s[axis] == scale.count else {
                throw bad(node, "per-axis scale of \(scale.count) values does not match input \(s)")
            }
            outer = product(Array(s[..<axis])); channels = s[axis]; inner = product(Array(s[(axis + 1)...]))
        }
        guard zp == nil || zp!.count == scale.count else { throw bad(node, "scale and zero point sizes differ") }
        let scales = scale.floats
        let zps = zp?.floats ?? Array(repeating: 0, count: scale.count)
        if quantize {
            try requireFloat(node, ins, [0])
            let t = zp?.type ?? .uint8
            guard t.isQuantized else { throw fail(node, "quantizing to \(t) is not supported (uint8 and int8 are)") }
            let ks = kernels
            return .kernel(outputs: [(t, s)], scratch: [], packed: [1, 2]) { l, i, o, _ in
                QuantizeKernel(x: l.off(i[0]), y: l.off(o[0]), type: t, outer: outer, channels: channels, inner: inner, scales: scales, zeroPoints: zps, kernels: ks)
            }
        }
        let t = type(ins[0])
        guard t.isQuantized || t == .int32 else { throw fail(node, "dequantizing \(t) is not supported") }
        return .kernel(outputs: [(.float, s)], scratch: [], packed: [1, 2]) { l, i, o, _ in
            DequantizeKernel(x: l.off(i[0]), type: t, y: l.off(o[0]), outer: outer, channels: channels, inner: inner, scales: scales, zeroPoints: zps)
        }
    }
}
