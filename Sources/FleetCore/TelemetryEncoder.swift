/// Writes a `TelemetryMessage` as compact contract JSON (the inverse of `TelemetryDecoder`).
///
/// Used by the agent and simulator on the publish path, so it appends bytes directly instead of
/// going through Foundation. Numbers use Swift's shortest round-trip form; strings are escaped
/// per RFC 8259 (control characters as `\u00XX`). A v1 message omits v2-only members.
public enum TelemetryEncoder {
    public static func encode(_ m: TelemetryMessage) -> [UInt8] {
        var w = JSONWriter()
        w.out.reserveCapacity(256 + m.records.count * 200)
        w.raw("{\"schema\":")
        w.string(m.schemaVersion == 2 ? TelemetryDecoder.schemaV2 : TelemetryDecoder.schemaV1)
        w.raw(",\"device_id\":"); w.string(m.deviceID)
        w.raw(",\"seq\":"); w.int(m.seq)
        w.raw(",\"sent_at_ms\":"); w.int(m.sentAtMs)
        w.raw(",\"device\":{\"sku\":"); w.string(m.device.sku)
        w.raw(",\"firmware\":"); w.string(m.device.firmware)
        w.raw(",\"agent\":"); w.string(m.device.agent)
        if m.schemaVersion == 2 { w.raw(",\"accelerator\":"); w.string(m.device.accelerator) }
        w.raw("},\"model\":{\"name\":"); w.string(m.model.name)
        w.raw(",\"version\":"); w.string(m.model.version)
        w.raw(",\"sha256\":"); w.string(m.model.sha256)
        w.raw("},\"records\":[")
        for (i, r) in m.records.enumerated() {
            if i > 0 { w.raw(",") }
            record(r, v2: m.schemaVersion == 2, &w)
        }
        w.raw("]}")
        return w.out
    }

    public static func encodeString(_ m: TelemetryMessage) -> String {
        String(decoding: encode(m), as: UTF8.self)
    }

    static func record(_ r: TelemetryRecord, v2: Bool, _ w: inout JSONWriter) {
        w.raw("{\"kind\":\""); w.raw(r.kind.rawValue); w.raw("\",\"ts_ms\":"); w.int(r.tsMs)
        switch r {
        case .session(let s):
            w.raw(",\"session_id\":"); w.string(s.sessionID)
            w.raw(",\"status\":\""); w.raw(s.status.rawValue)
            w.raw("\",\"duration_ms\":"); w.int(s.durationMs)
            w.raw(",\"errors\":"); w.int(s.errors)
        case .inference(let x):
            w.raw(",\"window_ms\":"); w.int(x.windowMs)
            w.raw(",\"count\":"); w.int(x.count)
            w.raw(",\"errors\":"); w.int(x.errors)
            w.raw(",\"latency_us\":"); sketch(x.latencyUs, &w)
            w.raw(",\"confidence_hist\":["); w.ints(x.confidenceHist); w.raw("]")
            w.raw(",\"class_counts\":{")
            for (i, c) in x.classCounts.enumerated() {
                if i > 0 { w.raw(",") }
                w.string(c.name); w.raw(":"); w.int(c.count)
            }
            w.raw("}")
            if v2 && !x.inputStats.isEmpty {
                w.raw(",\"input_stats\":[")
                for (i, f) in x.inputStats.enumerated() {
                    if i > 0 { w.raw(",") }
                    w.raw("{\"name\":"); w.string(f.name)
                    w.raw(",\"mean\":"); w.double(f.mean)
                    w.raw(",\"std\":"); w.double(f.std)
                    w.raw(",\"min\":"); w.double(f.min)
                    w.raw(",\"max\":"); w.double(f.max)
                    w.raw("}")
                }
                w.raw("]")
            }
        case .resources(let x):
            w.raw(",\"cpu_pct\":"); w.double(x.cpuPct)
            w.raw(",\"mem_mb\":"); w.double(x.memMB)
            w.raw(",\"temp_c\":"); w.double(x.tempC)
            w.raw(",\"throttle_events\":"); w.int(x.throttleEvents)
        case .error(let e):
            w.raw(",\"code\":"); w.string(e.code)
            w.raw(",\"message\":"); w.string(e.message)
        case .deploy(let d):
            w.raw(",\"from_version\":"); w.string(d.fromVersion)
            w.raw(",\"to_version\":"); w.string(d.toVersion)
            w.raw(",\"result\":\""); w.raw(d.result.rawValue); w.raw("\"")
        }
        w.raw("}")
    }

    /// The contract's JSON form of a sketch.
    static func sketch(_ s: DDSketch, _ w: inout JSONWriter) {
        w.raw("{\"count\":"); w.int(s.count)
        w.raw(",\"sum\":"); w.double(s.sum)
        w.raw(",\"min\":"); w.double(s.min)
        w.raw(",\"max\":"); w.double(s.max)
        w.raw(",\"keys\":[")
        for (i, k) in s.keys.enumerated() {
            if i > 0 { w.raw(",") }
            w.int(Int64(k))
        }
        w.raw("],\"counts\":["); w.ints(s.counts); w.raw("]}")
    }

    public static func encodeSketch(_ s: DDSketch) -> String {
        var w = JSONWriter()
        sketch(s, &w)
        return String(decoding: w.out, as: UTF8.self)
    }
}

/// Appends JSON tokens to a byte buffer.
public struct JSONWriter {
    public var out: [UInt8] = []

    public init() {}

    @inline(__always)
    public mutating func raw(_ s: StaticString) {
        out.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    @inline(__always)
    public mutating func raw(_ s: String) { out.append(contentsOf: s.utf8) }

    public mutating func int(_ v: Int64) {
        if v >= 0 && v < 10 {
            out.append(UInt8(v) + 0x30)
            return
        }
        var buf: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: enough for Int64.min
        withUnsafeMutableBytes(of: &buf) { b in
            var i = 24
            var m = v.magnitude
            repeat {
                i -= 1
                b[i] = UInt8(m % 10) + 0x30
                m /= 10
            } while m > 0
            if v < 0 {
                i -= 1
                b[i] = UInt8(ascii: "-")
            }
            out.append(contentsOf: b[i..<24])
        }
    }

    public mutating func ints(_ vs: [Int64]) {
        for (i, v) in vs.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            int(v)
        }
    }

    /// Finite doubles only (the schema bounds every number); non-finite values are written as 0.
    public mutating func double(_ v: Double) {
        guard v.isFinite else {
            out.append(0x30)
            return
        }
        if v == v.rounded(), abs(v) < 1e15 {
            int(Int64(v))
            return
        }
        out.append(contentsOf: v.description.utf8)
    }

    public mutating func string(_ s: String) {
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(UInt8(ascii: "\\")); out.append(b)
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\")); out.append(b)
            case 0x0A: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "r"))
            case 0x09: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "t"))
            case 0..<0x20, 0x7F:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 0xF)]])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
