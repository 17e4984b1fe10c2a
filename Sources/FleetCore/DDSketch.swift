import Foundation  // log, pow, ceil (libm); no I/O

/// The contract's latency sketch: a DDSketch with 1% relative accuracy over microseconds.
///
/// A value `v >= 1` goes to bucket `ceil(ln v / ln gamma)` with `gamma = 1.01/0.99`; values
/// below 1 go to bucket 0. Buckets are kept sparse and sorted (`keys` strictly increasing,
/// `counts` each >= 1), which is also the wire form, so encoding is a copy. Sketches from any
/// devices merge by adding counts per key. Counts saturate at `Int64.max` instead of trapping:
/// merged input is untrusted.
public struct DDSketch: Sendable, Equatable {
    public static let relativeAccuracy = 0.01
    public static let gamma = (1 + relativeAccuracy) / (1 - relativeAccuracy)
    public static let lnGamma = log(gamma)
    /// Bucket keys above this are rejected on decode (a latency of about e^2000 µs).
    public static let maxKey = 100_000
    /// Most buckets one encoded sketch may carry.
    public static let maxBuckets = 4096

    public private(set) var count: Int64
    public private(set) var sum: Double
    public private(set) var min: Double
    public private(set) var max: Double
    public private(set) var keys: [Int]
    public private(set) var counts: [Int64]

    /// The empty sketch: count 0, sum/min/max 0, no buckets.
    public init() {
        count = 0
        sum = 0
        min = 0
        max = 0
        keys = []
        counts = []
    }

    /// A sketch from already-validated parts (the decoder checks every contract rule first).
    public init(count: Int64, sum: Double, min: Double, max: Double, keys: [Int], counts: [Int64]) {
        self.count = count
        self.sum = sum
        self.min = min
        self.max = max
        self.keys = keys
        self.counts = counts
    }

    public var isEmpty: Bool { count == 0 }

    /// The bucket of a value in microseconds.
    @inlinable
    public static func key(for value: Double) -> Int {
        guard value >= 1 else { return 0 }  // also NaN
        let k = (log(value) / lnGamma).rounded(.up)
        return k >= Double(maxKey) ? maxKey : Int(k)
    }

    /// The representative value of a bucket: `2 * gamma^k / (gamma + 1)` microseconds.
    @inlinable
    public static func value(forKey key: Int) -> Double {
        2 * pow(gamma, Double(key)) / (gamma + 1)
    }

    // MARK: - Insert and merge

    /// Adds one value (microseconds; negative and NaN count as 0).
    public mutating func insert(_ value: Double) {
        insert(value, times: 1)
    }

    /// Adds `n >= 1` copies of a value.
    public mutating func insert(_ value: Double, times n: Int64) {
        precondition(n >= 1, "insert at least once")
        let v = value.isFinite && value > 0 ? value : 0
        if count == 0 {
            min = v
            max = v
        } else {
            if v < min { min = v }
            if v > max { max = v }
        }
        count = Self.saturatingAdd(count, n)
        sum += v * Double(n)
        let k = Self.key(for: v)
        // Binary search: most recent values land near the existing keys.
        var lo = 0
        var hi = keys.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if keys[mid] < k { lo = mid + 1 } else { hi = mid }
        }
        if lo < keys.count && keys[lo] == k {
            counts[lo] = Self.saturatingAdd(counts[lo], n)
        } else {
            keys.insert(k, at: lo)
            counts.insert(n, at: lo)
        }
    }

    /// Adds every value of `other` to this sketch.
    public mutating func merge(_ other: DDSketch) {
        guard other.count > 0 else { return }
        guard count > 0 else {
            self = other
            return
        }
        min = Swift.min(min, other.min)
        max = Swift.max(max, other.max)
        sum += other.sum
        count = Self.saturatingAdd(count, other.count)
        // The usual case when summing one stream (a rollup, a device's window): every key of
        // `other` is already here, so counts are added in place, with no new arrays.
        if other.keys.count <= keys.count {
            var i = 0
            var subset = true
            for k in other.keys {
                while i < keys.count && keys[i] < k { i += 1 }
                if i == keys.count || keys[i] != k { subset = false; break }
                i += 1
            }
            if subset {
                i = 0
                for (j, k) in other.keys.enumerated() {
                    while keys[i] < k { i += 1 }
                    counts[i] = Self.saturatingAdd(counts[i], other.counts[j])
                    i += 1
                }
                return
            }
        }
        var mk: [Int] = []
        var mc: [Int64] = []
        mk.reserveCapacity(keys.count + other.keys.count)
        mc.reserveCapacity(keys.count + other.keys.count)
        var i = 0
        var j = 0
        while i < keys.count || j < other.keys.count {
            if j == other.keys.count || (i < keys.count && keys[i] < other.keys[j]) {
                mk.append(keys[i]); mc.append(counts[i]); i += 1
            } else if i == keys.count || other.keys[j] < keys[i] {
                mk.append(other.keys[j]); mc.append(other.counts[j]); j += 1
            } else {
                mk.append(keys[i]); mc.append(Self.saturatingAdd(counts[i], other.counts[j])); i += 1; j += 1
            }
        }
        keys = mk
        counts = mc
    }

    public func merging(_ other: DDSketch) -> DDSketch {
        var copy = self
        copy.merge(other)
        return copy
    }

    // MARK: - Queries

    /// Quantile `q` in [0, 1], in microseconds; nil for an empty sketch.
    ///
    /// The contract's definition: the first key (increasing) at which the cumulative count
    /// exceeds `q * (N - 1)`, read as that bucket's representative value.
    public func quantile(_ q: Double) -> Double? {
        guard count > 0, !keys.isEmpty else { return nil }
        let qq = q.isNaN ? 0 : Swift.min(1, Swift.max(0, q))
        let rank = qq * Double(count - 1)
        var cumulative: Double = 0
        for (i, k) in keys.enumerated() {
            cumulative += Double(counts[i])
            if cumulative > rank { return Self.value(forKey: k) }
        }
        return Self.value(forKey: keys[keys.count - 1])
    }

    /// Mean of the inserted values; nil when empty.
    public var mean: Double? { count > 0 ? sum / Double(count) : nil }

    @usableFromInline
    static func saturatingAdd(_ a: Int64, _ b: Int64) -> Int64 {
        let (r, o) = a.addingReportingOverflow(b)
        return o ? (b > 0 ? Int64.max : Int64.min) : r
    }
}

