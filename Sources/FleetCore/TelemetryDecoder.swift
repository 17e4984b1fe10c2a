/// Decodes and validates one telemetry message in a single pass over its UTF-8 bytes.
///
/// The decoder is specialised to `fleet.telemetry/1` and `/2` (schemas/*.json, docs/schema.md):
/// it checks every schema rule while it parses, builds the normalized `TelemetryMessage`
/// directly (no intermediate tree), and returns the contract's rejection reason otherwise.
/// Pure: the receiver's clock is a parameter.
///
/// Reason precedence (CONTRACTS section 3): `oversize`, `invalid_json`, `unsupported_schema`
/// / `schema_violation`, `device_id_mismatch`, `future_timestamp`. Among schema violations the
/// first in document order wins; a missing member is found at its object's closing brace.
public enum TelemetryDecoder {
    public static let maxMessageBytes = 262_144
    public static let maxDepth = 64
    /// A timestamp further ahead of the receiver's clock than this is `future_timestamp`.
    public static let futureToleranceMs: Int64 = 24 * 3_600_000
    public static let schemaV1 = "fleet.telemetry/1"
    public static let schemaV2 = "fleet.telemetry/2"
    public static let maxRecords = 1000
    public static let maxClasses = 256
    public static let maxInputStats = 64

    /// Decodes `bytes` received at `receivedAtMs` (epoch ms) on a topic naming `topicDeviceID`
    /// (nil when there is no topic, as in `schema validate`).
    public static func decode(
        _ bytes: UnsafeRawBufferPointer, receivedAtMs: Int64, topicDeviceID: String? = nil
    ) -> Result<TelemetryMessage, Rejection> {
        var labels = LabelCache()
        return decode(bytes, receivedAtMs: receivedAtMs, topicDeviceID: topicDeviceID, labels: &labels)
    }

    /// Decodes as above, sharing label strings with earlier messages through `labels` (one
    /// cache per decoding thread, kept from message to message).
    public static func decode(
        _ bytes: UnsafeRawBufferPointer, receivedAtMs: Int64, topicDeviceID: String? = nil,
        labels: inout LabelCache
    ) -> Result<TelemetryMessage, Rejection> {
        guard bytes.count <= maxMessageBytes else {
            return .failure(Rejection(.oversize, detail: "\(bytes.count) bytes, the limit is \(maxMessageBytes)"))
        }
        guard bytes.count > 0 else { return .failure(Rejection(.invalidJSON, detail: "byte 0: empty input")) }
        let buffer = bytes.bindMemory(to: UInt8.self)
        var state = DecoderState(buffer, receivedAtMs: receivedAtMs, tracking: false)
        // Swapped, not copied: the cache's array stays uniquely referenced, so adding to it
        // never copies it.
        swap(&labels, &state.labels)
        let message: TelemetryMessage?
        do {
            message = try state.parseDocument()
            swap(&labels, &state.labels)
        } catch {
            swap(&labels, &state.labels)
            return .failure(Rejection(.invalidJSON, detail: "byte \(error.offset): \(error.message)"))
        }
        if state.violation != nil || state.future != nil {
            // The fast pass keeps no path. Parse again, tracking it, to name the place.
            state = DecoderState(buffer, receivedAtMs: receivedAtMs, tracking: true)
            _ = try? state.parseDocument()
        }
        if state.unsupportedSchema {
            return .failure(Rejection(.unsupportedSchema, detail: "schema \(state.schemaText) is not one of \(schemaV1), \(schemaV2)"))
        }
        if let v = state.violation {
            return .failure(Rejection(.schemaViolation(pointer: v.pointer), detail: v.detail))
        }
        guard let message else {
            return .failure(Rejection(.schemaViolation(pointer: ""), detail: "internal: no message and no violation"))
        }
        if let topicDeviceID, topicDeviceID != message.deviceID {
            return .failure(Rejection(.deviceIDMismatch, detail: "topic names \(inert(topicDeviceID)), payload names \(message.deviceID)"))
        }
        if let f = state.future {
            return .failure(Rejection(.futureTimestamp(pointer: f.pointer), detail: f.detail))
        }
        return .success(message)
    }

    public static func decode(
        _ bytes: [UInt8], receivedAtMs: Int64, topicDeviceID: String? = nil
    ) -> Result<TelemetryMessage, Rejection> {
        bytes.withUnsafeBytes { decode($0, receivedAtMs: receivedAtMs, topicDeviceID: topicDeviceID) }
    }

    public static func decode(
        _ text: String, receivedAtMs: Int64, topicDeviceID: String? = nil
    ) -> Result<TelemetryMessage, Rejection> {
        var copy = text
        return copy.withUTF8 { decode(UnsafeRawBufferPointer($0), receivedAtMs: receivedAtMs, topicDeviceID: topicDeviceID) }
    }

    /// A device-supplied string made safe for a one-line message: printable ASCII kept,
    /// everything else escaped, at most 80 characters.
    static func inert(_ s: String) -> String {
        var out = ""
        for scalar in s.unicodeScalars.prefix(80) {
            if scalar.value >= 0x20 && scalar.value < 0x7f { out.unicodeScalars.append(scalar) } else { out += scalar.escaped(asASCII: true) }
        }
        return out
    }
}

