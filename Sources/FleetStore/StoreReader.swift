import FleetCore
import SQLiteKit

/// Read-only access to a fleet database for the CLI and the TUI.
///
/// Opens its own read-only connection: in WAL mode readers see the last committed batch and
/// never block the writer (nor it them).
public final class StoreReader {
    public let connection: SQLiteConnection

    public init(path: String) throws {
        guard FileManagerLite.exists(path) else {
            throw StoreError("no database at \(path): fill one with 'fleetwatch ingest --broker HOST:PORT --db \(path)' or 'fleetwatch ingest --file CAPTURE --db \(path)'")
        }
        connection = try SQLiteConnection(path: path, readOnly: true)
        let version = Int(try connection.scalar("PRAGMA user_version") ?? 0)
        if version == 0 { throw StoreError("\(path) is not a fleetwatch database (or is empty): run 'fleetwatch ingest ... --db \(path)' first") }
        if version > StoreSchema.currentVersion {
            throw StoreError("\(path) has schema version \(version), newer than this fleetwatch knows (\(StoreSchema.currentVersion)): upgrade fleetwatch")
        }
        try connection.execute("PRAGMA cache_size=-32768")
        try connection.registerMergeFunctions()
    }

    /// Runs `body` in one read transaction, so every query sees the same snapshot.
    public func snapshot<T>(_ body: () throws -> T) throws -> T {
        try connection.transaction(body)
    }

    // MARK: - Counters

    public func ingestCounters() throws -> IngestCounters {
        var c = IngestCounters()
        let s = try connection.statement("SELECT name, value FROM counters")
        while try s.step() {
            let name = s.text(0)
            let v = s.int(1)
            switch name {
            case "received": c.received = v
            case "stored": c.stored = v
            case "duplicates": c.duplicates = v
            case "replays_requested": c.replaysRequested = v
            default:
                if name.hasPrefix("quarantined:") { c.quarantined[String(name.dropFirst("quarantined:".count)), default: 0] += v }
            }
        }
        c.openGaps = try countOpenGaps()
        return c
    }

    /// Every open gap, oldest device id first.
    public func openGaps() throws -> [SeqGap] {
        let s = try connection.statement("""
            SELECT device_id, prev_to + 1, from_seq - 1, first_seq FROM (
                SELECT d.device_id, r.from_seq, lag(r.to_seq) OVER (PARTITION BY r.dev ORDER BY r.from_seq) AS prev_to, d.first_seq
                FROM seq_ranges r JOIN devices d USING(dev))
            WHERE prev_to IS NOT NULL AND from_seq - 1 >= first_seq ORDER BY device_id, from_seq
            """)
        var out: [SeqGap] = []
        while try s.step() { out.append(SeqGap(deviceID: s.text(0), fromSeq: max(s.int(1), s.int(3)), toSeq: s.int(2))) }
        return out
    }

    public func deviceCountsByState() throws -> [String: Int64] {
        let s = try connection.statement("SELECT state, count(*) FROM devices GROUP BY state")
        var out: [String: Int64] = [:]
        while try s.step() { out[s.text(0)] = s.int(1) }
        return out
    }

    /// Holes between seq ranges at or above each device's first seq.
    func countOpenGaps() throws -> Int64 {
        try connection.scalar("""
            SELECT count(*) FROM (
                SELECT r.dev, r.from_seq, lag(r.to_seq) OVER (PARTITION BY r.dev ORDER BY r.from_seq) AS prev_to, d.first_seq
                FROM seq_ranges r JOIN devices d USING(dev))
            WHERE prev_to IS NOT NULL AND from_seq - 1 >= first_seq
            """) ?? 0
    }

    // MARK: - Devices

    public struct DeviceRow: Sendable, Equatable {
        public var deviceID: String
        public var sku, firmware, agent, accelerator, modelName, modelVersion, modelSHA256: String
        public var state: String
        public var stateChangedMs: Int64?
        public var firstSeenMs: Int64
        public var lastSeenMs: Int64
        public var lastReceivedMs: Int64
        public var lastSeq: Int64
    }

