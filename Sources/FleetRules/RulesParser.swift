import FleetCore
import Yams

/// Parses `alerts.yaml` into a typed `RulesFile`, reporting every problem with
/// file:line:column (unknown keys, bad durations, unknown signals, unknown receivers, duplicate
/// alert names in a group, bad label names...). Pure: text in, model or errors out.
public enum RulesParser {
    public static let labelNamePattern = "^[a-zA-Z_][a-zA-Z0-9_]*$"
    static let cohortLabels: Set<String> = ["model_name", "model_version", "sku", "firmware", "accelerator", "device_id"]
    public static let driftSignals: Set<Signal> = [.confidencePSI, .confidenceJS, .classMixPSI]
    static let offlineSignals: Set<Signal> = [.offlineDevices, .offlineRatio]

    public static func parse(_ text: String, file: String) -> Result<RulesFile, RuleErrors> {
        var p = Walker(file: file)
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let e as YamlError {
            return .failure(RuleErrors(errors: [p.yamlError(e)]))
        } catch {
            return .failure(RuleErrors(errors: [RuleError(file: file, line: 1, column: 1, message: "\(error)")]))
        }
        guard let root else { return .failure(RuleErrors(errors: [RuleError(file: file, line: 1, column: 1, message: "the file is empty: expected 'receivers' and 'groups'")])) }
        let result = p.rulesFile(root)
        let sorted = p.errors.enumerated().sorted { ($0.element.line, $0.element.column, $0.offset) < ($1.element.line, $1.element.column, $1.offset) }.map(\.element)
        return sorted.isEmpty ? .success(result) : .failure(RuleErrors(errors: sorted))
    }
}

/// Walks the YAML tree, collecting errors rather than stopping at the first.
struct Walker {
    let file: String
    var errors: [RuleError] = []

    mutating func error(_ node: Node?, _ message: String) {
        let m = node?.mark
        errors.append(RuleError(file: file, line: m?.line ?? 1, column: m?.column ?? 1, message: message))
    }

