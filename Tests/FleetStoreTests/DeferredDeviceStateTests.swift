import FleetCore
import Foundation
import SQLiteKit
import Testing

@testable import FleetStore

/// While ingest is behind, the writer holds per-device state back and journals it
/// (`StoreWriter.write(_:behind:)`). Whatever the batches, flushes and crashes, the store must
/// end up exactly as if every batch had been written whole.
@Suite struct DeferredDeviceStateTests {
    /// Random traffic from 12 devices: out of order, re-sends, seq gaps, a firmware change, a
    /// model rollout (a new cohort), silences longer than the presence gap, late records.
    func traffic(seed: UInt64) -> [IngestItem] {
        var rng = SplitMix64(seed: seed)
        var out: [IngestItem] = []
        for i in 0..<12 {
            var d = Device(id: "dev-\(i)", sku: i % 3 == 0 ? "orin" : "xavier", version: "1.4.0")
            var ts = t0 + Int64(i) * 1_000
            for seq in Int64(1)...60 {
                ts += Int64.random(in: 5_000...25_000, using: &rng)
                if seq == 30 && i % 4 == 1 { ts += 15 * 60_000 }  // silent longer than the presence gap
                if seq == 40 && i % 3 == 2 { d.firmware = "5.2.0" }
                if seq == 45 && i % 2 == 0 { d.version = "1.5.0" }
                if seq % 17 == 0 && i % 2 == 1 { continue }  // never arrives: a gap
                var records: [TelemetryRecord] = [
                    Device.inference(at: ts, count: Int64.random(in: 3...40, using: &rng), errors: Int64.random(in: 0...2, using: &rng),
                                     latencyUs: Double.random(in: 1_000...90_000, using: &rng), confidenceBin: Int.random(in: 0...9, using: &rng),
                                     classes: ["ok": Int64.random(in: 0...9, using: &rng), "defect": Int64.random(in: 0...3, using: &rng)]),
                    Device.resources(at: ts, temp: Double.random(in: 30...90, using: &rng), throttle: Int64.random(in: 0...2, using: &rng)),
                ]
                if seq % 11 == 0 { records.append(Device.session(at: ts, "s\(seq)", Bool.random(using: &rng) ? .crashed : .exited)) }
                if seq % 13 == 0 { records.append(Device.inference(at: ts - 2 * 3_600_000, count: 3, errors: 1)) }  // late, hours back
                out.append(.telemetry(d.message(seq: seq, at: ts, records: records), receivedMs: ts + Int64.random(in: 0...3_000, using: &rng)))
            }
        }
        // Mostly in order (as a backlog drains), with local shuffles and re-sends.
        var items = out.sorted { received($0) < received($1) }
        for k in stride(from: 0, to: items.count - 8, by: 8) where Bool.random(using: &rng) {
            items[k..<k + 8].shuffle(using: &rng)
        }
        items += out.shuffled(using: &rng).prefix(40)
        return items
    }

    /// Limits that never force a write midway.
    static let holdAll: StoreOptions = {
        var o = StoreOptions()
        o.deferMaxMs = 24 * 3_600_000
        return o
    }()

    func received(_ item: IngestItem) -> Int64 {
        if case .telemetry(_, let r) = item { return r }
        return 0
    }

    /// Batches of random size; `behind` decides which are written as behind.
    func writeAll(_ items: [IngestItem], to w: StoreWriter, seed: UInt64, behind: (Int) -> Bool) throws {
        var rng = SplitMix64(seed: seed)
        var i = 0
        var k = 0
        while i < items.count {
            let n = Int.random(in: 1...60, using: &rng)
            try w.write(Array(items[i..<min(items.count, i + n)]), behind: behind(k))
            i += n
            k += 1
        }
    }

