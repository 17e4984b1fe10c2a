import FleetCore
import SQLiteKit

/// The single writer of a fleet database: batches of messages in one transaction each.
///
/// Everything one batch changes — raw records, registry, seq ranges, presence, rollups,
/// quarantine and counters — commits together, so a crash loses whole batches only and the
/// counters stay exact. Dedupe is by `(device_id, seq)` against the seq ranges already stored;
/// rollups are updated from the same deduplicated records, so re-sent and late data count once
/// and land in the minute and hour they belong to (device time).
///
/// Not thread-safe: one owner (the ingest pipeline's writer thread) calls it.
public final class StoreWriter {
    public let connection: SQLiteConnection
    public let options: StoreOptions

    // Caches of database state, dropped whenever a transaction fails.
    private var devices: [String: DeviceState] = [:]
    private var cohorts: [CohortKey: Int64] = [:]
    /// Per-device state not yet written: this batch's, or several batches' while ingest is
    /// behind (then journaled). Dropped with the caches when a transaction fails, and rebuilt
    /// from the journal before the next batch.
    private var deferred = DeferredDeviceState()
    private var needsRecovery = true
    /// The per-record statements, held so the hot path skips the cache's lookup by SQL text.
    private var insertInference: Statement?
    private var insertResources: Statement?
    /// The silence after which `markStale` marks a device (its last argument; 5 minutes before).
    private var staleAfterMs: Int64 = 5 * 60_000
    /// False only for a database opened at an older schema (tests): nothing is held back then.
    private let hasJournal: Bool
    /// How far per-device minutes are folded into hours (`foldDeviceHours`); as committed.
    private var foldMark = FoldMark.everythingFolded

    /// The schema version this fleetwatch writes (`PRAGMA user_version`).
    public static var schemaVersion: Int { StoreSchema.currentVersion }

    public convenience init(path: String, options: StoreOptions = StoreOptions()) throws {
        try self.init(path: path, options: options, migrations: StoreSchema.migrations)
    }

    /// `migrations`: the schema steps this writer knows (tests open a database as an older
    /// fleetwatch would).
    init(path: String, options: StoreOptions = StoreOptions(), migrations: [String]) throws {
        self.options = options
        connection = try SQLiteConnection(path: path)
        try connection.execute("PRAGMA journal_mode=WAL")
        try connection.execute("""
            PRAGMA synchronous=NORMAL;
            PRAGMA wal_autocheckpoint=\(options.walAutocheckpointPages);
            PRAGMA cache_size=-\(options.cacheKiB);
            PRAGMA temp_store=MEMORY;
            PRAGMA secure_delete=OFF;
            """)
        try connection.registerMergeFunctions()
        try Self.migrate(connection, migrations: migrations)
        hasJournal = migrations.count >= 5
        if migrations.count >= 6 { foldMark = try FoldMark.load(connection) }
        try recoverJournal()
    }

    /// Brings the schema to the current version; refuses a database from a newer fleetwatch.
    static func migrate(_ c: SQLiteConnection, migrations: [String] = StoreSchema.migrations) throws {
        let version = Int(try c.scalar("PRAGMA user_version") ?? 0)
        if version > migrations.count {
            throw StoreError("\(c.path) has schema version \(version), newer than this fleetwatch knows (\(migrations.count)): upgrade fleetwatch")
        }
        guard version < migrations.count else { return }
        try c.transaction {
            for v in version..<migrations.count {
                try c.execute(migrations[v])
            }
            try c.execute("PRAGMA user_version=\(migrations.count)")
        }
    }

    // MARK: - Batches

    /// Writes a batch in one transaction.
    ///
    /// `behind`: more input is waiting (the batch was cut by size). The writer may then hold the
    /// per-device part of the batch back — registry times, seq ranges, presence stretches, the
    /// per-device minute and hour windows — and write it for many batches at once, journaling
    /// what it needs to redo it after a crash. Raw records, cohort rollups, quarantine,
    /// counters, new devices, attribute changes and new presence stretches are written with the
    /// batch either way. Held-back state is written by the first batch that is not behind, by
    /// `flushDeviceState()`, or once `options.deferMaxMessages` / `deferMaxMs` are reached.
    /// With `options.liveHoldMs`, batches that are not behind are held back too, until what is
    /// held spans that much receiver time (or `flushDeviceState(heldSince:)` on an idle tick).
    ///
    /// `items` is consumed: each item is moved out of it as it is written, so no message is
    /// copied. (A caller that keeps its array pays one copy of it here, on first move.)
    public func write(_ items: consuming [IngestItem], behind: Bool = false) throws -> BatchOutcome {
        var items = items
        if needsRecovery { try recoverJournal() }
        var batch = BatchState()
        // Receiver times bound how long state is held back: only read when it may be.
        let liveHoldMs = min(options.liveHoldMs, StoreOptions.maxLiveHoldMs)
        var received = (min: Int64.max, max: Int64.min)
        if behind || liveHoldMs > 0 {
            // Through the buffer, so that no item is copied to read one Int64 (`for case ... in
            // items` copies each, every reference in its message).
            items.withUnsafeBufferPointer { buffer in
                for i in buffer.indices {
                    if case .telemetry(_, let r) = buffer[i] { received = (min(received.min, r), max(received.max, r)) }
                }
            }
        }
        // The span of receiver time held back if this batch is held too.
        let span = received.max == .min ? 0 : received.max - min(deferred.sinceReceivedMs ?? received.min, received.min)
        let holdBack = hasJournal
            && deferred.journaled + items.count <= options.deferMaxMessages
            && (behind ? span < options.deferMaxMs : span < liveHoldMs)
        if holdBack {
            batch.journal = DeviceJournal()
            // A hold longer than the live one: readers must read everything again after it.
            if behind && span >= liveHoldMs { deferred.bounded = false }
        }
        do {
            try connection.transaction {
                // Each item is moved out of its slot and switched on as consumed: binding the
                // payload of a borrowed item (`switch items[i]`, or `for item in items`) copies
                // the message, retaining and later releasing every string and array in it.
                for i in items.indices {
                    var item = IngestItem.moved
                    swap(&item, &items[i])
                    switch consume item {
                    case .telemetry(let m, let receivedMs):
                        batch.outcome.received += 1
                        try apply(m, receivedMs: receivedMs, &batch)
                    case .rejected(let q):
                        batch.outcome.received += 1
                        try quarantine(q, &batch)
                    case .status(let id, let online, let tsMs):
                        try applyState(deviceID: id, online: online, tsMs: tsMs)
                    }
                }
                try writeAggregates(&batch)
                if let journal = batch.journal {
                    try writePromptDevices(batch.touched)
                    if !journal.isEmpty {
                        let j = try connection.statement("INSERT INTO journal(entries) VALUES(?)")
                        j.bind(1, blob: journal.bytes)
                        try j.run()
                        deferred.journaled += journal.count
                        if received.min != .max { deferred.sinceReceivedMs = min(deferred.sinceReceivedMs ?? received.min, received.min) }
                    }
                } else {
                    try writeDeferred()
                }
            }
        } catch {
            dropCaches()
            throw error
        }
        return batch.outcome
    }

    /// Writes all held-back per-device state now (shutdown, before rules read the store).
    public func flushDeviceState() throws {
        if needsRecovery { try recoverJournal() }
        guard !deferred.isEmpty else { return }
        do {
            try connection.transaction { try writeDeferred() }
        } catch {
            dropCaches()
            throw error
        }
    }