// MARK: - Patterns (ASCII-only, whole string)

enum Pattern {
    @inline(__always) static func isAlnum(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
    }

    /// `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`
    static func deviceID(_ s: UnsafeBufferPointer<UInt8>) -> Bool {
        guard s.count >= 1 && s.count <= 64, isAlnum(s[0]) else { return false }
        for b in s.dropFirst() where !(isAlnum(b) || b == 0x2E || b == 0x5F || b == 0x2D) { return false }
        return true
    }

    /// `^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`: a cohort label value.
    static func label(_ s: UnsafeBufferPointer<UInt8>) -> Bool {
        guard s.count >= 1 && s.count <= 64, isAlnum(s[0]) else { return false }
        for b in s.dropFirst() where !(isAlnum(b) || b == 0x2E || b == 0x5F || b == 0x2D || b == 0x2B) { return false }
        return true
    }

    /// `^[0-9a-f]{64}$`
    static func sha256(_ s: UnsafeBufferPointer<UInt8>) -> Bool {
        guard s.count == 64 else { return false }
        for b in s where !((b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x66)) { return false }
        return true
    }

    /// `^[A-Z][A-Z0-9_]{0,31}$`
    static func errorCode(_ s: UnsafeBufferPointer<UInt8>) -> Bool {
        guard s.count >= 1 && s.count <= 32, s[0] >= 0x41 && s[0] <= 0x5A else { return false }
        for b in s.dropFirst() where !((b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x5F) { return false }
        return true
    }

    static let deviceIDText = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
    static let labelText = "^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$"
    static let sha256Text = "^[0-9a-f]{64}$"
    static let errorCodeText = "^[A-Z][A-Z0-9_]{0,31}$"
}

// MARK: - Decoder state

private enum PathComponent {
    case key(StaticString)
    case index(Int)
}

/// Keys of one closed object (or values of a string enum), matched against unescaped bytes.
/// Names are copied into one flat buffer once, so a lookup compares lengths and bytes only.
private struct KeyTable: Sendable {
    let names: [StaticString]
    private let lengths: [Int]
    private let starts: [Int]
    private let flat: [UInt8]

    init(_ names: [StaticString]) {
        self.names = names
        var lengths: [Int] = []
        var starts: [Int] = []
        var flat: [UInt8] = []
        for n in names {
            starts.append(flat.count)
            lengths.append(n.utf8CodeUnitCount)
            flat.append(contentsOf: UnsafeBufferPointer(start: n.utf8Start, count: n.utf8CodeUnitCount))
        }
        self.lengths = lengths
        self.starts = starts
        self.flat = flat
    }

    @inline(__always)
    func index(of key: UnsafeBufferPointer<UInt8>) -> Int? {
        let n = key.count
        guard let k = key.baseAddress else { return nil }
        return flat.withUnsafeBufferPointer { f -> Int? in
            for i in 0..<lengths.count where lengths[i] == n {
                let s = f.baseAddress! + starts[i]
                var j = 0
                while j < n && s[j] == k[j] { j += 1 }
                if j == n { return i }
            }
            return nil
        }
    }
}

private let topKeys = KeyTable(["schema", "device_id", "seq", "sent_at_ms", "device", "model", "records"])
private let deviceKeys = KeyTable(["sku", "firmware", "agent", "accelerator"])
private let modelKeys = KeyTable(["name", "version", "sha256"])
private let sketchKeys = KeyTable(["count", "sum", "min", "max", "keys", "counts"])
private let statsKeys = KeyTable(["name", "mean", "std", "min", "max"])
private let schemaValues = KeyTable(["fleet.telemetry/1", "fleet.telemetry/2"])
// In the order of each enum's `allCases`.
private let kindValues = KeyTable(["session", "inference", "resources", "error", "deploy"])
private let statusValues = KeyTable(["started", "exited", "crashed", "abnormal"])
private let resultValues = KeyTable(["installed", "rolled_back", "failed"])

/// Every member any record kind may have; each kind allows a subset.
private enum RF: Int, CaseIterable {
    case kind, tsMs, sessionID, status, durationMs, errors, windowMs, count, latencyUs,
        confidenceHist, classCounts, inputStats, cpuPct, memMB, tempC, throttleEvents,
        code, message, fromVersion, toVersion, result

    var bit: UInt32 { 1 << UInt32(rawValue) }

    static let names: [StaticString] = [
        "kind", "ts_ms", "session_id", "status", "duration_ms", "errors", "window_ms", "count",
        "latency_us", "confidence_hist", "class_counts", "input_stats", "cpu_pct", "mem_mb",
        "temp_c", "throttle_events", "code", "message", "from_version", "to_version", "result",
    ]
    var name: StaticString { RF.names[rawValue] }

    static func mask(_ fields: RF...) -> UInt32 { fields.reduce(0) { $0 | $1.bit } }

    /// Members each kind requires (all but the optional `input_stats`).
    static func required(_ kind: RecordKind) -> UInt32 {
        switch kind {
        case .session: mask(.kind, .tsMs, .sessionID, .status, .durationMs, .errors)
        case .inference: mask(.kind, .tsMs, .windowMs, .count, .errors, .latencyUs, .confidenceHist, .classCounts)
        case .resources: mask(.kind, .tsMs, .cpuPct, .memMB, .tempC, .throttleEvents)
        case .error: mask(.kind, .tsMs, .code, .message)
        case .deploy: mask(.kind, .tsMs, .fromVersion, .toVersion, .result)
        }
    }

