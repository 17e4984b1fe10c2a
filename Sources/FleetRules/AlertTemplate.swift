import Foundation

/// The small template language of annotations: `{{ $value }}`, `{{ $labels.model_version }}`,
/// pipes `{{ $value | percent }}` / `| humanize` / `| humanizePercentage`, and
/// `{{ printf "%.3f" $value }}`. Label values come from devices: they are inserted as text
/// only (no further expansion).
public enum AlertTemplate {
    static let functions: Set<String> = ["percent", "humanizePercentage", "humanize", "round"]

    /// Renders `text` with `labels` and `value`; unknown expressions render as-is.
    public static func render(_ text: String, labels: [String: String], value: Double?) -> String {
        var out = ""
        var rest = Substring(text)
        while let open = rest.range(of: "{{") {
            out += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].range(of: "}}") else {
                out += rest[open.lowerBound...]
                return out
            }
            let expr = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            out += evaluate(expr, labels: labels, value: value) ?? "{{\(expr)}}"
            rest = rest[close.upperBound...]
        }
        return out + rest
    }

    /// A problem with a template, or nil when every expression is understood.
    public static func check(_ text: String) -> String? {
        var rest = Substring(text)
        while let open = rest.range(of: "{{") {
            guard let close = rest[open.upperBound...].range(of: "}}") else { return "unclosed '{{'" }
            let expr = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            if evaluate(expr, labels: [:], value: 1, checking: true) == nil { return "cannot understand '{{ \(expr) }}'" }
            rest = rest[close.upperBound...]
        }
        return nil
    }

    static func evaluate(_ expr: String, labels: [String: String], value: Double?, checking: Bool = false) -> String? {
        let stages = expr.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        guard let first = stages.first else { return nil }
        var current: Any?
        if first == "$value" {
            current = value
        } else if first.hasPrefix("$labels.") {
            let name = String(first.dropFirst("$labels.".count))
            guard !name.isEmpty else { return nil }
            current = labels[name] ?? (checking ? "" : "")
        } else if first.hasPrefix("printf ") {
            // printf "FORMAT" $value
            let body = first.dropFirst("printf ".count).trimmingCharacters(in: .whitespaces)
            guard body.hasPrefix("\""), let endQuote = body.dropFirst().firstIndex(of: "\"") else { return nil }
            let format = String(body[body.index(after: body.startIndex)..<endQuote])
            let arg = body[body.index(after: endQuote)...].trimmingCharacters(in: .whitespaces)
            guard arg == "$value" else { return nil }
            guard format.filter({ $0 == "%" }).count == 1, format.range(of: #"%[-+ 0#]*[0-9]*(\.[0-9]+)?[fgeFGE]"#, options: .regularExpression) != nil else { return nil }
            current = String(format: format, value ?? .nan)
        } else {
            return nil
        }
        for fn in stages.dropFirst() {
            guard functions.contains(fn) else { return nil }
            guard let v = current as? Double else {
                if current == nil { current = "n/a"; continue }
                return nil
            }
            switch fn {
            case "percent", "humanizePercentage": current = String(format: "%.2f%%", v * 100)
            case "round": current = String(format: "%.0f", v)
            default: current = humanize(v)
            }
        }
        switch current {
        case let d as Double: return format(d)
        case let s as String: return s
        default: return "n/a"
        }
    }

    /// Shortest readable form: up to 4 significant digits.
    static func format(_ v: Double) -> String {
        guard v.isFinite else { return v.isNaN ? "NaN" : (v > 0 ? "+Inf" : "-Inf") }
        if v == v.rounded() && abs(v) < 1e15 { return String(Int64(v)) }
        return String(format: "%.4g", v)
    }

    /// 1234567 -> "1.235M"; 0.000123 -> "123µ".
    static func humanize(_ v: Double) -> String {
        guard v.isFinite, v != 0 else { return format(v) }
        let units: [(Double, String)] = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1, ""), (1e-3, "m"), (1e-6, "µ")]
        for (scale, suffix) in units where abs(v) >= scale {
            return String(format: "%.4g", v / scale) + suffix
        }
        return String(format: "%.4g", v)
    }
}
