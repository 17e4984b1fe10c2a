import EdgeRuntime
import FleetAgent
import FleetCore

/// The models the simulated fleet runs: one compiled model per version, shared by every
/// device (weights are read-only); each simulator thread has its own sessions (activations).
///
/// The models are real ONNX graphs built in memory (`ModelBuilder.mlp`, 64-128-64-10 like the
/// agent's fixture) and run by the EdgeRuntime, so every confidence and class a simulated
/// device reports is what the model really output for the device's input. Versions differ in
/// weights (a retrained model), so each has its own confidence distribution.
public final class SimModels: Sendable {
    public static let layers = [64, 128, 64, 10]

    public struct Version: Sendable {
        public let info: ModelInfo
        public let model: CompiledModel
    }

    public let versions: [String: Version]
    public let featureCount: Int
    /// Prototype inputs of the simulated world (shared by every device: the same factory).
    public let centers: [[Float]]

    public init(versions names: [String], seed: UInt64) throws {
        var v: [String: Version] = [:]
        for (i, name) in names.enumerated() {
            let bytes = ModelBuilder.mlp(name: Scenario.modelName, layers: Self.layers, seed: seed &+ UInt64(i) &* 7919, weightScale: 1.6)
            let model = try CompiledModel(onnx: bytes)
            v[name] = Version(info: ModelInfo(name: Scenario.modelName, version: name, sha256: ModelDigest.sha256Hex(bytes)), model: model)
        }
        versions = v
        featureCount = Self.layers[0]
        var r = SplitMix64(seed: seed ^ 0xC0FFEE)
        centers = (0..<4).map { _ in (0..<Self.layers[0]).map { _ in Float(r.gaussian() * 1.5) } }
    }
}

/// One thread's inference sessions over the shared models.
public final class SimInference {
    private var sessions: [String: InferenceSession] = [:]
    private let interpreter = OutputInterpreter(source: .scores(output: 0))
    public let models: SimModels
    private var input: [Float]
    /// Inferences run and host nanoseconds spent in them (for the benchmark).
    public private(set) var runs: Int64 = 0
    public private(set) var nanoseconds: UInt64 = 0

    public init(models: SimModels) {
        self.models = models
        input = [Float](repeating: 0, count: models.featureCount)
        for (name, v) in models.versions { sessions[name] = InferenceSession(v.model) }
    }

    /// Runs version `version` on the next sample of `sampler`: (class, top-1 confidence), or
    /// nil if the output was not finite.
    public func infer(_ version: String, _ sampler: inout InputSampler, shift: Double) -> (classIndex: Int, confidence: Double)? {
        guard let s = sessions[version] else { return nil }
        sampler.next(into: &input, centers: models.centers, shift: shift)
        let t0 = SimClock.monotonicNs()
        do { try s.setInput(0, input) } catch { return nil }
        s.run()
        let r = interpreter.read(s)
        nanoseconds += SimClock.monotonicNs() - t0
        runs += 1
        return r
    }
}

/// A device's sensor: a mixture of the world's prototype inputs plus Gaussian noise, shifted
/// by the scenario's drift. Per-device state is only the random stream.
public struct InputSampler: Sendable {
    private var rng: SplitMix64

    public init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    mutating func next(into values: inout [Float], centers: [[Float]], shift: Double) {
        let center = centers[Int(rng.next() % UInt64(centers.count))]
        for i in 0..<values.count {
            values[i] = Float(Double(center[i]) + rng.gaussian() + shift)
        }
    }

    mutating func uniform() -> Double { rng.unit() }

    mutating func normal() -> Double { rng.gaussian() }
}
