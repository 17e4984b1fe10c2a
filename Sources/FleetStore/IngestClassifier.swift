import FleetCore

/// Where an MQTT message (or captured line) goes, decided from its topic and payload alone.
/// Shared by live MQTT ingest and `ingest --file`, so both take exactly the same path.
public enum IngestClassifier {
    public enum Route: Equatable, Sendable {
        /// `fleet/<id>/telemetry`; `id` is whatever the topic says (validated against the payload).
        case telemetry(topicDeviceID: String)
        /// `fleet/<id>/status`
        case status(deviceID: String)
        case other
    }

    public static func route(_ topic: String) -> Route {
        // Exactly three levels, `fleet/<id>/<kind>` (the id may be empty: the decoder says so).
        var topic = topic
        return topic.withUTF8 { b -> Route in
            let slash = UInt8(ascii: "/")
            guard b.count > 6, b[0] == UInt8(ascii: "f"), b[1] == UInt8(ascii: "l"), b[2] == UInt8(ascii: "e"),
                  b[3] == UInt8(ascii: "e"), b[4] == UInt8(ascii: "t"), b[5] == slash,
                  let end = b[6...].firstIndex(of: slash) else { return .other }
            let kind = UnsafeBufferPointer(rebasing: b[(end + 1)...])
            let id = { String(decoding: UnsafeBufferPointer(rebasing: b[6..<end]), as: UTF8.self) }
            if kind.elementsEqual("telemetry".utf8) { return .telemetry(topicDeviceID: id()) }
            if kind.elementsEqual("status".utf8) { return .status(deviceID: id()) }
            return .other
        }
    }

    /// Decodes a telemetry payload into what the store writes: the message, or a quarantine entry.
    public static func classify(topic: String, topicDeviceID: String, payload: UnsafeRawBufferPointer, receivedMs: Int64) -> IngestItem {
        var labels = LabelCache()
        return classify(topic: topic, topicDeviceID: topicDeviceID, payload: payload, receivedMs: receivedMs, labels: &labels)
    }

    /// As above, sharing label strings with earlier messages through `labels` (one per thread).
    public static func classify(
        topic: String, topicDeviceID: String, payload: UnsafeRawBufferPointer, receivedMs: Int64, labels: inout LabelCache
    ) -> IngestItem {
        switch TelemetryDecoder.decode(payload, receivedAtMs: receivedMs, topicDeviceID: topicDeviceID, labels: &labels) {
        case .success(let m):
            return .telemetry(m, receivedMs: receivedMs)
        case .failure(let r):
            return .rejected(QuarantineEntry(
                receivedMs: receivedMs, topic: topic, deviceID: topicDeviceID.isEmpty ? nil : topicDeviceID,
                reason: r.reason, detail: r.detail, payload: Array(payload.prefix(QuarantineEntry.maxPayloadBytes))))
        }
    }

    /// A status payload `{"state":"online"|"offline","ts_ms":N}`; nil when malformed.
    public static func parseStatus(_ payload: [UInt8]) -> (online: Bool, tsMs: Int64)? {
        // Tiny and fixed: a strict scan is simpler than a general parser.
        let text = String(decoding: payload, as: UTF8.self).filter { !$0.isWhitespace }
        let online: Bool
        if text.contains("\"state\":\"online\"") { online = true } else if text.contains("\"state\":\"offline\"") { online = false } else { return nil }
        guard let r = text.range(of: "\"ts_ms\":") else { return nil }
        let digits = text[r.upperBound...].prefix { $0.isNumber }
        guard let ts = Int64(digits) else { return nil }
        return (online, ts)
    }
}
