import FleetCore

/// Which devices were online or silent at a past time, for replaying offline rules over
/// history (`fleetwatch rules backtest`). The registry only knows each device's latest message,
/// so history comes from the presence stretches (exact at their ends) and, inside a stretch,
/// the per-minute device buckets (minute resolution, erring towards online).
public struct PresenceHistory: Sendable {
    public struct Stretch: Sendable, Equatable {
        public var cohort: Int64
        public var firstMs: Int64
        public var lastMs: Int64

        public init(cohort: Int64, firstMs: Int64, lastMs: Int64) {
            self.cohort = cohort
            self.firstMs = firstMs
            self.lastMs = lastMs
        }
    }

    /// What is known of one device at time t.
    public enum Status: Sendable, Equatable {
        /// Not seen yet at t: not part of the fleet then.
        case unknown
        /// Seen within `staleAfter` before t (or at t), in this cohort.
        case seen(cohort: Int64)
        /// Last seen more than `staleAfter` before t.
        case silent(cohort: Int64)
        /// Inside a stretch that began more than `staleAfter` before t: the stretch says the
        /// device sent something at most a presence gap apart, not whether it did in the last
        /// `staleAfter`; the minute buckets decide.
        case inside(cohort: Int64)
    }

    struct Device: Sendable {
        var dev: Int64
        var id: String
        var firstSeenMs: Int64
        var registryCohort: Int64
        var stretches: [Stretch]
    }

    var devices: [Device]

    /// The device's status at `t` from its stretches (pure). A device with no stretch started by
    /// `t` but a registry first-seen at or before `t` (its stretches pruned) is silent in
    /// `registryCohort`.
    public static func status(_ stretches: [Stretch], firstSeenMs: Int64, registryCohort: Int64, at t: Int64, staleAfterMs: Int64) -> Status {
        var best: Stretch?
        var bestSeen = Int64.min
        for s in stretches where s.firstMs <= t {
            let seen = min(s.lastMs, t)
            if seen > bestSeen || (seen == bestSeen && s.firstMs > (best?.firstMs ?? .min)) {
                best = s
                bestSeen = seen
            }
        }
        guard let s = best else { return firstSeenMs <= t ? .silent(cohort: registryCohort) : .unknown }
        if s.lastMs <= t {
            // Its last message before t is known exactly (live rule: lastSeen < t - staleAfter).
            return s.lastMs < t - staleAfterMs ? .silent(cohort: s.cohort) : .seen(cohort: s.cohort)
        }
        return s.firstMs >= t - staleAfterMs ? .seen(cohort: s.cohort) : .inside(cohort: s.cohort)
    }
}

extension StoreReader {
    /// Loads every device's presence stretches (one pass; a backtest keeps it for its run).
    public func presenceHistory() throws -> PresenceHistory {
        var byDev: [Int64: PresenceHistory.Device] = [:]
        let d = try connection.statement("SELECT dev, device_id, first_seen_ms, cohort FROM devices")
        while try d.step() {
            byDev[d.int(0)] = PresenceHistory.Device(dev: d.int(0), id: d.text(1), firstSeenMs: d.int(2), registryCohort: d.int(3), stretches: [])
        }
        let p = try connection.statement("SELECT dev, cohort, first_ms, last_ms FROM presence ORDER BY dev, first_ms")
        while try p.step() {
            byDev[p.int(0)]?.stretches.append(PresenceHistory.Stretch(cohort: p.int(1), firstMs: p.int(2), lastMs: p.int(3)))
        }
        return PresenceHistory(devices: byDev.values.sorted { $0.id < $1.id })
    }

    /// Per device known at `t`: its id, cohort labels (model_name, model_version, sku, firmware,
    /// accelerator) and whether it was silent for more than `staleAfterMs` before `t`.
    public func offlineAsOf(_ history: PresenceHistory, at t: Int64, staleAfterMs: Int64) throws -> [(deviceID: String, labels: [String: String], offline: Bool)] {
        let labelsByCohort = try cohortLabelMap()
        var minuteSeen: Set<Int64>?
        func seenInMinutes(_ dev: Int64) throws -> Bool {
            if minuteSeen == nil {
                var seen = Set<Int64>()
                let s = try connection.statement("SELECT DISTINCT dev FROM device_minute WHERE bucket >= ?1 AND bucket <= ?2")
                s.bind(1, (t - staleAfterMs) / Time.minuteMs)
                s.bind(2, t / Time.minuteMs)
                while try s.step() { seen.insert(s.int(0)) }
                minuteSeen = seen
            }
            return minuteSeen!.contains(dev)
        }
        var out: [(deviceID: String, labels: [String: String], offline: Bool)] = []
        for d in history.devices {
            let status = PresenceHistory.status(d.stretches, firstSeenMs: d.firstSeenMs, registryCohort: d.registryCohort, at: t, staleAfterMs: staleAfterMs)
            let cohort: Int64
            let offline: Bool
            switch status {
            case .unknown: continue
            case .seen(let c): (cohort, offline) = (c, false)
            case .silent(let c): (cohort, offline) = (c, true)
            case .inside(let c): (cohort, offline) = (c, try !seenInMinutes(d.dev))
            }
            out.append((d.id, labelsByCohort[cohort] ?? [:], offline))
        }
        return out
    }
}
