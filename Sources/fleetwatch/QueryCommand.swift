import ArgumentParser
import FleetCore
import FleetStore
import Foundation

struct Query: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Answer questions about a device's, a cohort's or the ingester's history.",
        subcommands: [DeviceQuery.self, FleetQuery.self, IngestQuery.self])
}

func openReader(_ path: String) throws -> StoreReader {
    do { return try StoreReader(path: path) } catch let e as StoreError { throw fail(e.description) } catch { throw fail("cannot open \(path): \(error)") }
}

// MARK: - query device

struct DeviceQuery: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "device",
        abstract: "One device's timeline (sessions, errors, deploys, changes, quarantined input), windows and seq gaps.",
        discussion: """
            Windows are the device's own reports for ranges up to 6 h, hourly rollups beyond.
            Times are device time; the window defaults to the last 24 h before --until.
            """)

    @Argument(help: "The device id.")
    var id: String

    @OptionGroup var database: DatabaseOption
    @OptionGroup var window: WindowOptions

    @Option(help: "table, json or csv.")
    var format: OutputFormat = .table

    func run() throws {
        let reader = try openReader(database.db)
        let (from, to) = try window.resolve(defaultSince: "24h", latest: { try reader.latestDataMs() })
        let history: StoreReader.DeviceHistory
        do {
            guard let h = try reader.snapshot({ try reader.deviceHistory(id, fromMs: from, toMs: to) }) else {
                throw fail("no device '\(TerminalText.inert(id))' in \(database.db)")
            }
            history = h
        } catch let e as ExitCode { throw e } catch { throw fail("query failed: \(error)") }
        switch format {
        case .json: print(Self.json(history))
        case .table: print(Self.table(history, from: from, to: to), terminator: "")
        case .csv: print(Self.csv(history), terminator: "")
        }
    }

    static func fieldText(_ v: StoreReader.FieldValue) -> String {
        switch v {
        case .text(let s): s
        case .int(let i): String(i)
        case .double(let d): Output.number(d)
        case .null: "-"
        }
    }

    static func summary(_ e: StoreReader.TimelineEntry) -> String {
        let f = Dictionary(e.fields.map { ($0.0, fieldText($0.1)) }, uniquingKeysWith: { a, _ in a })
        switch e.kind {
        case "session": return "\(f["status"] ?? "") session \(f["session_id"] ?? "") duration=\(f["duration_ms"] ?? "")ms errors=\(f["errors"] ?? "")"
        case "error": return "\(f["code"] ?? ""): \(f["message"] ?? "")"
        case "deploy": return "\(f["from_version"] ?? "") -> \(f["to_version"] ?? "") \(f["result"] ?? "")"
        case "change": return "\(f["field"] ?? ""): \(f["from"] ?? "") -> \(f["to"] ?? "")"
        default: return "\(f["reason"] ?? "") (\(f["bytes"] ?? "") bytes on \(f["topic"] ?? "")): \(f["detail"] ?? "")"
        }
    }

    static func table(_ h: StoreReader.DeviceHistory, from: Int64, to: Int64) -> String {
        let d = h.device
        var out = "device \(d.deviceID)  state \(d.state)  sku \(d.sku)  firmware \(d.firmware)  accelerator \(d.accelerator)  model \(d.modelName) \(d.modelVersion)\n"
        out += "first seen \(rfc3339(d.firstSeenMs))  last seen \(rfc3339(d.lastSeenMs))  last seq \(d.lastSeq)\n"
        out = TerminalText.inert(out.replacingOccurrences(of: "\n", with: "\u{0}")).replacingOccurrences(of: "\\x00", with: "\n")
        out += "window \(rfc3339(from)) .. \(rfc3339(to))\n\n"
        out += "TIMELINE (\(h.timeline.count))\n"
        out += Output.table(["time", "kind", "seq", "what"], h.timeline.map { [rfc3339($0.tsMs), $0.kind, $0.seq.map(String.init) ?? "-", summary($0)] })
        out += "\nWINDOWS (\(h.windows.count), \(h.resolution))\n"
        out += Output.table(
            ["time", "inferences", "errors", "error rate", "p50 ms", "p95 ms", "temp C", "cpu %"],
            h.windows.map {
                [rfc3339($0.tsMs), String($0.inferences), String($0.errors), Output.percent($0.errorRate),
                 Output.number($0.latencyP50Ms, digits: 2), Output.number($0.latencyP95Ms, digits: 2),
                 Output.number($0.tempC, digits: 1), Output.number($0.cpuPct, digits: 1)]
            }, numericFrom: 1)
        out += "\nGAPS (\(h.gaps.count))" + (h.gaps.isEmpty ? ": none\n" : ": " + h.gaps.map { "\($0.lowerBound)-\($0.upperBound)" }.joined(separator: ", ") + "\n")
        return out
    }

    static func json(_ h: StoreReader.DeviceHistory) -> String {
        var w = JSONWriter()
        let d = h.device
        w.raw("{\"device\":{")
        w.key("device_id"); w.string(d.deviceID)
        w.key("sku"); w.string(d.sku)
        w.key("firmware"); w.string(d.firmware)
        w.key("accelerator"); w.string(d.accelerator)
        w.key("model_name"); w.string(d.modelName)
        w.key("model_version"); w.string(d.modelVersion)
        w.key("model_sha256"); w.string(d.modelSHA256)
        w.key("agent"); w.string(d.agent)
        w.key("state"); w.string(d.state)
        w.key("first_seen_ms"); w.int(d.firstSeenMs)
        w.key("last_seen_ms"); w.int(d.lastSeenMs)
        w.key("last_seq"); w.int(d.lastSeq)
        w.raw("},\"timeline\":[")
        for e in h.timeline {
            w.element()
            w.raw("{")
            w.key("ts_ms"); w.int(e.tsMs)
            w.key("kind"); w.string(e.kind)
            if let seq = e.seq { w.key("seq"); w.int(seq) }
            for (k, v) in e.fields {
                w.key(k)
                switch v {
                case .text(let s): w.string(s)
                case .int(let i): w.int(i)
                case .double(let x): w.double(x)
                case .null: w.raw("null")
                }
            }
            w.raw("}")
        }
        w.raw("],\"resolution\":"); w.string(h.resolution)
        w.raw(",\"windows\":[")
        for x in h.windows {
            w.element()
            w.raw("{")
            w.key("ts_ms"); w.int(x.tsMs)
            w.key("window_ms"); w.int(x.windowMs)
            w.key("inferences"); w.int(x.inferences)
            w.key("errors"); w.int(x.errors)
            w.key("error_rate"); w.optionalDouble(x.errorRate)
            w.key("latency_p50_ms"); w.optionalDouble(x.latencyP50Ms)
            w.key("latency_p95_ms"); w.optionalDouble(x.latencyP95Ms)
            w.key("temp_c"); w.optionalDouble(x.tempC)
            w.key("cpu_pct"); w.optionalDouble(x.cpuPct)
            w.key("mem_mb"); w.optionalDouble(x.memMB)
            w.key("throttle_events"); if let t = x.throttleEvents { w.int(t) } else { w.raw("null") }
            w.raw("}")
        }
        w.raw("],\"gaps\":[")
        for g in h.gaps {
            w.element()
            w.raw("{\"from_seq\":"); w.int(g.lowerBound); w.raw(",\"to_seq\":"); w.int(g.upperBound); w.raw("}")
        }
        w.raw("]}")
        return w.text
    }

    static func csv(_ h: StoreReader.DeviceHistory) -> String {
        let header = ["type", "ts_ms", "time", "kind", "seq", "detail", "inferences", "errors", "error_rate", "latency_p50_ms", "latency_p95_ms", "temp_c", "cpu_pct"]
        var rows: [[String]] = h.timeline.map { ["event", String($0.tsMs), rfc3339($0.tsMs), $0.kind, $0.seq.map(String.init) ?? "", summary($0), "", "", "", "", "", "", ""] }
        rows += h.windows.map {
            ["window", String($0.tsMs), rfc3339($0.tsMs), h.resolution, "", "", String($0.inferences), String($0.errors),
             $0.errorRate.map { String($0) } ?? "", $0.latencyP50Ms.map { String($0) } ?? "", $0.latencyP95Ms.map { String($0) } ?? "",
             $0.tempC.map { String($0) } ?? "", $0.cpuPct.map { String($0) } ?? ""]
        }
        rows += h.gaps.map { ["gap", "", "", "", "\($0.lowerBound)-\($0.upperBound)", "", "", "", "", "", "", "", ""] }
        return Output.csv(header, rows)
    }
}

