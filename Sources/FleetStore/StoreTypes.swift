import FleetCore
import SQLiteKit

/// How long each kind of data is kept. Defaults: raw 7 days, minute rollups 30, hour rollups 400.
public struct Retention: Sendable, Equatable {
    public var rawDays: Int
    public var minuteRollupDays: Int
    public var hourRollupDays: Int

    public init(rawDays: Int = 7, minuteRollupDays: Int = 30, hourRollupDays: Int = 400) {
        self.rawDays = rawDays
        self.minuteRollupDays = minuteRollupDays
        self.hourRollupDays = hourRollupDays
    }
}

public struct StoreOptions: Sendable {
    public var retention = Retention()
    /// Two messages of a device closer than this are one stretch of presence in its cohort.
    public var presenceGapMs: Int64 = 10 * 60_000
    /// Seq ranges kept per device; beyond this the oldest gaps are given up (and counted).
    public var maxRangesPerDevice = 1000
    /// WAL pages before an automatic checkpoint (SQLite's default is 1000; see docs/storage.md).
    public var walAutocheckpointPages = 10_000
    /// Page cache per connection, in KiB.
    public var cacheKiB = 65_536
    /// While ingest is behind, per-device state is held back for at most this many messages
    /// and this much receiver time (`StoreWriter.write(_:behind:)`).
    public var deferMaxMessages = 100_000
    public var deferMaxMs: Int64 = 60_000
    /// While ingest keeps up, per-device state is still held back for up to this much receiver
    /// time (at most `maxLiveHoldMs`), so a device reporting many times a second costs one
    /// registry and window write per interval, not one per batch. 0: written with every batch
    /// that is not behind (the default for direct users; the live ingester sets it).
    public var liveHoldMs: Int64 = 0
    /// The longest live hold any writer uses: readers that cache by receiver time (the TUI)
    /// re-read rows this much older than the newest they have seen, so nothing held back is
    /// missed (docs/storage.md "Deferred device state").
    public static let maxLiveHoldMs: Int64 = 1_000
    /// A device's minutes are folded into its hour row this long after the hour ends (device
    /// time, `StoreWriter.foldDeviceHours`); data arriving later for it is added to that row.
    public var deviceHourFoldGraceMs: Int64 = 5 * 60_000

    public init() {}
}

/// One unit of ingest: a decoded message, input refused with its reason, or a device's
/// presence report from its status topic (`StoreWriter.setState`, applied in order).
public enum IngestItem: Sendable {
    case telemetry(TelemetryMessage, receivedMs: Int64)
    case rejected(QuarantineEntry)
    case status(deviceID: String, online: Bool, tsMs: Int64)

    /// What `StoreWriter.write` leaves in a slot it moved an item out of (nothing allocated).
    static let moved = IngestItem.status(deviceID: "", online: false, tsMs: 0)
}

/// Refused input, kept whole with its reason.
public struct QuarantineEntry: Sendable, Equatable {
    public var receivedMs: Int64
    public var topic: String
    /// The device id named by the topic, when the topic is well formed.
    public var deviceID: String?
    public var reason: RejectionReason
    public var detail: String
    public var payload: [UInt8]

    public static let maxPayloadBytes = 262_144

    public init(receivedMs: Int64, topic: String, deviceID: String?, reason: RejectionReason, detail: String, payload: [UInt8]) {
        self.receivedMs = receivedMs
        self.topic = topic
        self.deviceID = deviceID
        self.reason = reason
        self.detail = detail
        self.payload = payload
    }
}

/// A missing seq range of one device.
public struct SeqGap: Sendable, Equatable, Hashable {
    public var deviceID: String
    public var fromSeq: Int64
    public var toSeq: Int64

    public init(deviceID: String, fromSeq: Int64, toSeq: Int64) {
        self.deviceID = deviceID
        self.fromSeq = fromSeq
        self.toSeq = toSeq
    }
}

/// What one batch did.
public struct BatchOutcome: Sendable, Equatable {
    public var received = 0
    public var stored = 0
    public var duplicates = 0
    public var quarantined: [String: Int] = [:]
    public var records = 0
    /// The newest device time (`sent_at_ms`) among the stored messages: the event clock.
    public var maxSentAtMs: Int64 = .min
    /// Gaps that opened in this batch (a seq jumped), for replay requests.
    public var newGaps: [SeqGap] = []

    public init() {}
}

/// Ingest counters as `query ingest` reports them (CONTRACTS section 8).
public struct IngestCounters: Sendable, Equatable {
    public var received: Int64 = 0
    public var stored: Int64 = 0
    public var duplicates: Int64 = 0
    public var quarantined: [String: Int64] = [:]
    public var replaysRequested: Int64 = 0
    public var openGaps: Int64 = 0

    public init() {}
}

/// The error a missing or unusable database gives: one clear line with the fix.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

enum Time {
    static let minuteMs: Int64 = 60_000
    static let hourMs: Int64 = 3_600_000
    static let dayMs: Int64 = 86_400_000
}

/// Dense indices for distinct keys, in first-seen order: group a few distinct keys (cohort
/// labels, versions, device × version slots) over many rows with plain arrays.
struct Interner<Key: Hashable> {
    private(set) var keys: [Key] = []
    private var index: [Key: Int] = [:]

    /// The key's index, and whether this call added it.
    mutating func intern(_ key: Key) -> (index: Int, isNew: Bool) {
        if let i = index[key] { return (i, false) }
        index[key] = keys.count
        keys.append(key)
        return (keys.count - 1, true)
    }
}

/// How far per-device minutes have been folded into `device_hour` (docs/storage.md "Per-device
/// hours"): every hour before `openFrom`, and in hour `openFrom` the devices up to `dev`. A
/// folded hour's row is kept exact by the writer from then on; the minutes of an hour not yet
/// folded are the only record of it, and readers sum them.
struct FoldMark: Equatable {
    var openFrom: Int64
    var dev: Int64

    /// A database from before folding (schema < 6) wrote every hour whole.
    static let everythingFolded = FoldMark(openFrom: .max, dev: 0)

    func isFolded(hour: Int64, dev d: Int64) -> Bool {
        hour < openFrom || (hour == openFrom && d <= dev)
    }

    /// The first hour of device `d` that is read from its minutes.
    func firstOpenHour(dev d: Int64) -> Int64 {
        d <= dev && openFrom < .max ? openFrom + 1 : openFrom
    }

    static func load(_ c: SQLiteConnection) throws -> FoldMark {
        guard let from = try c.scalar("SELECT value FROM meta WHERE key = 'device_hour_open_from'") else { return .everythingFolded }
        return FoldMark(openFrom: from, dev: try c.scalar("SELECT value FROM meta WHERE key = 'device_hour_folded_dev'") ?? 0)
    }
}
