// MARK: - Packed weight panels

/// A constant [K, N] matrix packed for row-times-matrix products: ceil(N/16) panels, each
/// [K][16] contiguous (columns past N are zero), so the inner loop reads weights
/// sequentially and keeps 16 or 32 output columns in registers.
struct PanelMatrix: Sendable {
    enum Storage: Sendable {
        case f32(PackedBuffer<Float>)
        /// int8 weights with zero point 0, widened to float in registers.
        case i8(PackedBuffer<Int8>)
    }

    let k: Int
    let n: Int
    let panels: Int
    let storage: Storage

    /// `element(kk, nn)` gives B[kk][nn] (the caller folds transposition and scaling into it).
    static func packF32(k: Int, n: Int, _ element: (Int, Int) -> Float) -> PanelMatrix {
        let panels = (n + panelWidth - 1) / panelWidth
        let buffer = PackedBuffer<Float>(count: panels * k * panelWidth) { p in
            for panel in 0..<panels {
                for kk in 0..<k {
                    for j in 0..<panelWidth {
                        let col = panel * panelWidth + j
                        (p + (panel * k + kk) * panelWidth + j).initialize(to: col < n ? element(kk, col) : 0)
                    }
                }
            }
        }
        return PanelMatrix(k: k, n: n, panels: panels, storage: .f32(buffer))
    }

    static func packI8(k: Int, n: Int, _ element: (Int, Int) -> Int8) -> PanelMatrix {
        let panels = (n + panelWidth - 1) / panelWidth
        let buffer = PackedBuffer<Int8>(count: panels * k * panelWidth) { p in
            for panel in 0..<panels {
                for kk in 0..<k {
                    for j in 0..<panelWidth {
                        let col = panel * panelWidth + j
                        (p + (panel * k + kk) * panelWidth + j).initialize(to: col < n ? element(kk, col) : 0)
                    }
                }
            }
        }
        return PanelMatrix(k: k, n: n, panels: panels, storage: .i8(buffer))
    }

    var bytes: Int {
        switch storage {
        case .f32(let b): b.bytes
        case .i8(let b): b.bytes
        }
    }

    /// B[kk][col] as an exact integer (quantized weights only).
    func integer(_ kk: Int, _ col: Int) -> Int64 {
        let i = ((col / panelWidth) * k + kk) * panelWidth + col % panelWidth
        switch storage {
        case .f32(let b): return Int64(b.pointer[i])
        case .i8(let b): return Int64(b.pointer[i])
        }
    }
}

/// Bias padded to whole panels (zeros when there is none).
func packBias(_ bias: [Float]?, n: Int) -> PackedBuffer<Float> {
    let padded = ((n + panelWidth - 1) / panelWidth) * panelWidth
    return PackedBuffer<Float>(count: padded) { p in
        for j in 0..<padded { (p + j).initialize(to: j < n ? (bias?[j] ?? 0) : 0) }
    }
}

// MARK: - Row times panels

// The products themselves (`kernelGemvF32`, `kernelGemvI8`) live in EdgeKernels and its AVX2
// copy; each kernel below holds the variant picked at load (`KernelSet`).

// MARK: - fp32 Gemm / MatMul with constant B

/// Y[M,N] = A[M,K] · B + bias, optionally followed by Relu: Gemm (alpha, beta, transB and a
/// folded BatchNormalization already applied to the packed B and bias) and MatMul/MatMul+Add
/// with a constant B.
final class GemmKernel: Kernel {
    let a: Int, y: Int
    let m: Int
    let weights: PanelMatrix
    let bias: PackedBuffer<Float>
    let relu: Bool
    let w: PackedBuffer<Float>
    let gemv: KernelSet.GemvF32

    init(a: Int, y: Int, m: Int, weights: PanelMatrix, bias: PackedBuffer<Float>, relu: Bool, kernels: KernelSet) {
        self.a = a
        self.y = y
        self.m = m
        self.weights = weights
        self.bias = bias
        self.relu = relu
        gemv = kernels.gemvF32
        guard case .f32(let buffer) = weights.storage else { preconditionFailure("fp32 Gemm needs float panels") }
        w = buffer
    }

    var packedBytes: Int { weights.bytes + bias.bytes }

    func run(_ mem: Memory) {
        let x = mem.f32(a), out = mem.f32(y)
        let k = weights.k, n = weights.n
        for row in 0..<m {
            gemv(x + row * k, w.pointer, bias.pointer, out + row * n, k, n, weights.panels, relu)
        }
    }
}