    static func allowed(_ kind: RecordKind) -> UInt32 {
        kind == .inference ? required(kind) | RF.inputStats.bit : required(kind)
    }
}
private let recordKeys = KeyTable(RF.names)

private struct Violation {
    var offset: Int
    var pointer: String
    var detail: String
}

/// The values of one record while it is read; `kind` may come last, so members are collected
/// first and judged at the closing brace.
private struct RecordBag {
    var seen: UInt32 = 0
    var valid: UInt32 = 0
    var kind: RecordKind?
    var tsMs: Int64 = 0
    var sessionID = ""
    var status: SessionStatus = .started
    var durationMs: Int64 = 0
    var errors: Int64 = 0
    var windowMs: Int64 = 0
    var count: Int64 = 0
    var latency = DDSketch()
    var hist: [Int64] = []
    var classCounts: [ClassCount] = []
    var inputStats: [FeatureStats] = []
    var cpuPct = 0.0
    var memMB = 0.0
    var tempC = 0.0
    var throttleEvents: Int64 = 0
    var code = ""
    var message = ""
    var fromVersion = ""
    var toVersion = ""
    var result: DeployResult = .installed
}

private struct DecoderState {
    var cur: JSONCursor
    let receivedAtMs: Int64
    var path: [PathComponent] = []
    var violation: Violation?
    var future: Violation?
    var unsupportedSchema = false
    var schemaText = ""
    /// Offsets of record members, by `RF` raw value, for "not allowed for this kind".
    var memberOffsets = InlineArray<21, Int>(repeating: 0)

    // Version-dependent findings, judged once `schema` is known (it may come last).
    var version: Int?
    var v2OnlyMember: Violation?
    var accelerator: String?
    var deviceCloseOffset = 0
    /// Moved in from the caller for the first pass and back out after it.
    var labels = LabelCache()

    /// Whether the JSON pointer path is kept. Off in the fast first pass (a valid message needs
    /// no pointers); on in the second pass that runs only to describe a violation.
    let tracking: Bool

    init(_ bytes: UnsafeBufferPointer<UInt8>, receivedAtMs: Int64, tracking: Bool) {
        cur = JSONCursor(bytes, maxDepth: TelemetryDecoder.maxDepth)
        self.receivedAtMs = receivedAtMs
        self.tracking = tracking
        assert(RF.allCases.count == memberOffsets.count)
        if tracking { path.reserveCapacity(8) }
    }

    // MARK: Violations

    func pointer(_ extra: String? = nil) -> String {
        var s = ""
        for c in path {
            s += "/"
            switch c {
            case .key(let k): s += k.description
            case .index(let i): s += String(i)
            }
        }
        if let extra { s += "/" + JSONPointer.escape(extra) }
        return s
    }

    /// Records a violation at the current path (plus `extra`), keeping the earliest in the document.
    mutating func violate(at offset: Int, extra: @autoclosure () -> String? = nil, _ detail: @autoclosure () -> String) {
        if let v = violation, v.offset <= offset { return }
        violation = tracking ? Violation(offset: offset, pointer: pointer(extra()), detail: detail()) : Violation(offset: offset, pointer: "", detail: "")
    }

    mutating func violateMissing(_ name: StaticString, at offset: Int) {
        violate(at: offset, extra: name.description, "missing required member \"\(name)\"")
    }

    mutating func violateNotAllowed(_ key: StringToken) {
        let name = cur.string(key)
        violate(at: key.offset, extra: name, "member \(TelemetryDecoder.inert(name).debugDescription) is not allowed here")
    }

    @inline(__always) mutating func push(_ k: StaticString) { if tracking { path.append(.key(k)) } }
    @inline(__always) mutating func push(_ i: Int) { if tracking { path.append(.index(i)) } }
    @inline(__always) mutating func pop() { if tracking { path.removeLast() } }

    // MARK: Typed values (cursor on the value's first byte, whitespace skipped)

    /// An integer in `lo...hi`, or nil after recording a violation (the value is skipped).
    mutating func int(_ lo: Int64, _ hi: Int64) throws(JSONSyntaxError) -> Int64? {
        let offset = cur.pos
        guard let b = cur.peek(), b == UInt8(ascii: "-") || (b >= 0x30 && b <= 0x39) else {
            try cur.skipValue()
            violate(at: offset, "expected an integer in \(lo)...\(hi)")
            return nil
        }
        let n = try cur.readNumber()
        guard let v = n.int64, v >= lo, v <= hi else {
            violate(at: offset, "expected an integer in \(lo)...\(hi)")
            return nil
        }
        return v
    }

    /// A finite number in `lo...hi`.
    mutating func number(_ lo: Double, _ hi: Double) throws(JSONSyntaxError) -> Double? {
        let offset = cur.pos
        guard let b = cur.peek(), b == UInt8(ascii: "-") || (b >= 0x30 && b <= 0x39) else {
            try cur.skipValue()
            violate(at: offset, "expected a number in \(lo)...\(hi)")
            return nil
        }
        let n = try cur.readNumber()
        let v = cur.double(n)
        guard v >= lo, v <= hi else {
            violate(at: offset, "expected a number in \(lo)...\(hi)")
            return nil
        }
        return v
    }

