import FleetCore

/// One window of inferences, aggregated into the contract's `inference` record.
///
/// Pure: the caller measures latency and reads the clock; this only counts. Every successful
/// inference adds one value to the latency sketch and one to the confidence histogram, every
/// failed one only to `count` and `errors`, so a finished record always satisfies the
/// contract's consistency rule (sketch count = histogram sum = count - errors).
public struct WindowAggregator: Sendable {
    /// Class names beyond this many distinct indexes fold into `class_other` (the schema allows
    /// 256 names per record).
    public static let maxClasses = TelemetryDecoder.maxClasses
    /// Input features summarised for schema 2 (`input_stats` holds at most 64).
    public static let maxInputStats = TelemetryDecoder.maxInputStats
    /// Individual error records kept per window; the rest are summarised in one record.
    public static let maxErrorRecords = 20

    public private(set) var count: Int64 = 0
    public private(set) var errors: Int64 = 0
    private var latency = DDSketch()
    private var histogram = [Int64](repeating: 0, count: InferenceRecord.histogramBins)
    /// Count per class index; `maxClasses - 1` is `class_other`.
    private var classes: [Int: Int64] = [:]
    private var features: [RunningStats] = []
    private var errorRecords: [ErrorRecord] = []
    private var suppressedErrors: Int64 = 0
    private let trackInputs: Bool

    /// `trackInputs`: keep per-feature statistics for schema 2's `input_stats`.
    public init(trackInputs: Bool = false) {
        self.trackInputs = trackInputs
    }

    /// A successful inference: its latency (µs), top-1 confidence (clamped to [0, 1]) and class.
    public mutating func recordSuccess(latencyUs: Double, confidence: Double, classIndex: Int, input: UnsafeBufferPointer<Float>? = nil) {
        count += 1
        latency.insert(latencyUs)
        let c = confidence.isFinite ? min(1, max(0, confidence)) : 0
        histogram[InferenceRecord.confidenceBin(c)] += 1
        let k = classIndex < 0 ? 0 : min(classIndex, Self.maxClasses - 1)
        classes[k, default: 0] += 1
        if trackInputs, let input { observe(input) }
    }

    /// A failed inference (runtime failure, bad input row, injected fault). `code` and
    /// `message` become an `error` record (the first `maxErrorRecords` per window).
    public mutating func recordError(tsMs: Int64, code: String, message: String) {
        count += 1
        errors += 1
        noteError(tsMs: tsMs, code: code, message: message)
    }

    /// An error that is not a failed inference (model refused, replay unavailable): reported
    /// as an `error` record, not counted in `errors`.
    public mutating func noteError(tsMs: Int64, code: String, message: String) {
        if errorRecords.count < Self.maxErrorRecords {
            errorRecords.append(ErrorRecord(tsMs: tsMs, code: code, message: Self.clip(message)))
        } else {
            suppressedErrors += 1
        }
    }

    /// The window's `inference` record (ending at `endMs`, `windowMs` long) and its error
    /// records; resets for the next window.
    public mutating func finish(endMs: Int64, windowMs: Int64) -> (inference: InferenceRecord, errors: [ErrorRecord]) {
        let names = classes.keys.sorted().map { k in
            ClassCount(name: k == Self.maxClasses - 1 ? "class_other" : "class_\(k)", count: classes[k]!)
        }
        let record = InferenceRecord(
            tsMs: endMs, windowMs: max(1, windowMs), count: count, errors: errors, latencyUs: latency,
            confidenceHist: histogram, classCounts: names,
            inputStats: features.enumerated().map { $1.stats(name: "f\($0)") })
        var errs = errorRecords
        if suppressedErrors > 0 {
            errs.append(ErrorRecord(tsMs: endMs, code: "ERRORS_SUPPRESSED", message: "\(suppressedErrors) more errors in this window were not reported one by one"))
        }
        self = WindowAggregator(trackInputs: trackInputs)
        return (record, errs)
    }

    private mutating func observe(_ input: UnsafeBufferPointer<Float>) {
        let n = min(input.count, Self.maxInputStats)
        if features.count != n { features = Array(repeating: RunningStats(), count: n) }
        for i in 0..<n { features[i].add(Double(input[i])) }
    }

    /// At most 512 code points (the schema's limit for `message`).
    static func clip(_ s: String) -> String {
        s.unicodeScalars.count <= 512 ? s : String(String.UnicodeScalarView(s.unicodeScalars.prefix(512)))
    }
}

/// Welford's running mean and variance, with min and max.
struct RunningStats: Sendable {
    var n: Int64 = 0
    var mean = 0.0
    var m2 = 0.0
    var lo = Double.infinity
    var hi = -Double.infinity

    mutating func add(_ x: Double) {
        guard x.isFinite else { return }
        n += 1
        let d = x - mean
        mean += d / Double(n)
        m2 += d * (x - mean)
        lo = min(lo, x)
        hi = max(hi, x)
    }

    func stats(name: String) -> FeatureStats {
        guard n > 0 else { return FeatureStats(name: name, mean: 0, std: 0, min: 0, max: 0) }
        // The schema bounds every statistic to [-1e15, 1e15] (std to [0, 1e15]).
        func bound(_ x: Double) -> Double { x.isFinite ? min(1e15, max(-1e15, x)) : 0 }
        let variance = n > 1 ? m2 / Double(n) : 0
        return FeatureStats(name: name, mean: bound(mean), std: max(0, bound(variance.squareRoot())), min: bound(lo), max: bound(hi))
    }
}
