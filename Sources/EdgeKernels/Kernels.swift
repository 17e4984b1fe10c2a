// The hot loops of EdgeRuntime (issue 7), compiled twice: this module (EdgeKernels) for the
// build's baseline target, and EdgeKernelsAVX2, whose Sources directory is a relative symlink
// to this file, with `-target-cpu haswell -D FW_FMA` on x86-64. EdgeRuntime picks one set at
// load (KernelDispatch.swift); docs/edge-runtime.md, "Runtime CPU dispatch".
//
// One file on purpose: debug builds compile file by file, and an `@inline(__always)` helper in
// another file would be a call per SIMD operation there. Rules for code here:
// - public entry points are non-generic, take raw pointers, and are `@inline(never)`: they are
//   called through function references, never inlined into (baseline) EdgeRuntime;
// - everything else is internal and `@inline(__always)`, so nothing out of line is shared
//   between the two builds. Avoid stdlib generic conversions between SIMD types (e.g.
//   `SIMD16<Int32>(truncatingIfNeeded:)`): they are called as weak specializations that the
//   linker merges across modules, so one copy (maybe the AVX2 one) would serve both.
//   scripts/check-kernel-isa.sh checks the objects for this and for AVX in the baseline ones.

// MARK: - SIMD helpers

/// Width of a packed weight panel: SIMD16<Float> (four SSE or two AVX registers).
let panelWidth = 16

@inline(__always)
func loadF(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
}

@inline(__always)
func storeF(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
}

/// int8 x 16 widened to float in registers (pmovsxbd + cvtdq2ps with AVX2; unpack, shift and
/// cvtdq2ps on SSE2). Lane by lane on purpose: the stdlib's generic SIMD conversions
/// (`SIMD16<Int32>(truncatingIfNeeded:)`, `SIMD16<Float>(_: SIMD16<Int32>)`) are not inlined
/// but called as weak specializations, which are slow and which the linker would merge
/// between this module's two builds.
@inline(__always)
func loadI8(_ p: UnsafePointer<Int8>) -> SIMD16<Float> {
    let v = UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Int8>.self)
    var r = SIMD16<Float>()
    for i in 0..<16 { r[i] = Float(v[i]) }
    return r
}

@inline(__always)
func relu(_ v: SIMD16<Float>) -> SIMD16<Float> {
    v.replacing(with: 0, where: v .< 0)
}

/// acc + a * b: one fused multiply-add (vfmadd231ps) in the FMA build; a multiply and an add
/// elsewhere (on baseline x86-64 a fused operation would be a libm call per lane).
@inline(__always)
func madd(_ acc: SIMD16<Float>, _ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> {
    #if FW_FMA
    acc.addingProduct(a, b)
    #else
    acc + a * b
    #endif
}

/// Stores the first `n - col` lanes (all 16 when they fit). A partial store goes through a
/// stack buffer: one vector store, then scalar copies (reading SIMD16 lanes at a variable
/// index would be a vector round trip through the stack per lane).
@inline(__always)
func storeColumns(_ acc: SIMD16<Float>, _ y: UnsafeMutablePointer<Float>, col: Int, n: Int) {
    if col + panelWidth <= n {
        storeF(acc, y + col)
    } else {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: panelWidth) { buffer in
            let b = buffer.baseAddress!
            storeF(acc, b)
            for j in 0..<(n - col) { y[col + j] = b[j] }
        }
    }
}

/// Round half to even without a libm call (baseline x86-64 has no SSE4.1 `roundss`): adding
/// and subtracting 1.5 * 2^23 leaves the nearest integer in the default rounding mode. Valid
/// for |x| < 2^22; larger inputs are clamped first (callers saturate to 8 bits anyway); NaN
/// becomes 0. The same function as EdgeRuntime's `roundHalfEven`.
@inline(__always)
func roundHalfEven(_ x: Float) -> Float {
    let c = x.isNaN ? 0 : min(max(x, -4_000_000), 4_000_000)
    return (c + 12_582_912) - 12_582_912
}

