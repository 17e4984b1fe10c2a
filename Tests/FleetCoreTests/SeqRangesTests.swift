import Testing

@testable import FleetCore

@Suite struct SeqRangesTests {
    @Test func inOrderIsOneRange() {
        var r = SeqRanges()
        for s in Int64(5)...100 { #expect(r.insert(s) == .inserted(newGap: nil)) }
        #expect(r.ranges == [5...100])
        #expect(r.gaps.isEmpty)
        #expect(r.insert(50) == .duplicate)
        #expect(r.insert(5) == .duplicate && r.insert(100) == .duplicate)
    }

    @Test func jumpsOpenGapsAndFillsCloseThem() {
        var r = SeqRanges()
        _ = r.insert(1)
        #expect(r.insert(5) == .inserted(newGap: 2...4))
        #expect(r.insert(10) == .inserted(newGap: 6...9))
        #expect(r.gaps == [2...4, 6...9])
        _ = r.insert(3)
        #expect(r.ranges == [1...1, 3...3, 5...5, 10...10])
        #expect(r.gaps == [2...2, 4...4, 6...9])
        _ = r.insert(2)
        _ = r.insert(4)
        #expect(r.ranges == [1...5, 10...10])
        for s in Int64(6)...9 { _ = r.insert(s) }
        #expect(r.ranges == [1...10] && r.gaps.isEmpty)
    }

    @Test func trackingStartsAtTheFirstSeqSeen() {
        var r = SeqRanges()
        _ = r.insert(100)
        // Older messages are stored once, but the hole below 100 is not a gap.
        #expect(r.insert(50) == .inserted(newGap: nil))
        #expect(r.insert(50) == .duplicate)
        #expect(r.gaps.isEmpty)
        #expect(r.insert(103) == .inserted(newGap: 101...102))
        #expect(r.gaps == [101...102])
        #expect(SeqRanges(r.ranges, trackingFrom: 100).gaps == [101...102])
    }

    @Test func extremesDoNotOverflow() {
        var r = SeqRanges()
        #expect(r.insert(.max) == .inserted(newGap: nil))
        #expect(r.insert(.max) == .duplicate)
        #expect(r.insert(.max - 1) == .inserted(newGap: nil))
        #expect(r.ranges == [(.max - 1)...(.max)])
        #expect(r.insert(1) == .inserted(newGap: nil))
        #expect(r.insert(Int64.min) == .inserted(newGap: nil))
        #expect(r.insert(Int64.min + 1) == .inserted(newGap: nil))
        #expect(r.ranges.first == Int64.min...(Int64.min + 1))
    }

    @Test func matchesASetModel() {
        var rng = SplitMix64(seed: 8)
        for _ in 0..<200 {
            var r = SeqRanges()
            var model = Set<Int64>()
            for _ in 0..<200 {
                let s = Int64.random(in: 1...120, using: &rng)
                let result = r.insert(s)
                #expect((result == .duplicate) == model.contains(s))
                model.insert(s)
            }
            // Ranges are sorted, disjoint, not touching, and cover exactly the model.
            var covered = Set<Int64>()
            for (i, x) in r.ranges.enumerated() {
                if i > 0 { #expect(r.ranges[i - 1].upperBound + 1 < x.lowerBound) }
                covered.formUnion(x)
            }
            #expect(covered == model)
        }
    }

    @Test func givingUpKeepsTheNewestRanges() {
        var r = SeqRanges()
        for s in stride(from: Int64(1), through: 20, by: 2) { _ = r.insert(s) }
        #expect(r.ranges.count == 10)
        #expect(r.giveUpOldest(keeping: 4) == 6)
        #expect(r.ranges.count == 4)
        #expect(r.ranges.first == 1...13 && r.ranges.last == 19...19)
    }
}