// MARK: - Compact binary form (storage)

extension DDSketch {
    /// A compact, versioned binary form for storage: varints, keys delta-encoded.
    /// About 2-3 bytes per bucket, against ~10 in the JSON form.
    public func encodedBinary() -> [UInt8] {
        var out: [UInt8] = []
        appendBinary(to: &out)
        return out
    }

    /// Appends `encodedBinary()` to `out` (the writer encodes into one reused buffer).
    public func appendBinary(to out: inout [UInt8]) {
        out.reserveCapacity(out.count + 32 + keys.count * 3)
        out.append(1)  // format version
        Self.putVarint(UInt64(bitPattern: count), &out)
        Self.putDouble(sum, &out)
        Self.putDouble(min, &out)
        Self.putDouble(max, &out)
        Self.putVarint(UInt64(keys.count), &out)
        var previous = 0
        for (i, k) in keys.enumerated() {
            Self.putVarint(UInt64(k - previous), &out)
            previous = k
            Self.putVarint(UInt64(bitPattern: counts[i]), &out)
        }
    }

    /// Decodes `encodedBinary()`; nil on any malformed or inconsistent input.
    public init?(binary bytes: some Collection<UInt8>) {
        var it = Array(bytes)[...]
        guard it.popFirst() == 1,
            let c = Self.getVarint(&it), let s = Self.getDouble(&it),
            let lo = Self.getDouble(&it), let hi = Self.getDouble(&it),
            let n = Self.getVarint(&it), n <= UInt64(Self.maxBuckets * 16)
        else { return nil }
        var keys: [Int] = []
        var counts: [Int64] = []
        keys.reserveCapacity(Int(n))
        counts.reserveCapacity(Int(n))
        var k = 0
        var total: Int64 = 0
        for i in 0..<Int(n) {
            guard let d = Self.getVarint(&it), let cc = Self.getVarint(&it),
                d <= UInt64(Self.maxKey), (i == 0 || d > 0)
            else { return nil }
            k += Int(d)
            let ci = Int64(bitPattern: cc)
            guard ci >= 1, k <= Self.maxKey else { return nil }
            total = Self.saturatingAdd(total, ci)
            keys.append(k)
            counts.append(ci)
        }
        guard it.isEmpty, total == Int64(bitPattern: c) else { return nil }
        self.init(count: total, sum: s, min: lo, max: hi, keys: keys, counts: counts)
    }

    private static func putVarint(_ value: UInt64, _ out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    private static func getVarint(_ it: inout ArraySlice<UInt8>) -> UInt64? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while let b = it.popFirst() {
            guard shift < 64 else { return nil }
            result |= UInt64(b & 0x7f) << shift
            if b < 0x80 { return result }
            shift += 7
        }
        return nil
    }

    private static func putDouble(_ d: Double, _ out: inout [UInt8]) {
        var bits = d.bitPattern.littleEndian
        withUnsafeBytes(of: &bits) { out.append(contentsOf: $0) }
    }

    private static func getDouble(_ it: inout ArraySlice<UInt8>) -> Double? {
        guard it.count >= 8 else { return nil }
        var bits: UInt64 = 0
        for i in 0..<8 { bits |= UInt64(it[it.startIndex + i]) << (8 * UInt64(i)) }
        it = it.dropFirst(8)
        return Double(bitPattern: UInt64(littleEndian: bits))
    }
}
