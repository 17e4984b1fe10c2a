import EdgeRuntime
import FleetCore
import FleetMQTT
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// MQTT callbacks (libmosquitto's network thread) forwarded to the agent's inbox.
final class AgentLink: MQTTClientDelegate {
    let inbox: AgentInbox
    let replayTopic: String

    init(inbox: AgentInbox, replayTopic: String) {
        self.inbox = inbox
        self.replayTopic = replayTopic
    }

    func mqttMessage(topic: String, payload: UnsafeRawBufferPointer, qos: Int32, retained: Bool) {
        if topic == replayTopic { inbox.post(.replay(Array(payload))) }
    }

    func mqttConnected(code: Int32, sessionPresent: Bool) { inbox.post(.connected(code: code, sessionPresent: sessionPresent)) }
    func mqttDisconnected(code: Int32) { inbox.post(.disconnected(code: code)) }
    func mqttPublished(mid: Int32, reasonCode: Int32) { inbox.post(.published(mid: mid, reasonCode: reasonCode)) }
}

/// The device daemon behind `fleet-agent run`: runs the verified model on the input stream,
/// aggregates windows, tracks the session, and publishes telemetry through the on-disk buffer.
///
/// One thread (the caller of `run`) owns all state: the model session, the aggregator, the
/// buffer's SQLite connection. Everything else — MQTT callbacks, signals, input rows — arrives
/// as `AgentEvent`s through the inbox, so nothing here needs a lock.
public final class Agent {
    public let config: AgentConfig
    private let log: (String) -> Void
    private let inbox = AgentInbox()

    // Set up in `run`.
    private var buffer: TelemetryBuffer!
    private var client: MQTTClient?
    private var link: AgentLink?
    private var signals: SignalEvents?
    private var model: LoadedModel!
    private var session: InferenceSession!
    private var source: SyntheticSource?
    private var values: [Float] = []
    private var lastGood: LastGoodModel

    // Telemetry state.
    private var aggregator: WindowAggregator
    private let composer: MessageComposer
    private var tracker = SessionTracker()
    private let sampler = ResourceSampler()
    /// Records waiting for the next message (session, deploy, errors outside inference).
    private var pending: [TelemetryRecord] = []
    private var windowStartMs: Int64 = 0
    private var windowEndMs: Int64 = 0

    // Publishing state.
    private var connected = false
    /// mid -> seq of buffered messages handed to libmosquitto (it re-sends them after a
    /// reconnect by itself); acknowledged ones are marked in the buffer in batches.
    private var inFlight: [Int32: Int64] = [:]
    private var replayInFlight: [Int32: Int64] = [:]
    private var submittedThrough: Int64 = 0
    private var refused: [Int64] = []
    private var acked: [Int64] = []
    private var statusMid: Int32?
    private var reportedReplayGaps = Set<ClosedRange<Int64>>()

    // Input state.
    private var intervalNs: UInt64 = 0
    private var nextInferenceNs: UInt64 = 0
    private var queuedRows: [[UInt8]] = []
    private var queuedRowsHead = 0
    private var inputEnded = false
    private var rowNumber: Int64 = 0
    private var crashAtNs: UInt64?
    private var stopReason: String?

    public init(config: AgentConfig, log: @escaping (String) -> Void = Agent.logToStderr) {
        self.config = config
        self.log = log
        aggregator = WindowAggregator(trackInputs: config.schemaVersion == 2)
        composer = MessageComposer(schemaVersion: config.schemaVersion, deviceID: config.deviceID, device: config.device)
        lastGood = LastGoodModel(bufferPath: config.bufferPath)
    }

    public static func logToStderr(_ line: String) {
        let bytes = Array("fleet-agent: \(line)\n".utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }  // one write per line
    }

    // MARK: - Run

    /// Runs until SIGTERM/SIGINT (or the end of `--input`); returns the exit code: 0 after a
    /// clean exit, 1 when the agent could not start (the reason is logged, and reported as
    /// telemetry when the broker can be told).
    public func run() -> Int32 {
        do {
            try runThrowing()
            return 0
        } catch {
            log("error: \(error)")
            return 1
        }
    }

