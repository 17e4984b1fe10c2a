// Many libmosquitto clients (one per simulated device, up to ~10,000) on ONE thread, driven by
// poll(2) through libmosquitto's non-threaded API: mosquitto_socket, mosquitto_want_write,
// mosquitto_loop_read / loop_write / loop_misc. No mosquitto_loop_start, no thread per client.
//
// What libmosquitto 2.0.11's non-threaded mode does that is not obvious (each one measured here
// with small C programs against a real mosquitto before this file was written):
//
// - Every client holds THREE file descriptors, not one: mosquitto_new() opens a socketpair
//   (and every mosquitto_connect*() call closes and re-opens it) that only mosquitto_loop()'s
//   select() reads, to wake up when another thread queues a packet. Every queued packet writes a
//   byte into it (nobody drains it without mosquitto_loop, so once full those writes just fail
//   with EAGAIN). 10,000 clients would need 30,000 descriptors; this machine's hard limit is
//   20,000. We close that pair and mark it invalid in the handle (the first three ints of
//   `struct mosquitto` are sock, sockpairR, sockpairW), but only after checking that layout on
//   the live handle: field 0 equals mosquitto_socket(), fields 1 and 2 are two distinct
//   non-blocking AF_UNIX stream sockets whose peer is this process. If any check fails we leave
//   the pair alone and count three descriptors per client (`descriptorsPerConnection`).
// - mosquitto_loop() (which MQTTClient's network thread runs) returns
//   MOSQ_ERR_INVAL when its socket is >= FD_SETSIZE (1024): a threaded MQTTClient created in a
//   process that already has ~1,000 descriptors open never connects, silently. Create threaded
//   clients before a big set. poll(2) here has no such limit.
// - There is no asynchronous MQTT 5 connect: mosquitto_connect_bind_v5 (the only call that
//   takes CONNECT properties such as the session expiry) connects blocking, and
//   mosquitto_connect_bind_async takes no properties. But connect_bind_v5 stores the properties
//   on the handle BEFORE it validates its arguments, and connect_bind_async / reconnect_async
//   send the stored ones. So we call connect_bind_v5 with port -1 (rejected with MOSQ_ERR_INVAL,
//   no socket opened) to store them, then connect_bind_async. Verified: after a clean
//   DISCONNECT, reconnect_async gets CONNACK with session-present 1.
// - A non-blocking connect to loopback with nothing listening fails at once
//   (MOSQ_ERR_ERRNO, ECONNREFUSED, socket already closed, no callback). One that is pending
//   (EINPROGRESS) queues the CONNECT, which loop_write sends on the first POLLOUT; if it is
//   refused later, poll reports POLLERR|POLLHUP and loop_read fires on_disconnect (for a
//   connection that never connected) and returns MOSQ_ERR_ERRNO. A CONNECT that never gets a
//   CONNACK is only timed out by loop_misc, after keepAliveSeconds.
// - Packets queued from inside a callback (the SUBSCRIBE sent in on_connect, a publish from a
//   message handler) are not written: libmosquitto defers them until loop_write. So after
//   every loop_read we loop_write whenever mosquitto_want_write says so.
// - Outside callbacks, mosquitto_publish / mosquitto_disconnect_v5 write to the socket at once,
//   and mosquitto_disconnect_v5 fires on_disconnect(0) synchronously, before it returns. We hold
//   that event back until the next poll() so the delegate is never re-entered from drop().
// - QoS 0 publishes fire on_publish too (when written); only QoS 1 PUBACKs are forwarded.
// - A QoS 1 publish that got a mid stays in libmosquitto's queue even when the socket dies
//   under it, and reconnect_async resends it (tested: publishes into a stopped broker are
//   PUBACKed after it restarts). Sockets are written with write(2), not send(MSG_NOSIGNAL):
//   it is mosquitto_new() that sets SIGPIPE to SIG_IGN, process-wide.

import CMosquitto

#if canImport(Glibc)
    import Glibc
#endif

