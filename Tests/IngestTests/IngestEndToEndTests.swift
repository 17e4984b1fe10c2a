import FleetCore
import FleetMQTT
import FleetStore
import Foundation
import SQLiteKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The live ingester against a real mosquitto, driven through the real binary.
@Suite(.serialized) struct IngestEndToEndTests {
    @Test func everyMessageEndsInExactlyOnePlace() throws {
        let broker = try Broker()
        let tmp = TempDir()
        let ingester = try Ingester(broker: broker, db: tmp.db)
        let fleet = try TestFleet(broker: broker)
        defer { fleet.stop() }
        // In order, out of order, a duplicate, invalid JSON, a schema violation, a spoof.
        for s: Int64 in [1, 2, 3, 5, 4] { try fleet.publish("cam-a", s) }
        try fleet.publish("cam-a", 2)
        try fleet.publish("cam-a", 6, bytes: Array("{not json".utf8))
        try fleet.publish("cam-a", 7, bytes: Array(#"{"schema":"fleet.telemetry/1","device_id":"cam-a"}"#.utf8))
        try fleet.publish("victim", 1, topicDevice: "cam-a")
        try eventually("all 9 messages accounted for") { try counters(tmp.db).received == 9 }
        let c = try counters(tmp.db)
        #expect(c.stored == 5 && c.duplicates == 1)
        #expect(c.quarantined == ["invalid_json": 1, "schema_violation": 1, "device_id_mismatch": 1])
        let r = try StoreReader(path: tmp.db)
        #expect(try r.device("victim") == nil)
        #expect(try r.connection.scalar("SELECT count(*) FROM inference") == 5)
        ingester.signal(SIGTERM)
        #expect(ingester.wait() == 0)
    }

    @Test func sigtermCommitsWhatIsQueuedAndExitsWithinTwoSeconds() throws {
        let broker = try Broker()
        let tmp = TempDir()
        let ingester = try Ingester(broker: broker, db: tmp.db)
        let fleet = try TestFleet(broker: broker)
        defer { fleet.stop() }
        let n: Int64 = 3000
        for s in 1...n { try fleet.publish("dev-\(s % 10)", s / 10 + 1) }
        try eventually("some messages stored") { try counters(tmp.db).stored > 100 }
        let start = Date()
        ingester.signal(SIGTERM)
        #expect(ingester.wait() == 0)
        #expect(Date().timeIntervalSince(start) < 2.0)
        let afterStop = try counters(tmp.db)
        #expect(afterStop.received == afterStop.stored + afterStop.duplicates + afterStop.quarantined.values.reduce(0, +))
        // The persistent session kept the rest at the broker: a restart takes them.
        let again = try Ingester(broker: broker, db: tmp.db)
        try eventually("all \(n) stored") { try counters(tmp.db).stored == n }
        // In-flight messages the broker re-delivers after the reconnect are counted as
        // duplicates, never stored twice.
        let r = try StoreReader(path: tmp.db)
        #expect(try r.connection.scalar("SELECT count(*) FROM inference") == n)
        again.signal(SIGTERM)
        #expect(again.wait() == 0)
    }

    @Test func killNineMidStreamThenRestartStoresEveryMessageExactlyOnce() throws {
        let broker = try Broker()
        let tmp = TempDir()
        var ingester = try Ingester(broker: broker, db: tmp.db, extra: ["--log-level", "debug"])
        let fleet = try TestFleet(broker: broker)
        defer { fleet.stop() }
        // 200k messages, as the issue asks: 100 devices, 2,000 seqs each.
        let devices = 100
        let perDevice: Int64 = 2_000
        var killed = false
        for s in 1...perDevice {
            for d in 0..<devices { try fleet.publish("dev-\(d)", s) }
            if s == perDevice / 3 && !killed {
                try eventually("the stream is being stored") { try counters(tmp.db).stored > 1000 }
                ingester.signal(SIGKILL)
                _ = ingester.wait()
                killed = true
                ingester = try Ingester(broker: broker, db: tmp.db)
            }
        }
        let total = Int64(devices) * perDevice
        try eventually(timeout: 90, "every message stored once (replay repairs what the kill lost)") { try counters(tmp.db).stored == total }
        let r = try StoreReader(path: tmp.db)
        #expect(try r.connection.scalar("SELECT count(*) FROM inference") == total)
        #expect(try r.connection.scalar("SELECT count(*) FROM (SELECT dev, seq FROM inference GROUP BY dev, seq HAVING count(*) > 1)") == 0)
        let c = try r.ingestCounters()
        #expect(c.openGaps == 0)
        #expect(c.received == c.stored + c.duplicates + c.quarantined.values.reduce(0, +))
        // The stream's hours are over (its device time is half a day old): the ingester folds
        // every device's minutes into hour rows as it goes.
        try eventually("every device's hours folded") {
            try r.connection.scalar("SELECT count(DISTINCT dev) FROM device_hour") == Int64(devices)
        }
        print("kill -9 test: received \(c.received), stored \(c.stored), duplicates \(c.duplicates), replays requested \(c.replaysRequested)")
        ingester.signal(SIGTERM)
        #expect(ingester.wait() == 0)
    }

    /// Both ways of driving libmosquitto: buffered socket I/O (the default) and its own loop.
    @Test(arguments: ["1", "0"])
    func brokerRestartLosesNothingOnceItIsBack(bufferedIO: String) throws {
        let broker = try Broker()
        let tmp = TempDir()
        let ingester = try Ingester(broker: broker, db: tmp.db, environment: ["FLEETWATCH_MQTT_BUFFERED_IO": bufferedIO])
        let fleet = try TestFleet(broker: broker)
        defer { fleet.stop() }
        for s: Int64 in 1...200 { try fleet.publish("dev-\(s % 4)", s / 4 + 1) }
        try eventually("first part stored") { try counters(tmp.db).stored == 200 }
        broker.stop()
        // Published while the broker is down: queued in the client, sent after reconnect
        // (what the broker itself dropped, replay recovers).
        for s: Int64 in 201...400 { try fleet.publish("dev-\(s % 4)", s / 4 + 1) }
        try broker.start()
        for s: Int64 in 401...600 { try fleet.publish("dev-\(s % 4)", s / 4 + 1) }
        try eventually(timeout: 90, "all 600 stored") { try counters(tmp.db).stored == 600 }
        #expect(try counters(tmp.db).openGaps == 0)
        ingester.signal(SIGTERM)
        #expect(ingester.wait() == 0)
    }

    @Test func aFloodingDeviceIsCappedAndCountedNotTheOthers() throws {
        let broker = try Broker()
        let tmp = TempDir()
        let ingester = try Ingester(broker: broker, db: tmp.db, extra: ["--max-rate", "5", "--burst", "20"])
        let fleet = try TestFleet(broker: broker)
        defer { fleet.stop() }
        for s: Int64 in 1...300 { try fleet.publish("flood", s) }
        for s: Int64 in 1...10 { try fleet.publish("quiet", s) }
        try eventually("all 310 accounted for") { try counters(tmp.db).received == 310 }
        let c = try counters(tmp.db)
        let limited = c.quarantined["rate_limited"] ?? 0
        #expect(limited >= 250 && limited <= 285)
        #expect(c.stored == 310 - limited)
        let r = try StoreReader(path: tmp.db)
        #expect(try r.connection.scalar("SELECT count(*) FROM inference i JOIN devices d USING(dev) WHERE d.device_id = 'quiet'") == 10)
        #expect(try r.connection.scalar("SELECT count(*) FROM quarantine WHERE reason = 'rate_limited' AND device_id = 'flood' AND length(payload) > 100") == limited)
        ingester.signal(SIGTERM)
        #expect(ingester.wait() == 0)
    }

    @Test func metricsAreServedInPrometheusFormat() throws {
        let broker = try Broker()
        let tmp = TempDir()
        let port = try freePort()
        let ingester = try Ingester(broker: broker, db: tmp.db, extra: ["--metrics-listen", "127.0.0.1:\(port)"])
        let fleet = try TestFleet(broker: broker)
        defer { fleet.stop() }
        for s: Int64 in 1...5 { try fleet.publish("m", s) }
        try fleet.publish("m", 6, bytes: Array("{".utf8))
        try eventually("6 received") { try counters(tmp.db).received == 6 }
        let body = try httpGet(port: port, path: "/metrics")
        #expect(body.contains("fleetwatch_ingest_received_total 6\n"))
        #expect(body.contains("fleetwatch_ingest_stored_total 5\n"))
        #expect(body.contains("fleetwatch_ingest_quarantined_total{reason=\"invalid_json\"} 1\n"))
        #expect(body.contains("# TYPE fleetwatch_ingest_batch_commit_seconds histogram"))
        #expect(body.contains("fleetwatch_ingest_broker_connected 1\n"))
        #expect(try httpGet(port: port, path: "/nope").contains("not found"))
        ingester.signal(SIGTERM)
        #expect(ingester.wait() == 0)
    }
}

/// A plain HTTP GET over a socket (the body after the headers).
func httpGet(port: Int, path: String) throws -> String {
    let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(s) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard rc == 0 else { throw TestFailure("connect to \(port) failed") }
    let req = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
    _ = req.withUnsafeBytes { send(s, $0.baseAddress, $0.count, 0) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buf.withUnsafeMutableBytes { recv(s, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        out += buf[0..<n]
    }
    let text = String(decoding: out, as: UTF8.self)
    return text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
}

@Suite(.serialized) struct RulesReloadTests {
    @Test func sighupReloadsRulesAndABadFileKeepsTheOldOnes() throws {
        let broker = try Broker()
        let tmp = TempDir()
        let rules = tmp.url.appendingPathComponent("alerts.yaml").path
        let good = """
            groups:
              - name: g
                interval: 1s
                rules:
                  - {alert: ErrorsHigh, signal: error_rate, window: 1h, op: ">", threshold: 0.05}
            """
        try good.write(toFile: rules, atomically: true, encoding: .utf8)
        let ingester = try Ingester(broker: broker, db: tmp.db, extra: ["--rules", rules])
        let fleet = try TestFleet(broker: broker)
        defer { fleet.stop() }
        // error rate 1/10 > 0.05: fires at once (for: 0).
        try fleet.publish("e", 1)
        try eventually("the rule fires") {
            try StoreReader(path: tmp.db).connection.scalar("SELECT count(*) FROM alerts WHERE state = 'firing' AND alertname = 'ErrorsHigh'") == 1
        }
        // A broken file: SIGHUP keeps the old rules and says why.
        try "groups: [{name: g, rules: [{alert: X, signal: nope}]}]".write(toFile: rules, atomically: true, encoding: .utf8)
        ingester.signal(SIGHUP)
        try eventually("the bad file is refused") { ingester.log.contains("has problems; keeping the current rules") }
        // A good new file: applied with the next batch; the old rule's instances go.
        try good.replacingOccurrences(of: "ErrorsHigh", with: "ErrorsVeryHigh").replacingOccurrences(of: "0.05", with: "0.5").write(toFile: rules, atomically: true, encoding: .utf8)
        ingester.signal(SIGHUP)
        try fleet.publish("e", 2)
        try eventually("rules reloaded") { ingester.log.contains("rules reloaded") }
        try eventually("old instances dropped") {
            try StoreReader(path: tmp.db).connection.scalar("SELECT count(*) FROM alerts WHERE alertname = 'ErrorsHigh'") == 0
        }
        ingester.signal(SIGTERM)
        #expect(ingester.wait() == 0)
    }
}