    private func runThrowing() throws(AgentError) {
        // Signals first: one that arrives while starting is handled, not fatal.
        let signals = SignalEvents()
        let inbox = self.inbox
        signals.on(SIGTERM) { inbox.post(.stop(signal: SIGTERM)) }
        signals.on(SIGINT) { inbox.post(.stop(signal: SIGINT)) }
        signals.on(SIGHUP) { inbox.post(.reload) }
        self.signals = signals
        let lock = try FileLock(path: config.lockPath)
        defer { withExtendedLifetime(lock) {} }
        do {
            buffer = try TelemetryBuffer(path: config.bufferPath, deviceID: config.deviceID, policy: config.bufferPolicy)
        } catch {
            throw AgentError("cannot open buffer \(config.bufferPath): \(error)")
        }

        // The previous run's session, if it never reported an end.
        var startRecords: [TelemetryRecord] = []
        let markerText = try? String(contentsOfFile: config.markerPath, encoding: .utf8)
        let previous = markerText.flatMap(SessionMarker.parse)
        if markerText != nil && previous == nil { log("warning: unreadable session marker \(config.markerPath); the previous session cannot be reported") }
        let recovered = SessionTracker.recover(previous: previous, alreadyReported: buffer.reportedSession)
        if let r = recovered {
            startRecords.append(.session(r))
            log("previous session \(r.sessionID) ended \(r.status.rawValue) (\(r.durationMs) ms)")
        }

        // The model: always verified; fall back to the last good one if this one is refused.
        let now = AgentClock.wallMs()
        let previousModel = lastGood.stored()
        switch ModelLoader.load(model: config.modelPath, manifest: config.manifestPath, trustedKeys: config.trustedKeys) {
        case .success(let m):
            model = m
            if previousModel?.sha256 != m.info.sha256 {
                startRecords.append(.deploy(DeployRecord(tsMs: now, fromVersion: previousModel?.version ?? "", toVersion: m.info.version, result: .installed)))
                storeLastGood(m)
            }
        case .failure(let refusal):
            log("error: \(refusal.message)")
            let fallback = lastGood.load(trustedKeys: config.trustedKeys)
            startRecords.append(.error(ErrorRecord(tsMs: now, code: refusal.code, message: WindowAggregator.clip(refusal.message))))
            startRecords.append(.deploy(DeployRecord(tsMs: now, fromVersion: fallback?.info.version ?? "", toVersion: refusal.attempted.version, result: refusal.deployResult)))
            guard let fallback else {
                // Nothing to run: say why (buffered, so it is delivered even if the broker is
                // down now), give the broker a moment to take it, and exit 1.
                try startMQTT()
                appendMessage(startRecords, model: refusal.attempted, terminalSession: recovered?.sessionID)
                try? FileManager.default.removeItem(atPath: config.markerPath)
                drain()
                stopMQTT()
                throw AgentError("refusing to run: \(refusal.message); no previous good model to fall back to")
            }
            log("running the last good model \(fallback.info.name) \(fallback.info.version) instead")
            model = fallback
        }
        prepare(model)
        try startMQTT()

        // The session: report it started, then leave the marker that says it is running.
        let sessionID = UUID().uuidString.lowercased()
        let start = tracker.start(sessionID: sessionID, pid: getpid(), nowMs: AgentClock.wallMs())
        startRecords.append(.session(start.record))
        appendMessage(startRecords, terminalSession: recovered?.sessionID)
        try writeMarker(start.marker)
        CrashRecorder.install(markerPath: config.markerPath)
        if !sampler.hasTemperature { log("no thermal zone under /sys/class/thermal: temp_c is reported as 0") }
        log("session \(sessionID) started: device \(config.deviceID), model \(model.info.name) \(model.info.version), buffer \(config.bufferPath) (\(buffer.unackedCount) unacknowledged), broker \(config.mqtt.host):\(config.mqtt.port)")

        if case .ndjson(let path) = config.input { try InputReader.start(path: path, inbox: inbox) }
        if let crash = config.crashAfterMs { crashAtNs = AgentClock.monoNs() + UInt64(max(0, crash)) * 1_000_000 }

        windowStartMs = AgentClock.wallMs()
        windowEndMs = nextBoundary(after: windowStartMs)
        if let rate = config.rate, rate > 0 { intervalNs = UInt64(max(1, 1e9 / rate)) }
        nextInferenceNs = AgentClock.monoNs()
        loop()
        finish()
    }

    // MARK: - Loop