    /// A string token, or nil after recording a type violation.
    mutating func stringToken() throws(JSONSyntaxError) -> StringToken? {
        let offset = cur.pos
        guard cur.peek() == UInt8(ascii: "\"") else {
            try cur.skipValue()
            violate(at: offset, "expected a string")
            return nil
        }
        return try cur.readString()
    }

    /// A string token whose bytes satisfy `check` (a whole-string pattern), or nil after
    /// recording a violation.
    mutating func patternedToken(
        _ check: (UnsafeBufferPointer<UInt8>) -> Bool, _ patternText: String
    ) throws(JSONSyntaxError) -> StringToken? {
        guard let t = try stringToken() else { return nil }
        guard cur.withBytes(t, check) else {
            violate(at: t.offset, "does not match \(patternText)")
            return nil
        }
        return t
    }

    /// A string whose bytes satisfy `check`.
    mutating func patterned(
        _ check: (UnsafeBufferPointer<UInt8>) -> Bool, _ patternText: String
    ) throws(JSONSyntaxError) -> String? {
        try patternedToken(check, patternText).map { cur.string($0) }
    }

    /// A cohort label (`check` is its pattern), shared through `labels` with the messages
    /// before that named the same one.
    mutating func label(
        _ check: (UnsafeBufferPointer<UInt8>) -> Bool = Pattern.label, _ patternText: String = Pattern.labelText
    ) throws(JSONSyntaxError) -> String? {
        guard let t = try patternedToken(check, patternText) else { return nil }
        return cur.withBytes(t) { labels.string($0) }
    }

    /// A string of `lo...hi` code points.
    mutating func text(_ lo: Int, _ hi: Int) throws(JSONSyntaxError) -> String? {
        guard let t = try stringToken() else { return nil }
        guard t.scalarCount >= lo && t.scalarCount <= hi else {
            violate(at: t.offset, "expected \(lo)...\(hi) characters, found \(t.scalarCount)")
            return nil
        }
        return cur.string(t)
    }

    /// One of a string enum's values, matched against a key table of its raw values
    /// (in `allCases` order).
    mutating func enumerated<E: CaseIterable>(_ table: KeyTable, _: E.Type) throws(JSONSyntaxError) -> E? where E.AllCases == [E] {
        guard let t = try stringToken() else { return nil }
        guard let i = cur.withBytes(t, { table.index(of: $0) }) else {
            violate(at: t.offset, "expected one of \(table.names.map(\.description).joined(separator: ", "))")
            return nil
        }
        return E.allCases[i]
    }

    /// A timestamp (epoch ms); one more than 24 h ahead of the receiver is noted as future.
    mutating func timestamp() throws(JSONSyntaxError) -> Int64? {
        let offset = cur.pos
        guard let v = try int(0, .max) else { return nil }
        let limit = receivedAtMs.addingReportingOverflow(TelemetryDecoder.futureToleranceMs)
        if !limit.overflow, v > limit.partialValue, future == nil {
            future = tracking ? Violation(offset: offset, pointer: pointer(), detail: "\(v) is more than 24 h after the receiver's clock (\(receivedAtMs))") : Violation(offset: offset, pointer: "", detail: "")
        }
        return v
    }

    /// Cursor on a value expected to be an object: consumes `{` or records a type violation,
    /// skips the value and returns false.
    mutating func openObject() throws(JSONSyntaxError) -> Bool {
        let offset = cur.pos
        guard cur.peek() == UInt8(ascii: "{") else {
            try cur.skipValue()
            violate(at: offset, "expected an object")
            return false
        }
        try cur.enterContainer()
        cur.pos += 1
        return true
    }

    mutating func openArray() throws(JSONSyntaxError) -> Bool {
        let offset = cur.pos
        guard cur.peek() == UInt8(ascii: "[") else {
            try cur.skipValue()
            violate(at: offset, "expected an array")
            return false
        }
        try cur.enterContainer()
        cur.pos += 1
        return true
    }

    /// Matches a key against a table; an unknown key is checked for duplicates among the
    /// object's other unknown keys (known keys are checked by the caller's `seen` mask).
    mutating func match(_ key: StringToken, in table: KeyTable, seen: inout UInt32, unknown: inout [[UInt8]]) throws(JSONSyntaxError) -> Int? {
        if let i = cur.withBytes(key, { table.index(of: $0) }) {
            let bit: UInt32 = 1 << UInt32(i)
            if seen & bit != 0 { throw cur.fail("duplicate key \"\(table.names[i])\"", at: key.offset) }
            seen |= bit
            return i
        }
        let k = cur.bytes(key)
        if unknown.contains(k) { throw cur.fail("duplicate key \(cur.quoted(k))", at: key.offset) }
        unknown.append(k)
        return nil
    }

    // MARK: Document