/// Y = A · B for two runtime matrices ([..., M, K] x [..., K, N], equal batch dims or a
/// 2-D B). Plain loops: no fixture needs it on a hot path.
final class MatMulDynamicKernel: Kernel {
    let a: Int, b: Int, y: Int
    let batch: Int, m: Int, k: Int, n: Int
    let bBatched: Bool

    init(a: Int, b: Int, y: Int, batch: Int, m: Int, k: Int, n: Int, bBatched: Bool) {
        self.a = a; self.b = b; self.y = y
        self.batch = batch; self.m = m; self.k = k; self.n = n
        self.bBatched = bBatched
    }

    func run(_ mem: Memory) {
        let pa = mem.f32(a), pb = mem.f32(b), py = mem.f32(y)
        for t in 0..<batch {
            let aa = pa + t * m * k, bb = pb + (bBatched ? t * k * n : 0), yy = py + t * m * n
            for i in 0..<m {
                for j in 0..<n { yy[i * n + j] = 0 }
                for kk in 0..<k {
                    let av = aa[i * k + kk]
                    for j in 0..<n { yy[i * n + j] += av * bb[kk * n + j] }
                }
            }
        }
    }
}

// MARK: - Quantized

/// How a quantized kernel hands its int32 accumulators on.
enum QuantizedOutput: Sendable {
    /// Requantize: round-half-even(acc * multiplier) + zeroPoint, saturated (a fused
    /// QuantizeLinear after the op).
    case quantized(ElementType, multiplier: Float, zeroPoint: Float)
    /// Dequantize: acc * scale (no QuantizeLinear after the op).
    case float(scale: Float)
    /// The raw int32 accumulators (MatMulInteger).
    case int32
}

/// Converts a quantized row to float (q - zero point), exactly.
@inline(__always)
func dequantizeRow(_ m: Memory, type: ElementType, offset: Int, count: Int, zeroPoint: Float, into dst: UnsafeMutablePointer<Float>) {
    switch type {
    case .uint8:
        let src = m.u8(offset)
        for i in 0..<count { dst[i] = Float(src[i]) - zeroPoint }
    default:
        let src = m.i8(offset)
        for i in 0..<count { dst[i] = Float(src[i]) - zeroPoint }
    }
}

/// The int8 matrix product behind QDQ Gemm/MatMul (DequantizeLinear on A, B and bias, the op,
/// QuantizeLinear on Y, fused at load) and MatMulInteger. A is a runtime uint8/int8 tensor;
/// B constant int8 panels; accumulation is exact (see `kernelGemvI8`; larger products use the
/// scalar int64 path).
final class QuantizedGemmKernel: Kernel {
    let a: Int, aType: ElementType
    /// The A zero point: a constant, or the offset of a runtime scalar (DynamicQuantizeLinear).
    let aZeroPoint: Float
    let aZeroPointOffset: Int?
    let y: Int
    let m: Int
    let weights: PanelMatrix
    /// Integer bias (already in accumulator units), padded.
    let bias: PackedBuffer<Float>
    let output: QuantizedOutput
    let exactInFloat: Bool
    /// Scratch: one dequantized A row (K floats) and one accumulator row (panels x 16).
    let rowScratch: Int, accScratch: Int
    let gemvF32: KernelSet.GemvF32, gemvI8: KernelSet.GemvI8
    let quantize: KernelSet.Quantize

    init(
        a: Int, aType: ElementType, aZeroPoint: Float, aZeroPointOffset: Int?, y: Int, m: Int,
        weights: PanelMatrix, bias: PackedBuffer<Float>, output: QuantizedOutput, exactInFloat: Bool,
        rowScratch: Int, accScratch: Int, kernels: KernelSet
    ) {
        self.a = a; self.aType = aType; self.aZeroPoint = aZeroPoint; self.aZeroPointOffset = aZeroPointOffset
        self.y = y; self.m = m; self.weights = weights; self.bias = bias; self.output = output
        self.exactInFloat = exactInFloat; self.rowScratch = rowScratch; self.accScratch = accScratch
        gemvF32 = kernels.gemvF32; gemvI8 = kernels.gemvI8; quantize = kernels.quantize
    }

    var packedBytes: Int { weights.bytes + bias.bytes }