    private func loop() {
        var timeout = 0.0
        while stopReason == nil {
            for e in inbox.take(waitingUpTo: timeout) { handle(e) }
            flushAcks()
            if let c = crashAtNs, AgentClock.monoNs() >= c { crash() }
            runDueInferences()
            if inputEnded && queuedRowsHead == queuedRows.count && stopReason == nil { stopReason = "end of input" }
            let now = AgentClock.wallMs()
            if now >= windowEndMs { emitWindow(endMs: windowEndMs, now: now) }
            pump()
            timeout = nextTimeout()
        }
    }

    /// Seconds until the next thing the loop must do by itself (events wake it earlier).
    private func nextTimeout() -> Double {
        let nowNs = AgentClock.monoNs()
        var wait = Double(max(0, windowEndMs - AgentClock.wallMs())) / 1000
        let paced = config.input == .synthetic || (queuedRowsHead < queuedRows.count)
        if paced && intervalNs > 0 {
            wait = min(wait, nextInferenceNs > nowNs ? Double(nextInferenceNs - nowNs) / 1e9 : 0)
        }
        if let c = crashAtNs { wait = min(wait, c > nowNs ? Double(c - nowNs) / 1e9 : 0) }
        return min(max(wait, 0), 1)
    }

    private func handle(_ event: AgentEvent) {
        switch event {
        case .connected(let code, _):
            if code == 0 {
                connected = true
                log("connected to broker \(config.mqtt.host):\(config.mqtt.port)")
                _ = try? client?.publish(config.statusTopic, StatusPayload.online(tsMs: AgentClock.wallMs()), qos: 1, retain: true)
            } else {
                log("broker refused the connection (code \(code)); retrying")
            }
        case .disconnected(let code):
            if connected { log("disconnected from broker (code \(code)); buffering until it is back") }
            connected = false
        case .published(let mid, let reason):
            if let seq = inFlight.removeValue(forKey: mid) {
                if reason < 0x80 {
                    acked.append(seq)
                } else {
                    log("broker refused message seq \(seq) (reason \(reason)); it stays buffered and is re-sent on the next connect")
                    refused.append(seq)
                }
            } else if let seq = replayInFlight.removeValue(forKey: mid), reason < 0x80 {
                acked.append(seq)
            } else if mid == statusMid {
                statusMid = nil
            }
        case .replay(let payload):
            answerReplay(payload)
        case .stop(let sig):
            stopReason = sig == SIGINT ? "SIGINT" : "SIGTERM"
        case .reload:
            reload()
        case .row(let row):
            if intervalNs == 0 {
                inbox.rowDone()
                runRow(row)
            } else {
                queuedRows.append(row)
            }
        case .inputEnded(let error):
            inputEnded = true
            if let error {
                log("error: \(error)")
                pending.append(.error(ErrorRecord(tsMs: AgentClock.wallMs(), code: "INPUT_FAILED", message: WindowAggregator.clip(error))))
            }
        }
    }

    // MARK: - Inference

    private func prepare(_ m: LoadedModel) {
        session = InferenceSession(m.compiled)
        let n = m.compiled.inputs[0].count
        values = [Float](repeating: 0, count: n)
        if config.input == .synthetic {
            source = SyntheticSource(featureCount: n, seed: config.seed, settings: config.synthetic)
        }
    }

    private func runDueInferences() {
        let nowNs = AgentClock.monoNs()
        guard intervalNs > 0 else { return }
        var n = 0
        while nowNs >= nextInferenceNs && n < 10_000 {
            if source != nil {
                let fault = source!.next(into: &values)
                infer(fault: fault)
            } else if queuedRowsHead < queuedRows.count {
                let row = queuedRows[queuedRowsHead]
                queuedRowsHead += 1
                inbox.rowDone()
                runRow(row)
            } else {
                nextInferenceNs = nowNs  // idle input: the next row runs when it arrives
                break
            }
            nextInferenceNs += intervalNs
            n += 1
        }
        if queuedRowsHead > 4096 && queuedRowsHead * 2 > queuedRows.count {
            queuedRows.removeFirst(queuedRowsHead)
            queuedRowsHead = 0
        }
        // Far behind (a long latency spike, a suspended device): do not try to catch up.
        if nowNs > nextInferenceNs + 1_000_000_000 { nextInferenceNs = nowNs }
    }

