import FleetCore
import FleetMQTT

#if canImport(Glibc)
    import Glibc
#endif

/// Settings of `fleetwatch simulate`.
public struct SimulatorConfig: Sendable {
    public var host: String
    public var port: Int
    public var devices: Int
    public var scenario: Scenario.Name = .steady
    /// Scenario time to run; nil: until `stop()`.
    public var durationMs: Int64?
    public var seed: UInt64 = 1
    /// Scenario milliseconds per wall millisecond.
    public var speed: Double = 1
    /// One message per device per interval (scenario time).
    public var intervalMs: Int64 = 10_000
    /// Real inferences per device per interval.
    public var inferencesPerWindow = 20
    /// Threads, each with its own devices, connections and inference sessions.
    public var threads = 2
    /// Messages each device keeps for re-sending (replay requests, network outages).
    public var bufferMessages = 128
    /// Scenario time at the start (epoch ms); nil: the wall clock at the start.
    public var startMs: Int64?

    public init(host: String, port: Int, devices: Int) {
        self.host = host
        self.port = port
        self.devices = devices
    }
}

/// Counts of one run (summed over threads).
public struct SimulatorStats: Sendable, Equatable {
    public var messages: Int64 = 0
    public var acknowledged: Int64 = 0
    public var resent: Int64 = 0
    public var replayed: Int64 = 0
    public var replayUnavailable: Int64 = 0
    public var refused: Int64 = 0
    public var dropped: Int64 = 0
    public var inferences: Int64 = 0
    public var inferenceNs: UInt64 = 0
    public var sessionsEnded: Int64 = 0
    public var crashes: Int64 = 0
    /// Largest delay, wall milliseconds, between a message being due and being produced.
    public var maxLagMs: Double = 0
    /// Messages still waiting in device buffers at the end (devices that were offline).
    public var unsent: Int64 = 0

    static func + (a: Self, b: Self) -> Self {
        var s = a
        s.messages += b.messages; s.acknowledged += b.acknowledged; s.resent += b.resent
        s.replayed += b.replayed; s.replayUnavailable += b.replayUnavailable; s.refused += b.refused
        s.dropped += b.dropped; s.inferences += b.inferences; s.inferenceNs += b.inferenceNs
        s.sessionsEnded += b.sessionsEnded; s.crashes += b.crashes; s.maxLagMs = max(a.maxLagMs, b.maxLagMs)
        s.unsent += b.unsent
        return s
    }
}

/// The scenario clock: `startMs` at the start, advancing `speed` times as fast as the wall.
public struct SimClock: Sendable {
    public let startMs: Int64
    public let speed: Double
    let originNs: UInt64

    public init(startMs: Int64, speed: Double, originNs: UInt64 = SimClock.monotonicNs()) {
        self.startMs = startMs
        self.speed = speed
        self.originNs = originNs
    }

    public func nowMs(atNs ns: UInt64 = SimClock.monotonicNs()) -> Int64 {
        startMs + Int64(Double(ns &- originNs) / 1e6 * speed)
    }

    /// Wall nanoseconds from now until scenario time `t`.
    public func wallNs(until t: Int64, fromNs ns: UInt64 = SimClock.monotonicNs()) -> Int64 {
        let targetNs = Double(t - startMs) / speed * 1e6
        return Int64(targetNs) - Int64(ns &- originNs)
    }

    public static func monotonicNs() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    public static func wallMs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

/// `fleetwatch simulate`: N devices in one process, on `threads` threads.
///
/// Each thread owns its devices, one MQTT connection per device (so each device has its own
/// will and its own persistent session for replay requests) multiplexed on one poll loop, and
/// its own inference sessions over the shared models. The calling thread prints the story's
/// events as scenario time reaches them.
public final class Simulator: @unchecked Sendable {
    public let config: SimulatorConfig
    public let scenario: Scenario
    public let clock: SimClock
    private let output: @Sendable (String) -> Void
    private let warn: @Sendable (String) -> Void
    private var stopFlag = AtomicFlag()

    /// `output`: the CLOCK/EVENT/SIMULATED lines; `warn`: problems worth a person's attention
    /// (default: stderr).
    public init(config: SimulatorConfig, output: @escaping @Sendable (String) -> Void, warn: (@Sendable (String) -> Void)? = nil) {
        self.config = config
        self.scenario = Scenario(config.scenario)
        self.output = output
        self.warn = warn ?? { line in
            let bytes = Array("fleetwatch simulate: \(line)\n".utf8)
            _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        }
        clock = SimClock(startMs: config.startMs ?? SimClock.wallMs(), speed: config.speed)
    }

    /// Ends the run (from any thread, e.g. a signal handler's thread).
    public func stop() { stopFlag.set() }

