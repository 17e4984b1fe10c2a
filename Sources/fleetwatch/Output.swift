import FleetCore

/// Text output helpers. Every device-supplied string passes `TerminalText.inert` before it is
/// printed as table or CSV (JSON escapes control characters itself).
enum Output {
    /// A plain table: left-aligned text, right-aligned numbers, two spaces between columns.
    static func table(_ header: [String], _ rows: [[String]], numericFrom: Int = Int.max) -> String {
        let cells = ([header] + rows).map { $0.map(TerminalText.inert) }
        var widths = [Int](repeating: 0, count: header.count)
        for r in cells { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        var out = ""
        for r in cells {
            var line = ""
            for (i, c) in r.enumerated() where i < widths.count {
                let pad = String(repeating: " ", count: widths[i] - c.count)
                line += i >= numericFrom ? pad + c : c + (i == r.count - 1 ? "" : pad)
                if i < r.count - 1 { line += "  " }
            }
            while line.hasSuffix(" ") { line.removeLast() }
            out += line + "\n"
        }
        return out
    }

    /// RFC 4180 CSV; cells with a comma, quote or line break are quoted. Control characters are
    /// made inert (use --format json for exact values).
    static func csv(_ header: [String], _ rows: [[String]]) -> String {
        func cell(_ s: String) -> String {
            let t = TerminalText.inert(s)
            return t.contains(where: { $0 == "," || $0 == "\"" }) ? "\"" + t.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : t
        }
        return ([header] + rows).map { $0.map(cell).joined(separator: ",") }.joined(separator: "\n") + "\n"
    }

    static func number(_ v: Double?, digits: Int = 3) -> String {
        guard let v else { return "-" }
        return String(format: "%.\(digits)f", v)
    }

    static func percent(_ v: Double?, digits: Int = 2) -> String {
        guard let v else { return "-" }
        return String(format: "%.\(digits)f%%", v * 100)
    }
}

extension JSONWriter {
    mutating func key(_ k: StaticString) {
        if let last = out.last, last != UInt8(ascii: "{") && last != UInt8(ascii: "[") { raw(",") }
        raw("\""); raw(k); raw("\":")
    }

    mutating func key(_ k: String) {
        if let last = out.last, last != UInt8(ascii: "{") && last != UInt8(ascii: "[") { raw(",") }
        string(k); raw(":")
    }

    mutating func optionalDouble(_ v: Double?) {
        if let v, v.isFinite { double(v) } else { raw("null") }
    }

    mutating func optionalTime(_ ms: Int64?) {
        if let ms { string(rfc3339(ms)) } else { raw("null") }
    }

    /// A comma before the next array element (not before the first).
    mutating func element() {
        if let last = out.last, last != UInt8(ascii: "[") { raw(",") }
    }

    var text: String { String(decoding: out, as: UTF8.self) }
}

import Foundation
