import Testing

@testable import FleetRules

/// Steps a manual clock through a table of expected states, as prometheus' alerting_test.go does.
@Suite struct AlertStateMachineTests {
    struct Step {
        var minute: Int64
        var holds: Bool
        var expect: AlertPhase?
        var send: Bool = false
    }

    func run(_ steps: [Step], forMs: Int64, keepMs: Int64 = 0, repeatMs: Int64 = 4 * 3_600_000) {
        var a: AlertInstance?
        for s in steps {
            let now = s.minute * 60_000
            a = AlertStateMachine.step(a, holds: s.holds, value: s.holds ? 1 : 0, labels: ["x": "1"], fingerprint: "f", nowMs: now, forMs: forMs, keepFiringForMs: keepMs)
            #expect(a?.phase == s.expect, "minute \(s.minute)")
            let due = a.map { AlertStateMachine.needsSending($0, nowMs: now, repeatIntervalMs: repeatMs) } ?? false
            #expect(due == s.send, "minute \(s.minute): send")
            if due, var x = a {
                x.lastSentAtMs = now
                x.lastSentPhase = x.phase
                a = x
            }
        }
    }

    @Test func pendingThenFiringAfterForThenResolved() {
        run([
            Step(minute: 0, holds: false, expect: nil),
            Step(minute: 1, holds: true, expect: .pending),
            Step(minute: 3, holds: true, expect: .pending),
            Step(minute: 6, holds: true, expect: .firing, send: true),
            Step(minute: 7, holds: true, expect: .firing),
            Step(minute: 8, holds: false, expect: .resolved, send: true),
            Step(minute: 9, holds: false, expect: .resolved),
            Step(minute: 30, holds: false, expect: nil),  // forgotten after 15 min
        ], forMs: 5 * 60_000)
    }

    @Test func pendingThatStopsHoldingIsForgotten() {
        run([
            Step(minute: 0, holds: true, expect: .pending),
            Step(minute: 2, holds: false, expect: nil),
            Step(minute: 3, holds: true, expect: .pending),
            Step(minute: 7, holds: true, expect: .pending),
            Step(minute: 8, holds: true, expect: .firing, send: true),
        ], forMs: 5 * 60_000)
    }

    @Test func zeroForFiresAtOnce() {
        run([Step(minute: 0, holds: true, expect: .firing, send: true), Step(minute: 1, holds: false, expect: .resolved, send: true)], forMs: 0)
    }

    @Test func keepFiringForBridgesFlaps() {
        run([
            Step(minute: 0, holds: true, expect: .firing, send: true),
            Step(minute: 1, holds: false, expect: .firing),
            Step(minute: 5, holds: false, expect: .firing),
            Step(minute: 6, holds: true, expect: .firing),
            Step(minute: 15, holds: false, expect: .firing),
            Step(minute: 16, holds: false, expect: .resolved, send: true),
        ], forMs: 0, keepMs: 10 * 60_000)
    }

    @Test func repeatIntervalResendsWhileFiring() {
        run([
            Step(minute: 0, holds: true, expect: .firing, send: true),
            Step(minute: 59, holds: true, expect: .firing),
            Step(minute: 60, holds: true, expect: .firing, send: true),
            Step(minute: 90, holds: true, expect: .firing),
            Step(minute: 120, holds: true, expect: .firing, send: true),
        ], forMs: 0, repeatMs: 60 * 60_000)
    }

    @Test func resolvedThenHoldingAgainIsANewEpisode() {
        run([
            Step(minute: 0, holds: true, expect: .pending),
            Step(minute: 2, holds: true, expect: .firing, send: true),
            Step(minute: 3, holds: false, expect: .resolved, send: true),
            Step(minute: 4, holds: true, expect: .pending),
            Step(minute: 6, holds: true, expect: .firing, send: true),
        ], forMs: 2 * 60_000)
    }

    @Test func fingerprintsAreStableAndOrderFree() {
        let a = Fingerprint.of(["alertname": "X", "sku": "orin", "model_version": "1.5.0"])
        let b = Fingerprint.of(["model_version": "1.5.0", "alertname": "X", "sku": "orin"])
        #expect(a == b && a.count == 16)
        #expect(Fingerprint.of(["alertname": "X", "sku": "orin2"]) != a)
        // Boundaries matter: {"a": "bc"} is not {"ab": "c"}.
        #expect(Fingerprint.of(["a": "bc"]) != Fingerprint.of(["ab": "c"]))
    }
}
