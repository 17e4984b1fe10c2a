import Foundation
import Testing

@testable import FleetCore

/// Random valid messages, for property tests: encode then decode must give the message back.
struct MessageGenerator {
    var rng: SplitMix64

    mutating func int(_ r: ClosedRange<Int64>) -> Int64 { Int64.random(in: r, using: &rng) }
    mutating func pick<T>(_ xs: [T]) -> T { xs[Int.random(in: 0..<xs.count, using: &rng)] }

    mutating func label() -> String {
        let first = Array("abcXYZ019")
        let rest = Array("abz09._+-AZ")
        var s = String(pick(first))
        for _ in 0..<Int.random(in: 0...20, using: &rng) { s.append(pick(rest)) }
        return s
    }

    /// Any Unicode text: quotes, backslashes, controls, DEL, multi-byte, astral.
    mutating func text(max: Int) -> String {
        let pool: [Unicode.Scalar] = ["a", "Z", "\"", "\\", "/", "\n", "\t", "\u{0}", "\u{1b}", "\u{7f}", "é", "€", "😀", "\u{202e}", "\u{200b}", " "]
        var s = String.UnicodeScalarView()
        for _ in 0..<Int.random(in: 0...max, using: &rng) { s.append(pick(pool)) }
        return String(s)
    }

    mutating func sketch(count n: Int64) -> DDSketch {
        var s = DDSketch()
        guard n > 0 else { return s }
        for _ in 0..<min(n, 50) { s.insert(Double(int(0...2_000_000)) / 7) }
        if n > 50 { s.insert(123.5, times: n - 50) }
        return s
    }

    mutating func record(v2: Bool) -> TelemetryRecord {
        let ts = int(0...1_764_417_600_000)
        switch int(0...4) {
        case 0:
            let status = pick(SessionStatus.allCases)
            return .session(SessionRecord(tsMs: ts, sessionID: String(text(max: 10).prefix(1)) + "s", status: status, durationMs: status == .started ? 0 : int(0...1_000_000), errors: int(0...9)))
        case 1:
            let count = int(0...500)
            let errors = int(0...count)
            var hist = [Int64](repeating: 0, count: 10)
            for _ in 0..<(count - errors) { hist[Int(int(0...9))] += 1 }
            var classes: [ClassCount] = []
            var names = Set<String>()
            for _ in 0..<int(0...5) {
                let n = label()
                if names.insert(n).inserted { classes.append(ClassCount(name: n, count: int(0...1000))) }
            }
            let stats = v2 ? (0..<int(0...3)).map { i in FeatureStats(name: "f\(i)", mean: Double(int(-100...100)) / 3, std: 0.25, min: -1e3, max: 1e3) } : []
            return .inference(InferenceRecord(tsMs: ts, windowMs: int(1...60000), count: count, errors: errors, latencyUs: sketch(count: count - errors), confidenceHist: hist, classCounts: classes, inputStats: stats))
        case 2:
            return .resources(ResourcesRecord(tsMs: ts, cpuPct: Double(int(0...10000)) / 100, memMB: Double(int(0...16000)) + 0.5, tempC: Double(int(-400...1200)) / 10, throttleEvents: int(0...5)))
        case 3:
            return .error(ErrorRecord(tsMs: ts, code: "E_" + String(int(0...999)), message: text(max: 60)))
        default:
            return .deploy(DeployRecord(tsMs: ts, fromVersion: int(0...3) == 0 ? "" : label(), toVersion: label(), result: pick(DeployResult.allCases)))
        }
    }

    mutating func message() -> TelemetryMessage {
        let v2 = int(0...1) == 1
        return TelemetryMessage(
            schemaVersion: v2 ? 2 : 1, deviceID: "dev-" + String(int(0...99999)), seq: int(1...Int64.max), sentAtMs: int(0...1_764_417_600_000),
            device: DeviceInfo(sku: label(), firmware: label(), agent: label(), accelerator: v2 ? label() : DeviceInfo.unknownAccelerator),
            model: ModelInfo(name: label(), version: label(), sha256: String(repeating: "0123456789abcdef", count: 4)),
            records: (0..<int(1...12)).map { _ in record(v2: v2) })
    }
}

@Suite struct RoundTripTests {
    @Test func encodeThenDecodeGivesTheMessageBack() throws {
        var gen = MessageGenerator(rng: SplitMix64(seed: 2026))
        for _ in 0..<2000 {
            let m = gen.message()
            let bytes = TelemetryEncoder.encode(m)
            switch TelemetryDecoder.decode(bytes, receivedAtMs: fixtureNow) {
            case .success(let back): #expect(back == m)
            case .failure(let r):
                Issue.record("rejected \(r): \(String(decoding: bytes, as: UTF8.self))")
                return
            }
        }
    }

    @Test func encoderOutputIsJSONFoundationAgreesWith() throws {
        var gen = MessageGenerator(rng: SplitMix64(seed: 5))
        for _ in 0..<200 {
            let bytes = TelemetryEncoder.encode(gen.message())
            #expect(throws: Never.self) { try JSONSerialization.jsonObject(with: Data(bytes)) }
        }
    }

    /// Random byte edits of valid messages never crash the decoder, and the verdict is stable.
    @Test func mutationsNeverCrash() {
        var gen = MessageGenerator(rng: SplitMix64(seed: 99))
        var rng = SplitMix64(seed: 100)
        let specials: [UInt8] = Array("{}[],:\"\\-0123456789eE.tfn ".utf8) + [0x00, 0x1F, 0x80, 0xC3, 0xED, 0xF4, 0xFF]
        var rejected = 0
        for _ in 0..<3000 {
            var b = TelemetryEncoder.encode(gen.message())
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let i = Int.random(in: 0..<b.count, using: &rng)
                switch Int.random(in: 0...2, using: &rng) {
                case 0: b[i] = specials.randomElement(using: &rng)!
                case 1: b.remove(at: i)
                default: b.insert(specials.randomElement(using: &rng)!, at: i)
                }
                if b.isEmpty { break }
            }
            let first = TelemetryDecoder.decode(b, receivedAtMs: fixtureNow)
            let second = TelemetryDecoder.decode(b, receivedAtMs: fixtureNow)
            #expect(first == second)
            if case .failure = first { rejected += 1 }
        }
        #expect(rejected > 2000)  // the mutations really break things
    }
}
