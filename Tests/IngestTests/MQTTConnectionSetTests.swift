@testable import FleetMQTT
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// MQTTConnectionSet against a real mosquitto (Support.swift's Broker): many clients on one
/// thread, per-connection subscriptions, wills on purpose, persistent sessions, broker restart.
/// Every wait polls the set (or the subscriber's state) until a deadline; nothing sleeps.
@Suite(.serialized) struct MQTTConnectionSetTests {
    /// What the set reports. Used on the test's thread only (the set's callbacks run in poll).
    final class Events: MQTTConnectionSetDelegate {
        var connects: [Int: Int] = [:]
        var refusals: [(index: Int, code: Int32)] = []
        var disconnects: [(index: Int, code: Int32)] = []
        var messages: [(index: Int, topic: String, payload: String)] = []
        var acks: [(index: Int, mid: Int32, reasonCode: Int32)] = []
        /// Called after a message is recorded (to act from inside the callback).
        var onMessage: ((Int, String) -> Void)?

        func mqttSet(connected index: Int, code: Int32) {
            if code == 0 { connects[index, default: 0] += 1 } else { refusals.append((index, code)) }
        }
        func mqttSet(disconnected index: Int, code: Int32) { disconnects.append((index, code)) }
        func mqttSet(message index: Int, topic: String, payload: UnsafeRawBufferPointer) {
            messages.append((index, topic, String(decoding: payload, as: UTF8.self)))
            onMessage?(index, messages[messages.count - 1].payload)
        }
        func mqttSet(published index: Int, mid: Int32, reasonCode: Int32) { acks.append((index, mid, reasonCode)) }

        var totalConnects: Int { connects.values.reduce(0, +) }
        func messages(_ index: Int) -> [(topic: String, payload: String)] {
            messages.filter { $0.index == index }.map { ($0.topic, $0.payload) }
        }
    }

    /// A threaded MQTTClient (the existing one) as an outside subscriber / publisher.
    final class Peer: MQTTClientDelegate, @unchecked Sendable {
        private let lock = NSLock()
        private var received: [(topic: String, payload: String, retained: Bool)] = []
        private var acked = 0
        var client: MQTTClient!

        init(broker: Broker, subscribe topics: [String]) throws {
            client = try MQTTClient(MQTTOptions(host: "127.0.0.1", port: broker.port, clientID: "peer-\(UUID().uuidString.prefix(8))"), delegate: self)
            for t in topics { try client.subscribe(t, qos: 1) }
            try client.start()
        }

        /// Publishes a probe on `topic` (which its own subscriptions match) and waits until it
        /// comes back: from then on the subscriptions are in place.
        func waitSubscribed(probeTopic topic: String) throws {
            let marker = "probe-\(UUID().uuidString)"
            try eventually(timeout: 10, "peer subscribed") {
                if !messages.contains(where: { $0.payload == marker }) { _ = try? client.publish(topic, Array(marker.utf8), qos: 0) }
                return messages.contains { $0.payload == marker }
            }
        }

        var messages: [(topic: String, payload: String, retained: Bool)] {
            lock.lock()
            defer { lock.unlock() }
            return received
        }
        var publishAcks: Int {
            lock.lock()
            defer { lock.unlock() }
            return acked
        }

        func mqttMessage(topic: String, payload: UnsafeRawBufferPointer, qos: Int32, retained: Bool) {
            let text = String(decoding: payload, as: UTF8.self)
            lock.lock()
            received.append((topic, text, retained))
            lock.unlock()
        }
        func mqttConnected(code: Int32, sessionPresent: Bool) {}
        func mqttDisconnected(code: Int32) {}
        func mqttPublished(mid: Int32, reasonCode: Int32) {
            lock.lock()
            acked += 1
            lock.unlock()
        }
    }

    /// Runs poll rounds until `condition` holds; fails after `timeout` seconds.
    func pump(_ set: MQTTConnectionSet, timeout: Double = 10, _ what: String, until condition: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !condition() {
            if Date() > deadline { throw TestFailure("timed out after \(timeout) s waiting for: \(what)") }
            set.poll(timeoutMs: 20)
        }
    }