    static let deviceColumns = """
        device_id, sku, firmware, agent, accelerator, model_name, model_version, model_sha256, state, state_changed_ms,
        first_seen_ms, last_seen_ms, last_received_ms, attrs_seq
        """

    func deviceRow(_ s: Statement) -> DeviceRow {
        DeviceRow(
            deviceID: s.text(0), sku: s.text(1), firmware: s.text(2), agent: s.text(3), accelerator: s.text(4),
            modelName: s.text(5), modelVersion: s.text(6), modelSHA256: s.text(7), state: s.text(8),
            stateChangedMs: s.intOrNil(9), firstSeenMs: s.int(10), lastSeenMs: s.int(11), lastReceivedMs: s.int(12), lastSeq: s.int(13))
    }

    public func device(_ id: String) throws -> DeviceRow? {
        let s = try connection.statement("SELECT \(Self.deviceColumns) FROM devices WHERE device_id = ?")
        s.bind(1, id)
        defer { s.reset() }
        return try s.step() ? deviceRow(s) : nil
    }

    public func allDevices() throws -> [DeviceRow] {
        let s = try connection.statement("SELECT \(Self.deviceColumns) FROM devices ORDER BY device_id")
        var out: [DeviceRow] = []
        while try s.step() { out.append(deviceRow(s)) }
        return out
    }

    /// Registry devices per cohort (the cohort of their current attributes), and how many are
    /// offline at `nowMs`: offline by their status topic, or silent (device time) for more than
    /// `staleAfterMs`. Integers only, no per-device strings: for offline rules not by device_id.
    public func offlineCounts(nowMs: Int64, staleAfterMs: Int64) throws -> [Int64: (devices: Int64, offline: Int64)] {
        let s = try connection.statement("SELECT cohort, state = 'offline' OR last_seen_ms < ?1 FROM devices")
        s.bind(1, nowMs - staleAfterMs)
        defer { s.reset() }
        var out: [Int64: (devices: Int64, offline: Int64)] = [:]
        while try s.step() {
            let offline: Int64 = s.int(1) != 0 ? 1 : 0
            out[s.int(0), default: (0, 0)].devices += 1
            out[s.int(0), default: (0, 0)].offline += offline
        }
        return out
    }

    private func devKey(_ id: String) throws -> (dev: Int64, firstSeq: Int64)? {
        let s = try connection.statement("SELECT dev, first_seq FROM devices WHERE device_id = ?")
        s.bind(1, id)
        defer { s.reset() }
        return try s.step() ? (s.int(0), s.int(1)) : nil
    }

    // MARK: - Device history

    public struct TimelineEntry: Sendable, Equatable {
        public var tsMs: Int64
        public var kind: String  // session, error, deploy, change, quarantined
        public var seq: Int64?
        /// Kind-specific fields, in a stable order.
        public var fields: [(String, FieldValue)]

        public static func == (a: TimelineEntry, b: TimelineEntry) -> Bool {
            a.tsMs == b.tsMs && a.kind == b.kind && a.seq == b.seq && a.fields.map(\.0) == b.fields.map(\.0)
                && a.fields.map(\.1) == b.fields.map(\.1)
        }
    }

    public enum FieldValue: Sendable, Equatable {
        case text(String)
        case int(Int64)
        case double(Double)
        case null
    }

    public struct Window: Sendable, Equatable {
        public var tsMs: Int64
        public var windowMs: Int64
        public var inferences: Int64
        public var errors: Int64
        public var latencyP50Ms: Double?
        public var latencyP95Ms: Double?
        public var tempC: Double?
        public var cpuPct: Double?
        public var memMB: Double?
        public var throttleEvents: Int64?
        public var errorRate: Double? { inferences > 0 ? Double(errors) / Double(inferences) : nil }
    }

    public struct DeviceHistory: Sendable {
        public var device: DeviceRow
        public var timeline: [TimelineEntry]
        public var windows: [Window]
        /// "minute" (ranges up to 6 h) or "hour" (longer ranges).
        public var resolution: String
        public var gaps: [ClosedRange<Int64>]
    }

