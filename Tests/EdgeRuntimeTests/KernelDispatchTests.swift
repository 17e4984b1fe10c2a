import Foundation
import Testing

@testable import EdgeRuntime

/// The kernel sets (EdgeKernels, EdgeKernelsAVX2) called directly with shapes the fixtures do
/// not reach (every panel-blocking remainder, odd K, ragged N, strides, pads), against plain
/// double-precision sums; and how the default set is chosen.
@Suite struct KernelDispatchTests {
    static let sets = EdgeRuntimeInfo.availableKernelISAs.map { KernelSet.make($0)! }

    /// A deterministic value in [-1, 1).
    static func value(_ i: Int, _ salt: Int) -> Float { Float((i &* 2_654_435_761 &+ salt &* 40_503) % 2001) / 1000 - 1 }

    @Test func baselineIsAlwaysAvailableAndTheDefaultIsOneOfThem() {
        #expect(EdgeRuntimeInfo.availableKernelISAs.first == .baseline)
        #expect(EdgeRuntimeInfo.availableKernelISAs.contains(EdgeRuntimeInfo.kernelISA))
        let env = ProcessInfo.processInfo.environment["FLEET_EDGE_ISA"]
        #expect(EdgeRuntimeInfo.kernelISA == KernelSet.choose(env).isa)
    }

    /// On an x86-64 Linux CPU whose /proc/cpuinfo lists avx2 and fma (and the other Haswell
    /// extensions), the AVX2 set is detected and is the best one.
    @Test func avx2IsDetectedWhereTheCPUHasIt() throws {
        #if arch(x86_64) && os(Linux)
        let info = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let flags = Set(info.split(separator: "\n").first { $0.hasPrefix("flags") }?.split(separator: " ").map(String.init) ?? [])
        let haswell = ["avx2", "fma", "bmi1", "bmi2", "abm", "movbe", "f16c", "popcnt"].allSatisfy(flags.contains)
        #expect(EdgeRuntimeInfo.availableKernelISAs.contains(.avx2FMA) == haswell, "flags: \(flags.sorted())")
        #expect(KernelSet.best.isa == (haswell ? .avx2FMA : .baseline))
        #else
        #expect(!EdgeRuntimeInfo.availableKernelISAs.contains(.avx2FMA))
        #endif
    }

    @Test func environmentOverride() {
        let best = KernelSet.best.isa
        #expect(KernelSet.choose("baseline").isa == .baseline)
        #expect(KernelSet.choose(nil).isa == best)
        #expect(KernelSet.choose("").isa == best)
        #expect(KernelSet.choose("auto").isa == best)
        #expect(KernelSet.choose("sse9").isa == best)
        #expect(KernelSet.choose("avx2+fma").isa == best)  // avx2+fma where the CPU has it, else baseline
        #expect(KernelSet.choose("avx2").isa == best)
    }

    @Test func modelsRecordTheirKernelSetAndRefuseOnesTheCPULacks() throws {
        let path = Fixtures.path("mlp.onnx")
        #expect(try CompiledModel(contentsOf: path).kernelISA == EdgeRuntimeInfo.kernelISA)
        for isa in KernelISA.allCases {
            if EdgeRuntimeInfo.availableKernelISAs.contains(isa) {
                #expect(try CompiledModel(contentsOf: path, kernelISA: isa).kernelISA == isa)
            } else {
                #expect(throws: ModelError.self) { try CompiledModel(contentsOf: path, kernelISA: isa) }
            }
        }
    }

    @Test(arguments: [1, 3, 17, 64], [1, 10, 16, 33, 64, 100, 130])
    func gemvF32MatchesDirectSum(k: Int, n: Int) {
        let b = (0..<(k * n)).map { Self.value($0, 1) }
        let x = (0..<k).map { Self.value($0, 2) }
        let bias = (0..<n).map { Self.value($0, 3) }
        let packed = PanelMatrix.packF32(k: k, n: n) { b[$0 * n + $1] }
        guard case .f32(let w) = packed.storage else { Issue.record("not float panels"); return }
        let pb = packBias(bias, n: n)
        for set in Self.sets {
            for relu in [false, true] {
                // One guard lane past N catches a store beyond the row.
                var y = [Float](repeating: .nan, count: n + 1)
                y.withUnsafeMutableBufferPointer { set.gemvF32(x, w.pointer, pb.pointer, $0.baseAddress!, k, n, packed.panels, relu) }
                #expect(y[n].isNaN, "\(set.isa) k \(k) n \(n): wrote past N")
                for j in 0..<n {
                    var s = Double(bias[j])
                    for kk in 0..<k { s += Double(x[kk]) * Double(b[kk * n + j]) }
                    if relu { s = max(s, 0) }
                    #expect(abs(Double(y[j]) - s) <= 1e-5 * (1 + abs(s)), "\(set.isa) k \(k) n \(n) relu \(relu) col \(j): \(y[j]) vs \(s)")
                }
            }
        }
    }