    @Test(arguments: [UInt64(1), 2, 3, 4])
    func holdingStateBackEndsInTheSameStore(seed: UInt64) throws {
        let items = traffic(seed: seed)
        let plain = TempDB()
        try writeAll(items, to: try StoreWriter(path: plain.path), seed: seed, behind: { _ in false })

        // Behind for almost every batch, with limits low enough that some flushes happen midway.
        let held = TempDB()
        var options = StoreOptions()
        options.deferMaxMessages = 150
        options.deferMaxMs = 20 * 60_000
        let w = try StoreWriter(path: held.path, options: options)
        var journaledSomething = false
        var rng = SplitMix64(seed: seed + 7)
        try writeAll(items, to: w, seed: seed, behind: { _ in
            journaledSomething = journaledSomething || w.deferredMessages > 0
            return Int.random(in: 0..<10, using: &rng) != 0
        })
        try w.flushDeviceState()
        #expect(journaledSomething)
        #expect(w.deferredMessages == 0)
        #expect(try dump(held.path) == dump(plain.path))
        #expect(try count(held.path, "journal") == 0)
    }

    /// A writer that stops (a crash after its last commit) with state held back: the next writer
    /// redoes it from the journal before anything else, and re-sent messages stay duplicates.
    @Test(arguments: [UInt64(5), 6])
    func aCrashWhileHoldingBackLosesNothing(seed: UInt64) throws {
        let items = traffic(seed: seed)
        let plain = TempDB()
        try writeAll(items, to: try StoreWriter(path: plain.path), seed: seed, behind: { _ in false })

        let held = TempDB()
        do {
            let w = try StoreWriter(path: held.path, options: Self.holdAll)
            try writeAll(items, to: w, seed: seed, behind: { _ in true })
            #expect(w.deferredMessages > 0)
            #expect(try count(held.path, "journal") > 0)
            // The registry is behind the raw records until the journal is redone.
            #expect(try dump(held.path) != dump(plain.path))
        }  // dropped without a flush, as a killed process
        let again = try StoreWriter(path: held.path)
        #expect(try count(held.path, "journal") == 0)
        let (a, b) = (try dump(held.path), try dump(plain.path))
        for t in a.keys.sorted() where a[t] != b[t] {
            let x = Set(a[t]!), y = Set(b[t]!)
            Issue.record("\(t): recovered only \(x.subtracting(y).sorted().prefix(3)) / plain only \(y.subtracting(x).sorted().prefix(3))")
        }
        // Everything re-sent is a duplicate: the seq ranges were redone too.
        let outcome = try again.write(Array(items.prefix(200)), behind: true)
        #expect(outcome.stored == 0 && outcome.duplicates == 200)
    }

    /// A batch whose transaction fails drops the writer's caches; the next batch redoes the
    /// journal of the batches committed before it.
    @Test func aFailedBatchRedoesTheJournal() throws {
        let items = traffic(seed: 9)
        let plain = TempDB()
        try writeAll(items, to: try StoreWriter(path: plain.path), seed: 9, behind: { _ in false })

        let held = TempDB()
        let w = try StoreWriter(path: held.path, options: Self.holdAll)
        let half = items.count / 2
        try writeAll(Array(items[..<half]), to: w, seed: 9, behind: { _ in true })
        #expect(w.deferredMessages > 0)
        // Another connection holds the write lock: the next batch fails (after the busy timeout).
        let blocker = try SQLiteConnection(path: held.path)
        try blocker.execute("PRAGMA busy_timeout=0")
        try blocker.execute("BEGIN IMMEDIATE")
        try w.connection.execute("PRAGMA busy_timeout=0")
        #expect(throws: (any Error).self) { try w.write(Array(items[half..<half + 50]), behind: true) }
        try blocker.execute("ROLLBACK")
        try writeAll(Array(items[half...]), to: w, seed: 10, behind: { _ in true })
        try w.flushDeviceState()
        #expect(try dump(held.path) == dump(plain.path))
    }

