import SQLiteKit

/// Why the buffer could not be used.
public struct BufferError: Error, CustomStringConvertible, Sendable {
    public enum Reason: String, Sendable {
        case sqlite
        /// The buffer belongs to another device id (its seqs are that device's).
        case otherDevice = "other_device"
        case newerFormat = "newer_format"
    }

    public var reason: Reason
    public var message: String

    public init(_ reason: Reason, _ message: String) {
        self.reason = reason
        self.message = message
    }

    init(_ e: SQLiteError) { self.init(.sqlite, e.description) }

    public var description: String { message }
}

/// The agent's store-and-forward buffer: every telemetry message, by seq, in one SQLite file.
///
/// A message is written here (in a transaction that also advances the persisted `seq`) before
/// it is published, and marked acknowledged when the broker's PUBACK arrives; unacknowledged
/// messages survive restarts and are re-published in seq order. The newest `replayKeep`
/// acknowledged messages are kept to answer replay requests. WAL with `synchronous=FULL`: a
/// committed seq is on disk before its message can leave, so a power cut never reuses a seq.
///
/// Owned by one thread (the agent's loop), like the `SQLiteConnection` it wraps.
public final class TelemetryBuffer {
    public static let formatVersion: Int64 = 1

    public let path: String
    public let policy: BufferPolicy
    private let db: SQLiteConnection
    public private(set) var unackedCount: Int
    public private(set) var ackedCount: Int
    /// The highest seq ever given out (0 before the first message).
    public private(set) var lastSeq: Int64
    /// The last session whose terminal status is in the buffer.
    public private(set) var reportedSession: String?

    public init(path: String, deviceID: String, policy: BufferPolicy = BufferPolicy()) throws(BufferError) {
        self.path = path
        self.policy = policy
        do {
            db = try SQLiteConnection(path: path)
            try db.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
            let version = try db.scalar("PRAGMA user_version") ?? 0
            if version > Self.formatVersion {
                throw BufferError(.newerFormat, "buffer \(path) has format \(version); this fleet-agent reads up to \(Self.formatVersion)")
            }
            try db.execute(
                """
                CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY NOT NULL, value) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS messages(
                    seq INTEGER PRIMARY KEY,
                    created_ms INTEGER NOT NULL,
                    acked_ms INTEGER,
                    payload BLOB NOT NULL);
                CREATE INDEX IF NOT EXISTS messages_unacked ON messages(seq) WHERE acked_ms IS NULL;
                CREATE INDEX IF NOT EXISTS messages_acked ON messages(seq) WHERE acked_ms IS NOT NULL;
                PRAGMA user_version = \(Self.formatVersion);
                """)
            let owner = try Self.metaText(db, "device_id")
            if let owner, owner != deviceID {
                throw BufferError(.otherDevice, "buffer \(path) holds device \(owner)'s messages, not \(deviceID)'s: use another --buffer")
            }
            if owner == nil { try Self.setMeta(db, "device_id", text: deviceID) }
            lastSeq = try Self.metaInt(db, "last_seq") ?? 0
            unackedCount = Int(try db.scalar("SELECT count(*) FROM messages WHERE acked_ms IS NULL") ?? 0)
            ackedCount = Int(try db.scalar("SELECT count(*) FROM messages WHERE acked_ms IS NOT NULL") ?? 0)
            reportedSession = try Self.metaText(db, "reported_session")
        } catch let e as BufferError {
            throw e
        } catch let e as SQLiteError {
            throw BufferError(e)
        } catch {
            throw BufferError(.sqlite, "\(error)")
        }
    }

    public struct Appended: Sendable, Equatable {
        public var seq: Int64
        /// Unacknowledged messages dropped to make room for this one.
        public var dropped: Int
    }

