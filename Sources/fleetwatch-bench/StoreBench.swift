import FleetCore
import FleetStore
import SQLiteKit
import Foundation

// MARK: - Realistic traffic

/// A fleet of `devices` reporting every `periodMs`: each message carries an inference window and
/// a resources sample; a session ends and the next starts every 6 h, every 200th message has an
/// error (the shape of fleet-agent).
struct SyntheticFleet {
    var devices: Int
    var periodMs: Int64 = 10_000
    var startMs: Int64 = 1_764_417_600_000
    var rng = SplitMix64(seed: 42)
    let skus = ["orin-nano-8g", "xavier-nx", "rpi5-hailo", "jetson-tx2"]
    let versions = ["1.3.2", "1.4.0", "1.5.0"]
    let firmwares = ["5.1.2", "5.2.0"]
    var sketches: [DDSketch] = []

    init(devices: Int) {
        self.devices = devices
        for k in 0..<16 {
            var s = DDSketch()
            for i in 0..<598 { s.insert(15_000 + Double((i * 37 + k * 101) % 6000)) }
            sketches.append(s)
        }
    }

    func deviceID(_ d: Int) -> String { "dev-\(String(d, radix: 10))" }

    /// Message number `n` of device `d` (seq n + 1).
    mutating func message(device d: Int, n: Int64) -> TelemetryMessage {
        let ts = startMs + n * periodMs + Int64(d % 1000)
        var hist = [Int64](repeating: 0, count: 10)
        hist[9] = 400; hist[8] = 150; hist[7] = 40; hist[6] = 8
        var records: [TelemetryRecord] = [
            .inference(InferenceRecord(
                tsMs: ts, windowMs: periodMs, count: 600, errors: 2, latencyUs: sketches[Int(n % 16)], confidenceHist: hist,
                classCounts: [ClassCount(name: "ok", count: 560), ClassCount(name: "defect", count: 30), ClassCount(name: "unknown", count: 8)])),
            .resources(ResourcesRecord(tsMs: ts, cpuPct: 41.5, memMB: 1210, tempC: 58.5 + Double(n % 10), throttleEvents: n % 97 == 0 ? 1 : 0)),
        ]
        if n % 2160 == 0 {
            let k = n / 2160
            if k > 0 {
                let crashed = (Int64(d) + k) % 50 == 0
                records.append(.session(SessionRecord(tsMs: ts, sessionID: "s-\(k - 1)", status: crashed ? .crashed : .exited, durationMs: 2160 * periodMs, errors: 0)))
            }
            records.append(.session(SessionRecord(tsMs: ts, sessionID: "s-\(k)", status: .started, durationMs: 0, errors: 0)))
        }
        if n % 200 == 7 { records.append(.error(ErrorRecord(tsMs: ts, code: "CAMERA_TIMEOUT", message: "frame grab timed out after 500 ms"))) }
        return TelemetryMessage(
            schemaVersion: 2, deviceID: deviceID(d), seq: n + 1, sentAtMs: ts,
            device: DeviceInfo(sku: skus[d % skus.count], firmware: firmwares[d % 2], agent: "0.3.0", accelerator: "gpu"),
            model: ModelInfo(name: "defect-detector", version: versions[d % versions.count], sha256: String(repeating: "ab", count: 32)),
            records: records)
    }
}

func tempPath(_ name: String) -> String {
    let dir = ProcessInfo.processInfo.environment["BENCH_DIR"] ?? NSTemporaryDirectory()
    let p = (dir as NSString).appendingPathComponent(name)
    for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: p + suffix) }
    return p
}

func fileSize(_ path: String) -> Int64 {
    var total: Int64 = 0
    for suffix in ["", "-wal"] {
        if let a = try? FileManager.default.attributesOfItem(atPath: path + suffix), let s = a[.size] as? NSNumber { total += s.int64Value }
    }
    return total
}

// MARK: - Write path

