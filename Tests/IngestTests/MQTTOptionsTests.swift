import FleetCore
import FleetIngest
import FleetMQTT
import FleetStore
import Foundation
import SQLiteKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `fleetwatch ingest`'s MQTT options end to end: the real binary against a real mosquitto
/// configured for each (TLS with client certificates, MQTT 3.1.1, shared subscriptions,
/// username/password).
@Suite(.serialized) struct MQTTOptionsTests {
    // MARK: TLS

    @Test func tlsWithClientCertificateStoresWhatIsPublishedOverTLS() throws {
        let pki = try TestPKI()
        let broker = try Broker(extraConfig: pki.brokerConfig)
        let tmp = TempDir()
        let ingester = try Ingester(broker: broker, db: tmp.db, extra: pki.ingestFlags(ca: pki.ca))
        let fleet = try TestFleet(broker: broker, configure: pki.clientOptions)
        defer { fleet.stop() }
        for s: Int64 in 1...20 { try fleet.publish("tls-cam", s) }
        try eventually("20 stored") { try counters(tmp.db).stored == 20 }
        #expect(try StoreReader(path: tmp.db).connection.scalar("SELECT count(*) FROM inference") == 20)
        // The broker's only listener is TLS with require_certificate: what connected, connected so.
        #expect(broker.log.contains("as ingest-\(broker.port) (p5, c0"))
        ingester.signal(SIGTERM)
        #expect(ingester.wait() == 0)
    }

    @Test func tlsWithoutClientCertificateStoresNothingAndKeepsSayingWhy() throws {
        // TLS 1.3: the handshake completes on the client's side and the broker's alert comes
        // after the CONNECT.
        try refusedOverTLS(ingestFlags: { ["--tls-ca", $0.ca] }, says: "tlsv13 alert certificate required")
    }

    @Test func tlsWithTheWrongCAStoresNothingAndKeepsSayingTheCertificateDoesNotVerify() throws {
        try refusedOverTLS(ingestFlags: { $0.ingestFlags(ca: $0.otherCA) }, says: "certificate verify failed")
    }

    /// An ingester whose TLS set-up the broker (or it) rejects while a good fleet publishes:
    /// nothing stored, the reason logged on every attempt (twice = it retried), and SIGTERM
    /// while it waits to reconnect is prompt.
    private func refusedOverTLS(ingestFlags: (TestPKI) -> [String], says reason: String) throws {
        let pki = try TestPKI()
        let broker = try Broker(extraConfig: pki.brokerConfig)
        let tmp = TempDir()
        let ingester = try Ingester(broker: broker, db: tmp.db, extra: ingestFlags(pki), awaitConnected: false)
        let fleet = try TestFleet(broker: broker, configure: pki.clientOptions)
        defer { fleet.stop() }
        for s: Int64 in 1...10 { try fleet.publish("tls-cam", s) }
        try eventually("the broker took all 10") { fleet.acknowledged.count == 10 }
        try eventually("'\(reason)' logged on two attempts") { occurrences(reason, in: ingester.log) >= 2 }
        #expect(ingester.log.contains("TLS failure with the broker"))
        #expect(!ingester.log.contains("] connected to broker"))
        let c = try counters(tmp.db)
        #expect(c.received == 0 && c.stored == 0)
        let start = Date()
        ingester.signal(SIGTERM)
        #expect(ingester.wait() == 0)
        #expect(Date().timeIntervalSince(start) < 3)
    }

    // MARK: MQTT 3.1.1

