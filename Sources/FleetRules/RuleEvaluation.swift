import FleetCore

/// What one rule says about one cohort at one evaluation: its labels, its value and whether the
/// condition holds. Cohorts below `min_samples` or whose value cannot be computed get no verdict.
public struct CohortVerdict: Sendable, Equatable {
    public var labels: [String: String]
    public var value: Double?
    public var holds: Bool
}

public enum RuleEvaluation {
    /// The sample count `min_samples` is compared with, per signal.
    public static func samples(_ signal: Signal, _ a: CohortAggregate) -> Int64 {
        switch signal {
        case .sessions, .crashFreeSessions: a.terminalSessions
        case .crashFreeDevices: a.devicesWithTerminalSession
        case .errorRate, .latencyP50, .latencyP95, .latencyP99, .confidencePSI, .confidenceJS, .classMixPSI: a.inferences
        case .rollbackRate: a.deploys
        case .versionAdoption, .offlineDevices, .offlineRatio, .throttleRate: a.devices
        }
    }

    /// Verdicts for the cohort-window signals (everything but version adoption and offline).
    /// `cohorts` are (labels by the rule's `by`, aggregate with baselines filled as the rule wants).
    public static func verdicts(_ rule: AlertRule, cohorts: [([String: String], CohortAggregate)]) -> [CohortVerdict] {
        cohorts.compactMap { labels, agg in
            guard samples(rule.signal, agg) >= rule.minSamples else { return nil }
            guard let v = SignalValues(agg).value(of: rule.signal) else { return nil }
            return CohortVerdict(labels: labels, value: v, holds: rule.op.holds(v, rule.threshold))
        }
    }

    /// version_adoption: per group of the rule's `by` labels, the share of devices seen in the
    /// window that run `target` (`latest`: the highest semver seen in the group).
    /// `rows` are (labels including model_version, devices).
    public static func adoption(_ rule: AlertRule, rows: [([String: String], Int64)]) -> [CohortVerdict] {
        var groups: [[String: String]: [(String, Int64)]] = [:]
        for (labels, devices) in rows {
            var key = labels
            let version = key.removeValue(forKey: "model_version") ?? ""
            groups[key, default: []].append((version, devices))
        }
        return groups.compactMap { key, versions in
            let total = versions.reduce(0) { $0 + $1.1 }
            guard total >= max(1, rule.minSamples) else { return nil }
            let target = rule.target == nil || rule.target == "latest"
                ? versions.map(\.0).max(by: SemVer.less) ?? ""
                : rule.target!
            let on = versions.filter { $0.0 == target }.reduce(0) { $0 + $1.1 }
            let share = Double(on) / Double(total)
            var labels = key
            if !rule.by.contains("model_version") { labels["target_version"] = target }
            return CohortVerdict(labels: labels, value: share, holds: rule.op.holds(share, rule.threshold))
        }
    }

    /// offline_devices / offline_ratio per group: `rows` are (labels, devices, offline devices).
    public static func offline(_ rule: AlertRule, rows: [([String: String], Int64, Int64)]) -> [CohortVerdict] {
        rows.compactMap { labels, devices, offline in
            guard devices >= rule.minSamples, devices > 0 else { return nil }
            let v = rule.signal == .offlineRatio ? Double(offline) / Double(devices) : Double(offline)
            return CohortVerdict(labels: labels, value: v, holds: rule.op.holds(v, rule.threshold))
        }
    }

    /// The full label set of an alert instance: the cohort labels, the rule's labels,
    /// `alertname` and `severity` (CONTRACTS section 6).
    public static func alertLabels(_ rule: AlertRule, cohort: [String: String]) -> [String: String] {
        var l = rule.labels
        for (k, v) in cohort { l[k] = v }
        l["alertname"] = rule.alert
        l["severity"] = rule.severity
        return l
    }
}
