/// When a cell turns red: the alert rules' own thresholds (read from `alerts.yaml`), and
/// documented defaults for signals the rules file does not mention.
///
/// The rules file is only scanned for `signal`, `op` and `threshold` of each rule; validating it
/// is `fleetwatch rules check`'s job, so anything unreadable here is skipped, not reported.
public struct Thresholds: Sendable, Equatable {
    public enum Op: String, Sendable, CaseIterable {
        case lt = "<", le = "<=", gt = ">", ge = ">=", eq = "==", ne = "!="

        public func holds(_ v: Double, _ t: Double) -> Bool {
            switch self {
            case .lt: v < t
            case .le: v <= t
            case .gt: v > t
            case .ge: v >= t
            case .eq: v == t
            case .ne: v != t
            }
        }
    }

    public struct Rule: Sendable, Equatable {
        public var signal: String
        public var op: Op
        public var threshold: Double
        /// The alert's name, or "default".
        public var source: String

        public init(signal: String, op: Op, threshold: Double, source: String) {
            self.signal = signal
            self.op = op
            self.threshold = threshold
            self.source = source
        }
    }

    /// Rules by signal name (CONTRACTS section 4 names).
    public private(set) var rules: [String: [Rule]]

    public init(rules: [Rule]) {
        self.rules = Dictionary(grouping: rules, by: \.signal)
    }

    /// Used for any signal the rules file leaves out (docs/tui.md).
    public static let defaults = Thresholds(rules: [
        Rule(signal: "crash_free_sessions", op: .lt, threshold: 0.995, source: "default"),
        Rule(signal: "crash_free_devices", op: .lt, threshold: 0.99, source: "default"),
        Rule(signal: "error_rate", op: .gt, threshold: 0.01, source: "default"),
        Rule(signal: "latency_p50_ms", op: .gt, threshold: 50, source: "default"),
        Rule(signal: "latency_p95_ms", op: .gt, threshold: 100, source: "default"),
        Rule(signal: "latency_p99_ms", op: .gt, threshold: 250, source: "default"),
        Rule(signal: "confidence_psi", op: .gt, threshold: 0.2, source: "default"),
        Rule(signal: "confidence_js", op: .gt, threshold: 0.1, source: "default"),
        Rule(signal: "class_mix_psi", op: .gt, threshold: 0.2, source: "default"),
        Rule(signal: "rollback_rate", op: .gt, threshold: 0.05, source: "default"),
        Rule(signal: "throttle_rate", op: .gt, threshold: 1, source: "default"),
        Rule(signal: "offline_ratio", op: .gt, threshold: 0.05, source: "default"),
    ])

    /// Whether `value` of `signal` breaches any rule for it (nil never does).
    public func breached(_ signal: String, _ value: Double?) -> Bool {
        guard let value, value.isFinite, let rs = rules[signal] else { return false }
        return rs.contains { $0.op.holds(value, $0.threshold) }
    }

    /// Red when breached, plain otherwise.
    public func style(_ signal: String, _ value: Double?) -> Style {
        breached(signal, value) ? .bad : .plain
    }

    /// The defaults with every signal the file has rules for replaced by the file's rules.
    public static func loading(yaml: String) -> Thresholds {
        let fromFile = parseRules(yaml)
        var merged = defaults.rules
        for (signal, rs) in Dictionary(grouping: fromFile, by: \.signal) { merged[signal] = rs }
        return Thresholds(rules: merged.values.flatMap { $0 })
    }

    /// Every rule of an alerts.yaml that has a known `op` and a numeric `threshold`.
    ///
    /// A line scanner, not a YAML parser: a rule starts at `- alert: NAME` (or a list item holding
    /// `alert:`), and `signal:`, `op:` and `threshold:` lines that follow belong to it. Flow maps
    /// (`{signal: x, ...}`) are not read.
    public static func parseRules(_ yaml: String) -> [Rule] {
        var out: [Rule] = []
        var name: String?
        var fields: [String: String] = [:]
        // Indentation of the dash of the list item being read, and of the rule's own dash once
        // `alert:` marked the item as a rule: a dash deeper than that is a list inside the rule
        // (e.g. `receivers:` in block style), a key at or left of it ends the rule.
        var itemIndent = 0
        var ruleIndent: Int?
        func flush() {
            if let name, let signal = fields["signal"], let opText = fields["op"], let op = Op(rawValue: opText),
                let tText = fields["threshold"], let t = Double(tText)
            {
                out.append(Rule(signal: signal, op: op, threshold: t, source: name))
            }
            name = nil
            ruleIndent = nil
            fields = [:]
        }
        for raw in yaml.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            var line = Substring(raw)
            let indent = line.prefix { $0 == " " }.count
            line = line.drop { $0 == " " || $0 == "\t" }
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("- ") || line == "-" {
                if let r = ruleIndent, indent > r { continue }
                flush()
                itemIndent = indent
                line = line.dropFirst().drop { $0 == " " }
            } else if let r = ruleIndent, indent <= r {
                flush()
            }
            if line.hasPrefix("alert:") {
                name = value(of: line.dropFirst("alert:".count))
                ruleIndent = itemIndent
            }
            for key in ["signal", "op", "threshold"] where line.hasPrefix(key + ":") {
                fields[key] = value(of: line.dropFirst(key.count + 1))
            }
        }
        flush()
        return out
    }

    /// A scalar value: trimmed, an unquoted trailing `# comment` removed, quotes stripped.
    static func value(of s: Substring) -> String {
        var v = s.trimmingSpaces()
        if let q = v.first, q == "\"" || q == "'" {
            let body = v.dropFirst()
            if let end = body.firstIndex(of: q) { return String(body[..<end]) }
            return String(body)
        }
        var prev: Character = " "
        for i in v.indices {
            if v[i] == "#" && (prev == " " || prev == "\t") {
                v = v[..<i].trimmingSpaces()
                break
            }
            prev = v[i]
        }
        return String(v)
    }
}

extension Substring {
    func trimmingSpaces() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}
