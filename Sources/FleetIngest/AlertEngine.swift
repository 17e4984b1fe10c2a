import FleetCore
import FleetRules
import FleetStore
import Foundation
import SQLiteKit

/// Evaluates the rules on event time over the store, runs the alert state machine per cohort,
/// persists every instance (so a restart neither forgets a firing alert nor pages again for
/// it) and writes due notifications to the outbox in the same transaction.
///
/// Runs on the writer thread (the only writer); reads through its own read-only connection.
public final class AlertEngine {
    public private(set) var rules: RulesFile
    let reader: StoreReader
    let db: SQLiteConnection
    var instances: [String: AlertInstance] = [:]
    var instanceRule: [String: String] = [:]
    var nextEvalMs: [String: Int64] = [:]
    public var externalURL = "http://fleetwatch"

    public init(rules: RulesFile, dbPath: String, writer: StoreWriter) throws {
        self.rules = rules
        reader = try StoreReader(path: dbPath)
        db = writer.connection
        try load()
    }

    /// Swaps the rule set (SIGHUP). Instances of rules that no longer exist are dropped.
    public func reload(_ new: RulesFile) throws {
        rules = new
        nextEvalMs.removeAll()
        let keys = Set(new.allRules.map { "\($0.group)/\($0.alert)" })
        for (fp, key) in instanceRule where !keys.contains(key) {
            instances[fp] = nil
            instanceRule[fp] = nil
            let d = try db.statement("DELETE FROM alerts WHERE fingerprint = ?")
            d.bind(1, fp)
            try d.run()
        }
    }

    private func load() throws {
        let s = try db.statement("""
            SELECT fingerprint, rule_group, alertname, state, labels, value, active_at, fired_at, resolved_at, last_true_at, last_sent_at, last_sent_state FROM alerts
            """)
        while try s.step() {
            let labels = (try? JSONSerialization.jsonObject(with: Data(s.text(4).utf8)) as? [String: String]) ?? [:]
            var a = AlertInstance(fingerprint: s.text(0), labels: labels, value: s.doubleOrNil(5), nowMs: s.int(6))
            a.phase = AlertPhase(rawValue: s.text(3)) ?? .pending
            a.firedAtMs = s.intOrNil(7)
            a.resolvedAtMs = s.intOrNil(8)
            a.lastTrueAtMs = s.int(9)
            a.lastSentAtMs = s.intOrNil(10)
            a.lastSentPhase = s.textOrNil(11).flatMap(AlertPhase.init(rawValue:))
            instances[a.fingerprint] = a
            instanceRule[a.fingerprint] = "\(s.text(1))/\(s.text(2))"
        }
    }

    /// Evaluates every group whose interval has come round at event time `nowMs`. Returns how
    /// many notifications were queued.
    @discardableResult
    public func evaluate(nowMs: Int64) throws -> Int {
        var queued = 0
        for group in rules.groups {
            let due = nextEvalMs[group.name] ?? nowMs
            guard nowMs >= due else { continue }
            nextEvalMs[group.name] = nowMs + group.intervalMs
            for rule in group.rules {
                let verdicts = try self.verdicts(rule, nowMs: nowMs)
                queued += try db.transaction { try apply(rule, verdicts, nowMs: nowMs) }
            }
        }
        return queued
    }

    func verdicts(_ rule: AlertRule, nowMs: Int64) throws -> [CohortVerdict] {
        let from = nowMs - rule.windowMs
        switch rule.signal {
        case .versionAdoption:
            let rows = try reader.snapshot { try reader.fleet(fromMs: from, toMs: nowMs, by: rule.by.filter { $0 != "model_version" } + ["model_version"]) }
            return RuleEvaluation.adoption(rule, rows: rows.map { (Dictionary(uniqueKeysWithValues: $0.labels), $0.values.devices) })
        case .offlineDevices, .offlineRatio:
            var groups: [[String: String]: (Int64, Int64)] = [:]
            for d in try reader.allDevices() {
                let attrs = ["model_name": d.modelName, "model_version": d.modelVersion, "sku": d.sku, "firmware": d.firmware, "accelerator": d.accelerator, "device_id": d.deviceID]
                let key = Dictionary(uniqueKeysWithValues: rule.by.map { ($0, attrs[$0] ?? "") })
                let offline = d.state == "offline" || d.lastSeenMs < nowMs - rule.staleAfterMs
                var g = groups[key] ?? (0, 0)
                g.0 += 1
                if offline { g.1 += 1 }
                groups[key] = g
            }
            return RuleEvaluation.offline(rule, rows: groups.map { ($0.key, $0.value.0, $0.value.1) })
        default:
            let baselineMs: Int64
            if case .first(let d) = rule.baseline { baselineMs = d } else { baselineMs = 24 * 3_600_000 }
            let rows = try reader.snapshot { try reader.fleet(fromMs: from, toMs: nowMs, by: rule.by, baselineMs: baselineMs) }
            return RuleEvaluation.verdicts(rule, cohorts: rows.map { (Dictionary(uniqueKeysWithValues: $0.labels), $0.aggregate) })
        }
    }