    /// Ranges up to this read per-minute windows; longer ones per-hour windows.
    public static let minuteWindowLimitMs: Int64 = 6 * Time.hourMs

    public func deviceHistory(_ id: String, fromMs: Int64, toMs: Int64) throws -> DeviceHistory? {
        guard let row = try device(id), let key = try devKey(id) else { return nil }
        let dev = key.dev
        var timeline: [TimelineEntry] = []
        let sessions = try connection.statement("""
            SELECT ts_ms, seq, session_id, status, duration_ms, errors FROM sessions WHERE dev = ? AND ts_ms >= ? AND ts_ms < ? ORDER BY ts_ms, seq, idx
            """)
        sessions.bind(1, dev); sessions.bind(2, fromMs); sessions.bind(3, toMs)
        while try sessions.step() {
            timeline.append(TimelineEntry(tsMs: sessions.int(0), kind: "session", seq: sessions.int(1), fields: [
                ("session_id", .text(sessions.text(2))), ("status", .text(sessions.text(3))),
                ("duration_ms", .int(sessions.int(4))), ("errors", .int(sessions.int(5))),
            ]))
        }
        let errors = try connection.statement("SELECT ts_ms, seq, code, message FROM errors WHERE dev = ? AND ts_ms >= ? AND ts_ms < ? ORDER BY ts_ms, seq, idx")
        errors.bind(1, dev); errors.bind(2, fromMs); errors.bind(3, toMs)
        while try errors.step() {
            timeline.append(TimelineEntry(tsMs: errors.int(0), kind: "error", seq: errors.int(1), fields: [
                ("code", .text(errors.text(2))), ("message", .text(errors.text(3))),
            ]))
        }
        let deploys = try connection.statement("""
            SELECT ts_ms, seq, from_version, to_version, result FROM deploys WHERE dev = ? AND ts_ms >= ? AND ts_ms < ? ORDER BY ts_ms, seq, idx
            """)
        deploys.bind(1, dev); deploys.bind(2, fromMs); deploys.bind(3, toMs)
        while try deploys.step() {
            timeline.append(TimelineEntry(tsMs: deploys.int(0), kind: "deploy", seq: deploys.int(1), fields: [
                ("from_version", .text(deploys.text(2))), ("to_version", .text(deploys.text(3))), ("result", .text(deploys.text(4))),
            ]))
        }
        let changes = try connection.statement("""
            SELECT ts_ms, seq, field, old_value, new_value FROM changes WHERE dev = ? AND ts_ms >= ? AND ts_ms < ? ORDER BY ts_ms, seq
            """)
        changes.bind(1, dev); changes.bind(2, fromMs); changes.bind(3, toMs)
        while try changes.step() {
            timeline.append(TimelineEntry(tsMs: changes.int(0), kind: "change", seq: changes.int(1), fields: [
                ("field", .text(changes.text(2))), ("from", .text(changes.text(3))), ("to", .text(changes.text(4))),
            ]))
        }
        let quarantined = try connection.statement("""
            SELECT received_ms, topic, reason, detail, payload_bytes FROM quarantine WHERE device_id = ? AND received_ms >= ? AND received_ms < ? ORDER BY received_ms, id
            """)
        quarantined.bind(1, id); quarantined.bind(2, fromMs); quarantined.bind(3, toMs)
        while try quarantined.step() {
            timeline.append(TimelineEntry(tsMs: quarantined.int(0), kind: "quarantined", seq: nil, fields: [
                ("topic", .text(quarantined.text(1))), ("reason", .text(quarantined.text(2))),
                ("detail", .text(quarantined.text(3))), ("bytes", .int(quarantined.int(4))),
            ]))
        }
        // Stable: by time, then kind order as inserted above.
        timeline = timeline.enumerated().sorted { ($0.element.tsMs, $0.offset) < ($1.element.tsMs, $1.offset) }.map(\.element)

        let minutes = toMs - fromMs <= Self.minuteWindowLimitMs
        let windows = try bucketWindows(dev: dev, fromMs: fromMs, toMs: toMs, minutes: minutes)

        var ranges: [ClosedRange<Int64>] = []
        let r = try connection.statement("SELECT from_seq, to_seq FROM seq_ranges WHERE dev = ? ORDER BY from_seq")
        r.bind(1, dev)
        while try r.step() { ranges.append(r.int(0)...r.int(1)) }
        let gaps = SeqRanges(ranges, trackingFrom: key.firstSeq).gaps
        return DeviceHistory(device: row, timeline: timeline, windows: windows, resolution: minutes ? "minute" : "hour", gaps: gaps)
    }

