import Foundation
import Testing

@testable import FleetCore

@Suite struct DDSketchTests {
    @Test func keysFollowTheContract() {
        #expect(DDSketch.key(for: 0) == 0)
        #expect(DDSketch.key(for: 0.5) == 0)
        #expect(DDSketch.key(for: -3) == 0)
        #expect(DDSketch.key(for: .nan) == 0)
        #expect(DDSketch.key(for: 1) == 0)
        // ceil(ln(v)/ln(gamma)): gamma ~ 1.0202, so 1.02 is just below gamma -> key 1.
        #expect(DDSketch.key(for: 1.02) == 1)
        #expect(DDSketch.key(for: 1.0203) == 2)
        #expect(DDSketch.key(for: 1000) == Int((log(1000) / log(1.01 / 0.99)).rounded(.up)))
        #expect(DDSketch.key(for: .infinity) == DDSketch.maxKey)
    }

    @Test func everyValueIsWithinOnePercentOfItsBucket() {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<10_000 {
            let v = Double.random(in: 1...1e9, using: &rng)
            let rep = DDSketch.value(forKey: DDSketch.key(for: v))
            #expect(abs(rep - v) / v <= 0.01 + 1e-12)
        }
    }

    @Test func emptySketchHasNoQuantile() {
        let s = DDSketch()
        #expect(s.quantile(0.5) == nil)
        #expect(s.isEmpty)
        #expect(s.mean == nil)
    }

    @Test func quantileIsTheContractsRankRule() {
        // 10 values in distinct buckets: q*(N-1) = 0.5*9 = 4.5 -> first cumulative count > 4.5 is the 5th key (index 4).
        var s = DDSketch()
        let values: [Double] = [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120]
        for v in values.shuffled(using: &SplitMixBox.rng) { s.insert(v) }
        #expect(s.keys.count == 10)
        #expect(s.quantile(0.5) == DDSketch.value(forKey: DDSketch.key(for: 160)))
        #expect(s.quantile(0) == DDSketch.value(forKey: DDSketch.key(for: 10)))
        #expect(s.quantile(1) == DDSketch.value(forKey: DDSketch.key(for: 5120)))
        // 0.95*9 = 8.55 -> index 8.
        #expect(s.quantile(0.95) == DDSketch.value(forKey: DDSketch.key(for: 2560)))
        #expect(s.count == 10 && s.min == 10 && s.max == 5120 && s.sum == values.reduce(0, +))
    }

    @Test(arguments: [0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 1.0])
    func quantilesAreWithinOnePercentOfTheOrderStatistic(q: Double) {
        var rng = SplitMix64(seed: 42)
        var s = DDSketch()
        var values: [Double] = []
        for _ in 0..<5000 {
            let v = exp(Double.random(in: 0...14, using: &rng))  // 1 µs .. 1.2 s, log-uniform
            values.append(v)
            s.insert(v)
        }
        values.sort()
        let exact = values[Int((q * Double(values.count - 1)).rounded(.down))]
        let got = s.quantile(q)!
        #expect(abs(got - exact) / exact <= 0.01 + 1e-9, "q=\(q) got \(got) exact \(exact)")
    }

    @Test func mergeAddsCountsPerKeyAndIsOrderIndependent() {
        var rng = SplitMix64(seed: 3)
        var parts: [DDSketch] = []
        var all = DDSketch()
        for _ in 0..<8 {
            var p = DDSketch()
            for _ in 0..<Int.random(in: 0...200, using: &rng) {
                let v = Double.random(in: 0...50_000, using: &rng)
                p.insert(v)
                all.insert(v)
            }
            parts.append(p)
        }
        var forward = DDSketch()
        for p in parts { forward.merge(p) }
        var backward = DDSketch()
        for p in parts.reversed() { backward.merge(p) }
        #expect(forward.keys == all.keys && forward.counts == all.counts && forward.count == all.count)
        #expect(backward.keys == all.keys && backward.counts == all.counts)
        #expect(forward.min == all.min && forward.max == all.max)
        #expect(abs(forward.sum - all.sum) < 1e-6 * max(1, all.sum))
    }

