import FleetCore
import Foundation
import SQLiteKit
import Testing

@testable import FleetStore

/// Drift against another version's first day (`baseline: version:V`), and who was offline at a
/// past time (for backtests), through the real writer and reader.
@Suite struct BaselineAndHistoryTests {
    static let h: Int64 = 3_600_000

    /// 1.4.0 on orin (confident: bin 9) and on xavier (bin 0) during day 1; 1.5.0 on orin on
    /// day 2, half its inferences in bin 4 and half in bin 9. One message per device and hour.
    func versionsDB() throws -> (TempDB, StoreReader) {
        let db = TempDB()
        let w = try StoreWriter(path: db.path)
        var msgs: [TelemetryMessage] = []
        let old = Device(id: "old-orin", sku: "orin", version: "1.4.0")
        let oldX = Device(id: "old-xavier", sku: "xavier", version: "1.4.0")
        let new4 = Device(id: "new-a", sku: "orin", version: "1.5.0")
        let new9 = Device(id: "new-b", sku: "orin", version: "1.5.0")
        for hour in Int64(0)..<24 {
            let ts = t0 + hour * Self.h
            msgs.append(old.message(seq: hour + 1, at: ts, records: [Device.inference(at: ts, count: 100, errors: 0, confidenceBin: 9, classes: ["ok": 100])]))
            msgs.append(oldX.message(seq: hour + 1, at: ts, records: [Device.inference(at: ts, count: 100, errors: 0, confidenceBin: 0, classes: ["ok": 100])]))
        }
        for hour in Int64(24)..<48 {
            let ts = t0 + hour * Self.h
            msgs.append(new4.message(seq: hour, at: ts, records: [Device.inference(at: ts, count: 100, errors: 0, confidenceBin: 4, classes: ["defect": 100])]))
            msgs.append(new9.message(seq: hour, at: ts, records: [Device.inference(at: ts, count: 100, errors: 0, confidenceBin: 9, classes: ["ok": 100])]))
        }
        try w.write(msgs)
        return (db, try StoreReader(path: db.path))
    }

    @Test func versionBaselineComparesWithThatVersionsFirstDay() throws {
        let (db, r) = try versionsDB()
        _ = db
        // Hourly messages in one batch: every hour is its own stretch of presence (a batch with
        // several stretches of one device keeps them all).
        #expect(try r.count("presence") == 4 * 24)
        // t0 is a whole hour, so 1.4.0's first day is exactly [t0, t0 + 24h).
        #expect(t0 % Self.h == 0)
        let rows = try r.fleet(fromMs: t0 + 30 * Self.h, toMs: t0 + 40 * Self.h, by: ["model_version", "sku"], baseline: .version("1.4.0"))
        #expect(rows.map { $0.labels.map(\.1) } == [["1.5.0", "orin"]])
        let v = rows[0].values
        // Against 1.4.0 on orin (all bin 9): 0.4999 ln(5000) + 0.5 ln 2.
        #expect(abs(v.confidencePSI! - 4.60431846666895) < 1e-12)
        #expect(abs(v.confidenceJS! - 0.5579230452841438) < 1e-12)
        // Classes: defect 0.5 vs floor, ok 0.5 vs 1: the same PSI.
        #expect(abs(v.classMixPSI! - 4.60431846666895) < 1e-12)
        #expect(rows[0].aggregate.baselineHist == [0, 0, 0, 0, 0, 0, 0, 0, 0, 2400])

        // By version only: the reference is all of 1.4.0's first day (bins 0 and 9 half each).
        let byVersion = try r.fleet(fromMs: t0 + 30 * Self.h, toMs: t0 + 40 * Self.h, by: ["model_version"], baseline: .version("1.4.0"))
        #expect(byVersion[0].aggregate.baselineHist == [2400, 0, 0, 0, 0, 0, 0, 0, 0, 2400])
        #expect(abs(byVersion[0].values.confidencePSI! - 2 * 0.4999 * log(5000.0)) < 1e-12)
        #expect(abs(byVersion[0].values.confidencePSI! - 8.515489752777954) < 1e-12)

        // The default (the cohort's own first day) is different: 1.5.0's day 2 is not over at 40h.
        let own = try r.fleet(fromMs: t0 + 30 * Self.h, toMs: t0 + 40 * Self.h, by: ["model_version", "sku"])
        #expect(own[0].values.confidencePSI == nil)
        // A version without data, or whose first day has not ended: null, never 0.
        #expect(try r.fleet(fromMs: t0 + 30 * Self.h, toMs: t0 + 40 * Self.h, by: ["model_version"], baseline: .version("9.9.9"))[0].values.confidencePSI == nil)
        #expect(try r.fleet(fromMs: t0 + 30 * Self.h, toMs: t0 + 40 * Self.h, by: ["model_version"], baseline: .version("1.5.0"))[0].values.confidencePSI == nil)
        let done = try r.fleet(fromMs: t0 + 47 * Self.h, toMs: t0 + 48 * Self.h, by: ["model_version"], baseline: .version("1.5.0"))
        #expect(abs(done[0].values.confidencePSI!) < 1e-12)
        // Before 1.4.0's first day ends, 1.4.0 itself has no baseline; right after, PSI 0.
        #expect(try r.fleet(fromMs: t0, toMs: t0 + 24 * Self.h - 1, by: ["model_version"], baseline: .version("1.4.0"))[0].values.confidencePSI == nil)
        let self14 = try r.fleet(fromMs: t0, toMs: t0 + 24 * Self.h, by: ["model_version", "sku"], baseline: .version("1.4.0"))
        #expect(self14.count == 2 && self14.allSatisfy { abs($0.values.confidencePSI!) < 1e-12 })
        // Per device: each device against 1.4.0 on its SKU.
        let perDevice = try r.fleet(fromMs: t0 + 30 * Self.h, toMs: t0 + 40 * Self.h, by: ["device_id", "sku"], baseline: .version("1.4.0"))
        #expect(perDevice.map { $0.labels[0].1 } == ["new-a", "new-b"])
        #expect(perDevice[1].values.confidencePSI.map { abs($0) < 1e-12 } == true)  // new-b: all bin 9, like 1.4.0 on orin
        // No baseline asked for: no drift values.
        #expect(try r.fleet(fromMs: t0 + 30 * Self.h, toMs: t0 + 40 * Self.h, by: ["model_version"], baseline: nil)[0].values.confidencePSI == nil)
    }

