import FleetCore

/// Text that is safe to hand to the terminal, with its width in columns.
///
/// Every string the TUI draws passes through here (the canvas accepts nothing else), so a
/// device-supplied id, version or error message cannot move the cursor, retitle the window,
/// reorder text (bidi overrides) or hide characters: C0/C1 controls, DEL and bidi controls are
/// escaped by `TerminalText.inert` (`\x1b`), and so is every other scalar the terminal would not
/// print as itself (`\u{200b}`): format characters, unassigned code points, and a combining
/// mark with no base before it. What remains is measured with glibc's widths.
public struct SafeText: Sendable, Equatable, Hashable, ExpressibleByStringLiteral, CustomStringConvertible {
    public let text: String
    public let width: Int

    public init(_ s: String) {
        var (text, width) = Self.sanitize(s)
        if width < 0 { width = 0 }
        self.text = text
        self.width = width
    }

    public init(stringLiteral value: String) { self.init(value) }

    private init(sanitized: String, width: Int) {
        text = sanitized
        self.width = width
    }

    public static let empty = SafeText("")

    public var description: String { text }
    public var isEmpty: Bool { text.isEmpty }

    // MARK: - Sanitising

    /// The inert form of `s` and its width.
    static func sanitize(_ s: String) -> (String, Int) {
        // Fast path: printable ASCII is already inert, one column per byte.
        var ascii = true
        for b in s.utf8 where b < 0x20 || b >= 0x7F {
            ascii = false
            break
        }
        if ascii { return (s, s.utf8.count) }
        let inert = TerminalText.inert(s)
        var out = String.UnicodeScalarView()
        var width = 0
        var hasBase = false
        for u in inert.unicodeScalars {
            let cls = TerminalWidth.classify(u)
            let escape: Bool
            switch cls {
            case .unprintable: escape = true
            case .zero: escape = !hasBase || isFormat(u)
            case .narrow, .wide: escape = isFormat(u)
            }
            if escape {
                for e in "\\u{\(String(u.value, radix: 16))}".unicodeScalars { out.append(e) }
                width += 4 + String(u.value, radix: 16).count
                hasBase = true
                continue
            }
            out.append(u)
            switch cls {
            case .narrow: width += 1; hasBase = true
            case .wide: width += 2; hasBase = true
            case .zero, .unprintable: break
            }
        }
        return (String(out), width)
    }

    /// Invisible format characters (zero-width space and joiners, word joiner, BOM, tags, soft
    /// hyphen, line and paragraph separators): shown escaped so nothing hides in plain sight.
    static func isFormat(_ u: Unicode.Scalar) -> Bool {
        switch u.properties.generalCategory {
        case .format, .lineSeparator, .paragraphSeparator: true
        default: false
        }
    }

    // MARK: - Fitting

    /// At most `columns` wide: cut at a scalar boundary (a wide character that would straddle
    /// the edge is dropped, combining marks stay with their base) and end with `ellipsis`.
    public func truncated(to columns: Int, ellipsis: SafeText = "…") -> SafeText {
        guard width > columns else { return self }
        guard columns > 0 else { return .empty }
        let room = columns - ellipsis.width
        guard room >= 0 else { return SafeText(sanitized: String(repeating: ".", count: columns), width: columns) }
        var out = String.UnicodeScalarView()
        var w = 0
        for u in text.unicodeScalars {
            let c = TerminalWidth.columns(u)
            if w + c > room { break }
            out.append(u)
            w += c
        }
        // Drop a trailing combining run whose base did not fit (cannot happen: a zero-width scalar
        // always fits once its base did), then append the ellipsis.
        return SafeText(sanitized: String(out) + ellipsis.text, width: w + ellipsis.width)
    }

    /// Exactly `columns` wide: truncated with an ellipsis, or padded with spaces on the right
    /// (`alignRight` pads on the left, for numbers).
    public func fitted(to columns: Int, alignRight: Bool = false, ellipsis: SafeText = "…") -> SafeText {
        guard columns > 0 else { return .empty }
        let t = truncated(to: columns, ellipsis: ellipsis)
        let pad = columns - t.width
        guard pad > 0 else { return t }
        let spaces = String(repeating: " ", count: pad)
        return SafeText(sanitized: alignRight ? spaces + t.text : t.text + spaces, width: columns)
    }

    public static func + (a: SafeText, b: SafeText) -> SafeText {
        SafeText(sanitized: a.text + b.text, width: a.width + b.width)
    }

    /// `n` spaces.
    public static func spaces(_ n: Int) -> SafeText {
        SafeText(sanitized: String(repeating: " ", count: max(0, n)), width: max(0, n))
    }
}
