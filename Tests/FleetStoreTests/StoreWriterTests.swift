import FleetCore
import Foundation
import SQLiteKit
import Testing

@testable import FleetStore

@Suite struct StoreWriterTests {
    @Test func aMessageIsStoredOnceHoweverOftenItArrives() throws {
        let db = TempDB()
        let w = try StoreWriter(path: db.path)
        let d = Device(id: "cam-1")
        let m = d.message(seq: 1, at: t0, records: [Device.inference(at: t0), Device.resources(at: t0)])
        let first = try w.write([m, m])  // twice in one batch
        #expect(first.stored == 1 && first.duplicates == 1 && first.received == 2)
        let second = try w.write([m])  // and again later
        #expect(second.stored == 0 && second.duplicates == 1)
        let r = try StoreReader(path: db.path)
        #expect(try r.count("inference") == 1)
        #expect(try r.count("resources") == 1)
        let c = try r.ingestCounters()
        #expect(c.received == 3 && c.stored == 1 && c.duplicates == 2)
        // The rollup counted the window once.
        #expect(try r.connection.scalar("SELECT sum(inferences) FROM rollup_minute") == 100)
    }

    @Test func gapsOpenOnJumpsAndCloseWhenFilled() throws {
        let db = TempDB()
        let w = try StoreWriter(path: db.path)
        let d = Device(id: "cam-2")
        let o = try w.write([1, 2, 5, 9].map { d.message(seq: $0, at: t0 + $0 * 10_000, records: [Device.resources(at: t0 + $0 * 10_000)]) })
        #expect(o.newGaps == [SeqGap(deviceID: "cam-2", fromSeq: 3, toSeq: 4), SeqGap(deviceID: "cam-2", fromSeq: 6, toSeq: 8)])
        let r = try StoreReader(path: db.path)
        #expect(try r.deviceHistory("cam-2", fromMs: t0, toMs: t0 + 3_600_000)?.gaps == [3...4, 6...8])
        #expect(try r.ingestCounters().openGaps == 2)
        try w.write([3, 4, 6, 7, 8].map { d.message(seq: $0, at: t0 + $0 * 10_000, records: [Device.resources(at: t0 + $0 * 10_000)]) })
        #expect(try r.deviceHistory("cam-2", fromMs: t0, toMs: t0 + 3_600_000)?.gaps == [])
        #expect(try r.ingestCounters().openGaps == 0)
        // A new writer (a restart) reloads the ranges: old seqs are still duplicates.
        let w2 = try StoreWriter(path: db.path)
        #expect(try w2.write([d.message(seq: 4, at: t0, records: [Device.resources(at: t0)])]).duplicates == 1)
        #expect(try w2.write([d.message(seq: 11, at: t0, records: [Device.resources(at: t0)])]).newGaps == [SeqGap(deviceID: "cam-2", fromSeq: 10, toSeq: 10)])
    }

    @Test func theHighestRangeEndsAtTheRegistrysHighestSeq() throws {
        let db = TempDB()
        let w = try StoreWriter(path: db.path)
        let d = Device(id: "cam-7")
        func batch(_ seqs: ClosedRange<Int64>) -> [TelemetryMessage] {
            seqs.map { d.message(seq: $0, at: t0 + $0 * 10_000, records: [Device.resources(at: t0 + $0 * 10_000)]) }
        }
        for k in 0..<5 { try w.write(batch(Int64(k * 10 + 1)...Int64(k * 10 + 10))) }
        // The range grew in place batch after batch; its row was not rewritten each time.
        func rows() throws -> [(Int64, Int64)] {
            let q = try w.connection.prepare("SELECT from_seq, to_seq FROM seq_ranges ORDER BY from_seq")
            var out: [(Int64, Int64)] = []
            while try q.step() { out.append((q.int(0), q.int(1))) }
            return out
        }
        #expect(try rows().count == 1 && rows()[0].0 == 1 && rows()[0].1 < 50)
        #expect(try w.connection.scalar("SELECT attrs_seq FROM devices") == 50)
        // A restart: every seq up to 50 is still a duplicate, nothing is missing, 51 is new.
        let w2 = try StoreWriter(path: db.path)
        #expect(try w2.missing(deviceID: "cam-7", in: 1...50) == [])
        let again = try w2.write(batch(41...51))
        #expect(again.duplicates == 10 && again.stored == 1 && again.newGaps.isEmpty)
        // A gap: the old top range is written with its real end, and the gap is reported.
        #expect(try w2.write(batch(60...60)).newGaps == [SeqGap(deviceID: "cam-7", fromSeq: 52, toSeq: 59)])
        #expect(try rows().first { $0.0 == 1 }?.1 == 51)
        #expect(try StoreReader(path: db.path).deviceHistory("cam-7", fromMs: t0, toMs: t0 + 3_600_000)?.gaps == [52...59])
        let w3 = try StoreWriter(path: db.path)
        #expect(try w3.missing(deviceID: "cam-7", in: 1...70) == [52...59])
        #expect(try w3.write(batch(55...61)).duplicates == 1)
        #expect(try StoreReader(path: db.path).deviceHistory("cam-7", fromMs: t0, toMs: t0 + 3_600_000)?.gaps == [52...54])
        #expect(try StoreReader(path: db.path).ingestCounters().openGaps == 1)
    }

