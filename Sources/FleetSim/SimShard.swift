import FleetCore
import FleetMQTT

#if canImport(Glibc)
    import Glibc
#endif

/// One simulator thread: its devices, their MQTT connections (one each, on one poll loop)
/// and its inference sessions. Everything here is touched by that thread only.
final class SimShard: MQTTConnectionSetDelegate {
    private let config: SimulatorConfig
    private let scenario: Scenario
    private let clock: SimClock
    private let endMs: Int64?
    private let stopFlag: AtomicFlag
    private let engine: SimInference
    private var devices: [SimDevice]
    private var connections: MQTTConnectionSet!
    /// Scenario time each device's next message is due.
    private var due: DueQueue
    /// Whether the scenario wants the device's network up (drop/reconnect on change).
    private var networkUp: [Bool]
    /// The `ts_ms` of the device's will (set when its connection was created); its online
    /// status carries the same value so the two order correctly at the ingester.
    private var presenceTs: [Int64]
    /// mid -> seq of messages handed to libmosquitto, per device.
    private var inFlight: [[Int32: Int64]]
    /// Devices with buffered messages to send now that they are connected.
    private var flushing: Set<Int> = []
    private(set) var stats = SimulatorStats()
    /// Connected devices after the last round, for the simulator's thread to read.
    let connectedNow = SharedCount()

    init(config: SimulatorConfig, scenario: Scenario, clock: SimClock, specs: [DeviceSpec], models: SimModels, endMs: Int64?, stop: AtomicFlag) throws {
        self.config = config
        self.scenario = scenario
        self.clock = clock
        self.endMs = endMs
        self.stopFlag = stop
        engine = SimInference(models: models)
        let now = clock.nowMs()
        devices = specs.map { SimDevice(spec: $0, version: scenario.condition(of: $0, at: 0).modelVersion, replayCapacity: config.bufferMessages) }
        networkUp = Array(repeating: true, count: specs.count)
        presenceTs = Array(repeating: now, count: specs.count)
        inFlight = Array(repeating: [:], count: specs.count)
        // Devices report on a fixed interval with phases spread over it, as a real fleet does.
        due = DueQueue(capacity: specs.count)
        for (i, s) in specs.enumerated() {
            let phase = Int64(Double(config.intervalMs) * Double(s.seed % 10_000) / 10_000)
            due.push(now + phase + 1, i)
        }
        connections = MQTTConnectionSet(host: config.host, port: config.port, keepAliveSeconds: 60, delegate: self)
        for i in devices.indices {
            devices[i].boot(nowMs: now)
            let id = specs[i].deviceID
            _ = try connections.add(
                clientID: id, will: ("fleet/\(id)/status", Self.status(online: false, tsMs: now), 1, true),
                subscriptions: ["fleet/\(id)/replay"], sessionExpirySeconds: 24 * 3600)
        }
    }

    static func status(online: Bool, tsMs: Int64) -> [UInt8] {
        Array("{\"state\":\"\(online ? "online" : "offline")\",\"ts_ms\":\(tsMs)}".utf8)
    }

    /// The loop runs in rounds of at least this long (wall): each `poll` walks every
    /// connection, so rounds driven by every incoming PUBACK would cost O(devices) each.
    static let roundNs: UInt64 = 20_000_000

    func run() {
        var roundStart: UInt64 = 0
        while !stopFlag.isSet {
            let elapsed = SimClock.monotonicNs() &- roundStart
            if roundStart > 0 && elapsed < Self.roundNs { usleep(UInt32((Self.roundNs - elapsed) / 1000)) }
            roundStart = SimClock.monotonicNs()
            let now = clock.nowMs()
            if let endMs, now >= endMs { break }
            // Due devices, a bounded number per round so the connections keep being served.
            var produced = 0
            while produced < 4096, let (t, i) = due.peek(), t <= now {
                due.pop()
                tick(i, dueMs: t, nowMs: now)
                due.push(t + config.intervalMs, i)
                produced += 1
            }
            flushBuffers()
            // Serve the connections; wait in poll only when nothing is due within the round.
            var timeoutMs: Int32 = 0
            if produced < 4096, let (t, _) = due.peek() {
                timeoutMs = Int32(max(0, min(50, clock.wallNs(until: t) / 1_000_000 - 20)))
            }
            connections.poll(timeoutMs: timeoutMs)
            connectedNow.set(connections.connectedCount)
        }
        finish()
    }

    private func tick(_ i: Int, dueMs: Int64, nowMs: Int64) {
        let spec = devices[i].spec
        let c = scenario.condition(of: spec, at: dueMs - clock.startMs)
        stats.maxLagMs = max(stats.maxLagMs, Double(nowMs - dueMs) / config.speed)
        if c.connected != networkUp[i] {
            networkUp[i] = c.connected
            if c.connected {
                connections.reconnect(i)
            } else {
                connections.drop(i, withWill: true)
            }
        }
        let (seq, bytes) = devices[i].tick(nowMs: dueMs, windowMs: config.intervalMs, condition: c, inferences: config.inferencesPerWindow, engine: engine)
        stats.messages += 1
        if devices[i].unsent.isEmpty, publish(i, seq: seq, bytes) {
            return
        }
        buffer(i, seq)
    }

    /// Keeps `seq` for later; past the buffer's capacity the oldest message is lost (counted).
    private func buffer(_ i: Int, _ seq: Int64) {
        devices[i].unsent.append(seq)
        if devices[i].unsent.count > devices[i].replayCapacity {
            devices[i].unsent.removeFirst()
            stats.dropped += 1
        }
    }

