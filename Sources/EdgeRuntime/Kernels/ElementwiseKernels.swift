#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Binary (Add, Sub, Mul, Div) with numpy broadcasting

protocol BinaryOperation {
    static func apply(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float>
    static func apply(_ a: Float, _ b: Float) -> Float
}

enum AddOp: BinaryOperation {
    @inline(__always) static func apply(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> { a + b }
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a + b }
}
enum SubOp: BinaryOperation {
    @inline(__always) static func apply(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> { a - b }
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a - b }
}
enum MulOp: BinaryOperation {
    @inline(__always) static func apply(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> { a * b }
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a * b }
}
enum DivOp: BinaryOperation {
    @inline(__always) static func apply(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> { a / b }
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a / b }
}

/// How the two operands of a broadcasting op line up, decided at load.
enum BroadcastPlan: Sendable {
    /// Same shape: one flat loop.
    case same(count: Int)
    /// B (or A, when `scalarIsA`) is a single value.
    case scalar(count: Int, scalarIsA: Bool)
    /// B is a row repeated over `rows` rows of A ([.., n] against [n]).
    case rowB(rows: Int, n: Int)
    /// Anything else: strides per output dim (0 where an operand broadcasts).
    case general(shape: [Int], aStrides: [Int], bStrides: [Int])

    static func make(a: [Int], b: [Int], out: [Int]) -> BroadcastPlan {
        let count = product(out)
        if a == b { return .same(count: count) }
        if product(b) == 1 { return .scalar(count: count, scalarIsA: false) }
        if product(a) == 1 { return .scalar(count: count, scalarIsA: true) }
        let r = out.count
        let pa = Array(repeating: 1, count: r - a.count) + a
        let pb = Array(repeating: 1, count: r - b.count) + b
        if pa == out, let last = out.last, pb.last == last, pb.dropLast().allSatisfy({ $0 == 1 }) {
            return .rowB(rows: count / max(last, 1), n: last)
        }
        func strides(_ s: [Int]) -> [Int] {
            var st = Array(repeating: 0, count: r)
            var acc = 1
            for d in stride(from: r - 1, through: 0, by: -1) {
                st[d] = s[d] == 1 ? 0 : acc
                acc *= s[d]
            }
            return st
        }
        return .general(shape: out, aStrides: strides(pa), bStrides: strides(pb))
    }
}

/// numpy broadcast of two shapes, or nil when they do not broadcast.
func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int]? {
    let r = max(a.count, b.count)
    let pa = Array(repeating: 1, count: r - a.count) + a
    let pb = Array(repeating: 1, count: r - b.count) + b
    var out: [Int] = []
    for (x, y) in zip(pa, pb) {
        if x == y || y == 1 { out.append(x) } else if x == 1 { out.append(y) } else { return nil }
    }
    return out
}

final class BinaryKernel<Op: BinaryOperation>: Kernel {
    let a: Int, b: Int, y: Int
    let plan: BroadcastPlan

    init(a: Int, b: Int, y: Int, plan: BroadcastPlan) {
        self.a = a; self.b = b; self.y = y; self.plan = plan
    }

    func run(_ m: Memory) {
        let pa = m.f32(a), pb = m.f32(b), py = m.f32(y)
        switch plan {
        case .same(let count):
            var i = 0
            while i + panelWidth <= count {
                storeF(Op.apply(loadF(pa + i), loadF(pb + i)), py + i)
                i += panelWidth
            }
            while i < count { py[i] = Op.apply(pa[i], pb[i]); i += 1 }
        case .scalar(let count, let scalarIsA):
            let s = scalarIsA ? pa[0] : pb[0]
            let sv = SIMD16<Float>(repeating: s)
            let v = scalarIsA ? pb : pa
            var i = 0
            while i + panelWidth <= count {
                storeF(scalarIsA ? Op.apply(sv, loadF(v + i)) : Op.apply(loadF(v + i), sv), py + i)
                i += panelWidth
            }
            while i < count { py[i] = scalarIsA ? Op.apply(s, v[i]) : Op.apply(v[i], s); i += 1 }
        case .rowB(let rows, let n):
            for r in 0..<rows {
                let ra = pa + r * n, ry = py + r * n
                var i = 0
                while i + panelWidth <= n {
                    storeF(Op.apply(loadF(ra + i), loadF(pb + i)), ry + i)
                    i += panelWidth
                }
                while i < n { ry[i] = Op.apply(ra[i], pb[i]); i += 1 }
            }
        case .general(let shape, let aStrides, let bStrides):
            let rank = shape.count
            let count = product(shape)
            withUnsafeTemporaryAllocation(of: Int.self, capacity: rank) { idx in
                for d in 0..<rank { idx[d] = 0 }
                var ia = 0, ib = 0
                for i in 0..<count {
                    py[i] = Op.apply(pa[ia], pb[ib])
                    var d = rank - 1
                    while d >= 0 {
                        idx[d] += 1
                        ia += aStrides[d]
                        ib += bStrides[d]
                        if idx[d] < shape[d] { break }
                        ia -= aStrides[d] * shape[d]
                        ib -= bStrides[d] * shape[d]
                        idx[d] = 0
                        d -= 1
                    }
                }
            }
        }
    }
}

// MARK: - Unary

enum UnaryOp: Sendable { case relu, sigmoid, tanh }

final class UnaryKernel: Kernel {
    let x: Int, y: Int, count: Int
    let op: UnaryOp

    init(x: Int, y: Int, count: Int, op: UnaryOp) {
        self.x = x; self.y = y; self.count = count; self.op = op
    }

