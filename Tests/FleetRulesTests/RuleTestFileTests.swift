import FleetCore
import Foundation
import Testing

@testable import FleetRules

/// The `rules test` file: parsing (every problem with its position), the compact series
/// notation, the messages it makes, the evaluation grid and the expected-vs-got diff. Pure.
@Suite struct RuleTestFileTests {
    func parse(_ text: String) throws -> RuleTestFile {
        try RuleTestParser.parse(text, file: "t.yaml").get()
    }

    func errors(_ text: String) -> [String] {
        switch RuleTestParser.parse(text, file: "t.yaml") {
        case .success: return []
        case .failure(let e): return e.errors.map(\.description)
        }
    }

    @Test func valueListsExpand() throws {
        func sessions(_ s: String) throws -> [[SessionStatus]?] { try RuleTestParser.expand(s, RuleTestParser.sessions).get() }
        #expect(try sessions("exited x3 crashed x2") == [[.exited], [.exited], [.exited], [.crashed], [.crashed]])
        #expect(try sessions("exitedx2 _ crashed") == [[.exited], [.exited], nil, [.crashed]])
        #expect(try sessions("_ x2 2*exited+crashed") == [nil, nil, [.exited, .exited, .crashed]])
        #expect(try sessions("") == [])
        func counts(_ s: String) -> Result<[Int64?], RuleTestParser.ValueError> { RuleTestParser.expand(s, RuleTestParser.count) }
        #expect(try counts("100x2 0 5 x3").get() == [100, 100, 0, 5, 5, 5])
        #expect(try counts("0x1").get() == [0])
        // A repetition must follow a single value; values must parse.
        #expect(throws: RuleTestParser.ValueError.self) { try counts("x3").get() }
        #expect(throws: RuleTestParser.ValueError.self) { try counts("1x2 x3").get() }
        #expect(throws: RuleTestParser.ValueError.self) { try counts("-1").get() }
        #expect(throws: RuleTestParser.ValueError.self) { try counts("1x0").get() }
        #expect(throws: RuleTestParser.ValueError.self) { try RuleTestParser.expand("exploded", RuleTestParser.sessions).get() }
        #expect(RuleTestParser.classes("ok:90+defect:10") == [.init(name: "ok", count: 90), .init(name: "defect", count: 10)])
        #expect(RuleTestParser.classes("ok") == [.init(name: "ok", count: nil)])
        #expect(RuleTestParser.classes("ok:x") == nil)
        #expect(RuleTestParser.deploy("rolled_back@1.5.0") == .init(result: .rolledBack, toVersion: "1.5.0"))
        #expect(RuleTestParser.deploy("installed") == .init(result: .installed, toVersion: nil))
        #expect(RuleTestParser.deploy("installed@") == nil && RuleTestParser.deploy("done") == nil)
        #expect(RuleTestParser.confidence("1.5") == nil && RuleTestParser.confidence("0.95") == 0.95)
        #expect(RuleTestParser.expandDevices("cam-{1..3}") == ["cam-1", "cam-2", "cam-3"])
        #expect(RuleTestParser.expandDevices("rack{2..3}-cam") == ["rack2-cam", "rack3-cam"])
        #expect(RuleTestParser.expandDevices("cam-1") == ["cam-1"])
        #expect(RuleTestParser.expandDevices("cam-{3..1}") == nil && RuleTestParser.expandDevices("cam-{1..2") == nil)
    }

    static let example = """
        rule_files: [alerts.yaml]
        tests:
          - name: crash
            start: 2025-11-29T12:00:00Z
            series:
              - {device: "cam-{1..2}", model_version: 1.5.0, sku: orin, sessions: "9*exited+crashed x2 _ exited"}
              - {device: cam-1, model_version: 1.6.0, sku: orin, from: 10m, every: 30s, inferences: "50 x2", errors: 5, confidence: 0.35, classes: "ok:40+defect:5", temp_c: "_ 70", throttle: "_ 2", deploys: "rolled_back@1.6.0"}
            alerts:
              - at: 5m
                alertname: CrashFreeSessionsLow
                expect:
                  - {labels: {model_version: 1.5.0, sku: orin}, state: pending, value: 0.9, annotations: {summary: x}}
              - {at: 1m, alertname: X, expect: []}
        """