    func run(_ mem: Memory) {
        let k = weights.k, n = weights.n
        let row = mem.f32(rowScratch), acc = mem.f32(accScratch)
        var za = aZeroPoint
        if let off = aZeroPointOffset {
            za = aType == .uint8 ? Float(mem.u8(off)[0]) : Float(mem.i8(off)[0])
        }
        for r in 0..<m {
            dequantizeRow(mem, type: aType, offset: a + r * k * aType.size, count: k, zeroPoint: za, into: row)
            if exactInFloat {
                switch weights.storage {
                case .i8(let w): gemvI8(row, w.pointer, bias.pointer, acc, k, n, weights.panels)
                case .f32(let w): gemvF32(row, w.pointer, bias.pointer, acc, k, n, weights.panels, false)
                }
            } else {
                for col in 0..<n {
                    var s = Int64(bias.pointer[col])
                    for kk in 0..<k { s += Int64(row[kk]) * weights.integer(kk, col) }
                    if case .int32 = output {
                        mem.i32(y)[r * n + col] = Int32(truncatingIfNeeded: s)
                    }
                    acc[col] = Float(s)  // beyond 2^24 this rounds, as float requantization would
                }
                if case .int32 = output { continue }
            }
            switch output {
            case .quantized(let type, let multiplier, let zeroPoint):
                // uint8 or int8: one byte per value at the same offsets.
                let (lo, hi) = type.quantRange
                quantize(acc, mem.base + y + r * n, n, multiplier, false, zeroPoint, Float(lo), Float(hi))
            case .float(let scale):
                let out = mem.f32(y) + r * n
                for j in 0..<n { out[j] = acc[j] * scale }
            case .int32:
                let out = mem.i32(y) + r * n
                for j in 0..<n { out[j] = Int32(acc[j]) }
            }
        }
    }
}

/// quantize_dynamic's MatMul: DynamicQuantizeLinear of the whole input (uint8), the exact
/// integer product with constant weights, then `acc * (x_scale * w_scale) + bias` in float
/// (the same float operations as the unfused graph), optionally Relu.
final class DynamicQuantizedDenseKernel: Kernel {
    let x: Int, y: Int, count: Int
    let weights: PanelMatrix
    let weightScale: Float
    let bias: PackedBuffer<Float>
    let zeroBias: PackedBuffer<Float>
    let relu: Bool
    let exactInFloat: Bool
    let rowScratch: Int, accScratch: Int
    let gemvF32: KernelSet.GemvF32, gemvI8: KernelSet.GemvI8

    init(
        x: Int, y: Int, count: Int, weights: PanelMatrix, weightScale: Float, bias: PackedBuffer<Float>, relu: Bool,
        exactInFloat: Bool, rowScratch: Int, accScratch: Int, kernels: KernelSet
    ) {
        self.x = x; self.y = y; self.count = count; self.weights = weights; self.weightScale = weightScale
        self.bias = bias; self.relu = relu; self.exactInFloat = exactInFloat
        self.rowScratch = rowScratch; self.accScratch = accScratch
        gemvF32 = kernels.gemvF32; gemvI8 = kernels.gemvI8
        zeroBias = packBias(nil, n: weights.n)
    }

    var packedBytes: Int { weights.bytes + bias.bytes }

    func run(_ mem: Memory) {
        let k = weights.k, n = weights.n
        let px = mem.f32(x), out = mem.f32(y)
        let row = mem.f32(rowScratch), acc = mem.f32(accScratch)
        let (s, z) = DynamicQuantizeKernel.parameters(px, count)
        let scale = s * weightScale
        for r in 0..<(count / max(k, 1)) {
            let src = px + r * k
            for i in 0..<k { row[i] = min(max(roundHalfEven(src[i] / s) + z, 0), 255) - z }
            if exactInFloat {
                switch weights.storage {
                case .i8(let w): gemvI8(row, w.pointer, zeroBias.pointer, acc, k, n, weights.panels)
                case .f32(let w): gemvF32(row, w.pointer, zeroBias.pointer, acc, k, n, weights.panels, false)
                }
            } else {
                for col in 0..<n {
                    var t: Int64 = 0
                    for kk in 0..<k { t += Int64(row[kk]) * weights.integer(kk, col) }
                    acc[col] = Float(Int32(truncatingIfNeeded: t))
                }
            }
            let dst = out + r * n
            for j in 0..<n {
                let v = acc[j] * scale + bias.pointer[j]
                dst[j] = relu && v < 0 ? 0 : v
            }
        }
    }
}
