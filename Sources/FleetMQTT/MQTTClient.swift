import CMosquitto

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
}

extension MQTTClientDelegate {
    /// Default: ignore acknowledgements (subscribers and fire-and-forget publishers).
    public func mqttPublished(mid: Int32, reasonCode: Int32) {}
}

/// A libmosquitto client: the only code that touches libmosquitto (with MQTTBroker in tests).
///
/// `@unchecked Sendable`: the mosquitto handle is used from the caller's threads for
/// publish/subscribe/stop and from libmosquitto's own network thread for callbacks; libmosquitto
/// is thread-safe for that use once `mosquitto_threaded_set`/`loop_start` are in effect. Our own
/// mutable state (`subscriptions`, `started`) is guarded by `lock`.
public final class MQTTClient: @unchecked Sendable {
    private let mosq: OpaquePointer
    public let options: MQTTOptions
    private weak var delegate: (any MQTTClientDelegate)?
    private var lock = pthread_mutex_t()
    private var subscriptions: [(String, Int32)] = []
    private var started = false

    private static let libraryInit: Void = { mosquitto_lib_init(); return () }()

    public init(_ options: MQTTOptions, delegate: any MQTTClientDelegate) throws {
        _ = Self.libraryInit
        self.options = options
        self.delegate = delegate
        pthread_mutex_init(&lock, nil)
        let id = options.clientID.isEmpty ? nil : options.clientID
        guard let m = mosquitto_new(id, options.cleanStart || id == nil, nil) else {
            throw MQTTError(code: MOSQ_ERR_NOMEM.rawValue, context: "creating the MQTT client")
        }
        mosq = m
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
        mosquitto_reconnect_delay_set(mosq, options.reconnectDelaySeconds, options.reconnectDelayMaxSeconds, true)
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
            if rc == 0 { client.resubscribe() }
            client.delegate?.mqttConnected(code: rc, sessionPresent: flags & 1 != 0)
        }
        mosquitto_publish_v5_callback_set(mosq) { _, obj, mid, reasonCode, _ in
            guard let obj else { return }
            Unmanaged<MQTTClient>.fromOpaque(obj).takeUnretainedValue().delegate?.mqttPublished(mid: mid, reasonCode: reasonCode)
        }
        mosquitto_disconnect_v5_callback_set(mosq) { _, obj, rc, _ in
            guard let obj else { return }
            Unmanaged<MQTTClient>.fromOpaque(obj).takeUnretainedValue().delegate?.mqttDisconnected(code: rc)
        }
    }

    deinit {
        stop()
        mosquitto_destroy(mosq)
        pthread_mutex_destroy(&lock)
    }

    private func check(_ rc: Int32, _ context: String) throws {
        if rc != MOSQ_ERR_SUCCESS.rawValue { throw MQTTError(code: rc, context: context) }
    }

    private func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return try body()
    }

    /// Starts the network thread and connects; reconnects by itself after any disconnect.
    /// Subscriptions made with `subscribe` are renewed on every connect.
    public func start() throws {
        try withLock {
            guard !started else { return }
            var props: OpaquePointer?
            if options.protocolVersion == .v5 && !options.cleanStart {
                mosquitto_property_add_int32(&props, Int32(MQTT_PROP_SESSION_EXPIRY_INTERVAL.rawValue), options.sessionExpirySeconds)
            }
            defer { mosquitto_property_free_all(&props) }
            try check(mosquitto_loop_start(mosq), "starting the MQTT network thread")
            // A first connection failure is retried by the loop (reconnect with backoff).
            let rc = mosquitto_connect_bind_v5(mosq, options.host, Int32(options.port), Int32(options.keepAliveSeconds), nil, props)
            if rc != MOSQ_ERR_SUCCESS.rawValue && rc != MOSQ_ERR_ERRNO.rawValue && rc != MOSQ_ERR_CONN_REFUSED.rawValue {
                mosquitto_loop_stop(mosq, true)
                try check(rc, "connecting to \(options.host):\(options.port)")
            }
            started = true
        }
    }

    /// Subscribes now (if connected) and after every reconnect.
    public func subscribe(_ topic: String, qos: Int32 = 1) throws {
        withLock { subscriptions.append((topic, qos)) }
        let rc = mosquitto_subscribe_v5(mosq, nil, topic, qos, 0, nil)
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
        if rc != MOSQ_ERR_SUCCESS.rawValue && rc != MOSQ_ERR_NO_CONN.rawValue { try check(rc, "publishing to \(topic)") }
        return mid
    }

    /// Disconnects cleanly (no will) and stops the network thread.
    public func stop() {
        let wasStarted = withLock { () -> Bool in
            let s = started
            started = false
            return s
        }
        guard wasStarted else { return }
        mosquitto_disconnect_v5(mosq, 0, nil)
        mosquitto_loop_stop(mosq, false)
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
