import FleetCore
import Foundation
import Testing

/// Rules evaluated on event time while a capture is ingested, through the real binary.
@Suite struct AlertsCLITests {
    static let t0: Int64 = 1_764_417_600_000

    /// `minutes` of two cohorts: 1.4.0 healthy, 1.5.0 crashing one session in three from minute 8
    /// until `crashesUntil`.
    static func capture(minutes: Int64 = 20, crashesUntil: Int64 = .max) -> String {
        var lines: [String] = []
        for minute in Int64(0)..<minutes {
            for (i, id) in ["a1", "a2", "b1", "b2"].enumerated() {
                let version = i < 2 ? "1.4.0" : "1.5.0"
                let ts = t0 + minute * 60_000 + Int64(i)
                let crashed = version == "1.5.0" && minute >= 8 && minute < crashesUntil && minute % 3 != 0
                let m = TelemetryMessage(
                    schemaVersion: 2, deviceID: id, seq: minute + 1, sentAtMs: ts,
                    device: DeviceInfo(sku: "orin", firmware: "5.1.2", agent: "0.3.0", accelerator: "gpu"),
                    model: ModelInfo(name: "det", version: version, sha256: String(repeating: "d", count: 64)),
                    records: [.session(SessionRecord(tsMs: ts, sessionID: "s\(minute)", status: crashed ? .crashed : .exited, durationMs: 60_000, errors: 0))])
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
                annotations:
                  summary: "crash-free {{ $value | percent }} on {{ $labels.model_version }}"
        """

    /// A fresh directory holding `alerts.yaml` (the rules above).
    static func workDir() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fw-alerts-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try rules.write(to: dir.appendingPathComponent("alerts.yaml"), atomically: true, encoding: .utf8)
        return dir
    }

    /// The sqlite3 shell's output lines for `sql` on `db` (the file as any operator sees it).
    static func sqlite(_ db: String, _ sql: String) throws -> [Substring] {
        let sq = Process()
        sq.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        sq.arguments = [db, sql]
        let out = Pipe()
        sq.standardOutput = out
        try sq.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        sq.waitUntilExit()
        return text.split(separator: "\n")
    }

    @Test func theCrashingCohortFiresAndOnlyIt() throws {
        let dir = try Self.workDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let rulesPath = dir.appendingPathComponent("alerts.yaml").path
        #expect(try CLI.run("fleetwatch", ["rules", "check", rulesPath]).status == 0)
        let db = dir.appendingPathComponent("fleet.db").path
        // One line per batch, so the event clock advances message by message.
        let ingest = try CLI.run("fleetwatch", ["ingest", "--file", "-", "--db", db, "--rules", rulesPath, "--batch", "4"], stdin: Self.capture())
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let r = try CLI.run("fleetwatch", ["alerts", "--db", db, "--format", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        let alerts = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
        #expect(alerts.count == 1)
        let a = try #require(alerts.first)
        #expect(a["alertname"] as? String == "CrashFreeSessionsLow" && a["state"] as? String == "firing")
        #expect(a["labels"] as? [String: String] == ["alertname": "CrashFreeSessionsLow", "severity": "page", "model_version": "1.5.0"])
        #expect((a["annotations"] as? [String: String])?["summary"]?.hasPrefix("crash-free ") == true)
        #expect(a["fired_at"] is String && a["resolved_at"] is NSNull)
        // The page waits in the outbox in Alertmanager's v4 format.
        let rows = try Self.sqlite(db, "SELECT receiver, body FROM outbox ORDER BY id")
        #expect(rows.count == 1)
        let body = try #require(rows.first.map { String($0.dropFirst("oncall|".count)) })
        let p = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
        for k in ["version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels", "commonLabels", "commonAnnotations", "externalURL", "alerts"] {
            #expect(p[k] != nil, "payload lacks \(k)")
        }
        #expect(p["version"] as? String == "4" && p["status"] as? String == "firing" && p["receiver"] as? String == "oncall")
        let first = try #require((p["alerts"] as? [[String: Any]])?.first)
        for k in ["status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"] { #expect(first[k] != nil, "alert lacks \(k)") }
        // A bad rules file is refused with positions.
        try "groups: [{name: g, rules: [{alert: X, signal: nope, op: '<', threshold: 1}]}]\n".write(toFile: rulesPath, atomically: true, encoding: .utf8)
        let bad = try CLI.run("fleetwatch", ["rules", "check", rulesPath])
        #expect(bad.status == 1 && bad.stderr.contains("\(rulesPath):1:") && bad.stderr.contains("unknown signal 'nope'"))
    }

    /// A fired-and-resolved alert stays listed after the engine forgets it (15 minutes), from
    /// the history, for the window asked.
    @Test func resolvedAlertsStayInTheHistory() throws {
        let dir = try Self.workDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let rulesPath = dir.appendingPathComponent("alerts.yaml").path
        let db = dir.appendingPathComponent("fleet.db").path
        // Crashes in minutes 8-19, healthy after: resolved near minute 25, then 35 minutes more.
        let ingest = try CLI.run("fleetwatch", ["ingest", "--file", "-", "--db", db, "--rules", rulesPath, "--batch", "4"],
                                 stdin: Self.capture(minutes: 60, crashesUntil: 20))
        #expect(ingest.status == 0, "\(ingest.stderr)")
        func alerts(_ extra: [String]) throws -> [[String: Any]] {
            let r = try CLI.run("fleetwatch", ["alerts", "--db", db, "--format", "json"] + extra)
            #expect(r.status == 0, "\(r.stderr)")
            return try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
        }
        let all = try alerts(["--until", "latest"])
        #expect(all.count == 1)
        let a = try #require(all.first)
        #expect(a["alertname"] as? String == "CrashFreeSessionsLow" && a["state"] as? String == "resolved")
        #expect(a["labels"] as? [String: String] == ["alertname": "CrashFreeSessionsLow", "severity": "page", "model_version": "1.5.0"])
        func ms(_ v: Any?) -> Int64? {
            let f = ISO8601DateFormatter()
            f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            return (v as? String).flatMap { f.date(from: $0) }.map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) }
        }
        let fired = try #require(ms(a["fired_at"]))
        let resolved = try #require(ms(a["resolved_at"]))
        #expect(fired < resolved && resolved < Self.t0 + 45 * 60_000, "resolved at \(resolved - Self.t0) ms")
        // Nothing is firing now; a window that ends before it resolved does not list it.
        #expect(try alerts(["--state", "firing"]).isEmpty)
        #expect(try alerts(["--from", String(Self.t0), "--until", String(Self.t0 + 20 * 60_000)]).isEmpty)
        // The engine's own table has let it go (resolved more than 15 minutes before the end).
        #expect(try Self.sqlite(db, "SELECT count(*) FROM alerts; SELECT count(*) FROM alert_history") == ["0", "1"])
    }
}