    mutating func parseDocument() throws(JSONSyntaxError) -> TelemetryMessage? {
        cur.skipWhitespace()
        if cur.atEnd { throw cur.fail("empty input") }
        var message: TelemetryMessage?
        if cur.peek() == UInt8(ascii: "{") {
            message = try parseTop()
        } else {
            let offset = cur.pos
            try cur.skipValue()
            violate(at: offset, "a telemetry message is a JSON object")
        }
        cur.skipWhitespace()
        if !cur.atEnd { throw cur.fail("unexpected \(cur.describeByte(at: cur.pos)) after the JSON value") }
        return message
    }

    mutating func parseTop() throws(JSONSyntaxError) -> TelemetryMessage? {
        try cur.enterContainer()
        cur.pos += 1
        var first = true
        var close = 0
        var seen: UInt32 = 0
        var unknown: [[UInt8]] = []
        var deviceID: String?
        var seq: Int64?
        var sentAt: Int64?
        var device: (sku: String, firmware: String, agent: String)?
        var model: ModelInfo?
        var records: [TelemetryRecord]?

        while let key = try cur.nextKey(first: &first, closeOffset: &close) {
            guard let field = try match(key, in: topKeys, seen: &seen, unknown: &unknown) else {
                violateNotAllowed(key)
                try cur.skipValue()
                continue
            }
            push(topKeys.names[field])
            switch field {
            case 0:
                if let t = try stringToken() {
                    if let i = cur.withBytes(t, { schemaValues.index(of: $0) }) { version = i + 1 } else {
                        unsupportedSchema = true
                        schemaText = TelemetryDecoder.inert(cur.string(t)).debugDescription
                    }
                }
            case 1: deviceID = try patterned(Pattern.deviceID, Pattern.deviceIDText)
            case 2: seq = try int(1, .max)
            case 3: sentAt = try timestamp()
            case 4: device = try parseDevice()
            case 5: model = try parseModel()
            default: records = try parseRecords()
            }
            pop()
        }
        cur.leaveContainer()
        for (i, name) in topKeys.names.enumerated() where seen & (1 << UInt32(i)) == 0 {
            violateMissing(name, at: close)
        }
        // Version-dependent rules, now that the version is known.
        if version == 1, let v = v2OnlyMember, violation.map({ v.offset < $0.offset }) ?? true {
            violation = v
        }
        if version == 2, seen & (1 << 4) != 0, accelerator == nil, deviceCloseOffset > 0 {
            let v = Violation(offset: deviceCloseOffset, pointer: "/device/accelerator", detail: "missing required member \"accelerator\" (schema v2)")
            if violation.map({ v.offset < $0.offset }) ?? true { violation = v }
        }
        guard violation == nil, !unsupportedSchema, let version, let deviceID, let seq, let sentAt,
            let device, let model, let records
        else { return nil }
        let info = DeviceInfo(
            sku: device.sku, firmware: device.firmware, agent: device.agent,
            accelerator: version == 2 ? (accelerator ?? DeviceInfo.unknownAccelerator) : DeviceInfo.unknownAccelerator)
        return TelemetryMessage(
            schemaVersion: version, deviceID: deviceID, seq: seq, sentAtMs: sentAt,
            device: info, model: model, records: records)
    }

    mutating func parseDevice() throws(JSONSyntaxError) -> (sku: String, firmware: String, agent: String)? {
        guard try openObject() else { return nil }
        var first = true
        var close = 0
        var seen: UInt32 = 0
        var unknown: [[UInt8]] = []
        var sku: String?
        var firmware: String?
        var agent: String?
        while let key = try cur.nextKey(first: &first, closeOffset: &close) {
            guard let field = try match(key, in: deviceKeys, seen: &seen, unknown: &unknown) else {
                violateNotAllowed(key)
                try cur.skipValue()
                continue
            }
            push(deviceKeys.names[field])
            let value = try label()
            if field == 3 {
                if v2OnlyMember == nil {
                    v2OnlyMember = Violation(offset: key.offset, pointer: pointer(), detail: "member \"accelerator\" is not allowed in schema v1")
                }
                accelerator = value ?? ""
            } else if field == 0 {
                sku = value
            } else if field == 1 {
                firmware = value
            } else {
                agent = value
            }
            pop()
        }
        cur.leaveContainer()
        deviceCloseOffset = close
        for i in 0..<3 where seen & (1 << UInt32(i)) == 0 { violateMissing(deviceKeys.names[i], at: close) }
        guard let sku, let firmware, let agent else { return nil }
        return (sku, firmware, agent)
    }

    mutating func parseModel() throws(JSONSyntaxError) -> ModelInfo? {
        guard try openObject() else { return nil }
        var first = true
        var close = 0
        var seen: UInt32 = 0
        var unknown: [[UInt8]] = []
        var name: String?
        var version: String?
        var sha: String?
        while let key = try cur.nextKey(first: &first, closeOffset: &close) {
            guard let field = try match(key, in: modelKeys, seen: &seen, unknown: &unknown) else {
                violateNotAllowed(key)
                try cur.skipValue()
                continue
            }
            push(modelKeys.names[field])
            switch field {
            case 0: name = try label()
            case 1: version = try label()
            default: sha = try label(Pattern.sha256, Pattern.sha256Text)
            }
            pop()
        }
        cur.leaveContainer()
        for i in 0..<3 where seen & (1 << UInt32(i)) == 0 { violateMissing(modelKeys.names[i], at: close) }
        guard let name, let version, let sha else { return nil }
        return ModelInfo(name: name, version: version, sha256: sha)
    }