    @Test func parsesAFileAndMakesItsMessages() throws {
        let f = try parse(Self.example)
        #expect(f.ruleFiles == ["alerts.yaml"])
        let t = try #require(f.tests.first)
        #expect(t.name == "crash" && t.line == 3 && t.startMs == 1_764_417_600_000)
        #expect(t.series.count == 2 && t.series[0].devices == ["cam-1", "cam-2"] && t.series[0].steps == 4)
        #expect(t.series[1].fromMs == 600_000 && t.series[1].everyMs == 30_000 && t.series[1].modelVersion == "1.6.0")
        #expect(t.checks.map(\.atMs) == [300_000, 60_000] && t.checks[1].expected.isEmpty)
        #expect(t.checks[0].expected == [ExpectedAlert(labels: ["model_version": "1.5.0", "sku": "orin"], state: .pending, value: 0.9, annotations: ["summary": "x"])])

        let m = RuleTestPlan.messages(t)
        // cam-1 and cam-2 at 0, 1, (2 is silent), 3 minutes; cam-1 on 1.6.0 at 10m and 10m30s.
        #expect(m.map { "\($0.deviceID)@\(($0.sentAtMs - t.startMs) / 1000)#\($0.seq)" } == [
            "cam-1@0#1", "cam-2@0#1", "cam-1@60#2", "cam-2@60#2", "cam-1@180#3", "cam-2@180#3", "cam-1@600#4", "cam-1@630#5",
        ])
        #expect(m[0].model.version == "1.5.0" && m[0].device.sku == "orin" && m[0].device.accelerator == "cpu" && m[0].model.name == "model")
        guard case .session(let s) = m[0].records.last else { throw TestFailure("no session") }
        #expect(m[0].records.count == 10 && s.status == .crashed && s.tsMs == t.startMs)
        #expect(m[4].records.count == 1)
        // The 1.6.0 messages: an inference window (45 ok: bin 3, classes as given), resources
        // only where given, a deploy only in the first.
        let first = m[6].records
        #expect(first.count == 2)
        guard case .inference(let inf) = first[0], case .deploy(let dep) = first[1] else { throw TestFailure("records \(first)") }
        #expect(inf.count == 50 && inf.errors == 5 && inf.windowMs == 30_000)
        #expect(inf.confidenceHist == [0, 0, 0, 45, 0, 0, 0, 0, 0, 0])
        #expect(inf.classCounts == [ClassCount(name: "ok", count: 40), ClassCount(name: "defect", count: 5)])
        #expect(inf.latencyUs.count == 45 && abs((inf.latencyUs.quantile(0.5) ?? 0) - 20_000) < 400)
        #expect(dep.toVersion == "1.6.0" && dep.result == .rolledBack)
        let second = m[7].records
        guard case .inference(let inf2) = second[0], case .resources(let res) = second[1] else { throw TestFailure("records \(second)") }
        #expect(inf2.count == 50 && inf2.errors == 0 && second.count == 2)
        #expect(res.tempC == 70 && res.throttleEvents == 2)
    }

    @Test func everyProblemHasItsPosition() {
        let e = errors("""
            rule_files: []
            tests:
              - name: a
                colour: red
                series:
                  - {device: "bad id", sessions: "exited x0"}
                  - {device: ok, sessions: "exploded", inferences: "10", errors: "20"}
                  - {model_version: 1.0.0}
                alerts:
                  - {at: soon, alertname: X, expect: []}
                  - {alertname: Y, expect: [{labels: {"bad-label": x}, state: burning}]}
              - name: a
                alerts: [{at: 1m, alertname: X, expect: []}]
            """)
        #expect(e.contains("t.yaml:1:13: rule_files: name at least one rules file"))
        #expect(e.contains { $0.hasPrefix("t.yaml:4:5: test: unknown key 'colour'") })
        #expect(e.contains { $0.hasPrefix("t.yaml:6:18: device 'bad id' is not a device id") })
        #expect(e.contains { $0.hasPrefix("t.yaml:6:38: sessions: 'x0': a repetition is x1 to x1000000") })
        #expect(e.contains { $0.hasPrefix("t.yaml:7:32: sessions: 'exploded' is not a valid value here") })
        #expect(e.contains { $0.hasPrefix("t.yaml:7:9: series ok: message 1 has more errors (20) than inferences (10)") })
        #expect(e.contains("t.yaml:8:9: a series needs a device"))
        #expect(e.contains { $0.hasPrefix("t.yaml:10:14: at: 'soon' is not a duration") })
        #expect(e.contains("t.yaml:11:9: an alerts entry needs at (offset from start, e.g. 10m), alertname and expect"))
        #expect(e.contains { $0.hasPrefix("t.yaml:11:43: labels: 'bad-label' is not a valid label name") })
        #expect(e.contains("t.yaml:11:67: state 'burning' must be pending, firing or resolved"))
        #expect(e.contains("t.yaml:12:5: duplicate test name 'a'"))
        // One problem, one message: no follow-on complaints about what could not be read.
        #expect(e.count == 12, "\(e)")
        #expect(errors("tests: []\n").contains("t.yaml:1:1: missing 'rule_files' (the alerts.yaml under test, relative to this file)"))
        #expect(errors("rule_files: [a]\ntests: [{name: x, alerts: [{at: 1m, alertname: X, expect: []}], series: [{device: d, start: 1m}]}]\n").contains { $0.contains("series: unknown key 'start'") })
        #expect(errors("rule_files: [a]\ntests: [{name: x, start: yesterday, alerts: [{at: 1m, alertname: X, expect: []}]}]\n").contains { $0.contains("start: 'yesterday' is not an RFC 3339 time") })
        #expect(errors("rule_files: [a]\ntests: [{name: x}]\n").contains("t.yaml:2:9: test 'x' has no alerts to check"))
        #expect(errors("rule_files: [a\n").first?.hasPrefix("t.yaml:") == true)
    }

    @Test func evaluationGridMergesGroupIntervals() {
        #expect(RuleTestPlan.evaluationTimes(intervals: [30_000, 60_000, 30_000], startMs: 1000, endMs: 121_000) == [1000, 31_000, 61_000, 91_000, 121_000])
        #expect(RuleTestPlan.evaluationTimes(intervals: [40_000, 60_000], startMs: 0, endMs: 120_000) == [0, 40_000, 60_000, 80_000, 120_000])
        #expect(RuleTestPlan.evaluationTimes(intervals: [60_000], startMs: 0, endMs: 59_999) == [0])
        #expect(RuleTestPlan.evaluationTimes(intervals: [], startMs: 0, endMs: 100).isEmpty)
    }

    @Test func diffMatchesByIdentityAndReportsBothSides() {
        let constant: Set<String> = ["team"]
        let base = ["alertname": "A", "severity": "page", "team": "ml"]
        func got(_ l: [String: String], _ s: AlertPhase, _ v: Double? = 0.5, ann: [String: String] = [:]) -> ObservedAlert {
            ObservedAlert(labels: base.merging(l) { $1 }, state: s, value: v, annotations: ann)
        }
        func want(_ l: [String: String], _ s: AlertPhase, _ v: Double? = nil, ann: [String: String] = [:]) -> ExpectedAlert {
            ExpectedAlert(labels: l, state: s, value: v, annotations: ann)
        }
        // Exact: identity is the cohort labels; constant labels compared only where written.
        #expect(RuleTestCheck.diff([want(["v": "1"], .firing)], observed: [got(["v": "1"], .firing)], constant: constant).isEmpty)
        #expect(RuleTestCheck.diff([want(["v": "1", "team": "ml", "severity": "page"], .firing, 0.5)], observed: [got(["v": "1"], .firing)], constant: constant).isEmpty)
        #expect(RuleTestCheck.diff([], observed: [], constant: constant).isEmpty)
        // Wrong state, wrong constant label, wrong value, wrong annotation.
        #expect(RuleTestCheck.diff([want(["v": "1"], .firing)], observed: [got(["v": "1"], .pending)], constant: constant)
            == ["- firing {v=\"1\"}", "+ pending {v=\"1\"} value=0.5  (state)"])
        #expect(RuleTestCheck.diff([want(["v": "1", "team": "edge"], .firing)], observed: [got(["v": "1"], .firing)], constant: constant)
            == ["- firing {team=\"edge\", v=\"1\"}", "+ firing {team=\"ml\", v=\"1\"} value=0.5  (label team)"])
        #expect(RuleTestCheck.diff([want(["v": "1"], .firing, 0.25)], observed: [got(["v": "1"], .firing)], constant: constant).count == 2)
        #expect(RuleTestCheck.diff([want(["v": "1"], .firing, 0.5 + 1e-12)], observed: [got(["v": "1"], .firing)], constant: constant).isEmpty)
        #expect(RuleTestCheck.diff([want(["v": "1"], .firing, 0.5)], observed: [got(["v": "1"], .firing, nil)], constant: constant).count == 2)
        #expect(RuleTestCheck.diff([want(["v": "1"], .firing, ann: ["s": "a"])], observed: [got(["v": "1"], .firing, ann: ["s": "b"])], constant: constant).last?
            .hasSuffix("(annotation s: expected \"a\", got \"b\")") == true)
        // Missing and unexpected; a subset of the identity is not a match.
        #expect(RuleTestCheck.diff([want(["v": "1"], .firing)], observed: [], constant: constant) == ["- firing {v=\"1\"}"])
        #expect(RuleTestCheck.diff([], observed: [got(["v": "2"], .pending, 0.75)], constant: constant) == ["+ pending {v=\"2\"} value=0.75"])
        #expect(RuleTestCheck.diff([want([:], .firing)], observed: [got(["v": "1"], .firing)], constant: constant) == ["- firing {}", "+ firing {v=\"1\"} value=0.5"])
        // Resolved alerts linger: compared only when expected.
        #expect(RuleTestCheck.diff([], observed: [got(["v": "1"], .resolved)], constant: constant).isEmpty)
        #expect(RuleTestCheck.diff([want(["v": "1"], .resolved)], observed: [got(["v": "1"], .resolved)], constant: constant).isEmpty)
        #expect(RuleTestCheck.diff([want(["v": "1"], .resolved)], observed: [got(["v": "1"], .firing)], constant: constant).count == 2)
        // Two instances, matched each to its own.
        #expect(RuleTestCheck.diff([want(["v": "1"], .firing), want(["v": "2"], .pending)],
                                   observed: [got(["v": "2"], .pending), got(["v": "1"], .firing)], constant: constant).isEmpty)
    }

    @Test func transitionsAreReportedOncePerPhaseChange() {
        var pending = AlertInstance(fingerprint: "f", labels: [:], value: 1, nowMs: 0)
        #expect(AlertTransition.entered(from: nil, to: pending) == .pending)
        #expect(AlertTransition.entered(from: pending, to: pending) == nil)
        #expect(AlertTransition.entered(from: pending, to: nil) == nil)
        #expect(AlertTransition.entered(from: nil, to: nil) == nil)
        var firing = pending
        firing.phase = .firing
        #expect(AlertTransition.entered(from: pending, to: firing) == .firing)
        #expect(AlertTransition.entered(from: nil, to: firing) == .firing)
        var resolved = firing
        resolved.phase = .resolved
        #expect(AlertTransition.entered(from: firing, to: resolved) == .resolved)
        #expect(AlertTransition.entered(from: resolved, to: resolved) == nil)
        #expect(AlertTransition.entered(from: resolved, to: nil) == nil)
        pending.activeAtMs = 60_000
        #expect(AlertTransition.entered(from: resolved, to: pending) == .pending)
        var again = firing
        again.activeAtMs = 120_000
        #expect(AlertTransition.entered(from: firing, to: again) == .firing)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
