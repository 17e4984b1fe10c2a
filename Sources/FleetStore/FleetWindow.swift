import FleetCore

/// Everything the cohort signals need from one window, per fine cohort, read once: rollups,
/// which devices were present in which cohort, and which had terminal sessions and crashes.
/// Grouping by any set of cohort labels is then done in memory (`StoreReader.group`), so rules
/// with the same window and different `by` share the store's work (the alert engine's cycle).
public struct FleetWindow: Sendable {
    public let fromMs: Int64
    public let toMs: Int64
    public let cohortLabels: [Int64: [String: String]]
    let perCohort: [Int64: CohortAggregate]
    /// (device, cohort) seen in the window, one per presence stretch (repeats are counted once
    /// by `group`).
    let presence: [(dev: Int64, cohort: Int64)]
    /// (device, cohort) per terminal session, and whether it crashed (repeats counted once).
    let terminal: [(dev: Int64, cohort: Int64, crashed: Bool)]
    let fleetDevices: Int64
}

extension StoreReader {
    /// Reads `[fromMs, toMs)` once for grouping by cohort labels (not device_id).
    public func fleetWindow(fromMs: Int64, toMs: Int64, cohortLabels: [Int64: [String: String]]? = nil) throws -> FleetWindow {
        let labels = try cohortLabels ?? cohortLabelMap()
        let perCohort = try rollupAggregates(fromMs: fromMs, toMs: toMs)
        var presence: [(dev: Int64, cohort: Int64)] = []
        var devs: [Int64] = []
        let p = try connection.statement("SELECT dev, cohort FROM presence WHERE last_ms >= ? AND first_ms < ?")
        p.bind(1, fromMs); p.bind(2, toMs)
        while try p.step() {
            presence.append((p.int(0), p.int(1)))
            devs.append(p.int(0))
        }
        var terminal: [(dev: Int64, cohort: Int64, crashed: Bool)] = []
        // Off the covering sessions_ts index, without a GROUP BY's sort: `group` counts distinct devices.
        let s = try connection.statement("""
            SELECT dev, cohort, status = 'crashed' FROM sessions INDEXED BY sessions_ts WHERE ts_ms >= ? AND ts_ms < ? AND status != 'started'
            """)
        s.bind(1, fromMs); s.bind(2, toMs)
        while try s.step() { terminal.append((s.int(0), s.int(1), s.int(2) != 0)) }
        devs.sort()
        return FleetWindow(
            fromMs: fromMs, toMs: toMs, cohortLabels: labels, perCohort: perCohort, presence: presence, terminal: terminal,
            fleetDevices: Int64(Self.distinctCount(devs)))
    }

    /// The window's cohorts grouped by `by` (cohort labels only), sorted by label values, without
    /// baselines (drift values null until the caller sets them).
    public func group(_ w: FleetWindow, by: [String]) -> [CohortResult] {
        // Each fine cohort's group, once (a handful of cohorts, not one key per row).
        var groups = Interner<[String]>()
        var groupOf: [Int64: Int] = [:]
        for (cohort, labels) in w.cohortLabels {
            groupOf[cohort] = groups.intern(by.map { labels[$0] ?? "" }).index
        }
        let keys = groups.keys
        let windowMs = w.toMs - w.fromMs
        var aggs = [CohortAggregate](repeating: CohortAggregate(windowMs: windowMs), count: keys.count)
        var present = [Bool](repeating: false, count: keys.count)
        for (cohort, a) in w.perCohort {
            guard let g = groupOf[cohort] else { continue }
            aggs[g].merge(a)
            present[g] = true
        }
        var devices = [[Int64]](repeating: [], count: keys.count)
        for p in w.presence {
            guard let g = groupOf[p.cohort] else { continue }
            devices[g].append(p.dev)
            present[g] = true
        }
        var terminal = [[Int64]](repeating: [], count: keys.count)
        var crashed = [[Int64]](repeating: [], count: keys.count)
        for t in w.terminal {
            guard let g = groupOf[t.cohort] else { continue }
            terminal[g].append(t.dev)
            if t.crashed { crashed[g].append(t.dev) }
        }
        var out: [CohortResult] = []
        for g in keys.indices where present[g] {
            var a = aggs[g]
            devices[g].sort()
            terminal[g].sort()
            crashed[g].sort()
            a.devices = Int64(Self.distinctCount(devices[g]))
            a.fleetDevices = w.fleetDevices
            a.devicesWithTerminalSession = Int64(Self.distinctCount(terminal[g]))
            a.devicesWithCrash = Int64(Self.distinctCount(crashed[g]))
            out.append(CohortResult(labels: Array(zip(by, keys[g])), aggregate: a, values: SignalValues(a)))
        }
        out.sort { $0.labels.map(\.1).lexicographicallyPrecedes($1.labels.map(\.1)) }
        return out
    }

    /// Distinct values of a sorted array.
    static func distinctCount(_ sorted: [Int64]) -> Int {
        var n = 0
        var last: Int64?
        for v in sorted where v != last {
            n += 1
            last = v
        }
        return n
    }
}