// MARK: - query fleet

struct FleetQuery: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet",
        abstract: "Every fleet signal per cohort for a window (CONTRACTS section 4).",
        discussion: "Cohorts are formed by --by (repeatable or comma-separated): model_name, model_version, sku, firmware, accelerator, device_id.")

    @OptionGroup var database: DatabaseOption
    @OptionGroup var window: WindowOptions

    @Option(help: "Cohort labels (default model_version).")
    var by: [String] = []

    @Option(help: "table, json or csv.")
    var format: OutputFormat = .table

    @Option(help: "Drift baseline: each cohort's first DUR of data.")
    var baseline: String = "24h"

    func run() throws {
        let labels = by.isEmpty ? ["model_version"] : by.flatMap { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }
        let known = StoreReader.cohortLabels + ["device_id"]
        for l in labels where !known.contains(l) {
            throw fail("unknown label '\(TerminalText.inert(l))': use one of \(known.joined(separator: ", "))")
        }
        guard let baselineMs = PromDuration.parseMs(baseline), baselineMs > 0 else { throw ValidationError("--baseline: '\(baseline)' is not a duration") }
        let reader = try openReader(database.db)
        let (from, to) = try window.resolve(defaultSince: "24h", latest: { try reader.latestDataMs() })
        let rows: [StoreReader.CohortResult]
        do { rows = try reader.snapshot { try reader.fleet(fromMs: from, toMs: to, by: labels, baselineMs: baselineMs) } } catch { throw fail("query failed: \(error)") }
        switch format {
        case .json: print(Self.json(rows))
        case .table:
            print("window \(rfc3339(from)) .. \(rfc3339(to)), by \(labels.joined(separator: ","))")
            print(Output.table(labels + Self.columns, rows.map { $0.labels.map(\.1) + Self.cells($0.values, digits: true) }, numericFrom: labels.count), terminator: "")
        case .csv:
            print(Output.csv(labels + Self.jsonKeys, rows.map { $0.labels.map(\.1) + Self.cells($0.values, digits: false) }), terminator: "")
        }
    }

    static let columns = ["devices", "share", "sessions", "crash-free", "crash-free dev", "inferences", "error rate", "p50 ms", "p95 ms", "p99 ms", "conf PSI", "conf JS", "class PSI", "rollback", "throttle/dev-h"]
    static let jsonKeys = ["devices", "device_share", "sessions", "crash_free_sessions", "crash_free_devices", "inferences", "error_rate", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "confidence_psi", "confidence_js", "class_mix_psi", "rollback_rate", "throttle_rate"]

    static func cells(_ v: SignalValues, digits: Bool) -> [String] {
        func f(_ x: Double?, _ d: Int) -> String { digits ? Output.number(x, digits: d) : (x.map { String($0) } ?? "") }
        func p(_ x: Double?) -> String { digits ? Output.percent(x) : (x.map { String($0) } ?? "") }
        return [String(v.devices), p(v.deviceShare), String(v.sessions), p(v.crashFreeSessions), p(v.crashFreeDevices), String(v.inferences),
                p(v.errorRate), f(v.latencyP50Ms, 2), f(v.latencyP95Ms, 2), f(v.latencyP99Ms, 2), f(v.confidencePSI, 4), f(v.confidenceJS, 4),
                f(v.classMixPSI, 4), p(v.rollbackRate), f(v.throttleRate, 3)]
    }

    static func json(_ rows: [StoreReader.CohortResult]) -> String {
        var w = JSONWriter()
        w.raw("[")
        for r in rows {
            w.element()
            let v = r.values
            w.raw("{\"labels\":{")
            for (k, val) in r.labels { w.key(k); w.string(val) }
            w.raw("}")
            w.key("devices"); w.int(v.devices)
            w.key("device_share"); w.optionalDouble(v.deviceShare)
            w.key("sessions"); w.int(v.sessions)
            w.key("crash_free_sessions"); w.optionalDouble(v.crashFreeSessions)
            w.key("crash_free_devices"); w.optionalDouble(v.crashFreeDevices)
            w.key("error_rate"); w.optionalDouble(v.errorRate)
            w.key("inferences"); w.int(v.inferences)
            w.key("latency_p50_ms"); w.optionalDouble(v.latencyP50Ms)
            w.key("latency_p95_ms"); w.optionalDouble(v.latencyP95Ms)
            w.key("latency_p99_ms"); w.optionalDouble(v.latencyP99Ms)
            w.key("confidence_psi"); w.optionalDouble(v.confidencePSI)
            w.key("confidence_js"); w.optionalDouble(v.confidenceJS)
            w.key("class_mix_psi"); w.optionalDouble(v.classMixPSI)
            w.key("rollback_rate"); w.optionalDouble(v.rollbackRate)
            w.key("throttle_rate"); w.optionalDouble(v.throttleRate)
            w.raw("}")
        }
        w.raw("]")
        return w.text
    }
}

