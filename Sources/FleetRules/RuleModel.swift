import FleetCore

/// A parsed `alerts.yaml` (CONTRACTS section 5): receivers and groups of alert rules.
public struct RulesFile: Sendable, Equatable {
    public var receivers: [Receiver]
    public var groups: [RuleGroup]

    public var allRules: [AlertRule] { groups.flatMap(\.rules) }

    public init(receivers: [Receiver], groups: [RuleGroup]) {
        self.receivers = receivers
        self.groups = groups
    }
}

public struct Receiver: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Alertmanager webhook payload v4 POSTed to `url`; HMAC-SHA256 of the body in
        /// `X-Fleetwatch-Signature` when the environment variable `secretEnv` is set.
        case webhook(url: String, secretEnv: String?)
        /// Alerts pushed to an Alertmanager's `POST /api/v2/alerts`.
        case alertmanager(url: String)
    }

    public var name: String
    public var kind: Kind

    public init(name: String, kind: Kind) {
        self.name = name
        self.kind = kind
    }
}

public struct RuleGroup: Sendable, Equatable {
    public var name: String
    public var intervalMs: Int64
    public var rules: [AlertRule]
}

public enum ComparisonOp: String, Sendable, CaseIterable {
    case lt = "<", le = "<=", gt = ">", ge = ">=", eq = "==", ne = "!="

    public func holds(_ value: Double, _ threshold: Double) -> Bool {
        switch self {
        case .lt: value < threshold
        case .le: value <= threshold
        case .gt: value > threshold
        case .ge: value >= threshold
        case .eq: value == threshold
        case .ne: value != threshold
        }
    }
}

/// Where a drift signal's reference distribution comes from: `first:DUR` or `version:V`
/// (defined in FleetCore, where the store plans which rollups make it up).
public typealias Baseline = DriftBaseline

public struct AlertRule: Sendable, Equatable {
    public var alert: String
    public var group: String
    public var signal: Signal
    public var by: [String]
    public var windowMs: Int64
    public var op: ComparisonOp
    public var threshold: Double
    /// Cohorts with fewer samples (sessions, inferences, devices or deploys, as the signal
    /// counts) get no verdict.
    public var minSamples: Int64
    public var forMs: Int64
    public var keepFiringForMs: Int64
    public var severity: String
    public var receivers: [String]
    public var labels: [String: String]
    public var annotations: [String: String]
    public var repeatIntervalMs: Int64
    /// version_adoption: a version or `latest`.
    public var target: String?
    /// offline_devices / offline_ratio.
    public var staleAfterMs: Int64
    /// Drift signals.
    public var baseline: Baseline

    public static let defaultRepeatIntervalMs: Int64 = 4 * 3_600_000
    public static let defaultStaleAfterMs: Int64 = 5 * 60_000
    public static let defaultBaseline = Baseline.default
}

/// One problem in a rules file, with where it is.
public struct RuleError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public var message: String

    public var description: String { "\(file):\(line):\(column): \(message)" }
}

/// Every problem found in a rules file, in file order.
public struct RuleErrors: Error, Sendable, Equatable, CustomStringConvertible {
    public var errors: [RuleError]
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}