    func publish(_ set: MQTTConnectionSet, _ index: Int, _ topic: String, _ text: String, qos: Int32 = 1, retain: Bool = false) -> Int32? {
        Array(text.utf8).withUnsafeBytes { set.publish(index, topic: topic, payload: $0, qos: qos, retain: retain) }
    }

    /// Each connection publishes a probe to its own `fleet/dev-<i>/<leaf>` topic and gets it
    /// back through its own subscription: the broker has processed each SUBSCRIBE.
    func waitSubscribed(_ set: MQTTConnectionSet, _ events: Events, indices: Range<Int>, leaf: String) throws {
        for i in indices { #expect(publish(set, i, "fleet/dev-\(i)/\(leaf)", "probe-\(i)") != nil) }
        try pump(set, "subscription probes") {
            indices.allSatisfy { i in events.messages(i).contains { $0.payload == "probe-\(i)" } }
        }
    }

    @Test func fiveHundredConnectionsOnOneThreadConnectPublishAndGetTheirAcks() throws {
        let broker = try Broker()
        // The threaded subscriber first: libmosquitto's mosquitto_loop() (its network thread)
        // cannot use a socket numbered >= 1024, and the set is about to open 500.
        let peer = try Peer(broker: broker, subscribe: ["fleet/+/telemetry"])
        try peer.waitSubscribed(probeTopic: "fleet/probe/telemetry")

        let events = Events()
        let set = MQTTConnectionSet(host: "127.0.0.1", port: broker.port, delegate: events)
        defer { set.close() }
        let n = 500
        for i in 0..<n {
            let index = try set.add(clientID: "dev-\(i)", will: nil, subscriptions: [])
            #expect(index == i)
        }
        #expect(set.count == n)
        let t0 = Date()
        try pump(set, "\(n) CONNACKs") { events.connects.count == n }
        let connectSeconds = Date().timeIntervalSince(t0)
        #expect(set.connectedCount == n)
        #expect(events.refusals.isEmpty)
        #expect(events.totalConnects == n)

        var mids: [Int: Int32] = [:]
        for i in 0..<n {
            guard let mid = publish(set, i, "fleet/dev-\(i)/telemetry", #"{"device":"dev-\#(i)","seq":1}"#) else {
                Issue.record("publish on connected connection \(i) returned nil")
                continue
            }
            mids[i] = mid
        }
        try pump(set, "\(n) PUBACKs and \(n) messages at the subscriber") {
            events.acks.count >= n && peer.messages.filter { $0.topic != "fleet/probe/telemetry" }.count >= n
        }
        let received = peer.messages.filter { $0.topic != "fleet/probe/telemetry" }
        #expect(received.count == n)
        #expect(Set(received.map(\.topic)) == Set((0..<n).map { "fleet/dev-\($0)/telemetry" }))
        #expect(Set(received.map(\.payload)).count == n)
        #expect(events.acks.count == n)
        #expect(events.acks.allSatisfy { mids[$0.index] == $0.mid && $0.reasonCode < 0x80 })
        #expect(Set(events.acks.map(\.index)).count == n)
        #expect((0..<n).allSatisfy { set.unacknowledged($0) == 0 })
        print("MQTTConnectionSet: \(n) connections connected in \(String(format: "%.2f", connectSeconds)) s, \(set.descriptorsPerConnection) fd each")

        set.close()
        #expect(events.disconnects.count == n)
        #expect(events.disconnects.allSatisfy { $0.code == 0 })
        #expect(set.isClosed)
        #expect(!set.isConnected(0))
    }

    @Test func eachConnectionGetsOnlyItsOwnSubscriptions() throws {
        let broker = try Broker()
        let peer = try Peer(broker: broker, subscribe: [])
        let events = Events()
        let set = MQTTConnectionSet(host: "127.0.0.1", port: broker.port, delegate: events)
        defer { set.close() }
        let n = 10
        for i in 0..<n { _ = try set.add(clientID: "dev-\(i)", will: nil, subscriptions: ["fleet/dev-\(i)/replay"]) }
        try pump(set, "connected") { set.connectedCount == n }
        try waitSubscribed(set, events, indices: 0..<n, leaf: "replay")

        try peer.client.publish("fleet/dev-7/replay", Array(#"{"from_seq":1,"to_seq":5}"#.utf8), qos: 1)
        try pump(set, "the replay request at connection 7") { events.messages(7).contains { $0.payload.contains("from_seq") } }
        // A second request, to connection 3, published after the first: once it is in, anything
        // the broker sent for the first is in the sockets too; drain them.
        try peer.client.publish("fleet/dev-3/replay", Array("sentinel".utf8), qos: 1)
        try pump(set, "the sentinel at connection 3") { events.messages(3).contains { $0.payload == "sentinel" } }
        for _ in 0..<3 { set.poll(timeoutMs: 0) }

        let replays = events.messages.filter { $0.payload.contains("from_seq") }
        #expect(replays.count == 1)
        #expect(replays.first?.index == 7)
        #expect(replays.first?.topic == "fleet/dev-7/replay")
        #expect(events.messages.filter { $0.payload == "sentinel" }.map(\.index) == [3])
        // Nothing but its own probe and what was addressed to it reached any connection.
        for i in 0..<n {
            #expect(events.messages(i).allSatisfy { $0.topic == "fleet/dev-\(i)/replay" })
        }
    }

    @Test func dropWithWillPublishesTheWillDropWithoutDoesNotAndReconnectResumesTheSession() throws {
        let broker = try Broker()
        let peer = try Peer(broker: broker, subscribe: ["fleet/+/status"])
        try peer.waitSubscribed(probeTopic: "fleet/probe/status")
        let events = Events()
        let set = MQTTConnectionSet(host: "127.0.0.1", port: broker.port, delegate: events)
        defer { set.close() }
        for i in 0..<3 {
            let will = (topic: "fleet/dev-\(i)/status", payload: Array(#"{"state":"offline","device":"dev-\#(i)"}"#.utf8), qos: Int32(1), retain: true)
            _ = try set.add(clientID: "dev-\(i)", will: will, subscriptions: ["fleet/dev-\(i)/cmd"])
        }
        try pump(set, "connected") { set.connectedCount == 3 }
        try waitSubscribed(set, events, indices: 0..<3, leaf: "cmd")

        // A device vanishing: the broker publishes its will.
        set.drop(0, withWill: true)
        #expect(!set.isConnected(0))
        try pump(set, "dev-0's will at the subscriber") {
            peer.messages.contains { $0.topic == "fleet/dev-0/status" && $0.payload.contains(#""state":"offline""#) }
        }
        // The delegate hears of the drop on the next pump, which may come after the will arrived.
        try pump(set, "dev-0's disconnect reported") { events.disconnects.contains { $0.index == 0 && $0.code == 0 } }

        // A clean goodbye: no will. While it is away a QoS 1 command is queued in its session.
        set.drop(1, withWill: false)
        #expect(!set.isConnected(1))
        try pump(set, "dev-1 reported down") { events.disconnects.contains { $0.index == 1 } }
        #expect(events.disconnects.first { $0.index == 1 }?.code == 0)
        // Stays down: no automatic reconnect (rounds go by, it stays down).
        for _ in 0..<5 { set.poll(timeoutMs: 10) }
        #expect(!set.isConnected(1))
        #expect(events.connects[1] == 1)
        try peer.client.publish("fleet/dev-1/cmd", Array("while-away".utf8), qos: 1)
        try eventually(timeout: 10, "the broker acknowledged the command") { peer.publishAcks >= 1 }

        set.reconnect(1)
        try pump(set, "dev-1 back with the command queued while it was away") {
            set.isConnected(1) && events.messages(1).contains { $0.payload == "while-away" }
        }
        #expect(events.connects[1] == 2)
        #expect(events.messages(1).filter { $0.payload == "while-away" }.count == 1)

        // By now the broker has long finished with dev-1's old connection; a sentinel through the
        // same broker to the same subscriber comes after any will it would have published.
        try peer.client.publish("fleet/sentinel/status", Array("sentinel".utf8), qos: 1)
        try pump(set, "the sentinel") { peer.messages.contains { $0.payload == "sentinel" } }
        #expect(!peer.messages.contains { $0.topic == "fleet/dev-1/status" })
        #expect(!peer.messages.contains { $0.topic == "fleet/dev-2/status" })
        #expect(peer.messages.filter { $0.topic == "fleet/dev-0/status" }.count == 1)
        #expect(set.isConnected(2))
    }

    @Test func allConnectionsComeBackByThemselvesAfterABrokerRestart() throws {
        let broker = try Broker()
        let events = Events()
        let set = MQTTConnectionSet(host: "127.0.0.1", port: broker.port, delegate: events)
        defer { set.close() }
        let n = 50
        for i in 0..<n { _ = try set.add(clientID: "dev-\(i)", will: nil, subscriptions: ["fleet/dev-\(i)/replay"]) }
        try pump(set, "connected") { set.connectedCount == n }

        broker.stop()
        // Publishing before the set has noticed: written into dead sockets (SIGPIPE is ignored,
        // mosquitto_new sets that). A QoS 1 message that got a mid stays with libmosquitto and
        // is resent after the reconnect.
        var midsDuringOutage: [Int: Int32] = [:]
        for i in 0..<n { midsDuringOutage[i] = publish(set, i, "fleet/dev-\(i)/telemetry", "in the outage") }
        try pump(set, "every connection reported lost") { events.disconnects.count == n }
        #expect(set.connectedCount == 0)
        #expect(events.disconnects.allSatisfy { $0.code != 0 })
        #expect(publish(set, 0, "fleet/dev-0/telemetry", "down") == nil)
        // Reconnects hit the closed port (refused at once) and back off.
        let failedBefore = set.connectsFailed
        try pump(set, "a round of refused reconnects") { set.connectsFailed - failedBefore >= n }
        #expect(set.connectedCount == 0)

        let restart = Date()
        try broker.start()
        try pump(set, timeout: 15, "every connection back") { set.connectedCount == n }
        let backSeconds = Date().timeIntervalSince(restart)
        #expect(events.totalConnects == 2 * n)

        // The broker kept no sessions (persistence false): subscriptions were renewed on connect.
        try waitSubscribed(set, events, indices: 0..<n, leaf: "replay")
        var mids: [Int: Int32] = [:]
        for i in 0..<n { mids[i] = publish(set, i, "fleet/dev-\(i)/telemetry", "after restart") }
        #expect(mids.count == n)
        try pump(set, "PUBACKs after the restart") {
            Set(events.acks.filter { mids[$0.index] == $0.mid }.map(\.index)).count == n
        }
        try pump(set, "PUBACKs of the \(midsDuringOutage.count) messages published into the outage") {
            Set(events.acks.filter { midsDuringOutage[$0.index] == $0.mid }.map(\.index)).count == midsDuringOutage.count
        }
        #expect((0..<n).allSatisfy { set.unacknowledged($0) == 0 })
        print("MQTTConnectionSet: \(n) connections back \(String(format: "%.2f", backSeconds)) s after the broker restarted; \(midsDuringOutage.count) publishes into the outage got a mid and their PUBACK")
    }

    @Test func aDelegateCanDropFromInsideItsCallbackAndLibmosquittosSocketpairsStillWork() throws {
        let broker = try Broker()
        let peer = try Peer(broker: broker, subscribe: ["fleet/+/status"])
        try peer.waitSubscribed(probeTopic: "fleet/probe/status")
        let events = Events()
        let set = MQTTConnectionSet(host: "127.0.0.1", port: broker.port, delegate: events)
        defer { set.close() }
        set.closesWakeupPairs = false  // the fallback: three descriptors per connection
        for i in 0..<5 {
            let will = (topic: "fleet/dev-\(i)/status", payload: Array(#"{"state":"offline"}"#.utf8), qos: Int32(1), retain: false)
            _ = try set.add(clientID: "dev-\(i)", will: will, subscriptions: ["fleet/dev-\(i)/cmd"])
        }
        #expect(set.descriptorsPerConnection == 3)
        // A "vanish" command makes the device drop itself with its will, from the callback.
        events.onMessage = { index, payload in
            if payload == "vanish" { set.drop(index, withWill: true) }
        }
        try pump(set, "connected") { set.connectedCount == 5 }
        try waitSubscribed(set, events, indices: 0..<5, leaf: "cmd")
        try peer.client.publish("fleet/dev-2/cmd", Array("vanish".utf8), qos: 1)
        try pump(set, "dev-2's will") { peer.messages.contains { $0.topic == "fleet/dev-2/status" } }
        try pump(set, "dev-2 reported down") { events.disconnects.contains { $0.index == 2 } }
        #expect(events.disconnects.map(\.index) == [2])
        #expect(events.disconnects.first?.code == 0)
        #expect(!set.isConnected(2))
        #expect(set.connectedCount == 4)
    }

    /// Opt-in measurement (MQTTSET_SCALE=10000 swift test --filter MQTTConnectionSetTests):
    /// not in the normal run, since thousands of descriptors in the test process would push
    /// other suites' threaded MQTTClients past FD_SETSIZE.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["MQTTSET_SCALE"] != nil))
    func scaleConnectPublishAndRestart() throws {
        let n = Int(ProcessInfo.processInfo.environment["MQTTSET_SCALE"] ?? "") ?? 10_000
        let broker = try Broker()
        let events = Events()
        let set = MQTTConnectionSet(host: "127.0.0.1", port: broker.port, delegate: events)
        defer { set.close() }
        var t = Date()
        for i in 0..<n { _ = try set.add(clientID: "dev-\(i)", will: nil, subscriptions: ["fleet/dev-\(i)/replay"]) }
        let addSeconds = Date().timeIntervalSince(t)
        t = Date()
        var rounds = 0
        try pump(set, timeout: 120, "\(n) connected") {
            rounds += 1
            return set.connectedCount == n
        }
        let connectSeconds = Date().timeIntervalSince(t)
        t = Date()
        for i in 0..<n { _ = publish(set, i, "fleet/dev-\(i)/telemetry", #"{"device":"dev-\#(i)","seq":1}"#) }
        try pump(set, timeout: 120, "\(n) PUBACKs") { events.acks.count == n }
        let publishSeconds = Date().timeIntervalSince(t)
        broker.stop()
        try pump(set, timeout: 60, "all lost") { set.connectedCount == 0 }
        t = Date()
        try broker.start()
        try pump(set, timeout: 120, "\(n) back") { set.connectedCount == n }
        let backSeconds = Date().timeIntervalSince(t)
        t = Date()
        set.close()
        let closeSeconds = Date().timeIntervalSince(t)
        print(
            "MQTTConnectionSet scale: \(n) connections, \(set.descriptorsPerConnection) fd each; add \(String(format: "%.2f", addSeconds)) s, "
                + "connect \(String(format: "%.2f", connectSeconds)) s in \(rounds) rounds, \(n) QoS 1 publishes acked in \(String(format: "%.2f", publishSeconds)) s, "
                + "back after broker restart in \(String(format: "%.2f", backSeconds)) s, close \(String(format: "%.2f", closeSeconds)) s")
    }

    @Test func publishOnADroppedOrNotYetConnectedConnectionReturnsNil() throws {
        let broker = try Broker()
        let events = Events()
        let set = MQTTConnectionSet(host: "127.0.0.1", port: broker.port, delegate: events)
        defer { set.close() }
        _ = try set.add(clientID: "dev-0", will: nil, subscriptions: [])
        #expect(publish(set, 0, "fleet/dev-0/telemetry", "too early") == nil)  // not connected yet
        #expect(publish(set, 5, "fleet/dev-5/telemetry", "no such connection") == nil)
        try pump(set, "connected") { set.isConnected(0) }
        #expect(publish(set, 0, "fleet/dev-0/telemetry", "up") != nil)
        set.drop(0, withWill: false)
        #expect(publish(set, 0, "fleet/dev-0/telemetry", "dropped") == nil)
        for _ in 0..<3 { set.poll(timeoutMs: 10) }
        #expect(publish(set, 0, "fleet/dev-0/telemetry", "still dropped") == nil)
        set.reconnect(0)
        try pump(set, "reconnected") { set.isConnected(0) }
        #expect(publish(set, 0, "fleet/dev-0/telemetry", "back") != nil)
        set.close()
        #expect(publish(set, 0, "fleet/dev-0/telemetry", "closed") == nil)
    }
}