    /// `bucket IN (...)` for the minute or hour buckets a range touches: one seek per bucket on
    /// the time-major (bucket, dev) keys.
    private func bucketList(_ fromMs: Int64, _ toMs: Int64, _ size: Int64) -> String {
        let first = max(0, fromMs) / size
        let last = max(0, toMs - 1) / size
        guard last >= first else { return "(-1)" }
        if last - first > 5000 {
            return "(WITH RECURSIVE b(v) AS (SELECT \(first) UNION ALL SELECT v + 1 FROM b WHERE v < \(last)) SELECT v FROM b)"
        }
        return "(" + (first...last).map(String.init).joined(separator: ",") + ")"
    }

    /// Per-minute or per-hour windows of one device. Hours not folded yet (FoldMark) are summed
    /// from the device's minutes.
    private func bucketWindows(dev: Int64, fromMs: Int64, toMs: Int64, minutes: Bool) throws -> [Window] {
        let columns = "inferences, errors, latency, temp_sum, temp_max, cpu_sum, mem_max, resource_samples, throttle_events"
        guard !minutes else {
            return try windows(size: Time.minuteMs, dev: dev, sql: """
                SELECT bucket, \(columns) FROM device_minute WHERE bucket IN \(bucketList(fromMs, toMs, Time.minuteMs)) AND dev = ?1 ORDER BY bucket
                """)
        }
        let firstHour = max(0, fromMs) / Time.hourMs
        let lastHour = max(0, toMs - 1) / Time.hourMs
        guard lastHour >= firstHour else { return [] }
        let open = min(max(try FoldMark.load(connection).firstOpenHour(dev: dev), firstHour), lastHour + 1)
        var out: [Window] = []
        if open > firstHour {
            out = try windows(size: Time.hourMs, dev: dev, sql: """
                SELECT bucket, \(columns) FROM device_hour WHERE bucket IN \(bucketList(fromMs, open * Time.hourMs, Time.hourMs)) AND dev = ?1 ORDER BY bucket
                """)
        }
        if open <= lastHour {
            // Whole hours, as a folded row would hold them.
            out += try windows(size: Time.hourMs, dev: dev, sql: """
                SELECT bucket / \(StoreWriter.minutesPerHour) AS hour, \(StoreWriter.minuteSums)
                FROM device_minute WHERE bucket IN \(bucketList(open * Time.hourMs, (lastHour + 1) * Time.hourMs, Time.minuteMs)) AND dev = ?1
                GROUP BY hour ORDER BY hour
                """)
        }
        return out
    }

    /// Windows from rows of (bucket, inferences, errors, latency, temp_sum, temp_max, cpu_sum,
    /// mem_max, resource_samples, throttle_events) in bucket order.
    private func windows(size: Int64, dev: Int64, sql: String) throws -> [Window] {
        let s = try connection.prepare(sql)
        s.bind(1, dev)
        var out: [Window] = []
        while try s.step() {
            let sketch = Codecs.decodeSketch(s.blob(3))
            let n = s.int(8)
            out.append(Window(
                tsMs: s.int(0) * size, windowMs: size, inferences: s.int(1), errors: s.int(2),
                latencyP50Ms: sketch.quantile(0.5).map { $0 / 1000 }, latencyP95Ms: sketch.quantile(0.95).map { $0 / 1000 },
                tempC: n > 0 ? s.double(4) / Double(n) : nil, cpuPct: n > 0 ? s.double(6) / Double(n) : nil,
                memMB: s.doubleOrNil(7), throttleEvents: n > 0 ? s.int(9) : nil))
        }
        return out
    }

