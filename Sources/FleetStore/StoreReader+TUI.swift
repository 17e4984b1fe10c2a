import CSQLite
import FleetCore
import SQLiteKit

/// Read-only queries for `fleetwatch top`: everything one dashboard frame shows, shaped so the
/// TUI's loader can build a snapshot in a few milliseconds at 10k devices (docs/tui.md).
/// Device-supplied strings are returned as stored; the TUI makes them inert before display.
extension StoreReader {
    // MARK: - Change detection

    /// SQLite's `PRAGMA data_version`: changes whenever another connection commits. The loader
    /// polls it (microseconds) and skips the whole snapshot when nothing was written.
    public func dataVersion() throws -> Int64 {
        try connection.scalar("PRAGMA data_version") ?? 0
    }

    /// Whether a table exists (the alert engine's `alerts` table arrives with its own migration).
    public func hasTable(_ name: String) throws -> Bool {
        let s = try connection.statement("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?")
        s.bind(1, name)
        defer { s.reset() }
        return try s.step()
    }

    /// The ingester's cumulative counters without the open-gap count (which scans every seq
    /// range): received, stored, duplicates and quarantined by reason family.
    public func ingestTotals() throws -> IngestCounters {
        var c = IngestCounters()
        let s = try connection.statement("SELECT name, value FROM counters")
        while try s.step() {
            let name = s.text(0)
            let v = s.int(1)
            switch name {
            case "received": c.received = v
            case "stored": c.stored = v
            case "duplicates": c.duplicates = v
            case "replays_requested": c.replaysRequested = v
            default:
                if name.hasPrefix("quarantined:") { c.quarantined[String(name.dropFirst("quarantined:".count)), default: 0] += v }
            }
        }
        return c
    }

    // MARK: - Fleet totals

    /// Registry counts: devices per (state, current model version), and whether each was seen
    /// (device time) at or after `seenSinceMs`.
    public struct RegistryCount: Sendable, Equatable {
        public var state: String
        public var modelVersion: String
        public var seenInWindow: Bool
        public var devices: Int64

        public init(state: String, modelVersion: String, seenInWindow: Bool, devices: Int64) {
            self.state = state
            self.modelVersion = modelVersion
            self.seenInWindow = seenInWindow
            self.devices = devices
        }
    }

    public func registryCounts(seenSinceMs: Int64) throws -> [RegistryCount] {
        let s = try connection.statement("""
            SELECT state, model_version, last_seen_ms >= ?1, count(*) FROM devices GROUP BY 1, 2, 3
            """)
        s.bind(1, seenSinceMs)
        var out: [RegistryCount] = []
        while try s.step() { out.append(RegistryCount(state: s.text(0), modelVersion: s.text(1), seenInWindow: s.int(2) != 0, devices: s.int(3))) }
        return out
    }

    /// One pass over the registry for the header: the newest device time and, per device, its
    /// (state, model version) group and last-seen time, so counts for any window follow without
    /// another query. Reads the text columns in place (no strings per row): at 10k devices this
    /// is a fraction of a millisecond, where `GROUP BY` sorts every row.
    public struct RegistryScan: Sendable {
        public var latestSeenMs: Int64?
        var groups: [(state: String, version: String)] = []
        var rowGroup: [Int32] = []
        var rowSeen: [Int64] = []

        public func counts(seenSinceMs: Int64) -> [RegistryCount] {
            var seen = [Int64](repeating: 0, count: groups.count)
            var unseen = [Int64](repeating: 0, count: groups.count)
            for i in rowGroup.indices {
                if rowSeen[i] >= seenSinceMs { seen[Int(rowGroup[i])] += 1 } else { unseen[Int(rowGroup[i])] += 1 }
            }
            var out: [RegistryCount] = []
            for (g, key) in groups.enumerated() {
                if seen[g] > 0 { out.append(RegistryCount(state: key.state, modelVersion: key.version, seenInWindow: true, devices: seen[g])) }
                if unseen[g] > 0 { out.append(RegistryCount(state: key.state, modelVersion: key.version, seenInWindow: false, devices: unseen[g])) }
            }
            return out
        }
    }

