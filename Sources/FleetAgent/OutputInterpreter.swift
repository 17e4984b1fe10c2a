import EdgeRuntime

/// How the agent reads a model's outputs as (class, top-1 confidence).
///
/// Which output is read, in order of preference:
/// 1. a float output with at least two values per row whose name says it holds class scores
///    (`prob`, `softmax`, `logit`, `score` in it): a classifier's probabilities or logits;
/// 2. a float output with a single value (an anomaly model's score);
/// 3. the first float output with at least two values;
/// 4. otherwise the first output read as an integer label.
/// For scores the argmax is the class (`class_<i>`) and its maximum, clamped to [0, 1], the
/// confidence; a single value is class 0 with the clamped value as confidence; a label is
/// that class with confidence 1.
public struct OutputInterpreter: Sendable, Equatable {
    public enum Source: Sendable, Equatable {
        case scores(output: Int)
        case scalar(output: Int)
        case label(output: Int)
    }

    public let source: Source

    public init(source: Source) {
        self.source = source
    }

    /// Chooses the output to read; nil when the model has no output at all.
    public init?(outputs: [TensorInfo]) {
        let named = { (t: TensorInfo) in ["prob", "softmax", "logit", "score"].contains { t.name.lowercased().contains($0) } }
        if let i = outputs.firstIndex(where: { $0.type == .float && $0.count >= 2 && named($0) }) {
            source = .scores(output: i)
        } else if let i = outputs.firstIndex(where: { ($0.type == .float || $0.type == .double) && $0.count == 1 }) {
            source = .scalar(output: i)
        } else if let i = outputs.firstIndex(where: { $0.type == .float && $0.count >= 2 }) {
            source = .scores(output: i)
        } else if !outputs.isEmpty {
            source = .label(output: 0)
        } else {
            return nil
        }
    }

    public var outputIndex: Int {
        switch source {
        case .scores(let i), .scalar(let i), .label(let i): i
        }
    }

    /// Argmax and clamped maximum of `values`; nil when any value is not finite (a failed
    /// inference, reported as an error).
    public static func top1(_ values: UnsafeBufferPointer<Float>) -> (classIndex: Int, confidence: Double)? {
        guard !values.isEmpty else { return nil }
        var best = 0
        var bestValue = -Float.infinity
        for i in 0..<values.count {
            let v = values[i]
            guard v.isFinite else { return nil }
            if v > bestValue {
                bestValue = v
                best = i
            }
        }
        return (best, min(1, max(0, Double(bestValue))))
    }

    /// Reads the session's outputs after `run()`; nil for a non-finite result.
    public func read(_ session: InferenceSession) -> (classIndex: Int, confidence: Double)? {
        switch source {
        case .scores(let i):
            if let p = session.floatOutput(i) { return Self.top1(p) }
            return nil
        case .scalar(let i):
            let v = session.floatOutput(i).flatMap { $0.first.map(Double.init) } ?? session.output(i).first ?? .nan
            guard v.isFinite else { return nil }
            return (0, min(1, max(0, v)))
        case .label(let i):
            let v = session.output(i).first ?? .nan
            guard v.isFinite else { return nil }
            return (Int(max(0, min(v, Double(Int32.max)))), 1)
        }
    }
}
