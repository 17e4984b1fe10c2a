import FleetCore

/// A seeded synthetic sensor: input vectors that fit a model's first input, with switches for
/// covariate drift, extra noise and fault injection.
///
/// Pure and deterministic: the same seed and settings give the same samples. The base signal
/// is a mixture of a few prototype vectors (fixed by the seed) plus unit Gaussian noise, so a
/// model sees structured inputs and its class mix is stable; `drift` shifts every feature's
/// mean by that many standard deviations, `noise` adds Gaussian noise with that standard
/// deviation. Faults are decided here (so tests can count them) and acted on by the caller.
public struct SyntheticSource: Sendable {
    public struct Settings: Sendable, Equatable {
        /// Mean shift of every feature, in units of the base standard deviation.
        public var drift: Double = 0
        /// Standard deviation of extra Gaussian noise.
        public var noise: Double = 0
        /// Probability that an inference is turned into an injected failure.
        public var errorRate: Double = 0
        /// Extra latency of a spiked inference, milliseconds (0: no spikes).
        public var latencySpikeMs: Int = 0
        /// Probability that an inference is spiked (when `latencySpikeMs` > 0).
        public var spikeRate: Double = 0.01

        public init(drift: Double = 0, noise: Double = 0, errorRate: Double = 0, latencySpikeMs: Int = 0, spikeRate: Double = 0.01) {
            self.drift = drift
            self.noise = noise
            self.errorRate = errorRate
            self.latencySpikeMs = latencySpikeMs
            self.spikeRate = spikeRate
        }
    }

    /// What to do with one sample besides running it.
    public struct Fault: Sendable, Equatable {
        /// Fail this inference instead of running it (counted as an error).
        public var injectError: Bool
        /// Extra milliseconds to add inside the timed region (0: none).
        public var spikeMs: Int
    }

    public static let prototypes = 4

    public let featureCount: Int
    public var settings: Settings
    private var rng: SplitMix64
    private let centers: [[Float]]

    public init(featureCount: Int, seed: UInt64, settings: Settings = Settings()) {
        precondition(featureCount >= 1, "a model input has at least one value")
        self.featureCount = featureCount
        self.settings = settings
        var r = SplitMix64(seed: seed)
        var cs: [[Float]] = []
        for _ in 0..<Self.prototypes {
            cs.append((0..<featureCount).map { _ in Float(r.gaussian() * 1.5) })
        }
        centers = cs
        rng = r
    }

    /// Fills `values` (resized to `featureCount`) with the next sample and says which faults
    /// apply to it.
    public mutating func next(into values: inout [Float]) -> Fault {
        if values.count != featureCount { values = [Float](repeating: 0, count: featureCount) }
        let center = centers[Int(rng.next() % UInt64(Self.prototypes))]
        let shift = settings.drift
        let noise = settings.noise
        for i in 0..<featureCount {
            var v = Double(center[i]) + rng.gaussian() + shift
            if noise > 0 { v += noise * rng.gaussian() }
            values[i] = Float(v)
        }
        let injectError = settings.errorRate > 0 && rng.unit() < settings.errorRate
        let spike = settings.latencySpikeMs > 0 && rng.unit() < settings.spikeRate
        return Fault(injectError: injectError, spikeMs: spike ? settings.latencySpikeMs : 0)
    }
}