/// e^x for 16 lanes (Cephes' expf polynomial after a round-to-nearest range reduction by
/// ln 2; about 2 ulp over the clamped range [-87.3, 88.3], below which it returns ~1e-38
/// instead of 0). Built only from SSE2-friendly operations: no floor, no int conversion.
/// No fused operations even in the FMA build, so both builds compute the same values.
@inline(__always)
func fastExp(_ v: SIMD16<Float>) -> SIMD16<Float> {
    var x = v.replacing(with: 88.3, where: v .> 88.3)
    x = x.replacing(with: -87.3, where: x .< -87.3)
    // n = round(x / ln 2) via the 1.5 * 2^23 trick; its low mantissa bits are n itself.
    let magic = SIMD16<Float>(repeating: 12_582_912)
    let t = x * 1.442_695_04 + magic
    let n = t - magic
    let r = x - n * 0.693_359_375 - n * -2.121_944_4e-4
    var p = SIMD16<Float>(repeating: 1.987_569_15e-4)
    p = p * r + 1.398_199_95e-3
    p = p * r + 8.333_451_9e-3
    p = p * r + 4.166_579_59e-2
    p = p * r + 1.666_666_55e-1
    p = p * r + 5.000_000_1e-1
    p = p * r * r + r + 1
    let bits = unsafeBitCast(t, to: SIMD16<Int32>.self) &- unsafeBitCast(magic, to: SIMD16<Int32>.self)
    let scale = unsafeBitCast((bits &+ 127) &<< 23, to: SIMD16<Float>.self)
    return p * scale
}

// MARK: - Row times panels (Dense/Gemm/MatMul, int8)

// Row-times-panels products: the inner loop of Dense/Gemm/MatMul and of the int8 kernels.
// Weights are packed by EdgeRuntime's PanelMatrix: ceil(N/16) panels, each [K][16] contiguous,
// columns past N zero; bias padded to whole panels.

/// How a panel row of 16 weights becomes 16 floats.
protocol PanelLoad {
    associatedtype Element
    static func load(_ p: UnsafePointer<Element>) -> SIMD16<Float>
}

enum F32Panels: PanelLoad {
    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> SIMD16<Float> { loadF(p) }
}

enum I8Panels: PanelLoad {
    @inline(__always) static func load(_ p: UnsafePointer<Int8>) -> SIMD16<Float> { loadI8(p) }
}

@inline(__always)
func finish(_ acc: SIMD16<Float>, _ y: UnsafeMutablePointer<Float>, panel: Int, n: Int, relu applyRelu: Bool) {
    storeColumns(applyRelu ? relu(acc) : acc, y, col: panel * panelWidth, n: n)
}

