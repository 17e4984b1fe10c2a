import ArgumentParser
import FleetCore
import FleetIngest
import FleetRules
import FleetStore
import Foundation

struct Rules: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Alert rule tooling: lint, unit tests, backtest over stored history.",
        subcommands: [Check.self, Test.self, Backtest.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Lint an alerts.yaml: every problem with file:line:column; exit 1 on any.")

        @Argument(help: "The rules file.")
        var file: String

        func run() throws {
            let f = try loadRules(file)
            print("\(file): OK (\(f.receivers.count) receivers, \(f.groups.count) groups, \(f.allRules.count) rules)")
        }
    }

    // MARK: - test

    struct Test: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Unit-test alert rules (promtool 'test rules' style); exit 1 on any failure.",
            discussion: """
                A test file names the rules files and, per test, hand-written telemetry series and
                the alerts expected at given times. Each test runs the real store and alert engine on
                a temporary database. Format: docs/rules.md, "Unit tests".
                """)

        @Argument(help: "Test files.")
        var files: [String]

        func run() throws {
            var passed = 0
            var failed = 0
            for file in files {
                guard let data = FileManager.default.contents(atPath: file) else { throw fail("cannot read \(file)") }
                let spec: RuleTestFile
                switch RuleTestParser.parse(String(decoding: data, as: UTF8.self), file: file) {
                case .success(let s): spec = s
                case .failure(let e):
                    for err in e.errors { printError(err.description) }
                    throw ExitCode(1)
                }
                let dir = URL(fileURLWithPath: file).deletingLastPathComponent()
                var rules = RulesFile(receivers: [], groups: [])
                for r in spec.ruleFiles {
                    let path = r.hasPrefix("/") ? r : dir.appendingPathComponent(r).path
                    let f = try loadRules(path)
                    rules.receivers += f.receivers.filter { new in !rules.receivers.contains { $0.name == new.name } }
                    rules.groups += f.groups
                }
                let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("fleetwatch-rules-test-\(UUID().uuidString)")
                try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(at: tmp) }
                for (i, t) in spec.tests.enumerated() {
                    let outcome: RuleTestRunner.Outcome
                    do {
                        outcome = try RuleTestRunner.run(t, rules: rules, dbPath: tmp.appendingPathComponent("case-\(i).db").path, rfc3339: rfc3339)
                    } catch {
                        throw fail("\(file):\(t.line): test '\(t.name)' could not run: \(error)")
                    }
                    if outcome.passed {
                        passed += 1
                        print("PASS  \(file): \(t.name)")
                    } else {
                        failed += 1
                        print("FAIL  \(file): \(t.name) (line \(t.line))")
                        for f in outcome.failures {
                            print("      \(f.header)")
                            for l in f.lines { print("        \(l)") }
                        }
                    }
                }
            }
            let total = passed + failed
            print("\(total) test\(total == 1 ? "" : "s"): \(passed) passed, \(failed) failed" + (failed > 0 ? "  (- expected, + got)" : ""))
            if failed > 0 { throw ExitCode(1) }
        }
    }

    // MARK: - backtest

    struct Backtest: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replay rules over stored history: when each alert would have been pending, fired and resolved.",
            discussion: """
                Evaluates every group each interval of event time over the last --since of data
                (ending at the newest data in the database, never at the wall clock), starting with
                no alerts. Read-only: nothing is written to the database and nothing is sent.
                One line per transition: time, alert, labels, state, value.
                """)

        @Argument(help: "The rules file.")
        var file: String

        @OptionGroup var database: DatabaseOption

        @Option(help: "How much history to replay, back from the newest data (30m, 24h, 7d).")
        var since: String = "24h"

        @Option(help: "Evaluate every STEP instead of each group's interval (faster, coarser).")
        var step: String?

        @Option(help: "table or json.")
        var format: OutputFormat = .table

        func validate() throws {
            guard let d = PromDuration.parseMs(since), d > 0 else { throw ValidationError("--since: '\(since)' is not a duration like 30m, 24h or 7d") }
            if let step { guard let s = PromDuration.parseMs(step), s >= 1000 else { throw ValidationError("--step: '\(step)' is not a duration of at least 1s") } }
            if format == .csv { throw ValidationError("--format: backtest prints table or json") }
        }

        func run() throws {
            var rules = try loadRules(file)
            let sinceMs = PromDuration.parseMs(since) ?? 0
            if let step, let s = PromDuration.parseMs(step) {
                for i in rules.groups.indices { rules.groups[i].intervalMs = s }
            }
            let reader = try openReader(database.db)
            let endMs: Int64
            do {
                guard let latest = try reader.latestDataMs() else { throw fail("\(database.db) holds no telemetry yet: nothing to replay") }
                endMs = latest
            } catch let e as ExitCode { throw e } catch { throw fail("cannot read \(database.db): \(error)") }
            // Align the first evaluation to the longest interval, so a replay of the same data
            // evaluates at the same times whenever it runs.
            let align = max(1, rules.groups.map(\.intervalMs).max() ?? 60_000)
            let startMs = ((endMs - sinceMs) + align - 1) / align * align
            let times = RuleTestPlan.evaluationTimes(intervals: rules.groups.map(\.intervalMs), startMs: startMs, endMs: endMs)
            let engine = AlertEngine(replaying: rules, reader: reader)
            var transitions: [AlertTransition] = []
            do {
                for t in times {
                    try engine.evaluate(nowMs: t)
                    transitions += engine.takeTransitions()
                }
            } catch { throw fail("backtest failed: \(error)") }
            print(Self.render(transitions, format: format), terminator: "")
            // A summary for the person (stderr, so stdout stays one line per transition).
            var fired: [String: Int] = [:]
            var pendingOnly: [String: Int] = [:]
            for t in transitions {
                if t.phase == .firing { fired[t.alertname, default: 0] += 1 }
                if t.phase == .pending { pendingOnly[t.alertname, default: 0] += 1 }
            }
            let names = Set(fired.keys).union(pendingOnly.keys).sorted()
            let detail = names.map { "\($0) fired \(fired[$0] ?? 0)x, pending \(pendingOnly[$0] ?? 0)x" }.joined(separator: "; ")
            printError("backtest: \(rules.allRules.count) rules, \(times.count) evaluations from \(rfc3339(startMs)) to \(rfc3339(times.last ?? startMs)): "
                + "\(transitions.count) transitions" + (detail.isEmpty ? "" : " (\(detail))"))
        }

        static func render(_ transitions: [AlertTransition], format: OutputFormat) -> String {
            func labels(_ l: [String: String]) -> String {
                l.filter { $0.key != "alertname" }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            }
            switch format {
            case .json, .csv:
                var w = JSONWriter()
                w.raw("[")
                for t in transitions {
                    w.element()
                    w.raw("{\"time\":"); w.string(rfc3339(t.atMs))
                    w.raw(",\"alertname\":"); w.string(t.alertname)
                    w.raw(",\"labels\":"); WebhookPayload.map(t.labels, &w)
                    w.raw(",\"state\":"); w.string(t.phase.rawValue)
                    w.raw(",\"value\":"); w.optionalDouble(t.value)
                    w.raw("}")
                }
                w.raw("]")
                return w.text + "\n"
            case .table:
                return Output.table(["time", "alert", "labels", "state", "value"], transitions.map {
                    [rfc3339($0.atMs), $0.alertname, labels($0.labels), $0.phase.rawValue, Output.number($0.value, digits: 4)]
                })
            }
        }
    }
}

/// Reads and parses a rules file; every problem on stderr with file:line:column, then exit 1.
func loadRules(_ file: String) throws -> RulesFile {
    guard let data = FileManager.default.contents(atPath: file) else { throw fail("cannot read \(file)") }
    switch RulesParser.parse(String(decoding: data, as: UTF8.self), file: file) {
    case .success(let f): return f
    case .failure(let e):
        for err in e.errors { printError(err.description) }
        throw ExitCode(1)
    }
}
