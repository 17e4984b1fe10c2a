import FleetCore
import Foundation
import SQLiteKit
import Testing

@testable import FleetStore

/// Per-device hours are folded from their minutes once the hour is over
/// (`StoreWriter.foldDeviceHours`); until then readers sum the minutes. Whenever the folds
/// happen, and whatever arrives late, readers must see the same hours.
@Suite struct DeviceHourFoldTests {
    let traffic = DeferredDeviceStateTests().traffic

    /// Every device's hourly windows over the traffic's whole span (`query device` beyond 6 h).
    func hours(_ path: String) throws -> [String: [StoreReader.Window]] {
        let r = try StoreReader(path: path)
        var out: [String: [StoreReader.Window]] = [:]
        for i in 0..<12 {
            let h = try r.snapshot { try r.deviceHistory("dev-\(i)", fromMs: t0 - 4 * Time.hourMs, toMs: t0 + 6 * Time.hourMs) }
            #expect(h?.resolution == "hour")
            out["dev-\(i)"] = h?.windows ?? []
        }
        return out
    }

    /// Equal but for the order in which doubles were summed.
    func expectSame(_ a: [String: [StoreReader.Window]], _ b: [String: [StoreReader.Window]], _ comment: Comment) {
        #expect(a.keys.sorted() == b.keys.sorted(), comment)
        for (id, xs) in a {
            let ys = b[id] ?? []
            #expect(xs.count == ys.count, "\(id) \(comment)")
            for (x, y) in zip(xs, ys) {
                func close(_ u: Double?, _ v: Double?) -> Bool {
                    guard let u, let v else { return u == nil && v == nil }
                    return abs(u - v) <= 1e-9 * max(1, abs(u))
                }
                let same = x.tsMs == y.tsMs && x.windowMs == y.windowMs && x.inferences == y.inferences && x.errors == y.errors
                    && x.latencyP50Ms == y.latencyP50Ms && x.latencyP95Ms == y.latencyP95Ms && close(x.tempC, y.tempC)
                    && close(x.cpuPct, y.cpuPct) && x.memMB == y.memMB && x.throttleEvents == y.throttleEvents
                #expect(same, "\(id) \(comment): \(x) != \(y)")
            }
        }
    }

    /// Rows of device_hour that differ from the sum of their minutes (exact columns only).
    func rowsNotTheSumOfTheirMinutes(_ path: String) throws -> Int64 {
        let c = try SQLiteConnection(path: path)
        return try c.scalar("""
            SELECT count(*) FROM device_hour h LEFT JOIN (
                SELECT bucket / 60 AS hour, dev, sum(inferences) AS n, sum(errors) AS e, sum(resource_samples) AS s, sum(throttle_events) AS t
                FROM device_minute GROUP BY hour, dev) m ON m.hour = h.bucket AND m.dev = h.dev
            WHERE m.n IS NOT h.inferences OR m.e IS NOT h.errors OR m.s IS NOT h.resource_samples OR m.t IS NOT h.throttle_events
            """) ?? -1
    }

    func mark(_ path: String) throws -> FoldMark { try FoldMark.load(SQLiteConnection(path: path)) }