/// y[0..<n] = x[0..<k] · B + bias (then max(0, ·) when `relu`).
///
/// Baseline: two panels (32 outputs, 8 SSE accumulators) per pass over x. FMA build: four
/// panels (8 AVX accumulators) per pass, so enough independent FMA chains are in flight to
/// cover the FMA latency, then two, then one with K split in two halves of the chain.
@inline(__always)
func gemvPanels<L: PanelLoad>(
    _: L.Type, _ x: UnsafePointer<Float>, _ w: UnsafePointer<L.Element>, _ bias: UnsafePointer<Float>,
    _ y: UnsafeMutablePointer<Float>, k: Int, n: Int, panels: Int, relu applyRelu: Bool
) {
    var panel = 0
    let stride = k * panelWidth
    #if FW_FMA
    while panel + 3 < panels {
        var acc0 = loadF(bias + panel * panelWidth)
        var acc1 = loadF(bias + (panel + 1) * panelWidth)
        var acc2 = loadF(bias + (panel + 2) * panelWidth)
        var acc3 = loadF(bias + (panel + 3) * panelWidth)
        var w0 = w + panel * stride
        for kk in 0..<k {
            let xv = SIMD16<Float>(repeating: x[kk])
            acc0 = madd(acc0, xv, L.load(w0))
            acc1 = madd(acc1, xv, L.load(w0 + stride))
            acc2 = madd(acc2, xv, L.load(w0 + 2 * stride))
            acc3 = madd(acc3, xv, L.load(w0 + 3 * stride))
            w0 += panelWidth
        }
        finish(acc0, y, panel: panel, n: n, relu: applyRelu)
        finish(acc1, y, panel: panel + 1, n: n, relu: applyRelu)
        finish(acc2, y, panel: panel + 2, n: n, relu: applyRelu)
        finish(acc3, y, panel: panel + 3, n: n, relu: applyRelu)
        panel += 4
    }
    #endif
    while panel + 1 < panels {
        var acc0 = loadF(bias + panel * panelWidth)
        var acc1 = loadF(bias + (panel + 1) * panelWidth)
        var w0 = w + panel * stride
        var w1 = w0 + stride
        for kk in 0..<k {
            let xv = SIMD16<Float>(repeating: x[kk])
            acc0 = madd(acc0, xv, L.load(w0))
            acc1 = madd(acc1, xv, L.load(w1))
            w0 += panelWidth
            w1 += panelWidth
        }
        finish(acc0, y, panel: panel, n: n, relu: applyRelu)
        finish(acc1, y, panel: panel + 1, n: n, relu: applyRelu)
        panel += 2
    }
    if panel < panels {
        var acc = loadF(bias + panel * panelWidth)
        var w0 = w + panel * stride
        var kk = 0
        #if FW_FMA
        var accB = SIMD16<Float>()
        while kk + 1 < k {
            acc = madd(acc, SIMD16<Float>(repeating: x[kk]), L.load(w0))
            accB = madd(accB, SIMD16<Float>(repeating: x[kk + 1]), L.load(w0 + panelWidth))
            w0 += 2 * panelWidth
            kk += 2
        }
        acc += accB
        #endif
        while kk < k {
            acc = madd(acc, SIMD16<Float>(repeating: x[kk]), L.load(w0))
            w0 += panelWidth
            kk += 1
        }
        finish(acc, y, panel: panel, n: n, relu: applyRelu)
    }
}

/// y[0..<n] = x[0..<k] · B + bias, then max(0, ·) when `relu`; B packed as float panels.
@inline(never)
public func kernelGemvF32(
    _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
    _ y: UnsafeMutablePointer<Float>, k: Int, n: Int, panels: Int, relu: Bool
) {
    gemvPanels(F32Panels.self, x, w, bias, y, k: k, n: n, panels: panels, relu: relu)
}

/// As `kernelGemvF32` with int8 panels widened in registers (no Relu: the int8 kernels
/// requantize first). With integer-valued x, every product and partial sum is an integer
/// below 2^24 (checked by EdgeRuntime at load), so the float accumulation, in any order, is
/// exactly the int32 accumulation an int8 kernel would do.
@inline(never)
public func kernelGemvI8(
    _ x: UnsafePointer<Float>, _ w: UnsafePointer<Int8>, _ bias: UnsafePointer<Float>,
    _ y: UnsafeMutablePointer<Float>, k: Int, n: Int, panels: Int
) {
    gemvPanels(I8Panels.self, x, w, bias, y, k: k, n: n, panels: panels, relu: false)
}

// MARK: - 1-D convolution

// 1-D convolution, the whole run of EdgeRuntime's Conv1DKernel.