/// Events of an `MQTTConnectionSet`, delivered on its owning thread from inside `poll`.
public protocol MQTTConnectionSetDelegate: AnyObject {
    /// CONNACK for connection `index` (code 0 = accepted).
    func mqttSet(connected index: Int, code: Int32)
    /// Connection `index` lost or closed (code 0 = we asked).
    func mqttSet(disconnected index: Int, code: Int32)
    /// A message on connection `index`; payload valid only during the call.
    func mqttSet(message index: Int, topic: String, payload: UnsafeRawBufferPointer)
    /// PUBACK (QoS 1) for `mid` on connection `index`; reasonCode >= 0x80 = refused.
    func mqttSet(published index: Int, mid: Int32, reasonCode: Int32)
}

/// Many MQTT 5 clients driven by one thread with poll(2).
///
/// Not Sendable: create it, call every method and run `poll` on one thread. Callbacks fire from
/// inside `poll` (and `close`); the delegate may call back into the set (publish, drop,
/// reconnect, add) from them. The delegate is held weakly.
public final class MQTTConnectionSet {
    public let host: String
    public let port: Int
    public let keepAliveSeconds: Int
    public weak var delegate: (any MQTTConnectionSetDelegate)?

    /// At most this many connects (first connects and reconnects) start per `poll` round, so
    /// CONNACKs are processed while a large set is still connecting.
    public var maxConnectsPerRound = 500
    /// At most this many connections wait for their CONNACK at once.
    public var maxPendingConnects = 2_000
    /// Reconnect backoff: first delay and cap, seconds (doubling; plus up to 50% jitter).
    public var backoffInitialSeconds = 0.5
    public var backoffMaxSeconds = 10.0

    /// File descriptors each connection holds: 1 when libmosquitto's unused wake-up
    /// socketpair could be closed (see the top of this file), else 3.
    public private(set) var descriptorsPerConnection = 3
    /// Why the last `publish` returned nil although the connection was up (bad topic, too big).
    public private(set) var lastPublishError: MQTTError?
    /// Connects started (first connects and reconnects), and those that failed before an
    /// accepted CONNACK (refused at once, reset, refused by the broker, no CONNACK in time).
    public private(set) var connectsStarted = 0
    public private(set) var connectsFailed = 0
    /// Tests turn this off (before the first `add`) to run with libmosquitto's socketpairs.
    var closesWakeupPairs = true

    private var slots: [Slot] = []
    /// Connections waiting to start a connect, in order (FIFO with a moving head).
    private var ready: [Int] = []
    private var readyHead = 0
    /// Reconnects waiting for their backoff to expire: a binary min-heap on `due`.
    private var retries: [(due: UInt64, index: Int, generation: UInt32)] = []
    private var pendingConnects = 0
    /// Reused across rounds: no allocation per round once grown.
    private var pollFDs: [pollfd] = []
    private var pollSlots: [Int] = []
    /// Disconnects not yet reported: on_disconnect fires inside libmosquitto calls (and inside
    /// drop()); the delegate hears of them once that call has returned, within `poll`.
    private var events: [(index: Int, code: Int32)] = []
    private var lastMiscNs: UInt64 = 0
    private var inPoll = false
    private var closing = false
    private var closeRequested = false
    public private(set) var isClosed = false
    /// Nil until the first handle has been checked; then whether the socketpair can be closed.
    private var pairLayoutOK: Bool?
    private var raisedFileLimit = false

    private static let libraryInit: Void = {
        mosquitto_lib_init()
        return ()
    }()

    private static let miscIntervalNs: UInt64 = 500_000_000
    private static let descriptorReserve = 256

    public init(host: String, port: Int, keepAliveSeconds: Int = 60, delegate: any MQTTConnectionSetDelegate) {
        _ = Self.libraryInit
        self.host = host
        self.port = port
        // libmosquitto refuses keepalives below 5 s.
        self.keepAliveSeconds = max(5, keepAliveSeconds)
        self.delegate = delegate
    }

    deinit {
        if !isClosed { closeNow() }
    }

    // MARK: - Public API

    public var count: Int { slots.count }