    public func registryScan() throws -> RegistryScan {
        var scan = RegistryScan()
        var stmt: OpaquePointer?
        let sql = "SELECT state, model_version, last_seen_ms FROM devices"
        var rc = sqlite3_prepare_v2(connection.db, sql, -1, &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw connection.error(rc, "preparing \(sql)") }
        defer { sqlite3_finalize(stmt) }
        // Distinct (state, version) byte pairs seen so far; fleets have a handful.
        var keyBytes: [([UInt8], [UInt8])] = []
        var last = -1
        while true {
            rc = sqlite3_step(stmt)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw connection.error(rc, "reading devices") }
            let st = UnsafeRawBufferPointer(start: sqlite3_column_text(stmt, 0), count: Int(sqlite3_column_bytes(stmt, 0)))
            let ver = UnsafeRawBufferPointer(start: sqlite3_column_text(stmt, 1), count: Int(sqlite3_column_bytes(stmt, 1)))
            func matches(_ g: Int) -> Bool { keyBytes[g].0.elementsEqual(st) && keyBytes[g].1.elementsEqual(ver) }
            var g = last >= 0 && matches(last) ? last : -1
            if g < 0 { g = keyBytes.indices.first(where: matches) ?? -1 }
            if g < 0 {
                keyBytes.append((Array(st), Array(ver)))
                scan.groups.append((String(decoding: st, as: UTF8.self), String(decoding: ver, as: UTF8.self)))
                g = keyBytes.count - 1
            }
            last = g
            let seenMs = sqlite3_column_int64(stmt, 2)
            scan.rowGroup.append(Int32(g))
            scan.rowSeen.append(seenMs)
            scan.latestSeenMs = max(scan.latestSeenMs ?? seenMs, seenMs)
        }
        return scan
    }

    /// Fleet-wide totals of a range from the cohort minute rollups (for trend arrows).
    public struct RangeTotals: Sendable, Equatable {
        public var inferences: Int64 = 0
        public var errors: Int64 = 0
        public var latencyP95Ms: Double?
        public var sessionsTerminal: Int64 = 0
        public var sessionsCrashed: Int64 = 0
        public var minutes = 0

        public init() {}

        public var errorRate: Double? { inferences > 0 ? Double(errors) / Double(inferences) : nil }
        public var crashFreeSessions: Double? { sessionsTerminal > 0 ? 1 - Double(sessionsCrashed) / Double(sessionsTerminal) : nil }
    }

    public func rangeTotals(fromMs: Int64, toMs: Int64) throws -> RangeTotals {
        var t = RangeTotals()
        var latency = LatencyAccumulator()
        var scratch = LatencyAccumulator.Scratch()
        var buckets = Set<Int64>()
        let s = try connection.statement("""
            SELECT bucket, inferences, errors, latency, sessions_exited + sessions_crashed + sessions_abnormal, sessions_crashed
            FROM rollup_minute WHERE bucket >= ?1 AND bucket < ?2
            """)
        s.bind(1, Self.ceilDiv(fromMs, Time.minuteMs)); s.bind(2, Self.ceilDiv(toMs, Time.minuteMs))
        while try s.step() {
            buckets.insert(s.int(0))
            t.inferences &+= s.int(1)
            t.errors &+= s.int(2)
            s.withBlob(3) { latency.add($0, scratch: &scratch) }
            t.sessionsTerminal &+= s.int(4)
            t.sessionsCrashed &+= s.int(5)
        }
        t.latencyP95Ms = latency.quantile(0.95).map { $0 / 1000 }
        t.minutes = buckets.count
        return t
    }

    // MARK: - Devices with recent activity

    /// One row of the device table: registry attributes plus what the device did recently.
    public struct DeviceSummary: Sendable, Equatable {
        /// The registry fields, behind one reference: the device table copies, sorts and
        /// compares 10k of these per refresh, and a copy then costs one retain, not seven.
        final class Registry: Sendable, Equatable {
            let deviceID, sku, firmware, accelerator, modelName, modelVersion, state: String
            let lastSeenMs, lastReceivedMs, lastSeq: Int64

            init(deviceID: String, sku: String, firmware: String, accelerator: String, modelName: String, modelVersion: String,
                 state: String, lastSeenMs: Int64, lastReceivedMs: Int64, lastSeq: Int64) {
                self.deviceID = deviceID
                self.sku = sku
                self.firmware = firmware
                self.accelerator = accelerator
                self.modelName = modelName
                self.modelVersion = modelVersion
                self.state = state
                self.lastSeenMs = lastSeenMs
                self.lastReceivedMs = lastReceivedMs
                self.lastSeq = lastSeq
            }

            static func == (a: Registry, b: Registry) -> Bool {
                a === b || (a.lastSeenMs == b.lastSeenMs && a.lastReceivedMs == b.lastReceivedMs && a.lastSeq == b.lastSeq
                    && a.deviceID == b.deviceID && a.state == b.state && a.modelVersion == b.modelVersion && a.modelName == b.modelName
                    && a.sku == b.sku && a.firmware == b.firmware && a.accelerator == b.accelerator)
            }
        }

        var registry: Registry
        public var deviceID: String { registry.deviceID }
        public var sku: String { registry.sku }
        public var firmware: String { registry.firmware }
        public var accelerator: String { registry.accelerator }
        public var modelName: String { registry.modelName }
        public var modelVersion: String { registry.modelVersion }
        public var state: String { registry.state }
        public var lastSeenMs: Int64 { registry.lastSeenMs }
        public var lastReceivedMs: Int64 { registry.lastReceivedMs }
        public var lastSeq: Int64 { registry.lastSeq }
        /// Inference windows of the recent range (per-minute rows): totals and merged p95.
        public var inferences: Int64 = 0
        public var errors: Int64 = 0
        public var latencyP95Ms: Double?
        public var tempC: Double?
        public var cpuPct: Double?
        /// Crashed sessions and error records over the longer event range.
        public var crashes: Int64 = 0
        public var errorEvents: Int64 = 0

        public var errorRate: Double? { inferences > 0 ? Double(errors) / Double(inferences) : nil }

        public init(
            deviceID: String, sku: String, firmware: String, accelerator: String, modelName: String, modelVersion: String,
            state: String, lastSeenMs: Int64, lastReceivedMs: Int64, lastSeq: Int64
        ) {
            registry = Registry(
                deviceID: deviceID, sku: sku, firmware: firmware, accelerator: accelerator, modelName: modelName,
                modelVersion: modelVersion, state: state, lastSeenMs: lastSeenMs, lastReceivedMs: lastReceivedMs, lastSeq: lastSeq)
        }

        init(registry: Registry) {
            self.registry = registry
        }
    }

    /// Every registered device, ordered by `dev` (registration order), with its per-minute
    /// windows of `[recentFromMs, toMs)` summed (p95 from the merged sketches) and its crashes
    /// and error records counted over `[eventsFromMs, toMs)`.
    ///
    /// With a `cache`, per-minute buckets and error records older than the two newest minutes
    /// are read once and reused by later calls, and only the devices whose registry row changed
    /// are read and computed again (the loader calls this every refresh; at 10k devices a bucket
    /// is 10k rows and sketches): data arriving more than two minutes late reaches the table
    /// when the cache is rebuilt (`DeviceWindowCache.maxAgeMs`) or the bucket leaves the window.
    public func deviceSummaries(recentFromMs: Int64, eventsFromMs: Int64, toMs: Int64, cache: DeviceWindowCache? = nil, nowMs: Int64 = 0) throws -> [DeviceSummary] {
        var table = try deviceTable(cache: cache, nowMs: nowMs)
        try addActivity(to: &table, recentFromMs: recentFromMs, eventsFromMs: eventsFromMs, toMs: toMs, cache: cache, nowMs: nowMs)
        return table.devices
    }

    /// The registry as device table rows (activity columns empty), ordered by `dev`.
    public struct DeviceTable: Sendable {
        public var devices: [DeviceSummary] = []
        var devs: [Int64] = []

        /// What `registryCounts(seenSinceMs:)` returns, computed from these rows.
        public func registryCounts(seenSinceMs: Int64) -> [RegistryCount] {
            // A handful of (state, version) groups: a linear search with string equality beats
            // hashing two strings for each of 10k rows.
            var out: [RegistryCount] = []
            var last = -1
            for d in devices {
                let seen = d.lastSeenMs >= seenSinceMs
                if last >= 0, out[last].seenInWindow == seen, out[last].state == d.state, out[last].modelVersion == d.modelVersion {
                    out[last].devices += 1
                    continue
                }
                if let g = out.firstIndex(where: { $0.seenInWindow == seen && $0.state == d.state && $0.modelVersion == d.modelVersion }) {
                    out[g].devices += 1
                    last = g
                } else {
                    out.append(RegistryCount(state: d.state, modelVersion: d.modelVersion, seenInWindow: seen, devices: 1))
                    last = out.count - 1
                }
            }
            return out
        }

        /// The newest device time (what `latestDataMs()` returns).
        public var latestSeenMs: Int64? { devices.lazy.map(\.lastSeenMs).max() }
    }

    /// The registry as device table rows. With a `cache`, only rows whose receiver time or state
    /// changed since the last call are read (a full scan in SQLite, strings only for changed
    /// rows); the whole registry is re-read when the cache is rebuilt (`maxAgeMs`), which also
    /// picks up the rare change that moves neither (a status message dated in the past).
    public func deviceTable(cache: DeviceWindowCache? = nil, nowMs: Int64 = 0) throws -> DeviceTable {
        let columns = "dev, device_id, sku, firmware, accelerator, model_name, model_version, state, last_seen_ms, last_received_ms, attrs_seq, coalesce(state_changed_ms, 0)"
        /// The row's registry fields; strings equal to `old`'s are reused, not allocated again.
        func registry(_ d: Statement, reusing old: DeviceSummary.Registry? = nil) -> DeviceSummary.Registry {
            DeviceSummary.Registry(
                deviceID: d.text(1, reusing: old?.deviceID ?? ""), sku: d.text(2, reusing: old?.sku ?? ""),
                firmware: d.text(3, reusing: old?.firmware ?? ""), accelerator: d.text(4, reusing: old?.accelerator ?? ""),
                modelName: d.text(5, reusing: old?.modelName ?? ""), modelVersion: d.text(6, reusing: old?.modelVersion ?? ""),
                state: d.text(7, reusing: old?.state ?? ""), lastSeenMs: d.int(8), lastReceivedMs: d.int(9), lastSeq: d.int(10))
        }
        if let c = cache {
            // The writer wrote per-device state it had held back longer than a live hold (ingest
            // was behind, or a crash was redone): rows and minutes older than the marks changed,
            // so everything is read again.
            let flushes = try connection.scalar("SELECT value FROM meta WHERE key = 'device_state_flushes'") ?? 0
            if flushes != c.deviceStateFlushes {
                c.deviceStateFlushes = flushes
                c.registryBuiltAtMs = nil
                c.dropAll(nowMs: nowMs)
            }
        }
        if let c = cache, var t = c.registry, let built = c.registryBuiltAtMs, nowMs >= built, nowMs - built <= DeviceWindowCache.maxAgeMs {
            c.registry = nil  // so the rows below are updated in place, not copied
            // `>=`: a row written later with the newest time already seen must not be missed, so
            // the rows at the marks match again; those that are unchanged are skipped below.
            // (A NULL state time, a device that never sent a status, matches nothing.)
            // A live writer holds rows back for up to `maxLiveHoldMs` of receiver time, so a row
            // written since may be that much older than the newest seen: read those again too.
            let d = try connection.statement("SELECT \(columns) FROM devices WHERE last_received_ms >= ?1 OR state_changed_ms >= ?2 ORDER BY dev")
            let received = c.registryMarks.received
            d.bind(1, received < .min + StoreOptions.maxLiveHoldMs ? .min : received - StoreOptions.maxLiveHoldMs); d.bind(2, c.registryMarks.state)
            var complete = true
            while try d.step() {
                let dev = d.int(0)
                if let i = c.registryIndex.get(dev) {
                    let old = t.devices[i].registry
                    let new = registry(d, reusing: old)
                    guard new != old else { continue }
                    c.changedDevs.append(dev)
                    t.devices[i] = DeviceSummary(registry: new)
                } else if dev > (t.devs.last ?? .min) {
                    c.changedDevs.append(dev)
                    c.registryIndex.set(dev, t.devs.count)
                    t.devs.append(dev)
                    t.devices.append(DeviceSummary(registry: registry(d)))
                } else {
                    complete = false  // a new device below the highest known one: start over
                    break
                }
                c.registryMarks.received = max(c.registryMarks.received, d.int(9))
                c.registryMarks.state = max(c.registryMarks.state, d.int(11))
            }
            d.reset()
            if complete {
                c.registry = t
                return t
            }
        }
        var t = DeviceTable()
        var marks = (received: Int64.min, state: Int64.min)
        var index = DevIndex()
        let d = try connection.statement("SELECT \(columns) FROM devices ORDER BY dev")
        while try d.step() {
            index.set(d.int(0), t.devs.count)
            t.devs.append(d.int(0))
            t.devices.append(DeviceSummary(registry: registry(d)))
            marks.received = max(marks.received, d.int(9))
            marks.state = max(marks.state, d.int(11))
        }
        if let c = cache {
            c.registry = t
            c.registryIndex = index
            c.registryMarks = marks
            c.registryBuiltAtMs = nowMs
            // What changed since the cached minutes were read is unknown now: read them whole.
            c.changedDevs.removeAll()
            c.minutesNeedFullRead = true
        }
        return t
    }

    /// Fills the activity columns of `table`: per-minute windows of `[recentFromMs, toMs)` and
    /// crash and error counts of `[eventsFromMs, toMs)`.
    public func addActivity(to table: inout DeviceTable, recentFromMs: Int64, eventsFromMs: Int64, toMs: Int64, cache: DeviceWindowCache? = nil, nowMs: Int64 = 0) throws {
        guard !table.devices.isEmpty else { return }
        let devs = table.devs
        var out = table.devices
        table.devices = []
        defer { table.devices = out }
        for i in out.indices {
            out[i].inferences = 0
            out[i].errors = 0
            out[i].latencyP95Ms = nil
            out[i].tempC = nil
            out[i].cpuPct = nil
            out[i].crashes = 0
            out[i].errorEvents = 0
        }
        // Recent per-minute windows: one decoded bucket per minute, merged per device.
        let first = max(0, recentFromMs) / Time.minuteMs
        let last = max(0, toMs - 1) / Time.minuteMs
        if last >= first {
            let c = cache ?? DeviceWindowCache()
            c.expire(keepingFrom: first, to: last, nowMs: nowMs)
            // The two newest minutes are read every time; older ones come from the cache, and
            // are merged per device once per set (a new minute, or a rebuild) into one run.
            var buckets: [DeviceWindowCache.Bucket] = []
            let top = min(last, first + 120)
            // The newest minutes change while devices report. Every stored message also moves
            // its device's registry row (last_received_ms), so the devices the registry read
            // found changed are the only rows to read again; the rest stay as cached.
            let changed = c.minutesNeedFullRead ? nil : Array(Set(c.changedDevs)).sorted()
            // Whether only the `changed` devices' rows can differ from the last call's buckets:
            // then only their activity is computed again.
            var onlyChanged = changed != nil
            for b in first...top where b >= last - 1 || c.buckets[b] == nil {
                if let old = c.buckets[b], let changed, changed.count <= max(64, old.view.rows / 4) {
                    c.buckets[b] = try patchDeviceMinute(old, devs: changed)
                    c.minuteReads.patched += 1
                    c.minuteReads.patchedRows += changed.count
                } else {
                    // A minute read again whole (too many changes for a patch) still differs
                    // only in the changed devices' rows; a minute not cached before does not.
                    if c.buckets[b] == nil { onlyChanged = false }
                    // Sized like the same minute's last read, or (older, complete minutes) like
                    // another complete minute: the newest minute may still be nearly empty.
                    let hint = c.buckets[b].map { ($0.view.rows, $0.keyCount) } ?? (b < last - 1 ? c.sizeHint : (0, 0))
                    c.buckets[b] = try readDeviceMinute(bucket: b, sizeHint: hint)
                    if b < last - 1 { c.sizeHint = (c.buckets[b]!.view.rows, c.buckets[b]!.keyCount) }
                    c.minuteReads.full += 1
                }
            }
            c.changedDevs.removeAll(keepingCapacity: true)
            c.minutesNeedFullRead = false
            let olderTop = min(top, last - 2)
            if olderTop >= first {
                let key = first...olderTop
                if c.merged?.range != key {
                    c.merged = (key, DeviceWindowCache.merge(key.map { c.buckets[$0]! }))
                    onlyChanged = false
                }
                buckets.append(c.merged!.bucket)
            }
            if top >= last - 1 {
                for b in max(first, last - 1)...top { buckets.append(c.buckets[b]!) }
            }
            let window = DeviceWindowCache.ActivityWindow(first: first, last: last)
            var activity: [DeviceWindowCache.Activity]
            if onlyChanged, let previous = c.activity, previous.window == window, previous.rows.count <= devs.count, let changed {
                // Unchanged devices keep last call's figures; the changed (and new) ones are
                // computed again, each found in every bucket by binary search.
                activity = previous.rows
                c.activity = nil
                activity.append(contentsOf: repeatElement(DeviceWindowCache.Activity(), count: devs.count - activity.count))
                let index = c.registryIndex.count == devs.count ? c.registryIndex : DevIndex(devs)
                var todo = changed.compactMap { index.get($0) }
                todo.append(contentsOf: previous.rows.count..<devs.count)
                withExtendedLifetime(buckets) {
                    var scratch = ActivityScratch(views: buckets.map(\.view))
                    for i in todo {
                        activity[i] = scratch.activity(of: devs[i]) { _, v, dev in
                            // First row of `v` with devs >= dev.
                            var lo = 0, hi = v.rows
                            while lo < hi {
                                let mid = (lo + hi) / 2
                                if v.devs[mid] < dev { lo = mid + 1 } else { hi = mid }
                            }
                            return lo
                        }
                    }
                }
                c.activityReuse.reused += 1
            } else {
                activity = [DeviceWindowCache.Activity](repeating: DeviceWindowCache.Activity(), count: devs.count)
                withExtendedLifetime(buckets) {
                    var scratch = ActivityScratch(views: buckets.map(\.view))
                    // Both sides are ordered by dev: each bucket's cursor only moves forward.
                    var cursors = [Int](repeating: 0, count: buckets.count)
                    for i in devs.indices {
                        activity[i] = scratch.activity(of: devs[i]) { k, v, dev in
                            var j = cursors[k]
                            while j < v.rows && v.devs[j] < dev { j += 1 }
                            cursors[k] = j
                            return j
                        }
                    }
                }
                c.activityReuse.computed += 1
            }
            for i in out.indices {
                let a = activity[i]
                out[i].inferences = a.inferences
                out[i].errors = a.errors
                out[i].latencyP95Ms = a.latencyP95Ms
                out[i].tempC = a.tempC
                out[i].cpuPct = a.cpuPct
            }
            if cache != nil { c.activity = (window, activity) }
        }

        // Crashes and error records over the event range: the `dev` column straight off the time
        // indexes, counted here (a GROUP BY would sort every row of the hour first).
        let index = cache?.registryIndex.count == devs.count ? cache!.registryIndex : DevIndex(devs)
        let cr = try connection.statement("""
            SELECT dev FROM sessions INDEXED BY sessions_ts WHERE ts_ms >= ?1 AND ts_ms < ?2 AND status = 'crashed'
            """)
        cr.bind(1, eventsFromMs); cr.bind(2, toMs)
        while try cr.step() { if let i = index.get(cr.int(0)) { out[i].crashes += 1 } }
        // Error records: tens of thousands an hour at 10k devices. With a cache, whole minutes
        // before the two newest are read once and kept (like the device-minute buckets, late
        // records in them show after the next rebuild); the partial first minute and the two
        // newest are read every time.
        let errorsSQL = "SELECT dev FROM errors INDEXED BY errors_ts WHERE ts_ms >= ?1 AND ts_ms < ?2"
        func countErrors(_ from: Int64, _ to: Int64) throws {
            guard from < to else { return }
            try forEachInt64(errorsSQL, from, to) { dev in if let i = index.get(dev) { out[i].errorEvents += 1 } }
        }
        let firstWhole = (eventsFromMs + Time.minuteMs - 1) / Time.minuteMs
        let newest = (toMs - 1) / Time.minuteMs - 1
        if let c = cache, eventsFromMs >= 0, toMs > eventsFromMs, newest > firstWhole {
            c.dropAllIfOld(nowMs: nowMs)
            c.errorMinutes = c.errorMinutes.filter { $0.key >= firstWhole && $0.key < newest }
            try countErrors(eventsFromMs, firstWhole * Time.minuteMs)
            for m in firstWhole..<newest {
                if c.errorMinutes[m] == nil {
                    var devs: [Int64] = []
                    try forEachInt64(errorsSQL, m * Time.minuteMs, (m + 1) * Time.minuteMs) { devs.append($0) }
                    c.errorMinutes[m] = devs
                }
                for dev in c.errorMinutes[m]! { if let i = index.get(dev) { out[i].errorEvents += 1 } }
            }
            try countErrors(newest * Time.minuteMs, toMs)
        } else {
            try countErrors(eventsFromMs, toMs)
        }
    }

    /// Runs a one-column integer query with two integer parameters through the C API (no
    /// per-row wrapper calls): for scans of tens of thousands of index entries.
    func forEachInt64(_ sql: String, _ a: Int64, _ b: Int64, _ body: (Int64) -> Void) throws {
        var stmt: OpaquePointer?
        var rc = sqlite3_prepare_v2(connection.db, sql, -1, &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw connection.error(rc, "preparing \(sql)") }
        defer { sqlite3_finalize(stmt) }
        sqlite3_bind_int64(stmt, 1, a)
        sqlite3_bind_int64(stmt, 2, b)
        while true {
            rc = sqlite3_step(stmt)
            if rc == SQLITE_DONE { return }
            guard rc == SQLITE_ROW else { throw connection.error(rc, "running \(sql)") }
            body(sqlite3_column_int64(stmt, 0))
        }
    }

    /// The contract's quantile over several sorted (key, count) runs. When the keys span a
    /// small range (the usual case: one device's latencies over a few minutes) the counts are
    /// added into a dense scratch histogram and scanned once; otherwise the runs are walked in
    /// key order without merging them.
    static func quantile(
        _ q: Double, runs: [(bucket: Int, from: Int, to: Int)], views: [DeviceWindowCache.Bucket.View], total: Int64, heads: inout [Int],
        dense: inout [Double]
    ) -> Double? {
        guard total > 0, !runs.isEmpty else { return nil }
        let rank = q * Double(total - 1)
        var lo = Int32.max, hi = Int32.min
        for r in runs {
            let v = views[r.bucket]
            lo = min(lo, v.keys[r.from])
            hi = max(hi, v.keys[r.to - 1])
        }
        let span = Int(hi - lo) + 1
        if span <= 512 {
            if dense.count < span { dense = [Double](repeating: 0, count: 512) }
            for r in runs {
                let v = views[r.bucket]
                for x in r.from..<r.to { dense[Int(v.keys[x] - lo)] += Double(v.counts[x]) }
            }
            var cumulative = 0.0
            var found: Int?
            for x in 0..<span {
                cumulative += dense[x]
                if found == nil && cumulative > rank { found = x }
                dense[x] = 0
            }
            return DDSketch.value(forKey: Int(lo) + (found ?? span - 1))
        }
        heads.removeAll(keepingCapacity: true)
        for r in runs { heads.append(r.from) }
        var cumulative = 0.0
        var lastKey: Int32 = 0
        while true {
            var minKey = Int32.max
            for r in 0..<runs.count where heads[r] < runs[r].to {
                let k = views[runs[r].bucket].keys[heads[r]]
                if k < minKey { minKey = k }
            }
            guard minKey != Int32.max else { break }
            for r in 0..<runs.count where heads[r] < runs[r].to {
                let v = views[runs[r].bucket]
                if v.keys[heads[r]] == minKey {
                    cumulative += Double(v.counts[heads[r]])
                    heads[r] += 1
                }
            }
            lastKey = minKey
            if cumulative > rank { return DDSketch.value(forKey: Int(minKey)) }
        }
        return DDSketch.value(forKey: Int(lastKey))
    }

    /// One minute of `device_minute`, decoded (sketch blobs read in place, not copied).
    /// `sizeHint`: rows and sketch buckets of a similar minute, so the columns are allocated
    /// once rather than grown (and copied) while reading.
    func readDeviceMinute(bucket: Int64, sizeHint: (rows: Int, keys: Int) = (0, 0)) throws -> DeviceWindowCache.Bucket {
        var cols = DeviceWindowCache.Columns()
        cols.reserve(rows: sizeHint.rows + sizeHint.rows / 8, keys: sizeHint.keys + sizeHint.keys / 8)
        var stmt: OpaquePointer?
        let sql = "SELECT \(Self.minuteColumns) FROM device_minute WHERE bucket = ?1"
        var rc = sqlite3_prepare_v2(connection.db, sql, -1, &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw connection.error(rc, "preparing \(sql)") }
        defer { sqlite3_finalize(stmt) }
        sqlite3_bind_int64(stmt, 1, bucket)
        cols.keyStart.append(0)
        while true {
            rc = sqlite3_step(stmt)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw connection.error(rc, "reading device_minute") }
            Self.appendMinuteRow(stmt, into: &cols)
        }
        return DeviceWindowCache.Bucket(bucket: bucket, cols)
    }

    /// `old` with the rows of `devs` (sorted) read again: changed, new, or still absent.
    func patchDeviceMinute(_ old: DeviceWindowCache.Bucket, devs: [Int64]) throws -> DeviceWindowCache.Bucket {
        guard !devs.isEmpty else { return old }
        var stmt: OpaquePointer?
        let sql = "SELECT \(Self.minuteColumns) FROM device_minute WHERE bucket = ?1 AND dev = ?2"
        var rc = sqlite3_prepare_v2(connection.db, sql, -1, &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw connection.error(rc, "preparing \(sql)") }
        defer { sqlite3_finalize(stmt) }
        var cols = DeviceWindowCache.Columns()
        cols.reserve(rows: old.view.rows + devs.count, keys: old.keyCount + old.keyCount / 4)
        cols.keyStart.append(0)
        // Plain locals (no closure captures `cols`), so the disjoint inout accesses below are
        // checked statically; `old` outlives every read of its buffers.
        defer { withExtendedLifetime(old) {} }
        let v = old.view
        var i = 0
        for dev in devs {
            let runStart = i
            while i < v.rows && v.devs[i] < dev { i += 1 }
            Self.copyRows(v, runStart, i, into: &cols)
            if i < v.rows && v.devs[i] == dev { i += 1 }  // replaced by what is read now
            sqlite3_reset(stmt)
            sqlite3_bind_int64(stmt, 1, old.bucket)
            sqlite3_bind_int64(stmt, 2, dev)
            rc = sqlite3_step(stmt)
            if rc == SQLITE_DONE { continue }
            guard rc == SQLITE_ROW else { throw connection.error(rc, "reading device_minute") }
            Self.appendMinuteRow(stmt, into: &cols)
        }
        Self.copyRows(v, i, v.rows, into: &cols)
        return DeviceWindowCache.Bucket(bucket: old.bucket, cols)
    }

    static let minuteColumns = "dev, inferences, errors, latency, temp_sum, cpu_sum, resource_samples"

    /// Appends the current row of a `SELECT \(minuteColumns)` statement, its sketch decoded.
    static func appendMinuteRow(_ stmt: OpaquePointer, into cols: inout DeviceWindowCache.Columns) {
        cols.devs.append(sqlite3_column_int64(stmt, 0))
        cols.inferences.append(sqlite3_column_int64(stmt, 1))
        cols.errors.append(sqlite3_column_int64(stmt, 2))
        cols.tempSum.append(sqlite3_column_double(stmt, 4))
        cols.cpuSum.append(sqlite3_column_double(stmt, 5))
        cols.samples.append(sqlite3_column_int64(stmt, 6))
        let n = Int(sqlite3_column_bytes(stmt, 3))
        var count: Int64 = 0
        if n > 0, let p = sqlite3_column_blob(stmt, 3) {
            count = DeviceWindowCache.decodeSketch(UnsafeRawBufferPointer(start: p, count: n), keys: &cols.keys, counts: &cols.counts)
        }
        cols.sketchCount.append(count)
        cols.keyStart.append(Int32(cols.keys.count))
    }

    /// Appends rows `from..<to` of `v` (a run of unchanged rows: whole columns copied at once).
    static func copyRows(_ v: DeviceWindowCache.Bucket.View, _ from: Int, _ to: Int, into cols: inout DeviceWindowCache.Columns) {
        guard from < to else { return }
        cols.devs.append(contentsOf: UnsafeBufferPointer(start: v.devs + from, count: to - from))
        cols.inferences.append(contentsOf: UnsafeBufferPointer(start: v.inferences + from, count: to - from))
        cols.errors.append(contentsOf: UnsafeBufferPointer(start: v.errors + from, count: to - from))
        cols.tempSum.append(contentsOf: UnsafeBufferPointer(start: v.tempSum + from, count: to - from))
        cols.cpuSum.append(contentsOf: UnsafeBufferPointer(start: v.cpuSum + from, count: to - from))
        cols.samples.append(contentsOf: UnsafeBufferPointer(start: v.samples + from, count: to - from))
        cols.sketchCount.append(contentsOf: UnsafeBufferPointer(start: v.sketchCount + from, count: to - from))
        let k0 = Int(v.keyStart[from]), k1 = Int(v.keyStart[to])
        let shift = Int32(cols.keys.count) - Int32(k0)
        cols.keys.append(contentsOf: UnsafeBufferPointer(start: v.keys + k0, count: k1 - k0))
        cols.counts.append(contentsOf: UnsafeBufferPointer(start: v.counts + k0, count: k1 - k0))
        for i in (from + 1)...to { cols.keyStart.append(v.keyStart[i] &+ shift) }
    }

    // MARK: - Per-minute series per cohort

    /// One minute of one group of cohorts.
    public struct MinutePoint: Sendable, Equatable {
        public var bucketMs: Int64
        public var inferences: Int64
        public var errors: Int64
        public var latencyP95Ms: Double?
        public var errorRate: Double? { inferences > 0 ? Double(errors) / Double(inferences) : nil }

        public init(bucketMs: Int64, inferences: Int64, errors: Int64, latencyP95Ms: Double?) {
            self.bucketMs = bucketMs
            self.inferences = inferences
            self.errors = errors
            self.latencyP95Ms = latencyP95Ms
        }
    }

    /// Per-minute totals of `[fromMs, toMs)` from the cohort minute rollups, grouped by the
    /// label values of `by` (a subset of `cohortLabels`; empty = the whole fleet). Minutes with no
    /// rollup row are absent.
    public func minuteSeries(fromMs: Int64, toMs: Int64, by: [String]) throws -> [[String]: [MinutePoint]] {
        for l in by where !Self.cohortLabels.contains(l) {
            throw StoreError("unknown label '\(l)': use one of \(Self.cohortLabels.joined(separator: ", "))")
        }
        var keyOf: [Int64: [String]] = [:]
        let c = try connection.statement("SELECT cohort, model_name, model_version, sku, firmware, accelerator FROM cohorts")
        while try c.step() {
            keyOf[c.int(0)] = by.map { label in
                switch label {
                case "model_name": c.text(1)
                case "model_version": c.text(2)
                case "sku": c.text(3)
                case "firmware": c.text(4)
                default: c.text(5)
                }
            }
        }
        struct Acc {
            var inferences: Int64 = 0
            var errors: Int64 = 0
            var latency = LatencyAccumulator()
        }
        var scratch = LatencyAccumulator.Scratch()
        var groups: [[String]: [Int64: Acc]] = [:]
        let s = try connection.statement("""
            SELECT bucket, cohort, inferences, errors, latency FROM rollup_minute WHERE bucket >= ?1 AND bucket < ?2
            """)
        s.bind(1, Self.ceilDiv(fromMs, Time.minuteMs)); s.bind(2, Self.ceilDiv(toMs, Time.minuteMs))
        while try s.step() {
            let key = keyOf[s.int(1)] ?? by.map { _ in "" }
            var a = groups[key, default: [:]][s.int(0), default: Acc()]
            a.inferences &+= s.int(2)
            a.errors &+= s.int(3)
            s.withBlob(4) { a.latency.add($0, scratch: &scratch) }
            groups[key, default: [:]][s.int(0)] = a
        }
        return groups.mapValues { buckets in
            buckets.keys.sorted().map { b in
                let a = buckets[b]!
                return MinutePoint(bucketMs: b * Time.minuteMs, inferences: a.inferences, errors: a.errors, latencyP95Ms: a.latency.quantile(0.95).map { $0 / 1000 })
            }
        }
    }

    // MARK: - Versions

    /// Model-version adoption over time: devices seen per version in each of `buckets` equal
    /// slices of `[fromMs, toMs)` (from the presence stretches; a device counts once per version
    /// and slice), and deploy outcomes per target version over the same range.
    public struct VersionHistory: Sendable, Equatable {
        public var bucketMs: Int64
        public var fromMs: Int64
        /// version -> devices seen in each slice.
        public var devices: [String: [Int]]
        public var deploys: [String: DeployOutcomes]

        public init(bucketMs: Int64, fromMs: Int64, devices: [String: [Int]], deploys: [String: DeployOutcomes]) {
            self.bucketMs = bucketMs
            self.fromMs = fromMs
            self.devices = devices
            self.deploys = deploys
        }
    }

    public struct DeployOutcomes: Sendable, Equatable {
        public var installed: Int64 = 0
        public var rolledBack: Int64 = 0
        public var failed: Int64 = 0
        public var total: Int64 { installed &+ rolledBack &+ failed }
        public init() {}
    }

    public func versionHistory(fromMs: Int64, toMs: Int64, buckets: Int) throws -> VersionHistory {
        let n = max(1, min(buckets, 256))
        let size = max(1, (toMs - fromMs + Int64(n) - 1) / Int64(n))
        // Versions by index, and each cohort's version index.
        var versions = Interner<String>()
        var versionOf: [Int64: Int] = [:]
        let c = try connection.statement("SELECT cohort, model_version FROM cohorts")
        while try c.step() { versionOf[c.int(0)] = versions.intern(c.text(1)).index }
        // One bitset of slices per (device, version), all in one flat array: stretches of a
        // device in several cohorts of the same version, or several stretches in one slice,
        // count once. (Integer keys and flat storage: 10k+ presence rows per refresh.)
        struct Slot: Hashable { var dev: Int64; var version: Int }
        let words = (n + 63) / 64
        var slots = Interner<Slot>()
        var bits: [UInt64] = []
        let p = try connection.statement("SELECT dev, cohort, first_ms, last_ms FROM presence WHERE last_ms >= ?1 AND first_ms < ?2")
        p.bind(1, fromMs); p.bind(2, toMs)
        while try p.step() {
            // A cohort committed after the cohorts were read: its version is unknown here.
            let version = versionOf[p.int(1)] ?? versions.intern("").index
            let lo = Int(max(0, (max(p.int(2), fromMs) - fromMs) / size))
            let hi = Int(min(Int64(n - 1), (min(p.int(3), toMs - 1) - fromMs) / size))
            guard lo <= hi else { continue }
            let (slot, isNew) = slots.intern(Slot(dev: p.int(0), version: version))
            if isNew { bits.append(contentsOf: repeatElement(0, count: words)) }
            let base = slot * words
            for b in lo...hi { bits[base + (b >> 6)] |= 1 << UInt64(b & 63) }
        }
        var counts = [[Int]](repeating: [Int](repeating: 0, count: n), count: versions.keys.count)
        var present = [Bool](repeating: false, count: versions.keys.count)
        for (slot, version) in slots.keys.map(\.version).enumerated() {
            present[version] = true
            for w in 0..<words {
                var word = bits[slot * words + w]
                while word != 0 {
                    counts[version][w * 64 + word.trailingZeroBitCount] += 1
                    word &= word - 1
                }
            }
        }
        var devices: [String: [Int]] = [:]
        for (i, v) in versions.keys.enumerated() where present[i] { devices[v] = counts[i] }
        var deploys: [String: DeployOutcomes] = [:]
        let d = try connection.statement("SELECT to_version, result, count(*) FROM deploys INDEXED BY deploys_ts WHERE ts_ms >= ?1 AND ts_ms < ?2 GROUP BY to_version, result")
        d.bind(1, fromMs); d.bind(2, toMs)
        while try d.step() {
            var o = deploys[d.text(0)] ?? DeployOutcomes()
            switch d.text(1) {
            case "installed": o.installed &+= d.int(2)
            case "rolled_back": o.rolledBack &+= d.int(2)
            default: o.failed &+= d.int(2)
            }
            deploys[d.text(0)] = o
        }
        return VersionHistory(bucketMs: size, fromMs: fromMs, devices: devices, deploys: deploys)
    }

    // MARK: - Alerts (table written by the alert engine)

    /// One row of the alert engine's `alerts` table. Times are epoch ms (the engine may store
    /// integers or RFC 3339 text; both are read). Labels and annotations are the stored JSON
    /// objects flattened to key/value pairs in key order.
    public struct AlertRow: Sendable, Equatable {
        public var alertname: String
        public var state: String
        public var severity: String
        public var labels: [(String, String)]
        public var annotations: [(String, String)]
        public var value: Double?
        public var activeAtMs: Int64?
        public var firedAtMs: Int64?
        public var resolvedAtMs: Int64?

        public init(
            alertname: String, state: String, severity: String, labels: [(String, String)], annotations: [(String, String)],
            value: Double?, activeAtMs: Int64?, firedAtMs: Int64?, resolvedAtMs: Int64?
        ) {
            self.alertname = alertname
            self.state = state
            self.severity = severity
            self.labels = labels
            self.annotations = annotations
            self.value = value
            self.activeAtMs = activeAtMs
            self.firedAtMs = firedAtMs
            self.resolvedAtMs = resolvedAtMs
        }

        public static func == (a: AlertRow, b: AlertRow) -> Bool {
            a.alertname == b.alertname && a.state == b.state && a.severity == b.severity
                && a.labels.elementsEqual(b.labels, by: ==) && a.annotations.elementsEqual(b.annotations, by: ==)
                && a.value == b.value && a.activeAtMs == b.activeAtMs && a.firedAtMs == b.firedAtMs && a.resolvedAtMs == b.resolvedAtMs
        }
    }

    /// Pending and firing alerts, and the newest `resolvedLimit` resolved ones; nil when the
    /// database has no `alerts` table (no alert engine has run against it). Columns the table
    /// lacks read as empty.
    public func alerts(resolvedLimit: Int = 100) throws -> [AlertRow]? {
        guard try hasTable("alerts") else { return nil }
        var columns = Set<String>()
        let info = try connection.statement("SELECT name FROM pragma_table_info('alerts')")
        while try info.step() { columns.insert(info.text(0)) }
        func col(_ name: String) -> String { columns.contains(name) ? name : "NULL" }
        guard columns.contains("alertname"), columns.contains("state") else { return [] }
        let select = """
            SELECT alertname, state, \(col("severity")), \(col("value")), \(col("active_at")), \(col("fired_at")), \(col("resolved_at")),
                \(col("labels")), \(col("annotations"))
            """
        // Resolved ones from the history when there is one (the alerts table keeps them 15 minutes).
        let sql = try hasTable("alert_history")
            ? """
              \(select) FROM alerts WHERE state IN ('pending', 'firing')
              UNION ALL
              SELECT * FROM (SELECT alertname, 'resolved', severity, value, active_at, fired_at, resolved_at, labels, annotations
                             FROM alert_history ORDER BY resolved_at DESC LIMIT \(max(0, resolvedLimit)))
              """
            : """
              \(select)
              FROM (
                  SELECT * FROM alerts WHERE state IN ('pending', 'firing')
                  UNION ALL
                  SELECT * FROM (SELECT * FROM alerts WHERE state NOT IN ('pending', 'firing')
                                 ORDER BY coalesce(\(col("resolved_at")), \(col("fired_at")), \(col("active_at"))) DESC LIMIT \(max(0, resolvedLimit))))
              """
        let s = try connection.prepare(sql)
        var out: [AlertRow] = []
        while try s.step() {
            out.append(AlertRow(
                alertname: s.text(0), state: s.text(1), severity: s.textOrNil(2) ?? "", labels: try jsonPairs(s.textOrNil(7)),
                annotations: try jsonPairs(s.textOrNil(8)), value: s.doubleOrNil(3),
                activeAtMs: Self.timeMs(s, 4), firedAtMs: Self.timeMs(s, 5), resolvedAtMs: Self.timeMs(s, 6)))
        }
        return out
    }

    /// A JSON object's members as (key, value-as-text) in key order, through SQLite's own JSON
    /// functions; anything that is not valid JSON gives no pairs.
    func jsonPairs(_ json: String?) throws -> [(String, String)] {
        guard let json else { return [] }
        let s = try connection.statement("""
            SELECT CAST(key AS TEXT), CAST(value AS TEXT) FROM json_each(CASE WHEN json_valid(?1) THEN ?1 ELSE '{}' END) ORDER BY key
            """)
        s.bind(1, json)
        defer { s.reset() }
        var out: [(String, String)] = []
        while try s.step() { out.append((s.text(0), s.textOrNil(1) ?? "null")) }
        return out
    }

    /// An epoch-ms integer, an RFC 3339 string, or nil.
    static func timeMs(_ s: Statement, _ c: Int32) -> Int64? {
        if s.isNull(c) { return nil }
        if let t = s.textOrNil(c), let ms = RFC3339.parseMs(t) { return ms }
        let v = s.int(c)
        return v == 0 ? nil : v
    }
}

