import FleetCore
import FleetIngest
import FleetRules
import FleetStore
import Foundation
import Testing

/// Rules of one cycle share store queries; sharing must not change a single verdict.
@Suite struct AlertEngineSharingTests {
    static let rules = """
        groups:
          - name: a
            interval: 30s
            rules:
              - {alert: CrashPage, signal: crash_free_sessions, by: [model_version, sku], window: 5m, op: "<", threshold: 0.9, min_samples: 5, for: 1m}
              - {alert: CrashWarn, signal: crash_free_sessions, by: [sku, model_version], window: 5m, op: "<", threshold: 0.95, min_samples: 5}
              - {alert: Errors, signal: error_rate, by: [model_version], window: 5m, op: ">", threshold: 0.05}
              - {alert: Adoption, signal: version_adoption, window: 5m, op: "<", threshold: 0.9, min_samples: 2}
              - {alert: Drift, signal: confidence_psi, by: [model_version], baseline: "version:1.4.0", window: 5m, op: ">", threshold: 0.1}
              - {alert: Offline, signal: offline_devices, stale_after: 2m, op: ">", threshold: 0, min_samples: 2}
              - {alert: OfflineBySku, signal: offline_ratio, by: [sku], stale_after: 2m, op: ">", threshold: 0.1, min_samples: 1}
        """

    @Test func sharedAndUnsharedCyclesAgree() throws {
        let tmp = TempDir()
        let writer = try StoreWriter(path: tmp.db)
        let t0: Int64 = 1_764_417_600_000
        var items: [IngestItem] = []
        var seq: [String: Int64] = [:]
        // 1.4.0 runs alone for a day (its confidence bin 9), then 1.5.0 (bin 4, crashing and
        // erring) joins for 30 minutes; d3 goes quiet at 20m.
        for minute in Int64(0)..<(24 * 60 + 30) {
            for (id, version) in [("d1", "1.4.0"), ("d2", "1.5.0"), ("d3", "1.5.0")] {
                if version == "1.5.0" && minute < 24 * 60 { continue }
                if id == "d3" && minute >= 24 * 60 + 20 { continue }
                if version == "1.4.0" && minute < 24 * 60 && minute % 30 != 0 { continue }
                let ts = t0 + minute * 60_000
                let n = (seq[id] ?? 0) + 1
                seq[id] = n
                var sketch = DDSketch()
                sketch.insert(20_000, times: 90)
                var hist = [Int64](repeating: 0, count: 10)
                hist[version == "1.5.0" ? 4 : 9] = 90
                let crashed = version == "1.5.0" && minute % 4 == 0
                let m = TelemetryMessage(
                    schemaVersion: 2, deviceID: id, seq: n, sentAtMs: ts,
                    device: DeviceInfo(sku: id == "d3" ? "xavier" : "orin", firmware: "1", agent: "1", accelerator: "gpu"),
                    model: ModelInfo(name: "m", version: version, sha256: String(repeating: "b", count: 64)),
                    records: [
                        .inference(InferenceRecord(tsMs: ts, windowMs: 60_000, count: 100, errors: version == "1.5.0" ? 10 : 0, latencyUs: sketch, confidenceHist: hist, classCounts: [ClassCount(name: "ok", count: 90)])),
                        .session(SessionRecord(tsMs: ts, sessionID: "s\(n)", status: crashed ? .crashed : .exited, durationMs: 60_000, errors: 0)),
                    ])
                items.append(.telemetry(m, receivedMs: ts))
            }
        }
        _ = try writer.write(items)
        let rules = try RulesParser.parse(Self.rules, file: "r.yaml").get()
        func replay(share: Bool) throws -> ([AlertTransition], AlertEngine.CycleStats) {
            let engine = AlertEngine(replaying: rules, reader: try StoreReader(path: tmp.db))
            engine.shareQueries = share
            var out: [AlertTransition] = []
            var t = t0 + 24 * 3_600_000
            while t <= t0 + 24 * 3_600_000 + 30 * 60_000 {
                try engine.evaluate(nowMs: t)
                out += engine.takeTransitions()
                t += 30_000
            }
            return (out, engine.lastCycle)
        }
        let (shared, sharedStats) = try replay(share: true)
        let (alone, aloneStats) = try replay(share: false)
        #expect(shared == alone)
        // Every rule had something to say at some point.
        #expect(Set(shared.map(\.alertname)) == ["CrashPage", "CrashWarn", "Errors", "Adoption", "Drift", "Offline", "OfflineBySku"])
        // 7 rules; shared: the two crash rules one grouping (their `by` in another order), errors
        // the window read, adoption and drift the errors' grouping (5m by model_version), the two
        // offline rules one history read.
        #expect(sharedStats.rules == 7 && aloneStats.rules == 7)
        #expect(sharedStats.shared == 5 && aloneStats.shared == 0)
        #expect(sharedStats.queries < aloneStats.queries)
    }
}