    /// Writes held-back per-device state if the oldest of it arrived at or before `cutoffMs`
    /// (receiver clock): the live ingester's idle tick, so a fleet that falls quiet is not left
    /// with state held back. True if it wrote.
    @discardableResult
    public func flushDeviceState(heldSince cutoffMs: Int64) throws -> Bool {
        if needsRecovery { try recoverJournal() }
        guard !deferred.isEmpty, (deferred.sinceReceivedMs ?? .min) <= cutoffMs else { return false }
        try flushDeviceState()
        return true
    }

    /// Messages whose per-device state is held back (journaled, not yet written).
    public var deferredMessages: Int { deferred.journaled }

    private func dropCaches() {
        devices.removeAll()
        cohorts.removeAll()
        deferred = DeferredDeviceState()
        needsRecovery = true
    }

    /// Adds to a counter outside a batch (e.g. replay requests sent).
    public func addCounter(_ name: String, _ delta: Int64) throws {
        try connection.transaction { try bumpCounter(name, delta) }
    }

    /// Records a device's presence state from its status topic (retained message or will).
    /// A status older than the one recorded is ignored (retained messages are re-delivered on
    /// every reconnect). A status for a device not yet registered is applied when its first
    /// telemetry arrives.
    public func setState(deviceID: String, online: Bool, tsMs: Int64) throws {
        try connection.transaction { try applyState(deviceID: deviceID, online: online, tsMs: tsMs) }
    }

    private func applyState(deviceID: String, online: Bool, tsMs: Int64) throws {
        let s = try connection.statement("""
            UPDATE devices SET state = ?2, state_changed_ms = ?3
            WHERE device_id = ?1 AND (state_changed_ms IS NULL OR state_changed_ms <= ?3)
            """)
        s.bind(1, deviceID)
        s.bind(2, online ? "online" : "offline")
        s.bind(3, tsMs)
        try s.run()
        if connection.changes == 0, try !deviceExists(deviceID) {
            if let p = pendingStates[deviceID], p.tsMs > tsMs { return }
            pendingStates[deviceID] = (online, tsMs)
        }
    }

    private var pendingStates: [String: (online: Bool, tsMs: Int64)] = [:]

    /// Stored seq ranges with the highest one ending at the highest seq stored (`attrs_seq`):
    /// that range's row may lag, since flush leaves it alone while the range only grows.
    static func endingAt(_ highest: Int64, _ ranges: [ClosedRange<Int64>]) -> [ClosedRange<Int64>] {
        guard let top = ranges.last, highest > top.upperBound else { return ranges }
        var out = ranges
        out[out.count - 1] = top.lowerBound...highest
        return out
    }

    private func deviceExists(_ id: String) throws -> Bool {
        let q = try connection.statement("SELECT 1 FROM devices WHERE device_id = ?")
        q.bind(1, id)
        defer { q.reset() }
        return try q.step()
    }

    // MARK: - Presence and gaps

    /// Marks devices `stale` whose last message arrived more than `staleAfterMs` ago (receiver
    /// clock). A message from a stale device makes it `online` again.
    @discardableResult
    public func markStale(nowMs: Int64, staleAfterMs: Int64) throws -> Int {
        if needsRecovery { try recoverJournal() }
        self.staleAfterMs = staleAfterMs
        let cutoff = nowMs - staleAfterMs
        var marked = 0
        do {
            try connection.transaction {
                // A device heard from since its row was last written (state held back) is not silent.
                for d in deferred.devices.values where d.persistedLastReceivedMs < cutoff && d.lastReceivedMs >= cutoff {
                    try writeDevice(d)
                }
                let s = try connection.statement("""
                    UPDATE devices SET state = 'stale', state_changed_ms = ?1
                    WHERE state IN ('online', 'unknown') AND last_received_ms < ?2
                    """)
                s.bind(1, nowMs)
                s.bind(2, cutoff)
                try s.run()
                marked = connection.changes
            }
        } catch {
            dropCaches()
            throw error
        }
        return marked
    }

    /// The parts of `range` still missing from a device (for replay requests).
    public func missing(deviceID: String, in range: ClosedRange<Int64>) throws -> [ClosedRange<Int64>] {
        let ranges: SeqRanges
        if let d = devices[deviceID] {
            ranges = d.ranges
        } else {
            let q = try connection.statement("SELECT r.from_seq, r.to_seq, d.first_seq, d.attrs_seq FROM seq_ranges r JOIN devices d USING(dev) WHERE d.device_id = ? ORDER BY r.from_seq")
            q.bind(1, deviceID)
            var rs: [ClosedRange<Int64>] = []
            var first: Int64?
            var highest: Int64 = .min
            while try q.step() {
                rs.append(q.int(0)...q.int(1))
                first = q.int(2)
                highest = q.int(3)
            }
            ranges = SeqRanges(Self.endingAt(highest, rs), trackingFrom: first)
        }
        return ranges.gaps.compactMap { g in
            let lo = max(g.lowerBound, range.lowerBound)
            let hi = min(g.upperBound, range.upperBound)
            return lo <= hi ? lo...hi : nil
        }
    }

    // MARK: - Retention

    /// Deletes at most `maxRows` expired rows in one short transaction and returns how many it
    /// deleted; call it repeatedly (between batches) until it returns 0. Raw records older than
    /// `rawDays`, minute rollups older than `minuteRollupDays`, hour rollups older than
    /// `hourRollupDays`, all judged against `nowMs` on device time. A device's minutes are kept
    /// until their hour is folded (`foldDeviceHours`), even past `rawDays`.
    @discardableResult
    public func prune(nowMs: Int64, maxRows: Int = 5_000) throws -> Int {
        let r = options.retention
        let rawCutoff = nowMs - Int64(r.rawDays) * Time.dayMs
        let unfolded = foldMark.openFrom < Int64.max / Self.minutesPerHour ? foldMark.openFrom * Self.minutesPerHour : Int64.max
        let steps: [(String, Int64)] = [
            ("DELETE FROM inference WHERE ts_ms < ?1 LIMIT ?2", rawCutoff),
            ("DELETE FROM resources WHERE ts_ms < ?1 LIMIT ?2", rawCutoff),
            ("DELETE FROM device_minute WHERE bucket < ?1 LIMIT ?2", min(rawCutoff / Time.minuteMs, unfolded)),
            ("DELETE FROM sessions WHERE ts_ms < ?1 LIMIT ?2", rawCutoff),
            ("DELETE FROM errors WHERE ts_ms < ?1 LIMIT ?2", rawCutoff),
            ("DELETE FROM deploys WHERE ts_ms < ?1 LIMIT ?2", rawCutoff),
            ("DELETE FROM changes WHERE ts_ms < ?1 LIMIT ?2", rawCutoff),
            ("DELETE FROM quarantine WHERE received_ms < ?1 LIMIT ?2", rawCutoff),
            ("DELETE FROM presence WHERE last_ms < ?1 LIMIT ?2", nowMs - Int64(r.minuteRollupDays) * Time.dayMs),
            ("DELETE FROM rollup_minute WHERE bucket < ?1 LIMIT ?2", (nowMs - Int64(r.minuteRollupDays) * Time.dayMs) / Time.minuteMs),
            ("DELETE FROM device_hour WHERE bucket < ?1 LIMIT ?2", (nowMs - Int64(r.minuteRollupDays) * Time.dayMs) / Time.hourMs),
            ("DELETE FROM rollup_hour WHERE bucket < ?1 LIMIT ?2", (nowMs - Int64(r.hourRollupDays) * Time.dayMs) / Time.hourMs),
            ("DELETE FROM alert_history WHERE resolved_at < ?1 LIMIT ?2", nowMs - Int64(r.hourRollupDays) * Time.dayMs),
        ]
        var deleted = 0
        try connection.transaction {
            for (sql, cutoff) in steps where deleted < maxRows {
                let s = try connection.statement(sql)
                s.bind(1, cutoff)
                s.bind(2, maxRows - deleted)
                try s.run()
                deleted += connection.changes
            }
        }
        return deleted
    }

