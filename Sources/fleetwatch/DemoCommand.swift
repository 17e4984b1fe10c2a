import ArgumentParser
import FleetCore
import FleetIngest
import FleetRules
import FleetSim
import FleetStore
import FleetTUI
import Foundation

/// `fleetwatch demo`: the whole stack on one machine — broker, simulated fleet, ingester with
/// the shipped rules, a local pager — and the TUI over it (or, headless, the pages as lines).
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the whole stack locally: broker, simulated fleet, ingester, alerts and the TUI.",
        discussion: """
            Starts mosquitto on a free 127.0.0.1 port, a simulated fleet (--scenario, default
            bad-rollout, at --speed 60: an hour of fleet time per minute), 'fleetwatch ingest' with
            the rules file (webhook receivers pointed at a local pager), and then the TUI; q stops
            everything. --headless runs the same stack for --duration (wall time) and prints each
            page as 'PAGE <firing|resolved> <alertname> <label>=<value>,...' and a final
            'SUMMARY pages=N firing=N resolved=N messages=N quarantined=N'.
            Logs and the database stay in the printed work directory with --keep.
            """)

    @Flag(help: "Run without the TUI, printing each page and a summary.")
    var headless = false

    @Option(help: "How long to run (wall time, e.g. 90s, 5m); default: until q in the TUI, 3m headless.")
    var duration: String?

    @Option(help: "Scenario: \(Scenario.Name.allCases.map(\.rawValue).joined(separator: ", ")).")
    var scenario: String = Scenario.Name.badRollout.rawValue

    @Option(help: "Simulated devices.")
    var devices: Int = 100

    @Option(help: "Time compression of the simulated fleet.")
    var speed: Double = 60

    @Option(help: "Seed of the simulated fleet.")
    var seed: UInt64 = 1

    @Option(help: "Alert rules (webhook receivers are redirected to the demo's pager).")
    var rules: String = "alerts.yaml"

    @Option(help: "Scenario start time of the simulated fleet (epoch ms or RFC 3339); default now.")
    var start: String?

    @Flag(help: "Keep the work directory (database, logs) at the end.")
    var keep = false

    @Option(help: .hidden)
    var eventsLog: String?

    @Option(help: .hidden)
    var inferences: Int = 10

    func validate() throws {
        if let d = duration, (PromDuration.parseMs(d) ?? 0) <= 0 { throw ValidationError("--duration: '\(d)' is not a duration like 90s or 5m") }
        if Scenario.Name(rawValue: scenario) == nil {
            throw ValidationError("--scenario: '\(scenario)' is not one of \(Scenario.Name.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if devices < 1 || devices > 100_000 { throw ValidationError("--devices must be between 1 and 100000") }
        if !(speed > 0 && speed <= 10_000) { throw ValidationError("--speed must be positive (at most 10000)") }
        if let s = start, parseTime(s) == nil { throw ValidationError("--start: '\(s)' is not RFC 3339 or epoch ms") }
    }

    func run() throws {
        let durationMs = duration.flatMap(PromDuration.parseMs) ?? (headless ? 180_000 : nil)
        if !headless {
            guard isatty(1) == 1, isatty(0) == 1 else {
                throw fail("demo needs a terminal for the TUI; use 'fleetwatch demo --headless --duration 3m' in scripts")
            }
        }
        let stack: DemoStack
        do {
            stack = try DemoStack(demo: self)
        } catch let e as DemoError {
            throw fail(e.message)
        }
        var code: Int32 = 0
        do {
            code = try stack.run(headless: headless, durationMs: durationMs)
        } catch let e as DemoError {
            stack.shutdown()
            // Keep the work directory only when the message points into it (logs to read).
            if !keep && !e.message.contains(stack.dir) { try? FileManager.default.removeItem(atPath: stack.dir) }
            throw fail(e.message)
        }
        if code != 0 { throw ExitCode(code) }
    }
}

struct DemoError: Error {
    var message: String
}

/// The processes and threads of one demo run, and their orderly shutdown.
final class DemoStack: @unchecked Sendable {
    let demo: Demo
    let dir: String
    let dbPath: String
    private var broker: ChildProcess?
    private var ingester: ChildProcess?
    private var receiver: WebhookReceiver?
    private var simulator: Simulator?
    private var simThread: Thread?
    private let simDone = DispatchSemaphore(value: 0)
    private var simStats: SimulatorStats?
    private let out = LineOutput()
    private var events: FileHandle?
    private var pages = (total: 0, firing: 0, resolved: 0)
    private let lock = NSLock()
    private var stopped = false

    init(demo: Demo) throws {
        self.demo = demo
        var template = Array("/tmp/fleetwatch-demo-XXXXXX".utf8CString)
        guard let p = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw DemoError(message: "cannot create a work directory in /tmp: \(String(cString: strerror(errno)))")
        }
        dir = String(cString: p)
        chmod(dir, 0o755)  // mosquitto drops to its own user when started as root
        dbPath = dir + "/fleet.db"
        if let e = demo.eventsLog {
            guard FileManager.default.createFile(atPath: e, contents: nil), let handle = FileHandle(forWritingAtPath: e) else {
                throw DemoError(message: "cannot create the events log \(e)")
            }
            events = handle
        }
    }

    /// Runs until `durationMs` (wall) passes, or the TUI quits; returns the exit code.
    func run(headless: Bool, durationMs: Int64?) throws -> Int32 {
        let mosquitto = try Self.findMosquitto()
        let exe = try Self.ownExecutable()
        // The rules, with every webhook pointed at our pager.
        guard let rulesText = try? String(contentsOfFile: demo.rules, encoding: .utf8) else {
            throw DemoError(message: "cannot read rules file \(demo.rules) (run from the source tree, or give --rules)")
        }
        let receiver = try WebhookReceiver { [weak self] _, body in self?.page(body) }
        self.receiver = receiver
        let rewritten = Self.redirectWebhooks(rulesText, to: "http://127.0.0.1:\(receiver.port)/hook")
        let rulesPath = dir + "/alerts.yaml"
        try rewritten.write(toFile: rulesPath, atomically: true, encoding: .utf8)
        switch RulesParser.parse(rewritten, file: rulesPath) {
        case .failure(let errors): throw DemoError(message: "rules \(demo.rules): \(errors.description)")
        case .success: break
        }

        // Broker.
        let port: Int
        do { port = try Loopback.freePort() } catch { throw DemoError(message: "\(error)") }
        let conf = dir + "/mosquitto.conf"
        try """
            listener \(port) 127.0.0.1
            allow_anonymous true
            persistence false
            max_queued_messages 100000
            max_inflight_messages 0
            """.write(toFile: conf, atomically: true, encoding: .utf8)
        do {
            broker = try ChildProcess(mosquitto, ["-c", conf], logPath: dir + "/mosquitto.log")
        } catch {
            throw DemoError(message: "cannot start \(mosquitto): \(error)")
        }
        guard Loopback.waitForPort(port, seconds: 10) else {
            throw DemoError(message: "mosquitto did not listen on 127.0.0.1:\(port) (log: \(dir)/mosquitto.log)")
        }

        // Ingester, with the rules.
        let ingestLog = dir + "/ingest.log"
        ingester = try ChildProcess(exe, [
            "ingest", "--broker", "127.0.0.1:\(port)", "--db", dbPath, "--rules", rulesPath, "--client-id", "demo-ingest",
        ], logPath: ingestLog)
        guard Self.waitForLog(ingestLog, containing: "connected to broker", seconds: 15) else {
            throw DemoError(message: "the ingester did not connect (log: \(ingestLog))")
        }

        // The simulated fleet, in this process (the TUI and the pager read its clock).
        var config = SimulatorConfig(host: "127.0.0.1", port: port, devices: demo.devices)
        config.scenario = Scenario.Name(rawValue: demo.scenario)!
        config.seed = demo.seed
        config.speed = demo.speed
        config.startMs = demo.start.flatMap(parseTime)
        config.inferencesPerWindow = demo.inferences
        // Warnings go to stderr only without the TUI (which owns the terminal).
        let out = self.out
        let sim = Simulator(config: config, output: { [weak self] line in self?.simLine(line, headless: headless) },
                            warn: { line in if headless { out.err("fleetwatch demo: simulator: \(line)") } })
        simulator = sim
        let t = Thread { [self] in
            do {
                simStats = try sim.run()
            } catch {
                out.err("fleetwatch demo: simulator: \(error)")
            }
            simDone.signal()
        }
        t.name = "fleetwatch.demo.sim"
        t.start()
        simThread = t
        if !headless || demo.keep {
            out.err("fleetwatch demo: \(demo.devices) devices, scenario \(demo.scenario) at \(demo.speed)x; work directory \(dir)")
        }

        var code: Int32 = 0
        if headless {
            let end = DispatchTime.now() + .milliseconds(Int(durationMs ?? 180_000))
            if simDone.wait(timeout: end) == .success {
                out.err("fleetwatch demo: the simulator stopped early")
                code = 1
            }
        } else {
            var options = TopOptions(dbPath: dbPath)
            options.refreshMs = 1000
            options.color = (ProcessInfo.processInfo.environment["NO_COLOR"] ?? "").isEmpty
            options.thresholds = Thresholds.loading(yaml: rulesText)
            let clock = sim.clock
            options.clock = { clock.nowMs() }
            do {
                _ = try TopApp.run(options)
            } catch let e as TUIError {
                shutdown()
                throw DemoError(message: e.description)
            }
        }
        let summary = shutdown()
        if headless, let s = summary {
            out.line("SUMMARY pages=\(s.pages) firing=\(s.firing) resolved=\(s.resolved) messages=\(s.messages) quarantined=\(s.quarantined)")
        }
        if !demo.keep && code == 0 { try? FileManager.default.removeItem(atPath: dir) }
        return code
    }

    struct Summary {
        var pages: Int, firing: Int, resolved: Int, messages: Int64, quarantined: Int64
    }

    /// Stops the fleet, lets the ingester take what is in flight, stops it and the broker.
    @discardableResult
    func shutdown() -> Summary? {
        lock.lock()
        if stopped { lock.unlock(); return nil }
        stopped = true
        lock.unlock()
        if let sim = simulator {
            sim.stop()
            _ = simDone.wait(timeout: .now() + 15)
        }
        // Everything the broker acknowledged reaches the ingester: wait for it (bounded).
        var counters: IngestCounters?
        if let acked = simStats?.acknowledged, ingester != nil {
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline {
                counters = try? StoreReader(path: dbPath).ingestCounters()
                if let c = counters, c.received >= acked { break }
                usleep(100_000)
            }
        }
        if let i = ingester {
            i.signal(SIGTERM)
            if i.wait() != 0 { out.err("fleetwatch demo: the ingester exited with status \(i.wait()) (log: \(dir)/ingest.log)") }
        }
        counters = (try? StoreReader(path: dbPath).ingestCounters()) ?? counters
        if let b = broker {
            b.signal(SIGTERM)
            _ = b.wait()
        }
        receiver?.close()
        lock.lock()
        let p = pages
        lock.unlock()
        let quarantined = counters?.quarantined.values.reduce(0, +) ?? 0
        return Summary(pages: p.total, firing: p.firing, resolved: p.resolved, messages: counters?.received ?? 0, quarantined: quarantined)
    }

    // MARK: - Output

    private func simLine(_ line: String, headless: Bool) {
        if let events, line.hasPrefix("CLOCK ") || line.hasPrefix("EVENT ") || line.hasPrefix("SIMULATED ") {
            events.write(Data((Self.jsonLine(["type": "sim", "line": line]) + "\n").utf8))
        }
        if headless && demo.keep { out.err(line) }
    }

    /// One webhook POST: a line per alert in it.
    private func page(_ body: [UInt8]) {
        let arrivedMs = simulator?.clock.nowMs() ?? 0
        guard let json = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
            let alerts = json["alerts"] as? [[String: Any]]
        else {
            out.err("fleetwatch demo: the pager got a body that is not an Alertmanager webhook")
            return
        }
        for a in alerts {
            let status = (a["status"] as? String) ?? "?"
            let labels = (a["labels"] as? [String: String]) ?? [:]
            let name = labels["alertname"] ?? "?"
            let rest = labels.filter { $0.key != "alertname" }.sorted { $0.key < $1.key }
                .map { "\(TerminalText.inert($0.key))=\(TerminalText.inert($0.value))" }.joined(separator: ",")
            lock.lock()
            pages.total += 1
            if status == "firing" { pages.firing += 1 } else if status == "resolved" { pages.resolved += 1 }
            lock.unlock()
            if demo.headless { out.line("PAGE \(status) \(TerminalText.inert(name)) \(rest)") }
            if let events {
                var obj: [String: Any] = ["type": "page", "status": status, "labels": labels, "scenario_ms": arrivedMs]
                obj["startsAt"] = a["startsAt"]
                events.write(Data((Self.jsonLine(obj) + "\n").utf8))
            }
        }
    }

    static func jsonLine(_ obj: [String: Any]) -> String {
        (try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    // MARK: - Helpers

    /// Points every `url:` of the rules file at `url` (the shipped file's receivers are webhooks).
    static func redirectWebhooks(_ text: String, to url: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            let trimmed = line.drop { $0 == " " }
            guard trimmed.hasPrefix("url:") else { return String(line) }
            let indent = line.count - trimmed.count
            return String(repeating: " ", count: indent) + "url: " + url
        }.joined(separator: "\n")
    }

    static func findMosquitto() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let dirs = ["/usr/sbin", "/usr/local/sbin"] + path.split(separator: ":").map(String.init)
        for d in dirs where access(d + "/mosquitto", X_OK) == 0 { return d + "/mosquitto" }
        throw DemoError(message: "mosquitto not found: install the broker with 'apt-get install -y mosquitto' (Debian package mosquitto), or run scripts/setup.sh")
    }

    static func ownExecutable() throws -> String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { throw DemoError(message: "cannot find my own executable (/proc/self/exe)") }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func waitForLog(_ path: String, containing text: String, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let s = try? String(contentsOfFile: path, encoding: .utf8), s.contains(text) { return true }
            usleep(20_000)
        }
        return false
    }
}

/// Whole lines to stdout/stderr, one write each, from any thread.
final class LineOutput: Sendable {
    func line(_ s: String) { write(1, s) }
    func err(_ s: String) { write(2, s) }
    private func write(_ fd: Int32, _ s: String) {
        let bytes = Array((s + "\n").utf8)
        _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    }
}
