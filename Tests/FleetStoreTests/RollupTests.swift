import FleetCore
import Foundation
import SQLiteKit
import Testing

@testable import FleetStore

/// Rollups are maintained on write; they must equal what the unique raw records say, whatever
/// the arrival order, duplication and lateness.
@Suite struct RollupTests {
    /// Random traffic: several devices and cohorts, out of order, with re-sends.
    func traffic(seed: UInt64) -> [TelemetryMessage] {
        var rng = SplitMix64(seed: seed)
        var out: [TelemetryMessage] = []
        let devices = (0..<6).map { i in
            Device(id: "dev-\(i)", sku: i % 2 == 0 ? "orin" : "xavier", version: i < 4 ? "1.4.0" : "1.5.0")
        }
        for d in devices {
            for seq in Int64(1)...40 {
                let ts = t0 + seq * 45_000 + Int64.random(in: 0...20_000, using: &rng)  // ~45 s apart: many minutes, an hour edge
                var records: [TelemetryRecord] = [
                    Device.inference(at: ts, count: Int64.random(in: 1...50, using: &rng), errors: 0, latencyUs: Double.random(in: 1000...90_000, using: &rng),
                                     confidenceBin: Int.random(in: 0...9, using: &rng), classes: ["ok": Int64.random(in: 0...9, using: &rng)]),
                    Device.resources(at: ts, temp: Double.random(in: 30...90, using: &rng), throttle: Int64.random(in: 0...2, using: &rng)),
                ]
                if seq % 5 == 0 { records.append(Device.session(at: ts, "s\(seq)", Bool.random(using: &rng) ? .crashed : .exited)) }
                out.append(d.message(seq: seq, at: ts, records: records))
            }
        }
        var shuffled = out.shuffled(using: &rng)
        shuffled += out.shuffled(using: &rng).prefix(60)  // re-sends
        return shuffled
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func rollupsEqualTheUniqueRawRecords(seed: UInt64) throws {
        let db = TempDB()
        let w = try StoreWriter(path: db.path)
        let msgs = traffic(seed: seed)
        // Uneven batches, so late data meets rows written by earlier batches.
        var i = 0
        var sizes = SplitMix64(seed: seed + 100)
        while i < msgs.count {
            let n = Int.random(in: 1...37, using: &sizes)
            try w.write(Array(msgs[i..<min(msgs.count, i + n)]))
            i += n
        }
        let r = try StoreReader(path: db.path)
        #expect(try r.ingestCounters().stored == 240)
        #expect(try r.ingestCounters().duplicates == Int64(msgs.count - 240))

        // Expected per (minute, cohort) from the unique messages.
        var unique: [String: TelemetryMessage] = [:]
        for m in msgs { unique["\(m.deviceID)#\(m.seq)"] = m }
        struct Exp { var inf: Int64 = 0; var sketch = DDSketch(); var hist = [Int64](repeating: 0, count: 10); var throttle: Int64 = 0; var crashed: Int64 = 0; var exited: Int64 = 0 }
        var byMinute: [String: Exp] = [:]
        var byHour: [String: Exp] = [:]
        for m in unique.values {
            let cohort = "\(m.model.version)|\(m.device.sku)"
            for rec in m.records {
                for (bucketMs, table) in [(Int64(60_000), 0), (3_600_000, 1)] {
                    let key = "\(rec.tsMs / bucketMs)|\(cohort)"
                    var e = (table == 0 ? byMinute[key] : byHour[key]) ?? Exp()
                    switch rec {
                    case .inference(let x):
                        e.inf += x.count
                        e.sketch.merge(x.latencyUs)
                        for b in 0..<10 { e.hist[b] += x.confidenceHist[b] }
                    case .resources(let x): e.throttle += x.throttleEvents
                    case .session(let x): if x.status == .crashed { e.crashed += 1 } else { e.exited += 1 }
                    default: break
                    }
                    if table == 0 { byMinute[key] = e } else { byHour[key] = e }
                }
            }
        }
        for (table, expected) in [("rollup_minute", byMinute), ("rollup_hour", byHour)] {
            let s = try r.connection.prepare("""
                SELECT r.bucket, c.model_version, c.sku, r.inferences, r.latency, r.hist, r.throttle_events, r.sessions_crashed, r.sessions_exited
                FROM \(table) r JOIN cohorts c USING(cohort)
                """)
            var seen = 0
            while try s.step() {
                let key = "\(s.int(0))|\(s.text(1))|\(s.text(2))"
                let e = try #require(expected[key], "unexpected rollup row \(key)")
                #expect(s.int(3) == e.inf, "\(table) \(key) inferences")
                #expect(Codecs.decodeSketch(s.blob(4)).keys == e.sketch.keys && Codecs.decodeSketch(s.blob(4)).counts == e.sketch.counts, "\(table) \(key) sketch")
                #expect(Codecs.decodeHistogram(s.blob(5)) == e.hist, "\(table) \(key) hist")
                #expect(s.int(6) == e.throttle && s.int(7) == e.crashed && s.int(8) == e.exited, "\(table) \(key) counts")
                seen += 1
            }
            #expect(seen == expected.count, "\(table): \(seen) rows, expected \(expected.count)")
        }
    }

    @Test func fleetQueryMatchesAHandCount() throws {
        let db = TempDB()
        let w = try StoreWriter(path: db.path)
        let a = Device(id: "a", version: "1.4.0")
        let b = Device(id: "b", version: "1.4.0")
        let c = Device(id: "c", version: "1.5.0")
        try w.write([
            a.message(seq: 1, at: t0, records: [Device.inference(at: t0, count: 100, errors: 2), Device.session(at: t0, "s1", .exited)]),
            b.message(seq: 1, at: t0 + 1000, records: [Device.inference(at: t0 + 1000, count: 100, errors: 0), Device.session(at: t0, "s2", .crashed), Device.session(at: t0, "s3", .exited)]),
            c.message(seq: 1, at: t0 + 2000, records: [Device.inference(at: t0 + 2000, count: 50, errors: 5, latencyUs: 80_000)]),
        ])
        let r = try StoreReader(path: db.path)
        let rows = try r.fleet(fromMs: t0 - 60_000, toMs: t0 + 60_000, by: ["model_version"])
        #expect(rows.map { $0.labels.first!.1 } == ["1.4.0", "1.5.0"])
        let v14 = rows[0].values
        #expect(v14.devices == 2 && v14.deviceShare == 2.0 / 3)
        #expect(v14.sessions == 3 && v14.crashFreeSessions == 1 - 1.0 / 3)
        #expect(v14.crashFreeDevices == 0.5)
        #expect(v14.inferences == 200 && v14.errorRate == 0.01)
        #expect(v14.latencyP50Ms! > 19.5 && v14.latencyP50Ms! < 21.5)
        #expect(v14.confidencePSI == nil)  // baseline not complete yet
        let v15 = rows[1].values
        #expect(v15.devices == 1 && v15.errorRate == 0.1 && v15.sessions == 0 && v15.crashFreeSessions == nil)
        #expect(v15.latencyP95Ms! > 79 && v15.latencyP95Ms! < 86)
        // By device: one row per device.
        let perDevice = try r.fleet(fromMs: t0 - 60_000, toMs: t0 + 60_000, by: ["device_id"])
        #expect(perDevice.map { $0.labels.first!.1 } == ["a", "b", "c"])
        #expect(perDevice[1].values.crashFreeSessions == 0.5)
        #expect(throws: StoreError.self) { try r.fleet(fromMs: t0, toMs: t0 + 1, by: ["color"]) }
    }

    @Test func driftAgainstTheFirstDayOnceItHasEnded() throws {
        let db = TempDB()
        let w = try StoreWriter(path: db.path)
        let d = Device(id: "drifty")
        var seq: Int64 = 0
        var msgs: [TelemetryMessage] = []
        // Day 1: confident (bin 9). Day 2: unsure (bin 4).
        for h in Int64(0)..<48 {
            seq += 1
            let ts = t0 + h * 3_600_000
            msgs.append(d.message(seq: seq, at: ts, records: [Device.inference(at: ts, count: 100, errors: 0, confidenceBin: h < 24 ? 9 : 4, classes: h < 24 ? ["ok": 100] : ["ok": 50, "defect": 50])]))
        }
        try w.write(msgs)
        let r = try StoreReader(path: db.path)
        let baseStart = (t0 / 3_600_000) * 3_600_000
        // Inside the baseline period: no drift value yet.
        let early = try r.fleet(fromMs: t0 + 3_600_000, toMs: t0 + 2 * 3_600_000, by: ["model_version"])
        #expect(early[0].values.confidencePSI == nil && early[0].values.confidenceJS == nil)
        // Day 2 against day 1: maximal drift.
        let late = try r.fleet(fromMs: baseStart + 30 * 3_600_000, toMs: baseStart + 40 * 3_600_000, by: ["model_version"])
        let v = late[0].values
        #expect(v.confidenceJS! > 0.99)
        #expect(v.confidencePSI! > 5)
        #expect(v.classMixPSI! > 1)
        // A day-1 window against day 1: none.
        let same = try r.fleet(fromMs: baseStart + 2 * 3_600_000, toMs: baseStart + 20 * 3_600_000, by: ["model_version"], baselineMs: 86_400_000)
        _ = same
    }
}