// MARK: - Helpers

/// Decoded per-minute device windows kept between calls of `deviceSummaries` (one loader's
/// connection owns one; not thread-safe).
public final class DeviceWindowCache {
    /// One minute's rows while they are read.
    struct Columns {
        var devs: [Int64] = []
        var inferences: [Int64] = []
        var errors: [Int64] = []
        var tempSum: [Double] = []
        var cpuSum: [Double] = []
        var samples: [Int64] = []
        var sketchCount: [Int64] = []
        var keyStart: [Int32] = []
        var keys: [Int32] = []
        var counts: [Int64] = []

        mutating func reserve(rows: Int, keys k: Int) {
            guard rows > 0 else { return }
            devs.reserveCapacity(rows); inferences.reserveCapacity(rows); errors.reserveCapacity(rows)
            tempSum.reserveCapacity(rows); cpuSum.reserveCapacity(rows); samples.reserveCapacity(rows)
            sketchCount.reserveCapacity(rows); keyStart.reserveCapacity(rows + 1)
            keys.reserveCapacity(k); counts.reserveCapacity(k)
        }
    }

    /// One minute bucket: rows ordered by `dev`; row `i`'s sketch is the sorted run
    /// `keys/counts[keyStart[i]..<keyStart[i + 1]]`. Kept in buffers this object allocates and
    /// frees, so the per-device loop reads them through plain pointers (`View`) with no
    /// reference counting per access.
    final class Bucket {
        struct View {
            var rows: Int
            var devs, inferences, errors, samples, sketchCount: UnsafePointer<Int64>
            var tempSum, cpuSum: UnsafePointer<Double>
            var keyStart: UnsafePointer<Int32>
            var keys: UnsafePointer<Int32>
            var counts: UnsafePointer<Int64>
        }