func benchStoreWrite() throws {
    let devices = Int(option("--devices") ?? "1000") ?? 1000
    let total = Int(option("--messages") ?? "200000") ?? 200_000
    let batch = Int(option("--batch") ?? "2000") ?? 2000
    // --steady: ingest keeps up (no batch is `behind`), so each batch writes its devices' state.
    let steady = CommandLine.arguments.contains("--steady")
    var fleet = SyntheticFleet(devices: devices)
    print("store write: \(total) messages from \(devices) devices, \(batch) per transaction, WAL, synchronous=NORMAL")
    // Pre-generate, so only the store is timed.
    var batches: [[IngestItem]] = []
    var current: [IngestItem] = []
    var records = 0
    // A backlog draining (what `behind` batches are): receiver times advance at the rate the
    // messages arrived (50k msgs/s), not at the fleet's reporting rate as device times do.
    let arrivedMs = Int64(Date().timeIntervalSince1970 * 1000)
    for i in 0..<total {
        let m = fleet.message(device: i % devices, n: Int64(i / devices))
        records += m.records.count
        current.append(.telemetry(m, receivedMs: arrivedMs + Int64(i / 50)))  // 50k msgs/s
        if current.count == batch { batches.append(current); current = [] }
    }
    if !current.isEmpty { batches.append(current) }
    let recordsPerBatch = records / batches.count

    // Baselines: the same number of rows as plain prepared inserts, same rows per commit.
    func rawInserts(_ name: String, _ ddl: String, _ insert: String, key: (Int, Int) -> (Int64, Int64)) throws -> Double {
        let path = tempPath("bench-raw-\(name).db")
        let c = try SQLiteConnection(path: path)
        try c.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=10000; PRAGMA cache_size=-65536;")
        try c.execute(ddl)
        let blob = [UInt8](repeating: 7, count: 60)
        let start = monotonicSeconds()
        var row = 0
        for _ in batches {
            try c.transaction {
                let s = try c.statement(insert)
                for _ in 0..<recordsPerBatch {
                    let (a, b) = key(row, devices)
                    s.reset()
                    s.bind(1, a); s.bind(2, b); s.bind(3, Int64(row)); s.bind(4, Int64(row % 3)); s.bind(5, 600.0); s.bind(6, blob: blob)
                    try s.run()
                    row += 1
                }
            }
        }
        return Double(row) / (monotonicSeconds() - start)
    }
    let perDevice = { (row: Int, devices: Int) -> (Int64, Int64) in
        let msg = row / 2
        return (1_764_417_600_000 + Int64(msg / devices) * 10_000, Int64(msg % devices))
    }
    let rowid = try rawInserts("rowid", "CREATE TABLE t(ts INTEGER, dev INTEGER, seq INTEGER, idx INTEGER, v REAL, b BLOB)",
                               "INSERT INTO t VALUES(?1,?2,?3,?4,?5,?6)", key: perDevice)
    let timeMajor = try rawInserts("time", "CREATE TABLE t(ts INTEGER, dev INTEGER, seq INTEGER, idx INTEGER, v REAL, b BLOB, PRIMARY KEY(ts, dev, seq, idx)) WITHOUT ROWID",
                                   "INSERT INTO t VALUES(?1,?2,?3,?4,?5,?6)", key: perDevice)
    let dayMajor = try rawInserts("day", "CREATE TABLE t(day INTEGER, dev INTEGER, ts INTEGER, seq INTEGER, v REAL, b BLOB, PRIMARY KEY(day, dev, ts, seq)) WITHOUT ROWID",
                                  "INSERT INTO t VALUES(?1/86400000,?2,?1,?3,?5,?6)", key: perDevice)
    let deviceMajor = try rawInserts("device", "CREATE TABLE t(dev INTEGER, ts INTEGER, seq INTEGER, idx INTEGER, v REAL, b BLOB, PRIMARY KEY(dev, ts, seq, idx)) WITHOUT ROWID",
                                     "INSERT INTO t(ts, dev, seq, idx, v, b) VALUES(?1,?2,?3,?4,?5,?6)", key: perDevice)

    // The real writer.
    let path = tempPath("bench-store.db")
    let writer = try StoreWriter(path: path)
    let start = monotonicSeconds()
    var stored = 0
    var commitTimes: [Double] = []
    // All input is waiting (a backlog), so every batch but the last is `behind`; the last one
    // writes whatever device state was held back, inside the timed run.
    for i in batches.indices {
        // Handed over whole, as the ingester does: the writer moves each message out of it.
        var b: [IngestItem] = []
        swap(&b, &batches[i])
        let t = monotonicSeconds()
        stored += try writer.write(consume b, behind: !steady && i < batches.count - 1).stored
        commitTimes.append(monotonicSeconds() - t)
    }
    let elapsed = monotonicSeconds() - start
    commitTimes.sort()
    let recRate = Double(records) / elapsed
    print("  raw prepared inserts, rowid table, no key:          \(fmt(rowid)) rows/s")
    print("  raw prepared inserts, time-major key (ts, dev, ...):   \(fmt(timeMajor)) rows/s")
    print("  raw prepared inserts, day-major key (day, dev, ts, ...): \(fmt(dayMajor)) rows/s")
    print("  raw prepared inserts, device-major key (dev, ts, ...): \(fmt(deviceMajor)) rows/s")
    print("  StoreWriter (records + registry + dedupe + rollups + presence): \(fmt(recRate)) records/s = \(fmt(Double(stored) / elapsed)) msgs/s")
    print("    batch commit p50 \(fmt(commitTimes[commitTimes.count / 2] * 1000)) ms, p99 \(fmt(commitTimes[commitTimes.count * 99 / 100] * 1000)) ms")
    print("  ratio: \(fmt(recRate / rowid)) of raw rowid inserts, \(fmt(recRate / dayMajor)) of raw day-major inserts   goal: >= 0.8 of raw")
    print("  database: \(fileSize(path) / 1_000_000) MB for \(stored) messages = \(fileSize(path) / Int64(max(stored, 1))) bytes/message")

    // Folding the hours that are over into device_hour, in the ingester's steps (250 devices).
    let minuteRows = try writer.connection.scalar("SELECT count(*) FROM device_minute") ?? 0
    let now = Int64(Date().timeIntervalSince1970 * 1000)
    var steps: [Double] = []
    while true {
        let t = monotonicSeconds()
        guard try writer.foldDeviceHours(nowMs: now) > 0 else { break }
        steps.append(monotonicSeconds() - t)
    }
    let foldSeconds = steps.reduce(0, +)
    let hourRows = try writer.connection.scalar("SELECT count(*) FROM device_hour") ?? 0
    print("  fold: \(hourRows) device-hours from \(minuteRows) minute rows in \(fmt(foldSeconds * 1000)) ms = \(fmt(foldSeconds / Double(max(hourRows, 1)) * 1e6)) µs per device-hour; longest step \(fmt((steps.max() ?? 0) * 1000)) ms; \(fmt(foldSeconds / elapsed * 100))% of the time the writer took to store the same data")
}

