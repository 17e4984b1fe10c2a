import FleetCore
import FleetStore
import Foundation

/// A fresh directory with a database path, removed afterwards.
final class TempDB {
    let dir: URL
    var path: String { dir.appendingPathComponent("fleet.db").path }

    init() {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("fleetwatch-tui-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: dir) }
}

let t0: Int64 = 1_764_417_600_000  // 2025-11-29T12:00:00Z

/// Builds realistic messages for one device (as the store tests do).
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

    /// `count` inferences with `errors` failures, latencies `latencyUs` .. +6%.
    static func inference(at ts: Int64, count: Int64 = 100, errors: Int64 = 1, latencyUs: Double = 20_000) -> TelemetryRecord {
        var sketch = DDSketch()
        var hist = [Int64](repeating: 0, count: 10)
        for i in 0..<(count - errors) {
            sketch.insert(latencyUs * (1 + Double(i % 7) / 100))
            hist[8] += 1
        }
        return .inference(InferenceRecord(
            tsMs: ts, windowMs: 10_000, count: count, errors: errors, latencyUs: sketch, confidenceHist: hist,
            classCounts: [ClassCount(name: "defect", count: 9), ClassCount(name: "ok", count: count - errors - 9)]))
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

/// The hostile string the issue names: an OSC "set window title" sequence.
let hostileTitle = "\u{1b}]0;pwned\u{07}"

/// A small fleet: `n` devices over 20 minutes, 10 s apart, two versions and two skus; device 0
/// crashes, device 1 logs an error with an escape sequence, device 2 has a slow p95 and deploys.
func fillFleet(_ path: String, devices n: Int = 12, minutes: Int = 20, end: Int64 = t0) throws {
    let w = try StoreWriter(path: path)
    var batch: [TelemetryMessage] = []
    let start = end - Int64(minutes) * 60_000
    for d in 0..<n {
        var dev = Device(id: String(format: "cam-%02d", d))
        dev.version = d % 3 == 0 ? "1.5.0" : "1.4.0"
        dev.sku = d % 2 == 0 ? "orin-nano-8g" : "xavier-nx"
        var seq: Int64 = 1
        for k in 0..<(minutes * 6) {
            let ts = start + Int64(k) * 10_000 + Int64(d)
            var records: [TelemetryRecord] = [
                Device.inference(at: ts, count: 100, errors: d == 5 ? 10 : 1, latencyUs: d == 2 ? 150_000 : 20_000 + Double(d) * 1000),
                Device.resources(at: ts, temp: 50 + Double(d)),
            ]
            if k == 0 { records.append(Device.session(at: ts, "s-1", .started)) }
            if d == 0 && k == 60 { records.append(Device.session(at: ts, "s-1", .crashed, duration: 600_000)) }
            if d == 1 && k == 30 { records.append(.error(ErrorRecord(tsMs: ts, code: "E_CAM", message: hostileTitle + " camera gone"))) }
            if d == 2 && k == 90 { records.append(.deploy(DeployRecord(tsMs: ts, fromVersion: "1.4.0", toVersion: "1.5.0", result: .rolledBack))) }
            batch.append(dev.message(seq: seq, at: ts, records: records))
            seq += 1
        }
    }
    try w.write(batch.sorted { $0.sentAtMs < $1.sentAtMs }, receivedMs: end)
}