    // MARK: - Fleet

    public static let cohortLabels = ["model_name", "model_version", "sku", "firmware", "accelerator"]

    public struct CohortResult: Sendable {
        public var labels: [(String, String)]
        public var aggregate: CohortAggregate
        public var values: SignalValues
    }

    /// Every signal per cohort for `[fromMs, toMs)`, cohorts formed by `by` (a subset of
    /// `cohortLabels`, or `device_id`). Drift baselines: the cohort's first `baselineMs` of data.
    public func fleet(fromMs: Int64, toMs: Int64, by: [String], baselineMs: Int64) throws -> [CohortResult] {
        try fleet(fromMs: fromMs, toMs: toMs, by: by, baseline: .first(durationMs: baselineMs))
    }

    /// Every signal per cohort for `[fromMs, toMs)`, cohorts formed by `by` (a subset of
    /// `cohortLabels`, or `device_id`), drift measured against `baseline` (DriftBaseline; nil:
    /// no baselines, drift signals are null).
    public func fleet(fromMs: Int64, toMs: Int64, by: [String], baseline: DriftBaseline? = .default) throws -> [CohortResult] {
        let byDevice = by.contains("device_id")
        let cohortLabelsUsed = by.filter { $0 != "device_id" }
        for l in cohortLabelsUsed where !Self.cohortLabels.contains(l) {
            throw StoreError("unknown label '\(l)': use one of \((Self.cohortLabels + ["device_id"]).joined(separator: ", "))")
        }
        // Fine cohorts and their label values.
        let cohortLabelsByID = try cohortLabelMap()
        if !byDevice {
            // Cohort labels only: one pass over the window, grouped in memory (FleetWindow).
            var rows = group(try fleetWindow(fromMs: fromMs, toMs: toMs, cohortLabels: cohortLabelsByID), by: by)
            if let baseline {
                let refs = try baselineAggregates(baseline, by: by, cohortLabels: cohortLabelsByID, asOfMs: toMs)
                for i in rows.indices {
                    guard let b = refs[baseline.referenceKey(Dictionary(uniqueKeysWithValues: rows[i].labels))] else { continue }
                    rows[i].aggregate.baselineHist = b.hist
                    rows[i].aggregate.baselineClasses = b.classes
                    rows[i].values = SignalValues(rows[i].aggregate)
                }
            }
            return rows
        }
        func groupKey(_ cohort: Int64, device: String?) -> [String] {
            let labels = cohortLabelsByID[cohort] ?? [:]
            return by.map { $0 == "device_id" ? (device ?? "") : (labels[$0] ?? "") }
        }
        let windowMs = toMs - fromMs
        var groups: [[String]: CohortAggregate] = [:]

        // Rollups: whole hours from rollup_hour, the ragged edges from rollup_minute.
        // (By device there are no per-device rollups of these fields; see docs/storage.md.)
        let perCohort = byDevice ? [:] : try rollupAggregates(fromMs: fromMs, toMs: toMs)
        // Presence: which devices were seen in which cohort.
        var devicesByGroup: [[String]: Set<Int64>] = [:]
        var fleetDevices = Set<Int64>()
        var deviceIDs: [Int64: String] = [:]
        if byDevice {
            let d = try connection.statement("SELECT dev, device_id FROM devices")
            while try d.step() { deviceIDs[d.int(0)] = d.text(1) }
        }
        let p = try connection.statement("SELECT dev, cohort FROM presence WHERE last_ms >= ? AND first_ms < ?")
        p.bind(1, fromMs); p.bind(2, toMs)
        while try p.step() {
            let dev = p.int(0)
            fleetDevices.insert(dev)
            devicesByGroup[groupKey(p.int(1), device: deviceIDs[dev]), default: []].insert(dev)
        }
        if byDevice {
            // Per device: one grouped pass over the window's raw records (cohort rollups cannot be
            // split by device). Heavy for long windows over big fleets; meant for incidents.
            let perDevice = try deviceAggregates(fromMs: fromMs, toMs: toMs)
            for (key, devs) in devicesByGroup {
                var agg = CohortAggregate(windowMs: windowMs)
                for dev in devs { if let a = perDevice[dev] { agg.merge(a) } }
                groups[key] = agg
            }
        } else {
            for (cohort, agg) in perCohort {
                groups[groupKey(cohort, device: nil), default: CohortAggregate(windowMs: windowMs)].merge(agg)
            }
            for key in devicesByGroup.keys where groups[key] == nil { groups[key] = CohortAggregate(windowMs: windowMs) }
        }
        // Devices with terminal sessions and crashes.
        var terminal: [[String]: (Set<Int64>, Set<Int64>)] = [:]
        let s = try connection.statement("""
            SELECT dev, cohort, max(status = 'crashed') FROM sessions WHERE ts_ms >= ? AND ts_ms < ? AND status != 'started' GROUP BY dev, cohort
            """)
        s.bind(1, fromMs); s.bind(2, toMs)
        while try s.step() {
            let key = groupKey(s.int(1), device: deviceIDs[s.int(0)])
            var t = terminal[key] ?? ([], [])
            t.0.insert(s.int(0))
            if s.int(2) != 0 { t.1.insert(s.int(0)) }
            terminal[key] = t
        }
        // Baselines (DriftBaseline.plan): complete only once their period has passed.
        let baselines = try baseline.map { try baselineAggregates($0, by: by, cohortLabels: cohortLabelsByID, asOfMs: toMs) } ?? [:]

        var out: [CohortResult] = []
        for (key, var agg) in groups {
            agg.devices = Int64(devicesByGroup[key]?.count ?? 0)
            agg.fleetDevices = Int64(fleetDevices.count)
            agg.devicesWithTerminalSession = Int64(terminal[key]?.0.count ?? 0)
            agg.devicesWithCrash = Int64(terminal[key]?.1.count ?? 0)
            let groupLabels = Dictionary(uniqueKeysWithValues: zip(by, key))
            if let baseline, let b = baselines[baseline.referenceKey(groupLabels)] {
                agg.baselineHist = b.hist
                agg.baselineClasses = b.classes
            }
            out.append(CohortResult(labels: Array(zip(by, key)), aggregate: agg, values: SignalValues(agg)))
        }
        out.sort { $0.labels.map(\.1).lexicographicallyPrecedes($1.labels.map(\.1)) }
        return out
    }