    @Test(arguments: [UInt64(1), 2, 3])
    func foldingAtAnyPointReadsTheSameHours(seed: UInt64) throws {
        let items = traffic(seed)
        // Never folded: every hour is read from its minutes.
        let plain = TempDB()
        try DeferredDeviceStateTests().writeAll(items, to: try StoreWriter(path: plain.path), seed: seed, behind: { _ in false })
        #expect(try mark(plain.path) == FoldMark(openFrom: 0, dev: 0))

        // Folded as the traffic goes (few devices per step), with some batches held back, so
        // late records land both in hours not yet folded and in folded ones.
        let folded = TempDB()
        var options = StoreOptions()
        options.deferMaxMessages = 150
        let w = try StoreWriter(path: folded.path, options: options)
        var rng = SplitMix64(seed: seed + 100)
        var i = 0
        var folds = 0
        var newest = Int64.min
        while i < items.count {
            let batch = Array(items[i..<min(items.count, i + Int.random(in: 1...40, using: &rng))])
            try w.write(batch, behind: Bool.random(using: &rng))
            i += batch.count
            for case .telemetry(let m, _) in batch { newest = max(newest, m.sentAtMs) }
            if Int.random(in: 0..<3, using: &rng) == 0 {
                folds += try w.foldDeviceHours(nowMs: newest + Int64.random(in: 0...3_600_000, using: &rng), maxDevices: Int.random(in: 1...5, using: &rng))
            }
        }
        try w.flushDeviceState()
        #expect(folds > 0)
        // Some hours are folded and some are not: both halves of the reader are used.
        let m = try mark(folded.path)
        #expect(m.openFrom > (t0 - 3 * Time.hourMs) / Time.hourMs && m.openFrom <= (t0 + 2 * Time.hourMs) / Time.hourMs)
        #expect(try DeferredDeviceStateTests().count(folded.path, "device_hour") > 0)
        #expect(try rowsNotTheSumOfTheirMinutes(folded.path) == 0)
        let expected = try hours(plain.path)
        #expect(expected.values.allSatisfy { $0.count >= 2 })
        expectSame(try hours(folded.path), expected, "partly folded")

        // Folding everything changes nothing readers see.
        while try w.foldDeviceHours(nowMs: t0 + 30 * Time.hourMs, maxDevices: 7) > 0 {}
        #expect(try mark(folded.path).openFrom == (t0 + 30 * Time.hourMs - options.deviceHourFoldGraceMs) / Time.hourMs)
        #expect(try rowsNotTheSumOfTheirMinutes(folded.path) == 0)
        expectSame(try hours(folded.path), expected, "all folded")
        // And it did not touch anything else.
        var a = try DeferredDeviceStateTests().dump(folded.path)
        var b = try DeferredDeviceStateTests().dump(plain.path)
        a["device_hour"] = nil
        b["device_hour"] = nil
        #expect(a == b)
    }

    /// Hours folded while their devices' state is held back (journaled, not written), then a
    /// crash: the redo writes those minutes and, their hours being folded now, adds them to the
    /// hour rows too.
    @Test func aCrashAfterFoldingHeldBackHoursLosesNothing() throws {
        let items = traffic(21)
        let plain = TempDB()
        try DeferredDeviceStateTests().writeAll(items, to: try StoreWriter(path: plain.path), seed: 21, behind: { _ in false })

        let held = TempDB()
        do {
            let w = try StoreWriter(path: held.path, options: DeferredDeviceStateTests.holdAll)
            let half = items.count / 2
            try DeferredDeviceStateTests().writeAll(Array(items.prefix(half)), to: w, seed: 21, behind: { _ in true })
            // Everything so far is held back: folding now sees none of its minutes.
            #expect(w.deferredMessages > 0)
            while try w.foldDeviceHours(nowMs: t0 + 30 * Time.hourMs, maxDevices: 3) > 0 {}
            #expect(try mark(held.path).openFrom > t0 / Time.hourMs)
            try DeferredDeviceStateTests().writeAll(Array(items.dropFirst(half)), to: w, seed: 22, behind: { _ in true })
            #expect(w.deferredMessages > 0)
        }  // dropped without a flush, as a killed process
        _ = try StoreWriter(path: held.path)
        #expect(try DeferredDeviceStateTests().count(held.path, "journal") == 0)
        #expect(try DeferredDeviceStateTests().count(held.path, "device_hour") > 0)
        #expect(try rowsNotTheSumOfTheirMinutes(held.path) == 0)
        expectSame(try hours(held.path), try hours(plain.path), "crashed after folding")
    }

    /// A late record for an hour already folded is added to its row at once.
    @Test func lateDataForAFoldedHourIsAddedToItsRow() throws {
        let db = TempDB()
        let w = try StoreWriter(path: db.path)
        let d = Device(id: "dev-0")
        try w.write([d.message(seq: 1, at: t0, records: [Device.inference(at: t0, count: 10, errors: 1)])])
        try w.write([d.message(seq: 2, at: t0 + 2 * Time.hourMs, records: [Device.inference(at: t0 + 2 * Time.hourMs, count: 5, errors: 0)])])
        let r = try StoreReader(path: db.path)
        #expect(try r.count("device_hour") == 0)
        // One hour and 5 minutes after t0's hour ended: t0's hour is folded, the later one not.
        while try w.foldDeviceHours(nowMs: t0 + 2 * Time.hourMs + 5 * 60_000) > 0 {}
        #expect(try mark(db.path).openFrom == t0 / Time.hourMs + 2)
        #expect(try r.connection.scalar("SELECT inferences FROM device_hour") == 10)
        try w.write([d.message(seq: 3, at: t0 + 2 * Time.hourMs, records: [Device.inference(at: t0 + 60_000, count: 7, errors: 2)])])
        #expect(try r.connection.scalar("SELECT inferences FROM device_hour") == 17)
        #expect(try r.connection.scalar("SELECT errors FROM device_hour") == 3)
        let h = try r.snapshot { try r.deviceHistory("dev-0", fromMs: t0 - 4 * Time.hourMs, toMs: t0 + 4 * Time.hourMs) }!
        #expect(h.windows.map(\.inferences) == [17, 5])
        #expect(h.windows.map(\.tsMs) == [t0, t0 + 2 * Time.hourMs])
    }

