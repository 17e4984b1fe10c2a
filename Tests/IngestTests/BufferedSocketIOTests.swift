import CBufferedSocketIO
@testable import FleetMQTT
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The buffered socket I/O under libmosquitto: read() and write() of this process are
/// CBufferedSocketIO's, buffering only the socket a thread has claimed, only on that thread.
@Suite(.serialized) struct BufferedSocketIOTests {
    /// A connected pair of non-blocking stream sockets.
    func socketPair() -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        return (fds[0], fds[1])
    }

    func send(_ fd: Int32, _ bytes: [UInt8]) {
        #expect(bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == bytes.count)
    }

    func receive(_ fd: Int32, max: Int = 1 << 20) -> [UInt8]? {
        var buf = [UInt8](repeating: 0, count: max)
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, max) }
        return n < 0 ? nil : Array(buf.prefix(n))
    }

    @Test func activeInThisBuild() {
        // The test binary, like fleetwatch and fleet-agent, exports read/write: shared libraries
        // (libmosquitto) bind to them. If a link change lost that, MQTTClient would fall back.
        #expect(fwio_active() == 1)
        #expect(MQTTClient.bufferedIO == (ProcessInfo.processInfo.environment["FLEETWATCH_MQTT_BUFFERED_IO"] != "0"))
    }

    @Test func readsComeFromOneSystemCallAndKeepTheirOrder() {
        let (a, b) = socketPair()
        defer { close(a); close(b) }
        fwio_claim(a)
        defer { fwio_release() }
        send(b, Array("hello, world".utf8))
        var one: UInt8 = 0
        #expect(read(a, &one, 1) == 1)
        #expect(one == UInt8(ascii: "h"))
        #expect(fwio_pending_input() == 11)
        #expect(fwio_drained() == 1)  // the socket gave less than 64 KiB: it is empty now
        // The peer writes more; the buffered bytes come first.
        send(b, Array("!".utf8))
        #expect(receive(a, max: 4) == Array("ello".utf8))
        #expect(receive(a) == Array(", world".utf8))
        #expect(receive(a) == Array("!".utf8))
        #expect(receive(a) == nil && errno == EAGAIN)
        #expect(fwio_drained() == 1)
    }

    @Test func writesWaitForFlushThenArriveInOrder() {
        let (a, b) = socketPair()
        defer { close(a); close(b) }
        fwio_claim(a)
        defer { fwio_release() }
        send(a, [1, 2, 3])
        send(a, [4])
        #expect(fwio_pending_output() == 4)
        #expect(receive(b) == nil && errno == EAGAIN)
        #expect(fwio_flush() == 0)
        #expect(fwio_pending_output() == 0)
        #expect(receive(b) == [1, 2, 3, 4])
    }

    @Test func otherFdsAndOtherThreadsPassThrough() {
        let (a, b) = socketPair()
        let (c, d) = socketPair()
        defer { for fd in [a, b, c, d] { close(fd) } }
        fwio_claim(a)
        defer { fwio_release() }
        send(c, [9])  // another fd: sent at once
        #expect(receive(d) == [9])
        #expect(fwio_pending_output() == 0)
        // Another thread writing the claimed fd is not buffered either.
        let done = DispatchSemaphore(value: 0)
        Thread {
            _ = [UInt8]([7, 7]).withUnsafeBytes { write(a, $0.baseAddress, 2) }
            done.signal()
        }.start()
        done.wait()
        #expect(receive(b) == [7, 7])
    }

    @Test func claimingAnotherFdDropsTheBuffers() {
        let (a, b) = socketPair()
        let (c, d) = socketPair()
        defer { for fd in [a, b, c, d] { close(fd) } }
        fwio_claim(a)
        send(b, [1, 2, 3])
        var one: UInt8 = 0
        #expect(read(a, &one, 1) == 1)
        #expect(fwio_pending_input() == 2)
        fwio_claim(c)
        #expect(fwio_claimed() == c)
        #expect(fwio_pending_input() == 0)
        fwio_release()
        #expect(fwio_claimed() == -1)
    }

    /// A full socket: flush sends what fits, keeps the rest in order, and says so.
    @Test func flushOnAFullSocketKeepsTheRest() {
        let (a, b) = socketPair()
        defer { close(a); close(b) }
        var small: Int32 = 4096
        _ = setsockopt(a, SOL_SOCKET, SO_SNDBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        fwio_claim(a)
        defer { fwio_release() }
        let payload = (0..<60_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        for chunk in stride(from: 0, to: payload.count, by: 1_000) { send(a, Array(payload[chunk..<min(payload.count, chunk + 1_000)])) }
        var got: [UInt8] = []
        var rounds = 0
        while fwio_flush() == 1 {
            rounds += 1
            #expect(fwio_pending_output() > 0)
            while let more = receive(b), !more.isEmpty { got += more }
        }
        while let more = receive(b), !more.isEmpty { got += more }
        #expect(rounds > 0)
        #expect(got == payload)
    }

    /// A write larger than the buffer goes out as it is, after what was held.
    @Test func aWriteLargerThanTheBufferPassesThrough() {
        let (a, b) = socketPair()
        defer { close(a); close(b) }
        var big: Int32 = 1 << 20
        _ = setsockopt(a, SOL_SOCKET, SO_SNDBUF, &big, socklen_t(MemoryLayout<Int32>.size))
        _ = setsockopt(b, SOL_SOCKET, SO_RCVBUF, &big, socklen_t(MemoryLayout<Int32>.size))
        fwio_claim(a)
        defer { fwio_release() }
        send(a, [1])
        let large = [UInt8](repeating: 5, count: 100_000)
        #expect(large.withUnsafeBytes { write(a, $0.baseAddress, $0.count) } == 100_000)
        #expect(fwio_pending_output() == 0)
        var got: [UInt8] = []
        while let more = receive(b), !more.isEmpty { got += more }
        #expect(got == [1] + large)
    }
}

/// A clean stop through buffered I/O still sends DISCONNECT before the socket closes, so the
/// broker does not publish the client's will.
@Suite struct BufferedStopTests {
    final class Connected: MQTTClientDelegate, @unchecked Sendable {
        let lock = NSLock()
        var up = false
        func mqttMessage(topic: String, payload: UnsafeRawBufferPointer, qos: Int32, retained: Bool) {}
        func mqttConnected(code: Int32, sessionPresent: Bool) { lock.withLock { up = code == 0 } }
        func mqttDisconnected(code: Int32) {}
        var isUp: Bool { lock.withLock { up } }
    }

    @Test func aCleanStopPublishesNoWill() throws {
        let broker = try Broker()
        let peer = try MQTTConnectionSetTests.Peer(broker: broker, subscribe: ["fleet/+/status"])
        try peer.waitSubscribed(probeTopic: "fleet/probe/status")
        for i in 0..<3 {
            var o = MQTTOptions(host: "127.0.0.1", port: broker.port, clientID: "leaver-\(i)")
            o.will = (topic: "fleet/leaver-\(i)/status", payload: Array("gone".utf8), qos: 1, retain: false)
            let d = Connected()
            let c = try MQTTClient(o, delegate: d)
            try c.start()
            try eventually(timeout: 10, "leaver-\(i) connected") { d.isUp }
            c.stop()
        }
        // A sentinel through the same broker to the same subscriber, sent after the leavers'
        // sockets closed, comes after any will the broker would have published.
        try peer.client.publish("fleet/sentinel/status", Array("sentinel".utf8), qos: 1)
        try eventually(timeout: 10, "the sentinel") { peer.messages.contains { $0.payload == "sentinel" } }
        #expect(!peer.messages.contains { $0.topic.hasPrefix("fleet/leaver") })
        peer.client.stop()
    }
}

extension BufferedSocketIOTests {
    /// Closing the claimed socket sends what was held and ends the claim (the fd number may be
    /// reused at once by anyone).
    @Test func closingTheClaimedSocketFlushesAndReleases() {
        let (a, b) = socketPair()
        defer { close(b) }
        fwio_claim(a)
        send(a, [1, 2, 3])
        #expect(fwio_pending_output() == 3)
        #expect(close(a) == 0)
        #expect(fwio_claimed() == -1)
        #expect(fwio_pending_output() == 0)
        #expect(receive(b) == [1, 2, 3])
        #expect(receive(b) == [])  // and then the end of the stream
    }
}

extension BufferedSocketIOTests {
    /// libmosquitto's wake-up byte per queued packet, muted: one-byte writes to the muted fd
    /// return 1 and send nothing, from any thread; longer writes and other fds pass; closing the
    /// fd unmutes its number.
    @Test func aMutedWakeUpSocketTakesOneByteWritesAndSendsNothing() {
        fwio_capture_socketpair()
        let (r, w) = socketPair()
        #expect(fwio_captured_socketpair() == w)
        #expect(fwio_captured_socketpair() == -1)  // taken once
        #expect(fwio_mute(w) == 0)
        #expect(fwio_is_muted(w) == 1)
        #expect(fwio_is_muted(r) == 0)
        send(w, [0])
        let done = DispatchSemaphore(value: 0)
        Thread {
            _ = [UInt8]([0]).withUnsafeBytes { write(w, $0.baseAddress, 1) }
            done.signal()
        }.start()
        done.wait()
        #expect(receive(r) == nil && errno == EAGAIN)
        send(w, [1, 2])
        #expect(receive(r) == [1, 2])
        close(w)
        #expect(fwio_is_muted(w) == 0)
        // Not capturing: nothing noted. The closed number, reused, is written for real.
        let (c, d) = socketPair()
        defer { close(r); close(c); close(d) }
        #expect(fwio_captured_socketpair() == -1)
        #expect(fwio_is_muted(c) == 0 && fwio_is_muted(d) == 0)
        send(c, [9])
        send(d, [8])
        #expect(receive(d) == [9])
        #expect(receive(c) == [8])
    }

    /// A client driven by `pump` mutes libmosquitto's socketpair (the one `mosquitto_new` opens,
    /// or the one a connect opens anew on versions that do); a client on `mosquitto_loop`,
    /// which selects on it, does not; destroying the client closes and unmutes it. Publishing
    /// from another thread still reaches the broker (our eventfd wakes the network thread).
    @Test func aBufferedClientMutesLibmosquittosWakeUpSocket() throws {
        let broker = try Broker()
        let peer = try MQTTConnectionSetTests.Peer(broker: broker, subscribe: ["fleet/+/status"])
        try peer.waitSubscribed(probeTopic: "fleet/probe/status")
        var muted: Int32 = -1
        do {
            let d = BufferedStopTests.Connected()
            let c = try MQTTClient(MQTTOptions(host: "127.0.0.1", port: broker.port, clientID: "mute-test"), delegate: d)
            try c.start()
            try eventually(timeout: 10, "mute-test connected") { d.isUp }
            muted = c.libraryWakeFD
            if MQTTClient.bufferedIO {
                #expect(muted >= 0)
                #expect(fwio_is_muted(muted) == 1)
            } else {
                #expect(muted == -1)
            }
            for i in 0..<50 { try c.publish("fleet/mute-\(i)/status", Array("m\(i)".utf8), qos: 1) }
            try eventually(timeout: 10, "50 publishes") { peer.messages.filter { $0.topic.hasPrefix("fleet/mute-") }.count == 50 }
            c.stop()
        }
        if muted >= 0 { #expect(fwio_is_muted(muted) == 0) }
        var o = MQTTOptions(host: "127.0.0.1", port: broker.port, clientID: "loop-test")
        o.bufferedIO = false
        let d = BufferedStopTests.Connected()
        let stock = try MQTTClient(o, delegate: d)
        try stock.start()
        try eventually(timeout: 10, "loop-test connected") { d.isUp }
        #expect(stock.libraryWakeFD == -1)
        stock.stop()
        peer.client.stop()
    }
}
