/// Prometheus-style durations: `30s`, `5m`, `1h`, `7d`, `1w`, `1y`, `250ms`, and compounds
/// such as `1h30m` (units in decreasing order, each at most once).
public enum PromDuration {
    static let units: [(String, Int64)] = [
        ("y", 365 * 86_400_000), ("w", 7 * 86_400_000), ("d", 86_400_000), ("h", 3_600_000),
        ("m", 60_000), ("s", 1_000), ("ms", 1),
    ]

    /// Milliseconds, or nil when `text` is not a valid duration.
    public static func parseMs(_ text: String) -> Int64? {
        var rest = Substring(text)
        guard !rest.isEmpty else { return nil }
        if rest == "0" { return 0 }
        var total: Int64 = 0
        var lastUnitIndex = -1
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, let n = Int64(digits) else { return nil }
            rest = rest.dropFirst(digits.count)
            // "ms" before "m".
            let unitIndex: Int
            if rest.hasPrefix("ms") { unitIndex = 6 } else if let i = units.firstIndex(where: { rest.hasPrefix($0.0) }) { unitIndex = i } else { return nil }
            guard unitIndex > lastUnitIndex else { return nil }
            lastUnitIndex = unitIndex
            rest = rest.dropFirst(units[unitIndex].0.count)
            let (p, o1) = n.multipliedReportingOverflow(by: units[unitIndex].1)
            let (s, o2) = total.addingReportingOverflow(p)
            guard !o1, !o2 else { return nil }
            total = s
        }
        return total
    }

    /// The shortest compound form (`90000` -> `1m30s`).
    public static func format(_ ms: Int64) -> String {
        guard ms > 0 else { return "0s" }
        var rest = ms
        var out = ""
        for (name, size) in units where rest >= size {
            out += "\(rest / size)\(name)"
            rest %= size
        }
        return out
    }
}

/// Device-supplied text made safe for a terminal line: C0/C1 controls, DEL and Unicode
/// bidirectional overrides become visible escapes (`\x1b`, `\u{202e}`), so a hostile string
/// can neither move the cursor nor retitle the window nor reorder what follows it.
public enum TerminalText {
    public static func inert(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: needsEscape) else { return s }
        var out = ""
        out.unicodeScalars.reserveCapacity(s.unicodeScalars.count + 8)
        for u in s.unicodeScalars {
            if needsEscape(u) {
                out += u.value < 0x100 ? "\\x" + hex2(u.value) : "\\u{" + String(u.value, radix: 16) + "}"
            } else {
                out.unicodeScalars.append(u)
            }
        }
        return out
    }

    @inline(__always)
    static func needsEscape(_ u: Unicode.Scalar) -> Bool {
        let v = u.value
        return v < 0x20 || (v >= 0x7F && v < 0xA0) || (v >= 0x202A && v <= 0x202E) || (v >= 0x2066 && v <= 0x2069)
            || v == 0x200E || v == 0x200F || v == 0x061C
    }

    private static func hex2(_ v: UInt32) -> String {
        let s = String(v, radix: 16)
        return s.count == 1 ? "0" + s : s
    }
}