    // MARK: - Per-device hours

    static let minutesPerHour = Time.hourMs / Time.minuteMs

    /// Folds the per-device minutes of finished hours into `device_hour` rows: at most
    /// `maxDevices` devices (by `dev`) per call, in one short transaction, oldest hour first.
    /// Returns the hour rows written plus the hours it finished, so callers repeat it until it
    /// returns 0; with nothing to fold it returns 0 without a transaction. An hour is finished
    /// `options.deviceHourFoldGraceMs` after it ends on `nowMs` (device time). Until then a
    /// device's minutes are the only record of its hour, which readers sum (and `prune` keeps);
    /// afterwards the writer adds late data to the hour row as well.
    @discardableResult
    public func foldDeviceHours(nowMs: Int64, maxDevices: Int = 250) throws -> Int {
        if needsRecovery { try recoverJournal() }
        let finishedBefore = (nowMs - options.deviceHourFoldGraceMs) / Time.hourMs
        guard foldMark != .everythingFolded, foldMark.openFrom < finishedBefore else { return 0 }
        var mark = foldMark
        var work = 0
        do {
            try connection.transaction {
                while work < maxDevices, mark.openFrom < finishedBefore {
                    if let first = try nextUnfoldedDevice(hour: mark.openFrom, after: mark.dev) {
                        let last = first + Int64(maxDevices - work) - 1
                        let s = try connection.statement(Self.foldHour)
                        s.bind(1, mark.openFrom * Self.minutesPerHour); s.bind(2, first); s.bind(3, last)
                        try s.run()
                        work += max(1, connection.changes)
                        mark.dev = last
                    } else {
                        // Every device's hour is folded. Hours without minutes have nothing to
                        // fold: go to the next hour that has some, or as far as is finished.
                        let next = try connection.statement("SELECT min(bucket) FROM device_minute WHERE bucket >= ?1")
                        next.bind(1, (mark.openFrom + 1) * Self.minutesPerHour)
                        let nextHour = try next.step() && !next.isNull(0) ? next.int(0) / Self.minutesPerHour : finishedBefore
                        next.reset()
                        mark = FoldMark(openFrom: min(nextHour, finishedBefore), dev: 0)
                        work += 1
                    }
                }
                guard mark != foldMark else { return }
                let m = try connection.statement("INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
                m.bind(1, "device_hour_open_from"); m.bind(2, mark.openFrom)
                try m.run()
                m.bind(1, "device_hour_folded_dev"); m.bind(2, mark.dev)
                try m.run()
            }
        } catch {
            dropCaches()
            throw error
        }
        foldMark = mark
        return work
    }

    /// The lowest `dev` above `after` with a minute row in `hour`: one seek per minute.
    private func nextUnfoldedDevice(hour: Int64, after: Int64) throws -> Int64? {
        let s = try connection.statement("SELECT dev FROM device_minute WHERE bucket = ?1 AND dev > ?2 ORDER BY dev LIMIT 1")
        var lowest: Int64?
        for minute in hour * Self.minutesPerHour..<(hour + 1) * Self.minutesPerHour {
            s.bind(1, minute); s.bind(2, after)
            if try s.step() { lowest = min(lowest ?? .max, s.int(0)) }
            s.reset()
        }
        return lowest
    }

    /// How `device_minute` rows sum into an hour's window (the fold, and readers of the hours
    /// not folded yet), in the column order of `device_hour` after `(bucket, dev)`.
    static let minuteSums = """
        sum(inferences), sum(errors), fw_sketch_agg(latency), sum(temp_sum), max(temp_max), sum(cpu_sum), max(mem_max),
        sum(resource_samples), sum(throttle_events)
        """

    /// One hour (?1: its first minute) of devices ?2...?3, summed from their minutes: a seek
    /// per minute on the time-major key. Replaces: an unfolded hour has no row to add to.
    static let foldHour = """
        WITH RECURSIVE m(b) AS (SELECT ?1 UNION ALL SELECT b + 1 FROM m WHERE b + 1 < ?1 + \(minutesPerHour))
        INSERT OR REPLACE INTO device_hour(bucket, dev, inferences, errors, latency, temp_sum, temp_max, cpu_sum, mem_max, resource_samples, throttle_events)
        SELECT ?1 / \(minutesPerHour), dev, \(minuteSums)
        FROM m JOIN device_minute ON bucket = m.b AND dev BETWEEN ?2 AND ?3 GROUP BY dev
        """

    // MARK: Applying one message

    private func apply(_ m: TelemetryMessage, receivedMs: Int64, _ batch: inout BatchState) throws {
        let device = try deviceState(for: m, receivedMs: receivedMs)
        switch device.ranges.insert(m.seq) {
        case .duplicate:
            batch.outcome.duplicates += 1
            return
        case .inserted(let gap):
            if let gap { batch.outcome.newGaps.append(SeqGap(deviceID: m.deviceID, fromSeq: gap.lowerBound, toSeq: gap.upperBound)) }
        }
        if device.ranges.ranges.count > options.maxRangesPerDevice {
            batch.givenUpGaps += device.ranges.giveUpOldest(keeping: options.maxRangesPerDevice)
        }
        deferred.devices[device.dev] = device
        if batch.journal != nil, !device.touchedInBatch {
            device.touchedInBatch = true
            batch.touched.append(device)
        }
        batch.outcome.stored += 1
        batch.outcome.maxSentAtMs = max(batch.outcome.maxSentAtMs, m.sentAtMs)
        // The usual message carries the attributes the device already has: its cohort is known
        // without hashing five labels.
        let sameAttributes = device.attrs.isSame(as: m)
        let cohort = sameAttributes ? device.cohort : try cohortID(CohortKey(m))

        // Registry: the attributes of the highest seq win; a change is recorded as it happens.
        device.firstSeenMs = min(device.firstSeenMs, m.sentAtMs)
        device.lastSeenMs = max(device.lastSeenMs, m.sentAtMs)
        device.lastReceivedMs = max(device.lastReceivedMs, receivedMs)
        if m.seq > device.attrsSeq, sameAttributes {
            device.attrsSeq = m.seq
        } else if m.seq > device.attrsSeq {
            let new = DeviceAttributes(m)
            let differences = device.attrs.differences(to: new)
            if !differences.isEmpty || cohort != device.cohort { device.attrsDirty = true }
            for (field, old, now) in differences {
                let s = try connection.statement("INSERT OR IGNORE INTO changes(dev, ts_ms, seq, field, old_value, new_value) VALUES(?,?,?,?,?,?)")
                s.bind(1, device.dev); s.bind(2, m.sentAtMs); s.bind(3, m.seq); s.bind(4, field); s.bind(5, old); s.bind(6, now)
                try s.run()
            }
            device.attrs = new
            device.attrsSeq = m.seq
            device.cohort = cohort
        }
        device.presence.note(cohort: cohort, at: m.sentAtMs, gapMs: options.presenceGapMs)

        // Through the buffer, not the array's subscript, which copies each record (retaining
        // every array in it). One copy per record remains (2-3% of the writer's samples at 1k
        // devices): `insert`'s `case .inference(let r)` binds a copy of the payload, even from
        // a borrowed or pointed-to record (Swift 6.3; borrowing switches are for noncopyable
        // types only).
        try m.records.withUnsafeBufferPointer { records in
            for idx in records.indices {
                try insert(records[idx], idx: idx, m: m, dev: device.dev, cohort: cohort, &batch)
            }
        }
        batch.outcome.records += m.records.count
        batch.journal?.append(m, dev: device.dev, receivedMs: receivedMs, cohort: cohort)
    }

    private func insert(_ record: borrowing TelemetryRecord, idx: Int, m: TelemetryMessage, dev: Int64, cohort: Int64, _ batch: inout BatchState) throws {
        let ts = record.tsMs
        let minute = ts / Time.minuteMs
        switch record {
        case .inference(let r):
            let s = try held(&insertInference, """
                INSERT OR IGNORE INTO inference(ts_ms, dev, seq, idx, cohort, window_ms, count, errors, latency, hist, classes, input_stats)
                VALUES(?,?,?,?,?,?,?,?,?,?,?,?)
                """)
            s.bind(1, ts); s.bind(2, dev); s.bind(3, m.seq); s.bind(4, idx); s.bind(5, cohort)
            s.bind(6, r.windowMs); s.bind(7, r.count); s.bind(8, r.errors)
            if !r.inputStats.isEmpty { s.bind(12, blob: Self.encodeInputStats(r.inputStats)) } else { s.bind(12, nil as Int64?) }
            // The three blobs are encoded one after another into the batch's buffer and bound
            // in place: no array per blob, and SQLite does not copy them (six allocations
            // fewer per record).
            batch.blobs.removeAll(keepingCapacity: true)
            r.latencyUs.appendBinary(to: &batch.blobs)
            let histAt = batch.blobs.count
            Codecs.appendHistogram(r.confidenceHist, to: &batch.blobs)
            let classesAt = batch.blobs.count
            Codecs.appendClasses(r.classCounts, to: &batch.blobs)
            try batch.blobs.withUnsafeBytes { raw in
                s.bind(9, staticBlob: UnsafeRawBufferPointer(rebasing: raw[..<histAt]))
                s.bind(10, staticBlob: UnsafeRawBufferPointer(rebasing: raw[histAt..<classesAt]))
                s.bind(11, staticBlob: UnsafeRawBufferPointer(rebasing: raw[classesAt...]))
                try s.run()
            }
            batch.rollups[RollupKey(bucket: minute, cohort: cohort), default: RollupDelta()].add(r)
            deferred.minutes[DeviceHourKey(bucket: minute, dev: dev), default: DeviceHourDelta()].add(r)
        case .resources(let r):
            let s = try held(&insertResources, """
                INSERT OR IGNORE INTO resources(ts_ms, dev, seq, idx, cpu_pct, mem_mb, temp_c, throttle_events) VALUES(?,?,?,?,?,?,?,?)
                """)
            s.bind(1, ts); s.bind(2, dev); s.bind(3, m.seq); s.bind(4, idx)
            s.bind(5, r.cpuPct); s.bind(6, r.memMB); s.bind(7, r.tempC); s.bind(8, r.throttleEvents)
            try s.run()
            batch.rollups[RollupKey(bucket: minute, cohort: cohort), default: RollupDelta()].add(r)
            deferred.minutes[DeviceHourKey(bucket: minute, dev: dev), default: DeviceHourDelta()].add(r)
        case .session(let r):
            let s = try connection.statement("""
                INSERT OR IGNORE INTO sessions(dev, ts_ms, seq, idx, cohort, session_id, status, duration_ms, errors) VALUES(?,?,?,?,?,?,?,?,?)
                """)
            s.bind(1, dev); s.bind(2, ts); s.bind(3, m.seq); s.bind(4, idx); s.bind(5, cohort)
            s.bind(6, r.sessionID); s.bind(7, r.status.rawValue); s.bind(8, r.durationMs); s.bind(9, r.errors)
            try s.run()
            batch.rollups[RollupKey(bucket: minute, cohort: cohort), default: RollupDelta()].add(r)
        case .error(let r):
            let s = try connection.statement("INSERT OR IGNORE INTO errors(dev, ts_ms, seq, idx, code, message) VALUES(?,?,?,?,?,?)")
            s.bind(1, dev); s.bind(2, ts); s.bind(3, m.seq); s.bind(4, idx); s.bind(5, r.code); s.bind(6, r.message)
            try s.run()
        case .deploy(let r):
            // A deploy counts in the cohort of the version being deployed (CONTRACTS section 4).
            var key = CohortKey(m)
            key.modelVersion = r.toVersion
            let target = try cohortID(key)
            let s = try connection.statement("""
                INSERT OR IGNORE INTO deploys(dev, ts_ms, seq, idx, cohort, from_version, to_version, result) VALUES(?,?,?,?,?,?,?,?)
                """)
            s.bind(1, dev); s.bind(2, ts); s.bind(3, m.seq); s.bind(4, idx); s.bind(5, target)
            s.bind(6, r.fromVersion); s.bind(7, r.toVersion); s.bind(8, r.result.rawValue)
            try s.run()
            batch.rollups[RollupKey(bucket: minute, cohort: target), default: RollupDelta()].add(r)
        }
    }

    /// `slot`'s statement, prepared on first use. Not reset: `run()` resets it after each use,
    /// and its users bind every parameter.
    private func held(_ slot: inout Statement?, _ sql: String) throws -> Statement {
        if let s = slot { return s }
        let s = try connection.statement(sql)
        slot = s
        return s
    }

    private func quarantine(_ q: QuarantineEntry, _ batch: inout BatchState) throws {
        let s = try connection.statement("""
            INSERT INTO quarantine(received_ms, topic, device_id, reason, detail, payload, payload_bytes) VALUES(?,?,?,?,?,?,?)
            """)
        s.bind(1, q.receivedMs)
        s.bind(2, q.topic)
        s.bind(3, q.deviceID)
        s.bind(4, q.reason.description)
        s.bind(5, q.detail)
        q.payload.withUnsafeBytes { raw in
            s.bind(6, blob: UnsafeRawBufferPointer(rebasing: raw.prefix(QuarantineEntry.maxPayloadBytes)))
        }
        s.bind(7, q.payload.count)
        try s.run()
        batch.outcome.quarantined[q.reason.family, default: 0] += 1
    }

    // MARK: Flushing a batch's aggregates

    /// The batch's cohort rollups and counters.
    private func writeAggregates(_ batch: inout BatchState) throws {
        // Records are summed per minute and cohort; each hour's delta is its minutes' sum.
        var hours: [RollupKey: RollupDelta] = [:]
        for (key, delta) in batch.rollups {
            hours[RollupKey(bucket: key.bucket * Time.minuteMs / Time.hourMs, cohort: key.cohort), default: RollupDelta()].merge(delta)
        }
        for (sql, deltas) in [(Self.rollupMinuteUpsert, batch.rollups), (Self.rollupHourUpsert, hours)] {
            for (key, delta) in deltas {
                let s = try connection.statement(sql)
                s.bind(1, key.bucket); s.bind(2, key.cohort)
                s.bind(3, delta.inferences); s.bind(4, delta.errors)
                if !delta.sketch.isEmpty { s.bind(5, blob: delta.sketch.encodedBinary()) }
                if delta.hasHistogram { s.bind(6, blob: Codecs.encodeHistogram(delta.hist)) }
                if !delta.classes.isEmpty { s.bind(7, blob: delta.classes.encoded()) }
                s.bind(8, delta.sessions[0]); s.bind(9, delta.sessions[1]); s.bind(10, delta.sessions[2]); s.bind(11, delta.sessions[3])
                s.bind(12, delta.throttleEvents); s.bind(13, delta.resourceSamples)
                s.bind(14, delta.deploys[0]); s.bind(15, delta.deploys[1]); s.bind(16, delta.deploys[2])
                try s.run()
            }
        }
        let o = batch.outcome
        try bumpCounter("received", Int64(o.received))
        try bumpCounter("stored", Int64(o.stored))
        try bumpCounter("duplicates", Int64(o.duplicates))
        for (family, n) in o.quarantined { try bumpCounter("quarantined:" + family, Int64(n)) }
        if batch.givenUpGaps > 0 { try bumpCounter("gaps_given_up", batch.givenUpGaps) }
    }

    /// Writes every device's held-back state, in key order (registry rows by `dev`, windows by
    /// `(bucket, dev)`, so each b-tree is walked once), and empties the journal.
    private func writeDeferred() throws {
        for dev in deferred.devices.keys.sorted() { try writeDevice(deferred.devices[dev]!) }
        // Hours not folded yet are summed from their minutes when read (or folded); only late
        // data for a folded hour is added to its row here.
        var hours: [DeviceHourKey: DeviceHourDelta] = [:]
        for (key, delta) in deferred.minutes {
            let hour = key.bucket * Time.minuteMs / Time.hourMs
            guard foldMark.isFolded(hour: hour, dev: key.dev) else { continue }
            hours[DeviceHourKey(bucket: hour, dev: key.dev), default: DeviceHourDelta()].merge(delta)
        }
        for (sql, deltas) in [(Self.deviceMinuteUpsert, deferred.minutes), (Self.deviceHourUpsert, hours)] {
            let s = try connection.statement(sql)
            for key in deltas.keys.sorted(by: { ($0.bucket, $0.dev) < ($1.bucket, $1.dev) }) {
                let delta = deltas[key]!
                s.reset()
                s.bind(1, key.bucket); s.bind(2, key.dev); s.bind(3, delta.inferences); s.bind(4, delta.errors)
                if !delta.sketch.isEmpty { s.bind(5, blob: delta.sketch.encodedBinary()) }
                s.bind(6, delta.tempSum); s.bind(7, delta.tempMax); s.bind(8, delta.cpuSum); s.bind(9, delta.memMax)
                s.bind(10, delta.resourceSamples); s.bind(11, delta.throttleEvents)
                try s.run()
            }
        }
        if deferred.journaled > 0 {
            try connection.execute("DELETE FROM journal")
            // Readers that cache by receiver time (the TUI) re-read rows `maxLiveHoldMs` older
            // than the newest they have seen; after a longer hold they re-read everything.
            if !deferred.bounded {
                try connection.execute("INSERT INTO meta(key, value) VALUES('device_state_flushes', 1) ON CONFLICT(key) DO UPDATE SET value = value + 1")
            }
        }
        deferred = DeferredDeviceState()
    }

    /// While holding back: writes at once the devices readers must not see late — attributes or
    /// cohort changed (the registry and the version views), a presence stretch started (who is
    /// in a cohort now), back after a silence `markStale` may have marked (stale -> online), or
    /// a seq gap opened or filled (open gaps, replay).
    private func writePromptDevices(_ touched: [DeviceState]) throws {
        for device in touched {
            device.touchedInBatch = false
            let maybeStale = device.lastReceivedMs - device.persistedLastReceivedMs >= staleAfterMs
            if device.attrsDirty || device.presence.hasNewStretch || maybeStale || device.gapsChanged { try writeDevice(device) }
        }
    }

    /// One device's registry row, changed seq ranges and changed presence stretches.
    private func writeDevice(_ device: DeviceState) throws {
        if !device.attrsDirty {
            // The usual case: times and seq only (no attribute strings to bind).
            let u = try connection.statement("""
                UPDATE devices SET first_seen_ms = ?2, last_seen_ms = ?3, last_received_ms = ?4, attrs_seq = ?5,
                    state = CASE WHEN state IN ('unknown', 'stale') THEN 'online' ELSE state END
                WHERE dev = ?1
                """)
            u.bind(1, device.dev); u.bind(2, device.firstSeenMs); u.bind(3, device.lastSeenMs); u.bind(4, device.lastReceivedMs)
            u.bind(5, device.attrsSeq)
            try u.run()
        } else {
            device.attrsDirty = false
            let u = try connection.statement("""
                UPDATE devices SET first_seen_ms = ?2, last_seen_ms = ?3, last_received_ms = ?4, attrs_seq = ?5,
                    sku = ?6, firmware = ?7, agent = ?8, accelerator = ?9, model_name = ?10, model_version = ?11,
                    model_sha256 = ?12, cohort = ?13,
                    state = CASE WHEN state IN ('unknown', 'stale') THEN 'online' ELSE state END
                WHERE dev = ?1
                """)
            u.bind(1, device.dev); u.bind(2, device.firstSeenMs); u.bind(3, device.lastSeenMs); u.bind(4, device.lastReceivedMs)
            u.bind(5, device.attrsSeq)
            let a = device.attrs
            u.bind(6, a.sku); u.bind(7, a.firmware); u.bind(8, a.agent); u.bind(9, a.accelerator)
            u.bind(10, a.modelName); u.bind(11, a.modelVersion); u.bind(12, a.modelSHA256); u.bind(13, device.cohort)
            try u.run()
        }
        if device.ranges.dirty {
            // Write only the ranges that changed: usually one row, the highest range grown.
            let now = device.ranges.ranges
            let persisted = device.persistedRanges
            var written = now
            if now.count == persisted.count && zip(now, persisted).allSatisfy({ $0.lowerBound == $1.lowerBound }) {
                // The usual case: ranges only grew upwards; update those rows in place. The
                // highest range's end is the highest seq stored, which the registry row
                // already carries (attrs_seq): its row is left as it is (readers and the
                // loader take the larger of the two), saving a statement per message.
                for (k, (r, old)) in zip(now, persisted).enumerated() where r.upperBound != old.upperBound {
                    if k == now.count - 1 {
                        written[k] = old
                        continue
                    }
                    let u = try connection.statement("UPDATE seq_ranges SET to_seq = ?3 WHERE dev = ?1 AND from_seq = ?2")
                    u.bind(1, device.dev); u.bind(2, r.lowerBound); u.bind(3, r.upperBound)
                    try u.run()
                }
            } else {
                let before = Dictionary(persisted.map { ($0.lowerBound, $0.upperBound) }, uniquingKeysWith: { a, _ in a })
                let nowStarts = Set(now.map(\.lowerBound))
                for r in persisted where !nowStarts.contains(r.lowerBound) {
                    let d = try connection.statement("DELETE FROM seq_ranges WHERE dev = ? AND from_seq = ?")
                    d.bind(1, device.dev); d.bind(2, r.lowerBound)
                    try d.run()
                }
                for r in now where before[r.lowerBound] != r.upperBound {
                    let i = try connection.statement("INSERT OR REPLACE INTO seq_ranges(dev, from_seq, to_seq) VALUES(?,?,?)")
                    i.bind(1, device.dev); i.bind(2, r.lowerBound); i.bind(3, r.upperBound)
                    try i.run()
                }
            }
            device.persistedRanges = written
            device.ranges.dirty = false
        }
        for change in device.presence.takeChanges() {
            if let old = change.replacesFirstMs {
                let d = try connection.statement("DELETE FROM presence WHERE dev = ? AND cohort = ? AND first_ms = ?")
                d.bind(1, device.dev); d.bind(2, change.cohort); d.bind(3, old)
                try d.run()
            }
            let p = try connection.statement("""
                INSERT INTO presence(dev, cohort, first_ms, last_ms) VALUES(?,?,?,?)
                ON CONFLICT(dev, cohort, first_ms) DO UPDATE SET last_ms = max(last_ms, excluded.last_ms)
                """)
            p.bind(1, device.dev); p.bind(2, change.cohort); p.bind(3, change.firstMs); p.bind(4, change.lastMs)
            try p.run()
        }
        device.persistedLastReceivedMs = device.lastReceivedMs
    }

    private func bumpCounter(_ name: String, _ delta: Int64) throws {
        guard delta != 0 else { return }
        let s = try connection.statement("INSERT INTO counters(name, value) VALUES(?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value")
        s.bind(1, name)
        s.bind(2, delta)
        try s.run()
    }

    // Built once: the statement cache is keyed by the SQL text.
    static let deviceHourUpsert = deviceBucketUpsert("device_hour")
    static let deviceMinuteUpsert = deviceBucketUpsert("device_minute")
    static let rollupMinuteUpsert = rollupUpsert("rollup_minute")
    static let rollupHourUpsert = rollupUpsert("rollup_hour")

    static func deviceBucketUpsert(_ table: String) -> String {
        """
        INSERT INTO \(table)(bucket, dev, inferences, errors, latency, temp_sum, temp_max, cpu_sum, mem_max, resource_samples, throttle_events)
        VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
        ON CONFLICT(bucket, dev) DO UPDATE SET
            inferences = inferences + excluded.inferences, errors = errors + excluded.errors,
            latency = CASE WHEN excluded.latency IS NULL THEN latency ELSE fw_sketch_merge(latency, excluded.latency) END,
            temp_sum = temp_sum + excluded.temp_sum,
            temp_max = coalesce(max(temp_max, excluded.temp_max), temp_max, excluded.temp_max),
            cpu_sum = cpu_sum + excluded.cpu_sum,
            mem_max = coalesce(max(mem_max, excluded.mem_max), mem_max, excluded.mem_max),
            resource_samples = resource_samples + excluded.resource_samples,
            throttle_events = throttle_events + excluded.throttle_events
        """
    }

    static func rollupUpsert(_ table: String) -> String {
        """
        INSERT INTO \(table)(bucket, cohort, inferences, errors, latency, hist, classes,
            sessions_started, sessions_exited, sessions_crashed, sessions_abnormal, throttle_events, resource_samples,
            deploys_installed, deploys_rolled_back, deploys_failed)
        VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
        ON CONFLICT(bucket, cohort) DO UPDATE SET
            inferences = inferences + excluded.inferences, errors = errors + excluded.errors,
            latency = CASE WHEN excluded.latency IS NULL THEN latency ELSE fw_sketch_merge(latency, excluded.latency) END,
            hist = CASE WHEN excluded.hist IS NULL THEN hist ELSE fw_hist_merge(hist, excluded.hist) END,
            classes = CASE WHEN excluded.classes IS NULL THEN classes ELSE fw_classes_merge(classes, excluded.classes) END,
            sessions_started = sessions_started + excluded.sessions_started,
            sessions_exited = sessions_exited + excluded.sessions_exited,
            sessions_crashed = sessions_crashed + excluded.sessions_crashed,
            sessions_abnormal = sessions_abnormal + excluded.sessions_abnormal,
            throttle_events = throttle_events + excluded.throttle_events,
            resource_samples = resource_samples + excluded.resource_samples,
            deploys_installed = deploys_installed + excluded.deploys_installed,
            deploys_rolled_back = deploys_rolled_back + excluded.deploys_rolled_back,
            deploys_failed = deploys_failed + excluded.deploys_failed
        """
    }

    static func encodeInputStats(_ stats: [FeatureStats]) -> [UInt8] {
        var w = JSONWriter()
        w.raw("[")
        for (i, f) in stats.enumerated() {
            if i > 0 { w.raw(",") }
            w.raw("{\"name\":"); w.string(f.name)
            w.raw(",\"mean\":"); w.double(f.mean)
            w.raw(",\"std\":"); w.double(f.std)
            w.raw(",\"min\":"); w.double(f.min)
            w.raw(",\"max\":"); w.double(f.max)
            w.raw("}")
        }
        w.raw("]")
        return w.out
    }

    // MARK: Caches

    private func deviceState(for m: TelemetryMessage, receivedMs: Int64) throws -> DeviceState {
        if let d = devices[m.deviceID] { return d }
        let state: DeviceState
        if let loaded = try loadDevice(m.deviceID) {
            state = loaded
        } else {
            let cohort = try cohortID(CohortKey(m))
            let attrs = DeviceAttributes(m)
            let i = try connection.statement("""
                INSERT INTO devices(device_id, first_seen_ms, last_seen_ms, last_received_ms, attrs_seq, sku, firmware, agent,
                    accelerator, model_name, model_version, model_sha256, cohort, first_seq) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)
                """)
            i.bind(1, m.deviceID); i.bind(2, m.sentAtMs); i.bind(3, m.sentAtMs); i.bind(4, receivedMs); i.bind(5, Int64(0))
            i.bind(6, attrs.sku); i.bind(7, attrs.firmware); i.bind(8, attrs.agent); i.bind(9, attrs.accelerator)
            i.bind(10, attrs.modelName); i.bind(11, attrs.modelVersion); i.bind(12, attrs.modelSHA256); i.bind(13, cohort); i.bind(14, m.seq)
            try i.run()
            state = DeviceState(
                dev: connection.lastInsertRowID, firstSeenMs: m.sentAtMs, lastSeenMs: m.sentAtMs, lastReceivedMs: receivedMs,
                attrsSeq: 0, attrs: attrs, cohort: cohort)
            if let p = pendingStates.removeValue(forKey: m.deviceID) {
                let u = try connection.statement("UPDATE devices SET state = ?, state_changed_ms = ? WHERE dev = ?")
                u.bind(1, p.online ? "online" : "offline"); u.bind(2, p.tsMs); u.bind(3, state.dev)
                try u.run()
            }
        }
        devices[m.deviceID] = state
        return state
    }

    /// A registered device's state: registry row, seq ranges, latest presence stretches.
    private func loadDevice(_ deviceID: String) throws -> DeviceState? {
        let q = try connection.statement("""
            SELECT dev, first_seen_ms, last_seen_ms, last_received_ms, attrs_seq, sku, firmware, agent, accelerator,
                model_name, model_version, model_sha256, cohort, first_seq FROM devices WHERE device_id = ?
            """)
        q.bind(1, deviceID)
        guard try q.step() else {
            q.reset()
            return nil
        }
        let state = DeviceState(
            dev: q.int(0), firstSeenMs: q.int(1), lastSeenMs: q.int(2), lastReceivedMs: q.int(3), attrsSeq: q.int(4),
            attrs: DeviceAttributes(
                sku: q.text(5), firmware: q.text(6), agent: q.text(7), accelerator: q.text(8),
                modelName: q.text(9), modelVersion: q.text(10), modelSHA256: q.text(11)),
            cohort: q.int(12))
        let firstSeq = q.int(13)
        q.reset()
        let r = try connection.statement("SELECT from_seq, to_seq FROM seq_ranges WHERE dev = ? ORDER BY from_seq")
        r.bind(1, state.dev)
        var ranges: [ClosedRange<Int64>] = []
        while try r.step() { ranges.append(r.int(0)...r.int(1)) }
        state.persistedRanges = ranges
        state.ranges = SeqRanges(Self.endingAt(state.attrsSeq, ranges), trackingFrom: firstSeq)
        let p = try connection.statement("SELECT cohort, first_ms, last_ms FROM presence WHERE dev = ? ORDER BY last_ms")
        p.bind(1, state.dev)
        while try p.step() { state.presence.load(cohort: p.int(0), firstMs: p.int(1), lastMs: p.int(2)) }
        return state
    }

    // MARK: Recovery

    /// Redoes the journaled device state of batches committed before a crash (or a failed
    /// transaction), then writes it: afterwards the store is as if nothing had been held back.
    private func recoverJournal() throws {
        guard hasJournal else {
            needsRecovery = false
            return
        }
        var entries: [DeviceJournal.Entry] = []
        let q = try connection.statement("SELECT entries FROM journal ORDER BY batch")
        while try q.step() {
            let bytes = q.blob(0)
            entries += try bytes.withUnsafeBytes { try DeviceJournal.decode($0) }
        }
        guard !entries.isEmpty else {
            needsRecovery = false
            return
        }
        do {
            try connection.transaction {
                for e in entries { try redo(e) }
                deferred.journaled = entries.count
                deferred.bounded = false  // held for who knows how long before the crash
                try writeDeferred()
            }
        } catch {
            dropCaches()
            throw error
        }
        needsRecovery = false
    }

    /// One journaled message's share of its device's state. Idempotent for what a prompt write
    /// (`writePromptDevices`) may already have stored: seqs, times and stretches; the window
    /// deltas are never written before the journal is emptied, so they are added again here.
    private func redo(_ e: DeviceJournal.Entry) throws {
        // Devices already redone are in `deferred.devices` (by dev); the others are looked up once.
        let device: DeviceState
        if let d = deferred.devices[e.dev] {
            device = d
        } else {
            let idQuery = try connection.statement("SELECT device_id FROM devices WHERE dev = ?")
            idQuery.bind(1, e.dev)
            guard try idQuery.step() else { throw StoreError("the device journal names device \(e.dev), which is not registered") }
            let id = idQuery.text(0)
            idQuery.reset()
            guard let d = try devices[id] ?? loadDevice(id) else { throw StoreError("device \(id) vanished during journal recovery") }
            devices[id] = d
            device = d
        }
        _ = device.ranges.insert(e.seq)
        device.firstSeenMs = min(device.firstSeenMs, e.sentAtMs)
        device.lastSeenMs = max(device.lastSeenMs, e.sentAtMs)
        device.lastReceivedMs = max(device.lastReceivedMs, e.receivedMs)
        device.attrsSeq = max(device.attrsSeq, e.seq)
        // Stretch starts were written with their batch; only ends are held back. A time inside a
        // stored stretch is already counted (noting it would make it a late stretch of its own
        // when a later stretch of the cohort is the one loaded).
        let stored = try connection.statement("SELECT 1 FROM presence WHERE dev = ?1 AND cohort = ?2 AND first_ms <= ?3 AND last_ms >= ?3 LIMIT 1")
        stored.bind(1, e.dev); stored.bind(2, e.cohort); stored.bind(3, e.sentAtMs)
        let covered = try stored.step()
        stored.reset()
        if !covered { device.presence.note(cohort: e.cohort, at: e.sentAtMs, gapMs: options.presenceGapMs) }
        deferred.devices[e.dev] = device
        for r in e.records {
            let minute = DeviceHourKey(bucket: r.tsMs / Time.minuteMs, dev: e.dev)
            switch r.kind {
            case .inference:
                let s = try connection.statement("SELECT count, errors, latency FROM inference WHERE ts_ms = ?1 AND dev = ?2 AND seq = ?3 AND idx = ?4")
                s.bind(1, r.tsMs); s.bind(2, e.dev); s.bind(3, e.seq); s.bind(4, r.idx)
                // Gone only if retention pruned it since (older than rawDays): so is its window.
                guard try s.step() else { continue }
                let sketch = Codecs.decodeSketch(s.blob(2))
                let (count, errors) = (s.int(0), s.int(1))
                s.reset()
                deferred.minutes[minute, default: DeviceHourDelta()].addInference(count: count, errors: errors, latency: sketch)
            case .resources:
                let s = try connection.statement("SELECT cpu_pct, mem_mb, temp_c, throttle_events FROM resources WHERE ts_ms = ?1 AND dev = ?2 AND seq = ?3 AND idx = ?4")
                s.bind(1, r.tsMs); s.bind(2, e.dev); s.bind(3, e.seq); s.bind(4, r.idx)
                guard try s.step() else { continue }
                let (cpu, mem, temp, throttle) = (s.double(0), s.double(1), s.double(2), s.int(3))
                s.reset()
                deferred.minutes[minute, default: DeviceHourDelta()].addResources(cpuPct: cpu, memMB: mem, tempC: temp, throttleEvents: throttle)
            }
        }
    }

    private func cohortID(_ key: CohortKey) throws -> Int64 {
        if let id = cohorts[key] { return id }
        let i = try connection.statement("""
            INSERT INTO cohorts(model_name, model_version, sku, firmware, accelerator) VALUES(?,?,?,?,?)
            ON CONFLICT DO NOTHING
            """)
        i.bind(1, key.modelName); i.bind(2, key.modelVersion); i.bind(3, key.sku); i.bind(4, key.firmware); i.bind(5, key.accelerator)
        try i.run()
        let q = try connection.statement("""
            SELECT cohort FROM cohorts WHERE model_name = ? AND model_version = ? AND sku = ? AND firmware = ? AND accelerator = ?
            """)
        q.bind(1, key.modelName); q.bind(2, key.modelVersion); q.bind(3, key.sku); q.bind(4, key.firmware); q.bind(5, key.accelerator)
        guard try q.step() else { throw StoreError("cohort row vanished") }
        let id = q.int(0)
        q.reset()
        cohorts[key] = id
        return id
    }
}

// MARK: - Writer state

struct CohortKey: Hashable {
    var modelName: String
    var modelVersion: String
    var sku: String
    var firmware: String
    var accelerator: String