// MARK: - query ingest

struct IngestQuery: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "The ingester's counters: received = stored + duplicates + quarantined (CONTRACTS section 8).")

    @OptionGroup var database: DatabaseOption

    @Option(help: "table or json.")
    var format: OutputFormat = .table

    func run() throws {
        let reader = try openReader(database.db)
        let c: IngestCounters
        do { c = try reader.ingestCounters() } catch { throw fail("query failed: \(error)") }
        switch format {
        case .json, .csv:
            var w = JSONWriter()
            w.raw("{")
            w.key("received"); w.int(c.received)
            w.key("stored"); w.int(c.stored)
            w.key("duplicates"); w.int(c.duplicates)
            w.key("quarantined"); w.raw("{")
            for (k, v) in c.quarantined.sorted(by: { $0.key < $1.key }) { w.key(k); w.int(v) }
            w.raw("}")
            w.key("replays_requested"); w.int(c.replaysRequested)
            w.key("open_gaps"); w.int(c.openGaps)
            w.raw("}")
            print(w.text)
        case .table:
            var rows: [[String]] = [["received", String(c.received)], ["stored", String(c.stored)], ["duplicates", String(c.duplicates)]]
            rows.append(["quarantined", String(c.quarantined.values.reduce(0, +))])
            for (k, v) in c.quarantined.sorted(by: { $0.key < $1.key }) { rows.append(["  " + k, String(v)]) }
            rows.append(["replays requested", String(c.replaysRequested)])
            rows.append(["open gaps", String(c.openGaps)])
            print(Output.table(["counter", "value"], rows, numericFrom: 1), terminator: "")
        }
    }
}