    private func runRow(_ row: [UInt8]) {
        rowNumber += 1
        do throws(InferenceError) {
            try row.withUnsafeBufferPointer { (b) throws(InferenceError) in try NDJSONRows.parseInput(b, into: &values) }
        } catch {
            aggregator.recordError(tsMs: AgentClock.wallMs(), code: "INPUT_INVALID", message: "input row \(rowNumber): \(error.message)")
            return
        }
        infer(fault: nil)
    }

    /// One inference on `values`; its latency covers input copy, run and output read.
    private func infer(fault: SyntheticSource.Fault?) {
        if let fault, fault.injectError {
            aggregator.recordError(tsMs: AgentClock.wallMs(), code: "INJECTED_FAULT", message: "inference failed by fault injection (--error-rate \(config.synthetic.errorRate))")
            return
        }
        let t0 = AgentClock.monoNs()
        do {
            try session.setInput(0, values)
        } catch {
            aggregator.recordError(tsMs: AgentClock.wallMs(), code: "INPUT_INVALID", message: "input row \(rowNumber): \(error.message)")
            return
        }
        session.run()
        if let fault, fault.spikeMs > 0 { usleep(UInt32(fault.spikeMs) * 1000) }
        guard let top = model.interpreter.read(session) else {
            aggregator.recordError(tsMs: AgentClock.wallMs(), code: "INFERENCE_FAILED", message: "model \(model.info.name) \(model.info.version) produced a non-finite output")
            return
        }
        let t1 = AgentClock.monoNs()
        values.withUnsafeBufferPointer { input in
            aggregator.recordSuccess(latencyUs: Double(t1 - t0) / 1000, confidence: top.confidence, classIndex: top.classIndex, input: input)
        }
    }

    // MARK: - Windows and messages

    private func nextBoundary(after ms: Int64) -> Int64 {
        (ms / config.windowMs + 1) * config.windowMs
    }

    /// Closes the window at `endMs` (a boundary, or now for a partial window).
    private func emitWindow(endMs: Int64, now: Int64, extra: [TelemetryRecord] = [], terminalSession: String? = nil) {
        let (inference, errors) = aggregator.finish(endMs: endMs, windowMs: endMs - windowStartMs)
        tracker.addErrors(inference.errors)
        var records = pending
        pending = []
        records.append(.inference(inference))
        records.append(contentsOf: errors.map { .error($0) })
        records.append(.resources(sampler.sample(tsMs: endMs)))
        records.append(contentsOf: extra)
        appendMessage(records, terminalSession: terminalSession)
        if let m = tracker.heartbeat(nowMs: now) { try? writeMarker(m) }
        windowStartMs = endMs
        if now >= windowEndMs { windowEndMs = nextBoundary(after: now) }
    }

    /// Buffers `records` as one or more messages. On a buffer failure the records wait for the
    /// next message.
    @discardableResult
    private func appendMessage(_ records: [TelemetryRecord], model info: ModelInfo? = nil, terminalSession: String? = nil) -> Bool {
        let envelope = info ?? model.info
        let chunks = MessageComposer.chunks(records)
        for (i, chunk) in chunks.enumerated() {
            let now = AgentClock.wallMs()
            do {
                let appended = try buffer.append(nowMs: now, terminalSession: i == chunks.count - 1 ? terminalSession : nil) { seq, drop in
                    composer.encode(seq: seq, sentAtMs: now, model: envelope, records: chunk, drop: drop)
                }
                if appended.dropped > 0 { log("buffer full: dropped \(appended.dropped) unacknowledged message(s)") }
            } catch {
                let rest = chunks[i...].flatMap { $0 }
                log("error: cannot buffer telemetry (\(error)); keeping \(rest.count) record(s) for the next message")
                pending = Array(rest.suffix(5_000)) + pending
                return false
            }
        }
        return true
    }

    // MARK: - Publishing

