import Foundation

/// A `fleet/<id>/replay` request (CONTRACTS section 2): `{"from_seq":N,"to_seq":M}`.
public enum ReplayRequest {
    /// Most seqs one request re-sends; a wider range is answered from its start up to this.
    public static let maxMessages = 10_000

    private struct Body: Decodable {
        var from_seq: Int64
        var to_seq: Int64
    }

    /// The requested range, or nil when the payload is not a valid request (1 <= from <= to).
    public static func parse(_ payload: [UInt8]) -> ClosedRange<Int64>? {
        guard let b = try? JSONDecoder().decode(Body.self, from: Data(payload)), b.from_seq >= 1, b.to_seq >= b.from_seq else { return nil }
        return b.from_seq...b.to_seq
    }
}

/// The `fleet/<id>/status` payloads (CONTRACTS section 2).
public enum StatusPayload {
    public static func online(tsMs: Int64) -> [UInt8] { Array("{\"state\":\"online\",\"ts_ms\":\(tsMs)}".utf8) }
    public static func offline(tsMs: Int64) -> [UInt8] { Array("{\"state\":\"offline\",\"ts_ms\":\(tsMs)}".utf8) }
}