/// X [N, C, L] * W [M, C/group, K] + bias -> Y [N, M, Lout], with pads, strides, dilations and
/// groups, then max(0, ·) when `relu`. W in ONNX layout [M][C/group][K]. `pad` is scratch of
/// C * (L + padBegin + padEnd) + 16 floats: the input is copied into one zero-padded row per
/// channel, so the inner loop has no bounds tests. Stride 1 runs 16 output positions at a time,
/// two output channels of a group sharing each input load; other strides run scalar.
@inline(never)
public func kernelConv1D(
    _ px: UnsafePointer<Float>, _ py: UnsafeMutablePointer<Float>, _ pad: UnsafeMutablePointer<Float>,
    _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
    batch: Int, channels: Int, length: Int, outChannels: Int, kernel kw: Int, group: Int,
    padBegin: Int, padEnd: Int, stride s: Int, dilation d: Int, outLength lo: Int, relu applyRelu: Bool
) {
    let lp = length + padBegin + padEnd
    let cg = channels / group, mg = outChannels / group
    for n in 0..<batch {
        for c in 0..<channels {
            let row = pad + c * lp
            for i in 0..<padBegin { row[i] = 0 }
            let src = px + (n * channels + c) * length
            for i in 0..<length { row[padBegin + i] = src[i] }
            for i in (padBegin + length)..<lp { row[i] = 0 }
        }
        var oc = 0
        while oc < outChannels {
            let grp = oc / mg
            // Two output channels of one group share every input load.
            let pair = s == 1 && oc + 1 < outChannels && (oc + 1) / mg == grp
            let out0 = py + (n * outChannels + oc) * lo
            let w0 = w + oc * cg * kw
            let b0 = bias[oc]
            if s == 1 {
                let out1 = out0 + lo
                let w1 = w0 + cg * kw
                let b1 = pair ? bias[oc + 1] : 0
                let rows = UnsafePointer(pad + grp * cg * lp)
                var o = 0
                // The last chunk may run past `lo`: its extra lanes read padding or the
                // next channel's row (the scratch has 16 floats of slack) and are not stored.
                #if FW_FMA
                // Two chunks (32 outputs) per pass: 8 AVX accumulators, enough independent
                // FMA chains to cover the FMA latency (SSE2 has too few registers for it).
                while o + panelWidth < lo {
                    var acc = pair
                        ? convChunks(rows, o, lp, cg, kw, d, w0, w1, b0, b1, pair: true, two: true)
                        : convChunks(rows, o, lp, cg, kw, d, w0, w1, b0, b1, pair: false, two: true)
                    if applyRelu { acc = (relu(acc.0), relu(acc.1), relu(acc.2), relu(acc.3)) }
                    storeColumns(acc.0, out0, col: o, n: lo)
                    storeColumns(acc.1, out0, col: o + panelWidth, n: lo)
                    if pair {
                        storeColumns(acc.2, out1, col: o, n: lo)
                        storeColumns(acc.3, out1, col: o + panelWidth, n: lo)
                    }
                    o += 2 * panelWidth
                }
                #endif
                while o < lo {
                    var acc = pair
                        ? convChunks(rows, o, lp, cg, kw, d, w0, w1, b0, b1, pair: true, two: false)
                        : convChunks(rows, o, lp, cg, kw, d, w0, w1, b0, b1, pair: false, two: false)
                    if applyRelu { acc = (relu(acc.0), acc.1, relu(acc.2), acc.3) }
                    storeColumns(acc.0, out0, col: o, n: lo)
                    if pair { storeColumns(acc.2, out1, col: o, n: lo) }
                    o += panelWidth
                }
            } else {
                for o in 0..<lo {
                    var acc = b0
                    for c in 0..<cg {
                        let row = pad + (grp * cg + c) * lp + o * s
                        for k in 0..<kw { acc += w0[c * kw + k] * row[k * d] }
                    }
                    out0[o] = applyRelu && acc < 0 ? 0 : acc
                }
            }
            oc += pair ? 2 : 1
        }
    }
}