    public func isConnected(_ index: Int) -> Bool {
        guard index >= 0, index < slots.count else { return false }
        return slots[index].state == .connected
    }

    /// Connections with CONNACK accepted and not lost.
    public var connectedCount: Int { slots.reduce(0) { $0 + ($1.state == .connected ? 1 : 0) } }

    /// QoS 1 publishes on connection `index` still waiting for their PUBACK (libmosquitto
    /// resends them after a reconnect).
    public func unacknowledged(_ index: Int) -> Int {
        guard index >= 0, index < slots.count else { return 0 }
        return slots[index].unacked.count
    }

    /// Creates client `clientID` (MQTT 5, cleanStart false, session expiry `sessionExpirySeconds`),
    /// with an optional will, subscribes `subscriptions` at QoS 1 on every (re)connect, and starts
    /// connecting. Returns its index (0, 1, 2, ... in order of add).
    public func add(
        clientID: String, will: (topic: String, payload: [UInt8], qos: Int32, retain: Bool)?,
        subscriptions: [String], sessionExpirySeconds: UInt32 = 3600
    ) throws -> Int {
        guard !isClosed, !closing else {
            throw MQTTError(code: MOSQ_ERR_INVAL.rawValue, context: "adding \(clientID) to a closed connection set")
        }
        guard !clientID.isEmpty else {
            throw MQTTError(code: MOSQ_ERR_INVAL.rawValue, context: "adding a connection without a client id (a persistent session needs one)")
        }
        try ensureDescriptors(forConnections: slots.count + 1, adding: clientID)
        guard let mosq = mosquitto_new(clientID, false, nil) else {
            throw MQTTError(code: errno == EINVAL ? MOSQ_ERR_INVAL.rawValue : MOSQ_ERR_NOMEM.rawValue, context: "creating MQTT client \(clientID)")
        }
        var ok = false
        defer { if !ok { mosquitto_destroy(mosq) } }
        trimWakeupPair(mosq)
        try check(mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, Int32(MQTT_PROTOCOL_V5)), "setting MQTT 5 for \(clientID)")
        _ = mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1)
        if let w = will {
            try check(
                w.payload.withUnsafeBytes { mosquitto_will_set(mosq, w.topic, Int32(w.payload.count), $0.baseAddress, w.qos, w.retain) },
                "setting the will of \(clientID) on \(w.topic)")
        }
        // Store the CONNECT properties without connecting (see the top of this file): port -1
        // makes connect_bind_v5 return MOSQ_ERR_INVAL after it has kept a copy of them.
        var props: OpaquePointer?
        defer { mosquitto_property_free_all(&props) }
        try check(mosquitto_property_add_int32(&props, Int32(MQTT_PROP_SESSION_EXPIRY_INTERVAL.rawValue), sessionExpirySeconds), "building CONNECT properties")
        let rc = mosquitto_connect_bind_v5(mosq, host, -1, 1, nil, props)
        if rc != MOSQ_ERR_INVAL.rawValue {
            throw MQTTError(code: rc, context: "storing the CONNECT properties of \(clientID) (libmosquitto changed: expected MOSQ_ERR_INVAL)")
        }

        let slot = Slot(set: self, index: slots.count, mosq: mosq, subscriptions: subscriptions)
        mosquitto_user_data_set(mosq, Unmanaged.passUnretained(slot).toOpaque())
        mosquitto_connect_v5_callback_set(mosq) { _, obj, rc, _, _ in
            guard let obj else { return }
            let slot = Unmanaged<Slot>.fromOpaque(obj).takeUnretainedValue()
            slot.set?.handleConnack(slot, rc)
        }
        mosquitto_disconnect_v5_callback_set(mosq) { _, obj, rc, _ in
            guard let obj else { return }
            let slot = Unmanaged<Slot>.fromOpaque(obj).takeUnretainedValue()
            slot.set?.handleDisconnect(slot, rc)
        }
        mosquitto_publish_v5_callback_set(mosq) { _, obj, mid, reasonCode, _ in
            guard let obj else { return }
            let slot = Unmanaged<Slot>.fromOpaque(obj).takeUnretainedValue()
            guard slot.unacked.remove(mid) != nil else { return }  // QoS 0: written, not acknowledged
            slot.set?.delegate?.mqttSet(published: slot.index, mid: mid, reasonCode: reasonCode)
        }
        mosquitto_message_v5_callback_set(mosq) { _, obj, msg, _ in
            guard let obj, let msg else { return }
            let slot = Unmanaged<Slot>.fromOpaque(obj).takeUnretainedValue()
            let m = msg.pointee
            let topic = String(cString: m.topic)
            let payload = UnsafeRawBufferPointer(start: m.payload, count: Int(m.payloadlen))
            slot.set?.delegate?.mqttSet(message: slot.index, topic: topic, payload: payload)
        }
        ok = true
        slots.append(slot)
        enqueue(slot)
        return slot.index
    }

    /// Queues a publish; returns the mid, or nil when the client is not connected (caller buffers).
    /// Outside callbacks the PUBLISH is written at once; what the socket does not take is sent
    /// when poll sees POLLOUT. QoS 1 messages stay with libmosquitto until their PUBACK (it
    /// resends them after a reconnect), reported through `mqttSet(published:...)`.
    public func publish(_ index: Int, topic: String, payload: UnsafeRawBufferPointer, qos: Int32, retain: Bool) -> Int32? {
        guard index >= 0, index < slots.count, !isClosed else { return nil }
        let slot = slots[index]
        guard slot.state == .connected else { return nil }
        var mid: Int32 = 0
        let rc = mosquitto_publish_v5(slot.mosq, &mid, topic, Int32(payload.count), payload.baseAddress, qos, retain, nil)
        switch rc {
        case MOSQ_ERR_SUCCESS.rawValue:
            break
        case MOSQ_ERR_NO_CONN.rawValue, MOSQ_ERR_CONN_LOST.rawValue, MOSQ_ERR_ERRNO.rawValue:
            // The socket failed under the write. A QoS 1 message is already in libmosquitto's
            // queue (it gets resent after the reconnect); a QoS 0 one is lost: the caller keeps it.
            if qos == 0 || mid == 0 { return nil }
        default:
            lastPublishError = MQTTError(code: rc, context: "publishing to \(topic) on connection \(index)")
            return nil
        }
        if qos > 0 { slot.unacked.insert(mid) }
        return mid
    }

    /// Takes connection `index` down on purpose. withWill true: MQTT 5 DISCONNECT with reason
    /// 0x04 "Disconnect with Will Message" so the broker publishes the will (a device vanishing);
    /// false: normal DISCONNECT. Either way it stays down (no auto reconnect) until `reconnect`.
    public func drop(_ index: Int, withWill: Bool) {
        guard index >= 0, index < slots.count, !isClosed else { return }
        let slot = slots[index]
        slot.wantDown = true
        slot.generation &+= 1  // cancels a scheduled reconnect
        switch slot.state {
        case .connected, .connecting:
            slot.state = .disconnecting
            let rc = mosquitto_disconnect_v5(slot.mosq, withWill ? 0x04 : 0, nil)
            if rc != MOSQ_ERR_SUCCESS.rawValue && mosquitto_socket(slot.mosq) < 0 {
                // Nothing to send on: it is down already.
                finishDown(slot, code: 0)
            }
        case .waiting:
            slot.state = .down
        case .disconnecting, .down:
            break
        }
    }

    /// Brings a dropped connection back (connects in the next `poll` round); for a lost one
    /// waiting for its backoff, retries now.
    public func reconnect(_ index: Int) {
        guard index >= 0, index < slots.count, !isClosed, !closing else { return }
        let slot = slots[index]
        if !slot.wantDown {
            // Lost and waiting for its backoff: try now.
            if slot.state == .waiting {
                slot.attempts = 0
                slot.generation &+= 1
                enqueue(slot)
            }
            return
        }
        slot.wantDown = false
        slot.attempts = 0
        switch slot.state {
        case .down:
            slot.state = .waiting
            enqueue(slot)
        case .disconnecting:
            // The DISCONNECT is still on its way: its on_disconnect queues the connect.
            break
        case .waiting, .connecting, .connected:
            break
        }
    }

    /// One round: poll() all sockets up to timeoutMs, read/write what is ready, loop_misc
    /// (keepalives), and reconnect lost connections (not dropped on purpose) with exponential
    /// backoff 0.5 s .. 10 s plus jitter. Callbacks fire from inside this call.
    public func poll(timeoutMs: Int32) {
        guard !isClosed, !inPoll else { return }
        inPoll = true
        flushEvents()
        startDueConnects()
        round(timeoutMs: timeoutMs)
        flushEvents()
        inPoll = false
        if closeRequested { closeNow() }
    }

    /// Clean DISCONNECT of every connection, flushing what is queued (bounded wait ~2 s), then
    /// destroys them. Called from a callback, it happens when that `poll` returns.
    public func close() {
        if inPoll {
            closeRequested = true
            return
        }
        closeNow()
    }

    // MARK: - Connection state

    enum State {
        /// Queued for a connect, or waiting for its backoff.
        case waiting
        /// Socket open, CONNECT sent or on its way, no CONNACK yet.
        case connecting
        /// CONNACK accepted.
        case connected
        /// We sent (or queued) a DISCONNECT; on_disconnect has not fired yet.
        case disconnecting
        /// Down on purpose (drop or close).
        case down
    }

    final class Slot {
        weak var set: MQTTConnectionSet?
        let index: Int
        let mosq: OpaquePointer
        let subscriptions: [String]
        var state = State.waiting
        var wantDown = false
        /// A connect started and no CONNACK or disconnect seen yet (counted in pendingConnects).
        var awaitingConnack = false
        /// The delegate was told `connected` and not yet `disconnected`.
        var reportedUp = false
        /// connect_bind_async has run once (later connects are reconnect_async).
        var started = false
        var pairTrimmed = false
        var queued = false
        var attempts = 0
        /// Bumped to invalidate a scheduled reconnect.
        var generation: UInt32 = 0
        /// QoS 1 mids waiting for their PUBACK.
        var unacked = Set<Int32>()

        init(set: MQTTConnectionSet, index: Int, mosq: OpaquePointer, subscriptions: [String]) {
            self.set = set
            self.index = index
            self.mosq = mosq
            self.subscriptions = subscriptions
        }
    }

    fileprivate func handleConnack(_ slot: Slot, _ rc: Int32) {
        if slot.awaitingConnack {
            slot.awaitingConnack = false
            pendingConnects -= 1
        }
        guard slot.state == .connecting else { return }  // dropped while connecting: DISCONNECT queued
        if rc == 0 {
            slot.state = .connected
            slot.attempts = 0
            slot.reportedUp = true
            // Inside a callback: queued, written by the loop_write after this loop_read.
            for topic in slot.subscriptions {
                _ = mosquitto_subscribe_v5(slot.mosq, nil, topic, 1, 0, nil)
            }
        }
        // Refused (rc != 0): libmosquitto closes the socket next and on_disconnect schedules
        // the retry.
        if rc != 0 { connectsFailed += 1 }
        delegate?.mqttSet(connected: slot.index, code: rc)
    }

    fileprivate func handleDisconnect(_ slot: Slot, _ rc: Int32) {
        if slot.awaitingConnack {
            slot.awaitingConnack = false
            pendingConnects -= 1
            if slot.state == .connecting { connectsFailed += 1 }
        }
        if slot.wantDown || closing {
            slot.state = .down
        } else {
            // Lost or refused; or `reconnect` was called while our DISCONNECT was in flight.
            slot.state = .waiting
            if rc == 0 && slot.attempts == 0 {
                enqueue(slot)
            } else {
                scheduleRetry(slot)
            }
        }
        guard slot.reportedUp else { return }
        slot.reportedUp = false
        // Delivered once the libmosquitto call that fired this has returned (on_disconnect also
        // fires synchronously inside mosquitto_disconnect_v5, i.e. inside drop()).
        events.append((slot.index, rc))
    }

    /// A drop whose DISCONNECT could not even be queued (no socket).
    private func finishDown(_ slot: Slot, code: Int32) {
        if slot.awaitingConnack {
            slot.awaitingConnack = false
            pendingConnects -= 1
        }
        slot.state = .down
        if slot.reportedUp {
            slot.reportedUp = false
            events.append((slot.index, code))
        }
    }

    /// Reports queued disconnects (including those the delegate causes while we report).
    private func flushEvents() {
        var i = 0
        while i < events.count {
            let e = events[i]
            i += 1
            delegate?.mqttSet(disconnected: e.index, code: e.code)
        }
        events.removeAll(keepingCapacity: true)
    }

    private func enqueue(_ slot: Slot) {
        guard !slot.queued else { return }
        slot.queued = true
        ready.append(slot.index)
    }

    private func scheduleRetry(_ slot: Slot) {
        slot.attempts += 1
        let base = min(backoffMaxSeconds, backoffInitialSeconds * Double(1 << min(slot.attempts - 1, 20)))
        let delay = base + Double.random(in: 0...(base * 0.5))
        slot.generation &+= 1
        heapPush((Self.nowNs() + UInt64(delay * 1e9), slot.index, slot.generation))
    }

    /// Moves due reconnects to the ready queue, then starts connects from it, paced.
    private func startDueConnects() {
        let now = Self.nowNs()
        while let top = retries.first, top.due <= now {
            heapPop()
            let slot = slots[top.index]
            if slot.generation == top.generation && slot.state == .waiting && !slot.wantDown { enqueue(slot) }
        }
        var budget = min(maxConnectsPerRound, maxPendingConnects - pendingConnects)
        while budget > 0, readyHead < ready.count {
            let slot = slots[ready[readyHead]]
            readyHead += 1
            slot.queued = false
            guard slot.state == .waiting, !slot.wantDown else { continue }
            startConnect(slot)
            budget -= 1
        }
        if readyHead == ready.count {
            ready.removeAll(keepingCapacity: true)
            readyHead = 0
        } else if readyHead > 4096 && readyHead * 2 > ready.count {
            ready.removeFirst(readyHead)
            readyHead = 0
        }
    }

    private func startConnect(_ slot: Slot) {
        let rc: Int32
        if !slot.started {
            rc = mosquitto_connect_bind_async(slot.mosq, host, Int32(port), Int32(keepAliveSeconds), nil)
            slot.started = true
            // connect_bind_async re-opened the wake-up pair; close it again.
            slot.pairTrimmed = false
        } else {
            rc = mosquitto_reconnect_async(slot.mosq)
        }
        if !slot.pairTrimmed { trimWakeupPair(slot.mosq, slot: slot) }
        connectsStarted += 1
        if rc == MOSQ_ERR_SUCCESS.rawValue && mosquitto_socket(slot.mosq) >= 0 {
            slot.state = .connecting
            slot.awaitingConnack = true
            pendingConnects += 1
        } else {
            // Refused at once (nothing listening), no route, EMFILE...: try again later.
            connectsFailed += 1
            slot.state = .waiting
            scheduleRetry(slot)
        }
    }

    // MARK: - The poll round

    private func round(timeoutMs: Int32) {
        pollFDs.removeAll(keepingCapacity: true)
        pollSlots.removeAll(keepingCapacity: true)
        for slot in slots {
            let fd = mosquitto_socket(slot.mosq)
            guard fd >= 0 else { continue }
            let events = Int16(POLLIN) | (mosquitto_want_write(slot.mosq) ? Int16(POLLOUT) : 0)
            pollFDs.append(pollfd(fd: fd, events: events, revents: 0))
            pollSlots.append(slot.index)
        }

        // Wake up in time for what is scheduled: queued connects, the next reconnect, keepalives.
        var timeout = max(0, timeoutMs)
        let now = Self.nowNs()
        if readyHead < ready.count && pendingConnects < maxPendingConnects && !closing { timeout = 0 }
        if let top = retries.first, !closing {
            timeout = min(timeout, top.due <= now ? 0 : Int32(clamping: (top.due - now + 999_999) / 1_000_000))
        }
        if !pollFDs.isEmpty {
            let nextMisc = lastMiscNs + Self.miscIntervalNs
            timeout = min(timeout, nextMisc <= now ? 0 : Int32(clamping: (nextMisc - now + 999_999) / 1_000_000))
        }

        let n = pollFDs.withUnsafeMutableBufferPointer { Glibc.poll($0.baseAddress, nfds_t($0.count), timeout) }
        if n > 0 {
            for k in 0..<pollFDs.count {
                let p = pollFDs[k]
                guard p.revents != 0 else { continue }
                let slot = slots[pollSlots[k]]
                // A callback earlier in this round may have closed it (drop from a delegate).
                guard mosquitto_socket(slot.mosq) == p.fd else { continue }
                if p.revents & Int16(POLLIN | POLLERR | POLLHUP | POLLNVAL) != 0 {
                    // Reads what is there; on EOF or error libmosquitto closes the socket and
                    // fires on_disconnect.
                    _ = mosquitto_loop_read(slot.mosq, 1)
                }
                // What the callbacks queued (SUBSCRIBE after CONNACK, publishes from handlers),
                // and what waited for POLLOUT.
                if mosquitto_socket(slot.mosq) == p.fd && mosquitto_want_write(slot.mosq) {
                    _ = mosquitto_loop_write(slot.mosq, 1)
                }
                if !events.isEmpty { flushEvents() }
            }
        }

        let after = Self.nowNs()
        if after >= lastMiscNs + Self.miscIntervalNs {
            lastMiscNs = after
            // PINGREQ when idle for keepAliveSeconds; closes a connection whose broker stopped
            // answering, or a CONNECT without CONNACK (fires on_disconnect).
            for slot in slots where mosquitto_socket(slot.mosq) >= 0 {
                _ = mosquitto_loop_misc(slot.mosq)
            }
            if !events.isEmpty { flushEvents() }
        }
    }

    // MARK: - Close

    private func closeNow() {
        guard !isClosed else { return }
        closeRequested = false
        let wasInPoll = inPoll
        inPoll = true
        defer { inPoll = wasInPoll }
        flushEvents()
        closing = true
        let start = Self.nowNs()
        let deadline = start + 2_000_000_000
        // 1. Let QoS 1 messages in flight get their PUBACK (at most ~1.5 s).
        let ackDeadline = start + 1_500_000_000
        while Self.nowNs() < ackDeadline && slots.contains(where: { $0.state == .connected && !$0.unacked.isEmpty }) {
            round(timeoutMs: 10)
        }
        // 2. DISCONNECT everything; it goes after whatever is still queued on each socket.
        for slot in slots {
            slot.wantDown = true
            switch slot.state {
            case .connected, .connecting:
                slot.state = .disconnecting
                if mosquitto_disconnect_v5(slot.mosq, 0, nil) != MOSQ_ERR_SUCCESS.rawValue && mosquitto_socket(slot.mosq) < 0 {
                    finishDown(slot, code: 0)
                }
            case .waiting:
                slot.state = .down
            case .disconnecting, .down:
                break
            }
        }
        flushEvents()
        // 3. Flush until every socket is closed (libmosquitto closes it once DISCONNECT is out).
        while Self.nowNs() < deadline && slots.contains(where: { mosquitto_socket($0.mosq) >= 0 }) {
            round(timeoutMs: 10)
        }
        flushEvents()
        for slot in slots {
            if slot.reportedUp {
                slot.reportedUp = false
                delegate?.mqttSet(disconnected: slot.index, code: 0)
            }
            slot.state = .down
            mosquitto_destroy(slot.mosq)
        }
        isClosed = true
        ready.removeAll()
        retries.removeAll()
        pendingConnects = 0
    }

    // MARK: - File descriptors

    /// Raises RLIMIT_NOFILE's soft limit to the hard limit (once) when `n` connections get
    /// near it; throws when even the hard limit is too low.
    private func ensureDescriptors(forConnections n: Int, adding clientID: String) throws {
        var rl = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &rl) == 0 else { return }
        // +2: a connect briefly re-opens the wake-up pair before we close it again.
        let need = n * descriptorsPerConnection + 2 + Self.descriptorReserve
        if rlim_t(need) <= rl.rlim_cur { return }
        if !raisedFileLimit && rl.rlim_cur < rl.rlim_max {
            raisedFileLimit = true
            var raised = rl
            raised.rlim_cur = rl.rlim_max
            if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &raised) == 0 { rl = raised }
            if rlim_t(need) <= rl.rlim_cur { return }
        }
        throw MQTTError(
            code: MOSQ_ERR_INVAL.rawValue,
            context: "adding \(clientID) as connection \(n): RLIMIT_NOFILE is \(rl.rlim_cur) (hard limit \(rl.rlim_max)), "
                + "\(n) connections at \(descriptorsPerConnection) descriptors each need about \(need); "
                + "raise the limit (ulimit -n, LimitNOFILE=) or use fewer connections")
    }

    /// Closes libmosquitto's wake-up socketpair of `mosq` after checking the handle's layout
    /// (see the top of this file). Once a check fails, never tries again.
    private func trimWakeupPair(_ mosq: OpaquePointer, slot: Slot? = nil) {
        if !closesWakeupPairs { pairLayoutOK = false }
        guard pairLayoutOK != false else { return }
        let base = UnsafeMutableRawPointer(mosq)
        let sock = base.load(fromByteOffset: 0, as: Int32.self)
        let r = base.load(fromByteOffset: 4, as: Int32.self)
        let w = base.load(fromByteOffset: 8, as: Int32.self)
        if r == -1 && w == -1 && pairLayoutOK == true {
            // Already closed (or socketpair failed inside libmosquitto).
            slot?.pairTrimmed = true
            return
        }
        guard sock == mosquitto_socket(mosq), r >= 0, w >= 0, r != w, r != sock, w != sock,
            Self.isOwnUnixStreamSocket(r), Self.isOwnUnixStreamSocket(w)
        else {
            pairLayoutOK = false
            descriptorsPerConnection = 3
            return
        }
        Glibc.close(r)
        Glibc.close(w)
        base.storeBytes(of: Int32(-1), toByteOffset: 4, as: Int32.self)
        base.storeBytes(of: Int32(-1), toByteOffset: 8, as: Int32.self)
        slot?.pairTrimmed = true
        if pairLayoutOK == nil {
            pairLayoutOK = true
            descriptorsPerConnection = 1
        }
    }

    /// A non-blocking AF_UNIX stream socket whose peer is this process: what socketpair()
    /// inside libmosquitto makes.
    private static func isOwnUnixStreamSocket(_ fd: Int32) -> Bool {
        var value: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &value, &len) == 0, value == AF_UNIX else { return false }
        len = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &len) == 0, value == Int32(SOCK_STREAM.rawValue) else { return false }
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0, flags & O_NONBLOCK != 0 else { return false }
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
        var cred: (Int32, UInt32, UInt32) = (0, 0, 0)
        len = socklen_t(MemoryLayout<(Int32, UInt32, UInt32)>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0, cred.0 == getpid() else { return false }
        return true
    }

    // MARK: - Helpers

    private func check(_ rc: Int32, _ context: String) throws {
        if rc != MOSQ_ERR_SUCCESS.rawValue { throw MQTTError(code: rc, context: context) }
    }

    private static func nowNs() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    private func heapPush(_ e: (due: UInt64, index: Int, generation: UInt32)) {
        retries.append(e)
        var i = retries.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard retries[i].due < retries[parent].due else { break }
            retries.swapAt(i, parent)
            i = parent
        }
    }

    private func heapPop() {
        let last = retries.removeLast()
        guard !retries.isEmpty else { return }
        retries[0] = last
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < retries.count && retries[l].due < retries[m].due { m = l }
            if r < retries.count && retries[r].due < retries[m].due { m = r }
            guard m != i else { break }
            retries.swapAt(i, m)
            i = m
        }
    }
}