    /// What readers must not see late is written with the batch even while holding back: a new
    /// device, an attribute change, a presence stretch starting.
    @Test func newDevicesAttributeChangesAndNewStretchesAreWrittenAtOnce() throws {
        let db = TempDB()
        let w = try StoreWriter(path: db.path, options: Self.holdAll)
        var d = Device(id: "cam-1")
        try w.write([.telemetry(d.message(seq: 1, at: t0, records: [Device.inference(at: t0)]), receivedMs: t0)], behind: true)
        let r = try StoreReader(path: db.path)
        #expect(try r.count("devices") == 1)
        #expect(try r.count("presence") == 1)
        try w.write([.telemetry(d.message(seq: 2, at: t0 + 10_000, records: [Device.inference(at: t0 + 10_000)]), receivedMs: t0 + 10_000)], behind: true)
        // Held back: the registry still says seq 1, the minute window is not written yet.
        #expect(try r.connection.scalar("SELECT attrs_seq FROM devices") == 1)
        #expect(try r.count("device_minute") == 0)
        d.firmware = "5.2.0"
        try w.write([.telemetry(d.message(seq: 3, at: t0 + 20_000, records: [Device.inference(at: t0 + 20_000)]), receivedMs: t0 + 20_000)], behind: true)
        #expect(try r.connection.scalar("SELECT count(*) FROM devices WHERE firmware = '5.2.0' AND attrs_seq = 3") == 1)
        #expect(try r.count("changes") == 1)
        // The firmware is a cohort label: a stretch in the new cohort, at once.
        #expect(try r.count("presence") == 2)
        // Back after 20 minutes: a new stretch, at once.
        let later = t0 + 20 * 60_000
        try w.write([.telemetry(d.message(seq: 4, at: later, records: [Device.inference(at: later)]), receivedMs: later)], behind: true)
        #expect(try r.count("presence") == 3)
        #expect(try r.count("device_minute") == 0)
        try w.write([], behind: false)
        #expect(try r.count("device_minute") == 2)
        #expect(try r.connection.scalar("SELECT value FROM meta WHERE key = 'device_state_flushes'") == 1)
    }

    /// Records journaled and then pruned by retention before a crash: the redo skips them (their
    /// windows are past retention too) instead of refusing to open the store.
    @Test func aRedoSkipsRecordsRetentionPruned() throws {
        let db = TempDB()
        let d = Device(id: "old-timer")
        let now = t0 + 30 * 86_400_000
        do {
            let w = try StoreWriter(path: db.path, options: Self.holdAll)
            try w.write([.telemetry(d.message(seq: 1, at: now, records: [Device.inference(at: now)]), receivedMs: now)])
            // A buffered message from 10 days ago, then one from now: both held back.
            try w.write([.telemetry(d.message(seq: 2, at: now, records: [Device.inference(at: now - 10 * 86_400_000)]), receivedMs: now),
                          .telemetry(d.message(seq: 3, at: now, records: [Device.inference(at: now)]), receivedMs: now)], behind: true)
            #expect(w.deferredMessages == 2)
            #expect(try w.prune(nowMs: now) == 1)  // the 10-day-old raw record
        }
        let again = try StoreWriter(path: db.path)
        let r = try StoreReader(path: db.path)
        #expect(try r.count("journal") == 0)
        #expect(try r.connection.scalar("SELECT attrs_seq FROM devices") == 3)
        #expect(try r.connection.scalar("SELECT sum(inferences) FROM device_minute") == 200)
        #expect(try again.write([.telemetry(d.message(seq: 2, at: now, records: []), receivedMs: now)]).duplicates == 1)
    }