    init(_ m: TelemetryMessage) {
        modelName = m.model.name
        modelVersion = m.model.version
        sku = m.device.sku
        firmware = m.device.firmware
        accelerator = m.device.accelerator
    }
}

struct DeviceAttributes: Equatable {
    var sku, firmware, agent, accelerator, modelName, modelVersion, modelSHA256: String

    init(sku: String, firmware: String, agent: String, accelerator: String, modelName: String, modelVersion: String, modelSHA256: String) {
        self.sku = sku
        self.firmware = firmware
        self.agent = agent
        self.accelerator = accelerator
        self.modelName = modelName
        self.modelVersion = modelVersion
        self.modelSHA256 = modelSHA256
    }

    init(_ m: TelemetryMessage) {
        self.init(
            sku: m.device.sku, firmware: m.device.firmware, agent: m.device.agent, accelerator: m.device.accelerator,
            modelName: m.model.name, modelVersion: m.model.version, modelSHA256: m.model.sha256)
    }

    /// Whether `m` carries exactly these attributes (no copies made).
    func isSame(as m: TelemetryMessage) -> Bool {
        sku == m.device.sku && firmware == m.device.firmware && agent == m.device.agent && accelerator == m.device.accelerator
            && modelName == m.model.name && modelVersion == m.model.version && modelSHA256 == m.model.sha256
    }