    @Test func rejectedInputIsQuarantinedWhole() throws {
        let db = TempDB()
        let w = try StoreWriter(path: db.path)
        let payload = Array(#"{"schema":"fleet.telemetry/1","seq":"x"}"#.utf8)
        let item = payload.withUnsafeBytes {
            IngestClassifier.classify(topic: "fleet/cam-3/telemetry", topicDeviceID: "cam-3", payload: $0, receivedMs: t0)
        }
        let o = try w.write([item])
        #expect(o.quarantined == ["schema_violation": 1] && o.stored == 0)
        let r = try StoreReader(path: db.path)
        let s = try r.connection.prepare("SELECT topic, device_id, reason, payload, received_ms FROM quarantine")
        #expect(try s.step())
        #expect(s.text(0) == "fleet/cam-3/telemetry" && s.text(1) == "cam-3")
        #expect(s.text(2).hasPrefix("schema_violation:/"))
        #expect(s.blob(3) == payload && s.int(4) == t0)
        #expect(try r.ingestCounters().quarantined == ["schema_violation": 1])
    }

    @Test func aSpoofedMessageNeverLandsUnderThePayloadsID() throws {
        let db = TempDB()
        let w = try StoreWriter(path: db.path)
        let m = Device(id: "victim").message(seq: 1, at: t0, records: [Device.resources(at: t0)])
        let bytes = TelemetryEncoder.encode(m)
        let item = bytes.withUnsafeBytes { IngestClassifier.classify(topic: "fleet/attacker/telemetry", topicDeviceID: "attacker", payload: $0, receivedMs: t0) }
        #expect(try w.write([item]).quarantined == ["device_id_mismatch": 1])
        let r = try StoreReader(path: db.path)
        #expect(try r.device("victim") == nil && r.device("attacker") == nil)
        #expect(try r.count("resources") == 0)
    }

    @Test func registryShowsTheHighestSeqAndRecordsChanges() throws {
        let db = TempDB()
        let w = try StoreWriter(path: db.path)
        var d = Device(id: "cam-4")
        try w.write([d.message(seq: 10, at: t0, records: [Device.resources(at: t0)])])
        d.firmware = "5.2.0"
        d.version = "1.5.0"
        try w.write([d.message(seq: 11, at: t0 + 10_000, records: [Device.resources(at: t0 + 10_000)])])
        // A late, lower seq with old attributes does not roll the registry back.
        d.firmware = "5.1.2"
        d.version = "1.4.0"
        try w.write([d.message(seq: 9, at: t0 - 10_000, records: [Device.resources(at: t0 - 10_000)])])
        let r = try StoreReader(path: db.path)
        let row = try #require(try r.device("cam-4"))
        #expect(row.firmware == "5.2.0" && row.modelVersion == "1.5.0" && row.lastSeq == 11)
        #expect(row.firstSeenMs == t0 - 10_000 && row.lastSeenMs == t0 + 10_000)
        let h = try #require(try r.deviceHistory("cam-4", fromMs: t0 - 60_000, toMs: t0 + 60_000))
        let changes = h.timeline.filter { $0.kind == "change" }
        #expect(changes.count == 2)
        #expect(changes.allSatisfy { $0.seq == 11 && $0.tsMs == t0 + 10_000 })
        #expect(Set(changes.compactMap { e in e.fields.first { $0.0 == "field" }.map { "\($0.1)" } }) == ["text(\"firmware\")", "text(\"model_version\")"])
    }

    @Test func deploysCountInTheTargetVersionsCohort() throws {
        let db = TempDB()
        let w = try StoreWriter(path: db.path)
        let d = Device(id: "cam-5", version: "1.4.0")
        try w.write([d.message(seq: 1, at: t0, records: [.deploy(DeployRecord(tsMs: t0, fromVersion: "1.4.0", toVersion: "1.5.0", result: .rolledBack))])])
        let r = try StoreReader(path: db.path)
        let rows = try r.fleet(fromMs: t0 - 60_000, toMs: t0 + 60_000, by: ["model_version"])
        let v15 = try #require(rows.first { $0.labels.first?.1 == "1.5.0" })
        #expect(v15.values.rollbackRate == 1.0)
        #expect(v15.values.devices == 0)  // the device itself still runs 1.4.0
        #expect(rows.first { $0.labels.first?.1 == "1.4.0" }?.values.rollbackRate == nil)
    }

    @Test func statusSetsPresenceState() throws {
        let db = TempDB()
        let w = try StoreWriter(path: db.path)
        try w.write([Device(id: "cam-6").message(seq: 1, at: t0, records: [Device.resources(at: t0)])])
        let r = try StoreReader(path: db.path)
        #expect(try r.device("cam-6")?.state == "online")
        try w.setState(deviceID: "cam-6", online: false, tsMs: t0 + 5)
        #expect(try r.device("cam-6")?.state == "offline")
        try w.setState(deviceID: "cam-6", online: true, tsMs: t0 + 1)  // older than the last change: ignored
        #expect(try r.device("cam-6")?.state == "offline")
        // A status before any telemetry is kept until the device registers.
        try w.setState(deviceID: "cam-7", online: false, tsMs: t0)
        try w.write([Device(id: "cam-7").message(seq: 1, at: t0, records: [Device.resources(at: t0)])])
        #expect(try r.device("cam-7")?.state == "offline")
    }
}
