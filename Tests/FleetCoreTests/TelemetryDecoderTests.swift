import Foundation
import Testing

@testable import FleetCore

/// 2025-11-29T12:00:00Z, the epoch of the fixtures.
let fixtureNow: Int64 = 1_764_417_600_000

/// A valid v1 message as JSON text, with `patch` applied to its parsed form first.
func sample(_ patch: (inout [String: Any]) -> Void = { _ in }) -> String {
    var m: [String: Any] = [
        "schema": "fleet.telemetry/1",
        "device_id": "cam-0042",
        "seq": 1041,
        "sent_at_ms": 1_764_417_600_123,
        "device": ["sku": "orin-nano-8g", "firmware": "5.1.2", "agent": "0.3.0"],
        "model": ["name": "defect-detector", "version": "1.4.0", "sha256": String(repeating: "ab", count: 32)],
        "records": [
            ["kind": "session", "ts_ms": 1_764_417_600_000, "session_id": "s-1", "status": "exited", "duration_ms": 5000, "errors": 0],
            [
                "kind": "inference", "ts_ms": 1_764_417_600_000, "window_ms": 10000, "count": 12, "errors": 2,
                "latency_us": ["count": 10, "sum": 12000.5, "min": 800, "max": 2100.25, "keys": [337, 350, 386], "counts": [3, 5, 2]],
                "confidence_hist": [0, 0, 0, 0, 0, 1, 1, 2, 3, 3], "class_counts": ["ok": 8, "defect": 2],
            ],
        ],
    ]
    patch(&m)
    let data = try! JSONSerialization.data(withJSONObject: m, options: [.sortedKeys])
    return String(decoding: data, as: UTF8.self)
}

func decode(_ s: String, topic: String? = nil, now: Int64 = fixtureNow) -> Result<TelemetryMessage, Rejection> {
    TelemetryDecoder.decode(s, receivedAtMs: now, topicDeviceID: topic)
}

func reason(_ s: String, topic: String? = nil, now: Int64 = fixtureNow) -> String {
    switch decode(s, topic: topic, now: now) {
    case .success: "OK"
    case .failure(let r): r.reason.description
    }
}

@Suite struct TelemetryDecoderTests {
    @Test func decodesTheSample() throws {
        let m = try decode(sample()).get()
        #expect(m.schemaVersion == 1)
        #expect(m.deviceID == "cam-0042" && m.seq == 1041 && m.sentAtMs == 1_764_417_600_123)
        #expect(m.device == DeviceInfo(sku: "orin-nano-8g", firmware: "5.1.2", agent: "0.3.0", accelerator: "unknown"))
        #expect(m.records.count == 2)
        guard case .inference(let inf) = m.records[1] else { Issue.record("not inference"); return }
        #expect(inf.count == 12 && inf.errors == 2)
        #expect(inf.latencyUs.keys == [337, 350, 386] && inf.latencyUs.counts == [3, 5, 2])
        #expect(inf.latencyUs.sum == 12000.5 && inf.latencyUs.max == 2100.25)
        #expect(Set(inf.classCounts) == [ClassCount(name: "ok", count: 8), ClassCount(name: "defect", count: 2)])
    }

    @Test func v2CarriesAcceleratorAndInputStats() throws {
        let text = sample { m in
            m["schema"] = "fleet.telemetry/2"
            var d = m["device"] as! [String: Any]
            d["accelerator"] = "npu"
            m["device"] = d
            var recs = m["records"] as! [[String: Any]]
            recs[1]["input_stats"] = [["name": "x0", "mean": 0.5, "std": 0.1, "min": -1, "max": 2]]
            m["records"] = recs
        }
        let m = try decode(text).get()
        #expect(m.schemaVersion == 2 && m.device.accelerator == "npu")
        guard case .inference(let inf) = m.records[1] else { Issue.record("not inference"); return }
        #expect(inf.inputStats == [FeatureStats(name: "x0", mean: 0.5, std: 0.1, min: -1, max: 2)])
    }

