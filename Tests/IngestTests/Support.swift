import FleetCore
import FleetIngest
import FleetMQTT
import FleetStore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A real mosquitto on a free loopback port, started for one test and stopped by PID.
/// `extraConfig` is appended to the config: listener options (TLS files) apply to its one
/// listener, and a repeated global (`allow_anonymous false`) overrides the default above.
final class Broker: @unchecked Sendable {
    let port: Int
    let dir: URL
    private(set) var process: ChildProcess?
    private let logLock = NSLock()
    private var logText = ""

    init(extraConfig: String = "") throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("fw-broker-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        port = try freePort()
        try """
            listener \(port) 127.0.0.1
            allow_anonymous true
            max_queued_messages 0
            max_inflight_messages 0
            persistence false
            log_dest stderr
            log_type error
            log_type warning
            log_type notice
            log_type information
            \(extraConfig)
            """.write(to: dir.appendingPathComponent("mosquitto.conf"), atomically: true, encoding: .utf8)
        try start()
    }

    /// Starts mosquitto and returns once it logs that it is listening (read from its log, no sleep).
    func start() throws {
        let exe = FileManager.default.isExecutableFile(atPath: "/usr/sbin/mosquitto") ? "/usr/sbin/mosquitto" : "/usr/bin/mosquitto"
        let p = try ChildProcess(exe, ["-c", dir.appendingPathComponent("mosquitto.conf").path])
        process = p
        var log = ""
        while !log.contains("Opening ipv4 listen socket on port \(port)") {
            let d = p.readStderr()
            if d.isEmpty { throw TestFailure("mosquitto exited before listening: \(log)") }
            log += String(decoding: d, as: UTF8.self)
        }
        appendLog(log)
        // Keep draining its log so it never blocks on a full pipe (kept for `log`).
        let drain = Thread { [weak self] in
            while true {
                let d = p.readStderr()
                if d.isEmpty { return }
                self?.appendLog(String(decoding: d, as: UTF8.self))
            }
        }
        drain.start()
        // The socket is open once the line is logged; one connect confirms it.
        try waitForPort(port)
    }

    /// Everything mosquitto logged so far (connections show the protocol: p2 = 3.1.1, p5 = 5).
    var log: String {
        logLock.lock()
        defer { logLock.unlock() }
        return logText
    }

    private func appendLog(_ text: String) {
        logLock.lock()
        logText += text
        logLock.unlock()
    }

    func stop() {
        guard let p = process else { return }
        p.signal(SIGTERM)
        _ = p.wait()
        process = nil
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: dir)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

func freePort() throws -> Int {
    let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(s) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard rc == 0 else { throw TestFailure("bind: \(errno)") }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

func waitForPort(_ port: Int, timeout: Double = 10) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        close(s)
        if rc == 0 { return }
        usleep(10_000)
    }
    throw TestFailure("nothing listens on port \(port)")
}

/// Waits for a condition on observable state (the database), polling every 20 ms.
func eventually(timeout: Double = 30, _ what: String, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if (try? condition()) == true { return }
        usleep(20_000)
    }
    if try condition() { return }
    throw TestFailure("timed out waiting for: \(what)")
}

/// The real `fleetwatch ingest` binary as a child process. `environment` is set for it on top
/// of ours (through env(1), which execs it: the pid is the ingester's). `awaitConnected` false:
/// return at once (a test of a connection that must fail waits for its own log line).
final class Ingester: @unchecked Sendable {
    let process: ChildProcess
    private var logLock = NSLock()
    private var logText = ""

    init(
        broker: Broker, db: String, extra: [String] = [], clientID: String? = nil,
        environment: [String: String] = [:], awaitConnected: Bool = true
    ) throws {
        let args = ["ingest", "--broker", "127.0.0.1:\(broker.port)", "--db", db, "--client-id", clientID ?? "ingest-\(broker.port)"] + extra
        let exe = productsDir().appendingPathComponent("fleetwatch").path
        if environment.isEmpty {
            process = try ChildProcess(exe, args)
        } else {
            process = try ChildProcess("/usr/bin/env", environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" } + [exe] + args)
        }
        let p = process
        let reader = Thread { [weak self] in
            while true {
                let d = p.readStderr()
                guard let self, !d.isEmpty else { return }
                self.logLock.lock()
                self.logText += String(decoding: d, as: UTF8.self)
                self.logLock.unlock()
            }
        }
        reader.start()
        // Ready when it says it is connected (its own log line, no sleep).
        if awaitConnected { try eventually(timeout: 15, "ingester connected") { log.contains("connected to broker") } }
    }

    var log: String {
        logLock.lock()
        defer { logLock.unlock() }
        return logText
    }

    func signal(_ sig: Int32) { process.signal(sig) }

    /// Waits for exit and returns the exit status (128 + signal when killed).
    func wait() -> Int32 {
        let status = process.wait()
        waited = true
        return status
    }

    private var waited = false

    /// A test that failed before stopping it: the log reader thread keeps `process` alive, so
    /// ChildProcess's own kill-on-deinit would never run.
    deinit {
        if !waited {
            process.signal(SIGKILL)
            _ = process.wait()
        }
    }
}

func productsDir() -> URL {
    var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    while url.pathComponents.count > 1 {
        url.deleteLastPathComponent()
        if FileManager.default.isExecutableFile(atPath: url.appendingPathComponent("fleetwatch").path) { return url }
    }
    fatalError("fleetwatch binary not found next to the tests")
}

/// A fleet of test devices publishing real telemetry at QoS 1, keeping every message so it can
/// honour replay requests on `fleet/<id>/replay` (as fleet-agent does from its buffer).
/// `configure` adds connection options (TLS files, credentials).
final class TestFleet: MQTTClientDelegate, @unchecked Sendable {
    let lock = NSLock()
    var sent: [String: [Int64: [UInt8]]] = [:]
    var replaysServed = 0
    /// PUBACK reason codes received (0 = delivered to a subscriber or queued for a session;
    /// 0x10 = no subscriber matched).
    var pubacks: [Int32] = []
    var client: MQTTClient!

