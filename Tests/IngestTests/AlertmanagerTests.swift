import FleetCore
import FleetIngest
import FleetRules
import FleetStore
import Foundation
import SQLiteKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The `alertmanager: {url: ...}` receiver against a real Alertmanager (Debian's
/// prometheus-alertmanager): the engine queues, the outbox sender POSTs /api/v2/alerts, and
/// amtool reads back what Alertmanager holds.
@Suite struct AlertmanagerTests {
    static let binary = "/usr/bin/prometheus-alertmanager"
    static let amtool = "/usr/bin/amtool"

    final class Alertmanager: @unchecked Sendable {
        let process: ChildProcess
        let port: Int

        init(dir: URL) throws {
            port = try freePort()
            let config = dir.appendingPathComponent("alertmanager.yml")
            try """
                route:
                  receiver: blackhole
                receivers:
                  - name: blackhole
                """.write(to: config, atomically: true, encoding: .utf8)
            process = try ChildProcess(AlertmanagerTests.binary, [
                "--config.file=\(config.path)", "--storage.path=\(dir.appendingPathComponent("am-data").path)",
                "--web.listen-address=127.0.0.1:\(port)", "--cluster.listen-address=",
            ])
            // Ready when it logs that it listens (then one connect confirms the socket).
            var log = ""
            while !log.contains("msg=\"Listening on\"") {
                let d = process.readStderr()
                if d.isEmpty { throw TestFailure("alertmanager exited before listening: \(log)") }
                log += String(decoding: d, as: UTF8.self)
            }
            let p = process
            Thread { while !p.readStderr().isEmpty {} }.start()
            try waitForPort(port)
        }

        var url: String { "http://127.0.0.1:\(port)" }

        /// `amtool alert query -o json`: the alerts Alertmanager holds as active.
        func query() throws -> [[String: Any]] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: AlertmanagerTests.amtool)
            p.arguments = ["alert", "query", "--alertmanager.url=\(url)", "-o", "json"]
            let out = Pipe()
            let err = Pipe()
            p.standardOutput = out
            p.standardError = err
            try p.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { throw TestFailure("amtool failed: \(errText)") }
            return try JSONSerialization.jsonObject(with: data) as? [[String: Any]] ?? []
        }

        deinit {
            process.signal(SIGTERM)
            _ = process.wait()
        }
    }

    static func message(_ id: String, _ version: String, seq: Int64, at ts: Int64, count: Int64, errors: Int64) -> TelemetryMessage {
        var sketch = DDSketch()
        sketch.insert(20_000, times: count - errors)
        var hist = [Int64](repeating: 0, count: 10)
        hist[9] = count - errors
        return TelemetryMessage(
            schemaVersion: 2, deviceID: id, seq: seq, sentAtMs: ts,
            device: DeviceInfo(sku: "orin", firmware: "5.1.2", agent: "0.3.0", accelerator: "gpu"),
            model: ModelInfo(name: "det", version: version, sha256: String(repeating: "a", count: 64)),
            records: [.inference(InferenceRecord(tsMs: ts, windowMs: 10_000, count: count, errors: errors, latencyUs: sketch, confidenceHist: hist, classCounts: [ClassCount(name: "ok", count: count - errors)]))])
    }

    static func ms(_ rfc3339: Any?) -> Int64? {
        guard let s = rfc3339 as? String else { return nil }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: s).map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) }
    }

    static var installed: Bool {
        FileManager.default.isExecutableFile(atPath: binary) && FileManager.default.isExecutableFile(atPath: amtool)
    }

    @Test(.enabled(if: installed, "skipped: prometheus-alertmanager is not installed (scripts/setup.sh installs it from scripts/packages.txt)"))
    func alertsArePushedKeptAndResolvedInARealAlertmanager() throws {
        let tmp = TempDir()
        let am = try Alertmanager(dir: tmp.url)
        let rules = try RulesParser.parse("""
            receivers:
              - name: am
                alertmanager: {url: "\(am.url)"}
            groups:
              - name: reliability
                interval: 30s
                rules:
                  - alert: ErrorRateHigh
                    signal: error_rate
                    by: [model_version]
                    window: 5m
                    op: ">"
                    threshold: 0.1
                    severity: page
                    receivers: [am]
                    labels: {team: edge-ai}
                    annotations:
                      summary: "error rate {{ $value | percent }} on {{ $labels.model_version }}"
            """, file: "alerts.yaml").get()
        let writer = try StoreWriter(path: tmp.db)
        let engine = try AlertEngine(rules: rules, dbPath: tmp.db, writer: writer)
        let sender = try OutboxSender(dbPath: tmp.db, receivers: rules.receivers)
        // Event time a little before the wall clock, whole seconds.
        let base = (Int64(Date().timeIntervalSince1970) - 120) * 1000

        // Both versions fail half their inferences: two alerts, one notification.
        _ = try writer.write([
            .telemetry(Self.message("cam-1", "1.5.0", seq: 1, at: base, count: 100, errors: 50), receivedMs: base),
            .telemetry(Self.message("cam-2", "1.4.0", seq: 1, at: base, count: 100, errors: 50), receivedMs: base),
        ])
        #expect(try engine.evaluate(nowMs: base + 1000) == 1)
        let first = try sender.deliverDue(nowMs: base + 1000)
        #expect(first.map(\.status) == [200] && sender.pending == 0)
        var alerts = try am.query()
        #expect(alerts.count == 2)
        let byVersion = Dictionary(uniqueKeysWithValues: alerts.map { (($0["labels"] as? [String: String])?["model_version"] ?? "", $0) })
        #expect(Set(byVersion.keys) == ["1.4.0", "1.5.0"])
        let a15 = try #require(byVersion["1.5.0"])
        #expect(a15["labels"] as? [String: String] == ["alertname": "ErrorRateHigh", "model_version": "1.5.0", "severity": "page", "team": "edge-ai"])
        #expect((a15["annotations"] as? [String: String])?["summary"] == "error rate 50.00% on 1.5.0")
        #expect(Self.ms(a15["startsAt"]) == base + 1000)
        #expect((a15["status"] as? [String: Any])?["state"] as? String == "active")
        #expect((a15["generatorURL"] as? String)?.hasSuffix("/alerts?alertname=ErrorRateHigh") == true)
        // While firing, Alertmanager decides when it would end (its resolve_timeout), not us.
        #expect((Self.ms(a15["endsAt"]) ?? 0) > base + 60_000)

        // 1.4.0 recovers: its alert is sent with endsAt in the past, and Alertmanager drops it.
        _ = try writer.write([.telemetry(Self.message("cam-2", "1.4.0", seq: 2, at: base + 10_000, count: 10_000, errors: 0), receivedMs: base + 10_000)])
        #expect(try engine.evaluate(nowMs: base + 31_000) == 1)
        #expect(try sender.deliverDue(nowMs: base + 31_000).map(\.status) == [200])
        alerts = try am.query()
        #expect(alerts.compactMap { ($0["labels"] as? [String: String])?["model_version"] } == ["1.5.0"])

        // 1.5.0 resolves at an event time an hour ahead of the wall clock: Alertmanager still
        // lists it, with exactly our endsAt.
        let later = base + 3_600_000
        #expect(try engine.evaluate(nowMs: later) == 1)
        let q = try StoreReader(path: tmp.db).connection.prepare("SELECT body FROM outbox")
        #expect(try q.step() && String(decoding: q.blob(0), as: UTF8.self).contains("\"endsAt\":\"\(AlertEngine.rfc3339(later))\""))
        #expect(try sender.deliverDue(nowMs: later).map(\.status) == [200])
        alerts = try am.query()
        let resolved = try #require(alerts.first)
        #expect(alerts.count == 1 && Self.ms(resolved["endsAt"]) == later)
        #expect(Self.ms(resolved["startsAt"]) == base + 1000)
        #expect(sender.pending == 0)
    }
}