    /// Fields that differ, as (field, old, new).
    func differences(to other: DeviceAttributes) -> [(String, String, String)] {
        guard self != other else { return [] }
        var out: [(String, String, String)] = []
        if sku != other.sku { out.append(("sku", sku, other.sku)) }
        if firmware != other.firmware { out.append(("firmware", firmware, other.firmware)) }
        if agent != other.agent { out.append(("agent", agent, other.agent)) }
        if accelerator != other.accelerator { out.append(("accelerator", accelerator, other.accelerator)) }
        if modelName != other.modelName { out.append(("model_name", modelName, other.modelName)) }
        if modelVersion != other.modelVersion { out.append(("model_version", modelVersion, other.modelVersion)) }
        if modelSHA256 != other.modelSHA256 { out.append(("model_sha256", modelSHA256, other.modelSHA256)) }
        return out
    }
}

/// What the writer knows of one device (a class: the batch and the cache share it).
final class DeviceState {
    let dev: Int64
    var firstSeenMs: Int64
    var lastSeenMs: Int64
    var lastReceivedMs: Int64
    var attrsSeq: Int64
    var attrs: DeviceAttributes
    var cohort: Int64
    var ranges = SeqRanges([])
    /// The ranges as last written to seq_ranges.
    var persistedRanges: [ClosedRange<Int64>] = []
    var presence = PresenceTracker()
    /// Attributes (or cohort) changed since the registry row was last written.
    var attrsDirty = false
    /// `last_received_ms` as last written.
    var persistedLastReceivedMs: Int64
    /// Listed in the current batch's `touched`.
    var touchedInBatch = false

