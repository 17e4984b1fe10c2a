/// A strict RFC 8259 scanner over UTF-8 bytes: the lexical layer of the telemetry decoder.
///
/// It validates as it goes (grammar, UTF-8, escapes, surrogate pairs, nesting depth) and hands
/// out tokens that point into the input, so a message decodes with few allocations. Anything
/// that is not strict JSON throws `JSONSyntaxError`; schema questions are the caller's.
/// The cursor borrows the bytes: use it only inside the `withUnsafeBytes` that made it.
struct JSONCursor {
    let base: UnsafePointer<UInt8>
    let end: Int
    var pos: Int = 0
    var depth: Int = 0
    let maxDepth: Int
    /// Reused buffer for strings that contain escapes.
    var scratch: [UInt8] = []

    /// `bytes` must not be empty (its base address must exist).
    init(_ bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
        self.base = bytes.baseAddress!
        self.end = bytes.count
        self.maxDepth = maxDepth
    }

    // MARK: - Basics

    @inline(__always)
    var atEnd: Bool { pos >= end }

    @inline(__always)
    func peek() -> UInt8? { pos < end ? base[pos] : nil }

    @inline(__always)
    mutating func skipWhitespace() {
        while pos < end {
            switch base[pos] {
            case 0x20, 0x0A, 0x0D, 0x09: pos += 1
            default: return
            }
        }
    }

    func fail(_ message: String, at offset: Int? = nil) -> JSONSyntaxError {
        JSONSyntaxError(offset: offset ?? pos, message: message)
    }

    func describeByte(at offset: Int) -> String {
        guard offset < end else { return "end of input" }
        let b = base[offset]
        if b >= 0x21 && b < 0x7f { return "'\(Character(Unicode.Scalar(b)))'" }
        return "byte 0x" + String(b, radix: 16)
    }

    mutating func expect(_ c: UInt8, _ what: StaticString) throws(JSONSyntaxError) {
        guard pos < end, base[pos] == c else {
            throw fail("expected \(what), found \(describeByte(at: pos))")
        }
        pos += 1
    }

    mutating func enterContainer() throws(JSONSyntaxError) {
        depth += 1
        if depth > maxDepth { throw fail("nesting deeper than \(maxDepth) levels") }
    }

    mutating func leaveContainer() { depth -= 1 }

    // MARK: - Objects and arrays

    /// After `{` (or a member): moves to the next key and past its `:`; nil at `}`.
    /// `first` tracks whether a comma is due; `closeOffset` gets the offset of `}`.
    mutating func nextKey(first: inout Bool, closeOffset: inout Int) throws(JSONSyntaxError) -> StringToken? {
        skipWhitespace()
        guard pos < end else { throw fail("unterminated object") }
        if base[pos] == UInt8(ascii: "}") {
            closeOffset = pos
            pos += 1
            return nil
        }
        if !first {
            guard base[pos] == UInt8(ascii: ",") else {
                throw fail("expected ',' or '}' in object, found \(describeByte(at: pos))")
            }
            pos += 1
            skipWhitespace()
        }
        first = false
        guard pos < end, base[pos] == UInt8(ascii: "\"") else {
            throw fail("expected a string key, found \(describeByte(at: pos))")
        }
        let key = try readString()
        skipWhitespace()
        try expect(UInt8(ascii: ":"), "':' after key")
        skipWhitespace()
        return key
    }

    /// After `[` (or an element): moves to the next element; false at `]`.
    mutating func nextElement(first: inout Bool, closeOffset: inout Int) throws(JSONSyntaxError) -> Bool {
        skipWhitespace()
        guard pos < end else { throw fail("unterminated array") }
        if base[pos] == UInt8(ascii: "]") {
            closeOffset = pos
            pos += 1
            return false
        }
        if !first {
            guard base[pos] == UInt8(ascii: ",") else {
                throw fail("expected ',' or ']' in array, found \(describeByte(at: pos))")
            }
            pos += 1
            skipWhitespace()
            if pos < end && base[pos] == UInt8(ascii: "]") { throw fail("trailing comma in array") }
        }
        first = false
        guard pos < end else { throw fail("unterminated array") }
        return true
    }

