import FleetCore
import Foundation
import Testing

/// `fleetwatch rules test` and `fleetwatch rules backtest` through the real binary.
@Suite struct RulesCLITests {
    static let t0: Int64 = 1_764_417_600_000  // 2025-11-29T12:00:00Z

    func tempDir() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fw-rules-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    // MARK: - rules test

    @Test func theShippedRulesPassTheirTests() throws {
        let r = try CLI.run("fleetwatch", ["rules", "test", "Tests/Fixtures/rules/alerts_test.yaml"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.filter { $0.hasPrefix("PASS  Tests/Fixtures/rules/alerts_test.yaml: ") }.count == 5)
        #expect(lines.contains("PASS  Tests/Fixtures/rules/alerts_test.yaml: a crashing version pages after 'for', the healthy one stays quiet"))
        #expect(lines.contains("PASS  Tests/Fixtures/rules/alerts_test.yaml: two of ten devices silent for more than 5 minutes page, and resolve when they return"))
        #expect(lines.last == "5 tests: 5 passed, 0 failed")
        #expect(r.stderr.isEmpty)
    }

    @Test func aFailingTestPrintsADiffAndExits1() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("wrong_test.yaml").path
        try """
            rule_files: [\(CLI.repoRoot.appendingPathComponent("alerts.yaml").path)]
            tests:
              - name: right
                series: [{device: d, model_version: 2.0.0, sku: s, sessions: "9*exited+crashed x10"}]
                alerts: [{at: 3m, alertname: CrashFreeSessionsLow, expect: []}]
              - name: wrong
                series: [{device: d, model_version: 2.0.0, sku: s, sessions: "9*exited+crashed x10"}]
                alerts:
                  - at: 9m
                    alertname: CrashFreeSessionsLow
                    expect: [{labels: {model_version: 2.0.0, sku: s}, state: firing}]
                  - {at: 9m, alertname: NoSuchAlert, expect: []}
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let r = try CLI.run("fleetwatch", ["rules", "test", file])
        #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines == [
            "PASS  \(file): right",
            "FAIL  \(file): wrong (line 6)",
            "      at 9m (2025-01-01T00:09:00.000Z), CrashFreeSessionsLow (line 9):",
            "        - firing {model_version=\"2.0.0\", sku=\"s\"}",
            "        + pending {model_version=\"2.0.0\", sku=\"s\"} value=0.9  (state)",
            "      at 9m (2025-01-01T00:09:00.000Z), NoSuchAlert (line 12):",
            "        no rule named NoSuchAlert in the rules files",
            "2 tests: 1 passed, 1 failed  (- expected, + got)",
        ])
    }

    @Test func badFilesAreReportedWithPositions() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("bad_test.yaml").path
        try "rule_files: [alerts.yaml]\ntests:\n  - name: x\n    alerts: [{at: 1m, alertname: A, expect: [{state: burning}]}]\n"
            .write(toFile: file, atomically: true, encoding: .utf8)
        let bad = try CLI.run("fleetwatch", ["rules", "test", file])
        #expect(bad.status == 1 && bad.stdout.isEmpty)
        #expect(bad.stderr == "\(file):4:54: state 'burning' must be pending, firing or resolved\n", "\(bad.stderr)")
        // The rules file it names is missing: one line, exit 1.
        try "rule_files: [nope.yaml]\ntests: [{name: x, alerts: [{at: 1m, alertname: A, expect: []}]}]\n".write(toFile: file, atomically: true, encoding: .utf8)
        let missing = try CLI.run("fleetwatch", ["rules", "test", file])
        #expect(missing.status == 1 && missing.stderr == "fleetwatch: cannot read \(dir.appendingPathComponent("nope.yaml").path)\n", "\(missing.stderr)")
        // Usage errors exit 2.
        #expect(try CLI.run("fleetwatch", ["rules", "test"]).status == 2)
        #expect(try CLI.run("fleetwatch", ["rules", "backtest", file]).status == 2)  // no --db
        #expect(try CLI.run("fleetwatch", ["rules", "backtest", file, "--db", "x.db", "--since", "soon"]).status == 2)
    }

    // MARK: - rules backtest

    /// 40 minutes of four devices, one message a minute (a session and a resources sample):
    /// 1.5.0 crashes two sessions in three from minute 8 to 19; b2 is silent from minute 10 to
    /// 17 (one presence stretch: the gap is under 10 minutes) and for good from minute 30.
    static func capture() -> String {
        var lines: [String] = []
        var seq: [String: Int64] = [:]
        for minute in Int64(0)..<40 {
            for (i, id) in ["a1", "a2", "b1", "b2"].enumerated() {
                if id == "b2" && ((10...17).contains(minute) || minute >= 30) { continue }
                let version = i < 2 ? "1.4.0" : "1.5.0"
                let ts = t0 + minute * 60_000 + Int64(i)
                let crashed = version == "1.5.0" && (8..<20).contains(minute) && minute % 3 != 0
                let n = (seq[id] ?? 0) + 1
                seq[id] = n
                let m = TelemetryMessage(
                    schemaVersion: 2, deviceID: id, seq: n, sentAtMs: ts,
                    device: DeviceInfo(sku: "orin", firmware: "5.1.2", agent: "0.3.0", accelerator: "gpu"),
                    model: ModelInfo(name: "det", version: version, sha256: String(repeating: "d", count: 64)),
                    records: [
                        .session(SessionRecord(tsMs: ts, sessionID: "s\(minute)", status: crashed ? .crashed : .exited, durationMs: 60_000, errors: 0)),
                        .resources(ResourcesRecord(tsMs: ts, cpuPct: 40, memMB: 900, tempC: 60, throttleEvents: 0)),
                    ])
                lines.append("fleet/\(id)/telemetry " + TelemetryEncoder.encodeString(m))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static let rules = """
        receivers:
          - name: oncall
            webhook: {url: "http://127.0.0.1:9/hook"}
        groups:
          - name: reliability
            interval: 30s
            rules:
              - alert: CrashFreeSessionsLow
                signal: crash_free_sessions
                by: [model_version]
                window: 5m
                op: "<"
                threshold: 0.9
                min_samples: 5
                for: 2m
                severity: page
                receivers: [oncall]
          - name: health
            interval: 1m
            rules:
              - alert: Offline
                signal: offline_devices
                stale_after: 5m
                op: ">"
                threshold: 0
                min_samples: 4
                receivers: [oncall]
        """

    @Test func backtestPrintsEveryTransitionAndWritesNothing() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("fleet.db").path
        let rulesPath = dir.appendingPathComponent("alerts.yaml").path
        try Self.rules.write(toFile: rulesPath, atomically: true, encoding: .utf8)
        let ingest = try CLI.run("fleetwatch", ["ingest", "--file", "-", "--db", db], stdin: Self.capture())
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let before = try Data(contentsOf: URL(fileURLWithPath: db))

        let r = try CLI.run("fleetwatch", ["rules", "backtest", rulesPath, "--db", db, "--since", "1h"])
        #expect(r.status == 0, "\(r.stderr)")
        let rows = r.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        #expect(rows.first == ["time", "alert", "labels", "state", "value"])
        let got = rows.dropFirst().map { $0.joined(separator: " ") }
        // 1.5.0: at 8m30s the window (minutes 4-8) has 2 crashes in 10 sessions: 0.8, pending;
        // 2 minutes later 3 of 9 (b2 silent): firing; at 24m30s the last crashes (minute 19) have
        // left the 5-minute window: resolved. b2's silence inside a presence stretch (minutes
        // 10-17) is seen from the minute buckets, its final silence (last message 29m) from its
        // stretch's end: nothing comes from today's registry.
        #expect(got == [
            "2025-11-29T12:08:30.000Z CrashFreeSessionsLow model_version=1.5.0,severity=page pending 0.8000",
            "2025-11-29T12:10:30.000Z CrashFreeSessionsLow model_version=1.5.0,severity=page firing 0.6667",
            "2025-11-29T12:15:00.000Z Offline severity=warning firing 1.0000",
            "2025-11-29T12:18:00.000Z Offline severity=warning resolved 1.0000",
            "2025-11-29T12:24:30.000Z CrashFreeSessionsLow model_version=1.5.0,severity=page resolved 0.8000",
            "2025-11-29T12:35:00.000Z Offline severity=warning firing 1.0000",
        ], "\(r.stdout)")
        #expect(r.stderr.hasPrefix("backtest: 2 rules, "), "\(r.stderr)")
        #expect(r.stderr.contains("6 transitions (CrashFreeSessionsLow fired 1x, pending 1x; Offline fired 2x, pending 0x)"), "\(r.stderr)")

        // JSON: the same transitions, full label sets.
        let j = try CLI.run("fleetwatch", ["rules", "backtest", rulesPath, "--db", db, "--since", "1h", "--format", "json"])
        #expect(j.status == 0, "\(j.stderr)")
        let arr = try #require(try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as? [[String: Any]])
        #expect(arr.count == 6)
        #expect(arr.allSatisfy { Set($0.keys) == ["time", "alertname", "labels", "state", "value"] })
        #expect(arr[1]["time"] as? String == "2025-11-29T12:10:30.000Z" && arr[1]["state"] as? String == "firing")
        #expect(arr[1]["labels"] as? [String: String] == ["alertname": "CrashFreeSessionsLow", "model_version": "1.5.0", "severity": "page"])
        #expect(abs((arr[1]["value"] as? Double ?? 0) - 6.0 / 9) < 1e-9)

        // A shorter replay starts later (no anchor to the wall clock: the end is the newest data).
        let short = try CLI.run("fleetwatch", ["rules", "backtest", rulesPath, "--db", db, "--since", "10m"])
        #expect(short.status == 0)
        #expect(short.stdout.split(separator: "\n").dropFirst().map { String($0.prefix(24)) } == ["2025-11-29T12:35:00.000Z"])

        // Read-only: the database is byte for byte the same, no alert state, nothing queued.
        #expect(try Data(contentsOf: URL(fileURLWithPath: db)) == before)
        let q = Process()
        q.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        q.arguments = [db, "SELECT (SELECT count(*) FROM alerts) || ',' || (SELECT count(*) FROM outbox)"]
        let out = Pipe()
        q.standardOutput = out
        try q.run()
        let counts = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        q.waitUntilExit()
        #expect(counts == "0,0\n")

        // No database: one line, exit 1.
        let none = try CLI.run("fleetwatch", ["rules", "backtest", rulesPath, "--db", dir.appendingPathComponent("none.db").path])
        #expect(none.status == 1 && none.stderr.hasPrefix("fleetwatch: no database at "))
    }
}