    /// Steps every instance of `rule`, persists them and queues due notifications.
    func apply(_ rule: AlertRule, _ verdicts: [CohortVerdict], nowMs: Int64) throws -> Int {
        let key = "\(rule.group)/\(rule.alert)"
        var seen = Set<String>()
        var toSend: [WebhookPayload.Alert] = []
        func handle(_ fp: String, labels: [String: String], holds: Bool, value: Double?) throws {
            let next = AlertStateMachine.step(instances[fp], holds: holds, value: value, labels: labels, fingerprint: fp, nowMs: nowMs, forMs: rule.forMs, keepFiringForMs: rule.keepFiringForMs)
            guard var a = next else {
                if instances.removeValue(forKey: fp) != nil {
                    let d = try db.statement("DELETE FROM alerts WHERE fingerprint = ?")
                    d.bind(1, fp)
                    try d.run()
                }
                instanceRule[fp] = nil
                return
            }
            let annotations = rule.annotations.mapValues { AlertTemplate.render($0, labels: a.labels, value: a.value) }
            if AlertStateMachine.needsSending(a, nowMs: nowMs, repeatIntervalMs: rule.repeatIntervalMs) {
                a.lastSentAtMs = nowMs
                a.lastSentPhase = a.phase
                toSend.append(WebhookPayload.Alert(instance: a, annotations: annotations))
            }
            instances[fp] = a
            instanceRule[fp] = key
            try persist(a, rule: rule, annotations: annotations, nowMs: nowMs)
        }
        for v in verdicts {
            let labels = RuleEvaluation.alertLabels(rule, cohort: v.labels)
            let fp = Fingerprint.of(labels)
            seen.insert(fp)
            try handle(fp, labels: labels, holds: v.holds, value: v.value)
        }
        for (fp, k) in instanceRule where k == key && !seen.contains(fp) {
            guard let a = instances[fp] else { continue }
            try handle(fp, labels: a.labels, holds: false, value: a.value)
        }
        guard !toSend.isEmpty else { return 0 }
        for receiver in rule.receivers {
            let p = WebhookPayload.build(receiver: receiver, rule: rule, alerts: toSend, externalURL: externalURL, rfc3339: Self.rfc3339)
            var body = p.body
            if case .alertmanager = rules.receivers.first(where: { $0.name == receiver })?.kind {
                body = AlertmanagerPayload.build(rule: rule, alerts: toSend, externalURL: externalURL, rfc3339: Self.rfc3339)
            }
            let s = try db.statement("INSERT INTO outbox(receiver, created_ms, group_key, body, next_attempt_ms) VALUES(?,?,?,?,?)")
            s.bind(1, receiver); s.bind(2, nowMs); s.bind(3, p.groupKey); s.bind(4, blob: body); s.bind(5, Int64(0))
            try s.run()
        }
        return rule.receivers.count
    }

    func persist(_ a: AlertInstance, rule: AlertRule, annotations: [String: String], nowMs: Int64) throws {
        let s = try db.statement("""
            INSERT OR REPLACE INTO alerts(fingerprint, rule_group, alertname, severity, state, labels, annotations, value,
                active_at, fired_at, resolved_at, last_true_at, last_sent_at, last_sent_state, updated_at)
            VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
            """)
        s.bind(1, a.fingerprint); s.bind(2, rule.group); s.bind(3, rule.alert); s.bind(4, rule.severity)
        s.bind(5, a.phase.rawValue); s.bind(6, Self.json(a.labels)); s.bind(7, Self.json(annotations)); s.bind(8, a.value)
        s.bind(9, a.activeAtMs); s.bind(10, a.firedAtMs); s.bind(11, a.resolvedAtMs); s.bind(12, a.lastTrueAtMs)
        s.bind(13, a.lastSentAtMs); s.bind(14, a.lastSentPhase?.rawValue); s.bind(15, nowMs)
        try s.run()
    }

    static func json(_ m: [String: String]) -> String {
        var w = JSONWriter()
        WebhookPayload.map(m, &w)
        return String(decoding: w.out, as: UTF8.self)
    }

    static func rfc3339(_ ms: Int64) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }
}