        let bucket: Int64
        /// Sketch buckets held (all rows).
        let keyCount: Int
        private let int64s: UnsafeMutableBufferPointer<Int64>
        private let doubles: UnsafeMutableBufferPointer<Double>
        private let int32s: UnsafeMutableBufferPointer<Int32>
        /// Valid while this object is alive.
        let view: View

        init(bucket: Int64, _ c: Columns) {
            self.bucket = bucket
            keyCount = c.keys.count
            let n = c.devs.count
            int64s = .allocate(capacity: 5 * n + c.counts.count + 1)
            doubles = .allocate(capacity: 2 * n + 1)
            int32s = .allocate(capacity: c.keyStart.count + c.keys.count + 1)
            var o = 0
            for a in [c.devs, c.inferences, c.errors, c.samples, c.sketchCount, c.counts] {
                _ = UnsafeMutableBufferPointer(rebasing: int64s[o..<o + a.count]).initialize(from: a)
                o += a.count
            }
            _ = UnsafeMutableBufferPointer(rebasing: doubles[0..<n]).initialize(from: c.tempSum)
            _ = UnsafeMutableBufferPointer(rebasing: doubles[n..<2 * n]).initialize(from: c.cpuSum)
            _ = UnsafeMutableBufferPointer(rebasing: int32s[0..<c.keyStart.count]).initialize(from: c.keyStart)
            _ = UnsafeMutableBufferPointer(rebasing: int32s[c.keyStart.count..<c.keyStart.count + c.keys.count]).initialize(from: c.keys)
            let p64 = UnsafePointer(int64s.baseAddress!)
            let pd = UnsafePointer(doubles.baseAddress!)
            let p32 = UnsafePointer(int32s.baseAddress!)
            view = View(
                rows: n, devs: p64, inferences: p64 + n, errors: p64 + 2 * n, samples: p64 + 3 * n, sketchCount: p64 + 4 * n,
                tempSum: pd, cpuSum: pd + n, keyStart: p32, keys: p32 + c.keyStart.count, counts: p64 + 5 * n)
        }