    /// The seq ranges changed other than by the highest one growing: a gap opened, filled or
    /// shrank, which readers (open gaps, `query device`) must see with the batch.
    var gapsChanged: Bool {
        guard ranges.dirty else { return false }
        let now = ranges.ranges
        guard now.count == persistedRanges.count else { return true }
        for (k, (r, old)) in zip(now, persistedRanges).enumerated() {
            if r.lowerBound != old.lowerBound || (k < now.count - 1 && r.upperBound != old.upperBound) { return true }
        }
        return false
    }

    init(dev: Int64, firstSeenMs: Int64, lastSeenMs: Int64, lastReceivedMs: Int64, attrsSeq: Int64, attrs: DeviceAttributes, cohort: Int64) {
        self.dev = dev
        self.firstSeenMs = firstSeenMs
        self.lastSeenMs = lastSeenMs
        self.lastReceivedMs = lastReceivedMs
        persistedLastReceivedMs = lastReceivedMs
        self.attrsSeq = attrsSeq
        self.attrs = attrs
        self.cohort = cohort
    }
}

struct BatchState {
    var outcome = BatchOutcome()
    var rollups: [RollupKey: RollupDelta] = [:]
    var givenUpGaps: Int64 = 0
    /// While holding device state back: the batch's journal row, and the devices it touched.
    var journal: DeviceJournal?
    var touched: [DeviceState] = []
    /// Reused for each inference row's blobs (`insert`).
    var blobs: [UInt8] = []
}

/// Per-device state written once for many messages: the devices whose registry row, seq ranges
/// or presence changed, and the per-device minute and hour windows' deltas.
struct DeferredDeviceState {
    var devices: [Int64: DeviceState] = [:]
    var minutes: [DeviceHourKey: DeviceHourDelta] = [:]
    /// Messages in the journal, and the receiver time of the oldest.
    var journaled = 0
    var sinceReceivedMs: Int64?
    /// False once anything held back may span more receiver time than `maxLiveHoldMs` (a
    /// backlog, or a journal redone after a crash): its flush bumps `device_state_flushes`.
    var bounded = true