    @discardableResult
    private func publish(_ i: Int, seq: Int64, _ bytes: [UInt8]) -> Bool {
        guard connections.isConnected(i) else { return false }
        let mid = bytes.withUnsafeBytes { connections.publish(i, topic: "fleet/\(devices[i].spec.deviceID)/telemetry", payload: $0, qos: 1, retain: false) }
        guard let mid else { return false }
        inFlight[i][mid] = seq
        return true
    }

    private func flushBuffers() {
        guard !flushing.isEmpty else { return }
        var budget = 512
        for i in flushing {
            guard connections.isConnected(i) else { flushing.remove(i); continue }
            while budget > 0, let seq = devices[i].unsent.first {
                guard let bytes = devices[i].message(seq: seq) else {
                    devices[i].unsent.removeFirst()  // overwritten: already counted as dropped
                    continue
                }
                guard publish(i, seq: seq, bytes) else { break }
                devices[i].unsent.removeFirst()
                stats.resent += 1
                budget -= 1
            }
            if devices[i].unsent.isEmpty { flushing.remove(i) }
            if budget == 0 { break }
        }
    }

    /// Stops producing, waits (bounded) for acknowledgements, says offline, disconnects.
    private func finish() {
        let deadline = SimClock.monotonicNs() + 5_000_000_000
        while SimClock.monotonicNs() < deadline {
            flushBuffers()
            let waiting = inFlight.indices.contains { !inFlight[$0].isEmpty && connections.isConnected($0) }
            if !waiting && flushing.isEmpty { break }
            connections.poll(timeoutMs: 20)
        }
        let now = clock.nowMs()
        for i in devices.indices where connections.isConnected(i) {
            _ = Self.status(online: false, tsMs: max(now, presenceTs[i])).withUnsafeBytes {
                connections.publish(i, topic: "fleet/\(devices[i].spec.deviceID)/status", payload: $0, qos: 1, retain: true)
            }
        }
        connections.close()
        for d in devices {
            stats.unsent += Int64(d.unsent.count)
            stats.sessionsEnded += Int64(d.sessionsEnded)
            stats.crashes += Int64(d.crashes)
        }
        stats.inferences = engine.runs
        stats.inferenceNs = engine.nanoseconds
    }

    // MARK: - MQTT events (from inside `connections.poll`)

    func mqttSet(connected index: Int, code: Int32) {
        guard code == 0 else { return }
        _ = Self.status(online: true, tsMs: presenceTs[index]).withUnsafeBytes {
            connections.publish(index, topic: "fleet/\(devices[index].spec.deviceID)/status", payload: $0, qos: 1, retain: true)
        }
        // libmosquitto re-sends what was in flight on a resumed session; the rest is ours.
        if !devices[index].unsent.isEmpty { flushing.insert(index) }
    }

    func mqttSet(disconnected index: Int, code: Int32) {}

    func mqttSet(message index: Int, topic: String, payload: UnsafeRawBufferPointer) {
        guard let (from, to) = ReplayParse.range(payload), from >= 1, to >= from else { return }
        let last = min(to, devices[index].seq)
        guard from <= last else { return }
        for s in from...last {
            if let bytes = devices[index].message(seq: s) {
                if devices[index].unsent.contains(s) { continue }  // goes out with the buffer
                if publish(index, seq: s, bytes) { stats.replayed += 1 }
            } else {
                stats.replayUnavailable += 1
            }
        }
    }

    func mqttSet(published index: Int, mid: Int32, reasonCode: Int32) {
        guard inFlight[index].removeValue(forKey: mid) != nil else { return }
        if reasonCode >= 0x80 {
            // The broker refused it (quota, ACL): counted; the ingester's gap repair asks again.
            stats.refused += 1
        } else {
            stats.acknowledged += 1
        }
    }
}

/// An integer one thread writes and another reads.
final class SharedCount: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var value = 0

    init() { pthread_mutex_init(&mutex, nil) }

    func set(_ v: Int) {
        pthread_mutex_lock(&mutex)
        value = v
        pthread_mutex_unlock(&mutex)
    }

    func get() -> Int {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return value
    }
}

/// `{"from_seq":N,"to_seq":M}` (the replay request of CONTRACTS section 2), tolerant of order
/// and whitespace; nil for anything else.
enum ReplayParse {
    static func range(_ p: UnsafeRawBufferPointer) -> (Int64, Int64)? {
        guard let text = String(bytes: p, encoding: .utf8) else { return nil }
        func value(_ key: String) -> Int64? {
            guard let r = text.range(of: "\"\(key)\"") else { return nil }
            var rest = text[r.upperBound...].drop { $0 == " " || $0 == ":" }
            rest = rest.prefix { $0.isNumber }
            return Int64(rest)
        }
        guard let f = value("from_seq"), let t = value("to_seq") else { return nil }
        return (f, t)
    }
}

/// A binary min-heap of (due time, device index).
struct DueQueue {
    private var heap: [(Int64, Int)] = []

    init(capacity: Int) { heap.reserveCapacity(capacity) }

    func peek() -> (Int64, Int)? { heap.first }

    mutating func push(_ t: Int64, _ i: Int) {
        heap.append((t, i))
        var c = heap.count - 1
        while c > 0 {
            let p = (c - 1) / 2
            if heap[p].0 <= heap[c].0 { break }
            heap.swapAt(p, c)
            c = p
        }
    }

    mutating func pop() {
        let last = heap.removeLast()
        guard !heap.isEmpty else { return }
        heap[0] = last
        var p = 0
        while true {
            let l = 2 * p + 1
            let r = l + 1
            var m = p
            if l < heap.count && heap[l].0 < heap[m].0 { m = l }
            if r < heap.count && heap[r].0 < heap[m].0 { m = r }
            if m == p { break }
            heap.swapAt(p, m)
            p = m
        }
    }
}

import Foundation
