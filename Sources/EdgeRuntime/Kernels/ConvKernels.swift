/// 1-D convolution: X [N, C, L] * W [M, C/group, K] + bias -> Y [N, M, Lout], with pads,
/// strides, dilations and groups, and an optional fused Relu. The input is first copied into
/// a zero-padded scratch row per channel, so the inner loop has no bounds checks; with
/// stride 1 it runs 16 output positions at a time in a SIMD16 accumulator.
final class Conv1DKernel: Kernel {
    struct Geometry: Sendable {
        var batch: Int, channels: Int, length: Int
        var outChannels: Int, kernel: Int, group: Int
        var padBegin: Int, padEnd: Int, stride: Int, dilation: Int
        var outLength: Int
        var paddedLength: Int { length + padBegin + padEnd }
    }

    let x: Int, y: Int, scratch: Int
    let g: Geometry
    /// W in ONNX layout [M][C/group][K] (BatchNormalization folded in).
    let weights: PackedBuffer<Float>
    let bias: PackedBuffer<Float>
    let applyRelu: Bool

    init(x: Int, y: Int, scratch: Int, geometry: Geometry, weights: [Float], bias: [Float], relu: Bool) {
        self.x = x; self.y = y; self.scratch = scratch; self.g = geometry
        self.weights = PackedBuffer(weights)
        self.bias = PackedBuffer(bias)
        self.applyRelu = relu
    }

    var packedBytes: Int { weights.bytes + bias.bytes }

    func run(_ m: Memory) {
        let px = m.f32(x), py = m.f32(y), pad = m.f32(scratch)
        let lp = g.paddedLength, cg = g.channels / g.group, mg = g.outChannels / g.group
        let kw = g.kernel, lo = g.outLength, d = g.dilation, s = g.stride
        let w = weights.pointer
        for n in 0..<g.batch {
            for c in 0..<g.channels {
                let row = pad + c * lp
                for i in 0..<g.padBegin { row[i] = 0 }
                let src = px + (n * g.channels + c) * g.length
                for i in 0..<g.length { row[g.padBegin + i] = src[i] }
                for i in (g.padBegin + g.length)..<lp { row[i] = 0 }
            }
            var oc = 0
            while oc < g.outChannels {
                let group = oc / mg
                // Two output channels of one group share every input load.
                let pair = s == 1 && oc + 1 < g.outChannels && (oc + 1) / mg == group
                let out0 = py + (n * g.outChannels + oc) * lo
                let w0 = w + oc * cg * kw
                let b0 = bias.pointer[oc]
                if s == 1 {
                    let out1 = out0 + lo
                    let w1 = w0 + cg * kw
                    let b1 = pair ? bias.pointer[oc + 1] : 0
                    var o = 0
                    // The last chunk may run past `lo`: its extra lanes read padding or the
                    // next channel's row (the scratch has 16 floats of slack) and are not stored.
                    while o < lo {
                        var acc0 = SIMD16<Float>(repeating: b0)
                        var acc1 = SIMD16<Float>(repeating: b1)
                        for c in 0..<cg {
                            let row = pad + (group * cg + c) * lp + o
                            for k in 0..<kw {
                                let xv = loadF(row + k * d)
                                acc0 += SIMD16<Float>(repeating: w0[c * kw + k]) * xv
                                if pair { acc1 += SIMD16<Float>(repeating: w1[c * kw + k]) * xv }
                            }
                        }
                        if applyRelu {
                            acc0 = relu(acc0)
                            acc1 = relu(acc1)
                        }
                        storeColumns(acc0, out0, col: o, n: lo)
                        if pair { storeColumns(acc1, out1, col: o, n: lo) }
                        o += panelWidth
                    }
                } else {
                    for o in 0..<lo {
                        var acc = b0
                        for c in 0..<cg {
                            let row = pad + (group * cg + c) * lp + o * s
                            for k in 0..<kw { acc += w0[c * kw + k] * row[k * d] }
                        }
                        out0[o] = applyRelu && acc < 0 ? 0 : acc
                    }
                }
                oc += pair ? 2 : 1
            }
        }
    }
}

/// 1-D max pooling over [N, C, L] (padding never wins: it is skipped, not -inf-filled).
final class MaxPool1DKernel: Kernel {
    let x: Int, y: Int
    let planes: Int, length: Int, outLength: Int
    let kernel: Int, stride: Int, padBegin: Int, dilation: Int

    init(x: Int, y: Int, planes: Int, length: Int, outLength: Int, kernel: Int, stride: Int, padBegin: Int, dilation: Int) {
        self.x = x; self.y = y; self.planes = planes; self.length = length; self.outLength = outLength
        self.kernel = kernel; self.stride = stride; self.padBegin = padBegin; self.dilation = dilation
        // Outputs whose whole window lies inside the input need no bounds test per tap.
        let lo = (padBegin + stride - 1) / stride
        var hi = lo
        while hi < outLength && hi * stride - padBegin + (kernel - 1) * dilation < length { hi += 1 }
        interior = lo..<max(lo, hi)
    }

    let interior: Range<Int>

    func run(_ m: Memory) {
        let px = m.f32(x), py = m.f32(y)
        for p in 0..<planes {
            let src = px + p * length, dst = py + p * outLength
            for o in 0..<outLength {
                let start = o * stride - padBegin
                var best = -Float.infinity
                if o >= interior.lowerBound && o < interior.upperBound {
                    for k in 0..<kernel {
                        let v = src[start + k * dilation]
                        best = v > best ? v : best
                    }
                } else {
                    for k in 0..<kernel {
                        let i = start + k * dilation
                        if i >= 0 && i < length { best = max(best, src[i]) }
                    }
                }
                dst[o] = best
            }
        }
    }
}

/// Mean over everything after the channel axis: [N, C, ...] -> [N, C, 1, ...].
final class GlobalAveragePoolKernel: Kernel {
    let x: Int, y: Int, planes: Int, spatial: Int

    init(x: Int, y: Int, planes: Int, spatial: Int) {
        self.x = x; self.y = y; self.planes = planes; self.spatial = spatial
    }

    func run(_ m: Memory) {
        let px = m.f32(x), py = m.f32(y)
        let inv = 1 / Float(spatial)
        for p in 0..<planes {
            var s: Float = 0
            let src = px + p * spatial
            for i in 0..<spatial { s += src[i] }
            py[p] = s * inv
        }
    }
}