    /// Merging a sketch whose keys are all present (added in place) or not (a new key array)
    /// gives what inserting every value into one sketch gives.
    @Test func mergeIntoASketchHoldingEveryKeyEqualsInsertingAll() {
        var rng = SplitMix64(seed: 11)
        for trial in 0..<200 {
            var a = DDSketch()
            var b = DDSketch()
            var all = DDSketch()
            let pool = (0..<Int.random(in: 1...40, using: &rng)).map { _ in Double.random(in: 1...60_000, using: &rng) }
            for v in pool { a.insert(v); all.insert(v) }
            // b: values from a's pool (a subset of a's keys), and in odd trials one value outside it.
            for _ in 0..<Int.random(in: 1...30, using: &rng) {
                let v = pool[Int.random(in: 0..<pool.count, using: &rng)]
                b.insert(v); all.insert(v)
            }
            if trial % 2 == 1 { b.insert(70_000 + Double(trial)); all.insert(70_000 + Double(trial)) }
            a.merge(b)
            #expect(a.keys == all.keys && a.counts == all.counts && a.count == all.count, "trial \(trial)")
            #expect(a.min == all.min && a.max == all.max)
        }
    }

    @Test func countsSaturateInsteadOfTrapping() {
        let big = DDSketch(count: .max, sum: 1, min: 1, max: 1, keys: [0], counts: [.max])
        let merged = big.merging(big)
        #expect(merged.count == .max && merged.counts == [.max])
    }

    @Test func insertTimesEqualsRepeatedInsert() {
        var a = DDSketch()
        var b = DDSketch()
        a.insert(123.4, times: 5)
        for _ in 0..<5 { b.insert(123.4) }
        #expect(a == b)
    }

    @Test func binaryFormRoundTrips() {
        var rng = SplitMix64(seed: 11)
        for n in [0, 1, 2, 50, 3000] {
            var s = DDSketch()
            for _ in 0..<n { s.insert(Double.random(in: 0...1e7, using: &rng)) }
            let bytes = s.encodedBinary()
            #expect(DDSketch(binary: bytes) == s)
            if n > 0 { #expect(bytes.count < 40 + s.keys.count * 4) }
            var appended: [UInt8] = [9, 9]
            s.appendBinary(to: &appended)
            #expect(appended == [9, 9] + bytes)
        }
    }

    @Test func malformedBinaryIsRefused() {
        var s = DDSketch()
        for v in [1.0, 10, 100] { s.insert(v) }
        let good = s.encodedBinary()
        #expect(DDSketch(binary: []) == nil)
        #expect(DDSketch(binary: [2] + good.dropFirst()) == nil)  // unknown format version
        #expect(DDSketch(binary: good.dropLast()) == nil)  // truncated
        #expect(DDSketch(binary: good + [0]) == nil)  // trailing garbage
        // Every truncation is refused, never a crash.
        for cut in 0..<good.count { #expect(DDSketch(binary: good.prefix(cut)) == nil) }
    }

    @Test func jsonFormMatchesTheContract() {
        #expect(TelemetryEncoder.encodeSketch(DDSketch()) == #"{"count":0,"sum":0,"min":0,"max":0,"keys":[],"counts":[]}"#)
        var s = DDSketch()
        s.insert(1)
        s.insert(1)
        s.insert(2.5)
        let k = DDSketch.key(for: 2.5)
        #expect(TelemetryEncoder.encodeSketch(s) == #"{"count":3,"sum":4.5,"min":1,"max":2.5,"keys":[0,\#(k)],"counts":[2,1]}"#)
    }
}

/// A shared seeded generator for tests that only need some shuffle.
enum SplitMixBox {
    nonisolated(unsafe) static var rng = SplitMix64(seed: 1)
}
