/// The `/` filter: whitespace-separated terms, all of which must match.
///
/// - `text`: case-insensitive substring of any of the row's fields;
/// - `label=value`: that field equals `value` (case-insensitive); `label` is a column id or alias;
/// - `!term`: the term must not match.
///
/// Pure; parsing reports unknown labels so the UI can say so instead of showing an empty table.
public struct RowFilter: Equatable, Sendable {
    public enum Term: Equatable, Sendable {
        case text(String)
        case field(String, String)
    }

    public var terms: [(negated: Bool, term: Term)]

    public static func == (a: RowFilter, b: RowFilter) -> Bool {
        a.terms.count == b.terms.count && zip(a.terms, b.terms).allSatisfy { $0.negated == $1.negated && $0.term == $1.term }
    }

    public var isEmpty: Bool { terms.isEmpty }

    public struct ParseError: Error, Equatable, Sendable {
        public var message: String
    }

    /// Parses `text` against the fields rows offer (`fields` maps every accepted label, aliases
    /// included, to a canonical field name).
    public static func parse(_ text: String, fields: [String: String]) -> Result<RowFilter, ParseError> {
        var terms: [(Bool, Term)] = []
        for raw in text.split(whereSeparator: { $0 == " " || $0 == "\t" }) {
            var t = Substring(raw)
            var negated = false
            while t.first == "!" {
                negated.toggle()
                t = t.dropFirst()
            }
            guard !t.isEmpty else { continue }
            if let eq = t.firstIndex(of: "=") {
                let label = asciiLower(t[..<eq])
                let value = asciiLower(t[t.index(after: eq)...])
                guard let field = fields[label] else {
                    let known = Set(fields.values).sorted().joined(separator: ", ")
                    return .failure(ParseError(message: "unknown filter label '\(label)': use one of \(known)"))
                }
                terms.append((negated, .field(field, value)))
            } else {
                terms.append((negated, .text(asciiLower(t))))
            }
        }
        return .success(RowFilter(terms: terms))
    }

    /// Whether a row matches. `value(field)` gives a field's text; `all` every searchable text.
    public func matches(value: (String) -> String, all: [String]) -> Bool {
        for (negated, term) in terms {
            let hit: Bool
            switch term {
            case .text(let s):
                hit = all.contains { Self.containsFolded($0, s) }
            case .field(let f, let v):
                hit = Self.equalsFolded(value(f), v)
            }
            if hit == negated { return false }
        }
        return true
    }

    /// Case-insensitive (ASCII folding; other scalars compared as is) substring test without
    /// allocating for the common ASCII case.
    static func containsFolded(_ haystack: String, _ needleLower: String) -> Bool {
        if needleLower.isEmpty { return true }
        let h = Array(haystack.utf8)
        let n = Array(needleLower.utf8)
        guard n.count <= h.count else { return false }
        outer: for i in 0...(h.count - n.count) {
            for j in 0..<n.count where lower(h[i + j]) != n[j] { continue outer }
            return true
        }
        return false
    }

    static func equalsFolded(_ a: String, _ bLower: String) -> Bool {
        let x = a.utf8
        let y = bLower.utf8
        guard x.count == y.count else { return false }
        return zip(x, y).allSatisfy { lower($0) == $1 }
    }

    /// Lowercases ASCII letters only, matching how rows are compared.
    static func asciiLower(_ s: Substring) -> String {
        String(decoding: s.utf8.map(lower), as: UTF8.self)
    }

    @inline(__always)
    static func lower(_ b: UInt8) -> UInt8 { b >= 65 && b <= 90 ? b + 32 : b }
}
