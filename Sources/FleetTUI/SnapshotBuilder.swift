import FleetCore
import FleetStore

/// Builds one `Snapshot` from a read-only store connection, in one read transaction.
///
/// Reads the header data every time and only what the requested view needs. Not thread-safe:
/// the loader thread owns it (and its `StoreReader`). The clock is a parameter.
public final class SnapshotBuilder {
    public let reader: StoreReader
    public var windows = Windows()
    private var seq = 0
    private var previousIngest: (received: Int64, atMs: Int64)?
    private let deviceCache = DeviceWindowCache()
    /// The last cohort table, reused for the header's drift KPI outside the cohorts view.
    private var cohortCache: (labels: [String], atMs: Int64, rows: [CohortRow])?
    /// Outside the cohorts view the cohort signals (drift) are recomputed at most this often.
    public var cohortMaxAgeMs: Int64 = 30_000

    public init(reader: StoreReader) {
        self.reader = reader
        // Drift baselines (closed reference hours) are merged once a minute of data time.
        reader.baselineReuseMs = 60_000
    }

    /// The snapshot for `request` as of wall time `nowMs`.
    public func build(_ request: LoadRequest, nowMs: Int64, monotonicMs: () -> Double = { 0 }) throws -> Snapshot {
        let started = monotonicMs()
        var snap = try reader.snapshot { try load(request, nowMs: nowMs) }
        seq += 1
        snap.seq = seq
        // Ingest rate from the counter delta between snapshots, per second of elapsed time
        // (monotonic when given: `nowMs` may be a simulated clock running faster than the wall).
        let at = started > 0 ? Int64(started) : nowMs
        if let p = previousIngest, at > p.atMs, snap.ingest.received >= p.received {
            snap.ingestRate = Double(snap.ingest.received - p.received) * 1000 / Double(at - p.atMs)
        }
        previousIngest = (snap.ingest.received, at)
        snap.loadMs = monotonicMs() - started
        return snap
    }

    private func load(_ request: LoadRequest, nowMs: Int64) throws -> Snapshot {
        let w = windows
        var snap = Snapshot(request: request)
        snap.windows = w
        snap.loadedAtMs = nowMs
        // The devices view reads the whole registry anyway: the header's counts come from it.
        var table = request.view == .devices ? try reader.deviceTable(cache: deviceCache, nowMs: nowMs) : nil
        let scan = table == nil ? try reader.registryScan() : nil
        let newest = table?.latestSeenMs ?? scan?.latestSeenMs
        snap.newestDataMs = newest
        // Windows end at the newest data (a replayed or stopped database still shows its last
        // hour), or now when devices report from the future.
        let asOf = min(nowMs, (newest ?? nowMs - 1) + 1)
        snap.asOfMs = asOf

        snap.registry = table?.registryCounts(seenSinceMs: asOf - w.signalMs) ?? scan?.counts(seenSinceMs: asOf - w.signalMs) ?? []
        snap.ingest = try reader.ingestTotals()
        // Header KPIs from the minute rollups: the signal window, and two trend windows.
        snap.signalTotals = try reader.rangeTotals(fromMs: asOf - w.signalMs, toMs: asOf)
        snap.trendNow = try reader.rangeTotals(fromMs: asOf - w.trendMs, toMs: asOf)
        snap.trendPrevious = try reader.rangeTotals(fromMs: asOf - 2 * w.trendMs, toMs: asOf - w.trendMs)
        snap.alerts = try reader.alerts()

        // Cohorts: every signal over the signal window (the same computation as `query fleet`),
        // plus per-minute series for the sparklines. Fresh in the cohorts view; elsewhere only
        // the header's drift KPI needs them, so they are reused for up to `cohortMaxAgeMs`.
        let labels = request.cohortLabels
        if request.view == .cohorts || cohortCache == nil || cohortCache?.labels != labels || nowMs - (cohortCache?.atMs ?? 0) > cohortMaxAgeMs {
            let results = try reader.fleet(fromMs: asOf - w.signalMs, toMs: asOf, by: labels)
            let series = try reader.minuteSeries(fromMs: asOf - w.eventsMs, toMs: asOf, by: labels)
            let rows = results.map { r in
                let key = r.labels.map(\.1)
                return CohortRow(labels: key, values: r.values, series: series[key] ?? [])
            }
            cohortCache = (labels, nowMs, rows)
        }
        snap.cohorts = cohortCache?.rows ?? []
        snap.cohortsAtMs = cohortCache?.atMs ?? nowMs

        switch request.view {
        case .devices:
            if var t = table {
                try reader.addActivity(to: &t, recentFromMs: asOf - w.recentMs, eventsFromMs: asOf - w.eventsMs, toMs: asOf, cache: deviceCache, nowMs: nowMs)
                snap.devices = t.devices
                table = nil
            }
        case .versions:
            snap.versions = try reader.versionHistory(fromMs: asOf - w.versionsMs, toMs: asOf, buckets: w.versionSlices)
        case .cohorts, .alerts:
            break
        }
        if let id = request.drillDevice {
            let history = try reader.deviceHistory(id, fromMs: asOf - w.timelineMs, toMs: asOf)
            let chart = history == nil ? nil : try reader.deviceHistory(id, fromMs: asOf - w.chartMs, toMs: asOf)
            snap.drill = DrillData(deviceID: id, history: history, windows: chart?.windows ?? [])
        }
        return snap
    }
}
