import CBufferedSocketIO
import CMosquitto
import Synchronization
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Connection settings for one MQTT client.
public struct MQTTOptions: Sendable {
    public enum ProtocolVersion: Sendable { case v5, v311 }

    public var host: String
    public var port: Int
    /// Empty: the broker assigns one (and no session can persist).
    public var clientID: String
    /// false: keep the session (subscriptions and queued QoS 1 messages) across disconnects.
    public var cleanStart: Bool = false
    /// MQTT 5 session expiry after disconnect, seconds (ignored for 3.1.1, where a non-clean
    /// session never expires).
    public var sessionExpirySeconds: UInt32 = 7 * 24 * 3600
    public var protocolVersion: ProtocolVersion = .v5
    public var keepAliveSeconds: Int = 30
    public var username: String?
    public var password: String?
    /// TLS: CA file (enables TLS), optional client certificate and key.
    public var tlsCAFile: String?
    public var tlsCertFile: String?
    public var tlsKeyFile: String?
    /// Reconnect backoff: first delay and cap, seconds (exponential).
    public var reconnectDelaySeconds: UInt32 = 1
    public var reconnectDelayMaxSeconds: UInt32 = 30
    /// A will (last message the broker publishes if we vanish).
    public var will: (topic: String, payload: [UInt8], qos: Int32, retain: Bool)?
    /// Drive libmosquitto through buffered socket I/O where the process can
    /// (`MQTTClient.bufferedIO`); false: `mosquitto_loop` as shipped.
    public var bufferedIO = true
    /// Receive coalescing, microseconds (buffered I/O and MQTT 5 only; 0: off). When the socket
    /// turns readable after a round that read fewer than 64 packets, the network thread waits
    /// this long before reading, so one wake-up takes many packets instead of a few: on a busy
    /// subscriber, wake-ups (poll, read, the PUBACK write, two context switches) cost more
    /// than the packets. PUBACKs still leave at the end of every round, so the broker is never
    /// held up by us for longer than the wait. A broker that caps the messages in flight to us
    /// below our Receive Maximum makes every waited round read exactly that many; 16 such
    /// rounds in a row turn the wait off until the next connection (see `pump`).
    public var coalesceMicroseconds = 0

    public init(host: String, port: Int, clientID: String) {
        self.host = host
        self.port = port
        self.clientID = clientID
    }
}

/// An MQTT error: libmosquitto's code and its text, with what we were doing.
public struct MQTTError: Error, CustomStringConvertible, Sendable {
    public var code: Int32
    public var context: String
    public var description: String { "\(context): \(String(cString: mosquitto_strerror(code))) (\(code))" }
}

/// Events the client delivers, on libmosquitto's network thread.
public protocol MQTTClientDelegate: AnyObject, Sendable {
    /// A message arrived. `payload` is only valid during the call: copy what you keep.
    func mqttMessage(topic: String, payload: UnsafeRawBufferPointer, qos: Int32, retained: Bool)
    /// Connected (`code` 0) or refused; `sessionPresent` says whether the broker kept our session.
    func mqttConnected(code: Int32, sessionPresent: Bool)
    /// Disconnected: `code` 0 when we asked, anything else means libmosquitto will reconnect.
    func mqttDisconnected(code: Int32)
    /// A publish left our hands: for QoS 1 the broker's PUBACK arrived (QoS 0: it was written to
    /// the socket). `reasonCode` is the MQTT 5 PUBACK reason (0 success, 0x10 no subscribers;
    /// >= 0x80 the broker refused it: not delivered). Always 0 under MQTT 3.1.1.
    func mqttPublished(mid: Int32, reasonCode: Int32)
    /// libmosquitto's own error and warning lines: the only place that says WHY a connection
    /// failed below MQTT, e.g. "OpenSSL Error[0]: error:0A000086:SSL routines::certificate
    /// verify failed" or "...tlsv13 alert certificate required". `isError` false: a warning.
    func mqttLog(isError: Bool, message: String)
}

extension MQTTClientDelegate {
    /// Default: ignore acknowledgements (subscribers and fire-and-forget publishers).
    public func mqttPublished(mid: Int32, reasonCode: Int32) {}
    /// Default: ignore libmosquitto's log.
    public func mqttLog(isError: Bool, message: String) {}
}