/// Stride-1 accumulators for outputs o..<o+16 (and o+16..<o+32 when `two`) of one output
/// channel (weights w0, bias b0) and, when `pair`, the next one (w1, b1), over the group's
/// `cg` padded input rows starting at `rows`: (ch0 chunk 0, ch0 chunk 1, ch1 chunk 0,
/// ch1 chunk 1), the unused ones zero. Called with constant `pair` and `two`, so each use
/// compiles to its own branch-free loop; per lane the sum runs over c, then k, as a plain
/// convolution loop would.
@inline(__always)
func convChunks(
    _ rows: UnsafePointer<Float>, _ o: Int, _ lp: Int, _ cg: Int, _ kw: Int, _ d: Int,
    _ w0: UnsafePointer<Float>, _ w1: UnsafePointer<Float>, _ b0: Float, _ b1: Float, pair: Bool, two: Bool
) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
    var a0 = SIMD16<Float>(repeating: b0), a1 = two ? a0 : SIMD16<Float>()
    var c0 = pair ? SIMD16<Float>(repeating: b1) : SIMD16<Float>(), c1 = two ? c0 : SIMD16<Float>()
    var x = rows + o, wa = w0, wb = w1
    for _ in 0..<cg {
        var xk = x
        for k in 0..<kw {
            let xv0 = loadF(xk)
            let va = SIMD16<Float>(repeating: wa[k])
            a0 = madd(a0, va, xv0)
            if two { a1 = madd(a1, va, loadF(xk + panelWidth)) }
            if pair {
                let vb = SIMD16<Float>(repeating: wb[k])
                c0 = madd(c0, vb, xv0)
                if two { c1 = madd(c1, vb, loadF(xk + panelWidth)) }
            }
            xk += d
        }
        x += lp
        wa += kw
        wb += kw
    }
    return (a0, a1, c0, c1)
}

// MARK: - 1-D max pooling

// 1-D max pooling, the whole run of EdgeRuntime's MaxPool1DKernel.

/// Y[p][o] = max over k of X[p][o * stride - padBegin + k * dilation] for `planes` rows of
/// `length` (padding never wins: it is skipped, not -inf-filled). Outputs in
/// `interiorLower..<interiorUpper` have their whole window inside the row: with stride 1 or 2
/// and at least 16 of them, they run 16 at a time (the last chunk shifted back to end at the
/// interior's end, recomputing a few outputs rather than reading past the row); the others
/// one at a time, with bounds tests outside the interior.
@inline(never)
public func kernelMaxPool1D(
    _ px: UnsafePointer<Float>, _ py: UnsafeMutablePointer<Float>, planes: Int, length: Int, outLength: Int,
    kernel: Int, stride s: Int, padBegin: Int, dilation d: Int, interiorLower: Int, interiorUpper: Int
) {
    let vectorInterior = s <= 2 && interiorUpper - interiorLower >= panelWidth
    for p in 0..<planes {
        let src = px + p * length, dst = py + p * outLength
        for o in 0..<interiorLower { dst[o] = edgeMax(src, o, length, kernel, s, padBegin, d) }
        if vectorInterior {
            var o = interiorLower
            while true {
                let chunk = min(o, interiorUpper - panelWidth)
                var best = SIMD16<Float>(repeating: -Float.infinity)
                for k in 0..<kernel {
                    let at = src + (chunk * s - padBegin + k * d)
                    // Stride 2: the even floats of at[0...30] (never at[31], which may be
                    // past the row): evens of at[0..<16], then odds of at[15..<31].
                    let v = s == 1 ? loadF(at) : SIMD16(lowHalf: loadF(at).evenHalf, highHalf: loadF(at + 15).oddHalf)
                    best.replace(with: v, where: v .> best)
                }
                storeF(best, dst + chunk)
                if chunk == interiorUpper - panelWidth { break }
                o += panelWidth
            }
        } else {
            for o in interiorLower..<interiorUpper {
                let start = o * s - padBegin
                var best = -Float.infinity
                for k in 0..<kernel {
                    let v = src[start + k * d]
                    best = v > best ? v : best
                }
                dst[o] = best
            }
        }
        for o in interiorUpper..<outLength { dst[o] = edgeMax(src, o, length, kernel, s, padBegin, d) }
    }
}

