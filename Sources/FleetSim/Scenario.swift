/// What a device is doing at one moment of a scenario. Pure data.
public struct DeviceCondition: Sendable, Equatable {
    /// The model version the device runs.
    public var modelVersion: String
    /// Probability that a session ends `crashed` instead of `exited`.
    public var crashProbability: Double = 0
    /// Multiplies the sku's median latency.
    public var latencyFactor: Double = 1
    /// Mean shift of every input feature, in base standard deviations (covariate drift).
    public var inputShift: Double = 0
    /// Probability that one inference fails (a sensor read timing out).
    public var errorRate: Double = 0.002
    /// false: the device's network is down (it keeps running and buffers its telemetry).
    public var connected: Bool = true
}

/// A moment in a scenario's story, printed when it happens (`EVENT ...` lines).
public struct ScenarioEvent: Sendable, Equatable {
    /// Scenario time since the start, milliseconds.
    public var atMs: Int64
    public var name: String
    public var detail: String
}

/// The scenarios of `fleetwatch simulate --scenario`: each a story with the alerts it should
/// raise with the shipped rules (docs/simulator.md). Pure: a device's condition is a function
/// of its spec and the scenario time, so tests can check every story without a broker.
public struct Scenario: Sendable {
    public enum Name: String, Sendable, CaseIterable {
        case steady
        case badRollout = "bad-rollout"
        case drift
        case offlineWave = "offline-wave"
        case stalledRollout = "stalled-rollout"
    }

    public static let modelName = "defect-detector"
    public static let currentVersion = "1.4.0"
    public static let newVersion = "1.5.0"
    /// bad-rollout: the sku on which 1.5.0 misbehaves.
    public static let faultySku = "rpi5-hailo8"
    /// drift: the site whose input distribution shifts (all its devices are xavier-nx).
    public static let driftSite = "dock-3"

    public let name: Name
    /// The story's moments, in time order.
    public let events: [ScenarioEvent]
    /// Alerts the shipped rules should raise, with the labels that identify the cohort.
    public let expectedAlerts: [(alertname: String, labels: [String: String])]

    static let minute: Int64 = 60_000

    public init(_ name: Name) {
        self.name = name
        let m = Self.minute
        switch name {
        case .steady:
            events = []
            expectedAlerts = []
        case .badRollout:
            events = [
                ScenarioEvent(atMs: 10 * m, name: "rollout", detail: "\(Self.newVersion) to 5% of devices (canary); it crashes 4% of sessions and makes inference 3.5x slower on \(Self.faultySku)"),
                ScenarioEvent(atMs: 10 * m, name: "fault-onset", detail: "model_version=\(Self.newVersion),sku=\(Self.faultySku)"),
                ScenarioEvent(atMs: 20 * m, name: "rollout", detail: "\(Self.newVersion) to 25% of devices"),
                ScenarioEvent(atMs: 30 * m, name: "rollout", detail: "\(Self.newVersion) to 50% of devices"),
                ScenarioEvent(atMs: 45 * m, name: "rollback", detail: "every device back to \(Self.currentVersion)"),
            ]
            let cohort = ["model_version": Self.newVersion, "sku": Self.faultySku]
            expectedAlerts = [("CrashFreeSessionsLow", cohort), ("InferenceLatencyP95High", cohort)]
        case .drift:
            events = [
                ScenarioEvent(atMs: 65 * m, name: "fault-onset", detail: "model_version=\(Self.currentVersion),sku=xavier-nx (site \(Self.driftSite): new lighting shifts every input feature)"),
            ]
            let cohort = ["model_version": Self.currentVersion, "sku": "xavier-nx"]
            expectedAlerts = [("ConfidenceDriftPSI", cohort), ("ConfidenceDriftJS", cohort)]
        case .offlineWave:
            events = [
                ScenarioEvent(atMs: 20 * m, name: "fault-onset", detail: "20% of devices lose their network (wills published); they keep inferring and buffer"),
                ScenarioEvent(atMs: 35 * m, name: "recovery", detail: "the network returns; devices flush their buffers"),
            ]
            expectedAlerts = [("DevicesOffline", [:])]
        case .stalledRollout:
            events = [
                ScenarioEvent(atMs: 10 * m, name: "rollout", detail: "\(Self.newVersion) (healthy) to 10% of devices"),
                ScenarioEvent(atMs: 10 * m, name: "fault-onset", detail: "a newer version exists; adoption is below 90%"),
                ScenarioEvent(atMs: 20 * m, name: "rollout", detail: "\(Self.newVersion) to 30% of devices; the rollout stops there"),
            ]
            expectedAlerts = [("RolloutStalled", [:])]
        }
    }

    /// The device's condition `t` ms of scenario time after the start.
    public func condition(of d: DeviceSpec, at t: Int64) -> DeviceCondition {
        let m = Self.minute
        var c = DeviceCondition(modelVersion: Self.currentVersion)
        switch name {
        case .steady:
            break
        case .badRollout:
            let share: Double = t >= 45 * m ? 0 : t >= 30 * m ? 0.5 : t >= 20 * m ? 0.25 : t >= 10 * m ? 0.05 : 0
            if d.rolloutRank < share {
                c.modelVersion = Self.newVersion
                if d.profile.sku == Self.faultySku {
                    c.crashProbability = 0.04
                    c.latencyFactor = 3.5
                }
            }
        case .drift:
            if d.site == Self.driftSite && t >= 65 * m { c.inputShift = 3 }
        case .offlineWave:
            if d.outageRank < 0.2 && t >= 20 * m && t < 35 * m { c.connected = false }
        case .stalledRollout:
            let share: Double = t >= 20 * m ? 0.3 : t >= 10 * m ? 0.1 : 0
            if d.rolloutRank < share { c.modelVersion = Self.newVersion }
        }
        return c
    }
}