    // MARK: Records

    mutating func parseRecords() throws(JSONSyntaxError) -> [TelemetryRecord]? {
        let open = cur.pos
        guard try openArray() else { return nil }
        var first = true
        var close = 0
        var records: [TelemetryRecord] = []
        records.reserveCapacity(8)
        var index = 0
        var ok = true
        while try cur.nextElement(first: &first, closeOffset: &close) {
            push(index)
            if let r = try parseRecord() { if ok { records.append(r) } } else { ok = false }
            pop()
            index += 1
        }
        cur.leaveContainer()
        if index < 1 || index > TelemetryDecoder.maxRecords {
            violate(at: open, "expected 1...\(TelemetryDecoder.maxRecords) records, found \(index)")
            return nil
        }
        return ok ? records : nil
    }

    mutating func parseRecord() throws(JSONSyntaxError) -> TelemetryRecord? {
        guard try openObject() else { return nil }
        var first = true
        var close = 0
        var unknown: [[UInt8]] = []
        var bag = RecordBag()
        while let key = try cur.nextKey(first: &first, closeOffset: &close) {
            guard let fi = try match(key, in: recordKeys, seen: &bag.seen, unknown: &unknown) else {
                violateNotAllowed(key)
                try cur.skipValue()
                continue
            }
            let field = RF(rawValue: fi)!
            memberOffsets[fi] = key.offset
            push(field.name)
            var valid = true
            switch field {
            case .kind:
                if let k = try enumerated(kindValues, RecordKind.self) { bag.kind = k } else { valid = false }
            case .tsMs: if let v = try timestamp() { bag.tsMs = v } else { valid = false }
            case .sessionID: if let v = try text(1, 64) { bag.sessionID = v } else { valid = false }
            case .status: if let v = try enumerated(statusValues, SessionStatus.self) { bag.status = v } else { valid = false }
            case .durationMs: if let v = try int(0, .max) { bag.durationMs = v } else { valid = false }
            case .errors: if let v = try int(0, .max) { bag.errors = v } else { valid = false }
            case .windowMs: if let v = try int(1, .max) { bag.windowMs = v } else { valid = false }
            case .count: if let v = try int(0, .max) { bag.count = v } else { valid = false }
            case .latencyUs: if let v = try parseSketch() { bag.latency = v } else { valid = false }
            case .confidenceHist: if let v = try parseHistogram() { bag.hist = v } else { valid = false }
            case .classCounts: if let v = try parseClassCounts() { bag.classCounts = v } else { valid = false }
            case .inputStats:
                if v2OnlyMember == nil {
                    v2OnlyMember = Violation(offset: key.offset, pointer: pointer(), detail: "member \"input_stats\" is not allowed in schema v1")
                }
                if let v = try parseInputStats() { bag.inputStats = v } else { valid = false }
            case .cpuPct: if let v = try number(0, 100) { bag.cpuPct = v } else { valid = false }
            case .memMB: if let v = try number(0, 1e9) { bag.memMB = v } else { valid = false }
            case .tempC: if let v = try number(-273.15, 1000) { bag.tempC = v } else { valid = false }
            case .throttleEvents: if let v = try int(0, .max) { bag.throttleEvents = v } else { valid = false }
            case .code: if let v = try patterned(Pattern.errorCode, Pattern.errorCodeText) { bag.code = v } else { valid = false }
            case .message: if let v = try text(0, 512) { bag.message = v } else { valid = false }
            case .fromVersion:
                if let v = try patterned({ $0.isEmpty || Pattern.label($0) }, "\"\" or " + Pattern.labelText) { bag.fromVersion = v } else { valid = false }
            case .toVersion: if let v = try label() { bag.toVersion = v } else { valid = false }
            case .result: if let v = try enumerated(resultValues, DeployResult.self) { bag.result = v } else { valid = false }
            }
            if valid { bag.valid |= field.bit }
            pop()
        }
        cur.leaveContainer()
        return judge(&bag, close: close)
    }

