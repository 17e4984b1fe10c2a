import FleetCore
import Foundation
import Testing

/// `ingest --file` then `query ...`, through the real binary, as a responder would.
@Suite struct QueryCLITests {
    static let t0: Int64 = 1_764_417_600_000

    /// A capture: two devices, a crash, an error with an escape sequence, a gap, a duplicate,
    /// a spoofed line, a bad line, a status line and a line on another topic.
    static func capture() -> String {
        func msg(_ id: String, _ seq: Int64, _ ts: Int64, version: String = "1.4.0", _ records: [TelemetryRecord]) -> String {
            let m = TelemetryMessage(
                schemaVersion: 2, deviceID: id, seq: seq, sentAtMs: ts,
                device: DeviceInfo(sku: "orin-nano-8g", firmware: "5.1.2", agent: "0.3.0", accelerator: "gpu"),
                model: ModelInfo(name: "defect-detector", version: version, sha256: String(repeating: "c", count: 64)),
                records: records)
            return "fleet/\(id)/telemetry " + TelemetryEncoder.encodeString(m)
        }
        func inference(_ ts: Int64, latency: Double) -> TelemetryRecord {
            var s = DDSketch()
            var hist = [Int64](repeating: 0, count: 10)
            for _ in 0..<98 { s.insert(latency); hist[9] += 1 }
            return .inference(InferenceRecord(tsMs: ts, windowMs: 10_000, count: 100, errors: 2, latencyUs: s, confidenceHist: hist, classCounts: [ClassCount(name: "ok", count: 98)]))
        }
        var lines: [String] = []
        for k in Int64(0)..<30 where k != 12 {
            let ts = t0 + k * 10_000
            var records: [TelemetryRecord] = [inference(ts, latency: 20_000), .resources(ResourcesRecord(tsMs: ts, cpuPct: 40, memMB: 900, tempC: 60, throttleEvents: 0))]
            if k == 5 { records.append(.session(SessionRecord(tsMs: ts, sessionID: "s-1", status: .crashed, durationMs: 50_000, errors: 1))) }
            if k == 6 { records.append(.error(ErrorRecord(tsMs: ts, code: "E_CAM", message: "\u{1b}]0;pwned\u{07} camera gone"))) }
            lines.append(msg("cam-1", k + 1, ts, records))
            lines.append(msg("cam-2", k + 1, ts, version: "1.5.0", [inference(ts, latency: 50_000)]))
        }
        lines.append(lines[0])  // duplicate
        lines.append(msg("cam-1", 99, t0, []).replacingOccurrences(of: "\"records\":[]", with: "\"records\":[{\"kind\":\"error\",\"ts_ms\":1,\"code\":\"X\",\"message\":\"\"}]").replacingOccurrences(of: "fleet/cam-1/", with: "fleet/cam-3/"))  // spoofed
        lines.append("fleet/cam-1/telemetry {not json")
        lines.append(#"fleet/cam-1/status {"state":"offline","ts_ms":1764417900000}"#)
        lines.append("other/topic hello")
        return lines.joined(separator: "\n") + "\n"
    }

    func filledDB() throws -> (URL, String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fw-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let db = dir.appendingPathComponent("fleet.db").path
        let r = try CLI.run("fleetwatch", ["ingest", "--file", "-", "--db", db], stdin: Self.capture())
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("ingested 61 telemetry messages: stored 58 (89 records), duplicates 1, quarantined 2"), "\(r.stderr)")
        return (dir, db)
    }

