import FleetCore
import Foundation
import SQLiteKit

@testable import FleetStore

/// A fresh database file in a temporary directory, removed afterwards.
final class TempDB {
    let dir: URL
    var path: String { dir.appendingPathComponent("fleet.db").path }

    init() {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("fleetwatch-test-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: dir) }
}

let t0: Int64 = 1_764_417_600_000  // 2025-11-29T12:00:00Z

/// Builds realistic messages for one device.
struct Device {
    var id: String
    var sku = "orin-nano-8g"
    var firmware = "5.1.2"
    var accelerator = "gpu"
    var model = "defect-detector"
    var version = "1.4.0"

    func message(seq: Int64, at ts: Int64, records: [TelemetryRecord]) -> TelemetryMessage {
        TelemetryMessage(
            schemaVersion: 2, deviceID: id, seq: seq, sentAtMs: ts,
            device: DeviceInfo(sku: sku, firmware: firmware, agent: "0.3.0", accelerator: accelerator),
            model: ModelInfo(name: model, version: version, sha256: String(repeating: "a", count: 64)),
            records: records)
    }

    /// An inference window of `count` inferences with `errors` failures, latencies around `latencyUs`.
    static func inference(at ts: Int64, count: Int64 = 100, errors: Int64 = 1, latencyUs: Double = 20_000, confidenceBin: Int = 8, classes: [String: Int64] = ["ok": 90, "defect": 9]) -> TelemetryRecord {
        var sketch = DDSketch()
        var hist = [Int64](repeating: 0, count: 10)
        for i in 0..<(count - errors) {
            sketch.insert(latencyUs * (1 + Double(i % 7) / 100))
            hist[confidenceBin] += 1
        }
        return .inference(InferenceRecord(
            tsMs: ts, windowMs: 10_000, count: count, errors: errors, latencyUs: sketch, confidenceHist: hist,
            classCounts: classes.sorted { $0.key < $1.key }.map { ClassCount(name: $0.key, count: $0.value) }))
    }

    static func resources(at ts: Int64, temp: Double = 55, throttle: Int64 = 0) -> TelemetryRecord {
        .resources(ResourcesRecord(tsMs: ts, cpuPct: 40, memMB: 900, tempC: temp, throttleEvents: throttle))
    }

    static func session(at ts: Int64, _ id: String, _ status: SessionStatus, duration: Int64 = 60_000) -> TelemetryRecord {
        .session(SessionRecord(tsMs: ts, sessionID: id, status: status, durationMs: status == .started ? 0 : duration, errors: 0))
    }
}

extension StoreWriter {
    @discardableResult
    func write(_ messages: [TelemetryMessage], receivedMs: Int64 = t0) throws -> BatchOutcome {
        try write(messages.map { .telemetry($0, receivedMs: receivedMs) })
    }
}

extension StoreReader {
    func count(_ table: String) throws -> Int64 { try connection.scalar("SELECT count(*) FROM \(table)") ?? -1 }
}
