import Foundation

/// The name, element type and static shape of a model input or output.
public struct TensorInfo: Sendable, Equatable {
    public let name: String
    public let type: ElementType
    public let shape: [Int]
    public var count: Int { shape.reduce(1, *) }
}

/// A model loaded, checked, optimized, packed and planned: immutable and shareable between
/// threads. Run it through an `InferenceSession` (one per thread), which owns the memory.
public final class CompiledModel: Sendable {
    public let inputs: [TensorInfo]
    public let outputs: [TensorInfo]
    /// The batch size the shapes were fixed for.
    public let batch: Int
    /// Bytes of one session's planned memory (activations, scratch, constants).
    public let sessionBytes: Int
    /// Bytes of packed weights held by the kernels.
    public let weightBytes: Int
    /// The kernel sequence, by node, for diagnostics (`fleet-agent infer --explain` style).
    public let steps: [String]
    /// The kernel variant this model's kernels call (`EdgeRuntimeInfo.kernelISA` by default).
    public let kernelISA: KernelISA

    let kernels: [any Kernel]
    let regions: [GraphCompiler.Region]
    let constants: [(offset: Int, tensor: HostTensor)]
    let inputOffsets: [Int]
    let inputCounts: [Int]
    let inputTypes: [ElementType]
    let outputOffsets: [Int]

    /// Loads an ONNX model from bytes. `batch` replaces a symbolic first input dim.
    ///
    /// `compactInt8Weights`: keep quantized weights as int8 (4x less memory) and widen them in
    /// registers at every use. The default stores them as exact float panels: the same
    /// integer arithmetic, but on baseline x86-64 (SSE2) widening costs more than the
    /// multiply, so the default is ~3-4x faster at fp32's weight size.
    ///
    /// `kernelISA`: the kernel variant to use; nil (the default) takes
    /// `EdgeRuntimeInfo.kernelISA`. Asking for one this CPU cannot run throws
    /// (`EdgeRuntimeInfo.availableKernelISAs` lists those it can).
    public init(onnx bytes: [UInt8], batch: Int = 1, compactInt8Weights: Bool = false, kernelISA: KernelISA? = nil) throws {
        precondition(batch >= 1, "batch must be at least 1")
        let kernelSet: KernelSet
        if let kernelISA {
            guard let set = KernelSet.make(kernelISA) else {
                throw ModelError(.unsupportedFeature, "this CPU cannot run the \(kernelISA) kernels (available: \(EdgeRuntimeInfo.availableKernelISAs.map(\.rawValue).joined(separator: ", ")))")
            }
            kernelSet = set
        } else {
            kernelSet = .preferred
        }
        let graph = try GraphOptimizer.optimize(try ONNXImport.graph(from: bytes))
        var compiler = GraphCompiler(batch: batch, compactInt8: compactInt8Weights, kernels: kernelSet)
        try compiler.compile(graph)
        let plan = compiler.plan()
        self.batch = batch
        inputs = compiler.inputIDs.map { TensorInfo(name: compiler.values[$0].name, type: compiler.values[$0].type, shape: compiler.values[$0].shape) }
        outputs = zip(graph.outputs, compiler.outputIDs).map { info, id in
            TensorInfo(name: info.name, type: compiler.values[id].type, shape: compiler.values[id].shape)
        }
        kernels = plan.kernels
        steps = plan.labels
        self.kernelISA = kernelSet.isa
        regions = plan.regions
        constants = plan.constants
        sessionBytes = plan.bytes
        inputOffsets = compiler.inputIDs.map { plan.offsets[$0] }
        inputCounts = inputs.map(\.count)
        inputTypes = inputs.map(\.type)
        outputOffsets = compiler.outputIDs.map { plan.offsets[compiler.root($0)] }
        weightBytes = plan.kernels.reduce(0) { $0 + $1.packedBytes }
    }

    /// Loads an ONNX model file.
    public convenience init(contentsOf path: String, batch: Int = 1, compactInt8Weights: Bool = false, kernelISA: KernelISA? = nil) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError(.unreadable, "cannot read \(path)")
        }
        try self.init(onnx: [UInt8](data), batch: batch, compactInt8Weights: compactInt8Weights, kernelISA: kernelISA)
    }
}

/// One thread's way to run a compiled model: it owns the planned memory, so `run()`
/// allocates nothing. Not Sendable: use one session per thread.
public final class InferenceSession {
    public let model: CompiledModel
    private let raw: UnsafeMutableRawPointer
    private let memory: Memory

    public init(_ model: CompiledModel) {
        self.model = model
        raw = UnsafeMutableRawPointer.allocate(byteCount: model.sessionBytes, alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: model.sessionBytes)
        for r in model.regions { bind(raw + r.offset, r.type, r.count) }
        memory = Memory(base: raw)
        for (offset, t) in model.constants {
            for (i, v) in t.values.enumerated() { writeElement(memory, t.type, offset, i, v) }
        }
    }

    deinit { raw.deallocate() }

    /// Copies `values` into input `index` (converted to its element type).
    public func setInput(_ index: Int = 0, _ values: UnsafeBufferPointer<Float>) throws(InferenceError) {
        guard values.count == model.inputCounts[index] else {
            let info = model.inputs[index]
            throw InferenceError("input '\(info.name)' takes \(info.count) values (shape \(info.shape)), got \(values.count)")
        }
        let off = model.inputOffsets[index]
        let type = model.inputTypes[index]
        if type == .float {
            if let base = values.baseAddress { memory.f32(off).update(from: base, count: values.count) }
        } else {
            for i in 0..<values.count { writeElement(memory, type, off, i, Double(values[i])) }
        }
    }

    public func setInput(_ index: Int = 0, _ values: [Float]) throws(InferenceError) {
        try values.withUnsafeBufferPointer { (p) throws(InferenceError) in try setInput(index, p) }
    }

    /// Runs every kernel once. Allocation-free.
    @inline(__always)
    public func run() {
        let m = memory
        model.kernels.withUnsafeBufferPointer { kernels in
            for k in kernels { k.run(m) }
        }
    }

    /// Median time of each kernel over `runs` runs of the whole model (a diagnostic: the
    /// clock is read between kernels, so it adds tens of nanoseconds per kernel).
    public func profile(runs: Int) -> [(step: String, nanoseconds: Double)] {
        let kernels = model.kernels
        var samples = Array(repeating: [UInt64](repeating: 0, count: runs), count: kernels.count)
        var ts = timespec()
        func now() -> UInt64 {
            clock_gettime(CLOCK_MONOTONIC, &ts)
            return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
        }
        for r in 0..<runs {
            for (i, k) in kernels.enumerated() {
                let t0 = now()
                k.run(memory)
                samples[i][r] = now() - t0
            }
        }
        return zip(model.steps, samples).map { ($0, Double($1.sorted()[runs / 2])) }
    }

    /// A float output read in place (valid until the next `run`), or nil for other types.
    public func floatOutput(_ index: Int = 0) -> UnsafeBufferPointer<Float>? {
        let info = model.outputs[index]
        guard info.type == .float else { return nil }
        return UnsafeBufferPointer(start: memory.f32(model.outputOffsets[index]), count: info.count)
    }

    /// Output `index` converted to Double (any element type), flattened row-major.
    public func output(_ index: Int = 0) -> [Double] {
        let info = model.outputs[index]
        let off = model.outputOffsets[index]
        return (0..<info.count).map { readElement(memory, info.type, off, $0) }
    }
}