/// The broker's reason for refusing a CONNECT, as text: MQTT 5 reason codes ("Not authorized")
/// and MQTT 3.1.1 CONNACK codes ("Connection Refused: not authorised.") differ.
public func connackReason(_ code: Int32, _ version: MQTTOptions.ProtocolVersion) -> String {
    String(cString: version == .v5 ? mosquitto_reason_string(code) : mosquitto_connack_string(code))
}

/// A libmosquitto client: the only code that touches libmosquitto (with MQTTBroker in tests).
///
/// `@unchecked Sendable`: the mosquitto handle is used from the caller's threads for
/// publish/subscribe/stop and from our network thread for I/O and callbacks; libmosquitto is
/// thread-safe for that use once `mosquitto_threaded_set` is in effect. Our own mutable state
/// (`subscriptions`, `started`, `stopping`, `thread`) is guarded by `lock`.
///
/// The network thread is ours, not `mosquitto_loop_start`'s: libmosquitto's `loop_forever`
/// (what loop_start runs) returns for good, and its thread ends, on TLS and protocol errors
/// (a broker's TLS alert such as "certificate required" surfaces as EPROTO; an MQTT 5 CONNACK
/// refusal as MOSQ_ERR_PROTOCOL), so a client that had said "reconnecting" never did. Ours
/// reconnects with backoff after ANY failure until `stop`.
public final class MQTTClient: @unchecked Sendable {
    private let mosq: OpaquePointer
    public let options: MQTTOptions
    private weak var delegate: (any MQTTClientDelegate)?
    private var lock = pthread_mutex_t()
    /// Wakes the network thread's backoff wait on `stop`.
    private var wake = pthread_cond_t()
    private var subscriptions: [(String, Int32)] = []
    private var started = false
    private var stopping = false
    private var thread: pthread_t?
    /// Set by the CONNACK callback (network thread): resets the backoff.
    private var accepted = false
    /// Network thread only: receive coalescing on the current connection (`pump`); a
    /// reconnect starts it anew.
    private var coalescing = Coalescing()

    struct Coalescing {
        /// Waited rounds that read the same number of packets (at least 2) in a row, after
        /// which the wait is off for this socket: the broker caps what it has in flight to us.
        static let windowEvidence = 16
        var lastRoundPackets = 0
        var lastWaitedPackets = 0
        var sameWaitedRounds = 0
        var off = false

        /// Whether to wait before reading, the socket being readable.
        func shouldWait(microseconds: Int) -> Bool { microseconds > 0 && !off && lastRoundPackets < 64 }

        /// After a round; true when this round turned the wait off.
        mutating func roundEnded(packets: Int, waited: Bool) -> Bool {
            lastRoundPackets = packets
            guard waited else { return false }
            sameWaitedRounds = packets >= 2 && packets == lastWaitedPackets ? sameWaitedRounds + 1 : 0
            lastWaitedPackets = packets
            if !off && sameWaitedRounds + 1 >= Self.windowEvidence {
                off = true
                return true
            }
            return false
        }
    }
    /// Wakes the network thread's poll when another thread queued a packet (buffered I/O only;
    /// libmosquitto's own wake-up socketpair is what `mosquitto_loop` selects on).
    private let wakeFD: Int32
    /// `bufferedIO` for this client: the process can, and its options ask for it.
    private let buffered: Bool
    /// The write end of libmosquitto's wake-up socketpair, muted (CBufferedSocketIO) because
    /// `pump` does not read it; -1 when not muted.
    private let mutedLibraryWakeFD = Atomic<Int32>(-1)

    /// Whether the network thread drives libmosquitto through buffered socket I/O (`pump`):
    /// this process's read/write are CBufferedSocketIO's, and FLEETWATCH_MQTT_BUFFERED_IO is
    /// not 0. Otherwise `mosquitto_loop` as libmosquitto ships it.
    public static let bufferedIO: Bool = fwio_active() == 1 && ProcessInfo.processInfo.environment["FLEETWATCH_MQTT_BUFFERED_IO"] != "0"

    private static let libraryInit: Void = { mosquitto_lib_init(); return () }()

