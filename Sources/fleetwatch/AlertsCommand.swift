import ArgumentParser
import FleetCore
import FleetStore
import Foundation
import SQLiteKit

struct Alerts: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Current alerts (pending, firing) and the history of resolved ones (--since, default 24h).")

    enum StateFilter: String, ExpressibleByArgument, CaseIterable { case firing, all }

    @OptionGroup var database: DatabaseOption

    @Option(help: "firing, or all (pending, firing, and resolved within the window).")
    var state: StateFilter = .all

    /// The window resolved alerts are listed for (by when they resolved, on event time).
    @OptionGroup var window: WindowOptions

    @Option(help: "table or json.")
    var format: OutputFormat = .table

    struct Row {
        var alertname, state, labels, annotations: String
        var value: Double?
        var activeAt: Int64
        var firedAt, resolvedAt: Int64?
    }

    func run() throws {
        let reader = try openReader(database.db)
        var rows: [Row] = []
        do {
            guard try reader.connection.scalar("SELECT count(*) FROM sqlite_schema WHERE name = 'alerts'") == 1 else {
                throw fail("\(database.db) has no alert state yet: run 'fleetwatch ingest --rules alerts.yaml ...'")
            }
            var (from, to) = try window.resolve(defaultSince: "24h", latest: { try reader.latestDataMs() })
            // Alerts resolve on event time, which can run ahead of this clock (devices' clocks,
            // a simulation at 60x): with the default end, nothing after the start is cut off.
            if window.until == "now" { to = .max }
            // Resolved episodes come from the history (kept with the hour rollups); a database
            // from before it existed has only the alerts table's last 15 minutes of them.
            let history = try reader.connection.scalar("SELECT count(*) FROM sqlite_schema WHERE name = 'alert_history'") == 1
            let resolved = history
                ? """
                  SELECT alertname, 'resolved' AS state, labels, annotations, value, active_at, fired_at, resolved_at FROM alert_history
                  WHERE resolved_at >= ?1 AND resolved_at < ?2
                  """
                : "SELECT alertname, state, labels, annotations, value, active_at, fired_at, resolved_at FROM alerts WHERE state = 'resolved' AND resolved_at >= ?1 AND resolved_at < ?2"
            let s = try reader.connection.prepare("""
                SELECT * FROM (
                    SELECT alertname, state, labels, annotations, value, active_at, fired_at, resolved_at FROM alerts
                    WHERE state \(state == .firing ? "= 'firing'" : "IN ('pending', 'firing')")
                    \(state == .all ? "UNION ALL " + resolved : ""))
                ORDER BY CASE state WHEN 'firing' THEN 0 WHEN 'pending' THEN 1 ELSE 2 END, coalesce(resolved_at, 0) DESC, alertname, labels
                """)
            if state == .all {
                s.bind(1, from)
                s.bind(2, to)
            }
            while try s.step() {
                rows.append(Row(alertname: s.text(0), state: s.text(1), labels: s.text(2), annotations: s.text(3), value: s.doubleOrNil(4),
                                activeAt: s.int(5), firedAt: s.intOrNil(6), resolvedAt: s.intOrNil(7)))
            }
        } catch let e as ExitCode { throw e } catch { throw fail("query failed: \(error)") }
        switch format {
        case .json, .csv:
            var w = JSONWriter()
            w.raw("[")
            for r in rows {
                w.element()
                w.raw("{\"alertname\":"); w.string(r.alertname)
                w.raw(",\"state\":"); w.string(r.state)
                w.raw(",\"labels\":"); w.raw(r.labels)
                w.raw(",\"annotations\":"); w.raw(r.annotations)
                w.raw(",\"value\":"); w.optionalDouble(r.value)
                w.raw(",\"active_at\":"); w.optionalTime(r.activeAt)
                w.raw(",\"fired_at\":"); w.optionalTime(r.firedAt)
                w.raw(",\"resolved_at\":"); w.optionalTime(r.resolvedAt)
                w.raw("}")
            }
            w.raw("]")
            print(w.text)
        case .table:
            func labels(_ json: String) -> String {
                let m = (try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: String]) ?? [:]
                return m.filter { $0.key != "alertname" }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            }
            print(Output.table(["state", "alert", "since", "resolved", "value", "labels"], rows.map {
                [$0.state, $0.alertname, rfc3339($0.firedAt ?? $0.activeAt), $0.resolvedAt.map(rfc3339) ?? "", Output.number($0.value, digits: 4), labels($0.labels)]
            }), terminator: "")
        }
    }
}