    /// Appends one message in one transaction: makes room (dropping the oldest unacknowledged
    /// messages when full), gives out the next seq, and stores what `build(seq, drop)` encodes.
    /// `build` must report `drop` (what was dropped to make room) in the message itself, so a
    /// drop is reported exactly when it happens: if anything throws, nothing was dropped.
    /// `terminalSession`: the message carries that session's terminal status.
    @discardableResult
    public func append(nowMs: Int64, terminalSession: String? = nil, _ build: (_ seq: Int64, _ drop: DropReport?) throws -> [UInt8]) throws -> Appended {
        var dropped = 0
        var drop: DropReport?
        let seq = lastSeq + 1
        try db.transaction {
            let n = policy.dropsBeforeAppend(unacked: unackedCount)
            if n > 0 {
                let s = try db.statement("SELECT min(seq), max(seq), count(*) FROM (SELECT seq FROM messages WHERE acked_ms IS NULL ORDER BY seq LIMIT ?)")
                s.bind(1, n)
                if try s.step(), s.int(2) > 0 {
                    drop = DropReport(count: s.int(2), fromSeq: s.int(0), toSeq: s.int(1))
                    dropped = Int(s.int(2))
                }
                s.reset()
                let d = try db.statement("DELETE FROM messages WHERE seq IN (SELECT seq FROM messages WHERE acked_ms IS NULL ORDER BY seq LIMIT ?)")
                d.bind(1, n)
                try d.run()
            }
            let payload = try build(seq, drop)
            let ins = try db.statement("INSERT INTO messages(seq, created_ms, acked_ms, payload) VALUES (?, ?, NULL, ?)")
            ins.bind(1, seq)
            ins.bind(2, nowMs)
            ins.bind(3, blob: payload)
            try ins.run()
            try Self.setMeta(db, "last_seq", seq)
            if let terminalSession { try Self.setMeta(db, "reported_session", text: terminalSession) }
        }
        lastSeq = seq
        unackedCount += 1 - dropped
        if let terminalSession { reportedSession = terminalSession }
        return Appended(seq: seq, dropped: dropped)
    }

    /// Marks messages acknowledged (unknown or already acknowledged seqs are ignored), then
    /// deletes the oldest acknowledged ones beyond `replayKeep`. Returns how many were new.
    @discardableResult
    public func markAcked(_ seqs: [Int64], nowMs: Int64) throws -> Int {
        guard !seqs.isEmpty else { return 0 }
        var changed = 0
        var pruned = 0
        try db.transaction {
            let u = try db.statement("UPDATE messages SET acked_ms = ? WHERE seq = ? AND acked_ms IS NULL")
            for seq in seqs {
                u.bind(1, nowMs)
                u.bind(2, seq)
                try u.run()
                changed += db.changes
            }
            let n = policy.ackedToPrune(acked: ackedCount + changed)
            if n > 0 {
                let d = try db.statement("DELETE FROM messages WHERE seq IN (SELECT seq FROM messages WHERE acked_ms IS NOT NULL ORDER BY seq LIMIT ?)")
                d.bind(1, n)
                try d.run()
                pruned = db.changes
            }
        }
        unackedCount -= changed
        ackedCount += changed - pruned
        return changed
    }

    /// Unacknowledged messages with seq > `after`, in seq order.
    public func unacked(after: Int64, limit: Int) throws -> [(seq: Int64, payload: [UInt8])] {
        let s = try db.statement("SELECT seq, payload FROM messages WHERE acked_ms IS NULL AND seq > ? ORDER BY seq LIMIT ?")
        s.bind(1, after)
        s.bind(2, limit)
        var out: [(Int64, [UInt8])] = []
        while try s.step() { out.append((s.int(0), s.blob(1))) }
        s.reset()
        return out
    }

    /// Messages with seq in `range` still in the buffer (acknowledged or not), in seq order.
    public func messages(in range: ClosedRange<Int64>, limit: Int) throws -> [(seq: Int64, payload: [UInt8])] {
        let s = try db.statement("SELECT seq, payload FROM messages WHERE seq BETWEEN ? AND ? ORDER BY seq LIMIT ?")
        s.bind(1, range.lowerBound)
        s.bind(2, range.upperBound)
        s.bind(3, limit)
        var out: [(Int64, [UInt8])] = []
        while try s.step() { out.append((s.int(0), s.blob(1))) }
        s.reset()
        return out
    }

    /// Whether `seq` is buffered and not yet acknowledged.
    public func isUnacked(_ seq: Int64) throws -> Bool {
        let s = try db.statement("SELECT 1 FROM messages WHERE seq = ? AND acked_ms IS NULL")
        s.bind(1, seq)
        defer { s.reset() }
        return try s.step()
    }

    // MARK: - Meta

    private static func metaInt(_ db: SQLiteConnection, _ key: String) throws -> Int64? {
        let s = try db.statement("SELECT value FROM meta WHERE key = ?")
        s.bind(1, key)
        defer { s.reset() }
        return try s.step() ? s.intOrNil(0) : nil
    }

    private static func metaText(_ db: SQLiteConnection, _ key: String) throws -> String? {
        let s = try db.statement("SELECT value FROM meta WHERE key = ?")
        s.bind(1, key)
        defer { s.reset() }
        return try s.step() ? s.textOrNil(0) : nil
    }

    private static func setMeta(_ db: SQLiteConnection, _ key: String, _ value: Int64) throws {
        let s = try db.statement("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
        s.bind(1, key)
        s.bind(2, value)
        try s.run()
    }

    private static func setMeta(_ db: SQLiteConnection, _ key: String, text value: String) throws {
        let s = try db.statement("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
        s.bind(1, key)
        s.bind(2, value)
        try s.run()
    }
}
