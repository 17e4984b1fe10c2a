/// 1-D convolution: X [N, C, L] * W [M, C/group, K] + bias -> Y [N, M, Lout], with pads,
/// strides, dilations and groups, and an optional fused Relu. The loops are `kernelConv1D`
/// (EdgeKernels and its AVX2 copy): the input is first copied into a zero-padded scratch row
/// per channel, so the inner loop has no bounds checks; with stride 1 it runs 16 output
/// positions at a time in a SIMD16 accumulator.
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
    let conv: KernelSet.Conv1D

    init(x: Int, y: Int, scratch: Int, geometry: Geometry, weights: [Float], bias: [Float], relu: Bool, kernels: KernelSet) {
        self.x = x; self.y = y; self.scratch = scratch; self.g = geometry
        self.weights = PackedBuffer(weights)
        self.bias = PackedBuffer(bias)
        self.applyRelu = relu
        conv = kernels.conv1D
    }

    var packedBytes: Int { weights.bytes + bias.bytes }

    func run(_ m: Memory) {
        conv(
            m.f32(x), m.f32(y), m.f32(scratch), weights.pointer, bias.pointer,
            g.batch, g.channels, g.length, g.outChannels, g.kernel, g.group,
            g.padBegin, g.padEnd, g.stride, g.dilation, g.outLength, applyRelu)
    }
}

/// 1-D max pooling over [N, C, L] (padding never wins: it is skipped, not -inf-filled); the
/// loops are `kernelMaxPool1D` (EdgeKernels and its AVX2 copy).
final class MaxPool1DKernel: Kernel {
    let x: Int, y: Int
    let planes: Int, length: Int, outLength: Int
    let kernel: Int, stride: Int, padBegin: Int, dilation: Int
    let pool: KernelSet.MaxPool1D

    init(
        x: Int, y: Int, planes: Int, length: Int, outLength: Int, kernel: Int, stride: Int, padBegin: Int, dilation: Int,
        kernels: KernelSet
    ) {
        self.x = x; self.y = y; self.planes = planes; self.length = length; self.outLength = outLength
        self.kernel = kernel; self.stride = stride; self.padBegin = padBegin; self.dilation = dilation
        pool = kernels.maxPool1D
        // Outputs whose whole window lies inside the input need no bounds test per tap.
        let lo = (padBegin + stride - 1) / stride
        var hi = lo
        while hi < outLength && hi * stride - padBegin + (kernel - 1) * dilation < length { hi += 1 }
        interior = lo..<max(lo, hi)
    }

    let interior: Range<Int>

    func run(_ m: Memory) {
        pool(
            m.f32(x), m.f32(y), planes, length, outLength, kernel, stride, padBegin, dilation,
            interior.lowerBound, interior.upperBound)
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