    /// Applies the per-kind rules at a record's closing brace.
    mutating func judge(_ bag: inout RecordBag, close: Int) -> TelemetryRecord? {
        guard let kind = bag.kind else {
            if bag.seen & RF.kind.bit == 0 { violateMissing("kind", at: close) }
            return nil
        }
        let allowed = RF.allowed(kind)
        let required = RF.required(kind)
        for f in RF.allCases where bag.seen & f.bit != 0 && allowed & f.bit == 0 {
            violate(at: memberOffsets[f.rawValue], extra: f.name.description, "member \"\(f.name)\" is not allowed in a \(kind.rawValue) record")
        }
        for f in RF.allCases where required & f.bit != 0 && bag.seen & f.bit == 0 {
            violateMissing(f.name, at: close)
        }
        let needed = required | (bag.seen & RF.inputStats.bit)
        guard bag.valid & needed == needed, bag.seen & ~allowed == 0 else { return nil }
        switch kind {
        case .session:
            if bag.status == .started && bag.durationMs != 0 {
                violate(at: close, extra: "duration_ms", "a started session has duration_ms 0")
                return nil
            }
            return .session(SessionRecord(tsMs: bag.tsMs, sessionID: bag.sessionID, status: bag.status, durationMs: bag.durationMs, errors: bag.errors))
        case .inference:
            if bag.errors > bag.count {
                violate(at: close, extra: "errors", "errors (\(bag.errors)) exceed count (\(bag.count))")
                return nil
            }
            let successes = bag.count - bag.errors
            if bag.latency.count != successes {
                push("latency_us")
                violate(at: close, extra: "count", "latency_us.count (\(bag.latency.count)) must equal count - errors (\(successes))")
                pop()
                return nil
            }
            var histSum: Int64 = 0
            var overflow = false
            for c in bag.hist {
                let (s, o) = histSum.addingReportingOverflow(c)
                histSum = s
                overflow = overflow || o
            }
            if overflow || histSum != successes {
                violate(at: close, extra: "confidence_hist", "confidence_hist sums to \(overflow ? "more than Int64.max" : String(histSum)), must equal count - errors (\(successes))")
                return nil
            }
            return .inference(InferenceRecord(
                tsMs: bag.tsMs, windowMs: bag.windowMs, count: bag.count, errors: bag.errors,
                latencyUs: bag.latency, confidenceHist: bag.hist, classCounts: bag.classCounts,
                inputStats: bag.inputStats))
        case .resources:
            return .resources(ResourcesRecord(tsMs: bag.tsMs, cpuPct: bag.cpuPct, memMB: bag.memMB, tempC: bag.tempC, throttleEvents: bag.throttleEvents))
        case .error:
            return .error(ErrorRecord(tsMs: bag.tsMs, code: bag.code, message: bag.message))
        case .deploy:
            return .deploy(DeployRecord(tsMs: bag.tsMs, fromVersion: bag.fromVersion, toVersion: bag.toVersion, result: bag.result))
        }
    }

    // MARK: Inference parts

    mutating func parseSketch() throws(JSONSyntaxError) -> DDSketch? {
        guard try openObject() else { return nil }
        var first = true
        var close = 0
        var seen: UInt32 = 0
        var valid: UInt32 = 0
        var unknown: [[UInt8]] = []
        var count: Int64 = 0
        var sum = 0.0
        var lo = 0.0
        var hi = 0.0
        var keys: [Int] = []
        var counts: [Int64] = []
        while let key = try cur.nextKey(first: &first, closeOffset: &close) {
            guard let field = try match(key, in: sketchKeys, seen: &seen, unknown: &unknown) else {
                violateNotAllowed(key)
                try cur.skipValue()
                continue
            }
            push(sketchKeys.names[field])
            var ok = true
            switch field {
            case 0: if let v = try int(0, .max) { count = v } else { ok = false }
            case 1: if let v = try number(0, 9.2e18) { sum = v } else { ok = false }
            case 2: if let v = try number(0, 9.2e18) { lo = v } else { ok = false }
            case 3: if let v = try number(0, 9.2e18) { hi = v } else { ok = false }
            case 4: if let v = try intArray(min: 0, max: Int64(DDSketch.maxKey), increasing: true, as: Int.self) { keys = v } else { ok = false }
            default: if let v = try intArray(min: 1, max: .max, increasing: false) { counts = v } else { ok = false }
            }
            if ok { valid |= 1 << UInt32(field) }
            pop()
        }
        cur.leaveContainer()
        for i in 0..<6 where seen & (1 << UInt32(i)) == 0 { violateMissing(sketchKeys.names[i], at: close) }
        guard valid == 0b111111 else { return nil }
        if keys.count != counts.count {
            violate(at: close, extra: "counts", "keys and counts differ in length (\(keys.count) and \(counts.count))")
            return nil
        }
        var total: Int64 = 0
        for c in counts {
            let (s, o) = total.addingReportingOverflow(c)
            if o {
                violate(at: close, extra: "count", "counts sum to more than Int64.max")
                return nil
            }
            total = s
        }
        if total != count {
            violate(at: close, extra: "count", "counts sum to \(total), count says \(count)")
            return nil
        }
        if count == 0 {
            for (name, v) in [("sum", sum), ("min", lo), ("max", hi)] where v != 0 {
                violate(at: close, extra: name, "an empty sketch has \(name) 0")
                return nil
            }
        } else if lo > hi {
            violate(at: close, extra: "min", "min (\(lo)) exceeds max (\(hi))")
            return nil
        }
        return DDSketch(count: count, sum: sum, min: lo, max: hi, keys: keys, counts: counts)
    }

    /// An array of at most `DDSketch.maxBuckets` integers in `min...max`, optionally strictly
    /// increasing (a violation at the first element that is not).
    mutating func intArray<T: FixedWidthInteger>(min: Int64, max: Int64, increasing: Bool, as _: T.Type = Int64.self) throws(JSONSyntaxError) -> [T]? {
        let open = cur.pos
        guard try openArray() else { return nil }
        var first = true
        var close = 0
        var out: [T] = []
        out.reserveCapacity(cur.elementCountHint(limit: DDSketch.maxBuckets))
        var ok = true
        var index = 0
        var last = Int64.min
        while try cur.nextElement(first: &first, closeOffset: &close) {
            push(index)
            let offset = cur.pos
            if let v = try int(min, max) {
                if increasing, index > 0, v <= last {
                    violate(at: offset, "keys must be strictly increasing (\(v) after \(last))")
                    ok = false
                }
                if ok { out.append(T(truncatingIfNeeded: v)) }
                last = v
            } else {
                ok = false
            }
            pop()
            index += 1
        }
        cur.leaveContainer()
        if index > DDSketch.maxBuckets {
            violate(at: open, "at most \(DDSketch.maxBuckets) items, found \(index)")
            return nil
        }
        return ok ? out : nil
    }