    /// int8 panels with integer-valued x: the float accumulation is exact in every set.
    @Test(arguments: [1, 5, 64, 129], [3, 16, 48, 80, 144])
    func gemvI8IsExact(k: Int, n: Int) {
        let b = (0..<(k * n)).map { Int8(truncatingIfNeeded: ($0 &* 37 &+ 11) % 256 - 128) }
        let x = (0..<k).map { Float(($0 * 53) % 256 - 128) }
        let bias = (0..<n).map { Float(($0 * 97) % 2001 - 1000) }
        let packed = PanelMatrix.packI8(k: k, n: n) { b[$0 * n + $1] }
        guard case .i8(let w) = packed.storage else { Issue.record("not int8 panels"); return }
        let pb = packBias(bias, n: n)
        for set in Self.sets {
            var y = [Float](repeating: 0, count: n)
            y.withUnsafeMutableBufferPointer { set.gemvI8(x, w.pointer, pb.pointer, $0.baseAddress!, k, n, packed.panels) }
            let want = (0..<n).map { j in (0..<k).reduce(Int64(bias[j])) { $0 + Int64(x[$1]) * Int64(b[$1 * n + j]) } }
            #expect(y.map { Int64($0) } == want, "\(set.isa) k \(k) n \(n)")
        }
    }

    struct ConvCase: Sendable, CustomStringConvertible {
        var channels: Int, length: Int, outChannels: Int, kernel: Int, group: Int
        var padBegin: Int, padEnd: Int, stride: Int, dilation: Int
        var outLength: Int { (length + padBegin + padEnd - dilation * (kernel - 1) - 1) / stride + 1 }
        var description: String { "C\(channels) L\(length) M\(outChannels) K\(kernel) g\(group) pads \(padBegin),\(padEnd) s\(stride) d\(dilation)" }
    }

    @Test(arguments: [
        ConvCase(channels: 3, length: 48, outChannels: 8, kernel: 5, group: 1, padBegin: 2, padEnd: 2, stride: 1, dilation: 1),
        ConvCase(channels: 4, length: 37, outChannels: 6, kernel: 3, group: 2, padBegin: 2, padEnd: 2, stride: 1, dilation: 2),
        ConvCase(channels: 3, length: 20, outChannels: 3, kernel: 4, group: 3, padBegin: 0, padEnd: 3, stride: 1, dilation: 1),
        ConvCase(channels: 2, length: 29, outChannels: 5, kernel: 3, group: 1, padBegin: 1, padEnd: 0, stride: 2, dilation: 1),
        ConvCase(channels: 1, length: 5, outChannels: 1, kernel: 5, group: 1, padBegin: 0, padEnd: 0, stride: 1, dilation: 1),
    ])
    func conv1DMatchesDirectSum(_ g: ConvCase) {
        let batch = 2, cg = g.channels / g.group, mg = g.outChannels / g.group, lo = g.outLength
        let x = (0..<(batch * g.channels * g.length)).map { Self.value($0, 4) }
        let w = (0..<(g.outChannels * cg * g.kernel)).map { Self.value($0, 5) }
        let bias = (0..<g.outChannels).map { Self.value($0, 6) }
        for set in Self.sets {
            for relu in [false, true] {
                var y = [Float](repeating: .nan, count: batch * g.outChannels * lo)
                var pad = [Float](repeating: .nan, count: g.channels * (g.length + g.padBegin + g.padEnd) + 16)
                y.withUnsafeMutableBufferPointer { py in
                    pad.withUnsafeMutableBufferPointer { pp in
                        set.conv1D(
                            x, py.baseAddress!, pp.baseAddress!, w, bias, batch, g.channels, g.length, g.outChannels, g.kernel, g.group,
                            g.padBegin, g.padEnd, g.stride, g.dilation, lo, relu)
                    }
                }
                for n in 0..<batch {
                    for oc in 0..<g.outChannels {
                        let grp = oc / mg
                        for o in 0..<lo {
                            var s = Double(bias[oc])
                            for c in 0..<cg {
                                for k in 0..<g.kernel {
                                    let i = o * g.stride + k * g.dilation - g.padBegin
                                    guard i >= 0 && i < g.length else { continue }
                                    s += Double(w[(oc * cg + c) * g.kernel + k]) * Double(x[(n * g.channels + grp * cg + c) * g.length + i])
                                }
                            }
                            if relu { s = max(s, 0) }
                            let got = y[(n * g.outChannels + oc) * lo + o]
                            #expect(abs(Double(got) - s) <= 1e-5 * (1 + abs(s)), "\(set.isa) \(g) relu \(relu) n \(n) oc \(oc) o \(o): \(got) vs \(s)")
                        }
                    }
                }
            }
        }
    }