    init(broker: Broker, id: String = "test-fleet-\(UUID().uuidString.prefix(8))", configure: (inout MQTTOptions) -> Void = { _ in }) throws {
        var o = MQTTOptions(host: "127.0.0.1", port: broker.port, clientID: id)
        o.cleanStart = false
        configure(&o)
        client = try MQTTClient(o, delegate: self)
        try client.subscribe("fleet/+/replay", qos: 1)
        try client.start()
    }

    /// Device time of seq 0: a whole hour half a day before the tests started, so a stream of
    /// a few thousand seqs per device (10 s apart) is recent data for the ingester's retention
    /// (which runs on its wall clock) and never in the future.
    static let baseMs: Int64 = (Int64(Date().timeIntervalSince1970 * 1000) / 3_600_000 - 12) * 3_600_000

    static func message(_ device: String, _ seq: Int64, version: String = "1.4.0") -> TelemetryMessage {
        let ts = baseMs + seq * 10_000
        var sketch = DDSketch()
        var hist = [Int64](repeating: 0, count: 10)
        for i in 0..<9 { sketch.insert(15_000 + Double(i * 100)); hist[9] += 1 }
        return TelemetryMessage(
            schemaVersion: 1, deviceID: device, seq: seq, sentAtMs: ts,
            device: DeviceInfo(sku: "orin-nano-8g", firmware: "5.1.2", agent: "0.3.0"),
            model: ModelInfo(name: "defect-detector", version: version, sha256: String(repeating: "e", count: 64)),
            records: [.inference(InferenceRecord(tsMs: ts, windowMs: 10_000, count: 10, errors: 1, latencyUs: sketch, confidenceHist: hist, classCounts: [ClassCount(name: "ok", count: 9)]))])
    }

    func publish(_ device: String, _ seq: Int64, bytes: [UInt8]? = nil, topicDevice: String? = nil) throws {
        let b = bytes ?? TelemetryEncoder.encode(Self.message(device, seq))
        lock.lock()
        sent[device, default: [:]][seq] = b
        lock.unlock()
        try client.publish("fleet/\(topicDevice ?? device)/telemetry", b, qos: 1)
    }

    func mqttMessage(topic: String, payload: UnsafeRawBufferPointer, qos: Int32, retained: Bool) {
        let parts = topic.split(separator: "/")
        guard parts.count == 3, parts[2] == "replay" else { return }
        let text = String(decoding: payload, as: UTF8.self)
        func field(_ name: String) -> Int64? {
            guard let r = text.range(of: "\"\(name)\":") else { return nil }
            return Int64(text[r.upperBound...].prefix { $0.isNumber })
        }
        guard let from = field("from_seq"), let to = field("to_seq") else { return }
        let device = String(parts[1])
        lock.lock()
        let msgs = (from...to).compactMap { s in sent[device]?[s].map { (s, $0) } }
        replaysServed += 1
        lock.unlock()
        for (_, b) in msgs { _ = try? client.publish("fleet/\(device)/telemetry", b, qos: 1) }
    }

    func mqttConnected(code: Int32, sessionPresent: Bool) {}
    func mqttDisconnected(code: Int32) {}
    func mqttPublished(mid: Int32, reasonCode: Int32) {
        lock.lock()
        pubacks.append(reasonCode)
        lock.unlock()
    }

    var acknowledged: [Int32] {
        lock.lock()
        defer { lock.unlock() }
        return pubacks
    }

    func stop() { client.stop() }
}

final class TempDir {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("fw-ingest-\(UUID().uuidString)")
    init() { try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) }
    deinit { try? FileManager.default.removeItem(at: url) }
    var db: String { url.appendingPathComponent("fleet.db").path }
}

func counters(_ db: String) throws -> IngestCounters {
    try StoreReader(path: db).ingestCounters()
}

