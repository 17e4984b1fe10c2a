/// Reads element `i` of a typed region as Double (load-time folding and the generic paths).
@inline(__always)
func readElement(_ m: Memory, _ type: ElementType, _ offset: Int, _ i: Int) -> Double {
    switch type {
    case .float: Double(m.f32(offset)[i])
    case .double: m.f64(offset)[i]
    case .uint8, .bool: Double(m.u8(offset)[i])
    case .int8: Double(m.i8(offset)[i])
    case .int32: Double(m.i32(offset)[i])
    case .int64: Double(m.i64(offset)[i])
    }
}

/// Writes `v` as `type`: integers truncate toward zero and saturate (NaN becomes 0), bool is
/// v != 0.
@inline(__always)
func writeElement(_ m: Memory, _ type: ElementType, _ offset: Int, _ i: Int, _ v: Double) {
    func int(_ lo: Double, _ hi: Double) -> Double { v.isNaN ? 0 : min(max(v.rounded(.towardZero), lo), hi) }
    switch type {
    case .float: m.f32(offset)[i] = Float(v)
    case .double: m.f64(offset)[i] = v
    case .uint8: m.u8(offset)[i] = UInt8(int(0, 255))
    case .bool: m.u8(offset)[i] = v != 0 ? 1 : 0
    case .int8: m.i8(offset)[i] = Int8(int(-128, 127))
    case .int32: m.i32(offset)[i] = Int32(int(-2_147_483_648, 2_147_483_647))
    case .int64: m.i64(offset)[i] = Int64(int(-9.223372036854775e18, 9.223372036854775e18))
    }
}

/// Cast between any two supported element types (fast path int32 -> float).
final class CastKernel: Kernel {
    let x: Int, from: ElementType, y: Int, to: ElementType, count: Int

    init(x: Int, from: ElementType, y: Int, to: ElementType, count: Int) {
        self.x = x; self.from = from; self.y = y; self.to = to; self.count = count
    }

    func run(_ m: Memory) {
        if from == .int32 && to == .float {
            let px = m.i32(x), py = m.f32(y)
            for i in 0..<count { py[i] = Float(px[i]) }
            return
        }
        if from == .float && to == .double {
            let px = m.f32(x), py = m.f64(y)
            for i in 0..<count { py[i] = Double(px[i]) }
            return
        }
        for i in 0..<count { writeElement(m, to, y, i, readElement(m, from, x, i)) }
    }
}

/// Copies a value into another region (an Identity or Reshape whose output must not share
/// its input's region, e.g. a graph output that is also a graph input).
final class CopyKernel: Kernel {
    let x: Int, y: Int, bytes: Int

    init(x: Int, y: Int, bytes: Int) { self.x = x; self.y = y; self.bytes = bytes }

    func run(_ m: Memory) {
        (m.base + y).copyMemory(from: m.base + x, byteCount: bytes)
    }
}

/// ArgMax over one axis of a float tensor viewed as [outer, n, inner]; int64 output.
final class ArgMaxKernel: Kernel {
    let x: Int, y: Int, outer: Int, n: Int, inner: Int, selectLast: Bool

    init(x: Int, y: Int, outer: Int, n: Int, inner: Int, selectLast: Bool) {
        self.x = x; self.y = y; self.outer = outer; self.n = n; self.inner = inner; self.selectLast = selectLast
    }

    func run(_ m: Memory) {
        let px = m.f32(x), py = m.i64(y)
        for o in 0..<outer {
            for i in 0..<inner {
                let base = o * n * inner + i
                var best = px[base], at = 0
                for j in 1..<max(n, 1) {
                    let v = px[base + j * inner]
                    if v > best || (selectLast && v == best) { best = v; at = j }
                }
                py[o * inner + i] = Int64(at)
            }
        }
    }
}

/// ai.onnx.ml ArrayFeatureExtractor: Y[..., j] = X[..., indices[j]] (last axis), any type.
final class ArrayFeatureExtractorKernel: Kernel {
    let x: Int, indices: Int, indexType: ElementType, y: Int
    let rows: Int, width: Int, count: Int, elementSize: Int

    init(x: Int, indices: Int, indexType: ElementType, y: Int, rows: Int, width: Int, count: Int, elementSize: Int) {
        self.x = x; self.indices = indices; self.indexType = indexType; self.y = y
        self.rows = rows; self.width = width; self.count = count; self.elementSize = elementSize
    }

    func run(_ m: Memory) {
        for r in 0..<rows {
            for j in 0..<count {
                var idx = Int(readElement(m, indexType, indices, j))
                idx = min(max(idx, 0), width - 1)  // onnxruntime rejects out-of-range; we clamp
                (m.base + y + (r * count + j) * elementSize)
                    .copyMemory(from: m.base + x + (r * width + idx) * elementSize, byteCount: elementSize)
            }
        }
    }
}