    /// Retention keeps a device's minutes until their hour is folded, even past `rawDays`.
    @Test func pruneKeepsMinutesUntilTheirHourIsFolded() throws {
        let db = TempDB()
        let w = try StoreWriter(path: db.path)
        let old = t0 - 10 * Time.dayMs
        for k in 0..<3 {
            let d = Device(id: "dev-\(k)")
            try w.write((0..<90).map { n in
                let ts = old + Int64(n) * 60_000
                return d.message(seq: Int64(n + 1), at: ts, records: [Device.inference(at: ts, count: Int64(10 + k)), Device.resources(at: ts, temp: 40 + Double(n % 5))])
            })
        }
        let r = try StoreReader(path: db.path)
        let before = try r.snapshot { try r.deviceHistory("dev-1", fromMs: old - Time.hourMs, toMs: old + 8 * Time.hourMs) }!.windows
        #expect(before.count == 2 && before.map(\.inferences).reduce(0, +) == 90 * 11)
        // Not folded yet: the raw records go, the minutes stay.
        while try w.prune(nowMs: t0) > 0 {}
        #expect(try r.count("inference") == 0 && r.count("device_hour") == 0)
        #expect(try r.count("device_minute") == 3 * 90)
        // One device's hour a step; the minutes of an hour not fully folded stay too.
        #expect(try w.foldDeviceHours(nowMs: t0, maxDevices: 1) == 1)  // skips the empty hours before the data
        #expect(try w.foldDeviceHours(nowMs: t0, maxDevices: 1) == 1)
        #expect(try r.count("device_hour") == 1)
        while try w.prune(nowMs: t0) > 0 {}
        #expect(try r.count("device_minute") == 3 * 90)
        var steps = 2
        while try w.foldDeviceHours(nowMs: t0, maxDevices: 1) > 0 { steps += 1 }
        #expect(steps >= 7)
        #expect(try r.count("device_hour") == 6)
        while try w.prune(nowMs: t0) > 0 {}
        #expect(try r.count("device_minute") == 0)
        let after = try r.snapshot { try r.deviceHistory("dev-1", fromMs: old - Time.hourMs, toMs: old + 8 * Time.hourMs) }!.windows
        expectSame(["dev-1": after], ["dev-1": before], "after retention")
        // Nothing left to fold: no work, and no transaction.
        #expect(try w.foldDeviceHours(nowMs: t0) == 0)
    }

    /// A database from before folding wrote every hour whole: after the upgrade those hours
    /// count as folded, and the hour being written goes on from its row.
    @Test func anUpgradedDatabaseCountsItsHoursAsFolded() throws {
        let items = traffic(7)
        let (first, rest) = (Array(items.prefix(400)), Array(items.dropFirst(400)))
        let plain = TempDB()
        try DeferredDeviceStateTests().writeAll(items, to: try StoreWriter(path: plain.path), seed: 7, behind: { _ in false })

        let upgraded = TempDB()
        do {
            let v5 = try StoreWriter(path: upgraded.path, migrations: Array(StoreSchema.migrations.prefix(5)))
            try DeferredDeviceStateTests().writeAll(first, to: v5, seed: 7, behind: { _ in false })
        }
        let v5Hours = try SQLiteConnection(path: upgraded.path).scalar("SELECT max(bucket) FROM device_hour")!
        let w = try StoreWriter(path: upgraded.path)
        #expect(try mark(upgraded.path) == FoldMark(openFrom: v5Hours + 1, dev: 0))
        try DeferredDeviceStateTests().writeAll(rest, to: w, seed: 8, behind: { _ in false })
        #expect(try rowsNotTheSumOfTheirMinutes(upgraded.path) == 0)
        expectSame(try hours(upgraded.path), try hours(plain.path), "upgraded")
    }
}
