import ArgumentParser
import FleetCore
import FleetStore
import Foundation
import SQLiteKit

struct Alerts: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Current and recent alerts (pending, firing, resolved in the last 15 minutes).")

    enum StateFilter: String, ExpressibleByArgument, CaseIterable { case firing, all }

    @OptionGroup var database: DatabaseOption

    @Option(help: "firing, or all (pending, firing and recently resolved).")
    var state: StateFilter = .all

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
            let s = try reader.connection.prepare("""
                SELECT alertname, state, labels, annotations, value, active_at, fired_at, resolved_at FROM alerts
                \(state == .firing ? "WHERE state = 'firing'" : "")
                ORDER BY CASE state WHEN 'firing' THEN 0 WHEN 'pending' THEN 1 ELSE 2 END, alertname, labels
                """)
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
            print(Output.table(["state", "alert", "since", "value", "labels"], rows.map {
                [$0.state, $0.alertname, rfc3339($0.firedAt ?? $0.activeAt), Output.number($0.value, digits: 4), labels($0.labels)]
            }), terminator: "")
        }
    }
}
