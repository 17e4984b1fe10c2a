/// A session's working memory as kernels see it: one raw allocation in which the planner gave
/// every value, constant and scratch buffer a byte offset. Each region is bound to exactly one
/// element type for the life of the session (the planner reuses a region only for values of
/// the same type), so the typed accessors below never alias two types.
struct Memory {
    let base: UnsafeMutableRawPointer

    @inline(__always) func f32(_ offset: Int) -> UnsafeMutablePointer<Float> {
        (base + offset).assumingMemoryBound(to: Float.self)
    }
    @inline(__always) func f64(_ offset: Int) -> UnsafeMutablePointer<Double> {
        (base + offset).assumingMemoryBound(to: Double.self)
    }
    @inline(__always) func u8(_ offset: Int) -> UnsafeMutablePointer<UInt8> {
        (base + offset).assumingMemoryBound(to: UInt8.self)
    }
    @inline(__always) func i8(_ offset: Int) -> UnsafeMutablePointer<Int8> {
        (base + offset).assumingMemoryBound(to: Int8.self)
    }
    @inline(__always) func i32(_ offset: Int) -> UnsafeMutablePointer<Int32> {
        (base + offset).assumingMemoryBound(to: Int32.self)
    }
    @inline(__always) func i64(_ offset: Int) -> UnsafeMutablePointer<Int64> {
        (base + offset).assumingMemoryBound(to: Int64.self)
    }
}

/// One compiled step of a graph. Kernels are immutable after compilation (offsets and packed
/// weights), so one compiled model can serve sessions on several threads; all mutable state
/// lives in the session's `Memory`. `run` must not allocate.
protocol Kernel: Sendable {
    func run(_ m: Memory)
    /// Bytes of weights and parameters packed into the kernel at load.
    var packedBytes: Int { get }
}

extension Kernel {
    var packedBytes: Int { 0 }
}

/// Weights packed at load in the layout a kernel reads, 64-byte aligned and never written
/// after packing.
///
/// `@unchecked Sendable`: the buffer is filled once inside `init` (before the object is
/// shared) and only read afterwards; the class owns the allocation and frees it in `deinit`.
final class PackedBuffer<T>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<T>
    let count: Int

    init(count: Int, fill: (UnsafeMutablePointer<T>) -> Void) {
        self.count = max(count, 1)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: self.count * MemoryLayout<T>.stride, alignment: 64)
        pointer = raw.bindMemory(to: T.self, capacity: self.count)
        fill(pointer)
    }

    convenience init(_ values: [T]) {
        self.init(count: values.count) { p in
            for (i, v) in values.enumerated() { (p + i).initialize(to: v) }
        }
    }

    var bytes: Int { count * MemoryLayout<T>.stride }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }
}

/// Width of a packed weight panel: SIMD16<Float> (four SSE or two AVX registers).
let panelWidth = 16

@inline(__always)
func loadF(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
}

@inline(__always)
func loadF(_ p: UnsafeMutablePointer<Float>) -> SIMD16<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
}

@inline(__always)
func storeF(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
}

@inline(__always)
func relu(_ v: SIMD16<Float>) -> SIMD16<Float> {
    v.replacing(with: 0, where: v .< 0)
}

/// Round half to even without a libm call (baseline x86-64 has no SSE4.1 `roundss`, so
/// `rounded(.toNearestOrEven)` becomes a call to `rintf`): adding and subtracting 1.5 * 2^23
/// leaves the nearest integer in the default rounding mode. Valid for |x| < 2^22; larger
/// inputs are clamped first, which only matters to callers that saturate to 8 bits anyway;
/// NaN becomes 0 (so a NaN input quantizes to the zero point instead of trapping).
@inline(__always)
func roundHalfEven(_ x: Float) -> Float {
    let c = x.isNaN ? 0 : min(max(x, -4_000_000), 4_000_000)
    return (c + 12_582_912) - 12_582_912
}
