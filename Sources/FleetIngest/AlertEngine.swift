import FleetCore
import FleetRules
import FleetStore
import Foundation
import SQLiteKit

/// Evaluates the rules on event time over the store, runs the alert state machine per cohort,
/// persists every instance (so a restart neither forgets a firing alert nor pages again for
/// it) and writes due notifications to the outbox in the same transaction.
///
/// Live, it runs on the writer thread (the only writer) and reads through its own read-only
/// connection. Replaying (`rules backtest`), it only reads: nothing is persisted, nothing is
/// queued, offline signals come from presence history instead of the registry, and every
/// transition is recorded.
///
/// One evaluation cycle reads one snapshot, and rules that ask for the same window and labels
/// share one store query (`Cycle`).
public final class AlertEngine {
    public private(set) var rules: RulesFile
    let reader: StoreReader
    /// The writer's connection; nil when replaying (read-only).
    let db: SQLiteConnection?
    /// The live writer: per-device state it holds back is written before rules read the store.
    let writer: StoreWriter?
    var instances: [String: AlertInstance] = [:]
    var instanceRule: [String: String] = [:]
    var nextEvalMs: [String: Int64] = [:]
    public var externalURL = "http://fleetwatch"
    /// Collect `AlertTransition`s for `takeTransitions()` (always on when replaying).
    public var recordTransitions = false
    private var transitions: [AlertTransition] = []
    private var history: PresenceHistory?
    /// Share store queries between the rules of a cycle (off: each rule queries on its own, the
    /// benchmark's baseline).
    public var shareQueries = true
    /// What the last cycle did: rules evaluated, store queries run and shared.
    public private(set) var lastCycle = CycleStats()

    public struct CycleStats: Sendable, Equatable {
        public var rules = 0
        public var queries = 0
        public var shared = 0
    }

    public init(rules: RulesFile, dbPath: String, writer: StoreWriter) throws {
        self.rules = rules
        reader = try StoreReader(path: dbPath)
        db = writer.connection
        self.writer = writer
        try load()
    }

    /// Replays rules over stored history through `reader` (read-only): no state is loaded or
    /// persisted, no notification is queued, transitions are recorded.
    public init(replaying rules: RulesFile, reader: StoreReader) {
        self.rules = rules
        self.reader = reader
        db = nil
        writer = nil
        recordTransitions = true
    }

    /// Swaps the rule set (SIGHUP). Instances of rules that no longer exist are dropped.
    public func reload(_ new: RulesFile) throws {
        rules = new
        nextEvalMs.removeAll()
        let keys = Set(new.allRules.map { "\($0.group)/\($0.alert)" })
        for (fp, key) in instanceRule where !keys.contains(key) {
            instances[fp] = nil
            instanceRule[fp] = nil
            if let db {
                let d = try db.statement("DELETE FROM alerts WHERE fingerprint = ?")
                d.bind(1, fp)
                try d.run()
            }
        }
    }