    /// Hands buffered messages to libmosquitto in seq order, keeping at most `maxInFlight`
    /// unacknowledged. Only while connected: when the link drops, libmosquitto re-sends what
    /// it holds after the reconnect, and the rest waits here.
    private func pump() {
        guard connected, let client else { return }
        if !refused.isEmpty {
            for seq in refused {
                if let m = try? buffer.messages(in: seq...seq, limit: 1).first, (try? buffer.isUnacked(seq)) == true,
                    let mid = try? client.publish(config.telemetryTopic, m.payload, qos: 1)
                {
                    inFlight[mid] = seq
                }
            }
            refused = []
        }
        while inFlight.count < config.maxInFlight {
            let batch: [(seq: Int64, payload: [UInt8])]
            do {
                batch = try buffer.unacked(after: submittedThrough, limit: config.maxInFlight - inFlight.count)
            } catch {
                log("error: reading the buffer: \(error)")
                return
            }
            if batch.isEmpty { return }
            for m in batch {
                do {
                    inFlight[try client.publish(config.telemetryTopic, m.payload, qos: 1)] = m.seq
                } catch {
                    log("error: publishing seq \(m.seq): \(error); it stays buffered")
                }
                submittedThrough = m.seq
            }
        }
    }

    private func flushAcks() {
        guard !acked.isEmpty else { return }
        do {
            try buffer.markAcked(acked, nowMs: AgentClock.wallMs())
            acked.removeAll(keepingCapacity: true)
        } catch {
            log("error: recording acknowledgements: \(error)")
        }
    }

    /// Re-sends buffered messages in the requested range (acknowledged ones are kept for this,
    /// the newest `--replay-keep`); what is no longer buffered is reported once as an error.
    private func answerReplay(_ payload: [UInt8]) {
        guard let requested = ReplayRequest.parse(payload) else {
            log("ignoring a malformed replay request: \(String(decoding: payload.prefix(200), as: UTF8.self))")
            return
        }
        guard requested.lowerBound <= buffer.lastSeq else { return }
        let upper = min(requested.upperBound, buffer.lastSeq, requested.lowerBound + Int64(ReplayRequest.maxMessages) - 1)
        let range = requested.lowerBound...upper
        let messages: [(seq: Int64, payload: [UInt8])]
        do { messages = try buffer.messages(in: range, limit: ReplayRequest.maxMessages) } catch {
            log("error: reading the buffer for a replay: \(error)")
            return
        }
        if let client {
            for m in messages {
                if let mid = try? client.publish(config.telemetryTopic, m.payload, qos: 1) { replayInFlight[mid] = m.seq }
            }
        }
        log("replay \(range.lowerBound)...\(range.upperBound): re-sent \(messages.count) message(s)")
        let missing = Int64(range.count) - Int64(messages.count)
        if missing > 0, !reportedReplayGaps.contains(range), reportedReplayGaps.count < 1000 {
            reportedReplayGaps.insert(range)
            pending.append(.error(ErrorRecord(
                tsMs: AgentClock.wallMs(), code: "REPLAY_UNAVAILABLE",
                message: "replay of seq \(range.lowerBound)..\(range.upperBound): \(missing) message(s) are no longer buffered (dropped when full, or older than the newest \(config.bufferPolicy.replayKeep) acknowledged)")))
        }
    }

    // MARK: - MQTT

    private func startMQTT() throws(AgentError) {
        var options = config.mqtt
        options.will = (config.statusTopic, StatusPayload.offline(tsMs: AgentClock.wallMs()), 1, true)
        let link = AgentLink(inbox: inbox, replayTopic: config.replayTopic)
        do {
            let c = try MQTTClient(options, delegate: link)
            try c.subscribe(config.replayTopic, qos: 1)
            try c.start()
            client = c
            self.link = link
        } catch {
            throw AgentError("cannot start the MQTT client for \(options.host):\(options.port): \(error)")
        }
    }

    /// Waits up to `--drain-timeout` for the broker to acknowledge everything buffered.
    private func drain() {
        let deadline = AgentClock.monoNs() + UInt64(max(0, config.drainTimeoutMs)) * 1_000_000
        var interrupted = false
        while buffer.unackedCount > 0 && AgentClock.monoNs() < deadline && !interrupted {
            for e in inbox.take(waitingUpTo: 0.05) {
                switch e {
                case .stop: interrupted = true  // a second signal: stop waiting
                case .reload, .replay: break
                case .row: inbox.rowDone()
                default: handle(e)
                }
            }
            flushAcks()
            pump()
        }
        flushAcks()
        if buffer.unackedCount > 0 {
            log("\(buffer.unackedCount) message(s) not yet acknowledged stay buffered for the next start")
        }
    }

