import FleetAgent
import FleetCore

/// One simulated device: its own seq, sessions, model version and telemetry buffer.
///
/// `tick` produces the device's next telemetry message for the window that ends at `nowMs`
/// (scenario clock), running `inferencesPerWindow` real inferences. Publishing is the
/// caller's job; the device keeps the messages it must be able to re-send.
public struct SimDevice {
    public let spec: DeviceSpec
    public private(set) var seq: Int64 = 0
    public private(set) var version: String
    private var composer: MessageComposer
    private var sampler: InputSampler
    private var aggregator = WindowAggregator()
    private var pending: [TelemetryRecord] = []

    // The running session.
    private var sessionID = ""
    private var sessionStartMs: Int64 = 0
    private var sessionEndMs: Int64 = 0
    private var sessionErrors: Int64 = 0
    private var sessionCount = 0

    /// Messages not yet accepted by the broker, oldest first (the device was offline).
    public var unsent: [Int64] = []
    /// The last `replayCapacity` messages, for replay requests and offline buffering.
    private var ring: [[UInt8]]
    private var ringSeq: [Int64]

    // Counters.
    public private(set) var sessionsEnded = 0
    public private(set) var crashes = 0

    public init(spec: DeviceSpec, version: String, replayCapacity: Int) {
        self.spec = spec
        self.version = version
        composer = MessageComposer(schemaVersion: 2, deviceID: spec.deviceID, device: spec.info)
        sampler = InputSampler(seed: spec.seed)
        ring = Array(repeating: [], count: max(1, replayCapacity))
        ringSeq = Array(repeating: 0, count: max(1, replayCapacity))
    }

    /// The message with `seq` if it is still held.
    public func message(seq s: Int64) -> [UInt8]? {
        let i = Int(s % Int64(ring.count))
        return ringSeq[i] == s ? ring[i] : nil
    }

    public var replayCapacity: Int { ring.count }

    /// Starts the first session (the device boots at `nowMs`).
    public mutating func boot(nowMs: Int64) {
        startSession(atMs: nowMs)
    }

    /// The message for the window (`nowMs - windowMs`, `nowMs`].
    public mutating func tick(nowMs: Int64, windowMs: Int64, condition c: DeviceCondition, inferences: Int, engine: SimInference) -> (seq: Int64, bytes: [UInt8]) {
        let windowStart = nowMs - windowMs
        // A new model version: the update is installed and the inference process restarts.
        if c.modelVersion != version, engine.models.versions[c.modelVersion] != nil {
            let at = windowStart + windowMs / 2
            pending.append(.deploy(DeployRecord(tsMs: at, fromVersion: version, toVersion: c.modelVersion, result: .installed)))
            endSession(atMs: at, status: .exited)
            version = c.modelVersion
            startSession(atMs: at + 1)
        }
        // Sessions that ended inside the window; the next starts right away (a supervisor
        // restarts a crashed process within a second).
        while sessionEndMs <= nowMs {
            let crashed = sampler.uniform() < c.crashProbability
            let end = sessionEndMs
            endSession(atMs: end, status: crashed ? .crashed : .exited)
            startSession(atMs: min(nowMs, end + (crashed ? 900 : 1)))
        }
        // The window's inferences, run for real; latency follows the hardware's profile.
        let median = spec.profile.medianLatencyMs * 1000 * c.latencyFactor
        for i in 0..<inferences {
            let at = windowStart + Int64(i + 1) * windowMs / Int64(max(1, inferences))
            if c.errorRate > 0 && sampler.uniform() < c.errorRate {
                aggregator.recordError(tsMs: at, code: "SENSOR_TIMEOUT", message: "camera frame not ready after 200 ms")
                sessionErrors += 1
                continue
            }
            guard let (cls, conf) = engine.infer(version, &sampler, shift: c.inputShift) else {
                aggregator.recordError(tsMs: at, code: "NON_FINITE_OUTPUT", message: "model output was not finite")
                sessionErrors += 1
                continue
            }
            let latency = median * exp(0.25 * sampler.normal())
            aggregator.recordSuccess(latencyUs: max(1, latency), confidence: conf, classIndex: cls)
        }
        let (inference, errors) = aggregator.finish(endMs: nowMs, windowMs: windowMs)
        var records = pending
        pending.removeAll(keepingCapacity: true)
        records.append(.inference(inference))
        records += errors.map { .error($0) }
        let load = Double(inferences) / Double(max(1, windowMs)) * median / 10  // % of one core
        records.append(.resources(ResourcesRecord(
            tsMs: nowMs, cpuPct: min(100, 18 + load + 3 * abs(sampler.normal())),
            memMB: 700 + 40 * abs(sampler.normal()),
            tempC: spec.profile.idleTempC + 6 * c.latencyFactor + 1.5 * sampler.normal(),
            throttleEvents: 0)))
        seq += 1
        let bytes = composer.encode(seq: seq, sentAtMs: nowMs, model: engine.models.versions[version]!.info, records: records)
        let i = Int(seq % Int64(ring.count))
        ring[i] = bytes
        ringSeq[i] = seq
        return (seq, bytes)
    }

    private mutating func startSession(atMs t: Int64) {
        sessionCount += 1
        sessionID = "\(spec.deviceID)-s\(sessionCount)"
        sessionStartMs = t
        sessionErrors = 0
        // Inference jobs last 30-90 s.
        sessionEndMs = t + 30_000 + Int64(sampler.uniform() * 60_000)
        pending.append(.session(SessionRecord(tsMs: t, sessionID: sessionID, status: .started, durationMs: 0, errors: 0)))
    }

    private mutating func endSession(atMs t: Int64, status: SessionStatus) {
        sessionsEnded += 1
        if status == .crashed { crashes += 1 }
        pending.append(.session(SessionRecord(tsMs: t, sessionID: sessionID, status: status, durationMs: max(0, t - sessionStartMs), errors: sessionErrors)))
    }
}

#if canImport(Glibc)
    import Glibc
#endif