    /// Quantization to uint8 and int8 (dividing and multiplying) gives exactly the scalar
    /// formula's bytes, ties, NaN, infinities and out-of-range values included.
    @Test func quantizeMatchesTheScalarFormula() {
        var x: [Float] = [0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 127.5, 128.5, -128.5, 255.5, 1e9, -1e9, .nan, .infinity, -.infinity, 3.49, -3.51]
        x += (0..<200).map { Self.value($0, 8) * 300 }
        for set in Self.sets {
            for (lo, hi, zeroPoint) in [(Float(0), Float(255), Float(128)), (-128, 127, 3)] {
                for divide in [true, false] {
                    let scale: Float = divide ? 0.5 : 2
                    var y = [UInt8](repeating: 0xAA, count: x.count + 1)
                    y.withUnsafeMutableBytes { set.quantize(x, $0.baseAddress!, x.count, scale, divide, zeroPoint, lo, hi) }
                    #expect(y[x.count] == 0xAA, "\(set.isa): wrote past the end")
                    for (i, v) in x.enumerated() {
                        let q = min(max(roundHalfEven(divide ? v / scale : v * scale) + zeroPoint, lo), hi)
                        let want = lo < 0 ? UInt8(bitPattern: Int8(q)) : UInt8(q)
                        #expect(y[i] == want, "\(set.isa) [\(lo), \(hi)] divide \(divide): \(v) -> \(y[i]), want \(want)")
                    }
                }
            }
        }
    }

    /// Max pooling (through the model path, so the kernel's interior range is the runtime's)
    /// against a direct maximum, for strides 1-3, pads, dilations and rows long enough for the
    /// 16-wide interior loop.
    struct PoolCase: Sendable, CustomStringConvertible {
        var kernel: Int, stride: Int, padBegin: Int, padEnd: Int, dilation: Int
        var description: String { "K\(kernel) s\(stride) pads \(padBegin),\(padEnd) d\(dilation)" }
    }

    @Test(arguments: [
        PoolCase(kernel: 2, stride: 2, padBegin: 0, padEnd: 0, dilation: 1), PoolCase(kernel: 3, stride: 1, padBegin: 1, padEnd: 1, dilation: 1),
        PoolCase(kernel: 2, stride: 2, padBegin: 1, padEnd: 0, dilation: 2), PoolCase(kernel: 3, stride: 2, padBegin: 1, padEnd: 1, dilation: 1),
        PoolCase(kernel: 4, stride: 3, padBegin: 2, padEnd: 1, dilation: 1), PoolCase(kernel: 5, stride: 1, padBegin: 0, padEnd: 0, dilation: 3),
    ])
    func maxPoolMatchesDirectMax(_ g: PoolCase) throws {
        let (kernel, stride, padBegin, padEnd, dilation) = (g.kernel, g.stride, g.padBegin, g.padEnd, g.dilation)
        let (channels, length) = (3, 77)
        let x = (0..<(channels * length)).map { Self.value($0, 9) }
        let outLength = (length + padBegin + padEnd - dilation * (kernel - 1) - 1) / stride + 1
        typealias P = ProtoBuilder
        let bytes = P.model(
            [P.node("MaxPool", ["x"], ["y"], ints: [
                "kernel_shape": [Int64(kernel)], "strides": [Int64(stride)], "pads": [Int64(padBegin), Int64(padEnd)],
                "dilations": [Int64(dilation)],
            ])],
            inputs: [P.value("x", [1, Int64(channels), Int64(length)])], outputs: [P.value("y", [1, Int64(channels), Int64(outLength)])],
            initializers: [])
        for isa in EdgeRuntimeInfo.availableKernelISAs {
            let y = try P.run(bytes, x, kernelISA: isa)[0]
            #expect(y.count == channels * outLength)
            for c in 0..<channels {
                for o in 0..<outLength {
                    var best = -Float.infinity
                    for k in 0..<kernel {
                        let i = o * stride - padBegin + k * dilation
                        if i >= 0 && i < length { best = max(best, x[c * length + i]) }
                    }
                    #expect(y[c * outLength + o] == Double(best), "\(isa) \(g) c\(c) o\(o)")
                }
            }
        }
    }

    @Test(arguments: [1, 10, 16, 17, 40])
    func softmaxRowMatchesDirect(n: Int) {
        let x = (0..<n).map { Self.value($0, 7) * 20 }
        let mx = Double(x.max()!)
        let e = x.map { exp(Double($0) - mx) }
        let sum = e.reduce(0, +)
        for set in Self.sets {
            var y = [Float](repeating: .nan, count: n)
            y.withUnsafeMutableBufferPointer { set.softmaxRow(x, $0.baseAddress!, n) }
            for j in 0..<n {
                #expect(abs(Double(y[j]) - e[j] / sum) <= 1e-6, "\(set.isa) n \(n) j \(j): \(y[j]) vs \(e[j] / sum)")
            }
        }
    }
}