// MARK: - Quantization

/// QuantizeLinear: y = saturate(round-half-even(x / scale) + zero point), per tensor or per
/// axis (x viewed as [outer, channels, inner]).
final class QuantizeKernel: Kernel {
    let x: Int, y: Int, type: ElementType
    let outer: Int, channels: Int, inner: Int
    let scales: PackedBuffer<Float>, zeroPoints: PackedBuffer<Float>
    let quantize: KernelSet.Quantize

    init(
        x: Int, y: Int, type: ElementType, outer: Int, channels: Int, inner: Int, scales: [Float], zeroPoints: [Float],
        kernels: KernelSet
    ) {
        self.x = x; self.y = y; self.type = type
        self.outer = outer; self.channels = channels; self.inner = inner
        self.scales = PackedBuffer(scales); self.zeroPoints = PackedBuffer(zeroPoints)
        quantize = kernels.quantize
    }

    func run(_ m: Memory) {
        let px = m.f32(x)
        let (lo, hi) = type.quantRange
        let lof = Float(lo), hif = Float(hi)
        for o in 0..<outer {
            for c in 0..<channels {
                let base = (o * channels + c) * inner
                // uint8 or int8: one byte per value at the same offsets.
                quantize(px + base, m.base + y + base, inner, scales.pointer[c], true, zeroPoints.pointer[c], lof, hif)
            }
        }
    }
}

/// DequantizeLinear: y = (x - zero point) * scale, per tensor or per axis; x is uint8, int8
/// or int32.
final class DequantizeKernel: Kernel {
    let x: Int, type: ElementType, y: Int
    let outer: Int, channels: Int, inner: Int
    let scales: PackedBuffer<Float>, zeroPoints: PackedBuffer<Float>

    init(x: Int, type: ElementType, y: Int, outer: Int, channels: Int, inner: Int, scales: [Float], zeroPoints: [Float]) {
        self.x = x; self.type = type; self.y = y
        self.outer = outer; self.channels = channels; self.inner = inner
        self.scales = PackedBuffer(scales); self.zeroPoints = PackedBuffer(zeroPoints)
    }

    func run(_ m: Memory) {
        let py = m.f32(y)
        for o in 0..<outer {
            for c in 0..<channels {
                let s = scales.pointer[c], z = zeroPoints.pointer[c]
                let base = (o * channels + c) * inner
                switch type {
                case .uint8:
                    let px = m.u8(x)
                    for i in base..<(base + inner) { py[i] = (Float(px[i]) - z) * s }
                case .int8:
                    let px = m.i8(x)
                    for i in base..<(base + inner) { py[i] = (Float(px[i]) - z) * s }
                default:
                    let px = m.i32(x)
                    for i in base..<(base + inner) { py[i] = Float(Int64(px[i]) - Int64(z)) * s }
                }
            }
        }
    }
}

/// DynamicQuantizeLinear (uint8), as onnxruntime computes it: range [min(0, min x),
/// max(0, max x)], scale = range / 255 (1 when the range is empty), zero point =
/// round-half-away(clamp(-min / scale)), y = saturate(round-half-even(x / scale) + zp).
final class DynamicQuantizeKernel: Kernel {
    let x: Int, y: Int, scale: Int, zeroPoint: Int, count: Int
    let quantize: KernelSet.Quantize

    init(x: Int, y: Int, scale: Int, zeroPoint: Int, count: Int, kernels: KernelSet) {
        self.x = x; self.y = y; self.scale = scale; self.zeroPoint = zeroPoint; self.count = count
        quantize = kernels.quantize
    }

    func run(_ m: Memory) {
        let px = m.f32(x)
        let (s, z) = DynamicQuantizeKernel.parameters(px, count)
        m.f32(scale)[0] = s
        m.u8(zeroPoint)[0] = UInt8(z)
        quantize(px, m.base + y, count, s, true, z, 0, 255)
    }

    @inline(__always)
    static func parameters(_ px: UnsafePointer<Float>, _ count: Int) -> (scale: Float, zeroPoint: Float) {
        var lo: Float = 0, hi: Float = 0
        for i in 0..<count {
            lo = min(lo, px[i])
            hi = max(hi, px[i])
        }
        let s: Float = hi == lo ? 1 : (hi - lo) / 255
        guard s.isFinite else { return (1, 0) }  // NaN or infinite inputs: no meaningful range
        let z = min(max(0 - lo / s, 0), 255).rounded(.toNearestOrAwayFromZero)
        return (s, z)
    }
}
