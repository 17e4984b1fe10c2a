/// The line formats of `fleet-agent infer` (CONTRACTS section 7): an input row is
/// `{"input": [numbers...]}` or a bare array (nested arrays are flattened row-major); an
/// output row is `{"outputs": {"<name>": [numbers...], ...}}`.
public enum NDJSONRows {
    /// Parses one input row into `values` (cleared first, capacity kept).
    public static func parseInput(_ line: UnsafeBufferPointer<UInt8>, into values: inout [Float]) throws(InferenceError) {
        values.removeAll(keepingCapacity: true)
        var p = RowParser(bytes: line)
        p.skipSpace()
        switch p.peek {
        case UInt8(ascii: "["):
            try p.array(into: &values)
        case UInt8(ascii: "{"):
            p.pos += 1
            var found = false
            p.skipSpace()
            if p.peek == UInt8(ascii: "}") { throw InferenceError("the object has no \"input\" member") }
            while true {
                p.skipSpace()
                let key = try p.string()
                p.skipSpace()
                try p.expect(UInt8(ascii: ":"))
                p.skipSpace()
                if key == "input" {
                    guard p.peek == UInt8(ascii: "[") else { throw InferenceError("\"input\" must be an array of numbers") }
                    try p.array(into: &values)
                    found = true
                } else {
                    try p.skipValue()
                }
                p.skipSpace()
                if p.peek == UInt8(ascii: ",") { p.pos += 1; continue }
                try p.expect(UInt8(ascii: "}"))
                break
            }
            if !found { throw InferenceError("the object has no \"input\" member") }
        default:
            throw InferenceError("a row must be {\"input\": [numbers...]} or a bare array of numbers")
        }
        p.skipSpace()
        if p.pos < p.bytes.count { throw InferenceError("unexpected text after the row at column \(p.pos + 1)") }
    }

    public static func parseInput(_ line: String) throws(InferenceError) -> [Float] {
        var values: [Float] = []
        let bytes = Array(line.utf8)
        try bytes.withUnsafeBufferPointer { (buf) throws(InferenceError) in try parseInput(buf, into: &values) }
        return values
    }

    /// Formats one output row. Floats print in Swift's shortest round-trip form; integer
    /// outputs (labels, indices) as integers; non-finite values as null (JSON has no NaN).
    public static func formatOutputs(_ outputs: [(info: TensorInfo, values: [Double])]) -> String {
        var s = "{\"outputs\": {"
        for (i, o) in outputs.enumerated() {
            if i > 0 { s += ", " }
            s += "\"" + escape(o.info.name) + "\": ["
            for (j, v) in o.values.enumerated() {
                if j > 0 { s += ", " }
                if !v.isFinite {
                    s += "null"
                } else if o.info.type == .float {
                    s += Float(v).description
                } else if o.info.type == .double {
                    s += v.description
                } else {
                    s += String(Int64(v))
                }
            }
            s += "]"
        }
        return s + "}}"
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where c.value < 0x20:
                let hex = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}

/// A small strict scanner for input rows (numbers, arrays, strings; other values skipped).
private struct RowParser {
    let bytes: UnsafeBufferPointer<UInt8>
    var pos = 0
    var depth = 0

    init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    var peek: UInt8? { pos < bytes.count ? bytes[pos] : nil }

    mutating func skipSpace() {
        while let c = peek, c == 0x20 || c == 0x09 || c == 0x0D || c == 0x0A { pos += 1 }
    }

    mutating func expect(_ c: UInt8) throws(InferenceError) {
        guard peek == c else {
            throw InferenceError("expected '\(Character(Unicode.Scalar(c)))' at column \(pos + 1)")
        }
        pos += 1
    }

    mutating func string() throws(InferenceError) -> String {
        try expect(UInt8(ascii: "\""))
        var out: [UInt8] = []
        while let c = peek {
            pos += 1
            if c == UInt8(ascii: "\"") { return String(decoding: out, as: UTF8.self) }
            if c == UInt8(ascii: "\\") {
                guard let e = peek else { break }
                pos += 1
                switch e {
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"): pos += 4; out.append(UInt8(ascii: "?"))
                default: out.append(e)
                }
            } else {
                out.append(c)
            }
        }
        throw InferenceError("unterminated string")
    }

    /// Appends the numbers of a (possibly nested) array, row-major.
    mutating func array(into values: inout [Float]) throws(InferenceError) {
        depth += 1
        if depth > 16 { throw InferenceError("arrays nested too deeply") }
        try expect(UInt8(ascii: "["))
        skipSpace()
        if peek == UInt8(ascii: "]") { pos += 1; depth -= 1; return }
        while true {
            skipSpace()
            if peek == UInt8(ascii: "[") {
                try array(into: &values)
            } else {
                values.append(try number())
            }
            skipSpace()
            if peek == UInt8(ascii: ",") { pos += 1; continue }
            try expect(UInt8(ascii: "]"))
            depth -= 1
            return
        }
    }

    mutating func number() throws(InferenceError) -> Float {
        let start = pos
        while let c = peek, (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "-") || c == UInt8(ascii: "+")
            || c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E")
        {
            pos += 1
        }
        guard pos > start else {
            if peek == UInt8(ascii: "n") { throw InferenceError("null is not a number (at column \(start + 1))") }
            throw InferenceError("expected a number at column \(start + 1)")
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self)
        guard let v = Float(text), text.first != "+", !text.hasPrefix("."), !text.hasPrefix("-.") else {
            throw InferenceError("'\(text)' is not a number (at column \(start + 1))")
        }
        return v
    }

    mutating func skipValue() throws(InferenceError) {
        depth += 1
        defer { depth -= 1 }
        if depth > 64 { throw InferenceError("values nested too deeply") }
        skipSpace()
        switch peek {
        case UInt8(ascii: "\""): _ = try string()
        case UInt8(ascii: "["):
            pos += 1
            skipSpace()
            if peek == UInt8(ascii: "]") { pos += 1; return }
            while true {
                try skipValue()
                skipSpace()
                if peek == UInt8(ascii: ",") { pos += 1; continue }
                try expect(UInt8(ascii: "]"))
                return
            }
        case UInt8(ascii: "{"):
            pos += 1
            skipSpace()
            if peek == UInt8(ascii: "}") { pos += 1; return }
            while true {
                skipSpace()
                _ = try string()
                skipSpace()
                try expect(UInt8(ascii: ":"))
                try skipValue()
                skipSpace()
                if peek == UInt8(ascii: ",") { pos += 1; continue }
                try expect(UInt8(ascii: "}"))
                return
            }
        default:
            for word in ["true", "false", "null"] where bytes.count - pos >= word.utf8.count
                && zip(bytes[pos...], word.utf8).allSatisfy({ $0 == $1 })
            {
                pos += word.utf8.count
                return
            }
            _ = try number()
        }
    }
}
