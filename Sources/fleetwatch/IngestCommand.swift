import ArgumentParser
import Dispatch
import FleetCore
import FleetIngest
import FleetMQTT
import FleetRules
import FleetStore
import Foundation
import Logging

struct Ingest: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ingest telemetry into the database: live from the broker, or captured traffic with --file.",
        discussion: """
            Live: subscribes (QoS 1, persistent session) to fleet/+/telemetry and fleet/+/status and
            commits batches every 50 ms or 2000 messages. SIGTERM/SIGINT commit what is queued and
            exit 0; SIGHUP reloads rules. Logs go to stderr. See docs/operations.md.

            --file reads captured traffic, one message a line as 'mosquitto_sub -v' prints it
            ('<topic> <payload>'), through the same validation and store path, then exits.
            Capture with: mosquitto_sub -v -t 'fleet/#' > capture.txt
            """)

    @OptionGroup var database: DatabaseOption

    @Option(help: "Broker address HOST:PORT (live ingest).")
    var broker: String?

    @Option(help: "Captured traffic to replay ('-' for stdin).")
    var file: String?

    @Option(help: "Alert rules (alerts.yaml): evaluated on event time after every batch; SIGHUP reloads.")
    var rules: String?

    @Option(help: "MQTT client id; with it the broker keeps our session (and queued messages) across restarts.")
    var clientID: String = "fleetwatch-ingest"

    @Option(help: "Subscribe as $share/GROUP/... so several ingesters split the fleet (seq-gap replay is then off).")
    var share: String?

    @Flag(help: "Use MQTT 3.1.1 instead of 5.")
    var mqtt311 = false

    @Option(help: "Broker username (password from FLEETWATCH_MQTT_PASSWORD).")
    var username: String?

    @Option(help: "CA certificate file: enables TLS.")
    var tlsCA: String?

    @Option(help: "Client certificate file (TLS).")
    var tlsCert: String?

    @Option(help: "Client key file (TLS).")
    var tlsKey: String?

    @Option(help: "A device silent this long is marked stale.")
    var staleAfter: String = "5m"

    @Option(help: "Messages per second one device may send (burst: --burst); excess is quarantined as rate_limited.")
    var maxRate: Double = 50

    @Option(help: "Burst allowance per device (a device re-sending its buffer after an outage).")
    var burst: Double = 5000

    @Option(help: "Messages per transaction.")
    var batch: Int = 2000

    @Option(help: "Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464).")
    var metricsListen: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String = "info"

    func validate() throws {
        if (file == nil) == (broker == nil) { throw ValidationError("give exactly one of --broker HOST:PORT or --file CAPTURE") }
        if batch < 1 { throw ValidationError("--batch must be at least 1") }
        if let b = broker, parseBrokerAddress(b) == nil { throw ValidationError("--broker: '\(b)' is not HOST:PORT") }
        if PromDuration.parseMs(staleAfter) == nil { throw ValidationError("--stale-after: '\(staleAfter)' is not a duration") }
        if Logger.Level(rawValue: logLevel) == nil { throw ValidationError("--log-level: '\(logLevel)' is not a log level") }
        if maxRate <= 0 || burst < 1 { throw ValidationError("--max-rate must be positive and --burst at least 1") }
    }

    func run() throws {
        let ruleSet = try rules.map(loadRules)
        if let file { return try ingestFile(file, rules: ruleSet) }
        try ingestLive(rules: ruleSet)
    }

    /// Parses the rules file; any problem is reported (file:line:column) and is fatal at start.
    func loadRules(_ path: String) throws -> RulesFile {
        guard let data = FileManager.default.contents(atPath: path) else { throw fail("cannot read rules file \(path)") }
        switch RulesParser.parse(String(decoding: data, as: UTF8.self), file: path) {
        case .success(let r): return r
        case .failure(let e):
            for err in e.errors { printError(err.description) }
            throw fail("\(path): \(e.errors.count) problem(s); fix them or run 'fleetwatch rules check \(path)'")
        }
    }

    // MARK: Live

    func ingestLive(rules ruleSet: RulesFile?) throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        var logger = Logger(label: "fleetwatch.ingest")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        let address = parseBrokerAddress(broker!)!
        var mqtt = MQTTOptions(host: address.host, port: address.port, clientID: clientID)
        mqtt.protocolVersion = mqtt311 ? .v311 : .v5
        mqtt.username = username
        mqtt.password = ProcessInfo.processInfo.environment["FLEETWATCH_MQTT_PASSWORD"]
        mqtt.tlsCAFile = tlsCA
        mqtt.tlsCertFile = tlsCert
        mqtt.tlsKeyFile = tlsKey
        var config = IngestConfig(mqtt: mqtt, dbPath: database.db)
        config.shareGroup = share
        config.batchSize = batch
        config.staleAfterMs = PromDuration.parseMs(staleAfter)!
        config.ratePerDevice = maxRate
        config.burstPerDevice = burst
        let pipeline: IngestPipeline
        do {
            pipeline = try IngestPipeline(config: config, logger: logger)
            if let ruleSet { try pipeline.enableAlerts(ruleSet) }
        } catch { throw fail("cannot open \(database.db): \(error)") }

        var metricsServer: MetricsServer?
        if let listen = metricsListen {
            guard let a = parseBrokerAddress(listen) else { throw ValidationError("--metrics-listen: '\(listen)' is not HOST:PORT") }
            do {
                metricsServer = try MetricsServer(host: a.host, port: a.port) { pipeline.metrics.render() }
                logger.info("serving metrics", metadata: ["url": "http://\(listen)/metrics"])
            } catch { throw fail("cannot listen on \(listen): \(error)") }
        }
        let log = logger
        let signals = SignalHandlers()
        signals.on(SIGTERM) { log.info("SIGTERM: finishing"); pipeline.stop() }
        signals.on(SIGINT) { log.info("SIGINT: finishing"); pipeline.stop() }
        let rulesPath = rules
        signals.on(SIGHUP) {
            guard let rulesPath else {
                log.notice("SIGHUP: no --rules file to reload")
                return
            }
            guard let data = FileManager.default.contents(atPath: rulesPath) else {
                log.error("SIGHUP: cannot read \(rulesPath); keeping the current rules")
                return
            }
            switch RulesParser.parse(String(decoding: data, as: UTF8.self), file: rulesPath) {
            case .success(let r): pipeline.reloadRules(r)
            case .failure(let e): log.error("SIGHUP: \(rulesPath) has problems; keeping the current rules", metadata: ["problems": "\(e.description)"])
            }
        }
        do { try pipeline.run() } catch { throw fail("ingest stopped: \(error)") }
        metricsServer?.stop()
        _ = signals
    }

    // MARK: File

    func ingestFile(_ file: String, rules ruleSet: RulesFile?) throws {
        let writer: StoreWriter
        var engine: AlertEngine?
        do {
            writer = try StoreWriter(path: database.db)
            if let ruleSet { engine = try AlertEngine(rules: ruleSet, dbPath: database.db, writer: writer) }
        } catch { throw fail("cannot open \(database.db): \(error)") }
        var eventClock = Int64.min
        var queued = 0
        let input: FileHandle
        if file == "-" { input = .standardInput } else {
            guard let h = FileHandle(forReadingAtPath: file) else { throw fail("cannot read \(file)") }
            input = h
        }
        var items: [IngestItem] = []
        items.reserveCapacity(batch)
        var total = BatchOutcome()
        var otherTopics = 0
        var statusLines = 0
        var badStatus = 0
        // `behind`: a full batch while the file goes on; the writer may hold per-device state
        // back until the last batch (StoreWriter.write(_:behind:)).
        func flush(behind: Bool = false) throws {
            guard !items.isEmpty else { return }
            // Handed over whole, so the writer moves each message out rather than copy it.
            var full: [IngestItem] = []
            swap(&full, &items)
            items.reserveCapacity(batch)
            let o = try writer.write(consume full, behind: behind)
            total.received += o.received
            total.stored += o.stored
            total.duplicates += o.duplicates
            total.records += o.records
            for (k, v) in o.quarantined { total.quarantined[k, default: 0] += v }
            eventClock = max(eventClock, o.maxSentAtMs)
            if let engine, eventClock > .min { queued += try engine.evaluate(nowMs: eventClock) }
        }
        var labels = LabelCache()
        do {
            try LineReader(input).forEachLine { line in
                guard !line.isEmpty else { return }
                let space = line.firstIndex(of: UInt8(ascii: " ")) ?? line.endIndex
                let topic = String(decoding: line[line.startIndex..<space], as: UTF8.self)
                let payloadStart = space < line.endIndex ? line.index(after: space) : space
                let payload = line[payloadStart...]
                let received = nowMs()
                switch IngestClassifier.route(topic) {
                case .telemetry(let topicID):
                    items.append(payload.withUnsafeBytes { IngestClassifier.classify(topic: topic, topicDeviceID: topicID, payload: $0, receivedMs: received, labels: &labels) })
                    if items.count >= batch { try flush(behind: true) }
                case .status(let id):
                    statusLines += 1
                    if let s = IngestClassifier.parseStatus(Array(payload)) {
                        try flush()
                        try writer.setState(deviceID: id, online: s.online, tsMs: s.tsMs)
                    } else {
                        badStatus += 1
                    }
                case .other:
                    otherTopics += 1
                }
            }
            try flush()
            try writer.flushDeviceState()
            // Hours that are over are folded now, so `query device` over long ranges reads hour rows.
            while try writer.foldDeviceHours(nowMs: nowMs()) > 0 {}
        } catch let e as ExitCode {
            throw e
        } catch {
            throw fail("ingest failed: \(error)")
        }
        let q = total.quarantined.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        printError("ingested \(total.received) telemetry messages: stored \(total.stored) (\(total.records) records), duplicates \(total.duplicates), quarantined \(total.quarantined.values.reduce(0, +))\(q.isEmpty ? "" : " (\(q))"); status lines \(statusLines)\(badStatus > 0 ? " (\(badStatus) malformed)" : ""); other topics skipped \(otherTopics)\(engine == nil ? "" : "; notifications queued \(queued)")")
    }
}