/// One output whose window may reach past either end of the row (those taps are skipped).
@inline(__always)
func edgeMax(_ src: UnsafePointer<Float>, _ o: Int, _ length: Int, _ kernel: Int, _ s: Int, _ padBegin: Int, _ d: Int) -> Float {
    let start = o * s - padBegin
    var best = -Float.infinity
    for k in 0..<kernel {
        let i = start + k * d
        if i >= 0 && i < length { best = max(best, src[i]) }
    }
    return best
}

// MARK: - Softmax

// Softmax over one contiguous row (the last axis), 16 lanes at a time.

/// dst[0..<n] = softmax(src[0..<n]) with `fastExp` (src and dst may be the same buffer).
@inline(never)
public func kernelSoftmaxRow(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, n: Int) {
    var mx = -Float.infinity
    for j in 0..<n { mx = max(mx, src[j]) }
    let mv = SIMD16<Float>(repeating: mx)
    var sum: Float = 0
    var j = 0
    while j + panelWidth <= n {
        let e = fastExp(loadF(src + j) - mv)
        storeF(e, dst + j)
        sum += e.sum()
        j += panelWidth
    }
    if j < n {
        // The last partial chunk through a 16-float stack buffer: scalar copies in and out
        // around one vector load and store. (Writing or reading SIMD16 lanes at a variable
        // index costs a vector round trip through the stack per lane, ~2x slower; a memcpy
        // of the variable-length tail, ~5x.) Lanes past the row hold the max and are neither
        // stored nor summed.
        let rest = n - j
        withUnsafeTemporaryAllocation(of: Float.self, capacity: panelWidth) { buffer in
            let b = buffer.baseAddress!
            storeF(mv, b)
            for t in 0..<rest { b[t] = src[j + t] }
            storeF(fastExp(loadF(b) - mv), b)
            for t in 0..<rest {
                dst[j + t] = b[t]
                sum += b[t]
            }
        }
    }
    let inv = 1 / sum
    for t in 0..<n { dst[t] *= inv }
}

// MARK: - Quantization

// float -> 8-bit quantization: QuantizeLinear, the requantization of the int8 matrix kernels,
// DynamicQuantizeLinear's output.

/// y[i] = saturate(round-half-even(x[i] / scale) + zeroPoint) to [lo, hi] (`divide`), or with
/// `x[i] * scale` (not `divide`), stored as one byte: the value itself for uint8 ([0, 255]),
/// its two's complement for int8 ([-128, 127]). NaN quantizes to the zero point.
///
/// No float-to-integer conversion (a checked one would trap out of range and keep the loop
/// scalar): the clamped integer q plus 1.5 * 2^23 has q's low byte as its low byte, so the
/// loop is plain float arithmetic and vectorizes (divps/mulps, min/max, pack).
@inline(never)
public func kernelQuantize(
    _ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, count: Int,
    scale: Float, divide: Bool, zeroPoint: Float, lo: Float, hi: Float
) {
    if divide {
        for i in 0..<count { y.storeBytes(of: quantizeToByte(x[i] / scale, zeroPoint, lo, hi), toByteOffset: i, as: UInt8.self) }
    } else {
        for i in 0..<count { y.storeBytes(of: quantizeToByte(x[i] * scale, zeroPoint, lo, hi), toByteOffset: i, as: UInt8.self) }
    }
}

@inline(__always)
func quantizeToByte(_ v: Float, _ zeroPoint: Float, _ lo: Float, _ hi: Float) -> UInt8 {
    let q = min(max(roundHalfEven(v) + zeroPoint, lo), hi)
    return UInt8(truncatingIfNeeded: (q + 12_582_912).bitPattern)
}

// MARK: - Variant

// Which instruction set this copy of the kernels was compiled for.

/// "avx2+fma" in EdgeKernelsAVX2 on x86-64 (`-target-cpu haswell -D FW_FMA`), "baseline"
/// in EdgeKernels and in EdgeKernelsAVX2 on other architectures (same code, no flags).
#if FW_FMA
public let kernelBuildISA = "avx2+fma"
#else
public let kernelBuildISA = "baseline"
#endif