        deinit {
            int64s.deallocate()
            doubles.deallocate()
            int32s.deallocate()
        }
    }

    /// Rebuilt whole at least this often, so late data in older buckets shows up.
    public static let maxAgeMs: Int64 = 30_000

    var buckets: [Int64: Bucket] = [:]
    /// Devices whose registry row changed since the newest minutes were read (their minute rows
    /// are read again); `minutesNeedFullRead` when that is unknown (the registry was rebuilt).
    var changedDevs: [Int64] = []
    var minutesNeedFullRead = true
    /// How the newest minutes were refreshed (full reads, patches, rows read by patches), for tests.
    var minuteReads = (full: 0, patched: 0, patchedRows: 0)
    /// Rows and sketch buckets of the last minute read (allocation hint for the next).
    var sizeHint = (rows: 0, keys: 0)
    /// The devs of each error record, per whole minute before the two newest (see `addActivity`).
    var errorMinutes: [Int64: [Int64]] = [:]
    /// One device's figures over the recent window.
    struct Activity: Equatable {
        var inferences: Int64 = 0
        var errors: Int64 = 0
        var latencyP95Ms: Double?
        var tempC: Double?
        var cpuPct: Double?
    }

    struct ActivityWindow: Equatable {
        var first: Int64
        var last: Int64
    }