/// Signal handling through Dispatch: the default action is ignored and the handler runs on a
/// private queue, so it may do real work (not only async-signal-safe calls).
final class SignalHandlers: @unchecked Sendable {
    private var sources: [any DispatchSourceSignal] = []
    private let queue = DispatchQueue(label: "fleetwatch.signals")

    func on(_ sig: Int32, _ handler: @escaping @Sendable () -> Void) {
        signal(sig, SIG_IGN)
        let s = DispatchSource.makeSignalSource(signal: sig, queue: queue)
        s.setEventHandler(handler: handler)
        s.resume()
        sources.append(s)
    }
}

/// Reads a file handle line by line (LF, optional CR), in chunks of up to 1 MiB: whatever one
/// read(2) returns, so lines from a pipe (`mosquitto_sub -v ... | fleetwatch ingest --file -`)
/// are handled as they arrive, not once a whole chunk has filled.
struct LineReader {
    let handle: FileHandle

    init(_ handle: FileHandle) { self.handle = handle }

    func forEachLine(_ body: (ArraySlice<UInt8>) throws -> Void) throws {
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(handle.fileDescriptor, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
            }
            if n == 0 { break }
            buffer.append(contentsOf: chunk[..<n])
            var start = 0
            while let nl = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                var end = nl
                if end > start && buffer[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                try body(buffer[start..<end])
                start = nl + 1
            }
            buffer.removeFirst(start)
        }
        if !buffer.isEmpty {
            if buffer.last == UInt8(ascii: "\r") { buffer.removeLast() }
            try body(buffer[...])
        }
    }
}
