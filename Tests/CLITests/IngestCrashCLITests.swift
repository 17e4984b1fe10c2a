import FleetCore
import Foundation
import SQLiteKit
import Testing

/// `ingest --file` killed with SIGKILL while it holds per-device state back (every full batch
/// of a file is `behind`), then run again on the whole capture: the store must answer exactly
/// as after one clean run (docs/storage.md, "Deferred device state").
@Suite struct IngestCrashCLITests {
    static let t0: Int64 = 1_764_417_600_000
    static let devices = 60
    static let perDevice: Int64 = 40

    /// Lines in arrival order: every device reports every 10 s, with one gap per device.
    static func capture() -> [String] {
        var lines: [String] = []
        for n in Int64(1)...perDevice {
            for d in 0..<devices where !(n == 17 && d % 5 == 0) {
                let ts = t0 + n * 10_000 + Int64(d) * 37
                var s = DDSketch()
                var hist = [Int64](repeating: 0, count: 10)
                let errors = Int64(d % 3)
                for i in 0..<(50 - Int(errors)) { s.insert(10_000 + Double((i * 7 + d * 13) % 900) * 10); hist[5 + i % 5] += 1 }
                var records: [TelemetryRecord] = [
                    .inference(InferenceRecord(tsMs: ts, windowMs: 10_000, count: 50, errors: errors, latencyUs: s, confidenceHist: hist,
                                               classCounts: [ClassCount(name: "ok", count: 43), ClassCount(name: "defect", count: 5)])),
                    .resources(ResourcesRecord(tsMs: ts, cpuPct: 30 + Double(d % 10), memMB: 800, tempC: 50 + Double(n % 7), throttleEvents: n % 9 == 0 ? 1 : 0)),
                ]
                if n == 20 && d % 7 == 0 { records.append(.session(SessionRecord(tsMs: ts, sessionID: "s-1", status: .crashed, durationMs: 200_000, errors: 1))) }
                let m = TelemetryMessage(
                    schemaVersion: 2, deviceID: "cam-\(d)", seq: n, sentAtMs: ts,
                    device: DeviceInfo(sku: d % 2 == 0 ? "orin-nano-8g" : "xavier-nx", firmware: n > 30 && d % 4 == 0 ? "5.2.0" : "5.1.2", agent: "0.3.0", accelerator: "gpu"),
                    model: ModelInfo(name: "defect-detector", version: d % 3 == 0 ? "1.5.0" : "1.4.0", sha256: String(repeating: "c", count: 64)),
                    records: records)
                lines.append("fleet/cam-\(d)/telemetry " + TelemetryEncoder.encodeString(m))
            }
        }
        return lines
    }

    func answers(_ db: String) throws -> [String] {
        var out: [String] = []
        let window = ["--from", String(Self.t0), "--until", String(Self.t0 + 3_600_000)]
        for d in [0, 1, 5, 28, 59] {
            let r = try CLI.run("fleetwatch", ["query", "device", "cam-\(d)", "--db", db, "--format", "json"] + window)
            #expect(r.status == 0, "\(r.stderr)")
            out.append(r.stdout)
        }
        // Beyond 6 h: hourly windows, read from the hours `ingest --file` folded at its end.
        let r = try CLI.run("fleetwatch", ["query", "device", "cam-3", "--db", db, "--format", "json", "--from", String(Self.t0 - 4 * 3_600_000), "--until", String(Self.t0 + 4 * 3_600_000)])
        #expect(r.status == 0 && r.stdout.contains("\"resolution\":\"hour\""), "\(r.stderr) \(r.stdout.prefix(300))")
        out.append(r.stdout)
        for by in ["model_version", "firmware"] {
            let r = try CLI.run("fleetwatch", ["query", "fleet", "--by", by, "--db", db, "--format", "json"] + window)
            #expect(r.status == 0, "\(r.stderr)")
            out.append(r.stdout)
        }
        return out
    }

    func stored(_ db: String) throws -> Int {
        let r = try CLI.run("fleetwatch", ["query", "ingest", "--db", db, "--format", "json"])
        guard r.status == 0, let o = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] else { return 0 }
        return o["stored"] as? Int ?? 0
    }

    @Test func killedWhileHoldingStateBackThenRunAgainAnswersAsOneCleanRun() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fw-crash-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let lines = Self.capture()
        let file = dir.appendingPathComponent("capture.txt")
        try (lines.joined(separator: "\n") + "\n").write(to: file, atomically: true, encoding: .utf8)

        let clean = dir.appendingPathComponent("clean.db").path
        let once = try CLI.run("fleetwatch", ["ingest", "--file", file.path, "--db", clean, "--batch", "100"])
        #expect(once.status == 0, "\(once.stderr)")

        // The same capture on stdin, stopped after 12 full batches: ingest --file is then blocked
        // reading, its 12 batches committed as `behind`, their device state only journaled.
        let crashed = dir.appendingPathComponent("crashed.db").path
        let p = Process()
        p.executableURL = CLI.productsDir.appendingPathComponent("fleetwatch")
        p.arguments = ["ingest", "--file", "-", "--db", crashed, "--batch", "100"]
        let input = Pipe()
        p.standardInput = input
        p.standardOutput = FileHandle.nullDevice
        let errPath = dir.appendingPathComponent("stderr.txt")
        FileManager.default.createFile(atPath: errPath.path, contents: nil)
        p.standardError = try FileHandle(forWritingTo: errPath)
        try p.run()
        input.fileHandleForWriting.write(Data((lines[..<1_250].joined(separator: "\n") + "\n").utf8))
        let deadline = Date().addingTimeInterval(60)
        while try stored(crashed) < 1_200 {
            if Date() > deadline || !p.isRunning {
                let r = try CLI.run("fleetwatch", ["query", "ingest", "--db", crashed, "--format", "json"])
                Issue.record("ingest did not commit 12 batches (running: \(p.isRunning)): \(r.stdout) \(r.stderr) / ingest: \((try? String(contentsOf: errPath, encoding: .utf8)) ?? "")")
                return
            }
            usleep(50_000)
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        #expect(p.terminationReason == .uncaughtSignal)
        // Held back: the raw records are there, the device windows are not yet.
        let before = try CLI.run("fleetwatch", ["query", "device", "cam-0", "--db", crashed, "--format", "json", "--from", String(Self.t0), "--until", String(Self.t0 + 3_600_000)])
        let windows = (try JSONSerialization.jsonObject(with: Data(before.stdout.utf8)) as? [String: Any])?["windows"] as? [[String: Any]]
        #expect(windows?.isEmpty == true, "expected no per-device windows before the journal is redone: \(before.stdout.prefix(300))")

        // Run again over the whole capture: the journal is redone first, the first 1,200 are duplicates.
        let again = try CLI.run("fleetwatch", ["ingest", "--file", file.path, "--db", crashed, "--batch", "100"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stderr.contains("stored \(lines.count - 1_200) ") && again.stderr.contains("duplicates 1200,"), "\(again.stderr)")
        #expect(try stored(crashed) == lines.count)
        #expect(try answers(crashed) == answers(clean))
        // Both folded the capture's hours (they are long over) into device_hour at the end.
        for db in [clean, crashed] {
            #expect(try SQLiteConnection(path: db).scalar("SELECT count(DISTINCT dev) FROM device_hour") == Int64(Self.devices))
        }
    }
}