    // MARK: Numbers

    @Test(arguments: [
        ("1041", "OK"), ("1041.0", "OK"), ("1.041e3", "OK"), ("104100e-2", "OK"), ("10410000000000000000000e-19", "OK"),
        ("1041.5", "schema_violation:/seq"), ("0", "schema_violation:/seq"), ("-1", "schema_violation:/seq"),
        ("9223372036854775807", "OK"), ("9223372036854775808", "schema_violation:/seq"),
        ("1e400", "schema_violation:/seq"), ("1e-400", "schema_violation:/seq"),
        ("\"1041\"", "schema_violation:/seq"), ("true", "schema_violation:/seq"), ("null", "schema_violation:/seq"),
        ("01", "invalid_json"), ("+1", "invalid_json"), (".5", "invalid_json"), ("1.", "invalid_json"),
        ("1e", "invalid_json"), ("0x10", "invalid_json"), ("NaN", "invalid_json"), ("Infinity", "invalid_json"),
        ("-", "invalid_json"), ("1.5.5", "invalid_json"),
    ])
    func integerSemantics(literal: String, expected: String) {
        let text = sample().replacingOccurrences(of: "\"seq\":1041", with: "\"seq\":\(literal)")
        #expect(text.contains("\"seq\":\(literal)"))
        #expect(reason(text) == expected, "seq: \(literal)")
    }

    @Test func integralValueIsExact() throws {
        let text = sample().replacingOccurrences(of: "\"seq\":1041", with: "\"seq\":9.223372036854775807e18")
        #expect(try decode(text).get().seq == Int64.max)
        let t2 = sample().replacingOccurrences(of: "\"seq\":1041", with: "\"seq\":9.223372036854775808e18")
        #expect(reason(t2) == "schema_violation:/seq")
    }

    @Test func doublesParseExactly() throws {
        for literal in ["0.1", "12.75", "1e-5", "3.141592653589793", "99.99999999999999", "1E2", "4.9e-324", "0.30000000000000004"] {
            let text = sample { m in
                var recs = m["records"] as! [[String: Any]]
                recs.append(["kind": "resources", "ts_ms": 1, "cpu_pct": 1, "mem_mb": 2, "temp_c": 3, "throttle_events": 0])
                m["records"] = recs
            }.replacingOccurrences(of: "\"cpu_pct\":1", with: "\"cpu_pct\":\(literal)")
            let m = try decode(text).get()
            guard case .resources(let r) = m.records[2] else { Issue.record("no resources"); continue }
            #expect(r.cpuPct == Double(literal)!, "\(literal)")
        }
    }

    // MARK: Strings