    private static let rollupColumns = """
        cohort, sum(inferences), sum(errors), fw_sketch_agg(latency), fw_hist_agg(hist), fw_classes_agg(classes),
        sum(sessions_started), sum(sessions_exited), sum(sessions_crashed), sum(sessions_abnormal),
        sum(throttle_events), sum(deploys_installed) + sum(deploys_rolled_back) + sum(deploys_failed), sum(deploys_rolled_back)
        """

    /// Per fine cohort: the rollups of `[fromMs, toMs)` (minute precision).
    func rollupAggregates(fromMs: Int64, toMs: Int64) throws -> [Int64: CohortAggregate] {
        let m0 = Self.ceilDiv(fromMs, Time.minuteMs)
        let m1 = Self.ceilDiv(toMs, Time.minuteMs)
        let h0 = Self.ceilDiv(m0, 60)
        let h1 = m1 / 60
        let sql: String
        if h1 > h0 {
            sql = """
                SELECT \(Self.rollupColumns) FROM (
                    SELECT * FROM rollup_hour WHERE bucket >= \(h0) AND bucket < \(h1)
                    UNION ALL SELECT * FROM rollup_minute WHERE bucket >= \(m0) AND bucket < \(h0 * 60)
                    UNION ALL SELECT * FROM rollup_minute WHERE bucket >= \(h1 * 60) AND bucket < \(m1))
                GROUP BY cohort
                """
        } else {
            sql = "SELECT \(Self.rollupColumns) FROM rollup_minute WHERE bucket >= \(m0) AND bucket < \(m1) GROUP BY cohort"
        }
        let s = try connection.prepare(sql)
        var out: [Int64: CohortAggregate] = [:]
        while try s.step() {
            var a = CohortAggregate(windowMs: toMs - fromMs)
            a.inferences = s.int(1)
            a.errors = s.int(2)
            a.latency = Codecs.decodeSketch(s.blob(3))
            a.confidenceHist = Codecs.decodeHistogram(s.blob(4))
            a.classes = Codecs.decodeClasses(s.blob(5))
            a.sessionsStarted = s.int(6)
            a.sessionsExited = s.int(7)
            a.sessionsCrashed = s.int(8)
            a.sessionsAbnormal = s.int(9)
            a.throttleEvents = s.int(10)
            a.deploys = s.int(11)
            a.deploysRolledBack = s.int(12)
            out[s.int(0)] = a
        }
        return out
    }