    var isEmpty: Bool { devices.isEmpty && minutes.isEmpty && journaled == 0 }
}

/// A minute (or, when deriving hours, an hour) of one cohort.
struct RollupKey: Hashable {
    var bucket: Int64
    var cohort: Int64
}

struct DeviceHourKey: Hashable {
    var bucket: Int64
    var dev: Int64
}

/// What a batch adds to one rollup row.
struct RollupDelta {
    var inferences: Int64 = 0
    var errors: Int64 = 0
    var sketch = DDSketch()
    var hist = [Int64](repeating: 0, count: InferenceRecord.histogramBins)
    var hasHistogram = false
    var classes = ClassTally()
    /// started, exited, crashed, abnormal
    var sessions: [Int64] = [0, 0, 0, 0]
    var throttleEvents: Int64 = 0
    var resourceSamples: Int64 = 0
    /// installed, rolled_back, failed
    var deploys: [Int64] = [0, 0, 0]

    mutating func add(_ r: InferenceRecord) {
        inferences &+= r.count
        errors &+= r.errors
        sketch.merge(r.latencyUs)
        Codecs.addHistograms(&hist, r.confidenceHist)
        hasHistogram = true
        for c in r.classCounts { classes.add(c.name, c.count) }
    }

    mutating func add(_ r: ResourcesRecord) {
        throttleEvents &+= r.throttleEvents
        resourceSamples += 1
    }