    /// `markStale` does not take a device for silent when only its held-back row is old.
    @Test func aDeviceHeardFromWhileHeldBackIsNotStale() throws {
        let db = TempDB()
        let w = try StoreWriter(path: db.path, options: Self.holdAll)
        let a = Device(id: "a"), b = Device(id: "b")
        try w.write([a.message(seq: 1, at: t0, records: [Device.inference(at: t0)]), b.message(seq: 1, at: t0, records: [Device.inference(at: t0)])], receivedMs: t0)
        let late = t0 + 4 * 60_000
        try w.write([.telemetry(a.message(seq: 2, at: late, records: [Device.inference(at: late)]), receivedMs: late)], behind: true)
        #expect(try w.markStale(nowMs: t0 + 6 * 60_000, staleAfterMs: 5 * 60_000) == 1)
        let r = try StoreReader(path: db.path)
        #expect(try r.connection.scalar("SELECT count(*) FROM devices WHERE device_id = 'a' AND state = 'online' AND last_received_ms = \(late)") == 1)
        #expect(try r.connection.scalar("SELECT count(*) FROM devices WHERE device_id = 'b' AND state = 'stale'") == 1)
        // b is back: online at once, not at the next flush.
        let back = t0 + 7 * 60_000
        try w.write([.telemetry(b.message(seq: 2, at: back, records: [Device.inference(at: back)]), receivedMs: back)], behind: true)
        #expect(w.deferredMessages == 2)
        #expect(try r.connection.scalar("SELECT count(*) FROM devices WHERE device_id = 'b' AND state = 'online' AND last_received_ms = \(back)") == 1)
    }

    /// The TUI's device cache reads everything again after the writer writes held-back state.
    @Test func theDeviceCacheReadsAgainAfterAFlush() throws {
        let db = TempDB()
        let w = try StoreWriter(path: db.path, options: Self.holdAll)
        let devs = (0..<5).map { Device(id: "d\($0)") }
        try w.write(devs.map { $0.message(seq: 1, at: t0, records: [Device.inference(at: t0)]) }, receivedMs: t0 + 100)
        // One device written later with an older receiver time than the cache's mark: only a
        // flush-aware cache notices.
        let r = try StoreReader(path: db.path)
        let cache = DeviceWindowCache()
        _ = try r.deviceTable(cache: cache, nowMs: t0 + 1_000)
        try w.write([.telemetry(devs[0].message(seq: 2, at: t0 + 50, records: [Device.inference(at: t0 + 50)]), receivedMs: t0 + 100)], behind: true)
        try w.write([.telemetry(devs[1].message(seq: 2, at: t0 + 60, records: [Device.inference(at: t0 + 60)]), receivedMs: t0 + 200)], behind: false)
        let cached = try r.deviceTable(cache: cache, nowMs: t0 + 2_000)
        let fresh = try r.deviceTable(nowMs: t0 + 2_000)
        #expect(cached.devices.map(\.registry) == fresh.devices.map(\.registry))
        #expect(cached.devices.map(\.registry.lastSeq) == [2, 2, 1, 1, 1])
    }

    /// The same traffic arriving 30 ms apart (a live fleet): `liveHoldMs` holds per-device
    /// state back across batches that are not behind, within a second of receiver time.
    func liveTraffic(seed: UInt64) -> [IngestItem] {
        traffic(seed: seed).enumerated().map { i, item in
            guard case .telemetry(let m, _) = item else { return item }
            return .telemetry(m, receivedMs: t0 + Int64(i) * 30)
        }
    }

    static let liveHold: StoreOptions = {
        var o = StoreOptions()
        o.liveHoldMs = StoreOptions.maxLiveHoldMs
        return o
    }()

    @Test(arguments: [UInt64(11), 12, 13])
    func aLiveHoldEndsInTheSameStore(seed: UInt64) throws {
        let items = liveTraffic(seed: seed)
        let plain = TempDB()
        try writeAll(items, to: try StoreWriter(path: plain.path), seed: seed, behind: { _ in false })

        let held = TempDB()
        let w = try StoreWriter(path: held.path, options: Self.liveHold)
        var heldMost = 0
        var rng = SplitMix64(seed: seed + 3)
        try writeAll(items, to: w, seed: seed, behind: { _ in
            heldMost = max(heldMost, w.deferredMessages)
            // Now and then an idle tick long after the held state arrived, as the ingester's has.
            if Int.random(in: 0..<6, using: &rng) == 0 { _ = try? w.flushDeviceState(heldSince: .max) }
            return false
        })
        try w.flushDeviceState()
        // Less than a second of receiver time is at most 34 messages here; batches are 1-60.
        #expect(heldMost > 0 && heldMost <= 34)
        #expect(try dump(held.path) == dump(plain.path))
        // Live holds are short: the TUI's cache needs no full re-read after them.
        #expect(try SQLiteConnection(path: held.path).scalar("SELECT count(*) FROM meta WHERE key = 'device_state_flushes'") == 0)
    }