// MARK: - Query path

/// Builds (or reuses) a database with `devices` devices: 7 days at 10 s for the target device
/// through the real writer, and the rest of the fleet synthesised in bulk at the same density in
/// every table the queries read (hourly rollups, sessions, errors, presence).
func buildQueryDatabase(devices: Int, path: String) throws -> (target: String, endMs: Int64) {
    let days: Int64 = 7
    var fleet = SyntheticFleet(devices: devices)
    let endMs = fleet.startMs + days * 86_400_000
    let marker = path + ".complete"
    // Reused only if built at this schema version (an older layout would measure old code paths).
    if FileManager.default.fileExists(atPath: marker),
       (try? SQLiteConnection(path: path, readOnly: true).scalar("PRAGMA user_version")) == Int64(StoreWriter.schemaVersion) {
        return (fleet.deviceID(0), endMs)
    }
    for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
    let writer = try StoreWriter(path: path)
    // One message per device first, so every device and cohort exists through the real path.
    var first: [IngestItem] = []
    for d in 0..<devices { let m = fleet.message(device: d, n: 0); first.append(.telemetry(m, receivedMs: m.sentAtMs)) }
    _ = try writer.write(first)
    // The target device: 7 days every 10 s.
    let perDay = 8640
    var items: [IngestItem] = []
    for n in 1..<(Int(days) * perDay) {
        let m = fleet.message(device: 0, n: Int64(n))
        items.append(.telemetry(m, receivedMs: m.sentAtMs))
        if items.count == 5000 { _ = try writer.write(items); items.removeAll() }
    }
    _ = try writer.write(items)
    // The target's finished hours folded into device_hour (as the ingester's housekeeping
    // ticks do), so the bulk copy below has hour rows to copy.
    while try writer.foldDeviceHours(nowMs: endMs, maxDevices: 1_000) > 0 {}
    // Everyone else, in bulk SQL at the same density as the target's rows in each table.
    let c = writer.connection
    let h0 = fleet.startMs / 3_600_000
    try c.transaction {
        try c.execute("""
            INSERT OR IGNORE INTO device_hour SELECT h.bucket, d.dev, h.inferences, h.errors, h.latency, h.temp_sum, h.temp_max, h.cpu_sum, h.mem_max, h.resource_samples, h.throttle_events
            FROM device_hour h JOIN devices d ON d.dev != h.dev WHERE h.dev = (SELECT dev FROM devices WHERE device_id = '\(fleet.deviceID(0))');
            INSERT OR IGNORE INTO device_minute SELECT h.bucket, d.dev, h.inferences, h.errors, h.latency, h.temp_sum, h.temp_max, h.cpu_sum, h.mem_max, h.resource_samples, h.throttle_events
            FROM device_minute h JOIN devices d ON d.dev != h.dev WHERE h.dev = (SELECT dev FROM devices WHERE device_id = '\(fleet.deviceID(0))') AND h.bucket >= \((endMs - 86_400_000) / 60_000);
            INSERT OR IGNORE INTO sessions SELECT d.dev, s.ts_ms + (d.dev * 7919 % 21600000), s.seq, s.idx, d.cohort, s.session_id, CASE WHEN s.status != 'started' AND (d.dev + s.seq) % 50 = 0 THEN 'crashed' ELSE s.status END, s.duration_ms, s.errors
            FROM sessions s JOIN devices d ON d.dev != s.dev WHERE s.dev = (SELECT dev FROM devices WHERE device_id = '\(fleet.deviceID(0))');
            INSERT OR IGNORE INTO errors SELECT d.dev, e.ts_ms + (d.dev % 1000), e.seq, e.idx, e.code, e.message
            FROM errors e JOIN devices d ON d.dev != e.dev WHERE e.dev = (SELECT dev FROM devices WHERE device_id = '\(fleet.deviceID(0))');
            UPDATE presence SET last_ms = \(endMs);
            UPDATE devices SET last_seen_ms = \(endMs);
            """)
        // Rollups: every cohort, every hour and minute of the 7 days, from the target's rows.
        try c.execute("""
            INSERT OR IGNORE INTO rollup_hour SELECT r.bucket, c.cohort, r.inferences * \(devices / 24 + 1), r.errors, r.latency, r.hist, r.classes,
                r.sessions_started, r.sessions_exited, r.sessions_crashed, r.sessions_abnormal, r.throttle_events, r.resource_samples,
                r.deploys_installed, r.deploys_rolled_back, r.deploys_failed
            FROM rollup_hour r JOIN cohorts c WHERE r.cohort = (SELECT cohort FROM devices WHERE device_id = '\(fleet.deviceID(0))') AND c.cohort != r.cohort;
            INSERT OR IGNORE INTO rollup_minute SELECT r.bucket, c.cohort, r.inferences, r.errors, r.latency, r.hist, r.classes,
                r.sessions_started, r.sessions_exited, r.sessions_crashed, r.sessions_abnormal, r.throttle_events, r.resource_samples,
                r.deploys_installed, r.deploys_rolled_back, r.deploys_failed
            FROM rollup_minute r JOIN cohorts c WHERE r.cohort = (SELECT cohort FROM devices WHERE device_id = '\(fleet.deviceID(0))') AND c.cohort != r.cohort;
            """)
    }
    _ = h0
    try c.execute("PRAGMA wal_checkpoint(TRUNCATE); ANALYZE;")
    // Without the marker the next run builds the database again: slower, not wrong.
    _ = FileManager.default.createFile(atPath: marker, contents: Data())
    return (fleet.deviceID(0), endMs)
}

