import FleetCore
import FleetMQTT
import FleetRules
import Foundation
import FleetStore
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// Settings of the live ingester (`fleetwatch ingest --broker ...`).
public struct IngestConfig: Sendable {
    public var mqtt: MQTTOptions
    public var dbPath: String
    /// Subscribe as `$share/GROUP/...` so several ingesters split one fleet. The broker hands
    /// each message to one member, so every member sees gaps in every device's seq: seq-gap
    /// replay is off (it would store the other members' messages a second time).
    public var shareGroup: String?
    public var batchSize = 2000
    public var batchIntervalMs: UInt64 = 50
    public var queueCapacity = 20_000
    /// Payload bytes the queue holds at most (with `queueCapacity`, what bounds memory).
    public var queueMaxBytes = 64 << 20
    public var staleAfterMs: Int64 = 5 * 60_000
    public var ratePerDevice = 50.0
    public var burstPerDevice = 5_000.0
    /// Replay requests published per second at most (a reconnecting fleet must not storm).
    public var replayBudgetPerSecond = 200
    public var replayMaxAttempts = 4
    public var replayFirstRetryMs: Int64 = 15_000
    public var store = StoreOptions()

    /// Receive coalescing for the ingester's connection (`MQTTOptions.coalesceMicroseconds`):
    /// FLEETWATCH_MQTT_COALESCE_US if set (0 turns it off), else 500 µs. At 1k devices it
    /// takes the network thread's wake-ups from ~6 messages each to ~30 (docs/benchmarks.md).
    public static let defaultCoalesceMicroseconds: Int = ProcessInfo.processInfo.environment["FLEETWATCH_MQTT_COALESCE_US"].flatMap { Int($0) }.map { max(0, min($0, 100_000)) } ?? 500

    public init(mqtt: MQTTOptions, dbPath: String) {
        self.mqtt = mqtt
        self.mqtt.coalesceMicroseconds = Self.defaultCoalesceMicroseconds
        self.dbPath = dbPath
        // Per-device state at most once a second per device while ingest keeps up.
        store.liveHoldMs = StoreOptions.maxLiveHoldMs
    }

    public var topics: [String] {
        let base = ["fleet/+/telemetry", "fleet/+/status"]
        guard let g = shareGroup else { return base }
        return base.map { "$share/\(g)/\($0)" }
    }
}

/// receive -> decode+validate -> bounded queue -> batch -> store, plus gap repair, presence and
/// retention. Every telemetry message ends in exactly one place: stored, duplicate, or
/// quarantined with its reason (counted in the same transaction).
///
/// Threads: libmosquitto's network thread runs `mqttMessage` (route, rate limit, decode, push,
/// which blocks when the queue is full); the thread that calls `run()` is the only writer.
/// `@unchecked Sendable`: `limiter` and `labels` are touched only on the network thread,
/// `writer` and `scheduler` only on the run thread; `stopping` is an atomic-enough flag read
/// under the queue's lock semantics (it only ever goes from false to true).
public final class IngestPipeline: MQTTClientDelegate, @unchecked Sendable {
    public let config: IngestConfig
    public let metrics = IngestMetrics()
    /// Messages, refusals and status reports, each costing its payload's bytes.
    let queue: BoundedQueue<IngestItem>
    let writer: StoreWriter
    /// One read-only connection for the pipeline's own reads (gaps, gauges), opened once.
    let reader: StoreReader
    var client: MQTTClient?
    var logger: Logger
    private var limiter: RateLimiter
    /// Label strings shared from message to message (network thread only, like `limiter`).
    private var labels = LabelCache()
    private var scheduler: ReplayScheduler
    /// Called on the writer thread after each committed batch.
    public var afterBatch: ((BatchOutcome) -> Void)?
    /// Alert rules, evaluated on event time after each batch (set before `run`).
    public private(set) var alerts: AlertEngine?
    private var eventClockMs: Int64 = .min
    private var pendingRules: RulesFile?
    private var rulesLock = NSLock()

    public init(config: IngestConfig, logger: Logger) throws {
        self.config = config
        self.logger = logger
        queue = BoundedQueue(capacity: config.queueCapacity, maxCost: config.queueMaxBytes)
        writer = try StoreWriter(path: config.dbPath, options: config.store)
        limiter = RateLimiter(ratePerSecond: config.ratePerDevice, burst: config.burstPerDevice)
        scheduler = ReplayScheduler(maxAttempts: config.replayMaxAttempts, firstRetryMs: config.replayFirstRetryMs)
        reader = try StoreReader(path: config.dbPath)
        let c = try reader.ingestCounters()
        metrics.seed(received: c.received, stored: c.stored, duplicates: c.duplicates, quarantined: c.quarantined, replaysRequested: c.replaysRequested)
        metrics.setOpenGaps(c.openGaps)
        let q = queue
        metrics.queueDepth = { q.depth }
    }

    /// Asks `run()` to finish: disconnect first (so nothing more is received and acknowledged),
    /// then close the queue; `run()` commits what is queued and returns. Safe from any thread.
    public func stop() {
        client?.stop()
        queue.close()
    }