    @Test func aLiveHoldIsWrittenOnceItSpansItsInterval() throws {
        let db = TempDB()
        let w = try StoreWriter(path: db.path, options: Self.liveHold)
        let d = Device(id: "cam-1")
        func send(_ seq: Int64, receivedAt r: Int64) throws {
            try w.write([.telemetry(d.message(seq: seq, at: r, records: [Device.inference(at: r)]), receivedMs: r)])
        }
        let r = try StoreReader(path: db.path)
        try send(1, receivedAt: t0)  // new device: written at once
        try send(2, receivedAt: t0 + 400)
        try send(3, receivedAt: t0 + 999)
        #expect(w.deferredMessages == 3)
        #expect(try r.connection.scalar("SELECT attrs_seq FROM devices") == 1)
        #expect(try r.count("device_minute") == 0)
        // The idle tick leaves state held less than a second.
        #expect(try !w.flushDeviceState(heldSince: t0 - 1))
        try send(4, receivedAt: t0 + 1_000)  // a second after the oldest held: all written
        #expect(w.deferredMessages == 0)
        #expect(try r.connection.scalar("SELECT attrs_seq FROM devices") == 4)
        #expect(try r.connection.scalar("SELECT sum(inferences) FROM device_minute") == 400)
        // Held again, then written by an idle tick once the fleet is quiet.
        try send(5, receivedAt: t0 + 1_100)
        #expect(w.deferredMessages == 1)
        #expect(try w.flushDeviceState(heldSince: t0 + 1_100))
        #expect(w.deferredMessages == 0)
        #expect(try r.connection.scalar("SELECT attrs_seq FROM devices") == 5)
    }

    /// Open gaps are read from the seq ranges: a gap opening or closing is written with its
    /// batch while the rest of the device's state is held back.
    @Test func gapsOpeningAndClosingAreWrittenAtOnce() throws {
        let db = TempDB()
        let w = try StoreWriter(path: db.path, options: Self.liveHold)
        let d = Device(id: "cam-1")
        let r = try StoreReader(path: db.path)
        func send(_ seq: Int64, _ at: Int64) throws {
            try w.write([.telemetry(d.message(seq: seq, at: t0 + at, records: [Device.inference(at: t0 + at)]), receivedMs: t0 + at)])
        }
        try send(1, 0)
        try send(2, 10)
        #expect(w.deferredMessages == 2)
        try send(5, 20)
        #expect(w.deferredMessages == 3)
        #expect(try r.openGaps() == [SeqGap(deviceID: "cam-1", fromSeq: 3, toSeq: 4)])
        try send(3, 30)
        #expect(try r.openGaps() == [SeqGap(deviceID: "cam-1", fromSeq: 4, toSeq: 4)])
        try send(4, 40)
        #expect(try r.openGaps().isEmpty)
        #expect(w.deferredMessages == 5)
    }

