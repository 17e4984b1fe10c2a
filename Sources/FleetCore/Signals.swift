/// The fleet signals of CONTRACTS section 4, computed from one cohort's aggregates over one
/// window. Pure: the store (or a test) gathers the aggregates, this turns them into values.
/// A value that cannot be computed (no samples, no baseline) is nil, never 0.
public enum Signal: String, Sendable, CaseIterable {
    case sessions
    case crashFreeSessions = "crash_free_sessions"
    case crashFreeDevices = "crash_free_devices"
    case errorRate = "error_rate"
    case latencyP50 = "latency_p50_ms"
    case latencyP95 = "latency_p95_ms"
    case latencyP99 = "latency_p99_ms"
    case confidencePSI = "confidence_psi"
    case confidenceJS = "confidence_js"
    case classMixPSI = "class_mix_psi"
    case versionAdoption = "version_adoption"
    case offlineDevices = "offline_devices"
    case offlineRatio = "offline_ratio"
    case throttleRate = "throttle_rate"
    case rollbackRate = "rollback_rate"
}

/// Everything a cohort did in a window, as counts and mergeable summaries.
public struct CohortAggregate: Sendable, Equatable {
    public var windowMs: Int64
    /// Devices seen in the window in this cohort, and in the whole fleet.
    public var devices: Int64 = 0
    public var fleetDevices: Int64 = 0
    public var sessionsStarted: Int64 = 0
    public var sessionsExited: Int64 = 0
    public var sessionsCrashed: Int64 = 0
    public var sessionsAbnormal: Int64 = 0
    /// Devices with a terminal session in the window, and those of them with a crash.
    public var devicesWithTerminalSession: Int64 = 0
    public var devicesWithCrash: Int64 = 0
    public var inferences: Int64 = 0
    public var errors: Int64 = 0
    public var latency = DDSketch()
    public var confidenceHist = [Int64](repeating: 0, count: InferenceRecord.histogramBins)
    public var classes: [String: Int64] = [:]
    /// The drift baseline; nil while the baseline period has not ended (or has no data).
    public var baselineHist: [Int64]?
    public var baselineClasses: [String: Int64]?
    public var deploys: Int64 = 0
    public var deploysRolledBack: Int64 = 0
    public var throttleEvents: Int64 = 0

    public init(windowMs: Int64) { self.windowMs = windowMs }

    /// Terminal sessions: exited + crashed + abnormal.
    public var terminalSessions: Int64 { sessionsExited &+ sessionsCrashed &+ sessionsAbnormal }

    /// Adds another aggregate of the same window (cohorts grouped by fewer labels).
    /// Device counts are not additive across overlapping cohorts; callers set them.
    public mutating func merge(_ o: CohortAggregate) {
        sessionsStarted &+= o.sessionsStarted
        sessionsExited &+= o.sessionsExited
        sessionsCrashed &+= o.sessionsCrashed
        sessionsAbnormal &+= o.sessionsAbnormal
        inferences &+= o.inferences
        errors &+= o.errors
        latency.merge(o.latency)
        for i in confidenceHist.indices { confidenceHist[i] &+= o.confidenceHist[i] }
        for (k, v) in o.classes { classes[k, default: 0] &+= v }
        deploys &+= o.deploys
        deploysRolledBack &+= o.deploysRolledBack
        throttleEvents &+= o.throttleEvents
    }
}

public struct SignalValues: Sendable, Equatable {
    public var devices: Int64
    public var deviceShare: Double?
    public var sessions: Int64
    public var crashFreeSessions: Double?
    public var crashFreeDevices: Double?
    public var inferences: Int64
    public var errorRate: Double?
    public var latencyP50Ms: Double?
    public var latencyP95Ms: Double?
    public var latencyP99Ms: Double?
    public var confidencePSI: Double?
    public var confidenceJS: Double?
    public var classMixPSI: Double?
    public var rollbackRate: Double?
    public var throttleRate: Double?