    /// Every device's aggregate over a window, from the raw records, in one pass per table.
    func deviceAggregates(fromMs: Int64, toMs: Int64) throws -> [Int64: CohortAggregate] {
        var out: [Int64: CohortAggregate] = [:]
        let windowMs = toMs - fromMs
        func with(_ dev: Int64, _ body: (inout CohortAggregate) -> Void) {
            var a = out[dev] ?? CohortAggregate(windowMs: windowMs)
            body(&a)
            out[dev] = a
        }
        let inf = try connection.statement("""
            SELECT dev, sum(count), sum(errors), fw_sketch_agg(latency), fw_hist_agg(hist), fw_classes_agg(classes) FROM inference
            WHERE ts_ms >= ?1 AND ts_ms < ?2 GROUP BY dev
            """)
        inf.bind(1, fromMs); inf.bind(2, toMs)
        while try inf.step() {
            with(inf.int(0)) { a in
                a.inferences = inf.int(1)
                a.errors = inf.int(2)
                a.latency = Codecs.decodeSketch(inf.blob(3))
                a.confidenceHist = Codecs.decodeHistogram(inf.blob(4))
                a.classes = Codecs.decodeClasses(inf.blob(5))
            }
        }
        let res = try connection.statement("SELECT dev, sum(throttle_events) FROM resources WHERE ts_ms >= ?1 AND ts_ms < ?2 GROUP BY dev")
        res.bind(1, fromMs); res.bind(2, toMs)
        while try res.step() { with(res.int(0)) { $0.throttleEvents = res.int(1) } }
        let ses = try connection.statement("SELECT dev, status, count(*) FROM sessions WHERE ts_ms >= ?1 AND ts_ms < ?2 GROUP BY dev, status")
        ses.bind(1, fromMs); ses.bind(2, toMs)
        while try ses.step() {
            with(ses.int(0)) { a in
                switch ses.text(1) {
                case "started": a.sessionsStarted = ses.int(2)
                case "exited": a.sessionsExited = ses.int(2)
                case "crashed": a.sessionsCrashed = ses.int(2)
                default: a.sessionsAbnormal = ses.int(2)
                }
            }
        }
        let dep = try connection.statement("SELECT dev, count(*), sum(result = 'rolled_back') FROM deploys WHERE ts_ms >= ?1 AND ts_ms < ?2 GROUP BY dev")
        dep.bind(1, fromMs); dep.bind(2, toMs)
        while try dep.step() {
            with(dep.int(0)) { a in
                a.deploys = dep.int(1)
                a.deploysRolledBack = dep.int(2)
            }
        }
        return out
    }