func percentile(_ xs: [Double], _ p: Double) -> Double {
    let s = xs.sorted()
    return s[min(s.count - 1, Int(Double(s.count - 1) * p))]
}

func benchStoreQuery() throws {
    let devices = Int(option("--devices") ?? "10000") ?? 10_000
    let dir = ProcessInfo.processInfo.environment["BENCH_DIR"] ?? NSTemporaryDirectory()
    let path = (dir as NSString).appendingPathComponent("bench-query-\(devices).db")
    let t = monotonicSeconds()
    let (target, endMs) = try buildQueryDatabase(devices: devices, path: path)
    print("store query: \(devices) devices, 7 days; database \(fileSize(path) / 1_000_000) MB (built or reused in \(fmt(monotonicSeconds() - t)) s: \(path))")
    let reader = try StoreReader(path: path)
    let week: Int64 = 7 * 86_400_000
    func time(_ runs: Int, _ body: () throws -> Void) rethrows -> [Double] {
        var out: [Double] = []
        for _ in 0..<runs {
            let s = monotonicSeconds()
            try body()
            out.append((monotonicSeconds() - s) * 1000)
        }
        return out
    }
    var windows = 0
    var events = 0
    let device7d = try time(200) {
        let h = try reader.snapshot { try reader.deviceHistory(target, fromMs: endMs - week, toMs: endMs) }!
        windows = h.windows.count
        events = h.timeline.count
    }
    // Baseline: the same 7 days from the per-minute table (what the query costs without device_hour).
    let minute7d = try time(20) {
        let s = try reader.connection.prepare("""
            WITH RECURSIVE b(v) AS (SELECT ?2 UNION ALL SELECT v + 1 FROM b WHERE v + 1 < ?3)
            SELECT count(*), sum(inferences), fw_sketch_agg(latency) FROM b JOIN device_minute m
            ON m.bucket = b.v AND m.dev = (SELECT dev FROM devices WHERE device_id = ?1)
            """)
        s.bind(1, target); s.bind(2, (endMs - week) / 60_000); s.bind(3, endMs / 60_000)
        _ = try s.step()
    }
    print("  query device \(target) --since 7d: p50 \(fmt(percentile(device7d, 0.5))) ms, p99 \(fmt(percentile(device7d, 0.99))) ms (\(windows) hourly windows, \(events) timeline events)   goal: p99 <= 5 ms")
    print("    baseline: the same 7 days from per-minute rows instead: p50 \(fmt(percentile(minute7d, 0.5))) ms; ratio \(fmt(percentile(minute7d, 0.5) / percentile(device7d, 0.5)))x")
    var cohorts = 0
    let fleet24h = try time(30) {
        cohorts = try reader.snapshot { try reader.fleet(fromMs: endMs - 86_400_000, toMs: endMs, by: ["model_version"]) }.count
    }
    let fleet24hByAll = try time(10) {
        _ = try reader.snapshot { try reader.fleet(fromMs: endMs - 86_400_000 + 17 * 60_000, toMs: endMs - 13 * 60_000, by: StoreReader.cohortLabels) }
    }
    // Baseline: the same window from minute rollups only (no hour rollups).
    let minuteOnly = try time(10) {
        let s = try reader.connection.prepare("SELECT cohort, sum(inferences), fw_sketch_agg(latency), fw_hist_agg(hist) FROM rollup_minute WHERE bucket >= ?1 AND bucket < ?2 GROUP BY cohort")
        s.bind(1, (endMs - 86_400_000) / 60_000); s.bind(2, endMs / 60_000)
        while try s.step() {}
    }
    print("  query fleet --by model_version --since 24h: p50 \(fmt(percentile(fleet24h, 0.5))) ms, p99 \(fmt(percentile(fleet24h, 0.99))) ms (\(cohorts) cohorts)   goal: <= 50 ms")
    print("    by all five cohort labels, ragged window edges: p50 \(fmt(percentile(fleet24hByAll, 0.5))) ms")
    print("    baseline: minute rollups alone for the rollup part: p50 \(fmt(percentile(minuteOnly, 0.5))) ms")
}