    /// The TUI's cache re-reads registry rows up to `maxLiveHoldMs` older than its mark, so a
    /// row written by a live hold's flush behind a newer prompt write is not missed.
    @Test func theDeviceCacheSeesRowsALiveHoldWroteLate() throws {
        let db = TempDB()
        let w = try StoreWriter(path: db.path, options: Self.liveHold)
        let devs = (0..<5).map { Device(id: "d\($0)") }
        try w.write(devs.map { $0.message(seq: 1, at: t0, records: [Device.inference(at: t0)]) }, receivedMs: t0)
        try w.write([.telemetry(devs[0].message(seq: 2, at: t0 + 150, records: [Device.inference(at: t0 + 150)]), receivedMs: t0 + 150)])
        #expect(w.deferredMessages == 6)
        // A new device is written at once and moves the cache's mark past the held row.
        let late = Device(id: "d9")
        try w.write([.telemetry(late.message(seq: 1, at: t0 + 900, records: [Device.inference(at: t0 + 900)]), receivedMs: t0 + 900)])
        let r = try StoreReader(path: db.path)
        let cache = DeviceWindowCache()
        _ = try r.deviceTable(cache: cache, nowMs: t0 + 1_000)
        try w.write([.telemetry(devs[1].message(seq: 2, at: t0 + 1_200, records: [Device.inference(at: t0 + 1_200)]), receivedMs: t0 + 1_200)])
        #expect(w.deferredMessages == 0)
        let cached = try r.deviceTable(cache: cache, nowMs: t0 + 2_000)
        let fresh = try r.deviceTable(nowMs: t0 + 2_000)
        #expect(cached.devices.map(\.registry) == fresh.devices.map(\.registry))
        #expect(cached.devices.map(\.registry.lastSeq) == [2, 2, 1, 1, 1, 1])
    }

    @Test func journalEntriesRoundTrip() throws {
        var rng = SplitMix64(seed: 1)
        var j = DeviceJournal()
        var entries: [DeviceJournal.Entry] = []
        for _ in 0..<500 {
            let sent = Int64.random(in: -1_000...4_000_000_000_000, using: &rng)
            let records = (0..<Int.random(in: 0...4, using: &rng)).map { k in
                DeviceJournal.Record(kind: Bool.random(using: &rng) ? .inference : .resources, idx: Int64(k), tsMs: sent + Int64.random(in: -86_400_000...1_000, using: &rng))
            }
            let e = DeviceJournal.Entry(dev: Int64.random(in: 1...1_000_000, using: &rng), seq: Int64.random(in: .min / 2 ... .max / 2, using: &rng), sentAtMs: sent,
                                        receivedMs: sent + Int64.random(in: -5_000...600_000, using: &rng), cohort: Int64.random(in: 1...500, using: &rng), records: records)
            entries.append(e)
            j.append(e)
        }
        #expect(j.count == 500)
        #expect(try j.bytes.withUnsafeBytes { try DeviceJournal.decode($0) } == entries)
        #expect(throws: StoreError.self) { try j.bytes.dropLast().withUnsafeBytes { try DeviceJournal.decode(UnsafeRawBufferPointer($0)) } }
    }

    /// The writer encodes a message's entry straight from the message; it must be the entry
    /// that names the message's inference and resources records, in order, and nothing else.
    @Test func journalEntryOfAMessage() throws {
        let d = Device(id: "cam-1")
        let shapes: [[TelemetryRecord]] = [
            [Device.inference(at: t0 - 5_000), Device.resources(at: t0 - 4_000)],
            [Device.session(at: t0 - 9_000, "s1", .started), .error(ErrorRecord(tsMs: t0 - 8_000, code: "E1", message: "m")),
             Device.inference(at: t0 - 7_000), .deploy(DeployRecord(tsMs: t0 - 6_000, fromVersion: "1.0", toVersion: "1.1", result: .installed)),
             Device.resources(at: t0 + 900), Device.inference(at: t0 - 86_400_000)],
            [Device.session(at: t0, "s2", .crashed)],
        ]
        var j = DeviceJournal()
        var expected: [DeviceJournal.Entry] = []
        for (k, records) in shapes.enumerated() {
            let m = d.message(seq: Int64(k + 1), at: t0, records: records)
            j.append(m, dev: Int64(7 + k), receivedMs: t0 + 250, cohort: 3)
            let named = records.enumerated().compactMap { i, r -> DeviceJournal.Record? in
                switch r {
                case .inference: .init(kind: .inference, idx: Int64(i), tsMs: r.tsMs)
                case .resources: .init(kind: .resources, idx: Int64(i), tsMs: r.tsMs)
                case .session, .error, .deploy: nil
                }
            }
            expected.append(.init(dev: Int64(7 + k), seq: Int64(k + 1), sentAtMs: t0, receivedMs: t0 + 250, cohort: 3, records: named))
        }
        #expect(j.count == shapes.count)
        #expect(try j.bytes.withUnsafeBytes { try DeviceJournal.decode($0) } == expected)
        #expect(expected.map(\.records.count) == [2, 3, 0])
    }