    /// The last call's activity per registry row (in `dev` order) and the minutes it covers.
    var activity: (window: ActivityWindow, rows: [Activity])?
    /// How often the activity was computed for every device or reused for the unchanged ones.
    var activityReuse = (computed: 0, reused: 0)
    /// The older buckets of the window merged per device, and which buckets those are.
    var merged: (range: ClosedRange<Int64>, bucket: Bucket)?
    /// The last registry read, and the highest receiver time and state change time in it.
    var registry: StoreReader.DeviceTable?
    var registryIndex = DevIndex()
    var registryMarks = (received: Int64.min, state: Int64.min)
    var registryBuiltAtMs: Int64?
    /// The writer's count of held-back device state flushes when the cache was filled.
    var deviceStateFlushes: Int64 = 0
    private var builtAtMs: Int64?

    public init() {}

    /// Drops buckets outside `[from, to]`, or everything once the cache is older than `maxAgeMs`.
    func expire(keepingFrom from: Int64, to: Int64, nowMs: Int64) {
        dropAllIfOld(nowMs: nowMs)
        for b in buckets.keys where b < from || b > to { buckets[b] = nil }
    }

    /// Drops every cached minute once the cache is older than `maxAgeMs` (the rebuild).
    func dropAllIfOld(nowMs: Int64) {
        if let built = builtAtMs, nowMs >= built, nowMs - built <= Self.maxAgeMs { return }
        dropAll(nowMs: nowMs)
    }

