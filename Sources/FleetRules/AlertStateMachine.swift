/// Prometheus' alerting state machine, per alert instance (one per cohort label set).
///
/// inactive -> pending when the condition holds; pending -> firing once it has held for `for`;
/// firing -> resolved when it stops holding (after `keep_firing_for`); a resolved instance that
/// holds again starts over at pending. Pure: time and the condition are passed in; the caller
/// keeps the instances keyed by fingerprint (as prometheus/rules does).
public enum AlertPhase: String, Sendable, Equatable {
    case pending, firing, resolved
}

public struct AlertInstance: Sendable, Equatable {
    public var fingerprint: String
    public var labels: [String: String]
    public var phase: AlertPhase
    public var value: Double?
    /// When the condition started holding (this episode).
    public var activeAtMs: Int64
    public var firedAtMs: Int64?
    public var resolvedAtMs: Int64?
    /// The last evaluation at which the condition held (for keep_firing_for).
    public var lastTrueAtMs: Int64
    /// The last notification sent for this instance and its phase.
    public var lastSentAtMs: Int64?
    public var lastSentPhase: AlertPhase?

    public init(fingerprint: String, labels: [String: String], value: Double?, nowMs: Int64) {
        self.fingerprint = fingerprint
        self.labels = labels
        phase = .pending
        self.value = value
        activeAtMs = nowMs
        lastTrueAtMs = nowMs
    }
}

public enum AlertStateMachine {
    /// How long resolved instances are kept (and shown) before they are forgotten.
    public static let resolvedRetentionMs: Int64 = 15 * 60_000

    /// Advances one instance. `holds` is whether the rule's condition is true for this label set
    /// at `nowMs` (nil instance: none yet). Returns the new instance (nil: forget it).
    public static func step(
        _ instance: AlertInstance?, holds: Bool, value: Double?, labels: [String: String], fingerprint: String,
        nowMs: Int64, forMs: Int64, keepFiringForMs: Int64
    ) -> AlertInstance? {
        guard var a = instance else {
            guard holds else { return nil }
            var new = AlertInstance(fingerprint: fingerprint, labels: labels, value: value, nowMs: nowMs)
            if forMs <= 0 {
                new.phase = .firing
                new.firedAtMs = nowMs
            }
            return new
        }
        if holds {
            a.value = value
            a.lastTrueAtMs = nowMs
            switch a.phase {
            case .pending:
                if nowMs - a.activeAtMs >= forMs {
                    a.phase = .firing
                    a.firedAtMs = nowMs
                }
            case .firing:
                break
            case .resolved:
                // A new episode.
                var fresh = AlertInstance(fingerprint: fingerprint, labels: labels, value: value, nowMs: nowMs)
                fresh.lastSentAtMs = a.lastSentAtMs
                fresh.lastSentPhase = a.lastSentPhase
                if forMs <= 0 {
                    fresh.phase = .firing
                    fresh.firedAtMs = nowMs
                }
                return fresh
            }
            return a
        }
        switch a.phase {
        case .pending:
            return nil
        case .firing:
            if keepFiringForMs > 0 && nowMs - a.lastTrueAtMs < keepFiringForMs { return a }
            a.phase = .resolved
            a.resolvedAtMs = nowMs
            return a
        case .resolved:
            if let r = a.resolvedAtMs, nowMs - r >= resolvedRetentionMs, a.lastSentPhase == .resolved { return nil }
            return a
        }
    }

    /// Whether a notification is due (prometheus' needsSending): on firing, on resolve, and every
    /// `repeatIntervalMs` while firing.
    public static func needsSending(_ a: AlertInstance, nowMs: Int64, repeatIntervalMs: Int64) -> Bool {
        switch a.phase {
        case .pending: return false
        case .resolved: return a.lastSentPhase == .firing
        case .firing:
            guard a.lastSentPhase == .firing, let sent = a.lastSentAtMs, sent >= (a.firedAtMs ?? 0) else { return true }
            return nowMs - sent >= repeatIntervalMs
        }
    }
}

/// The identity of an alert instance: a stable hash of its sorted label set (FNV-1a 64, hex),
/// the same across restarts so persisted state and receivers' dedupe keep working.
public enum Fingerprint {
    public static func of(_ labels: [String: String]) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for (k, v) in labels.sorted(by: { $0.key < $1.key }) {
            for b in k.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
            h = (h ^ 0xff) &* 0x100_0000_01b3
            for b in v.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
            h = (h ^ 0xfe) &* 0x100_0000_01b3
        }
        let s = String(h, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}