    func run(_ m: Memory) {
        let px = m.f32(x), py = m.f32(y)
        switch op {
        case .relu:
            var i = 0
            while i + panelWidth <= count {
                storeF(relu(loadF(px + i)), py + i)
                i += panelWidth
            }
            while i < count { py[i] = px[i] < 0 ? 0 : px[i]; i += 1 }
        case .sigmoid:
            for i in 0..<count {
                let v = px[i]
                // Stable for large |v|: never exponentiates a large positive number.
                if v >= 0 {
                    py[i] = 1 / (1 + expf(-v))
                } else {
                    let e = expf(v)
                    py[i] = e / (1 + e)
                }
            }
        case .tanh:
            for i in 0..<count { py[i] = tanhf(px[i]) }
        }
    }
}

// MARK: - Softmax, ReduceMean

/// Softmax over one axis: the input viewed as [outer, n, inner]. The common case (the axis
/// is the last one) runs 16 lanes at a time with `kernelSoftmaxRow` (a Cephes `fastExp`,
/// ~2 ulp; EdgeKernels and its AVX2 copy).
final class SoftmaxKernel: Kernel {
    let x: Int, y: Int, outer: Int, n: Int, inner: Int
    let row: KernelSet.SoftmaxRow

    init(x: Int, y: Int, outer: Int, n: Int, inner: Int, kernels: KernelSet) {
        self.x = x; self.y = y; self.outer = outer; self.n = n; self.inner = inner
        row = kernels.softmaxRow
    }

    func run(_ m: Memory) {
        let px = m.f32(x), py = m.f32(y)
        if inner == 1 {
            for o in 0..<outer { row(px + o * n, py + o * n, n) }
            return
        }
        for o in 0..<outer {
            for i in 0..<inner {
                let base = o * n * inner + i
                var mx = -Float.infinity
                for j in 0..<n { mx = max(mx, px[base + j * inner]) }
                var sum: Float = 0
                for j in 0..<n {
                    let e = expf(px[base + j * inner] - mx)
                    py[base + j * inner] = e
                    sum += e
                }
                let inv = 1 / sum
                for j in 0..<n { py[base + j * inner] *= inv }
            }
        }
    }
}

/// Mean over a set of axes, computed as a sum into the output (output strides are 0 on the
/// reduced axes) and one scale.
final class ReduceMeanKernel: Kernel {
    let x: Int, y: Int
    let shape: [Int]
    let outStrides: [Int]
    let outCount: Int
    let scale: Float

    init(x: Int, y: Int, shape: [Int], axes: Set<Int>) {
        self.x = x; self.y = y; self.shape = shape
        var st = Array(repeating: 0, count: shape.count)
        var acc = 1
        for d in stride(from: shape.count - 1, through: 0, by: -1) where !axes.contains(d) {
            st[d] = acc
            acc *= shape[d]
        }
        outStrides = st
        outCount = acc
        let reduced = axes.reduce(1) { $0 * shape[$1] }
        scale = 1 / Float(max(reduced, 1))
        let trailing = !axes.isEmpty && axes == Set((shape.count - axes.count)..<shape.count)
        innerReduction = trailing ? reduced : nil
    }

    /// Elements per output when the reduced axes are exactly the trailing ones.
    let innerReduction: Int?

    func run(_ m: Memory) {
        let px = m.f32(x), py = m.f32(y)
        if let inner = innerReduction {
            // The reduced axes are the trailing ones: one contiguous sum per output.
            for o in 0..<outCount {
                let src = px + o * inner
                var acc = SIMD16<Float>()
                var i = 0
                while i + panelWidth <= inner {
                    acc += loadF(src + i)
                    i += panelWidth
                }
                var s = acc.sum()
                while i < inner { s += src[i]; i += 1 }
                py[o] = s * scale
            }
            return
        }
        for i in 0..<outCount { py[i] = 0 }
        let rank = shape.count
        let count = product(shape)
        withUnsafeTemporaryAllocation(of: Int.self, capacity: max(rank, 1)) { idx in
            for d in 0..<rank { idx[d] = 0 }
            var o = 0
            for i in 0..<count {
                py[o] += px[i]
                var d = rank - 1
                while d >= 0 {
                    idx[d] += 1
                    o += outStrides[d]
                    if idx[d] < shape[d] { break }
                    o -= outStrides[d] * shape[d]
                    idx[d] = 0
                    d -= 1
                }
            }
        }
        for i in 0..<outCount { py[i] *= scale }
    }
}

// MARK: - Per-channel affine (BatchNormalization that could not be folded)

/// y[n, c, ...] = x[n, c, ...] * scale[c] + shift[c].
final class ChannelAffineKernel: Kernel {
    let x: Int, y: Int, batch: Int, channels: Int, spatial: Int
    let scale: PackedBuffer<Float>, shift: PackedBuffer<Float>

    init(x: Int, y: Int, batch: Int, channels: Int, spatial: Int, scale: [Float], shift: [Float]) {
        self.x = x; self.y = y; self.batch = batch; self.channels = channels; self.spatial = spatial
        self.scale = PackedBuffer(scale)
        self.shift = PackedBuffer(shift)
    }

    func run(_ m: Memory) {
        let px = m.f32(x), py = m.f32(y)
        for n in 0..<batch {
            for c in 0..<channels {
                let s = scale.pointer[c], t = shift.pointer[c]
                let base = (n * channels + c) * spatial
                for i in 0..<spatial { py[base + i] = px[base + i] * s + t }
            }
        }
    }
}
