/// The seq numbers received from one device, as sorted disjoint ranges: dedupe and gap
/// detection in one structure (usually a single range per device).
///
/// Gap tracking starts at the first seq seen (CONTRACTS section 4): holes below it are not gaps,
/// although late messages from there are still stored once.
public struct SeqRanges: Sendable, Equatable {
    public private(set) var ranges: [ClosedRange<Int64>]
    /// The first seq ever seen from the device; nil before any.
    public private(set) var trackingFrom: Int64?
    /// Set by every change; the owner clears it after persisting.
    public var dirty = false

    public init(_ ranges: [ClosedRange<Int64>] = [], trackingFrom: Int64? = nil) {
        self.ranges = ranges
        self.trackingFrom = trackingFrom ?? ranges.first?.lowerBound
    }

    public enum InsertResult: Equatable, Sendable {
        case duplicate
        /// `newGap` is the hole this seq opened after the highest seq so far, if any.
        case inserted(newGap: ClosedRange<Int64>?)
    }

    public func contains(_ seq: Int64) -> Bool {
        guard let i = indexOfRange(atOrBefore: seq) else { return false }
        return ranges[i].contains(seq)
    }

    /// Records `seq`; says whether it was new and whether it opened a gap.
    public mutating func insert(_ seq: Int64) -> InsertResult {
        if trackingFrom == nil { trackingFrom = seq }
        // Fast path: the next seq in order (or a jump past the highest).
        if let last = ranges.last, last.upperBound < .max {
            let next = last.upperBound + 1
            if seq == next {
                ranges[ranges.count - 1] = last.lowerBound...seq
                dirty = true
                return .inserted(newGap: nil)
            }
            if seq > next {
                let gap = next...(seq - 1)
                ranges.append(seq...seq)
                dirty = true
                return .inserted(newGap: gap.lowerBound >= (trackingFrom ?? seq) ? gap : nil)
            }
        }
        let i = indexOfRange(atOrBefore: seq)
        if let i, ranges[i].contains(seq) { return .duplicate }
        dirty = true
        // Insert after index i (or at 0), merging with neighbours that touch.
        let at = (i ?? -1) + 1
        var lo = seq
        var hi = seq
        var start = at
        var end = at  // exclusive
        if let i, ranges[i].upperBound < .max, ranges[i].upperBound + 1 == seq {
            lo = ranges[i].lowerBound
            start = i
        }
        if at < ranges.count, ranges[at].lowerBound > .min, ranges[at].lowerBound - 1 == seq {
            hi = ranges[at].upperBound
            end = at + 1
        }
        ranges.replaceSubrange(start..<end, with: [lo...hi])
        return .inserted(newGap: nil)
    }

    /// Missing ranges at or above the tracking start, oldest first.
    public var gaps: [ClosedRange<Int64>] {
        guard ranges.count > 1 else { return [] }
        let from = trackingFrom ?? .min
        var out: [ClosedRange<Int64>] = []
        for k in 1..<ranges.count {
            let lo = ranges[k - 1].upperBound + 1
            let hi = ranges[k].lowerBound - 1
            if hi < from { continue }
            out.append(max(lo, from)...hi)
        }
        return out
    }

    /// Merges the oldest ranges until at most `keeping` remain; returns how many gaps were given
    /// up (their seqs then count as received, so a pathological device cannot grow this forever).
    public mutating func giveUpOldest(keeping: Int) -> Int64 {
        guard ranges.count > keeping, keeping >= 1 else { return 0 }
        let merge = ranges.count - keeping + 1
        let merged = ranges[0].lowerBound...ranges[merge - 1].upperBound
        ranges.replaceSubrange(0..<merge, with: [merged])
        dirty = true
        return Int64(merge - 1)
    }

    /// The index of the last range whose lower bound is <= seq.
    private func indexOfRange(atOrBefore seq: Int64) -> Int? {
        var lo = 0
        var hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].lowerBound <= seq { lo = mid + 1 } else { hi = mid }
        }
        return lo == 0 ? nil : lo - 1
    }
}