    /// Says `offline` (retained) when connected — a clean disconnect sends no will — then
    /// disconnects.
    private func stopMQTT() {
        guard let client else { return }
        if connected, let mid = try? client.publish(config.statusTopic, StatusPayload.offline(tsMs: AgentClock.wallMs()), qos: 1, retain: true) {
            statusMid = mid
            let deadline = AgentClock.monoNs() + 1_000_000_000
            while statusMid != nil && connected && AgentClock.monoNs() < deadline {
                for e in inbox.take(waitingUpTo: 0.05) {
                    if case .published = e { handle(e) } else if case .disconnected = e { handle(e) } else if case .row = e { inbox.rowDone() }
                }
            }
            flushAcks()
        }
        client.stop()
        self.client = nil
    }

    // MARK: - Model swaps

    /// SIGHUP: load `--model` again. A model that verifies, loads and passes its smoke
    /// inference replaces the running one (`installed`); otherwise the running model stays
    /// (`failed`, or `rolled_back` when it loaded but failed the smoke inference).
    private func reload() {
        log("SIGHUP: reloading \(config.modelPath)")
        let now = AgentClock.wallMs()
        switch ModelLoader.load(model: config.modelPath, manifest: config.manifestPath, trustedKeys: config.trustedKeys) {
        case .success(let m):
            if m.info.sha256 == model.info.sha256 {
                log("model unchanged (\(m.info.name) \(m.info.version))")
                return
            }
            // The old model's part of the window is reported under the old model.
            emitWindow(endMs: now, now: now)
            let from = model.info.version
            model = m
            prepare(m)
            storeLastGood(m)
            appendMessage([.deploy(DeployRecord(tsMs: now, fromVersion: from, toVersion: m.info.version, result: .installed))])
            log("installed model \(m.info.name) \(m.info.version) (was \(from))")
        case .failure(let refusal):
            log("error: \(refusal.message); keeping \(model.info.name) \(model.info.version)")
            appendMessage([
                .error(ErrorRecord(tsMs: now, code: refusal.code, message: WindowAggregator.clip(refusal.message))),
                .deploy(DeployRecord(tsMs: now, fromVersion: model.info.version, toVersion: refusal.attempted.version, result: refusal.deployResult)),
            ])
        }
    }

    private func storeLastGood(_ m: LoadedModel) {
        do { try lastGood.store(m) } catch { log("warning: cannot keep a copy of the model next to the buffer: \(error)") }
    }

    // MARK: - Session end

    private func writeMarker(_ m: SessionMarker) throws(AgentError) {
        do {
            try Data(m.render().utf8).write(to: URL(fileURLWithPath: config.markerPath), options: .atomic)
        } catch {
            throw AgentError("cannot write the session marker \(config.markerPath): \(error)")
        }
    }

    /// `--crash-after`: record the crash in the marker, then abort() like a real crash.
    private func crash() -> Never {
        if let m = tracker.crash(nowMs: AgentClock.wallMs()) { try? writeMarker(m) }
        log("--crash-after: simulating a crash (abort)")
        abort()
    }

    /// A clean exit: the last (partial) window and `exited` in one message, the marker
    /// removed, then up to `--drain-timeout` for the broker to take what is buffered.
    private func finish() {
        log("\(stopReason ?? "stop"): finishing the session")
        let now = AgentClock.wallMs()
        // The window's errors must be in the session's count before it ends.
        let (inference, errors) = aggregator.finish(endMs: now, windowMs: now - windowStartMs)
        tracker.addErrors(inference.errors)
        var records = pending
        pending = []
        records.append(.inference(inference))
        records.append(contentsOf: errors.map { .error($0) })
        records.append(.resources(sampler.sample(tsMs: now)))
        let exit = tracker.exit(nowMs: now)
        if let exit { records.append(.session(exit)) }
        if appendMessage(records, terminalSession: exit?.sessionID) {
            try? FileManager.default.removeItem(atPath: config.markerPath)
        }
        drain()
        stopMQTT()
    }
}

extension LastGoodModel {
    /// The kept model's sha256 and version, read without verifying (only to name the model a
    /// deploy replaces; the kept model is verified before it ever runs).
    func stored() -> (sha256: String, version: String)? {
        guard let m = FileManager.default.contents(atPath: manifestPath), let manifest = try? ModelManifest.parse([UInt8](m)) else { return nil }
        return (manifest.sha256, ModelLoader.label(manifest.version))
    }
}