    private func load() throws {
        guard let db else { return }
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

    /// Every alert instance now (pending, firing and recently resolved), with its rule's group.
    public var currentAlerts: [(group: String, instance: AlertInstance)] {
        instances.values.map { a in
            let key = instanceRule[a.fingerprint] ?? ""
            return (String(key.prefix { $0 != "/" }), a)
        }.sorted { ($0.instance.labels["alertname"] ?? "", $0.instance.fingerprint) < ($1.instance.labels["alertname"] ?? "", $1.instance.fingerprint) }
    }

    /// The transitions recorded since the last call, in evaluation order.
    public func takeTransitions() -> [AlertTransition] {
        defer { transitions.removeAll() }
        return transitions
    }

    /// Evaluates every group whose interval has come round at event time `nowMs`. Returns how
    /// many notifications were queued.
    @discardableResult
    public func evaluate(nowMs: Int64) throws -> Int {
        var due: [AlertRule] = []
        for group in rules.groups {
            let next = nextEvalMs[group.name] ?? nowMs
            guard nowMs >= next else { continue }
            nextEvalMs[group.name] = nowMs + group.intervalMs
            due += group.rules
        }
        guard !due.isEmpty else { return 0 }
        // Offline and presence-based signals read the registry and stretches: up to date first.
        try writer?.flushDeviceState()
        var cycle = Cycle(nowMs: nowMs)
        let verdicts = try reader.snapshot { try due.map { try self.verdicts($0, &cycle) } }
        lastCycle = CycleStats(rules: due.count, queries: cycle.queries, shared: cycle.shared)
        guard let db else {
            for (rule, v) in zip(due, verdicts) { _ = try apply(rule, v, nowMs: nowMs) }
            return 0
        }
        // One transaction per cycle: state and the notifications it decided on commit together.
        return try db.transaction {
            var queued = 0
            for (rule, v) in zip(due, verdicts) { queued += try apply(rule, v, nowMs: nowMs) }
            return queued
        }
    }

    // MARK: - Verdicts

    /// What one cycle has read, shared by the rules that ask for the same thing.
    struct Cycle {
        struct FleetKey: Hashable {
            var fromMs: Int64
            var by: [String]
        }

        struct BaselineKey: Hashable {
            var baseline: DriftBaseline
            var by: [String]
        }

        let nowMs: Int64
        var fleet: [FleetKey: [StoreReader.CohortResult]] = [:]
        var windows: [Int64: FleetWindow] = [:]
        var cohortLabels: [Int64: [String: String]]?
        var baselineCohorts: [DriftBaseline.Cohort]?
        var baselines: [BaselineKey: [[String: String]: (hist: [Int64], classes: [String: Int64])]] = [:]
        var devices: [StoreReader.DeviceRow]?
        var offline: [Int64: [(deviceID: String, labels: [String: String], offline: Bool)]] = [:]
        var offlineCounts: [Int64: [Int64: (devices: Int64, offline: Int64)]] = [:]
        var queries = 0
        var shared = 0

        init(nowMs: Int64) { self.nowMs = nowMs }
    }

    /// The rule's cohorts over `[now - window, now)`, grouped by `by` (sorted: `by` order does
    /// not change a cohort), without baselines.
    private func fleet(_ windowMs: Int64, by: [String], _ c: inout Cycle) throws -> [StoreReader.CohortResult] {
        let key = Cycle.FleetKey(fromMs: c.nowMs - windowMs, by: by.sorted())
        if shareQueries, let hit = c.fleet[key] {
            c.shared += 1
            return hit
        }
        let rows: [StoreReader.CohortResult]
        if key.by.contains("device_id") {
            c.queries += 1
            rows = try reader.fleet(fromMs: key.fromMs, toMs: c.nowMs, by: key.by, baseline: nil)
        } else {
            // One read of the window, grouped in memory for each `by`.
            if c.cohortLabels == nil || !shareQueries { c.cohortLabels = try reader.cohortLabelMap() }
            let window: FleetWindow
            if shareQueries, let w = c.windows[key.fromMs] {
                c.shared += 1
                window = w
            } else {
                c.queries += 1
                window = try reader.fleetWindow(fromMs: key.fromMs, toMs: c.nowMs, cohortLabels: c.cohortLabels)
                c.windows[key.fromMs] = window
            }
            rows = reader.group(window, by: key.by)
        }
        c.fleet[key] = rows
        return rows
    }

    private func baselines(_ baseline: DriftBaseline, by: [String], _ c: inout Cycle) throws -> [[String: String]: (hist: [Int64], classes: [String: Int64])] {
        let key = Cycle.BaselineKey(baseline: baseline, by: by.sorted())
        if shareQueries, let hit = c.baselines[key] {
            c.shared += 1
            return hit
        }
        if c.cohortLabels == nil || !shareQueries { c.cohortLabels = try reader.cohortLabelMap() }
        if c.baselineCohorts == nil || !shareQueries { c.baselineCohorts = try reader.baselineCohorts(c.cohortLabels) }
        var out: [[String: String]: (hist: [Int64], classes: [String: Int64])] = [:]
        for (ref, range) in baseline.plan(by: key.by, cohorts: c.baselineCohorts ?? [], asOfMs: c.nowMs) {
            c.queries += 1
            if let b = try reader.baselineHistogram(range) { out[ref] = b }
        }
        c.baselines[key] = out
        return out
    }

    func verdicts(_ rule: AlertRule, _ c: inout Cycle) throws -> [CohortVerdict] {
        switch rule.signal {
        case .versionAdoption:
            let rows = try fleet(rule.windowMs, by: rule.by.filter { $0 != "model_version" } + ["model_version"], &c)
            return RuleEvaluation.adoption(rule, rows: rows.map { (Dictionary(uniqueKeysWithValues: $0.labels), $0.values.devices) })
        case .offlineDevices, .offlineRatio:
            var groups: [[String: String]: (Int64, Int64)] = [:]
            func count(_ attrs: [String: String], offline: Bool, devices: Int64 = 1, offlineDevices: Int64? = nil) {
                let key = Dictionary(uniqueKeysWithValues: rule.by.map { ($0, attrs[$0] ?? "") })
                var g = groups[key] ?? (0, 0)
                g.0 += devices
                g.1 += offlineDevices ?? (offline ? devices : 0)
                groups[key] = g
            }
            if db == nil {
                // History: who was silent at `now`, from presence (not today's registry).
                if history == nil { history = try reader.presenceHistory() }
                if c.offline[rule.staleAfterMs] == nil || !shareQueries {
                    c.queries += 1
                    c.offline[rule.staleAfterMs] = try reader.offlineAsOf(history!, at: c.nowMs, staleAfterMs: rule.staleAfterMs)
                } else {
                    c.shared += 1
                }
                for d in c.offline[rule.staleAfterMs] ?? [] {
                    var attrs = d.labels
                    attrs["device_id"] = d.deviceID
                    count(attrs, offline: d.offline)
                }
            } else if !rule.by.contains("device_id") {
                // Counts per cohort straight from the registry (no per-device rows), grouped here.
                if c.cohortLabels == nil || !shareQueries { c.cohortLabels = try reader.cohortLabelMap() }
                if c.offlineCounts[rule.staleAfterMs] == nil || !shareQueries {
                    c.queries += 1
                    c.offlineCounts[rule.staleAfterMs] = try reader.offlineCounts(nowMs: c.nowMs, staleAfterMs: rule.staleAfterMs)
                } else {
                    c.shared += 1
                }
                for (cohort, n) in c.offlineCounts[rule.staleAfterMs] ?? [:] {
                    count(c.cohortLabels?[cohort] ?? [:], offline: false, devices: n.devices, offlineDevices: n.offline)
                }
            } else {
                if c.devices == nil || !shareQueries {
                    c.queries += 1
                    c.devices = try reader.allDevices()
                } else {
                    c.shared += 1
                }
                for d in c.devices ?? [] {
                    let attrs = ["model_name": d.modelName, "model_version": d.modelVersion, "sku": d.sku, "firmware": d.firmware, "accelerator": d.accelerator, "device_id": d.deviceID]
                    count(attrs, offline: d.state == "offline" || d.lastSeenMs < c.nowMs - rule.staleAfterMs)
                }
            }
            return RuleEvaluation.offline(rule, rows: groups.map { ($0.key, $0.value.0, $0.value.1) })
        default:
            let rows = try fleet(rule.windowMs, by: rule.by, &c)
            let drift = RulesParser.driftSignals.contains(rule.signal)
            let refs = drift ? try baselines(rule.baseline, by: rule.by, &c) : [:]
            return RuleEvaluation.verdicts(rule, cohorts: rows.map { row in
                let labels = Dictionary(uniqueKeysWithValues: row.labels)
                var agg = row.aggregate
                if drift, let b = refs[rule.baseline.referenceKey(labels)] {
                    agg.baselineHist = b.hist
                    agg.baselineClasses = b.classes
                }
                return (labels, agg)
            })
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
                if instances.removeValue(forKey: fp) != nil, let db {
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
            if recordTransitions, let phase = AlertTransition.entered(from: instances[fp], to: a) {
                transitions.append(AlertTransition(atMs: nowMs, group: rule.group, alertname: rule.alert, labels: a.labels, phase: phase, value: a.value))
            }
            instances[fp] = a
            instanceRule[fp] = key
            if db != nil { try persist(a, rule: rule, annotations: annotations, nowMs: nowMs) }
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
        guard !toSend.isEmpty, let db else { return 0 }
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
        guard let db else { return }
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
        // A resolved episode goes to the history once (the row is keyed by when it began).
        if a.phase == .resolved, let resolvedAt = a.resolvedAtMs {
            let h = try db.statement("""
                INSERT OR IGNORE INTO alert_history(fingerprint, active_at, rule_group, alertname, severity, labels, annotations,
                    value, fired_at, resolved_at) VALUES(?,?,?,?,?,?,?,?,?,?)
                """)
            h.bind(1, a.fingerprint); h.bind(2, a.activeAtMs); h.bind(3, rule.group); h.bind(4, rule.alert); h.bind(5, rule.severity)
            h.bind(6, Self.json(a.labels)); h.bind(7, Self.json(annotations)); h.bind(8, a.value); h.bind(9, a.firedAtMs)
            h.bind(10, resolvedAt)
            try h.run()
        }
    }

    static func json(_ m: [String: String]) -> String {
        var w = JSONWriter()
        WebhookPayload.map(m, &w)
        return String(decoding: w.out, as: UTF8.self)
    }

    public static func rfc3339(_ ms: Int64) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }
}
