import FleetCore

/// Alertmanager's webhook payload, version "4" (CONTRACTS section 6), built for one rule and one
/// receiver from the instances that need sending.
public enum WebhookPayload {
    public struct Alert: Sendable {
        public var instance: AlertInstance
        public var annotations: [String: String]

        public init(instance: AlertInstance, annotations: [String: String]) {
            self.instance = instance
            self.annotations = annotations
        }
    }

    public static func build(
        receiver: String, rule: AlertRule, alerts: [Alert], externalURL: String, rfc3339: (Int64) -> String
    ) -> (groupKey: String, body: [UInt8]) {
        let groupLabels = ["alertname": rule.alert]
        let groupKey = "{}:{alertname=\"\(rule.alert)\"}"
        let status = alerts.contains { $0.instance.phase == .firing } ? "firing" : "resolved"
        // Labels and annotations shared by every alert.
        var common = alerts.first?.instance.labels ?? [:]
        var commonAnn = alerts.first?.annotations ?? [:]
        for a in alerts.dropFirst() {
            common = common.filter { a.instance.labels[$0.key] == $0.value }
            commonAnn = commonAnn.filter { a.annotations[$0.key] == $0.value }
        }
        var w = JSONWriter()
        w.raw("{\"version\":\"4\",\"groupKey\":"); w.string(groupKey)
        w.raw(",\"truncatedAlerts\":0,\"status\":"); w.string(status)
        w.raw(",\"receiver\":"); w.string(receiver)
        w.raw(",\"groupLabels\":"); map(groupLabels, &w)
        w.raw(",\"commonLabels\":"); map(common, &w)
        w.raw(",\"commonAnnotations\":"); map(commonAnn, &w)
        w.raw(",\"externalURL\":"); w.string(externalURL)
        w.raw(",\"alerts\":[")
        for (i, a) in alerts.enumerated() {
            if i > 0 { w.raw(",") }
            let x = a.instance
            w.raw("{\"status\":"); w.string(x.phase == .firing ? "firing" : "resolved")
            w.raw(",\"labels\":"); map(x.labels, &w)
            w.raw(",\"annotations\":"); map(a.annotations, &w)
            w.raw(",\"startsAt\":"); w.string(rfc3339(x.firedAtMs ?? x.activeAtMs))
            // Alertmanager's zero time for an alert that has not ended.
            w.raw(",\"endsAt\":"); w.string(x.phase == .resolved ? rfc3339(x.resolvedAtMs ?? 0) : "0001-01-01T00:00:00Z")
            w.raw(",\"generatorURL\":"); w.string(externalURL + "/alerts?alertname=" + rule.alert)
            w.raw(",\"fingerprint\":"); w.string(x.fingerprint)
            w.raw("}")
        }
        w.raw("]}")
        return (groupKey, w.out)
    }

    public static func map(_ m: [String: String], _ w: inout JSONWriter) {
        w.raw("{")
        for (i, (k, v)) in m.sorted(by: { $0.key < $1.key }).enumerated() {
            if i > 0 { w.raw(",") }
            w.string(k); w.raw(":"); w.string(v)
        }
        w.raw("}")
    }
}

/// The body of Alertmanager's `POST /api/v2/alerts`: an array of alerts with labels,
/// annotations, startsAt, endsAt (set on resolve) and generatorURL. Alertmanager dedupes by label
/// set, so re-sending a firing alert is how it stays firing there.
public enum AlertmanagerPayload {
    public static func build(rule: AlertRule, alerts: [WebhookPayload.Alert], externalURL: String, rfc3339: (Int64) -> String) -> [UInt8] {
        var w = JSONWriter()
        w.raw("[")
        for (i, a) in alerts.enumerated() {
            if i > 0 { w.raw(",") }
            let x = a.instance
            w.raw("{\"labels\":"); WebhookPayload.map(x.labels, &w)
            w.raw(",\"annotations\":"); WebhookPayload.map(a.annotations, &w)
            w.raw(",\"startsAt\":"); w.string(rfc3339(x.firedAtMs ?? x.activeAtMs))
            if x.phase == .resolved { w.raw(",\"endsAt\":"); w.string(rfc3339(x.resolvedAtMs ?? 0)) }
            w.raw(",\"generatorURL\":"); w.string(externalURL + "/alerts?alertname=" + rule.alert)
            w.raw("}")
        }
        w.raw("]")
        return w.out
    }
}