    /// After the `[` of an array of numbers: how many elements it has, for reserving capacity
    /// (one allocation instead of one per doubling). Only a hint: counts commas up to the
    /// first `]`, at most `limit` + 1; 16 if a string or container comes first.
    func elementCountHint(limit: Int) -> Int {
        var i = pos
        var commas = 0
        var any = false
        while i < end {
            switch base[i] {
            case UInt8(ascii: "]"): return any ? commas + 1 : 0
            case UInt8(ascii: ","): commas += 1; if commas > limit { return limit + 1 }
            case UInt8(ascii: "\""), UInt8(ascii: "["), UInt8(ascii: "{"): return 16
            case 0x20, 0x0A, 0x0D, 0x09: break
            default: any = true
            }
            i += 1
        }
        return 16
    }

    // MARK: - Strings

    /// Reads a string (cursor on its opening quote), validating UTF-8 and escapes.
    mutating func readString() throws(JSONSyntaxError) -> StringToken {
        let open = pos
        pos += 1
        let start = pos
        var hasEscapes = false
        var scalars = 0
        while true {
            // Eight plain ASCII bytes at a time (no quote, backslash, control or non-ASCII byte).
            while pos + 8 <= end {
                let w = UnsafeRawPointer(base + pos).loadUnaligned(as: UInt64.self)
                if JSONCursor.needsAttention(w) { break }
                pos &+= 8
                scalars &+= 8
            }
            guard pos < end else { throw fail("unterminated string", at: open) }
            let b = base[pos]
            if b == UInt8(ascii: "\"") { break }
            if b < 0x20 { throw fail("raw control character 0x\(String(b, radix: 16)) in string") }
            if b == UInt8(ascii: "\\") {
                hasEscapes = true
                try skipEscape()
                scalars += 1
                continue
            }
            if b < 0x80 {
                pos &+= 1
            } else {
                try skipMultibyte(b)
            }
            scalars &+= 1
        }
        let token = StringToken(start: start, end: pos, hasEscapes: hasEscapes, scalarCount: scalars, offset: open)
        pos += 1
        return token
    }

    /// True when any byte of `w` is `"`, `\\`, below 0x20 or above 0x7F (SWAR bit tricks).
    @inline(__always)
    static func needsAttention(_ w: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let quote = w ^ (ones &* 0x22)
        let backslash = w ^ (ones &* 0x5C)
        let hasQuote = (quote &- ones) & ~quote & highs
        let hasBackslash = (backslash &- ones) & ~backslash & highs
        let hasControl = (w &- ones &* 0x20) & ~w & highs
        return (hasQuote | hasBackslash | hasControl | (w & highs)) != 0
    }

    /// Validates one escape sequence (cursor on the backslash).
    private mutating func skipEscape() throws(JSONSyntaxError) {
        guard pos + 1 < end else { throw fail("unterminated escape") }
        switch base[pos + 1] {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
            UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
            pos += 2
        case UInt8(ascii: "u"):
            let u = try hex4(at: pos + 2)
            pos += 6
            if u >= 0xD800 && u <= 0xDBFF {
                guard pos + 1 < end, base[pos] == UInt8(ascii: "\\"), base[pos + 1] == UInt8(ascii: "u") else {
                    throw fail("lone UTF-16 surrogate \\u\(String(u, radix: 16))", at: pos - 6)
                }
                let low = try hex4(at: pos + 2)
                guard low >= 0xDC00 && low <= 0xDFFF else {
                    throw fail("lone UTF-16 surrogate \\u\(String(u, radix: 16))", at: pos - 6)
                }
                pos += 6
            } else if u >= 0xDC00 && u <= 0xDFFF {
                throw fail("lone UTF-16 surrogate \\u\(String(u, radix: 16))", at: pos - 6)
            }
        default:
            throw fail("invalid escape \\\(describeByte(at: pos + 1))")
        }
    }

