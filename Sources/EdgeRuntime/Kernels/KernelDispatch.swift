internal import CCPUFeatures
internal import EdgeKernels
#if arch(x86_64)
internal import EdgeKernelsAVX2
#endif

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An instruction-set variant of the hot kernels (module EdgeKernels and its copy
/// EdgeKernelsAVX2; docs/edge-runtime.md, "Runtime CPU dispatch").
public enum KernelISA: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Baseline x86-64 (SSE2) — or whatever the build targets on other architectures.
    case baseline
    /// x86-64 with AVX2 and FMA (the kernels compiled with `-target-cpu haswell`).
    case avx2FMA = "avx2+fma"

    public var description: String { rawValue }
}

extension EdgeRuntimeInfo {
    /// The kernel set models load with by default: the best one this CPU runs, unless the
    /// environment variable `FLEET_EDGE_ISA` (`baseline` or `avx2+fma`) asks for another one
    /// it can run. Decided once per process.
    public static var kernelISA: KernelISA { KernelSet.preferred.isa }

    /// The kernel sets this CPU can run, baseline first.
    public static var availableKernelISAs: [KernelISA] { KernelISA.allCases.filter { KernelSet.make($0) != nil } }
}

/// Function references to one variant of the hot kernels. Chosen once (at model load); each
/// kernel keeps the references it needs, so running a model does no feature test per call.
struct KernelSet: Sendable {
    typealias GemvF32 = @Sendable (
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
        _ y: UnsafeMutablePointer<Float>, _ k: Int, _ n: Int, _ panels: Int, _ relu: Bool
    ) -> Void
    typealias GemvI8 = @Sendable (
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Int8>, _ bias: UnsafePointer<Float>,
        _ y: UnsafeMutablePointer<Float>, _ k: Int, _ n: Int, _ panels: Int
    ) -> Void
    typealias Conv1D = @Sendable (
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ pad: UnsafeMutablePointer<Float>,
        _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
        _ batch: Int, _ channels: Int, _ length: Int, _ outChannels: Int, _ kernel: Int, _ group: Int,
        _ padBegin: Int, _ padEnd: Int, _ stride: Int, _ dilation: Int, _ outLength: Int, _ relu: Bool
    ) -> Void
    typealias SoftmaxRow = @Sendable (_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int) -> Void
    typealias MaxPool1D = @Sendable (
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ planes: Int, _ length: Int, _ outLength: Int,
        _ kernel: Int, _ stride: Int, _ padBegin: Int, _ dilation: Int, _ interiorLower: Int, _ interiorUpper: Int
    ) -> Void
    /// y (uint8 or int8 bytes) = saturate(round-half-even(x / scale or x * scale) + zero point) to [lo, hi].
    typealias Quantize = @Sendable (
        _ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, _ count: Int,
        _ scale: Float, _ divide: Bool, _ zeroPoint: Float, _ lo: Float, _ hi: Float
    ) -> Void

    let isa: KernelISA
    let gemvF32: GemvF32
    let gemvI8: GemvI8
    let conv1D: Conv1D
    let softmaxRow: SoftmaxRow
    let quantize: Quantize
    let maxPool1D: MaxPool1D

    static let baseline = KernelSet(
        isa: .baseline, gemvF32: EdgeKernels.kernelGemvF32, gemvI8: EdgeKernels.kernelGemvI8,
        conv1D: EdgeKernels.kernelConv1D, softmaxRow: EdgeKernels.kernelSoftmaxRow, quantize: EdgeKernels.kernelQuantize,
        maxPool1D: EdgeKernels.kernelMaxPool1D)

    /// The AVX2+FMA set, when this is x86-64 and the CPU (and OS) support it.
    static let avx2FMA: KernelSet? = {
        #if arch(x86_64)
        guard fw_cpu_has_avx2_fma() != 0, EdgeKernelsAVX2.kernelBuildISA == KernelISA.avx2FMA.rawValue else { return nil }
        return KernelSet(
            isa: .avx2FMA, gemvF32: EdgeKernelsAVX2.kernelGemvF32, gemvI8: EdgeKernelsAVX2.kernelGemvI8,
            conv1D: EdgeKernelsAVX2.kernelConv1D, softmaxRow: EdgeKernelsAVX2.kernelSoftmaxRow,
            quantize: EdgeKernelsAVX2.kernelQuantize, maxPool1D: EdgeKernelsAVX2.kernelMaxPool1D)
        #else
        return nil
        #endif
    }()

    /// The set for `isa`, or nil when this CPU cannot run it.
    static func make(_ isa: KernelISA) -> KernelSet? {
        switch isa {
        case .baseline: baseline
        case .avx2FMA: avx2FMA
        }
    }

    /// The best set this CPU runs.
    static var best: KernelSet { avx2FMA ?? baseline }

    /// The default, decided once: `FLEET_EDGE_ISA` when set to a set this CPU runs, else the best.
    static let preferred = choose(getenv("FLEET_EDGE_ISA").map { String(cString: $0) })

    /// The set a `FLEET_EDGE_ISA` value asks for: `baseline`, `avx2+fma` (or `avx2`); unset,
    /// empty, `auto`, an unknown name or a set this CPU lacks give the best available.
    static func choose(_ value: String?) -> KernelSet {
        guard let value else { return best }
        let asked = value == "avx2" ? KernelISA.avx2FMA : KernelISA(rawValue: value)
        return asked.flatMap(make) ?? best
    }
}
