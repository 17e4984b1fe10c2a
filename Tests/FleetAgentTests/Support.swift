import FleetCore
import FleetMQTT
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

// Copied from Tests/IngestTests/Support.swift (test targets cannot import each other), with a
// broker that persists sessions across its own restarts and an MQTT subscriber that records
// everything it receives.

/// A real mosquitto on a free loopback port, started for one test and stopped by PID.
/// Persistence is on, so a subscriber's session (and its queued messages) survives a broker
/// restart, as in production.
///
/// `@unchecked Sendable`: `process` is only changed by `start`/`stop`, which one test calls
/// from its own thread; the drain thread captures the `ChildProcess`, not the broker.
final class Broker: @unchecked Sendable {
    let port: Int
    let dir: URL
    private(set) var process: ChildProcess?

    init(start: Bool = true) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("fw-agent-broker-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        // Started as root, mosquitto drops to user `mosquitto`, which must be able to save its
        // database here on SIGTERM.
        chmod(dir.path, 0o777)
        port = try freePort()
        try """
            listener \(port) 127.0.0.1
            allow_anonymous true
            max_queued_messages 0
            max_inflight_messages 0
            persistence true
            persistence_location \(dir.path)/
            log_dest stderr
            log_type error
            log_type warning
            log_type notice
            log_type information
            """.write(to: dir.appendingPathComponent("mosquitto.conf"), atomically: true, encoding: .utf8)
        if start { try self.start() }
    }

    /// Starts mosquitto and returns once it logs that it is listening (read from its log).
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
        let drain = Thread { while !p.readStderr().isEmpty {} }
        drain.start()
        try waitForPort(port)
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

/// Waits for a condition on observable state, polling every 20 ms.
func eventually(timeout: Double = 30, _ what: @autoclosure () -> String, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if (try? condition()) == true { return }
        usleep(20_000)
    }
    if try condition() { return }
    throw TestFailure("timed out waiting for: \(what())")
}

/// A child process spawned with an empty signal mask and default dispositions.
///
/// Foundation's `Process` spawns from a dispatch worker thread whose mask blocks every signal,
/// and children inherit it: a daemon started that way ignores SIGTERM.
///
/// `@unchecked Sendable`: `status` is only touched under `lock`; the rest is immutable.
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    private let stderrFD: Int32
    private var status: Int32?
    private let lock = NSLock()

    init(_ path: String, _ args: [String], stdinPath: String? = nil) throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw TestFailure("pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 0, stdinPath ?? "/dev/null", O_RDONLY, 0)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var p: pid_t = 0
        let rc = posix_spawn(&p, path, &actions, &attr, argv, environ)
        posix_spawn_file_actions_destroy(&actions)
        posix_spawnattr_destroy(&attr)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            throw TestFailure("spawning \(path): \(String(cString: strerror(rc)))")
        }
        pid = p
        stderrFD = fds[0]
    }

    /// Blocks for the next chunk of stderr; empty at end of file.
    func readStderr() -> Data {
        var buf = [UInt8](repeating: 0, count: 65536)
        let n = buf.withUnsafeMutableBytes { read(stderrFD, $0.baseAddress, $0.count) }
        return n > 0 ? Data(buf[0..<n]) : Data()
    }

    func signal(_ sig: Int32) { kill(pid, sig) }

    /// Waits for exit: the exit status, or 128 + signal when killed.
    func wait() -> Int32 {
        lock.lock()
        defer { lock.unlock() }
        if let status { return status }
        var st: Int32 = 0
        while waitpid(pid, &st, 0) < 0 && errno == EINTR {}
        let s: Int32 = (st & 0x7f) == 0 ? (st >> 8) & 0xff : 128 + (st & 0x7f)
        status = s
        return s
    }

    deinit {
        if status == nil {
            kill(pid, SIGKILL)
            _ = wait()
        }
        close(stderrFD)
    }
}

// MARK: - The agent under test

enum Paths {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let models = repoRoot.appendingPathComponent("Tests/Fixtures/models")

    static func model(_ file: String) -> String { models.appendingPathComponent(file).path }

    static var testKeyHex: String {
        (try? String(contentsOfFile: model("test-signing-key.pub.hex"), encoding: .utf8))!.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static var testPrivateKeyHex: String {
        (try? String(contentsOfFile: model("TEST-ONLY-signing-key.private.hex"), encoding: .utf8))!.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The real `fleet-agent` binary, next to the test bundle.
    static var agent: String {
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        while url.pathComponents.count > 1 {
            url.deleteLastPathComponent()
            let candidate = url.appendingPathComponent("fleet-agent")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate.path }
        }
        fatalError("fleet-agent binary not found next to the tests")
    }
}

final class TempDir {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("fw-agent-\(UUID().uuidString)")
    init() { try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) }
    deinit { try? FileManager.default.removeItem(at: url) }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
}

