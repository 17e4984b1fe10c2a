import Foundation
import Testing

@testable import FleetTUI

@Suite struct ThresholdsTests {
    @Test func theRepositoryRulesFileIsRead() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("alerts.yaml")
        let yaml = try String(contentsOf: url, encoding: .utf8)
        let rules = Thresholds.parseRules(yaml)
        #expect(rules.contains(Thresholds.Rule(signal: "crash_free_sessions", op: .lt, threshold: 0.995, source: "CrashFreeSessionsLow")))
    }

    @Test func rulesAreScannedWithQuotesAndComments() {
        let yaml = """
            groups:
              - name: g
                rules:
                  - alert: ErrorsHigh   # comment
                    signal: error_rate
                    op: ">"
                    threshold: 0.02   # two percent
                  - signal: latency_p95_ms
                    alert: 'SlowP95'
                    op: '>='
                    threshold: 250
                  - alert: Broken
                    signal: error_rate
                    op: "~"
                    threshold: 1
                  - alert: NoThreshold
                    signal: confidence_psi
                    op: ">"
                  - alert: BlockLists
                    receivers:
                      - oncall
                      - team
                    signal: rollback_rate
                    op: ">"
                    threshold: 0.1
              - name: second-group
                rules:
                  - alert: Offline
                    signal: offline_ratio
                    op: ">"
                    threshold: 0.2
            signal: not_a_rule
            """
        let rules = Thresholds.parseRules(yaml)
        #expect(rules == [
            Thresholds.Rule(signal: "error_rate", op: .gt, threshold: 0.02, source: "ErrorsHigh"),
            Thresholds.Rule(signal: "latency_p95_ms", op: .ge, threshold: 250, source: "SlowP95"),
            Thresholds.Rule(signal: "rollback_rate", op: .gt, threshold: 0.1, source: "BlockLists"),
            Thresholds.Rule(signal: "offline_ratio", op: .gt, threshold: 0.2, source: "Offline"),
        ])
        let t = Thresholds.loading(yaml: yaml)
        // The file's rules replace the defaults for their signals; other defaults stay.
        #expect(!t.breached("error_rate", 0.015) && t.breached("error_rate", 0.021))
        #expect(t.breached("latency_p95_ms", 250) && !t.breached("latency_p95_ms", 249))
        #expect(t.breached("confidence_psi", 0.3))
        #expect(!t.breached("crash_free_sessions", nil))
    }

    @Test func defaultsAndStyles() {
        let t = Thresholds.defaults
        #expect(t.breached("crash_free_sessions", 0.99) && !t.breached("crash_free_sessions", 0.999))
        #expect(t.style("error_rate", 0.5) == .bad && t.style("error_rate", 0.001) == .plain)
        #expect(!t.breached("unknown_signal", 1e9))
        for op in Thresholds.Op.allCases { #expect(Thresholds.Op(rawValue: op.rawValue) == op) }
        #expect(Thresholds.Op.ne.holds(1, 2) && Thresholds.Op.eq.holds(2, 2) && Thresholds.Op.le.holds(2, 2))
    }
}