    /// Runs until the duration passes or `stop()`; returns the run's counts.
    public func run() throws -> SimulatorStats {
        let models = try SimModels(versions: [Scenario.currentVersion, Scenario.newVersion], seed: config.seed)
        let specs = FleetPlan.devices(count: config.devices, seed: config.seed)
        let threads = max(1, min(config.threads, specs.count))
        let endMs = config.durationMs.map { clock.startMs + $0 }
        var shards: [SimShard] = []
        for t in 0..<threads {
            let mine = stride(from: t, to: specs.count, by: threads).map { specs[$0] }
            shards.append(try SimShard(config: config, scenario: scenario, clock: clock, specs: mine, models: models, endMs: endMs, stop: stopFlag))
        }
        output("CLOCK start_ms=\(clock.startMs) wall_ms=\(SimClock.wallMs()) speed=\(config.speed) scenario=\(config.scenario.rawValue) devices=\(specs.count) interval_ms=\(config.intervalMs)")
        var workers: [ThreadHandle] = []
        for s in shards { workers.append(ThreadHandle.start(name: "fleetwatch.sim") { s.run() }) }

        // The story, printed as it happens.
        var pendingEvents = scenario.events[...]
        let startedNs = SimClock.monotonicNs()
        var nextConnectionCheckNs = startedNs + 5_000_000_000
        var warnedDisconnected = false
        while !stopFlag.isSet {
            let now = clock.nowMs()
            // Say so when no device can reach the broker (they keep retrying and buffering).
            if SimClock.monotonicNs() >= nextConnectionCheckNs {
                nextConnectionCheckNs += 10_000_000_000
                let connected = shards.reduce(0) { $0 + $1.connectedNow.get() }
                if connected == 0 && !warnedDisconnected {
                    warn("no device is connected to \(config.host):\(config.port); retrying (devices buffer up to \(config.bufferMessages) messages each)")
                    warnedDisconnected = true
                } else if connected > 0 && warnedDisconnected {
                    warn("devices are connected again (\(connected) of \(specs.count))")
                    warnedDisconnected = false
                }
            }
            while let e = pendingEvents.first, clock.startMs + e.atMs <= now {
                output("EVENT \(clock.startMs + e.atMs) \(e.name) \(e.detail)")
                pendingEvents = pendingEvents.dropFirst()
            }
            if let endMs, now >= endMs { break }
            var waitNs: Int64 = 200_000_000
            if let e = pendingEvents.first { waitNs = min(waitNs, clock.wallNs(until: clock.startMs + e.atMs)) }
            if let endMs { waitNs = min(waitNs, clock.wallNs(until: endMs)) }
            stopFlag.wait(ns: max(1_000_000, waitNs))
        }
        stopFlag.set()
        for w in workers { w.join() }
        let stats = shards.map(\.stats).reduce(SimulatorStats(), +)
        output("SIMULATED devices=\(specs.count) messages=\(stats.messages) acknowledged=\(stats.acknowledged) resent=\(stats.resent) replayed=\(stats.replayed) unsent=\(stats.unsent) dropped=\(stats.dropped) sessions=\(stats.sessionsEnded) crashes=\(stats.crashes) inferences=\(stats.inferences) max_lag_ms=\(Int(stats.maxLagMs.rounded()))")
        return stats
    }
}

/// A set-once flag with a timed wait, shared by the simulator's threads.
struct AtomicFlag: @unchecked Sendable {
    private final class Box: @unchecked Sendable {
        var mutex = pthread_mutex_t()
        var cond = pthread_cond_t()
        var value = false
        init() {
            pthread_mutex_init(&mutex, nil)
            pthread_cond_init(&cond, nil)
        }
    }

    private let box = Box()

    var isSet: Bool {
        pthread_mutex_lock(&box.mutex)
        defer { pthread_mutex_unlock(&box.mutex) }
        return box.value
    }

    func set() {
        pthread_mutex_lock(&box.mutex)
        box.value = true
        pthread_cond_broadcast(&box.cond)
        pthread_mutex_unlock(&box.mutex)
    }

    /// Waits up to `ns` or until set.
    func wait(ns: Int64) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let total = Int64(ts.tv_nsec) + ns
        ts.tv_sec += Int(total / 1_000_000_000)
        ts.tv_nsec = Int(total % 1_000_000_000)
        pthread_mutex_lock(&box.mutex)
        if !box.value { pthread_cond_timedwait(&box.cond, &box.mutex, &ts) }
        pthread_mutex_unlock(&box.mutex)
    }
}

/// A joinable thread running a closure.
final class ThreadHandle: @unchecked Sendable {
    private var thread = pthread_t()
    private let body: () -> Void

    private init(_ body: @escaping () -> Void) { self.body = body }

    static func start(name: String, _ body: @escaping () -> Void) -> ThreadHandle {
        let h = ThreadHandle(body)
        let ctx = Unmanaged.passRetained(h).toOpaque()
        pthread_create(&h.thread, nil, { ctx in
            let h = Unmanaged<ThreadHandle>.fromOpaque(ctx!).takeRetainedValue()
            h.body()
            return nil
        }, ctx)
        return h
    }

    func join() { pthread_join(thread, nil) }
}