/// The real `fleet-agent run` as a child process, its stderr collected.
///
/// `@unchecked Sendable`: `logText` is only touched under `logLock`; the rest is immutable.
final class AgentProcess: @unchecked Sendable {
    let process: ChildProcess
    private let logLock = NSLock()
    private var logText = ""

    /// `extra` comes after the common options; `--trusted-key` is the fixtures' test key.
    init(port: Int, device: String, model: String, buffer: String, extra: [String] = [], stdinPath: String? = nil) throws {
        process = try ChildProcess(
            Paths.agent,
            ["run", "--broker", "127.0.0.1:\(port)", "--device-id", device, "--model", model, "--buffer", buffer,
             "--trusted-key", Paths.testKeyHex, "--drain-timeout", "2s"] + extra,
            stdinPath: stdinPath)
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
    }

    var log: String {
        logLock.lock()
        defer { logLock.unlock() }
        return logText
    }

    func signal(_ sig: Int32) { process.signal(sig) }
    func wait() -> Int32 { process.wait() }
}

/// A test MQTT client with a persistent session that records every message on `fleet/#`.
///
/// `@unchecked Sendable`: `received` and `connectedCount` are only touched under `lock`;
/// `client` is set once in init.
final class Subscriber: MQTTClientDelegate, @unchecked Sendable {
    struct Received {
        var topic: String
        var payload: [UInt8]
        var text: String { String(decoding: payload, as: UTF8.self) }
    }

    private let lock = NSLock()
    private var received: [Received] = []
    private var connectedCount = 0
    var client: MQTTClient!

    init(port: Int, id: String = "test-sub-\(UUID().uuidString.prefix(8))") throws {
        var o = MQTTOptions(host: "127.0.0.1", port: port, clientID: id)
        o.cleanStart = false
        o.reconnectDelaySeconds = 1
        o.reconnectDelayMaxSeconds = 1
        client = try MQTTClient(o, delegate: self)
        try client.subscribe("fleet/#", qos: 1)
        try client.start()
        try eventually(timeout: 10, "subscriber connected") { connections > 0 }
        // Subscribed once our own probe comes back (the SUBSCRIBE goes out after CONNACK).
        let probe = "fleet/_probe/\(id)"
        try eventually(timeout: 10, "subscription active") {
            try client.publish(probe, [0x31], qos: 1)
            usleep(50_000)
            return all.contains { $0.topic == probe }
        }
    }

    var connections: Int {
        lock.lock()
        defer { lock.unlock() }
        return connectedCount
    }

    var all: [Received] {
        lock.lock()
        defer { lock.unlock() }
        return received
    }

    func mqttMessage(topic: String, payload: UnsafeRawBufferPointer, qos: Int32, retained: Bool) {
        lock.lock()
        received.append(Received(topic: topic, payload: Array(payload)))
        lock.unlock()
    }

    func mqttConnected(code: Int32, sessionPresent: Bool) {
        lock.lock()
        if code == 0 { connectedCount += 1 }
        lock.unlock()
    }

    func mqttDisconnected(code: Int32) {}

    /// Telemetry of `device`, each decoded (and so validated) as the ingester would.
    func telemetry(_ device: String) throws -> [TelemetryMessage] {
        try all.filter { $0.topic == "fleet/\(device)/telemetry" }.map { r in
            switch TelemetryDecoder.decode(r.payload, receivedAtMs: Int64(Date().timeIntervalSince1970 * 1000), topicDeviceID: device) {
            case .success(let m): return m
            case .failure(let why): throw TestFailure("invalid telemetry from the agent (\(why)): \(r.text)")
            }
        }
    }

    /// Seqs of `device`'s telemetry in arrival order.
    func seqs(_ device: String) throws -> [Int64] { try telemetry(device).map(\.seq) }

    func statuses(_ device: String) -> [String] {
        all.filter { $0.topic == "fleet/\(device)/status" }.map(\.text)
    }

    func stop() { client.stop() }
}

extension TelemetryMessage {
    var sessions: [SessionRecord] {
        records.compactMap { if case .session(let s) = $0 { s } else { nil } }
    }
    var errors: [ErrorRecord] {
        records.compactMap { if case .error(let e) = $0 { e } else { nil } }
    }
    var deploys: [DeployRecord] {
        records.compactMap { if case .deploy(let d) = $0 { d } else { nil } }
    }
    var inferences: [InferenceRecord] {
        records.compactMap { if case .inference(let i) = $0 { i } else { nil } }
    }
}

/// Seqs received once each and in order: the first arrival of each seq is increasing, and
/// together they are exactly 1...max.
func checkContiguousInOrder(_ seqs: [Int64]) -> String? {
    var seen = Set<Int64>()
    var firsts: [Int64] = []
    for s in seqs where seen.insert(s).inserted { firsts.append(s) }
    guard let max = firsts.max() else { return "no messages" }
    if firsts != Array(1...max) { return "first arrivals not 1...\(max) in order: \(firsts)" }
    return nil
}
