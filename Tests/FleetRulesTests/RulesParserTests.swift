import FleetCore
import Foundation
import Testing

@testable import FleetRules

@Suite struct RulesParserTests {
    static let contractExample = """
        receivers:
          - name: oncall
            webhook:
              url: http://127.0.0.1:9095/hook
              secret_env: FLEETWATCH_WEBHOOK_SECRET   # optional: HMAC-SHA256 of the body
        groups:
          - name: inference-reliability
            interval: 30s
            rules:
              - alert: CrashFreeSessionsLow
                signal: crash_free_sessions
                by: [model_version]
                window: 1h
                op: "<"
                threshold: 0.995
                min_samples: 50
                for: 5m
                keep_firing_for: 10m
                severity: page
                receivers: [oncall]
                labels: {team: edge-ai}
                annotations:
                  summary: "crash-free sessions {{ $value }} on {{ $labels.model_version }}"
        """

    func errors(_ text: String) -> [String] {
        switch RulesParser.parse(text, file: "alerts.yaml") {
        case .success: return []
        case .failure(let e): return e.errors.map(\.description)
        }
    }

    @Test func parsesTheContractExample() throws {
        let f = try RulesParser.parse(Self.contractExample, file: "alerts.yaml").get()
        #expect(f.receivers == [Receiver(name: "oncall", kind: .webhook(url: "http://127.0.0.1:9095/hook", secretEnv: "FLEETWATCH_WEBHOOK_SECRET"))])
        let r = try #require(f.allRules.first)
        #expect(r.alert == "CrashFreeSessionsLow" && r.group == "inference-reliability")
        #expect(r.signal == .crashFreeSessions && r.by == ["model_version"] && r.op == .lt && r.threshold == 0.995)
        #expect(r.windowMs == 3_600_000 && r.forMs == 300_000 && r.keepFiringForMs == 600_000 && r.minSamples == 50)
        #expect(r.severity == "page" && r.receivers == ["oncall"] && r.labels == ["team": "edge-ai"])
        #expect(r.repeatIntervalMs == 4 * 3_600_000)
        #expect(f.groups[0].intervalMs == 30_000)
    }

    @Test func theShippedRulesFileIsValid() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("alerts.yaml")
        let text = try String(contentsOf: url, encoding: .utf8)
        let f = try RulesParser.parse(text, file: "alerts.yaml").get()
        #expect(f.allRules.count >= 9)
        let signals = Set(f.allRules.map(\.signal))
        #expect(signals.contains(.offlineDevices) || signals.contains(.offlineRatio))
        for s: Signal in [.crashFreeSessions, .errorRate, .latencyP95, .confidencePSI, .confidenceJS, .versionAdoption, .rollbackRate, .throttleRate] {
            #expect(signals.contains(s), "alerts.yaml has no rule on \(s.rawValue)")
        }
        for r in f.allRules { #expect(r.annotations["runbook_url"]?.contains("docs/runbooks/") == true, "\(r.alert) has no runbook") }
    }

    @Test func everyProblemIsReportedWithItsPosition() {
        let text = """
            receivers:
              - name: oncall
                webhook: {url: http://x/hook}
            groups:
              - name: g
                interval: 30x
                rules:
                  - alert: A
                    signal: crash_free_sesions
                    op: "<"
                    threshold: 0.9
                    receivers: [pager]
                  - alert: B
                    signal: error_rate
                    op: ">"
                    threshold: 0.1
                    for: soon
                    colour: red
                    labels: {"bad-name": x}
                  - alert: B
                    signal: error_rate
                    op: "~"
                    threshold: high
                    target: "1.0"
            """
        let e = errors(text)
        #expect(e.contains("alerts.yaml:6:15: interval: '30x' is not a duration (use 30s, 5m, 1h, 7d, 1h30m)"))
        #expect(e.contains { $0.hasPrefix("alerts.yaml:9:17: unknown signal 'crash_free_sesions'") })
        #expect(e.contains { $0.hasPrefix("alerts.yaml:12:20: unknown receiver 'pager'") })
        #expect(e.contains { $0.hasPrefix("alerts.yaml:17:14: for: 'soon' is not a duration") })
        #expect(e.contains { $0.hasPrefix("alerts.yaml:18:9: rule: unknown key 'colour'") })
        #expect(e.contains { $0.hasPrefix("alerts.yaml:19:18: labels: 'bad-name' is not a valid label name") })
        #expect(e.contains { $0.hasPrefix("alerts.yaml:22:13: op '~' is not one of") })
        #expect(e.contains { $0.hasPrefix("alerts.yaml:23:20: threshold: 'high' is not a number") })
        #expect(e.contains { $0.hasPrefix("alerts.yaml:24:9: target is only valid for signal version_adoption") })
        #expect(e.count >= 9)
    }

