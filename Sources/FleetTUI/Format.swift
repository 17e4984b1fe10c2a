/// Number, time and duration formatting for cells: short, fixed-precision, and "-" for a value
/// that cannot be computed (never 0 in its place). Pure: times are parameters.
public enum Format {
    public static let missing = "-"

    /// `0.99623` -> `99.62%`.
    public static func percent(_ x: Double?, digits: Int = 2) -> String {
        guard let x, x.isFinite else { return missing }
        return fixed(x * 100, digits) + "%"
    }

    /// Milliseconds with precision that shrinks as they grow: `1.23`, `20.1`, `350`.
    public static func ms(_ x: Double?) -> String {
        guard let x, x.isFinite else { return missing }
        if x < 10 { return fixed(x, 2) }
        if x < 100 { return fixed(x, 1) }
        return fixed(x, 0)
    }

    /// A plain decimal with `digits` after the point (no locale, no exponent).
    public static func fixed(_ x: Double?, _ digits: Int) -> String {
        guard let x, x.isFinite else { return missing }
        var scale = 1.0
        for _ in 0..<max(0, digits) { scale *= 10 }
        let scaled = (abs(x) * scale).rounded()
        guard scaled < 9e15 else { return x < 0 ? "-inf" : "inf" }
        let n = Int64(scaled)
        let neg = x < 0 && n != 0
        var intPart = String(n / Int64(scale))
        if neg { intPart = "-" + intPart }
        guard digits > 0 else { return intPart }
        var frac = String(n % Int64(scale))
        while frac.count < digits { frac = "0" + frac }
        return intPart + "." + frac
    }

    /// `12345` -> `12,345`.
    public static func count(_ n: Int64) -> String {
        let s = String(n.magnitude)
        var out = ""
        for (i, c) in s.enumerated() {
            if i > 0 && (s.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return n < 0 ? "-" + out : out
    }

    /// `1234` -> `1.2k`, `5600000` -> `5.6M`; below 1000 as is (one decimal below 10).
    public static func compact(_ x: Double?) -> String {
        guard let x, x.isFinite else { return missing }
        let a = abs(x)
        let sign = x < 0 ? "-" : ""
        if a < 10 { return sign + (a == a.rounded() ? fixed(a, 0) : fixed(a, 1)) }
        if a < 1000 { return sign + fixed(a, 0) }
        for (limit, unit) in [(1e6, "k"), (1e9, "M"), (1e12, "G")] where a < limit {
            let v = a / (limit / 1000)
            return sign + (v < 10 ? fixed(v, 1) : fixed(v, 0)) + unit
        }
        return sign + fixed(a / 1e12, 0) + "T"
    }

    /// The age of something, k9s style: `42s`, `7m`, `3h`, `12d`; `-` when unknown.
    public static func age(_ ms: Int64?) -> String {
        guard let ms else { return missing }
        let s = max(0, ms) / 1000
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m" }
        if s < 86_400 { return "\(s / 3600)h" }
        return "\(s / 86_400)d"
    }

    /// A duration with two units: `45s`, `12m30s`, `3h05m`, `2d04h`.
    public static func duration(_ ms: Int64?) -> String {
        guard let ms else { return missing }
        let s = max(0, ms) / 1000
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(two(s % 60))s" }
        if s < 86_400 { return "\(s / 3600)h\(two(s % 3600 / 60))m" }
        return "\(s / 86_400)d\(two(s % 86_400 / 3600))h"
    }

    /// UTC wall time `12:04:05Z`.
    public static func clock(_ ms: Int64) -> String {
        let (_, _, _, h, m, s) = civil(ms)
        return pad2(h) + ":" + pad2(m) + ":" + pad2(s) + "Z"
    }

    /// UTC `2025-11-29 12:04:05Z`.
    public static func dateTime(_ ms: Int64) -> String {
        let (y, mo, d, h, m, s) = civil(ms)
        return "\(y)-" + pad2(mo) + "-" + pad2(d) + " " + pad2(h) + ":" + pad2(m) + ":" + pad2(s) + "Z"
    }

    /// UTC `11-29 12:04:05` (timeline rows).
    public static func shortDateTime(_ ms: Int64) -> String {
        let (_, mo, d, h, m, s) = civil(ms)
        return pad2(mo) + "-" + pad2(d) + " " + pad2(h) + ":" + pad2(m) + ":" + pad2(s)
    }

    private static func pad2(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }

    /// Civil UTC date and time of epoch milliseconds (Howard Hinnant's days-to-civil).
    static func civil(_ ms: Int64) -> (Int64, Int64, Int64, Int64, Int64, Int64) {
        let secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000
        let days = secs >= 0 ? secs / 86_400 : (secs - 86_399) / 86_400
        let rem = secs - days * 86_400
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        return (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
    }
}