    mutating func parseHistogram() throws(JSONSyntaxError) -> [Int64]? {
        let open = cur.pos
        guard try openArray() else { return nil }
        var first = true
        var close = 0
        var out: [Int64] = []
        out.reserveCapacity(InferenceRecord.histogramBins)
        var ok = true
        var index = 0
        while try cur.nextElement(first: &first, closeOffset: &close) {
            push(index)
            if let v = try int(0, .max) { out.append(v) } else { ok = false }
            pop()
            index += 1
        }
        cur.leaveContainer()
        if index != InferenceRecord.histogramBins {
            violate(at: open, "expected exactly \(InferenceRecord.histogramBins) bins, found \(index)")
            return nil
        }
        return ok ? out : nil
    }

    mutating func parseClassCounts() throws(JSONSyntaxError) -> [ClassCount]? {
        let open = cur.pos
        guard try openObject() else { return nil }
        var first = true
        var close = 0
        var out: [ClassCount] = []
        out.reserveCapacity(8)
        var names: Set<[UInt8]> = []
        var ok = true
        while let key = try cur.nextKey(first: &first, closeOffset: &close) {
            // Duplicates compare code points (not Swift's canonical equivalence).
            let dup: Bool
            if out.count < 16 {
                dup = cur.withBytes(key) { bytes in out.contains { $0.name.utf8.elementsEqual(bytes) } }
                if !dup && out.count == 15 { names = Set(out.map { Array($0.name.utf8) } + [cur.bytes(key)]) }
            } else {
                dup = !names.insert(cur.bytes(key)).inserted
            }
            if dup { throw cur.fail("duplicate key \(cur.quoted(cur.bytes(key)))", at: key.offset) }
            let name = cur.string(key)
            if key.scalarCount < 1 || key.scalarCount > 64 {
                violate(at: key.offset, extra: name, "class names have 1...64 characters, found \(key.scalarCount)")
                ok = false
            }
            let offset = cur.pos
            let value: Int64?
            if let b = cur.peek(), b == UInt8(ascii: "-") || (b >= 0x30 && b <= 0x39) {
                let n = try cur.readNumber()
                value = n.int64.flatMap { $0 >= 0 ? $0 : nil }
            } else {
                try cur.skipValue()
                value = nil
            }
            if let value {
                out.append(ClassCount(name: name, count: value))
            } else {
                violate(at: offset, extra: name, "expected an integer in 0...\(Int64.max)")
                out.append(ClassCount(name: name, count: 0))
                ok = false
            }
        }
        cur.leaveContainer()
        if out.count > TelemetryDecoder.maxClasses {
            violate(at: open, "at most \(TelemetryDecoder.maxClasses) classes, found \(out.count)")
            return nil
        }
        return ok ? out : nil
    }

    mutating func parseInputStats() throws(JSONSyntaxError) -> [FeatureStats]? {
        let open = cur.pos
        guard try openArray() else { return nil }
        var first = true
        var close = 0
        var out: [FeatureStats] = []
        var ok = true
        var index = 0
        while try cur.nextElement(first: &first, closeOffset: &close) {
            push(index)
            if let s = try parseFeatureStats() { out.append(s) } else { ok = false }
            pop()
            index += 1
        }
        cur.leaveContainer()
        if index > TelemetryDecoder.maxInputStats {
            violate(at: open, "at most \(TelemetryDecoder.maxInputStats) features, found \(index)")
            return nil
        }
        return ok ? out : nil
    }

    mutating func parseFeatureStats() throws(JSONSyntaxError) -> FeatureStats? {
        guard try openObject() else { return nil }
        var first = true
        var close = 0
        var seen: UInt32 = 0
        var valid: UInt32 = 0
        var unknown: [[UInt8]] = []
        var name = ""
        var values = [0.0, 0.0, 0.0, 0.0]
        while let key = try cur.nextKey(first: &first, closeOffset: &close) {
            guard let field = try match(key, in: statsKeys, seen: &seen, unknown: &unknown) else {
                violateNotAllowed(key)
                try cur.skipValue()
                continue
            }
            push(statsKeys.names[field])
            if field == 0 {
                if let v = try text(1, 64) { name = v; valid |= 1 }
            } else if let v = try number(field == 2 ? 0 : -1e15, 1e15) {
                values[field - 1] = v
                valid |= 1 << UInt32(field)
            }
            pop()
        }
        cur.leaveContainer()
        for i in 0..<5 where seen & (1 << UInt32(i)) == 0 { violateMissing(statsKeys.names[i], at: close) }
        guard valid == 0b11111 else { return nil }
        return FeatureStats(name: name, mean: values[0], std: values[1], min: values[2], max: values[3])
    }
}