    @Test func mqtt311StoresAndItsPersistentSessionKeepsWhatCameWhileItWasDown() throws {
        let broker = try Broker()
        let tmp = TempDir()
        let id = "ingest-311-\(broker.port)"
        var ingester = try Ingester(broker: broker, db: tmp.db, extra: ["--mqtt311"], clientID: id)
        // mosquitto logs the protocol (p2 = 3.1.1) and clean session (c0 = off).
        try eventually("the broker saw a 3.1.1 persistent session") { broker.log.contains("as \(id) (p2, c0") }
        let fleet = try TestFleet(broker: broker)
        defer { fleet.stop() }
        for s: Int64 in 1...20 { try fleet.publish("v311", s) }
        try eventually("20 stored") { try counters(tmp.db).stored == 20 }
        try eventually("20 acknowledged") { fleet.acknowledged.count == 20 }
        ingester.signal(SIGTERM)
        #expect(ingester.wait() == 0)

        // While it is down: the broker acknowledges with success (0, not 0x10 "no matching
        // subscribers"): the offline session is a subscriber and queues them.
        for s: Int64 in 21...40 { try fleet.publish("v311", s) }
        try eventually("40 acknowledged") { fleet.acknowledged.count == 40 }
        #expect(fleet.acknowledged.allSatisfy { $0 == 0 })
        #expect(try counters(tmp.db).stored == 20)

        ingester = try Ingester(broker: broker, db: tmp.db, extra: ["--mqtt311"], clientID: id)
        #expect(ingester.log.contains("session_present=true"))
        try eventually("the 20 queued while down stored too") { try counters(tmp.db).stored == 40 }
        let r = try StoreReader(path: tmp.db)
        #expect(try r.connection.scalar("SELECT count(*) FROM inference") == 40)
        try eventually("the broker logged the second 3.1.1 session") { occurrences("as \(id) (p2, c0", in: broker.log) == 2 }
        ingester.signal(SIGTERM)
        #expect(ingester.wait() == 0)
    }

    // MARK: Shared subscription

    @Test func shareSplitsTheFleetAndEveryMessageIsStoredExactlyOnce() throws {
        // log_type subscribe: mosquitto logs each subscription ("<client> <qos> <topic>").
        let broker = try Broker(extraConfig: "log_type subscribe")
        let dbA = TempDir(), dbB = TempDir()
        let share = ["--share", "fw", "--log-level", "debug"]
        let a = try Ingester(broker: broker, db: dbA.db, extra: share, clientID: "ingest-share-a")
        let b = try Ingester(broker: broker, db: dbB.db, extra: share, clientID: "ingest-share-b")
        try eventually("both subscribed to the shared group") {
            let log = broker.log
            return log.contains("ingest-share-a 1 $share/fw/fleet/+/telemetry") && log.contains("ingest-share-b 1 $share/fw/fleet/+/telemetry")
        }
        let fleet = try TestFleet(broker: broker)
        defer { fleet.stop() }
        // mosquitto deals a group's messages round-robin: with an odd number of devices
        // published in turn, every device's sequence is split between the two.
        let devices = 5
        let perDevice: Int64 = 120
        let n = Int64(devices) * perDevice
        for s in 1...perDevice {
            for d in 0..<devices { try fleet.publish("share-\(d)", s) }
        }
        try eventually("all \(n) stored across the two") { try counters(dbA.db).stored + counters(dbB.db).stored >= n }
        // Each sees part of every device's sequence: those gaps are the other ingester's
        // messages, and are not asked for again (that would store them in both databases).
        try eventually("both saw gaps and left them to the other") {
            a.log.contains("seq gaps not replayed") && b.log.contains("seq gaps not replayed")
        }
        let inA = try storedMessages(dbA.db)
        let inB = try storedMessages(dbB.db)
        #expect(inA.count + inB.count == Int(n))
        #expect(inA.isDisjoint(with: inB))
        #expect(inA.union(inB).count == Int(n))
        #expect(!inA.isEmpty && !inB.isEmpty)
        for db in [dbA.db, dbB.db] {
            let c = try counters(db)
            #expect(c.duplicates == 0 && c.quarantined.isEmpty && c.replaysRequested == 0)
        }
        #expect(fleet.replaysServed == 0)
        for i in [a, b] {
            i.signal(SIGTERM)
            #expect(i.wait() == 0)
        }
    }

    // MARK: Username and password