    func json(_ text: String) throws -> Any { try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) }

    @Test func ingestCountersBalance() throws {
        let (dir, db) = try filledDB()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run("fleetwatch", ["query", "ingest", "--db", db, "--format", "json"])
        #expect(r.status == 0)
        let o = try #require(try json(r.stdout) as? [String: Any])
        #expect(o["received"] as? Int == 61 && o["stored"] as? Int == 58 && o["duplicates"] as? Int == 1)
        #expect(o["quarantined"] as? [String: Int] == ["device_id_mismatch": 1, "invalid_json": 1])
        #expect(o["open_gaps"] as? Int == 2)  // seq 13 missing on both devices
        #expect(o["replays_requested"] as? Int == 0)
        #expect(Set(o.keys) == ["received", "stored", "duplicates", "quarantined", "replays_requested", "open_gaps"])
    }

    @Test func deviceTimelineWindowsAndGaps() throws {
        let (dir, db) = try filledDB()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run("fleetwatch", ["query", "device", "cam-1", "--db", db, "--format", "json", "--from", String(Self.t0 - 60_000), "--until", String(Self.t0 + 3_600_000)])
        #expect(r.status == 0, "\(r.stderr)")
        let o = try #require(try json(r.stdout) as? [String: Any])
        let device = try #require(o["device"] as? [String: Any])
        for k in ["device_id", "sku", "firmware", "accelerator", "model_name", "model_version", "state", "first_seen_ms", "last_seen_ms"] {
            #expect(device[k] != nil, "device.\(k)")
        }
        #expect(device["state"] as? String == "offline")
        #expect(device["model_version"] as? String == "1.4.0")
        let timeline = try #require(o["timeline"] as? [[String: Any]])
        let kinds = timeline.map { $0["kind"] as? String ?? "" }
        #expect(kinds.contains("session") && kinds.contains("error"))
        let crash = try #require(timeline.first { $0["kind"] as? String == "session" })
        #expect(crash["status"] as? String == "crashed" && crash["ts_ms"] as? Int == Int(Self.t0 + 50_000))
        let error = try #require(timeline.first { $0["kind"] as? String == "error" })
        #expect(error["message"] as? String == "\u{1b}]0;pwned\u{07} camera gone")  // exact in JSON
        let windows = try #require(o["windows"] as? [[String: Any]])
        #expect(windows.count == 5)  // 29 messages over 5 minutes, per-minute windows
        #expect(windows.map { $0["inferences"] as? Int ?? 0 }.reduce(0, +) == 2900)
        let p95 = try #require(windows.first?["latency_p95_ms"] as? Double)
        #expect(abs(p95 - 20) < 0.3)
        #expect((o["gaps"] as? [[String: Int]]) == [["from_seq": 13, "to_seq": 13]])
        // Quarantined input sits on the receiver's clock: it shows in a window around now.
        let recent = try CLI.run("fleetwatch", ["query", "device", "cam-1", "--db", db, "--format", "json", "--since", "1h"])
        let q = try #require((try json(recent.stdout) as? [String: Any])?["timeline"] as? [[String: Any]])
        #expect(q.contains { $0["kind"] as? String == "quarantined" && ($0["reason"] as? String) == "invalid_json" })
    }

    @Test func tableOutputIsInert() throws {
        let (dir, db) = try filledDB()
        defer { try? FileManager.default.removeItem(at: dir) }
        for format in ["table", "csv"] {
            let r = try CLI.run("fleetwatch", ["query", "device", "cam-1", "--db", db, "--format", format, "--until", "latest", "--since", "1h"])
            #expect(r.status == 0)
            #expect(r.stdout.contains("pwned"))
            #expect(!r.stdout.contains("\u{1b}") && !r.stdout.contains("\u{07}"), "\(format) output carries a raw escape")
        }
    }

    @Test func fleetJSONFollowsTheContract() throws {
        let (dir, db) = try filledDB()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run("fleetwatch", ["query", "fleet", "--db", db, "--by", "model_version", "--format", "json", "--until", "latest", "--since", "1h"])
        #expect(r.status == 0, "\(r.stderr)")
        let rows = try #require(try json(r.stdout) as? [[String: Any]])
        #expect(rows.count == 2)
        let keys: Set<String> = ["labels", "devices", "device_share", "sessions", "crash_free_sessions", "crash_free_devices", "error_rate",
                                 "inferences", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "confidence_psi", "confidence_js",
                                 "class_mix_psi", "rollback_rate", "throttle_rate"]
        for row in rows { #expect(Set(row.keys) == keys) }
        let v14 = try #require(rows.first { ($0["labels"] as? [String: String])?["model_version"] == "1.4.0" })
        #expect(v14["devices"] as? Int == 1 && v14["device_share"] as? Double == 0.5)
        #expect(v14["sessions"] as? Int == 1 && v14["crash_free_sessions"] as? Double == 0)
        #expect(v14["error_rate"] as? Double == 0.02)
        #expect(v14["confidence_psi"] is NSNull)  // no complete baseline yet
        let v15 = try #require(rows.first { ($0["labels"] as? [String: String])?["model_version"] == "1.5.0" })
        #expect(abs((v15["latency_p95_ms"] as? Double ?? 0) - 50) < 0.6)
        #expect(v15["crash_free_sessions"] is NSNull)
    }

    @Test func problemsExitOneWithOneLine() throws {
        let (dir, db) = try filledDB()
        defer { try? FileManager.default.removeItem(at: dir) }
        let unknown = try CLI.run("fleetwatch", ["query", "device", "nope", "--db", db])
        #expect(unknown.status == 1)
        #expect(unknown.stderr == "fleetwatch: no device 'nope' in \(db)\n")
        let label = try CLI.run("fleetwatch", ["query", "fleet", "--db", db, "--by", "color"])
        #expect(label.status == 1 && label.stderr.hasPrefix("fleetwatch: unknown label 'color'"))
        let missing = try CLI.run("fleetwatch", ["query", "ingest", "--db", dir.appendingPathComponent("none.db").path])
        #expect(missing.status == 1 && missing.stderr.contains("fleetwatch ingest"))
        let usage = try CLI.run("fleetwatch", ["query", "fleet", "--db", db, "--since", "forever"])
        #expect(usage.status == 2)
    }
}