    private func hex4(at offset: Int) throws(JSONSyntaxError) -> UInt32 {
        guard offset + 4 <= end else { throw fail("truncated \\u escape", at: offset) }
        var v: UInt32 = 0
        for i in 0..<4 {
            let c = base[offset + i]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw fail("invalid hex digit in \\u escape", at: offset + i)
            }
            v = v << 4 | d
        }
        return v
    }

    /// Validates one multi-byte UTF-8 sequence (RFC 3629 table: no overlongs, no surrogates,
    /// nothing above U+10FFFF).
    @inline(__always)
    private mutating func skipMultibyte(_ b0: UInt8) throws(JSONSyntaxError) {
        let need: Int
        var lo: UInt8 = 0x80
        var hi: UInt8 = 0xBF
        switch b0 {
        case 0xC2...0xDF: need = 1
        case 0xE0: need = 2; lo = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: need = 2
        case 0xED: need = 2; hi = 0x9F
        case 0xF0: need = 3; lo = 0x90
        case 0xF1...0xF3: need = 3
        case 0xF4: need = 3; hi = 0x8F
        default: throw fail("invalid UTF-8 byte 0x\(String(b0, radix: 16))")
        }
        guard pos + need < end else { throw fail("truncated UTF-8 sequence") }
        let b1 = base[pos + 1]
        guard b1 >= lo && b1 <= hi else { throw fail("invalid UTF-8 sequence", at: pos) }
        if need >= 2 {
            guard base[pos + 2] & 0xC0 == 0x80 else { throw fail("invalid UTF-8 sequence", at: pos) }
        }
        if need == 3 {
            guard base[pos + 3] & 0xC0 == 0x80 else { throw fail("invalid UTF-8 sequence", at: pos) }
        }
        pos += need + 1
    }

    /// The raw bytes between the quotes (only meaningful when `!token.hasEscapes`).
    @inline(__always)
    func rawBytes(_ t: StringToken) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(start: base + t.start, count: t.end - t.start)
    }

    /// Calls `body` with the unescaped UTF-8 bytes of a string token.
    mutating func withBytes<R>(_ t: StringToken, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        if !t.hasEscapes { return body(rawBytes(t)) }
        unescape(t)
        return scratch.withUnsafeBufferPointer(body)
    }

    /// The string value of a token.
    mutating func string(_ t: StringToken) -> String {
        if !t.hasEscapes { return String(decoding: rawBytes(t), as: UTF8.self) }
        unescape(t)
        return String(decoding: scratch, as: UTF8.self)
    }

    /// The unescaped bytes of a token, as a new array (slow path: duplicate-key bookkeeping).
    mutating func bytes(_ t: StringToken) -> [UInt8] {
        withBytes(t) { Array($0) }
    }

    /// Unescapes into `scratch`. The token was validated by `readString`.
    private mutating func unescape(_ t: StringToken) {
        scratch.removeAll(keepingCapacity: true)
        var i = t.start
        while i < t.end {
            let b = base[i]
            guard b == UInt8(ascii: "\\") else {
                scratch.append(b)
                i += 1
                continue
            }
            let e = base[i + 1]
            switch e {
            case UInt8(ascii: "b"): scratch.append(0x08); i += 2
            case UInt8(ascii: "f"): scratch.append(0x0C); i += 2
            case UInt8(ascii: "n"): scratch.append(0x0A); i += 2
            case UInt8(ascii: "r"): scratch.append(0x0D); i += 2
            case UInt8(ascii: "t"): scratch.append(0x09); i += 2
            case UInt8(ascii: "u"):
                var u = (try? hex4(at: i + 2)) ?? 0xFFFD
                i += 6
                if u >= 0xD800 && u <= 0xDBFF {
                    let low = (try? hex4(at: i + 2)) ?? 0xDC00
                    u = 0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00)
                    i += 6
                }
                appendUTF8(u)
            default: scratch.append(e); i += 2  // " \ /
            }
        }
    }

    private mutating func appendUTF8(_ u: UInt32) {
        switch u {
        case 0..<0x80:
            scratch.append(UInt8(u))
        case 0x80..<0x800:
            scratch.append(UInt8(0xC0 | (u >> 6)))
            scratch.append(UInt8(0x80 | (u & 0x3F)))
        case 0x800..<0x10000:
            scratch.append(UInt8(0xE0 | (u >> 12)))
            scratch.append(UInt8(0x80 | ((u >> 6) & 0x3F)))
            scratch.append(UInt8(0x80 | (u & 0x3F)))
        default:
            scratch.append(UInt8(0xF0 | (u >> 18)))
            scratch.append(UInt8(0x80 | ((u >> 12) & 0x3F)))
            scratch.append(UInt8(0x80 | ((u >> 6) & 0x3F)))
            scratch.append(UInt8(0x80 | (u & 0x3F)))
        }
    }

    // MARK: - Numbers

    /// Reads a number (cursor on `-` or a digit) with the strict JSON grammar.
    mutating func readNumber() throws(JSONSyntaxError) -> NumberToken {
        let start = pos
        var negative = false
        if base[pos] == UInt8(ascii: "-") {
            negative = true
            pos += 1
        }
        var mantissa: UInt64 = 0
        var significant = 0
        var exponent = 0
        var lostNonZero = false
        var integral = true

        @inline(__always) func digit(_ d: UInt64, fraction: Bool) {
            if mantissa == 0 && d == 0 {
                // leading zero: contributes nothing
            } else if significant < 19 {
                mantissa = mantissa &* 10 &+ d
                significant += 1
            } else {
                exponent += 1
                if d != 0 { lostNonZero = true }
            }
            if fraction { exponent -= 1 }
        }

        guard pos < end else { throw fail("truncated number") }
        let first = base[pos]
        if first == UInt8(ascii: "0") {
            pos += 1
            if pos < end, base[pos] >= UInt8(ascii: "0") && base[pos] <= UInt8(ascii: "9") {
                throw fail("leading zero in number", at: start)
            }
        } else if first >= UInt8(ascii: "1") && first <= UInt8(ascii: "9") {
            while pos < end, base[pos] >= UInt8(ascii: "0") && base[pos] <= UInt8(ascii: "9") {
                digit(UInt64(base[pos] - UInt8(ascii: "0")), fraction: false)
                pos += 1
            }
        } else {
            throw fail("invalid number", at: start)
        }
        if pos < end && base[pos] == UInt8(ascii: ".") {
            integral = false
            pos += 1
            let fracStart = pos
            while pos < end, base[pos] >= UInt8(ascii: "0") && base[pos] <= UInt8(ascii: "9") {
                digit(UInt64(base[pos] - UInt8(ascii: "0")), fraction: true)
                pos += 1
            }
            if pos == fracStart { throw fail("digits expected after '.'", at: start) }
        }
        if pos < end && (base[pos] == UInt8(ascii: "e") || base[pos] == UInt8(ascii: "E")) {
            integral = false
            pos += 1
            var expNegative = false
            if pos < end && (base[pos] == UInt8(ascii: "+") || base[pos] == UInt8(ascii: "-")) {
                expNegative = base[pos] == UInt8(ascii: "-")
                pos += 1
            }
            let expStart = pos
            var e = 0
            while pos < end, base[pos] >= UInt8(ascii: "0") && base[pos] <= UInt8(ascii: "9") {
                if e < 1_000_000 { e = e * 10 + Int(base[pos] - UInt8(ascii: "0")) }
                pos += 1
            }
            if pos == expStart { throw fail("digits expected in exponent", at: start) }
            exponent += expNegative ? -e : e
        }
        return NumberToken(
            start: start, end: pos, negative: negative, mantissa: mantissa, exponent: exponent,
            lostNonZero: lostNonZero, literalInteger: integral)
    }

    /// The Double value of a number token (exact fast path, else the standard library's parser).
    func double(_ n: NumberToken) -> Double {
        if !n.lostNonZero && n.mantissa < (1 << 53) && n.exponent >= -22 && n.exponent <= 22 {
            var v = Double(n.mantissa)
            if n.exponent >= 0 { v *= NumberToken.powersOf10[n.exponent] } else { v /= NumberToken.powersOf10[-n.exponent] }
            return n.negative ? -v : v
        }
        let text = String(decoding: UnsafeBufferPointer(start: base + n.start, count: n.end - n.start), as: UTF8.self)
        return Double(text) ?? .nan
    }

    // MARK: - Literals and generic values

    mutating func readLiteral() throws(JSONSyntaxError) -> Bool? {
        func match(_ word: StaticString) -> Bool {
            let n = word.utf8CodeUnitCount
            guard pos + n <= end else { return false }
            let w = word.utf8Start
            for i in 0..<n where base[pos + i] != w[i] { return false }
            return true
        }
        if match("true") { pos += 4; return true }
        if match("false") { pos += 5; return false }
        if match("null") { pos += 4; return nil }
        throw fail("unexpected \(describeByte(at: pos))")
    }

    /// Skips one value of any kind (cursor on its first byte), validating it completely:
    /// grammar, depth, UTF-8 and duplicate keys (compared after unescaping).
    mutating func skipValue() throws(JSONSyntaxError) {
        guard pos < end else { throw fail("value expected, found end of input") }
        switch base[pos] {
        case UInt8(ascii: "{"):
            try enterContainer()
            pos += 1
            var first = true
            var close = 0
            var keys: [[UInt8]] = []
            var keySet: Set<[UInt8]> = []
            while let key = try nextKey(first: &first, closeOffset: &close) {
                let k = bytes(key)
                if keys.count < 16 {
                    if keys.contains(k) { throw fail("duplicate key \(quoted(k))", at: key.offset) }
                    keys.append(k)
                    if keys.count == 16 { keySet = Set(keys) }
                } else if !keySet.insert(k).inserted {
                    throw fail("duplicate key \(quoted(k))", at: key.offset)
                }
                try skipValue()
            }
            leaveContainer()
        case UInt8(ascii: "["):
            try enterContainer()
            pos += 1
            var first = true
            var close = 0
            while try nextElement(first: &first, closeOffset: &close) {
                try skipValue()
            }
            leaveContainer()
        case UInt8(ascii: "\""):
            _ = try readString()
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            _ = try readNumber()
        default:
            _ = try readLiteral()
        }
    }

    /// A key for a human message, inert (escapes shown as Swift would print them).
    func quoted(_ bytes: [UInt8]) -> String {
        let s = String(decoding: bytes.prefix(64), as: UTF8.self)
        return "\"" + s.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 && $0.value < 0x7f ? String($0) : $0.escaped(asASCII: true) }.joined() + "\""
    }
}