    @Test func classCountsEncodeAsTheirMapDoes() {
        var rng = SplitMix64(seed: 2)
        let names = ["ok", "defect", "unknown", "Ü", "a", "ab", ""]
        for _ in 0..<500 {
            let list = (0..<Int.random(in: 0...20, using: &rng)).map { _ in
                ClassCount(name: names[Int.random(in: 0..<names.count, using: &rng)], count: Int64.random(in: 0...1_000, using: &rng))
            }
            var map: [String: Int64] = [:]
            for c in list { map[c.name, default: 0] += c.count }
            #expect(Codecs.encodeClasses(list) == Codecs.encodeClasses(map))
            // The writer's form: appended after other bytes, which stay as they were.
            var buffer: [UInt8] = [1, 2, 3]
            Codecs.appendClasses(list, to: &buffer)
            #expect(buffer == [1, 2, 3] + Codecs.encodeClasses(map))
        }
        // The rollups' tally, below and above the size where it starts indexing by name.
        for size in [3, 40] {
            var tally = ClassTally()
            var map: [String: Int64] = [:]
            for k in 0..<400 {
                let name = "c\(Int.random(in: 0..<size, using: &rng))"
                tally.add(name, Int64(k))
                map[name, default: 0] += Int64(k)
            }
            #expect(tally.encoded() == Codecs.encodeClasses(map))
        }
    }

    // MARK: - Comparing stores

    func count(_ path: String, _ table: String) throws -> Int64 {
        try SQLiteConnection(path: path).scalar("SELECT count(*) FROM \(table)") ?? -1
    }

    /// Every table the writer maintains, as sorted text rows: sketches as keys and counts,
    /// sums of doubles rounded (their order of addition differs), the seq ranges as they are
    /// read (the highest ending at attrs_seq).
    func dump(_ path: String) throws -> [String: [String]] {
        let c = try SQLiteConnection(path: path)
        try c.registerMergeFunctions()
        var out: [String: [String]] = [:]
        for table in ["devices", "cohorts", "presence", "device_minute", "device_hour", "rollup_minute", "rollup_hour", "changes", "counters",
                      "inference", "resources", "sessions", "errors"] {
            let s = try c.prepare("SELECT * FROM \(table)")
            let n = s.columnCount
            var rows: [String] = []
            while try s.step() {
                var cols: [String] = []
                for k in 0..<n {
                    let name = s.columnName(k)
                    if s.isNull(k) { cols.append("\(name)=null"); continue }
                    switch s.columnType(k) {
                    case .real: cols.append("\(name)=\(String(format: "%.6g", s.double(k)))")
                    case .blob where name == "latency":
                        let sk = Codecs.decodeSketch(s.blob(k))
                        cols.append("latency=\(sk.keys):\(sk.counts):\(sk.count)")
                    case .blob: cols.append("\(name)=\(s.blob(k))")
                    default: cols.append("\(name)=\(s.text(k))")
                    }
                }
                rows.append(cols.joined(separator: " "))
            }
            out[table] = rows.sorted()
        }
        let q = try c.prepare("SELECT d.device_id, d.attrs_seq, r.from_seq, r.to_seq FROM seq_ranges r JOIN devices d USING(dev) ORDER BY d.device_id, r.from_seq")
        var ranges: [String: (Int64, [ClosedRange<Int64>])] = [:]
        while try q.step() { ranges[q.text(0), default: (q.int(1), [])].1.append(q.int(2)...q.int(3)) }
        out["seq_ranges"] = ranges.keys.sorted().map { "\($0) \(StoreWriter.endingAt(ranges[$0]!.0, ranges[$0]!.1))" }
        return out
    }
}