    public init(_ options: MQTTOptions, delegate: any MQTTClientDelegate) throws {
        _ = Self.libraryInit
        self.options = options
        self.delegate = delegate
        wakeFD = fwio_wake_fd()
        buffered = Self.bufferedIO && options.bufferedIO
        pthread_mutex_init(&lock, nil)
        pthread_cond_init(&wake, nil)
        let id = options.clientID.isEmpty ? nil : options.clientID
        let (created, libraryWake) = Self.notingSocketpair(buffered) { mosquitto_new(id, options.cleanStart || id == nil, nil) }
        guard let m = created else {
            throw MQTTError(code: MOSQ_ERR_NOMEM.rawValue, context: "creating the MQTT client")
        }
        mosq = m
        muteLibraryWake(libraryWake)
        mosquitto_user_data_set(mosq, Unmanaged.passUnretained(self).toOpaque())
        let version = options.protocolVersion == .v5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311
        try check(mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, Int32(version)), "setting the protocol version")
        if options.protocolVersion == .v5 {
            // Let the broker keep many QoS 1 messages in flight to us.
            _ = mosquitto_int_option(mosq, MOSQ_OPT_RECEIVE_MAXIMUM, 65_535)
        }
        if let u = options.username {
            try check(mosquitto_username_pw_set(mosq, u, options.password), "setting the username")
        }
        if let ca = options.tlsCAFile {
            try check(mosquitto_tls_set(mosq, ca, nil, options.tlsCertFile, options.tlsKeyFile, nil), "setting up TLS")
        }
        if let w = options.will {
            try check(w.payload.withUnsafeBytes { mosquitto_will_set(mosq, w.topic, Int32(w.payload.count), $0.baseAddress, w.qos, w.retain) }, "setting the will")
        }
        try check(mosquitto_threaded_set(mosq, true), "enabling threaded use")
        mosquitto_log_callback_set(mosq, Self.onLog)
        mosquitto_message_v5_callback_set(mosq) { _, obj, msg, _ in
            guard let obj, let msg else { return }
            let client = Unmanaged<MQTTClient>.fromOpaque(obj).takeUnretainedValue()
            let m = msg.pointee
            let topic = String(cString: m.topic)
            let payload = UnsafeRawBufferPointer(start: m.payload, count: Int(m.payloadlen))
            client.delegate?.mqttMessage(topic: topic, payload: payload, qos: m.qos, retained: m.retain)
        }
        mosquitto_connect_v5_callback_set(mosq) { _, obj, rc, flags, _ in
            guard let obj else { return }
            let client = Unmanaged<MQTTClient>.fromOpaque(obj).takeUnretainedValue()
            if rc == 0 {
                client.withLock { client.accepted = true }
                // While connected, libmosquitto would format two debug lines per message for a
                // log callback (a malloc and a vsnprintf each); its errors matter while it
                // connects (TLS above all), and a broken connection is reported by its code.
                mosquitto_log_callback_set(client.mosq, nil)
                client.resubscribe()
            }
            client.delegate?.mqttConnected(code: rc, sessionPresent: flags & 1 != 0)
        }
        mosquitto_publish_v5_callback_set(mosq) { _, obj, mid, reasonCode, _ in
            guard let obj else { return }
            Unmanaged<MQTTClient>.fromOpaque(obj).takeUnretainedValue().delegate?.mqttPublished(mid: mid, reasonCode: reasonCode)
        }
        mosquitto_disconnect_v5_callback_set(mosq) { mosq, obj, rc, _ in
            guard let obj else { return }
            mosquitto_log_callback_set(mosq, MQTTClient.onLog)
            Unmanaged<MQTTClient>.fromOpaque(obj).takeUnretainedValue().delegate?.mqttDisconnected(code: rc)
        }
    }

    /// libmosquitto's errors and warnings, passed to the delegate; set while not connected.
    private static let onLog: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, Int32, UnsafePointer<CChar>?) -> Void = { _, obj, level, text in
        guard let obj, let text, level == MOSQ_LOG_ERR || level == MOSQ_LOG_WARNING else { return }
        let client = Unmanaged<MQTTClient>.fromOpaque(obj).takeUnretainedValue()
        client.delegate?.mqttLog(isError: level == MOSQ_LOG_ERR, message: String(cString: text))
    }

    deinit {
        stop()
        mosquitto_destroy(mosq)
        if wakeFD >= 0 { close(wakeFD) }
        pthread_cond_destroy(&wake)
        pthread_mutex_destroy(&lock)
    }

    private func check(_ rc: Int32, _ context: String) throws {
        if rc != MOSQ_ERR_SUCCESS.rawValue { throw MQTTError(code: rc, context: context) }
    }

    /// Runs a libmosquitto call that may (re)open its wake-up socketpair (`mosquitto_new` opens
    /// it; some libmosquitto versions close it and open a new one in `mosquitto_connect*`) and
    /// returns the write end of the pair it opened, or -1 (also when `noting` is false).
    private static func notingSocketpair<T>(_ noting: Bool, _ call: () -> T) -> (T, Int32) {
        guard noting else { return (call(), -1) }
        fwio_capture_socketpair()
        let result = call()
        return (result, fwio_captured_socketpair())
    }

    /// For a client driven by `pump`, mutes the write end of libmosquitto's wake-up socketpair:
    /// `pump` never reads the pair (our eventfd does its job), so the byte libmosquitto writes
    /// there for every packet it queues would be a wasted system call. (A closed pair is
    /// unmuted by CBufferedSocketIO's close.)
    private func muteLibraryWake(_ w: Int32) {
        guard buffered, w >= 0 else { return }
        mutedLibraryWakeFD.store(fwio_mute(w) == 0 ? w : -1, ordering: .relaxed)
    }

    /// `notingSocketpair`, then `muteLibraryWake`.
    private func muteLibraryWake<T>(around call: () -> T) -> T {
        let (result, w) = Self.notingSocketpair(buffered, call)
        muteLibraryWake(w)
        return result
    }

    /// For tests: the muted write end of libmosquitto's socketpair, or -1.
    var libraryWakeFD: Int32 { mutedLibraryWakeFD.load(ordering: .relaxed) }

    private func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return try body()
    }

    /// Connects and starts the network thread; reconnects by itself (with backoff) after any
    /// disconnect or failed attempt. Subscriptions made with `subscribe` are renewed on every
    /// connect. Throws only when the first attempt cannot even be made (an unresolvable host,
    /// bad arguments). A failed TLS handshake is retried like a refused connection: libmosquitto
    /// makes the socket non-blocking before the handshake, so whether a bad certificate fails
    /// here or on the network thread is a race; either way the log callback says why.
    public func start() throws {
        try withLock {
            guard !started else { return }
            var props: OpaquePointer?
            if options.protocolVersion == .v5 && !options.cleanStart {
                mosquitto_property_add_int32(&props, Int32(MQTT_PROP_SESSION_EXPIRY_INTERVAL.rawValue), options.sessionExpirySeconds)
            }
            defer { mosquitto_property_free_all(&props) }
            // Blocking TCP connect and TLS handshake; the CONNECT it queues is written by the
            // network thread. libmosquitto keeps the properties for every reconnect.
            let rc = muteLibraryWake(around: { mosquitto_connect_bind_v5(mosq, options.host, Int32(options.port), Int32(options.keepAliveSeconds), nil, props) })
            let retried = [MOSQ_ERR_SUCCESS, MOSQ_ERR_ERRNO, MOSQ_ERR_CONN_REFUSED, MOSQ_ERR_TLS].map(\.rawValue)
            if !retried.contains(rc) {
                try check(rc, "connecting to \(options.host):\(options.port)")
            }
            stopping = false
            var t = pthread_t()
            let created = pthread_create(&t, nil, { arg in
                Unmanaged<MQTTClient>.fromOpaque(arg!).takeUnretainedValue().networkLoop()
                return nil
            }, Unmanaged.passUnretained(self).toOpaque())
            guard created == 0 else {
                throw MQTTError(code: MOSQ_ERR_ERRNO.rawValue, context: "starting the MQTT network thread: \(String(cString: strerror(created)))")
            }
            thread = t
            started = true
        }
    }

    /// The network thread: I/O and callbacks while connected; after a failure (lost, refused,
    /// TLS or protocol error, or no connection yet) waits `reconnectDelaySeconds`, doubling up
    /// to `reconnectDelayMaxSeconds` until a CONNECT is accepted, and reconnects. On `stop`:
    /// sends DISCONNECT and returns once the socket is closed (at most ~2 s).
    private func networkLoop() {
        var failures: UInt32 = 0
        var stopDeadline: UInt64?
        while true {
            if withLock({ stopping }) {
                if stopDeadline == nil {
                    stopDeadline = Self.nowNs() + 2_000_000_000
                    // Also after a reconnect that raced with `stop`: leave cleanly (no will).
                    if mosquitto_socket(mosq) >= 0 { _ = mosquitto_disconnect_v5(mosq, 0, nil) }
                }
                if mosquitto_socket(mosq) < 0 || Self.nowNs() >= stopDeadline! {
                    fwio_release()
                    return
                }
                _ = buffered ? pump(timeoutMs: 100) : mosquitto_loop(mosq, 100, 1)
                continue
            }
            let rc = buffered ? pump(timeoutMs: 1000) : mosquitto_loop(mosq, 1000, 1)
            if withLock({ let a = accepted; accepted = false; return a }) { failures = 0 }
            if rc == MOSQ_ERR_SUCCESS.rawValue || withLock({ stopping }) { continue }
            // Down. libmosquitto has closed the socket and fired on_disconnect when there was
            // a connection; its log callback has said why below MQTT (TLS).
            let delay = min(Double(options.reconnectDelayMaxSeconds), Double(options.reconnectDelaySeconds) * Double(1 << min(failures, 20)))
            failures += 1
            waitUnlessStopping(seconds: max(0.1, delay))
            if withLock({ stopping }) { continue }
            // Blocking; a failure here (refused, TLS) leaves no socket: the next mosquitto_loop
            // returns MOSQ_ERR_NO_CONN and we back off again. The handshake is not buffered.
            fwio_release()
            coalescing = Coalescing()
            _ = muteLibraryWake(around: { mosquitto_reconnect(mosq) })
        }
    }

    /// One round of the network thread with buffered socket I/O, what `mosquitto_loop` does
    /// with fewer system calls: poll the socket (and our wake-up eventfd); read every packet
    /// that has arrived, the socket drained in 64 KiB reads instead of four reads per packet;
    /// write what that queued (PUBACKs), other threads' packets and keepalive pings, in one
    /// write. libmosquitto's own wake-up socketpair is not read (our eventfd does its job), and
    /// its writes to it are muted (`muteLibraryWake`).
    private func pump(timeoutMs: Int32) -> Int32 {
        let ok = MOSQ_ERR_SUCCESS.rawValue
        let sock = mosquitto_socket(mosq)
        guard sock >= 0 else {
            fwio_release()
            return MOSQ_ERR_NO_CONN.rawValue
        }
        fwio_claim(sock)
        var readable = fwio_pending_input() > 0
        if !readable {
            var fds = [pollfd(fd: sock, events: Int16(POLLIN), revents: 0), pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
            if mosquitto_want_write(mosq) || fwio_pending_output() > 0 { fds[0].events |= Int16(POLLOUT) }
            if poll(&fds, 2, timeoutMs) < 0 { return errno == EINTR ? ok : MOSQ_ERR_ERRNO.rawValue }
            if fds[1].revents != 0 { fwio_drain_wake(wakeFD) }
            readable = fds[0].revents & Int16(POLLIN | POLLERR | POLLHUP) != 0
        }
        let wait = options.protocolVersion == .v5 ? options.coalesceMicroseconds : 0
        let waited = readable && coalescing.shouldWait(microseconds: wait)
        if waited { usleep(UInt32(wait)) }
        var packets = 0
        defer {
            if coalescing.roundEnded(packets: packets, waited: waited) {
                delegate?.mqttLog(isError: false, message: "receive coalescing off for this connection: \(Coalescing.windowEvidence) waited rounds in a row read exactly \(packets) messages, so the broker caps the messages in flight to us at that")
            }
        }
        /// What the packets read so far queued (PUBACKs) goes out now.
        func writeQueued() -> Int32 {
            guard mosquitto_want_write(mosq) else { return ok }
            let rc = mosquitto_loop_write(mosq, 1)
            if rc != ok || mosquitto_socket(mosq) != sock {
                fwio_release()
                return rc == ok ? MOSQ_ERR_CONN_LOST.rawValue : rc
            }
            if fwio_claimed() == sock { _ = fwio_flush() }
            return ok
        }
        if readable {
            // Every packet that is there, bounded so keepalive gets its turn. PUBACKs leave every
            // 32 packets: the broker looks each one up in its list of messages in flight to us,
            // so letting thousands pile up makes every acknowledgement slow for it.
            for i in 1...4096 {
                let rc = mosquitto_loop_read(mosq, 1)
                packets = i
                if rc != ok || mosquitto_socket(mosq) != sock {
                    fwio_release()
                    return rc
                }
                // Unbuffered (out of memory) reads one packet per poll, as libmosquitto does.
                if fwio_claimed() != sock || (fwio_pending_input() == 0 && fwio_drained() != 0) { break }
                if i % 32 == 0 {
                    let rc = writeQueued()
                    if rc != ok { return rc }
                }
            }
        }
        let wrc = writeQueued()
        if wrc != ok { return wrc }
        let rc = mosquitto_loop_misc(mosq)
        // (A socket libmosquitto closed has ended the claim: CBufferedSocketIO's close.)
        if fwio_claimed() == sock {
            // An error here is the connection's: the next read finds it and reconnects.
            _ = fwio_flush()
        }
        return rc
    }

    private func wakeNetworkThread() {
        if buffered && wakeFD >= 0 { fwio_wake(wakeFD) }
    }

    private func waitUnlessStopping(seconds: Double) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let ns = Int(ts.tv_nsec) + Int((seconds - seconds.rounded(.down)) * 1e9)
        ts.tv_sec += Int(seconds) + ns / 1_000_000_000
        ts.tv_nsec = ns % 1_000_000_000
        pthread_mutex_lock(&lock)
        while !stopping && pthread_cond_timedwait(&wake, &lock, &ts) == 0 {}
        pthread_mutex_unlock(&lock)
    }

    private static func nowNs() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// CPU seconds the network thread has used (libmosquitto's I/O and the message callbacks);
    /// nil before `start` or after `stop`.
    public var networkThreadCPUSeconds: Double? {
        guard let t = withLock({ started ? thread : nil }) else { return nil }
        var clock = clockid_t()
        guard pthread_getcpuclockid(t, &clock) == 0 else { return nil }
        var ts = timespec()
        guard clock_gettime(clock, &ts) == 0 else { return nil }
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Subscribes now (if connected) and after every reconnect.
    public func subscribe(_ topic: String, qos: Int32 = 1) throws {
        withLock { subscriptions.append((topic, qos)) }
        let rc = mosquitto_subscribe_v5(mosq, nil, topic, qos, 0, nil)
        wakeNetworkThread()
        if rc != MOSQ_ERR_SUCCESS.rawValue && rc != MOSQ_ERR_NO_CONN.rawValue { try check(rc, "subscribing to \(topic)") }
    }

    private func resubscribe() {
        let subs = withLock { subscriptions }
        for (topic, qos) in subs { _ = mosquitto_subscribe_v5(mosq, nil, topic, qos, 0, nil) }
    }

    /// Queues a publish (libmosquitto retries QoS 1 until acknowledged, across reconnects while
    /// the process lives). Returns the message id.
    @discardableResult
    public func publish(_ topic: String, _ payload: [UInt8], qos: Int32 = 1, retain: Bool = false) throws -> Int32 {
        var mid: Int32 = 0
        let rc = payload.withUnsafeBytes { mosquitto_publish_v5(mosq, &mid, topic, Int32(payload.count), $0.baseAddress, qos, retain, nil) }
        wakeNetworkThread()
        if rc != MOSQ_ERR_SUCCESS.rawValue && rc != MOSQ_ERR_NO_CONN.rawValue { try check(rc, "publishing to \(topic)") }
        return mid
    }

    /// Disconnects cleanly (no will) and stops the network thread; returns once it has ended.
    public func stop() {
        let t = withLock { () -> pthread_t? in
            guard started else { return nil }
            started = false
            stopping = true
            pthread_cond_broadcast(&wake)
            return thread
        }
        guard let t else { return }
        // Queues DISCONNECT and wakes the network thread's select(); it finishes the job.
        _ = mosquitto_disconnect_v5(mosq, 0, nil)
        wakeNetworkThread()
        if pthread_equal(t, pthread_self()) == 0 { pthread_join(t, nil) } else { pthread_detach(t) }
        withLock { thread = nil }
    }
}

/// Parses `HOST:PORT` (`[v6]:PORT` too); the port defaults to 1883.
public func parseBrokerAddress(_ text: String) -> (host: String, port: Int)? {
    if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
        let host = String(text[text.index(after: text.startIndex)..<close])
        let rest = text[text.index(after: close)...]
        if rest.isEmpty { return (host, 1883) }
        guard rest.hasPrefix(":"), let p = Int(rest.dropFirst()), (1...65535).contains(p) else { return nil }
        return (host, p)
    }
    let parts = text.split(separator: ":", omittingEmptySubsequences: false)
    guard let host = parts.first, !host.isEmpty else { return nil }
    if parts.count == 1 { return (String(host), 1883) }
    guard parts.count == 2, let p = Int(parts[1]), (1...65535).contains(p) else { return nil }
    return (String(host), p)
}