    public init(_ a: CohortAggregate) {
        devices = a.devices
        deviceShare = a.fleetDevices > 0 ? Double(a.devices) / Double(a.fleetDevices) : nil
        sessions = a.terminalSessions
        crashFreeSessions = a.terminalSessions > 0 ? 1 - Double(a.sessionsCrashed) / Double(a.terminalSessions) : nil
        crashFreeDevices = a.devicesWithTerminalSession > 0
            ? 1 - Double(a.devicesWithCrash) / Double(a.devicesWithTerminalSession) : nil
        inferences = a.inferences
        errorRate = a.inferences > 0 ? Double(a.errors) / Double(a.inferences) : nil
        latencyP50Ms = a.latency.quantile(0.50).map { $0 / 1000 }
        latencyP95Ms = a.latency.quantile(0.95).map { $0 / 1000 }
        latencyP99Ms = a.latency.quantile(0.99).map { $0 / 1000 }
        confidencePSI = a.baselineHist.flatMap { Drift.psi(actual: a.confidenceHist, expected: $0) }
        confidenceJS = a.baselineHist.flatMap { Drift.jensenShannonDistance(a.confidenceHist, $0) }
        classMixPSI = a.baselineClasses.flatMap { Drift.classMixPSI(actual: a.classes, expected: $0) }
        rollbackRate = a.deploys > 0 ? Double(a.deploysRolledBack) / Double(a.deploys) : nil
        let hours = Double(a.windowMs) / 3_600_000
        throttleRate = a.devices > 0 && hours > 0 ? Double(a.throttleEvents) / (Double(a.devices) * hours) : nil
    }

    /// The value of a signal that is a per-cohort number (adoption and offline counts come from
    /// the registry, not from one cohort's window).
    public func value(of signal: Signal) -> Double? {
        switch signal {
        case .sessions: Double(sessions)
        case .crashFreeSessions: crashFreeSessions
        case .crashFreeDevices: crashFreeDevices
        case .errorRate: errorRate
        case .latencyP50: latencyP50Ms
        case .latencyP95: latencyP95Ms
        case .latencyP99: latencyP99Ms
        case .confidencePSI: confidencePSI
        case .confidenceJS: confidenceJS
        case .classMixPSI: classMixPSI
        case .versionAdoption: deviceShare
        case .throttleRate: throttleRate
        case .rollbackRate: rollbackRate
        case .offlineDevices, .offlineRatio: nil
        }
    }
}

/// Semantic-version ordering for `latest` (highest version seen): numeric dot-separated core,
/// a pre-release sorts before its release, build metadata is ignored; anything unparsable sorts
/// by plain string order after every parsable version.
public enum SemVer {
    public static func less(_ a: String, _ b: String) -> Bool {
        let pa = parse(a)
        let pb = parse(b)
        switch (pa, pb) {
        case let (x?, y?):
            for i in 0..<max(x.core.count, y.core.count) {
                let u = i < x.core.count ? x.core[i] : 0
                let v = i < y.core.count ? y.core[i] : 0
                if u != v { return u < v }
            }
            switch (x.pre, y.pre) {
            case (nil, nil): return false
            case (nil, _): return false
            case (_, nil): return true
            case let (p?, q?): return p < q
            }
        case (nil, nil): return a < b
        case (nil, _): return false
        case (_, nil): return true
        }
    }

    private static func parse(_ s: String) -> (core: [Int], pre: String?)? {
        let noBuild = s.split(separator: "+", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? s
        let parts = noBuild.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        let coreText = parts.first.map(String.init) ?? ""
        let trimmed = coreText.hasPrefix("v") ? String(coreText.dropFirst()) : coreText
        var core: [Int] = []
        for p in trimmed.split(separator: ".", omittingEmptySubsequences: false) {
            guard let n = Int(p) else { return nil }
            core.append(n)
        }
        guard !core.isEmpty else { return nil }
        return (core, parts.count > 1 ? String(parts[1]) : nil)
    }
}