    /// Baseline histograms per reference key of `baseline` (DriftBaseline.plan), from the hour
    /// rollups; only references whose period ended by `asOfMs`.
    func baselineAggregates(
        _ baseline: DriftBaseline, by: [String], cohortLabels: [Int64: [String: String]], asOfMs: Int64
    ) throws -> [[String: String]: (hist: [Int64], classes: [String: Int64])] {
        var out: [[String: String]: (hist: [Int64], classes: [String: Int64])] = [:]
        for (key, range) in baseline.plan(by: by, cohorts: try baselineCohorts(cohortLabels), asOfMs: asOfMs) {
            let cacheKey = BaselineKey(cohorts: range.cohorts, fromHour: range.fromHour, toHour: range.toHour)
            let b: (hist: [Int64], classes: [String: Int64])?
            if baselineReuseMs > 0, let hit = baselineCache[cacheKey], abs(asOfMs - hit.asOfMs) <= baselineReuseMs {
                b = hit.value
            } else {
                b = try baselineHistogram(range)
                if baselineReuseMs > 0 { baselineCache[cacheKey] = (asOfMs, b) }
            }
            if let b { out[key] = b }
        }
        if baselineCache.count > 4096 { baselineCache.removeAll() }
        return out
    }

    /// Baseline histograms are reused for this much data time (`asOfMs`) once read; 0: read
    /// every call. A live view sets it: references are closed hours, which change only if late
    /// data lands in them, while merging them costs a refresh several milliseconds at 10k devices.
    public var baselineReuseMs: Int64 = 0
    private struct BaselineKey: Hashable {
        var cohorts: [Int64]
        var fromHour: Int64
        var toHour: Int64
    }
    private var baselineCache: [BaselineKey: (asOfMs: Int64, value: (hist: [Int64], classes: [String: Int64])?)] = [:]

    /// Every fine cohort with a confidence histogram: its labels and first hour (DriftBaseline.plan's input).
    public func baselineCohorts(_ labels: [Int64: [String: String]]? = nil) throws -> [DriftBaseline.Cohort] {
        let cohortLabels = try labels ?? cohortLabelMap()
        var cohorts: [DriftBaseline.Cohort] = []
        let f = try connection.statement("SELECT cohort, min(bucket) FROM rollup_hour WHERE hist IS NOT NULL GROUP BY cohort")
        while try f.step() {
            cohorts.append(DriftBaseline.Cohort(id: f.int(0), labels: cohortLabels[f.int(0)] ?? [:], firstHour: f.int(1)))
        }
        return cohorts
    }

    /// The merged confidence histogram and class counts of one baseline range; nil without data.
    public func baselineHistogram(_ range: DriftBaseline.Range) throws -> (hist: [Int64], classes: [String: Int64])? {
        let s = try connection.prepare("""
            SELECT fw_hist_agg(hist), fw_classes_agg(classes) FROM rollup_hour
            WHERE bucket >= \(range.fromHour) AND bucket < \(range.toHour) AND cohort IN (\(range.cohorts.map(String.init).joined(separator: ",")))
            """)
        guard try s.step(), !s.isNull(0) else { return nil }
        return (Codecs.decodeHistogram(s.blob(0)), Codecs.decodeClasses(s.blob(1)))
    }

    /// Labels of every fine cohort.
    public func cohortLabelMap() throws -> [Int64: [String: String]] {
        var out: [Int64: [String: String]] = [:]
        let c = try connection.statement("SELECT cohort, model_name, model_version, sku, firmware, accelerator FROM cohorts")
        while try c.step() {
            out[c.int(0)] = ["model_name": c.text(1), "model_version": c.text(2), "sku": c.text(3), "firmware": c.text(4), "accelerator": c.text(5)]
        }
        return out
    }

    static func ceilDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? (a + b - 1) / b : a / b }

    /// The newest device time in the database (for `--until latest`).
    public func latestDataMs() throws -> Int64? {
        try connection.scalar("SELECT max(last_seen_ms) FROM devices")
    }
}

/// File existence without Foundation in the adapter's public surface.
enum FileManagerLite {
    static func exists(_ path: String) -> Bool {
        if path.hasPrefix("file:") { return true }
        return access(path, F_OK) == 0
    }
}

#if canImport(Glibc)
    import Glibc
#endif
