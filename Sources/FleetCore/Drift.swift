import Foundation  // log, sqrt (libm); no I/O

/// Distribution drift between a window and a baseline: PSI and Jensen-Shannon distance.
///
/// Inputs are counts, not shares; a side with no counts at all has no distribution, so the
/// result is nil (the signal is "cannot be computed", never 0).
public enum Drift {
    /// Share given to an empty bin in PSI, so `ln(a/e)` stays finite (CONTRACTS section 4).
    public static let emptyBinFloor = 0.0001

    /// Population Stability Index: `sum((a - e) * ln(a / e))` over bins, where `a` and `e` are
    /// the window's and the baseline's shares and empty bins count as `emptyBinFloor`.
    /// Histograms must have the same number of bins.
    public static func psi(actual: [Int64], expected: [Int64]) -> Double? {
        precondition(actual.count == expected.count, "PSI needs histograms of equal length")
        guard let a = shares(actual), let e = shares(expected) else { return nil }
        var total = 0.0
        for i in a.indices {
            let ai = a[i] > 0 ? a[i] : emptyBinFloor
            let ei = e[i] > 0 ? e[i] : emptyBinFloor
            total += (ai - ei) * log(ai / ei)
        }
        return total
    }

    /// Jensen-Shannon distance with base-2 logarithms: the square root of the JS divergence,
    /// in [0, 1]. Empty bins need no floor here (`0 * log 0 = 0`).
    public static func jensenShannonDistance(_ p: [Int64], _ q: [Int64]) -> Double? {
        precondition(p.count == q.count, "JS needs histograms of equal length")
        guard let ps = shares(p), let qs = shares(q) else { return nil }
        var divergence = 0.0
        for i in ps.indices {
            let m = (ps[i] + qs[i]) / 2
            if ps[i] > 0 { divergence += 0.5 * ps[i] * log2(ps[i] / m) }
            if qs[i] > 0 { divergence += 0.5 * qs[i] * log2(qs[i] / m) }
        }
        // Rounding can leave a tiny negative number for identical inputs.
        return sqrt(Swift.max(0, Swift.min(1, divergence)))
    }

    /// PSI of predicted class shares: the histograms are aligned on the union of class names
    /// (a class missing on one side is an empty bin there).
    public static func classMixPSI(actual: [String: Int64], expected: [String: Int64]) -> Double? {
        let names = Set(actual.keys).union(expected.keys).sorted()
        return psi(actual: names.map { actual[$0] ?? 0 }, expected: names.map { expected[$0] ?? 0 })
    }

    /// Class-mix Jensen-Shannon distance on the union of class names.
    public static func classMixJS(actual: [String: Int64], expected: [String: Int64]) -> Double? {
        let names = Set(actual.keys).union(expected.keys).sorted()
        return jensenShannonDistance(names.map { actual[$0] ?? 0 }, names.map { expected[$0] ?? 0 })
    }

    /// Shares of each bin; nil when there is nothing (or only negative garbage) to share.
    private static func shares(_ counts: [Int64]) -> [Double]? {
        var total = 0.0
        for c in counts where c > 0 { total += Double(c) }
        guard total > 0 else { return nil }
        return counts.map { $0 > 0 ? Double($0) / total : 0 }
    }
}
