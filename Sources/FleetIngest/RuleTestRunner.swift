import FleetCore
import FleetRules
import FleetStore
import Foundation

/// Runs one `rules test` case for real: the case's telemetry goes through the real StoreWriter
/// into a fresh SQLite file, and the real AlertEngine evaluates on event time, each group every
/// its interval from the case's start. Before each evaluation at t, every message sent at or
/// before t is written (as if it arrived on time), then every status-topic event dated at or
/// before t; at each check time the engine's alerts of
/// that name are compared with the expected ones (RuleTestCheck).
public enum RuleTestRunner {
    public struct Failure: Sendable, Equatable {
        /// `at 10m (2025-01-01T00:10:00.000Z), CrashFreeSessionsLow (line 31):`
        public var header: String
        public var lines: [String]
    }

    public struct Outcome: Sendable, Equatable {
        public var name: String
        public var line: Int
        public var failures: [Failure]
        public var messages: Int
        public var evaluations: Int
        public var passed: Bool { failures.isEmpty }
    }

    /// `dbPath`: a file that does not exist yet (the caller removes it and its -wal/-shm).
    public static func run(_ t: RuleTestCase, rules: RulesFile, dbPath: String, rfc3339: (Int64) -> String) throws -> Outcome {
        let messages = RuleTestPlan.messages(t)
        let statuses = RuleTestPlan.statuses(t)
        var nextStatus = 0
        let writer = try StoreWriter(path: dbPath)
        let engine = try AlertEngine(rules: rules, dbPath: dbPath, writer: writer)
        let checks = t.checks.enumerated().sorted { ($0.element.atMs, $0.offset) < ($1.element.atMs, $1.offset) }.map(\.element)
        let endMs = t.startMs + (checks.last?.atMs ?? 0)
        let times = RuleTestPlan.evaluationTimes(intervals: rules.groups.map(\.intervalMs), startMs: t.startMs, endMs: endMs)
        var out = Outcome(name: t.name, line: t.line, failures: [], messages: messages.count, evaluations: 0)
        var nextMessage = 0
        var nextTime = 0
        let rulesByName = Dictionary(rules.allRules.map { ($0.alert, $0) }, uniquingKeysWith: { a, _ in a })
        for check in checks {
            let at = t.startMs + check.atMs
            while nextTime < times.count && times[nextTime] <= at {
                let now = times[nextTime]
                var batch: [IngestItem] = []
                while nextMessage < messages.count && messages[nextMessage].sentAtMs <= now {
                    batch.append(.telemetry(messages[nextMessage], receivedMs: messages[nextMessage].sentAtMs))
                    nextMessage += 1
                }
                if !batch.isEmpty { _ = try writer.write(batch) }
                while nextStatus < statuses.count && statuses[nextStatus].tsMs <= now {
                    let e = statuses[nextStatus]
                    try writer.setState(deviceID: e.deviceID, online: e.online, tsMs: e.tsMs)
                    nextStatus += 1
                }
                try engine.evaluate(nowMs: now)
                out.evaluations += 1
                nextTime += 1
            }
            let header = "at \(PromDuration.format(check.atMs)) (\(rfc3339(at))), \(check.alertname) (line \(check.line)):"
            guard let rule = rulesByName[check.alertname] else {
                out.failures.append(Failure(header: header, lines: ["no rule named \(check.alertname) in the rules files"]))
                continue
            }
            let observed = engine.currentAlerts.filter { $0.instance.labels["alertname"] == check.alertname }.map { _, a in
                ObservedAlert(
                    labels: a.labels, state: a.phase, value: a.value,
                    annotations: rule.annotations.mapValues { AlertTemplate.render($0, labels: a.labels, value: a.value) })
            }
            let lines = RuleTestCheck.diff(check.expected, observed: observed, constant: Set(rule.labels.keys))
            if !lines.isEmpty { out.failures.append(Failure(header: header, lines: lines)) }
        }
        return out
    }
}
