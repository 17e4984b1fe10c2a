import FleetCore
import FleetStore

/// The views the dashboard switches between.
public enum ViewKind: String, CaseIterable, Hashable, Sendable {
    case cohorts, devices, alerts, versions

    public var title: String {
        switch self {
        case .cohorts: "Cohorts"
        case .devices: "Devices"
        case .alerts: "Alerts"
        case .versions: "Versions"
        }
    }
}

/// What the UI asks the loader for: the loader reads the header and only the active view's data
/// (as k9s watches only what is shown).
public struct LoadRequest: Equatable, Sendable {
    public var view: ViewKind
    public var cohortLabels: [String]
    public var drillDevice: String?
    /// Bumped to force a reload (Ctrl-R) even when nothing changed.
    public var generation: Int

    public init(view: ViewKind, cohortLabels: [String], drillDevice: String? = nil, generation: Int = 0) {
        self.view = view
        self.cohortLabels = cohortLabels
        self.drillDevice = drillDevice
        self.generation = generation
    }
}

/// The windows every snapshot uses, relative to its `asOfMs`.
public struct Windows: Equatable, Sendable {
    /// KPIs and the cohort table (the alert rules' usual window).
    public var signalMs: Int64 = 3_600_000
    /// Trend arrows: the last `trendMs` against the `trendMs` before.
    public var trendMs: Int64 = 900_000
    /// Device table activity columns.
    public var recentMs: Int64 = 300_000
    /// Device table crash and error counts; cohort sparklines.
    public var eventsMs: Int64 = 3_600_000
    /// Versions chart.
    public var versionsMs: Int64 = 86_400_000
    public var versionSlices = 48
    /// Drill-down: timeline range and per-minute charts.
    public var timelineMs: Int64 = 7 * 86_400_000
    public var chartMs: Int64 = 2 * 3_600_000

    public init() {}
}

/// One cohort row: its labels, signals and last-hour per-minute series.
public struct CohortRow: Sendable, Equatable {
    public var labels: [String]
    public var values: SignalValues
    public var series: [StoreReader.MinutePoint]

    public init(labels: [String], values: SignalValues, series: [StoreReader.MinutePoint]) {
        self.labels = labels
        self.values = values
        self.series = series
    }
}

/// The device drill-down's data.
public struct DrillData: Sendable {
    public var deviceID: String
    /// nil when the device is not in the database.
    public var history: StoreReader.DeviceHistory?
    /// Per-minute windows of the chart range.
    public var windows: [StoreReader.Window]
}

/// Everything one frame shows, loaded in one read transaction; immutable once built.
public struct Snapshot: Sendable {
    public enum Status: Sendable, Equatable {
        case ok
        /// No usable database (missing, not yet initialised, unreadable): what to run instead.
        case unavailable(String)
    }

    public var seq = 0
    public var status: Status = .ok
    public var request: LoadRequest
    public var windows = Windows()
    /// Wall clock when loaded (ages of devices use it with the receiver's clock).
    public var loadedAtMs: Int64 = 0
    /// End of every window: the newest device time, or now if that is in the future.
    public var asOfMs: Int64 = 0
    public var newestDataMs: Int64?
    public var loadMs: Double = 0

    public var registry: [StoreReader.RegistryCount] = []
    /// Fleet-wide totals of the signal window (crash-free sessions, error rate, p95).
    public var signalTotals = StoreReader.RangeTotals()
    public var trendNow = StoreReader.RangeTotals()
    public var trendPrevious = StoreReader.RangeTotals()
    public var cohorts: [CohortRow] = []
    /// When the cohort rows were computed (older than the snapshot outside the cohorts view).
    public var cohortsAtMs: Int64 = 0

    public var ingest = IngestCounters()
    /// Messages received per second since the previous snapshot (nil on the first).
    public var ingestRate: Double?

    /// nil when the database has no alerts table (no alert engine has run).
    public var alerts: [StoreReader.AlertRow]?
    /// Loaded only for their views.
    public var devices: [StoreReader.DeviceSummary]?
    public var versions: StoreReader.VersionHistory?
    public var drill: DrillData?

    public init(request: LoadRequest) { self.request = request }

    public var totalDevices: Int64 { registry.reduce(0) { $0 + $1.devices } }

    public func devices(inState state: String) -> Int64 {
        registry.filter { $0.state == state }.reduce(0) { $0 + $1.devices }
    }

    /// The highest model version among devices seen in the signal window, and its share of them.
    public var newestVersionAdoption: (version: String, share: Double)? {
        var byVersion: [String: Int64] = [:]
        for r in registry where r.seenInWindow { byVersion[r.modelVersion, default: 0] += r.devices }
        let total = byVersion.values.reduce(0, +)
        guard total > 0, let newest = byVersion.keys.max(by: SemVer.less) else { return nil }
        return (newest, Double(byVersion[newest] ?? 0) / Double(total))
    }

    /// The cohort with the highest confidence PSI (nil while no cohort has a baseline).
    public var worstDrift: CohortRow? {
        cohorts.filter { $0.values.confidencePSI != nil }.max { ($0.values.confidencePSI ?? 0) < ($1.values.confidencePSI ?? 0) }
    }

    public var quarantined: Int64 { ingest.quarantined.values.reduce(0, +) }
}