    @Test func escapesAndUnicode() throws {
        let text = sample { m in
            var recs = m["records"] as! [[String: Any]]
            recs.append(["kind": "error", "ts_ms": 1, "code": "E_X", "message": "PLACEHOLDER"])
            m["records"] = recs
        }.replacingOccurrences(of: "PLACEHOLDER", with: #"\u001b]0;pwned\u0007 \"q\" \\ \/ \ud83d\ude00 é\n"#)
        let m = try decode(text).get()
        guard case .error(let e) = m.records[2] else { Issue.record("no error"); return }
        #expect(e.message == "\u{1b}]0;pwned\u{07} \"q\" \\ / 😀 é\n")
    }

    @Test(arguments: [
        (#""cam-1\n""#, "schema_violation:/device_id"),
        (#""cam\u002d1""#, "OK"),  // an escaped '-' is still '-'
        (#""cаm-1""#, "schema_violation:/device_id"),  // Cyrillic а
        (#""cam-１""#, "schema_violation:/device_id"),  // fullwidth digit
        (#""cam\u200b-1""#, "schema_violation:/device_id"),  // zero-width space
        (#""\u0000cam""#, "schema_violation:/device_id"),
        (#""""#, "schema_violation:/device_id"),
        (#""-cam""#, "schema_violation:/device_id"),
        ("\"\(String(repeating: "a", count: 64))\"", "OK"),
        ("\"\(String(repeating: "a", count: 65))\"", "schema_violation:/device_id"),
        ("\"cam\u{1}1\"", "invalid_json"),  // raw control character
        (#""cam\ud800""#, "invalid_json"),  // lone high surrogate
        (#""cam\udc00x""#, "invalid_json"),  // lone low surrogate
        (#""cam\x41""#, "invalid_json"),  // not a JSON escape
        (#""cam"#, "invalid_json"),  // unterminated
    ])
    func deviceIDs(literal: String, expected: String) {
        let text = sample().replacingOccurrences(of: "\"device_id\":\"cam-0042\"", with: "\"device_id\":\(literal)")
        let topic: String? = nil
        #expect(reason(text, topic: topic) == expected, "device_id: \(literal)")
    }

    @Test func invalidUTF8IsInvalidJSON() {
        var bytes = Array(sample().utf8)
        let i = bytes.firstIndex(of: UInt8(ascii: "5"))!  // inside firmware "5.1.2"
        for bad: [UInt8] in [[0xFF], [0xC0, 0xAF], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xC3]] {
            var b = bytes
            b.replaceSubrange(i..<i + 1, with: bad)
            #expect(reason(String(decoding: [], as: UTF8.self)) == "invalid_json")
            let r = TelemetryDecoder.decode(b, receivedAtMs: fixtureNow)
            guard case .failure(let rej) = r else { Issue.record("accepted \(bad)"); continue }
            #expect(rej.reason == .invalidJSON, "\(bad)")
        }
        bytes.insert(contentsOf: [0xEF, 0xBB, 0xBF], at: 0)  // BOM
        guard case .failure(let rej) = TelemetryDecoder.decode(bytes, receivedAtMs: fixtureNow) else { Issue.record("BOM accepted"); return }
        #expect(rej.reason == .invalidJSON)
    }

    // MARK: Structure

    @Test func duplicateKeysAreInvalidJSONEvenWhenEscaped() {
        let s = sample()
        #expect(reason(s.replacingOccurrences(of: "\"seq\":1041", with: "\"seq\":1041,\"seq\":1042")) == "invalid_json")
        #expect(reason(s.replacingOccurrences(of: "\"seq\":1041", with: "\"seq\":1041,\"se\\u0071\":1042")) == "invalid_json")
        #expect(reason(s.replacingOccurrences(of: "\"ok\":8", with: "\"ok\":8,\"o\\u006b\":1")) == "invalid_json")
        #expect(reason(s.replacingOccurrences(of: "\"seq\":1041", with: "\"seq\":1041,\"x\":{\"a\":1,\"a\":2}")) == "invalid_json")
        // Two unknown members with the same name: still invalid JSON, not a schema violation.
        #expect(reason(s.replacingOccurrences(of: "\"seq\":1041", with: "\"seq\":1041,\"x\":1,\"x\":2")) == "invalid_json")
        // Canonically equivalent but different code points are different keys (é vs e + U+0301).
        #expect(reason(s.replacingOccurrences(of: "\"ok\":8", with: "\"\\u00e9\":4,\"e\\u0301\":4")) == "OK")
    }

    @Test func nestingDepthLimit() {
        let s = sample()
        let ok = String(repeating: "[", count: 63) + String(repeating: "]", count: 63)
        let deep = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(reason(s.replacingOccurrences(of: "\"seq\":1041", with: "\"seq\":1041,\"x\":\(ok)")) == "schema_violation:/x")
        #expect(reason(s.replacingOccurrences(of: "\"seq\":1041", with: "\"seq\":1041,\"x\":\(deep)")) == "invalid_json")
        let bomb = String(repeating: "[", count: 100_000)
        #expect(reason(bomb) == "invalid_json")
    }

    @Test func notAnObject() {
        #expect(reason("[]") == "schema_violation:")
        #expect(reason("\"x\"") == "schema_violation:")
        #expect(reason("") == "invalid_json")
        #expect(reason("   ") == "invalid_json")
        #expect(reason(sample() + " {}") == "invalid_json")
        #expect(reason(sample() + " \n\t") == "OK")
    }

    @Test func truncationAnywhereIsInvalidJSON() {
        let bytes = Array(sample().utf8)
        for cut in 0..<bytes.count {
            let r = TelemetryDecoder.decode(Array(bytes.prefix(cut)), receivedAtMs: fixtureNow)
            guard case .failure(let rej) = r else { Issue.record("accepted a prefix of \(cut) bytes"); continue }
            #expect(rej.reason == .invalidJSON, "cut at \(cut): \(rej)")
        }
    }

    // MARK: Schema rules and pointers

    @Test func missingMembersPointWhereTheyWouldBe() {
        #expect(reason(sample { $0["seq"] = nil }) == "schema_violation:/seq")
        #expect(reason(sample { $0["schema"] = nil }) == "schema_violation:/schema")
        #expect(reason(sample { m in var d = m["device"] as! [String: Any]; d["sku"] = nil; m["device"] = d }) == "schema_violation:/device/sku")
        #expect(reason(sample { m in var recs = m["records"] as! [[String: Any]]; recs[1]["class_counts"] = nil; m["records"] = recs }) == "schema_violation:/records/1/class_counts")
    }

    @Test func extraMembersAreNotAllowed() {
        #expect(reason(sample { $0["color"] = "red" }) == "schema_violation:/color")
        #expect(reason(sample { $0["a/b~c"] = 1 }) == "schema_violation:/a~1b~0c")
        #expect(reason(sample { m in var recs = m["records"] as! [[String: Any]]; recs[0]["cpu_pct"] = 5; m["records"] = recs }) == "schema_violation:/records/0/cpu_pct")
        #expect(reason(sample { m in var recs = m["records"] as! [[String: Any]]; recs[1]["input_stats"] = []; m["records"] = recs }) == "schema_violation:/records/1/input_stats")
        #expect(reason(sample { m in var d = m["device"] as! [String: Any]; d["accelerator"] = "gpu"; m["device"] = d }) == "schema_violation:/device/accelerator")
    }

    @Test func v2RequiresAccelerator() {
        #expect(reason(sample { $0["schema"] = "fleet.telemetry/2" }) == "schema_violation:/device/accelerator")
    }

    @Test func schemaMember() {
        #expect(reason(sample { $0["schema"] = "fleet.telemetry/3" }) == "unsupported_schema")
        #expect(reason(sample { $0["schema"] = 1 }) == "schema_violation:/schema")
        // Unsupported wins over other violations in the same message.
        #expect(reason(sample { $0["schema"] = "fleet.telemetry/9"; $0["seq"] = "x" }) == "unsupported_schema")
        // ... but not over invalid JSON.
        #expect(reason(sample { $0["schema"] = "fleet.telemetry/9" } + ",") == "invalid_json")
    }

    @Test func firstViolationInDocumentOrderWins() {
        // sortedKeys puts "device" before "seq": the device's missing sku (found at its closing brace) comes first.
        let text = sample { m in var d = m["device"] as! [String: Any]; d["sku"] = nil; m["device"] = d; m["seq"] = -5 }
        #expect(reason(text) == "schema_violation:/device/sku")
    }

    @Test func sketchRules() {
        func withSketch(_ sk: [String: Any], count: Int = 12, errors: Int = 2) -> String {
            sample { m in
                var recs = m["records"] as! [[String: Any]]
                recs[1]["latency_us"] = sk
                recs[1]["count"] = count
                recs[1]["errors"] = errors
                m["records"] = recs
            }
        }
        let p = "/records/1/latency_us"
        #expect(reason(withSketch(["count": 10, "sum": 1, "min": 1, "max": 1, "keys": [3, 3], "counts": [5, 5]])) == "schema_violation:\(p)/keys/1")
        #expect(reason(withSketch(["count": 10, "sum": 1, "min": 1, "max": 1, "keys": [3, 2], "counts": [5, 5]])) == "schema_violation:\(p)/keys/1")
        #expect(reason(withSketch(["count": 10, "sum": 1, "min": 1, "max": 1, "keys": [3], "counts": [5, 5]])) == "schema_violation:\(p)/counts")
        #expect(reason(withSketch(["count": 10, "sum": 1, "min": 1, "max": 1, "keys": [3, 4], "counts": [5, 4]])) == "schema_violation:\(p)/count")
        #expect(reason(withSketch(["count": 10, "sum": 1, "min": 2, "max": 1, "keys": [3, 4], "counts": [5, 5]])) == "schema_violation:\(p)/min")
        #expect(reason(withSketch(["count": 0, "sum": 1, "min": 0, "max": 0, "keys": [], "counts": []], count: 2, errors: 2)) == "schema_violation:\(p)/sum")
        #expect(reason(withSketch(["count": 0, "sum": 0, "min": 0, "max": 0, "keys": [], "counts": []], count: 2, errors: 2))
            .hasPrefix("schema_violation:/records/1/confidence_hist"))
        #expect(reason(withSketch(["count": 0, "sum": 0, "min": 0, "max": 0, "keys": [], "counts": [0]], count: 2, errors: 2)) == "schema_violation:\(p)/counts/0")
        #expect(reason(withSketch(["count": 10, "sum": 1, "min": 1, "max": 1, "keys": [-1, 4], "counts": [5, 5]])) == "schema_violation:\(p)/keys/0")
        #expect(reason(withSketch(["count": 10, "sum": 1, "min": 1, "max": 1, "keys": [1, 100001], "counts": [5, 5]])) == "schema_violation:\(p)/keys/1")
        // Counts that overflow Int64 when summed.
        let big = withSketch(["count": 10, "sum": 1, "min": 1, "max": 1, "keys": [1, 2], "counts": [1, 2]])
            .replacingOccurrences(of: "\"counts\":[1,2]", with: "\"counts\":[9223372036854775807,9223372036854775807]")
        #expect(reason(big) == "schema_violation:\(p)/count")
    }

    @Test func inferenceConsistency() {
        func patch(_ f: @escaping (inout [String: Any]) -> Void) -> String {
            sample { m in var recs = m["records"] as! [[String: Any]]; f(&recs[1]); m["records"] = recs }
        }
        #expect(reason(patch { $0["errors"] = 13 }) == "schema_violation:/records/1/errors")
        #expect(reason(patch { $0["count"] = 13 }) == "schema_violation:/records/1/latency_us/count")
        #expect(reason(patch { $0["confidence_hist"] = [0, 0, 0, 0, 0, 1, 1, 2, 3, 4] }) == "schema_violation:/records/1/confidence_hist")
        #expect(reason(patch { $0["confidence_hist"] = [0, 0, 0, 0, 0, 1, 1, 2, 3] }) == "schema_violation:/records/1/confidence_hist")
        #expect(reason(patch { $0["confidence_hist"] = [0, 0, 0, 0, 0, 1, 1, 2, 3, -3] }) == "schema_violation:/records/1/confidence_hist/9")
        #expect(reason(patch { $0["window_ms"] = 0 }) == "schema_violation:/records/1/window_ms")
        #expect(reason(patch { $0["class_counts"] = ["ok": -1] }) == "schema_violation:/records/1/class_counts/ok")
        #expect(reason(patch { $0["class_counts"] = ["": 1] }) == "schema_violation:/records/1/class_counts/")
        #expect(reason(patch { $0["kind"] = "metric" }) == "schema_violation:/records/1/kind")
        #expect(reason(patch { $0["kind"] = nil }) == "schema_violation:/records/1/kind")
    }

    @Test func startedSessionsHaveZeroDuration() {
        let text = sample { m in var recs = m["records"] as! [[String: Any]]; recs[0]["status"] = "started"; m["records"] = recs }
        #expect(reason(text) == "schema_violation:/records/0/duration_ms")
    }

    @Test func recordCountBounds() {
        #expect(reason(sample { $0["records"] = [] }) == "schema_violation:/records")
        let one: [String: Any] = ["kind": "error", "ts_ms": 1, "code": "E", "message": ""]
        #expect(reason(sample { $0["records"] = Array(repeating: one, count: 1000) }) == "OK")
        #expect(reason(sample { $0["records"] = Array(repeating: one, count: 1001) }) == "schema_violation:/records")
    }

    // MARK: Transport rules

    @Test func oversizeComesFirst() {
        let big = "[" + String(repeating: " ", count: TelemetryDecoder.maxMessageBytes) + "]"
        #expect(reason(big) == "oversize")
    }

    @Test func topicMismatchAfterSchema() {
        #expect(reason(sample(), topic: "cam-0042") == "OK")
        #expect(reason(sample(), topic: "cam-0043") == "device_id_mismatch")
        #expect(reason(sample { $0["seq"] = 0 }, topic: "cam-0043") == "schema_violation:/seq")
    }

    @Test func futureTimestamps() {
        let day: Int64 = 86_400_000
        let sentAt: Int64 = 1_764_417_600_123
        #expect(reason(sample(), now: sentAt - day) == "OK")  // exactly 24 h ahead is allowed
        #expect(reason(sample(), now: sentAt - day - 1) == "future_timestamp:/sent_at_ms")
        let recFuture = sample { m in var recs = m["records"] as! [[String: Any]]; recs[1]["ts_ms"] = 4_102_444_800_000; m["records"] = recs }
        #expect(reason(recFuture) == "future_timestamp:/records/1/ts_ms")
        // Lower precedence than a mismatch.
        #expect(reason(recFuture, topic: "other") == "device_id_mismatch")
    }

    @Test func rejectionReasonsRoundTripThroughText() {
        let all: [RejectionReason] = [
            .oversize, .invalidJSON, .unsupportedSchema, .schemaViolation(pointer: "/records/0/kind"),
            .schemaViolation(pointer: ""), .deviceIDMismatch, .futureTimestamp(pointer: "/sent_at_ms"), .rateLimited,
        ]
        for r in all { #expect(RejectionReason(r.description) == r) }
        #expect(RejectionReason("nonsense") == nil)
        #expect(RejectionReason.schemaViolation(pointer: "/a").family == "schema_violation")
    }
}

/// The capacity hint the decoder reserves number arrays with (one allocation per array, not one
/// per doubling): commas up to the first `]`, capped; 16 when the array is not plain numbers.
@Suite struct ElementCountHintTests {
    func hint(_ text: String, limit: Int = 4096) -> Int {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBufferPointer { b in
            var c = JSONCursor(b, maxDepth: 8)
            c.pos = 1  // after "["
            return c.elementCountHint(limit: limit)
        }
    }

    @Test func countsTheElementsOfANumberArray() {
        #expect(hint("[]") == 0)
        #expect(hint("[ ]") == 0)
        #expect(hint("[7]") == 1)
        #expect(hint("[1, 2,3 ,\n4]") == 4)
        #expect(hint("[" + (0..<300).map(String.init).joined(separator: ",") + "]") == 300)
    }

    @Test func capsAndFallsBack() {
        #expect(hint("[1,2,3,4,5,6]", limit: 3) == 4)
        #expect(hint("[1, \"a\", 2]") == 16)
        #expect(hint("[[1], 2]") == 16)
        #expect(hint("[1, 2") == 16)  // unterminated: the parser reports it, the hint guesses
    }
}