    func dropAll(nowMs: Int64) {
        buckets.removeAll(keepingCapacity: true)
        merged = nil
        activity = nil
        errorMinutes.removeAll()
        builtAtMs = nowMs
    }

    /// Several buckets as one: per device (in `dev` order) the sums of its rows and its sketch
    /// runs merged into one sorted run.
    static func merge(_ parts: [Bucket]) -> Bucket {
        var cols = Columns()
        cols.keyStart.append(0)
        withExtendedLifetime(parts) {
            let views = parts.map(\.view)
            var heads = [Int](repeating: 0, count: views.count)
            var dense = [Int64](repeating: 0, count: 4096)
            var pairs: [(Int32, Int64)] = []
            while true {
                var dev = Int64.max
                for (k, v) in views.enumerated() where heads[k] < v.rows { dev = min(dev, v.devs[heads[k]]) }
                guard dev != .max else { break }
                var inferences: Int64 = 0, errors: Int64 = 0, samples: Int64 = 0, count: Int64 = 0
                var temp = 0.0, cpu = 0.0
                var lo = Int32.max, hi = Int32.min
                for (k, v) in views.enumerated() where heads[k] < v.rows && v.devs[heads[k]] == dev {
                    let j = heads[k]
                    inferences &+= v.inferences[j]; errors &+= v.errors[j]; samples &+= v.samples[j]
                    temp += v.tempSum[j]; cpu += v.cpuSum[j]
                    count = DDSketch.saturatingAddPublic(count, v.sketchCount[j])
                    let from = Int(v.keyStart[j]), to = Int(v.keyStart[j + 1])
                    if from < to {
                        lo = min(lo, v.keys[from])
                        hi = max(hi, v.keys[to - 1])
                    }
                }
                let span = lo <= hi ? Int(hi - lo) + 1 : 0
                pairs.removeAll(keepingCapacity: true)
                for (k, v) in views.enumerated() where heads[k] < v.rows && v.devs[heads[k]] == dev {
                    let j = heads[k]
                    for x in Int(v.keyStart[j])..<Int(v.keyStart[j + 1]) {
                        if span <= dense.count {
                            let i = Int(v.keys[x] - lo)
                            dense[i] = DDSketch.saturatingAddPublic(dense[i], v.counts[x])
                        } else {
                            pairs.append((v.keys[x], v.counts[x]))
                        }
                    }
                    heads[k] += 1
                }
                if span <= dense.count {
                    for i in 0..<span where dense[i] != 0 {
                        cols.keys.append(lo + Int32(i))
                        cols.counts.append(dense[i])
                        dense[i] = 0
                    }
                } else {
                    pairs.sort { $0.0 < $1.0 }
                    for (key, c) in pairs {
                        if cols.keys.count > Int(cols.keyStart.last!), cols.keys.last == key {
                            cols.counts[cols.counts.count - 1] = DDSketch.saturatingAddPublic(cols.counts[cols.counts.count - 1], c)
                        } else {
                            cols.keys.append(key)
                            cols.counts.append(c)
                        }
                    }
                }
                cols.devs.append(dev)
                cols.inferences.append(inferences); cols.errors.append(errors); cols.samples.append(samples)
                cols.tempSum.append(temp); cols.cpuSum.append(cpu)
                cols.sketchCount.append(count)
                cols.keyStart.append(Int32(cols.keys.count))
            }
        }
        return Bucket(bucket: -1, cols)
    }

    /// Appends a valid `DDSketch.encodedBinary()` blob's buckets; returns its count (0, and
    /// nothing appended, for a malformed blob).
    static func decodeSketch(_ p: UnsafeRawBufferPointer, keys: inout [Int32], counts: inout [Int64]) -> Int64 {
        guard p.count > 26, p[0] == 1 else { return 0 }
        var i = 1
        guard Codecs.getVarint(p, &i) != nil else { return 0 }
        i += 24  // sum, min, max
        guard let n64 = Codecs.getVarint(p, &i), n64 <= UInt64(DDSketch.maxBuckets * 16) else { return 0 }
        let n = Int(n64)
        let start = keys.count
        var k = 0
        var total: Int64 = 0
        for x in 0..<n {
            guard let d = Codecs.getVarint(p, &i), let c = Codecs.getVarint(p, &i) else { return rollback(start, &keys, &counts) }
            guard d <= UInt64(DDSketch.maxKey), x == 0 || d > 0 else { return rollback(start, &keys, &counts) }
            k += Int(d)
            guard k <= DDSketch.maxKey else { return rollback(start, &keys, &counts) }
            keys.append(Int32(k))
            counts.append(Int64(bitPattern: c))
            total = DDSketch.saturatingAddPublic(total, Int64(bitPattern: c))
        }
        return total
    }