/// Where a string sits in the input. `offset` is its opening quote.
struct StringToken {
    var start: Int
    var end: Int
    var hasEscapes: Bool
    /// Unicode code points after unescaping.
    var scalarCount: Int
    var offset: Int
}

/// A number as read: `±mantissa × 10^exponent` exactly, unless more than 19 significant digits
/// were seen (`lostNonZero` then says a nonzero digit was dropped).
struct NumberToken {
    var start: Int
    var end: Int
    var negative: Bool
    var mantissa: UInt64
    var exponent: Int
    var lostNonZero: Bool
    /// Written without fraction or exponent.
    var literalInteger: Bool

    static let powersOf10: [Double] = (0...22).map { e in
        var v = 1.0
        for _ in 0..<e { v *= 10 }
        return v
    }

    /// The exact integer value, if the number is integral and fits in Int64 (JSON Schema's
    /// "integer": `3.0` and `3e0` are integers).
    var int64: Int64? {
        if lostNonZero { return nil }  // > 19 significant digits: too big or not integral
        var m = mantissa
        var e = exponent
        if m == 0 { return 0 }
        while e < 0 && m % 10 == 0 {
            m /= 10
            e += 1
        }
        if e < 0 { return nil }
        while e > 0 {
            let (r, o) = m.multipliedReportingOverflow(by: 10)
            if o { return nil }
            m = r
            e -= 1
        }
        if negative {
            if m <= UInt64(Int64.max) { return -Int64(m) }
            return m == UInt64(Int64.max) + 1 ? Int64.min : nil
        }
        return m <= UInt64(Int64.max) ? Int64(m) : nil
    }
}

struct JSONSyntaxError: Error {
    var offset: Int
    var message: String
}