    mutating func add(_ r: SessionRecord) {
        switch r.status {
        case .started: sessions[0] += 1
        case .exited: sessions[1] += 1
        case .crashed: sessions[2] += 1
        case .abnormal: sessions[3] += 1
        }
    }

    mutating func add(_ r: DeployRecord) {
        switch r.result {
        case .installed: deploys[0] += 1
        case .rolledBack: deploys[1] += 1
        case .failed: deploys[2] += 1
        }
    }

    mutating func merge(_ o: RollupDelta) {
        inferences &+= o.inferences
        errors &+= o.errors
        sketch.merge(o.sketch)
        if o.hasHistogram {
            Codecs.addHistograms(&hist, o.hist)
            hasHistogram = true
        }
        for (name, n) in zip(o.classes.names, o.classes.counts) { classes.add(name, n) }
        for i in 0..<sessions.count { sessions[i] += o.sessions[i] }
        throttleEvents &+= o.throttleEvents
        resourceSamples += o.resourceSamples
        for i in 0..<deploys.count { deploys[i] += o.deploys[i] }
    }
}

struct DeviceHourDelta {
    var inferences: Int64 = 0
    var errors: Int64 = 0
    var sketch = DDSketch()
    var tempSum = 0.0
    var tempMax: Double?
    var cpuSum = 0.0
    var memMax: Double?
    var resourceSamples: Int64 = 0
    var throttleEvents: Int64 = 0

    mutating func add(_ r: InferenceRecord) {
        addInference(count: r.count, errors: r.errors, latency: r.latencyUs)
    }

    mutating func addInference(count: Int64, errors e: Int64, latency: DDSketch) {
        inferences &+= count
        errors &+= e
        sketch.merge(latency)
    }

    mutating func add(_ r: ResourcesRecord) {
        addResources(cpuPct: r.cpuPct, memMB: r.memMB, tempC: r.tempC, throttleEvents: r.throttleEvents)
    }

    mutating func merge(_ o: DeviceHourDelta) {
        inferences &+= o.inferences
        errors &+= o.errors
        sketch.merge(o.sketch)
        tempSum += o.tempSum
        if let t = o.tempMax { tempMax = max(tempMax ?? t, t) }
        cpuSum += o.cpuSum
        if let m = o.memMax { memMax = max(memMax ?? m, m) }
        resourceSamples += o.resourceSamples
        throttleEvents &+= o.throttleEvents
    }

    mutating func addResources(cpuPct: Double, memMB: Double, tempC: Double, throttleEvents t: Int64) {
        tempSum += tempC
        tempMax = max(tempMax ?? tempC, tempC)
        cpuSum += cpuPct
        memMax = max(memMax ?? memMB, memMB)
        resourceSamples += 1
        throttleEvents &+= t
    }
}

/// Counts per class name: a model's few labels in two arrays (a linear scan beats hashing the
/// name for every record), with a dictionary index once there are many.
struct ClassTally {
    private(set) var names: [String] = []
    private(set) var counts: [Int64] = []
    private var index: [String: Int]?

    var isEmpty: Bool { names.isEmpty }

    mutating func add(_ name: String, _ n: Int64) {
        if let i = index?[name] ?? (index == nil ? names.firstIndex(of: name) : nil) {
            counts[i] &+= n
            return
        }
        names.append(name)
        counts.append(n)
        if index != nil {
            index![name] = names.count - 1
        } else if names.count > 16 {
            index = Dictionary(uniqueKeysWithValues: zip(names, names.indices))
        }
    }

    func encoded() -> [UInt8] {
        Codecs.encodeClasses(zip(names, counts).map { ClassCount(name: $0, count: $1) })
    }
}