    @Test func duplicateAlertNamesInAGroup() {
        let text = """
            groups:
              - name: g
                rules:
                  - {alert: A, signal: error_rate, op: ">", threshold: 0.1}
                  - {alert: A, signal: error_rate, op: ">", threshold: 0.2}
            """
        #expect(errors(text) == ["alerts.yaml:5:9: duplicate alert name 'A' in group 'g'"])
    }

    @Test func perSignalKeys() throws {
        let ok = """
            groups:
              - name: g
                rules:
                  - {alert: Adoption, signal: version_adoption, target: latest, op: "<", threshold: 0.9}
                  - {alert: Offline, signal: offline_devices, stale_after: 10m, op: ">", threshold: 5}
                  - {alert: Drift, signal: confidence_psi, baseline: "version:1.4.0", op: ">", threshold: 0.2}
                  - {alert: Drift2, signal: confidence_js, baseline: "first:12h", op: ">", threshold: 0.1}
            """
        let f = try RulesParser.parse(ok, file: "a.yaml").get()
        #expect(f.allRules.map(\.target) == ["latest", nil, nil, nil])
        #expect(f.allRules[1].staleAfterMs == 600_000)
        #expect(f.allRules[2].baseline == .version("1.4.0") && f.allRules[3].baseline == .first(durationMs: 12 * 3_600_000))
        let bad = """
            groups:
              - name: g
                rules:
                  - {alert: X, signal: error_rate, stale_after: 10m, baseline: "first:1h", op: ">", threshold: 5}
                  - {alert: Y, signal: confidence_psi, baseline: "last:1h", op: ">", threshold: 5}
            """
        let e = errors(bad)
        #expect(e.contains { $0.contains("stale_after is only valid for offline_devices") })
        #expect(e.contains { $0.contains("baseline is only valid for drift signals") })
        #expect(e.contains { $0.contains("baseline 'last:1h' must be first:DURATION or version:VERSION") })
    }

    @Test func yamlSyntaxErrorsHaveAPosition() {
        let e = errors("groups:\n  - name: g\n    rules: [\n")
        #expect(e.count == 1 && e[0].hasPrefix("alerts.yaml:") && e[0].contains("YAML:"))
        #expect(errors("") == ["alerts.yaml:1:1: the file is empty: expected 'receivers' and 'groups'"])
        #expect(errors("groups: []\ncolour: red\n").contains { $0.hasPrefix("alerts.yaml:2:1: the file: unknown key 'colour'") })
    }

    @Test func templatesRender() {
        let labels = ["model_version": "1.5.0", "sku": "orin"]
        #expect(AlertTemplate.render("crash-free {{ $value }} on {{ $labels.model_version }}", labels: labels, value: 0.9875) == "crash-free 0.9875 on 1.5.0")
        #expect(AlertTemplate.render("{{ $value | percent }}", labels: [:], value: 0.98765) == "98.77%")
        #expect(AlertTemplate.render("{{ printf \"%.1f\" $value }} ms", labels: [:], value: 123.456) == "123.5 ms")
        #expect(AlertTemplate.render("{{ $value | humanize }}", labels: [:], value: 1_234_567) == "1.235M")
        #expect(AlertTemplate.render("{{ $labels.missing }}x", labels: [:], value: nil) == "x")
        #expect(AlertTemplate.render("no value: {{ $value }}", labels: [:], value: nil) == "no value: n/a")
        // Label values are inserted as text, never expanded again.
        #expect(AlertTemplate.render("{{ $labels.sku }}", labels: ["sku": "{{ $value }}"], value: 1) == "{{ $value }}")
        #expect(AlertTemplate.check("{{ $value | frobnicate }}") != nil)
        #expect(AlertTemplate.check("{{ $value ") != nil)
        #expect(AlertTemplate.check("{{ printf \"%s%s\" $value }}") != nil)
        #expect(AlertTemplate.check("fine {{ $value | percent }} {{ $labels.sku }}") == nil)
    }
}