    @Test func presenceStatusAtAPastTime() {
        typealias S = PresenceHistory.Stretch
        let m: Int64 = 60_000
        let stale = 5 * m
        let stretches = [S(cohort: 1, firstMs: 0, lastMs: 10 * m), S(cohort: 2, firstMs: 30 * m, lastMs: 60 * m)]
        func at(_ t: Int64, first: Int64 = 0) -> PresenceHistory.Status {
            PresenceHistory.status(stretches, firstSeenMs: first, registryCohort: 9, at: t, staleAfterMs: stale)
        }
        #expect(at(-1) == .unknown)
        #expect(at(0) == .seen(cohort: 1))
        #expect(at(5 * m) == .seen(cohort: 1))  // inside, but started less than 5m ago
        #expect(at(6 * m) == .inside(cohort: 1))  // inside: the minute buckets decide
        #expect(at(10 * m - 1) == .inside(cohort: 1))
        #expect(at(10 * m) == .seen(cohort: 1))  // its last message: exact
        #expect(at(15 * m) == .seen(cohort: 1))  // last seen 10m: exactly stale_after ago, not older
        #expect(at(15 * m + 1) == .silent(cohort: 1))
        #expect(at(30 * m) == .seen(cohort: 2))  // back, in its new cohort
        #expect(at(70 * m) == .silent(cohort: 2))
        // Overlapping stretches (a version change): the one seen most recently wins.
        let overlap = [S(cohort: 1, firstMs: 0, lastMs: 20 * m), S(cohort: 2, firstMs: 10 * m, lastMs: 12 * m)]
        #expect(PresenceHistory.status(overlap, firstSeenMs: 0, registryCohort: 9, at: 15 * m, staleAfterMs: stale) == .inside(cohort: 1))
        #expect(PresenceHistory.status(overlap, firstSeenMs: 0, registryCohort: 9, at: 11 * m, staleAfterMs: stale) == .seen(cohort: 2))
        // Stretches pruned, registry says it existed: silent in its registry cohort.
        #expect(PresenceHistory.status([], firstSeenMs: 0, registryCohort: 9, at: 100 * m, staleAfterMs: stale) == .silent(cohort: 9))
        #expect(PresenceHistory.status([], firstSeenMs: 200 * m, registryCohort: 9, at: 100 * m, staleAfterMs: stale) == .unknown)
    }

    @Test func offlineAsOfReplaysWhoWasSilent() throws {
        let db = TempDB()
        let w = try StoreWriter(path: db.path)
        let m: Int64 = 60_000
        var msgs: [TelemetryMessage] = []
        func every(_ d: Device, _ minutes: [Int64]) {
            for (i, k) in minutes.enumerated() {
                let ts = t0 + k * m
                msgs.append(d.message(seq: Int64(i + 1), at: ts, records: [Device.resources(at: ts)]))
            }
        }
        every(Device(id: "stops", version: "1.4.0"), Array(0...10))
        every(Device(id: "steady", version: "1.4.0"), Array(0...30))
        // Silent from 5m to 12m: less than the 10m presence gap, so one stretch; the minute
        // buckets show the hole.
        every(Device(id: "blinks", version: "1.5.0"), Array(0...5) + Array(12...30))
        every(Device(id: "late", version: "1.5.0"), Array(20...30))
        try w.write(msgs)
        let r = try StoreReader(path: db.path)
        let history = try r.presenceHistory()
        func offline(_ minute: Double) throws -> [String: Bool] {
            let rows = try r.offlineAsOf(history, at: t0 + Int64(minute * 60_000), staleAfterMs: 5 * m)
            return Dictionary(uniqueKeysWithValues: rows.map { ($0.deviceID, $0.offline) })
        }
        #expect(try offline(4) == ["stops": false, "steady": false, "blinks": false])
        #expect(try offline(11.5) == ["stops": false, "steady": false, "blinks": true])
        #expect(try offline(16) == ["stops": true, "steady": false, "blinks": false])
        #expect(try offline(25) == ["stops": true, "steady": false, "blinks": false, "late": false])
        #expect(try offline(40) == ["stops": true, "steady": true, "blinks": true, "late": true])
        let labels = try r.offlineAsOf(history, at: t0 + 25 * m, staleAfterMs: 5 * m).first { $0.deviceID == "late" }?.labels
        #expect(labels?["model_version"] == "1.5.0" && labels?["sku"] == "orin-nano-8g")
    }
}