    @Test func passwordRightStoresWrongIsRefusedWithTheBrokersReason() throws {
        let files = TempDir()
        let passwd = files.url.appendingPathComponent("passwd").path
        try runTool("/usr/bin/mosquitto_passwd", ["-b", "-c", passwd, "fleetwatch-ingest", "s3cret"])
        try runTool("/usr/bin/mosquitto_passwd", ["-b", passwd, "device", "d3vice"])
        try makeReadable([passwd])
        let broker = try Broker(extraConfig: "allow_anonymous false\npassword_file \(passwd)")
        let badDB = TempDir(), goodDB = TempDir()
        let user = ["--username", "fleetwatch-ingest"]
        let bad = try Ingester(
            broker: broker, db: badDB.db, extra: user, clientID: "ingest-badpw",
            environment: ["FLEETWATCH_MQTT_PASSWORD": "wrong"], awaitConnected: false)
        let good = try Ingester(
            broker: broker, db: goodDB.db, extra: user, clientID: "ingest-goodpw",
            environment: ["FLEETWATCH_MQTT_PASSWORD": "s3cret"])
        let fleet = try TestFleet(broker: broker) {
            $0.username = "device"
            $0.password = "d3vice"
        }
        defer { fleet.stop() }
        for s: Int64 in 1...10 { try fleet.publish("pw-cam", s) }
        try eventually("10 stored with the right password") { try counters(goodDB.db).stored == 10 }
        #expect(broker.log.contains("as ingest-goodpw (p5, c0, k30, u'fleetwatch-ingest')"))
        // Refused with the broker's reason, and it keeps trying (twice = it retried).
        try eventually("the refusal logged on two attempts") { occurrences("broker refused the connection", in: bad.log) >= 2 }
        #expect(bad.log.contains("reason=Not authorized"))
        #expect(!bad.log.contains("] connected to broker"))
        #expect(try counters(badDB.db).received == 0)
        for i in [bad, good] {
            i.signal(SIGTERM)
            #expect(i.wait() == 0)
        }
    }
}

/// A throwaway PKI made with openssl at test time: a CA, a server certificate for 127.0.0.1
/// (subjectAltName IP:127.0.0.1), a client certificate, and an unrelated second CA.
final class TestPKI {
    let files = TempDir()

    func path(_ name: String) -> String { files.url.appendingPathComponent(name).path }
    var ca: String { path("ca.pem") }
    var otherCA: String { path("other-ca.pem") }

    /// The TLS options of the Broker's one listener.
    var brokerConfig: String {
        """
        cafile \(ca)
        certfile \(path("server.pem"))
        keyfile \(path("server.key"))
        require_certificate true
        """
    }

    func ingestFlags(ca: String) -> [String] {
        ["--tls-ca", ca, "--tls-cert", path("client.pem"), "--tls-key", path("client.key")]
    }

    func clientOptions(_ o: inout MQTTOptions) {
        o.tlsCAFile = ca
        o.tlsCertFile = path("client.pem")
        o.tlsKeyFile = path("client.key")
    }

    init() throws {
        let openssl = "/usr/bin/openssl"
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for name in ["ca", "other-ca"] {
            try runTool(openssl, ["req", "-x509"] + ec + ["-keyout", path("\(name).key"), "-out", path("\(name).pem"), "-days", "1", "-subj", "/CN=fleetwatch test \(name)"])
        }
        try "subjectAltName=IP:127.0.0.1\n".write(toFile: path("server.ext"), atomically: true, encoding: .utf8)
        for (serial, name, cn) in [(2, "server", "127.0.0.1"), (3, "client", "fleetwatch-ingest")] {
            try runTool(openssl, ["req", "-new"] + ec + ["-keyout", path("\(name).key"), "-out", path("\(name).csr"), "-subj", "/CN=\(cn)"])
            try runTool(
                openssl,
                ["x509", "-req", "-in", path("\(name).csr"), "-CA", ca, "-CAkey", path("ca.key"), "-set_serial", "\(serial)", "-days", "1", "-out", path("\(name).pem")]
                    + (name == "server" ? ["-extfile", path("server.ext")] : []))
        }
        try makeReadable(["ca.pem", "server.pem", "server.key"].map(path))
    }
}

/// mosquitto started as root drops to its own user before it reads certificates and password
/// files: make the throwaway ones readable to it.
func makeReadable(_ paths: [String]) throws {
    for p in paths { try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: p) }
}

/// Runs a tool to completion; throws with what it printed on stderr unless it exits 0.
func runTool(_ path: String, _ args: [String]) throws {
    let p = try ChildProcess(path, args)
    var err = ""
    while case let d = p.readStderr(), !d.isEmpty { err += String(decoding: d, as: UTF8.self) }
    let status = p.wait()
    guard status == 0 else { throw TestFailure("\(path) \(args.joined(separator: " ")) exited \(status): \(err)") }
}

func occurrences(_ needle: String, in text: String) -> Int { text.components(separatedBy: needle).count - 1 }

/// "device_id/seq" of every stored message (one inference record each here).
func storedMessages(_ db: String) throws -> Set<String> {
    let reader = try StoreReader(path: db)
    let st = try reader.connection.prepare("SELECT d.device_id, i.seq FROM inference i JOIN devices d USING(dev)")
    var out = Set<String>()
    while try st.step() { out.insert("\(st.text(0))/\(st.int(1))") }
    return out
}