    func yamlError(_ e: YamlError) -> RuleError {
        switch e {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _):
            return RuleError(file: file, line: mark.line, column: mark.column, message: "YAML: \(problem)")
        default:
            return RuleError(file: file, line: 1, column: 1, message: "YAML: \(e)")
        }
    }

    /// The mapping's entries as (key, key node, value node), reporting unknown and duplicate keys.
    mutating func entries(_ node: Node, _ what: String, allowed: Set<String>) -> [(String, Node, Node)]? {
        guard case .mapping(let map) = node else {
            error(node, "\(what) must be a mapping")
            return nil
        }
        var seen = Set<String>()
        var out: [(String, Node, Node)] = []
        for (k, v) in map {
            guard let key = k.string else {
                error(k, "\(what): keys must be strings")
                continue
            }
            if !seen.insert(key).inserted {
                error(k, "\(what): duplicate key '\(key)'")
                continue
            }
            if !allowed.contains(key) {
                error(k, "\(what): unknown key '\(key)' (expected one of: \(allowed.sorted().joined(separator: ", ")))")
                continue
            }
            out.append((key, k, v))
        }
        return out
    }

    mutating func string(_ node: Node, _ what: String) -> String? {
        guard case .scalar(let s) = node else {
            error(node, "\(what) must be a string")
            return nil
        }
        return s.string
    }

    mutating func duration(_ node: Node, _ what: String) -> Int64? {
        guard let s = string(node, what) else { return nil }
        guard let ms = PromDuration.parseMs(s) else {
            error(node, "\(what): '\(s)' is not a duration (use 30s, 5m, 1h, 7d, 1h30m)")
            return nil
        }
        return ms
    }

    mutating func number(_ node: Node, _ what: String) -> Double? {
        guard let s = string(node, what) else { return nil }
        guard let d = Double(s), d.isFinite else {
            error(node, "\(what): '\(s)' is not a number")
            return nil
        }
        return d
    }

    mutating func stringList(_ node: Node, _ what: String) -> [String]? {
        if case .scalar = node, let s = string(node, what) { return [s] }
        guard case .sequence(let seq) = node else {
            error(node, "\(what) must be a list")
            return nil
        }
        var out: [String] = []
        for n in seq { if let s = string(n, "\(what) item") { out.append(s) } }
        return out
    }

    mutating func stringMap(_ node: Node, _ what: String, labelNames: Bool) -> [String: String]? {
        guard case .mapping(let map) = node else {
            error(node, "\(what) must be a mapping")
            return nil
        }
        var out: [String: String] = [:]
        for (k, v) in map {
            guard let key = string(k, "\(what) key"), let value = string(v, "\(what).\(k.string ?? "")") else { continue }
            if labelNames && !isLabelName(key) { error(k, "\(what): '\(key)' is not a valid label name (\(RulesParser.labelNamePattern))") }
            if out[key] != nil { error(k, "\(what): duplicate key '\(key)'") }
            out[key] = value
        }
        return out
    }

    func isLabelName(_ s: String) -> Bool {
        guard let f = s.unicodeScalars.first, f == "_" || (f.isASCII && f.properties.isAlphabetic) else { return false }
        return s.unicodeScalars.allSatisfy { $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }
    }

    // MARK: File

    mutating func rulesFile(_ root: Node) -> RulesFile {
        var receivers: [Receiver] = []
        var groups: [RuleGroup] = []
        guard let top = entries(root, "the file", allowed: ["receivers", "groups"]) else { return RulesFile(receivers: [], groups: []) }
        var receiversNode: Node?
        var groupsNode: Node?
        for (key, _, value) in top {
            if key == "receivers" { receiversNode = value } else { groupsNode = value }
        }
        if let r = receiversNode {
            if case .sequence(let seq) = r {
                var names = Set<String>()
                for n in seq {
                    if let rec = receiver(n) {
                        if !names.insert(rec.name).inserted { error(n, "duplicate receiver name '\(rec.name)'") } else { receivers.append(rec) }
                    }
                }
            } else {
                error(r, "receivers must be a list")
            }
        }
        let receiverNames = Set(receivers.map(\.name))
        guard let g = groupsNode else {
            error(root, "missing 'groups'")
            return RulesFile(receivers: receivers, groups: [])
        }
        guard case .sequence(let seq) = g else {
            error(g, "groups must be a list")
            return RulesFile(receivers: receivers, groups: [])
        }
        var groupNames = Set<String>()
        for n in seq {
            if let group = group(n, receiverNames: receiverNames) {
                if !groupNames.insert(group.name).inserted { error(n, "duplicate group name '\(group.name)'") }
                groups.append(group)
            }
        }
        return RulesFile(receivers: receivers, groups: groups)
    }

    mutating func receiver(_ node: Node) -> Receiver? {
        guard let e = entries(node, "receiver", allowed: ["name", "webhook", "alertmanager"]) else { return nil }
        var name: String?
        var kind: Receiver.Kind?
        for (key, _, value) in e {
            switch key {
            case "name": name = string(value, "receiver name")
            case "webhook":
                guard let w = entries(value, "webhook", allowed: ["url", "secret_env"]) else { continue }
                var url: String?
                var secret: String?
                for (k, _, v) in w { if k == "url" { url = string(v, "webhook url") } else { secret = string(v, "secret_env") } }
                if let url, isHTTPURL(url) { kind = .webhook(url: url, secretEnv: secret) } else { error(value, "webhook needs a url (http:// or https://)") }
            default:
                guard let a = entries(value, "alertmanager", allowed: ["url"]) else { continue }
                let url = a.first.flatMap { string($0.2, "alertmanager url") }
                if let url, isHTTPURL(url) { kind = .alertmanager(url: url) } else { error(value, "alertmanager needs a url (http:// or https://)") }
            }
        }
        guard let name, !name.isEmpty else {
            error(node, "a receiver needs a name")
            return nil
        }
        guard let kind else {
            error(node, "receiver '\(name)' needs one of webhook or alertmanager")
            return nil
        }
        return Receiver(name: name, kind: kind)
    }

    func isHTTPURL(_ s: String) -> Bool { s.hasPrefix("http://") || s.hasPrefix("https://") }

    mutating func group(_ node: Node, receiverNames: Set<String>) -> RuleGroup? {
        guard let e = entries(node, "group", allowed: ["name", "interval", "rules"]) else { return nil }
        var name: String?
        var interval: Int64 = 30_000
        var rulesNode: Node?
        for (key, _, value) in e {
            switch key {
            case "name": name = string(value, "group name")
            case "interval":
                if let d = duration(value, "interval") {
                    if d < 1000 { error(value, "interval must be at least 1s") } else { interval = d }
                }
            default: rulesNode = value
            }
        }
        guard let name, !name.isEmpty else {
            error(node, "a group needs a name")
            return nil
        }
        var rules: [AlertRule] = []
        if let r = rulesNode {
            if case .sequence(let seq) = r {
                var names = Set<String>()
                for n in seq {
                    guard let rule = rule(n, group: name, receiverNames: receiverNames) else { continue }
                    if !names.insert(rule.alert).inserted {
                        error(n, "duplicate alert name '\(rule.alert)' in group '\(name)'")
                        continue
                    }
                    rules.append(rule)
                }
            } else {
                error(r, "rules must be a list")
            }
        } else {
            error(node, "group '\(name)' has no rules")
        }
        return RuleGroup(name: name, intervalMs: interval, rules: rules)
    }

    static let ruleKeys: Set<String> = [
        "alert", "signal", "by", "window", "op", "threshold", "min_samples", "for", "keep_firing_for", "severity",
        "receivers", "labels", "annotations", "repeat_interval", "target", "stale_after", "baseline",
    ]

    mutating func rule(_ node: Node, group: String, receiverNames: Set<String>) -> AlertRule? {
        let before = errors.count
        guard let e = entries(node, "rule", allowed: Self.ruleKeys) else { return nil }
        var fields: [String: Node] = [:]
        var keyNodes: [String: Node] = [:]
        for (k, kn, v) in e {
            fields[k] = v
            keyNodes[k] = kn
        }
        func required(_ k: String) -> Node? {
            if let n = fields[k] { return n }
            error(node, "rule\(fields["alert"]?.string.map { " '\($0)'" } ?? ""): missing '\(k)'")
            return nil
        }
        let alert = required("alert").flatMap { string($0, "alert") } ?? ""
        if !alert.isEmpty && !isLabelName(alert) { error(fields["alert"], "alert name '\(alert)' must match \(RulesParser.labelNamePattern)") }
        var signal: Signal?
        if let n = required("signal"), let s = string(n, "signal") {
            signal = Signal(rawValue: s)
            if signal == nil || signal == .sessions {
                if signal == nil { error(n, "unknown signal '\(s)' (known: \(Signal.allCases.map(\.rawValue).joined(separator: ", ")))") }
            }
        }
        var by: [String] = []
        if let n = fields["by"], let list = stringList(n, "by") {
            for l in list where !RulesParser.cohortLabels.contains(l) {
                error(n, "by: unknown cohort label '\(l)' (use: \(RulesParser.cohortLabels.sorted().joined(separator: ", ")))")
            }
            by = list
        }
        let window = fields["window"].flatMap { duration($0, "window") } ?? 3_600_000
        var op: ComparisonOp = .gt
        if let n = required("op"), let s = string(n, "op") {
            if let o = ComparisonOp(rawValue: s) { op = o } else { error(n, "op '\(s)' is not one of < <= > >= == !=") }
        }
        let threshold = required("threshold").flatMap { number($0, "threshold") } ?? 0
        var minSamples: Int64 = 0
        if let n = fields["min_samples"], let s = string(n, "min_samples") {
            if let v = Int64(s), v >= 0 { minSamples = v } else { error(n, "min_samples '\(s)' must be a whole number >= 0") }
        }
        let forMs = fields["for"].flatMap { duration($0, "for") } ?? 0
        let keep = fields["keep_firing_for"].flatMap { duration($0, "keep_firing_for") } ?? 0
        let repeatMs = fields["repeat_interval"].flatMap { duration($0, "repeat_interval") } ?? AlertRule.defaultRepeatIntervalMs
        let severity = fields["severity"].flatMap { string($0, "severity") } ?? "warning"
        var receivers: [String] = []
        if let n = fields["receivers"], let list = stringList(n, "receivers") {
            for r in list where !receiverNames.contains(r) { error(n, "unknown receiver '\(r)'\(receiverNames.isEmpty ? " (no receivers are defined)" : " (defined: \(receiverNames.sorted().joined(separator: ", ")))")") }
            receivers = list
        }
        var labels: [String: String] = [:]
        if let n = fields["labels"], let m = stringMap(n, "labels", labelNames: true) {
            for k in ["alertname", "severity"] + RulesParser.cohortLabels.sorted() where m[k] != nil {
                error(keyNodes["labels"], "labels: '\(k)' is set by fleetwatch and cannot be overridden")
            }
            labels = m
        }
        let annotations = fields["annotations"].flatMap { stringMap($0, "annotations", labelNames: true) } ?? [:]
        if let a = fields["annotations"], case .mapping(let map) = a {
            for (_, v) in map { if let t = v.string, let problem = AlertTemplate.check(t) { error(v, "annotation template: \(problem)") } }
        }

        // Per-signal keys.
        var target: String?
        if let n = fields["target"] {
            target = string(n, "target")
            if signal != .versionAdoption { error(keyNodes["target"], "target is only valid for signal version_adoption") }
        } else if signal == .versionAdoption {
            target = "latest"
        }
        var staleAfter = AlertRule.defaultStaleAfterMs
        if let n = fields["stale_after"] {
            if let signal, !RulesParser.offlineSignals.contains(signal) { error(keyNodes["stale_after"], "stale_after is only valid for offline_devices and offline_ratio") }
            if let d = duration(n, "stale_after") { staleAfter = d }
        }
        var baseline = AlertRule.defaultBaseline
        if let n = fields["baseline"] {
            if let signal, !RulesParser.driftSignals.contains(signal) { error(keyNodes["baseline"], "baseline is only valid for drift signals (confidence_psi, confidence_js, class_mix_psi)") }
            if let s = string(n, "baseline") {
                if s.hasPrefix("first:"), let d = PromDuration.parseMs(String(s.dropFirst(6))), d > 0 {
                    baseline = .first(durationMs: d)
                } else if s.hasPrefix("version:"), s.count > 8 {
                    baseline = .version(String(s.dropFirst(8)))
                } else {
                    error(n, "baseline '\(s)' must be first:DURATION or version:VERSION")
                }
            }
        }
        guard errors.count == before, let signal else { return nil }
        return AlertRule(
            alert: alert, group: group, signal: signal, by: by, windowMs: window, op: op, threshold: threshold, minSamples: minSamples,
            forMs: forMs, keepFiringForMs: keep, severity: severity, receivers: receivers, labels: labels, annotations: annotations,
            repeatIntervalMs: repeatMs, target: target, staleAfterMs: staleAfter, baseline: baseline)
    }
}