    /// Loads alert rules; evaluation runs on the writer thread after each batch, delivery of
    /// the outbox on a thread of its own (a receiver that hangs never holds up ingest).
    public func enableAlerts(_ rules: RulesFile) throws {
        alerts = try AlertEngine(rules: rules, dbPath: config.dbPath, writer: writer)
        sender = try OutboxSender(dbPath: config.dbPath, receivers: rules.receivers)
    }

    private var sender: OutboxSender?
    /// Signalled when an evaluation queued notifications, so a page leaves at once rather
    /// than at the sender's next 250 ms poll.
    private let outboxWake = DispatchSemaphore(value: 0)

    private func startSender() {
        guard let sender else { return }
        let q = queue
        let log = logger
        let wake = outboxWake
        let t = Thread {
            while !q.isClosed {
                do {
                    for a in try sender.deliverDue(nowMs: wallClockMs()) where !(200..<300).contains(a.status) {
                        log.warning("notification not delivered; will retry", metadata: ["receiver": "\(a.receiver)", "status": "\(a.status)"])
                    }
                } catch {
                    log.error("outbox delivery failed", metadata: ["error": "\(error)"])
                }
                _ = wake.wait(timeout: .now() + .milliseconds(250))
            }
        }
        t.name = "fleetwatch.outbox"
        t.start()
    }

    /// Swaps the rules from any thread (SIGHUP); applied before the next evaluation.
    public func reloadRules(_ rules: RulesFile) {
        rulesLock.lock()
        pendingRules = rules
        rulesLock.unlock()
    }

    // MARK: - Network thread

    public func mqttMessage(topic: String, payload: UnsafeRawBufferPointer, qos: Int32, retained: Bool) {
        let now = wallClockMs()
        switch IngestClassifier.route(topic) {
        case .telemetry(let id):
            let item: IngestItem
            if limiter.allow(id, nowMs: now) {
                item = IngestClassifier.classify(topic: topic, topicDeviceID: id, payload: payload, receivedMs: now, labels: &labels)
            } else {
                item = .rejected(QuarantineEntry(
                    receivedMs: now, topic: topic, deviceID: id, reason: .rateLimited,
                    detail: "device over \(Int(config.ratePerDevice)) messages/s (burst \(Int(config.burstPerDevice)))",
                    payload: Array(payload.prefix(QuarantineEntry.maxPayloadBytes))))
            }
            if !queue.push(item, cost: payload.count) {
                // Closed while shutting down: the broker keeps what we did not take (QoS 1,
                // persistent session) only if not yet acknowledged, so say so loudly.
                logger.warning("message arrived during shutdown and was not stored; seq-gap replay will ask for it again", metadata: ["topic": "\(topic)"])
            }
            if now % 10_000 < 5 { limiter.prune(nowMs: now) }
        case .status(let id):
            if let s = IngestClassifier.parseStatus(Array(payload)) {
                queue.push(.status(deviceID: id, online: s.online, tsMs: s.tsMs))
            } else {
                logger.warning("malformed status message ignored", metadata: ["topic": "\(topic)"])
            }
        case .other:
            break
        }
    }

    public func mqttConnected(code: Int32, sessionPresent: Bool) {
        metrics.setConnected(code == 0)
        if code == 0 {
            logger.info("connected to broker", metadata: ["broker": "\(config.mqtt.host):\(config.mqtt.port)", "session_present": "\(sessionPresent)"])
        } else {
            logger.error("broker refused the connection", metadata: [
                "broker": "\(config.mqtt.host):\(config.mqtt.port)", "code": "\(code)",
                "reason": "\(connackReason(code, config.mqtt.protocolVersion))",
            ])
        }
    }

    /// libmosquitto's errors: why a connection failed below MQTT (TLS above all).
    public func mqttLog(isError: Bool, message: String) {
        let what = message.hasPrefix("OpenSSL") ? "TLS failure with the broker" : "MQTT client"
        logger.log(level: isError ? .error : .warning, "\(what)", metadata: ["broker": "\(config.mqtt.host):\(config.mqtt.port)", "detail": "\(message)"])
    }

    public func mqttDisconnected(code: Int32) {
        metrics.setConnected(false)
        if code != 0 { logger.warning("disconnected from broker; reconnecting with backoff", metadata: ["code": "\(code)"]) }
    }

    // MARK: - Writer thread

