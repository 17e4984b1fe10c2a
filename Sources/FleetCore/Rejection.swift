/// Why a message was refused. The machine-readable form (`description`) is what quarantine
/// stores and `schema validate` prints; the family (before any `:`) is what metrics count.
public enum RejectionReason: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// Larger than `TelemetryDecoder.maxMessageBytes`.
    case oversize
    /// Not strict RFC 8259 JSON (also: duplicate keys, invalid UTF-8, lone surrogates, depth > 64).
    case invalidJSON
    /// `schema` is a string naming no version this build knows.
    case unsupportedSchema
    /// Breaks the schema at the RFC 6901 JSON pointer.
    case schemaViolation(pointer: String)
    /// The topic's device id differs from the payload's (spoofing).
    case deviceIDMismatch
    /// A timestamp more than 24 h ahead of the receiver's clock, at the pointer.
    case futureTimestamp(pointer: String)
    /// The device exceeded its message rate (ingest only).
    case rateLimited

    public var family: String {
        switch self {
        case .oversize: "oversize"
        case .invalidJSON: "invalid_json"
        case .unsupportedSchema: "unsupported_schema"
        case .schemaViolation: "schema_violation"
        case .deviceIDMismatch: "device_id_mismatch"
        case .futureTimestamp: "future_timestamp"
        case .rateLimited: "rate_limited"
        }
    }

    public var description: String {
        switch self {
        case .schemaViolation(let p): "schema_violation:\(p)"
        case .futureTimestamp(let p): "future_timestamp:\(p)"
        default: family
        }
    }

    /// Parses `description` back (for reading quarantine rows).
    public init?(_ text: String) {
        let family: Substring
        let detail: String?
        if let colon = text.firstIndex(of: ":") {
            family = text[..<colon]
            detail = String(text[text.index(after: colon)...])
        } else {
            family = text[...]
            detail = nil
        }
        switch (family, detail) {
        case ("oversize", nil): self = .oversize
        case ("invalid_json", nil): self = .invalidJSON
        case ("unsupported_schema", nil): self = .unsupportedSchema
        case ("schema_violation", let p?): self = .schemaViolation(pointer: p)
        case ("device_id_mismatch", nil): self = .deviceIDMismatch
        case ("future_timestamp", let p?): self = .futureTimestamp(pointer: p)
        case ("rate_limited", nil): self = .rateLimited
        default: return nil
        }
    }
}

/// A refused message: the machine-readable reason and one human line saying what and where.
public struct Rejection: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: RejectionReason
    public var detail: String

    public init(_ reason: RejectionReason, detail: String) {
        self.reason = reason
        self.detail = detail
    }

    public var description: String { detail.isEmpty ? reason.description : "\(reason) (\(detail))" }
}

/// RFC 6901 JSON pointers.
public enum JSONPointer {
    /// Escapes one reference token: `~` as `~0`, `/` as `~1`.
    public static func escape(_ token: String) -> String {
        guard token.utf8.contains(where: { $0 == UInt8(ascii: "~") || $0 == UInt8(ascii: "/") }) else { return token }
        var out = ""
        for ch in token.unicodeScalars {
            switch ch {
            case "~": out += "~0"
            case "/": out += "~1"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out
    }
}
