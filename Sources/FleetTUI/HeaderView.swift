import FleetCore
import FleetStore

/// One KPI of the header: a label, a value, a trend arrow, each styled.
public struct KPI: Equatable, Sendable {
    public var label: String
    public var value: String
    public var valueStyle: Style
    public var trend: Trend
    public var trendStyle: Style
    /// Extra text after the value (e.g. the cohort with the worst drift).
    public var detail: String

    public init(_ label: String, _ value: String, _ style: Style = .bold, trend: Trend = .unknown, trendStyle: Style = .plain, detail: String = "") {
        self.label = label
        self.value = value
        valueStyle = style
        self.trend = trend
        self.trendStyle = trendStyle
        self.detail = detail
    }
}

/// The header: fleet KPIs with trend arrows, flowed into as many lines as it is given.
public enum HeaderView {
    /// The KPIs in priority order (the first ones stay when the terminal is narrow).
    public static func kpis(_ s: Snapshot, thresholds: Thresholds) -> [KPI] {
        var out: [KPI] = []
        let online = s.devices(inState: "online")
        let stale = s.devices(inState: "stale")
        let offline = s.devices(inState: "offline")
        let other = s.totalDevices - online - stale - offline
        var devices = "\(Format.count(online)) online"
        var devStyle: Style = online > 0 ? .good : .bold
        if stale > 0 { devices += " \(Format.count(stale)) stale"; devStyle = .warn }
        if offline > 0 { devices += " \(Format.count(offline)) offline"; devStyle = .bad }
        if other > 0 { devices += " \(Format.count(other)) unknown" }
        out.append(KPI("DEVICES", devices, devStyle))

        let f = s.signalTotals
        let cfs = f.crashFreeSessions
        let cfTrend = Trend.between(s.trendNow.crashFreeSessions, s.trendPrevious.crashFreeSessions, relative: 0, absolute: 0.0005)
        out.append(KPI("CRASH-FREE", Format.percent(cfs), style(thresholds, "crash_free_sessions", cfs), trend: cfTrend, trendStyle: cfTrend.style(higherIsBetter: true)))
        let er = f.errorRate
        let erTrend = Trend.between(s.trendNow.errorRate, s.trendPrevious.errorRate, relative: 0.1, absolute: 0.0001)
        out.append(KPI("ERRORS", Format.percent(er), style(thresholds, "error_rate", er), trend: erTrend, trendStyle: erTrend.style(higherIsBetter: false)))
        let p95 = f.latencyP95Ms
        let pTrend = Trend.between(s.trendNow.latencyP95Ms, s.trendPrevious.latencyP95Ms, relative: 0.05)
        out.append(KPI("P95", p95 == nil ? Format.missing : Format.ms(p95) + " ms", style(thresholds, "latency_p95_ms", p95), trend: pTrend, trendStyle: pTrend.style(higherIsBetter: false)))

        let alerts = s.alerts
        if let alerts, alerts.isEmpty {
            out.append(KPI("ALERTS", "none", .dim))
        } else if let alerts {
            let firing = alerts.filter { $0.state == "firing" }
            let pending = alerts.filter { $0.state == "pending" }.count
            var bySeverity: [String: Int] = [:]
            for a in firing { bySeverity[a.severity.isEmpty ? "none" : a.severity, default: 0] += 1 }
            var text = firing.isEmpty ? "none firing" : "\(firing.count) firing"
            if !bySeverity.isEmpty {
                text += " (" + bySeverity.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map { "\($0.value) \($0.key)" }.joined(separator: ", ") + ")"
            }
            if pending > 0 { text += " \(pending) pending" }
            out.append(KPI("ALERTS", text, firing.isEmpty ? (pending > 0 ? .warn : .good) : .bad))
        } else {
            out.append(KPI("ALERTS", "no rules loaded", .dim))
        }

        if let worst = s.worstDrift {
            let psi = worst.values.confidencePSI
            out.append(KPI("DRIFT", "PSI " + Format.fixed(psi, 3), style(thresholds, "confidence_psi", psi), detail: worst.labels.joined(separator: "/")))
        } else {
            out.append(KPI("DRIFT", "no baseline yet", .dim))
        }
        if let a = s.newestVersionAdoption {
            out.append(KPI("ADOPTION", Format.percent(a.share, digits: 1), .bold, detail: "on " + a.version))
        } else {
            out.append(KPI("ADOPTION", Format.missing, .dim))
        }
        let rate = s.ingestRate.map { Format.compact($0) + " msg/s" } ?? "- msg/s"
        out.append(KPI("INGEST", rate, .bold, detail: "quarantined " + Format.count(s.quarantined)))
        return out
    }

    static func style(_ t: Thresholds, _ signal: String, _ v: Double?) -> Style {
        v == nil ? .dim : (t.breached(signal, v) ? .bad : .bold)
    }

    /// Flows the KPIs into `lines` lines of `width`, dropping what does not fit.
    static func draw(_ c: inout Canvas, y: Int, width: Int, lines: Int, kpis: [KPI], glyphs: Glyphs) {
        var line = 0
        var x = 1
        for k in kpis {
            let parts: [(String, Style)] = [
                (k.label + " ", .dim), (k.value, k.valueStyle),
                (k.trend == .unknown ? "" : " " + k.trend.glyph(glyphs), k.trendStyle),
                (k.detail.isEmpty ? "" : " " + k.detail, .plain),
            ]
            let w = parts.reduce(0) { $0 + SafeText($1.0).width }
            if x > 1 && x + 3 + w > width {
                line += 1
                x = 1
            }
            guard line < lines else { break }
            if x > 1 {
                c.put(x + 1, y + line, glyphs.vertical, .dim)
                x += 3
            }
            for (text, style) in parts where !text.isEmpty {
                x = c.put(x, y + line, SafeText(text).truncated(to: max(0, width - x), ellipsis: glyphs.ellipsis), style)
            }
        }
    }
}