    /// Undoes a partial decode (malformed blob): nothing appended, count 0.
    private static func rollback(_ start: Int, _ keys: inout [Int32], _ counts: inout [Int64]) -> Int64 {
        keys.removeLast(keys.count - start)
        counts.removeLast(counts.count - start)
        return 0
    }
}

/// `dev` (an INTEGER PRIMARY KEY, dense in practice) to an array position: an array while the
/// keys stay dense, a dictionary for any key beyond that.
/// What one device's activity is computed with: the buckets' views and reused scratch space.
struct ActivityScratch {
    let views: [DeviceWindowCache.Bucket.View]
    var runs: [(bucket: Int, from: Int, to: Int)] = []
    var heads: [Int] = []
    var dense = [Double](repeating: 0, count: 512)

    init(views: [DeviceWindowCache.Bucket.View]) {
        self.views = views
        runs.reserveCapacity(views.count)
        heads.reserveCapacity(views.count)
    }

    /// `dev`'s sums over the buckets and its p95 from their merged sketches; `find(k, view, dev)`
    /// gives the first row of bucket k's view whose dev is not below `dev`.
    mutating func activity(of dev: Int64, find: (Int, DeviceWindowCache.Bucket.View, Int64) -> Int) -> DeviceWindowCache.Activity {
        runs.removeAll(keepingCapacity: true)
        var total: Int64 = 0
        var a = DeviceWindowCache.Activity()
        var samples: Int64 = 0
        var tempSum = 0.0, cpuSum = 0.0
        for k in 0..<views.count {
            let v = views[k]
            let j = find(k, v, dev)
            guard j < v.rows, v.devs[j] == dev else { continue }
            a.inferences &+= v.inferences[j]
            a.errors &+= v.errors[j]
            tempSum += v.tempSum[j]
            cpuSum += v.cpuSum[j]
            samples &+= v.samples[j]
            let from = Int(v.keyStart[j]), to = Int(v.keyStart[j + 1])
            if from < to {
                runs.append((k, from, to))
                total = DDSketch.saturatingAddPublic(total, v.sketchCount[j])
            }
        }
        a.latencyP95Ms = StoreReader.quantile(0.95, runs: runs, views: views, total: total, heads: &heads, dense: &dense).map { $0 / 1000 }
        if samples > 0 {
            a.tempC = tempSum / Double(samples)
            a.cpuPct = cpuSum / Double(samples)
        }
        return a
    }
}

struct DevIndex {
    private var dense: [Int32] = []
    private var sparse: [Int64: Int] = [:]
    private(set) var count = 0

    init() {}

    /// Positions of `devs` in order.
    init(_ devs: [Int64]) {
        for (i, d) in devs.enumerated() { set(d, i) }
    }

    mutating func set(_ dev: Int64, _ i: Int) {
        count += 1
        if dev >= 0 && dev < 1 << 24 && dev <= Int64(dense.count) * 2 + 1024 {
            if dev >= dense.count { dense.append(contentsOf: repeatElement(-1, count: Int(dev) - dense.count + 1)) }
            dense[Int(dev)] = Int32(i)
        } else {
            sparse[dev] = i
        }
    }

    func get(_ dev: Int64) -> Int? {
        if dev >= 0 && dev < dense.count {
            let i = dense[Int(dev)]
            if i >= 0 { return Int(i) }
        }
        return sparse.isEmpty ? nil : sparse[dev]
    }
}

/// Collects the buckets of many compact sketches and answers quantiles without building (or
/// merging) a `DDSketch` per row: decoding appends (key, count) pairs, the quantile sorts them
/// once. Rollup queries add hundreds of sketches per answer.
struct LatencyAccumulator {
    var keys: [Int32] = []
    var counts: [Int64] = []
    var count: Int64 = 0

    /// Kept for call sites that share decode buffers; unused by this accumulator.
    struct Scratch {
        init() {}
    }

    /// Adds one `DDSketch.encodedBinary()` blob; a malformed one is skipped whole.
    mutating func add(_ p: UnsafeRawBufferPointer, scratch: inout Scratch) {
        count = DDSketch.saturatingAddPublic(count, DeviceWindowCache.decodeSketch(p, keys: &keys, counts: &counts))
    }

    /// The contract's quantile (CONTRACTS section 3), in microseconds: a dense histogram over
    /// the key span when it is small (latencies within a few orders of magnitude), else a sort.
    func quantile(_ q: Double) -> Double? {
        guard count > 0, !keys.isEmpty else { return nil }
        let rank = q * Double(count - 1)
        let lo = keys.min()!, hi = keys.max()!
        let span = Int(hi - lo) + 1
        if span <= 8192 {
            var dense = [Double](repeating: 0, count: span)
            for i in keys.indices { dense[Int(keys[i] - lo)] += Double(counts[i]) }
            var cumulative = 0.0
            for x in 0..<span {
                cumulative += dense[x]
                if cumulative > rank { return DDSketch.value(forKey: Int(lo) + x) }
            }
            return DDSketch.value(forKey: Int(hi))
        }
        let order = keys.indices.sorted { keys[$0] < keys[$1] }
        var cumulative: Double = 0
        for i in order {
            cumulative += Double(counts[i])
            if cumulative > rank { return DDSketch.value(forKey: Int(keys[i])) }
        }
        return DDSketch.value(forKey: Int(keys[order[order.count - 1]]))
    }
}

extension DDSketch {
    /// `saturatingAdd` for the accumulator above (FleetCore's is internal).
    static func saturatingAddPublic(_ a: Int64, _ b: Int64) -> Int64 {
        let (r, o) = a.addingReportingOverflow(b)
        return o ? (b > 0 ? Int64.max : Int64.min) : r
    }
}

extension Statement {
    /// A column's blob without copying it out (valid only inside `body`).
    func withBlob(_ c: Int32, _ body: (UnsafeRawBufferPointer) -> Void) {
        let b = blob(c)
        b.withUnsafeBytes(body)
    }
}

/// RFC 3339 timestamps (`2025-11-29T12:00:00Z`, fractional seconds and offsets allowed) to epoch
/// ms, without Foundation.
enum RFC3339 {
    static func parseMs(_ s: String) -> Int64? {
        let b = Array(s.utf8)
        guard b.count >= 20 else { return nil }
        func num(_ from: Int, _ len: Int) -> Int64? {
            var v: Int64 = 0
            for j in from..<from + len {
                guard b[j] >= 48, b[j] <= 57 else { return nil }
                v = v * 10 + Int64(b[j] - 48)
            }
            return v
        }
        guard let y = num(0, 4), b[4] == 45, let mo = num(5, 2), b[7] == 45, let d = num(8, 2),
            b[10] == 84 || b[10] == 116 || b[10] == 32, let h = num(11, 2), b[13] == 58, let mi = num(14, 2), b[16] == 58,
            let se = num(17, 2), (1...12).contains(mo), (1...31).contains(d)
        else { return nil }
        var i = 19
        var ms: Int64 = 0
        if i < b.count, b[i] == 46 {
            i += 1
            var scale: Int64 = 100
            while i < b.count, b[i] >= 48, b[i] <= 57 {
                ms += Int64(b[i] - 48) * scale
                scale /= 10
                i += 1
            }
        }
        var offsetMin: Int64 = 0
        guard i < b.count else { return nil }
        if b[i] == 90 || b[i] == 122 {
            i += 1
        } else if b[i] == 43 || b[i] == 45, i + 6 <= b.count, let oh = num(i + 1, 2), b[i + 3] == 58, let om = num(i + 4, 2) {
            offsetMin = (oh * 60 + om) * (b[i] == 45 ? -1 : 1)
            i += 6
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        // Days from civil (Howard Hinnant's algorithm).
        let yy = mo <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let mp = (mo + 9) % 12
        let doy = (153 * mp + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return ((days * 86_400 + h * 3600 + mi * 60 + se) - offsetMin * 60) * 1000 + ms
    }
}