    /// Connects and runs the writer loop on the calling thread until `stop()`.
    public func run() throws {
        let client = try MQTTClient(config.mqtt, delegate: self)
        self.client = client
        for t in config.topics { try client.subscribe(t, qos: 1) }
        try client.start()
        logger.info("ingesting", metadata: ["db": "\(config.dbPath)", "topics": "\(config.topics.joined(separator: " "))"])
        if let group = config.shareGroup {
            logger.info("shared subscription: seq-gap replay is off (the other members of the group store the messages this one does not see)", metadata: ["group": "\(group)"])
        } else {
            // Gaps still open from an earlier run are asked for again.
            for g in try reader.openGaps() {
                scheduler.gapOpened(deviceID: g.deviceID, range: g.fromSeq...g.toSeq, nowMs: wallClockMs())
            }
        }
        startSender()
        var lastHousekeeping: UInt64 = 0
        while true {
            let tickDeadline = monotonicNs() + 200_000_000
            var behind = false
            var items: [IngestItem] = []
            items.reserveCapacity(config.batchSize)
            queue.pop(max: config.batchSize, deadlineNs: tickDeadline, into: &items)
            if !items.isEmpty {
                // The rest of the batch: one wake-up when it is full or its 50 ms are up, not one
                // per message.
                if items.count < config.batchSize {
                    let rest = config.batchSize - items.count
                    queue.pop(max: rest, deadlineNs: monotonicNs() + config.batchIntervalMs * 1_000_000, atLeast: rest, into: &items)
                }
                // A batch cut by size means more input is waiting: the writer may hold per-device
                // state back until ingest catches up (StoreWriter.write(_:behind:)).
                behind = items.count >= config.batchSize
                try write(consume items, behind: behind)
            } else if queue.isClosed {
                break
            }
            // State held back by the live hold is written once the fleet goes quiet, too. Not
            // while a backlog drains: then the writer's own limits apply (100k messages or 60 s,
            // StoreOptions.deferMaxMessages / deferMaxMs), or the first batch that is not full.
            if !behind, try writer.flushDeviceState(heldSince: wallClockMs() - config.store.liveHoldMs) {
                logger.trace("held-back device state written on an idle tick")
            }
            let now = monotonicNs()
            if now - lastHousekeeping >= 1_000_000_000 {
                lastHousekeeping = now
                try housekeeping()
            }
        }
        try writer.flushDeviceState()
        client.stop()
        logger.info("stopped; queue drained and committed", metadata: ["stored_total": "\(metrics.snapshot.stored)"])
    }

    /// `items` is handed on to the writer, which moves each message out of it (no copies).
    private func write(_ items: consuming [IngestItem], behind: Bool) throws {
        let t = monotonicNs()
        let o = try writer.write(consume items, behind: behind)
        metrics.batch(received: o.received, stored: o.stored, duplicates: o.duplicates, quarantined: o.quarantined, commitSeconds: Double(monotonicNs() - t) / 1e9)
        let now = wallClockMs()
        if config.shareGroup == nil {
            for g in o.newGaps { scheduler.gapOpened(deviceID: g.deviceID, range: g.fromSeq...g.toSeq, nowMs: now) }
        } else if !o.newGaps.isEmpty {
            // The broker splits each device's messages over the group: a gap here is (almost
            // always) what another member stored. Asking the device again would store those
            // messages in two databases.
            logger.debug("seq gaps not replayed under a shared subscription", metadata: ["gaps": "\(o.newGaps.count)"])
        }
        eventClockMs = max(eventClockMs, o.maxSentAtMs)
        if let alerts {
            rulesLock.lock()
            let swap = pendingRules
            pendingRules = nil
            rulesLock.unlock()
            if let swap {
                try alerts.reload(swap)
                sender?.setReceivers(swap.receivers)
                logger.notice("rules reloaded", metadata: ["rules": "\(swap.allRules.count)"])
            }
            if eventClockMs > .min {
                let queued = try alerts.evaluate(nowMs: eventClockMs)
                if queued > 0 {
                    outboxWake.signal()
                    logger.info("notifications queued", metadata: ["count": "\(queued)"])
                }
            }
        }
        afterBatch?(o)
    }

    private var housekeepingTicks = 0

    func housekeeping() throws {
        housekeepingTicks += 1
        let now = wallClockMs()
        // Gap repair: ask devices to re-send what is still missing.
        let requests = scheduler.due(nowMs: now, budget: config.replayBudgetPerSecond) { device, range in
            (try? self.writer.missing(deviceID: device, in: range)) ?? [range]
        }
        if !requests.isEmpty, let client {
            var sent = 0
            for r in requests {
                var w = JSONWriter()
                w.raw("{\"from_seq\":"); w.int(r.fromSeq); w.raw(",\"to_seq\":"); w.int(r.toSeq); w.raw("}")
                if (try? client.publish("fleet/\(r.deviceID)/replay", w.out, qos: 1)) != nil { sent += 1 }
            }
            try writer.addCounter("replays_requested", Int64(sent))
            metrics.replays(sent)
            logger.debug("replay requests sent", metadata: ["count": "\(sent)"])
        }
        // Per-device hours that ended are folded from their minutes, 250 devices a tick (~45 ms;
        // a 10k-device fleet's hour in 40 s; nothing to do the rest of the hour).
        try writer.foldDeviceHours(nowMs: now)
        if housekeepingTicks % 10 == 0 {
            let stale = try writer.markStale(nowMs: now, staleAfterMs: config.staleAfterMs)
            if stale > 0 { logger.info("devices went silent", metadata: ["count": "\(stale)", "stale_after_ms": "\(config.staleAfterMs)"]) }
            // Retention in small steps, a few per tick, so ingest never waits long.
            for _ in 0..<4 where try writer.prune(nowMs: now) > 0 {}
            metrics.setOpenGaps(try reader.ingestCounters().openGaps)
            metrics.setDevices(try reader.deviceCountsByState())
        }
    }
}
