/// Where a drift signal's reference distribution comes from (CONTRACTS section 4), and which
/// hour rollups make it up. Pure: the store hands in each fine cohort's labels and first hour
/// with a confidence histogram; the plan says which cohorts and hours to merge per group.
public enum DriftBaseline: Sendable, Equatable, Hashable {
    /// The group's own first `durationMs` of data (whole hours, at least one), starting at the
    /// hour of its first histogram.
    case first(durationMs: Int64)
    /// The first 24 h of model version `v` with the group's other labels (model_version and
    /// device_id aside): "compare against how v behaved when it was new".
    case version(String)

    public static let `default` = DriftBaseline.first(durationMs: 24 * hourMs)
    /// How much of the reference version's data `version:V` takes.
    public static let versionBaselineMs: Int64 = 24 * hourMs
    static let hourMs: Int64 = 3_600_000

    /// One fine cohort as the plan sees it: its labels and the first hour bucket (epoch hours)
    /// in which it has a confidence histogram.
    public struct Cohort: Sendable, Equatable {
        public var id: Int64
        public var labels: [String: String]
        public var firstHour: Int64

        public init(id: Int64, labels: [String: String], firstHour: Int64) {
            self.id = id
            self.labels = labels
            self.firstHour = firstHour
        }
    }

    /// The rollups to merge for one reference: fine cohorts `cohorts`, hours `[fromHour, toHour)`.
    public struct Range: Sendable, Equatable {
        public var cohorts: [Int64]
        public var fromHour: Int64
        public var toHour: Int64

        public init(cohorts: [Int64], fromHour: Int64, toHour: Int64) {
            self.cohorts = cohorts
            self.fromHour = fromHour
            self.toHour = toHour
        }
    }

    /// The labels a group's baseline is looked up by: the group's own labels for `first`; for
    /// `version`, the group's labels without model_version and device_id.
    public func referenceKey(_ groupLabels: [String: String]) -> [String: String] {
        switch self {
        case .first: return groupLabels
        case .version: return groupLabels.filter { $0.key != "model_version" && $0.key != "device_id" }
        }
    }

    /// Per reference key, the rollups that make up its baseline, for groups formed by `by`.
    /// Only references whose period has ended by `asOfMs` appear (a drift signal is null until
    /// then); `version` only references with data of that version. `first` has no per-device
    /// reference (there are no per-device rollups), so `by` with device_id gives none.
    public func plan(by: [String], cohorts: [Cohort], asOfMs: Int64) -> [[String: String]: Range] {
        let keyLabels: [String]
        let hours: Int64
        var selected = cohorts
        switch self {
        case .first(let d):
            if by.contains("device_id") { return [:] }
            keyLabels = by
            hours = max(1, d / Self.hourMs)
        case .version(let v):
            keyLabels = by.filter { $0 != "model_version" && $0 != "device_id" }
            hours = Self.versionBaselineMs / Self.hourMs
            selected = cohorts.filter { $0.labels["model_version"] == v }
        }
        var firstHour: [[String: String]: Int64] = [:]
        var members: [[String: String]: [Int64]] = [:]
        for c in selected {
            let key = Dictionary(uniqueKeysWithValues: keyLabels.map { ($0, c.labels[$0] ?? "") })
            firstHour[key] = min(firstHour[key] ?? .max, c.firstHour)
            members[key, default: []].append(c.id)
        }
        var out: [[String: String]: Range] = [:]
        for (key, h0) in firstHour where (h0 + hours) * Self.hourMs <= asOfMs {
            out[key] = Range(cohorts: (members[key] ?? []).sorted(), fromHour: h0, toHour: h0 + hours)
        }
        return out
    }
}
