import FleetCore
import Foundation
import Testing

@testable import FleetStore
@testable import FleetTUI

@Suite struct SnapshotBuilderTests {
    func build(_ path: String, _ view: ViewKind, labels: [String] = ["model_version", "sku"], drill: String? = nil) throws -> Snapshot {
        let b = SnapshotBuilder(reader: try StoreReader(path: path))
        return try b.build(LoadRequest(view: view, cohortLabels: labels, drillDevice: drill), nowMs: t0 + 3_600_000)
    }

    @Test func headerAndCohortsMatchTheStoreQueries() throws {
        let db = TempDB()
        try fillFleet(db.path)
        let s = try build(db.path, .cohorts)
        #expect(s.status == .ok)
        let newest = try StoreReader(path: db.path).latestDataMs()
        #expect(s.asOfMs == newest.map { $0 + 1 })
        #expect(s.totalDevices == 12)
        #expect(s.devices(inState: "online") == 12)
        // Same numbers as `query fleet` over the same window.
        let reader = try StoreReader(path: db.path)
        let fleet = try reader.fleet(fromMs: s.asOfMs - 3_600_000, toMs: s.asOfMs, by: ["model_version", "sku"])
        #expect(s.cohorts.count == fleet.count)
        for (row, f) in zip(s.cohorts, fleet) {
            #expect(row.labels == f.labels.map(\.1))
            #expect(row.values == f.values)
            #expect(!row.series.isEmpty)
        }
        // Header totals from the minute rollups agree with the whole-fleet query.
        let all = try reader.fleet(fromMs: s.asOfMs - 3_600_000, toMs: s.asOfMs, by: [])[0].values
        #expect(s.signalTotals.inferences == all.inferences)
        #expect(s.signalTotals.errorRate == all.errorRate)
        #expect(s.signalTotals.latencyP95Ms == all.latencyP95Ms)
        #expect(s.signalTotals.crashFreeSessions == all.crashFreeSessions)
        #expect(s.newestVersionAdoption?.version == "1.5.0")
        #expect(abs((s.newestVersionAdoption?.share ?? 0) - 4.0 / 12.0) < 1e-9)
        #expect(s.alerts == [])  // the alert engine's table exists (schema v2) and is empty
        #expect(s.devices == nil && s.versions == nil)
    }

    @Test func devicesCarryRecentActivity() throws {
        let db = TempDB()
        try fillFleet(db.path)
        let s = try build(db.path, .devices)
        let devices = try #require(s.devices)
        #expect(devices.count == 12)
        let byID = Dictionary(uniqueKeysWithValues: devices.map { ($0.deviceID, $0) })
        let c0 = try #require(byID["cam-00"])
        #expect(c0.crashes == 1 && c0.errorEvents == 0)
        #expect(byID["cam-01"]?.errorEvents == 1)
        #expect(byID["cam-05"].map { abs(($0.errorRate ?? 0) - 0.1) < 1e-9 } == true)
        // p95 of the last 5 minutes equals the merged sketch of the device's minute rows.
        let reader = try StoreReader(path: db.path)
        for d in devices {
            let h = try #require(try reader.deviceHistory(d.deviceID, fromMs: s.asOfMs - 300_000, toMs: s.asOfMs))
            let inferences = h.windows.reduce(0) { $0 + $1.inferences }
            #expect(d.inferences == inferences)
            var merged = DDSketch()
            let s2 = try reader.connection.prepare("SELECT latency FROM device_minute WHERE dev = (SELECT dev FROM devices WHERE device_id = ?1) AND bucket >= ?2 AND bucket < ?3")
            s2.bind(1, d.deviceID); s2.bind(2, (s.asOfMs - 300_000) / 60_000); s2.bind(3, (s.asOfMs + 59_999) / 60_000)
            while try s2.step() { merged.merge(DDSketch(binary: s2.blob(0))!) }
            #expect(d.latencyP95Ms == merged.quantile(0.95).map { $0 / 1000 }, "\(d.deviceID)")
        }
        #expect((byID["cam-02"]?.latencyP95Ms ?? 0) > 140)
        // The header's registry counts from the device rows equal the SQL ones.
        let sql = try reader.registryCounts(seenSinceMs: s.asOfMs - 3_600_000)
        #expect(Set(s.registry.map { "\($0.state)|\($0.modelVersion)|\($0.seenInWindow)|\($0.devices)" }) == Set(sql.map { "\($0.state)|\($0.modelVersion)|\($0.seenInWindow)|\($0.devices)" }))
        let scan = try reader.registryScan().counts(seenSinceMs: s.asOfMs - 3_600_000)
        #expect(Set(scan.map { "\($0.state)|\($0.modelVersion)|\($0.seenInWindow)|\($0.devices)" }) == Set(sql.map { "\($0.state)|\($0.modelVersion)|\($0.seenInWindow)|\($0.devices)" }))
    }

    @Test func theDeviceWindowCacheGivesTheSameAnswers() throws {
        let db = TempDB()
        try fillFleet(db.path)
        let reader = try StoreReader(path: db.path)
        let cache = DeviceWindowCache()
        let to = t0
        let cold = try reader.deviceSummaries(recentFromMs: to - 300_000, eventsFromMs: to - 3_600_000, toMs: to)
        let first = try reader.deviceSummaries(recentFromMs: to - 300_000, eventsFromMs: to - 3_600_000, toMs: to, cache: cache, nowMs: 1)
        let warm = try reader.deviceSummaries(recentFromMs: to - 300_000, eventsFromMs: to - 3_600_000, toMs: to, cache: cache, nowMs: 2)
        #expect(cold == first && first == warm)
        #expect(cache.buckets.count == 5)
        #expect(cache.merged?.range.count == 3)
        // The registry is re-read incrementally: a new message and a new device show up.
        let patched = cache.minuteReads.patched
        let w = try StoreWriter(path: db.path)
        try w.write([Device(id: "cam-03").message(seq: 1000, at: to - 1000, records: [Device.inference(at: to - 1000, count: 10, errors: 5)]),
                     Device(id: "cam-99", version: "2.0.0").message(seq: 1, at: to - 500, records: [Device.inference(at: to - 500)])], receivedMs: t0 + 60_000)
        let after = try reader.deviceSummaries(recentFromMs: to - 300_000, eventsFromMs: to - 3_600_000, toMs: to, cache: cache, nowMs: 4)
        #expect(after.count == 13 && after.last?.deviceID == "cam-99" && after.last?.modelVersion == "2.0.0")
        #expect(after.first { $0.deviceID == "cam-03" }?.lastSeq == 1000)
        #expect(after == (try reader.deviceSummaries(recentFromMs: to - 300_000, eventsFromMs: to - 3_600_000, toMs: to)))
        // Only the changed devices' rows of the newest minutes were read again (the registry
        // says which); a change in the minute before the newest is picked up the same way.
        #expect(cache.minuteReads.patched == patched + 2)
        try w.write([Device(id: "cam-05").message(seq: 1001, at: to - 61_000, records: [Device.inference(at: to - 61_000, count: 40, errors: 20)])],
                    receivedMs: t0 + 61_000)
        let again = try reader.deviceSummaries(recentFromMs: to - 300_000, eventsFromMs: to - 3_600_000, toMs: to, cache: cache, nowMs: 4)
        #expect(cache.minuteReads.patched == patched + 4)
        #expect(again == (try reader.deviceSummaries(recentFromMs: to - 300_000, eventsFromMs: to - 3_600_000, toMs: to)))
        #expect(again != after)
        // After the first call, each refresh (warm, after, again) computed only the changed (and
        // new) devices' activity again.
        #expect(cache.activityReuse == (computed: 1, reused: 3))
        // Nothing written since: no row is read again, though the newest device still matches
        // the registry's `>=` mark and no device has a status time (NULL must not match).
        let rowsBefore = cache.minuteReads.patchedRows
        let still = try reader.deviceSummaries(recentFromMs: to - 300_000, eventsFromMs: to - 3_600_000, toMs: to, cache: cache, nowMs: 4)
        #expect(still == again)
        #expect(cache.minuteReads.patchedRows == rowsBefore)
        #expect(cache.activityReuse == (computed: 1, reused: 4))
        // A status change alone (no telemetry) reaches the table through the state mark.
        try w.setState(deviceID: "cam-07", online: false, tsMs: to - 100)
        let offline = try reader.deviceSummaries(recentFromMs: to - 300_000, eventsFromMs: to - 3_600_000, toMs: to, cache: cache, nowMs: 4)
        #expect(offline.first { $0.deviceID == "cam-07" }?.state == "offline")
        #expect(cache.minuteReads.patchedRows == rowsBefore + 2)
        #expect(offline == (try reader.deviceSummaries(recentFromMs: to - 300_000, eventsFromMs: to - 3_600_000, toMs: to)))
        // Error records: one in the newest minute counts at once; one in an older, cached minute
        // (late) counts once the cache is rebuilt.
        func errorEvents(_ rows: [StoreReader.DeviceSummary], _ id: String) -> Int64 { rows.first { $0.deviceID == id }!.errorEvents }
        let before = errorEvents(offline, "cam-04")
        try w.write([Device(id: "cam-04").message(seq: 1002, at: to - 1_000, records: [.error(ErrorRecord(tsMs: to - 1_000, code: "E", message: "m"))])],
                    receivedMs: t0 + 62_000)
        let newError = try reader.deviceSummaries(recentFromMs: to - 300_000, eventsFromMs: to - 3_600_000, toMs: to, cache: cache, nowMs: 4)
        #expect(errorEvents(newError, "cam-04") == before + 1)
        try w.write([Device(id: "cam-04").message(seq: 1003, at: to - 600_000, records: [.error(ErrorRecord(tsMs: to - 600_000, code: "E", message: "m"))])],
                    receivedMs: t0 + 63_000)
        let late = try reader.deviceSummaries(recentFromMs: to - 300_000, eventsFromMs: to - 3_600_000, toMs: to, cache: cache, nowMs: 4)
        #expect(errorEvents(late, "cam-04") == before + 1)
        let rebuilt = try reader.deviceSummaries(recentFromMs: to - 300_000, eventsFromMs: to - 3_600_000, toMs: to, cache: cache, nowMs: 4 + DeviceWindowCache.maxAgeMs + 1)
        #expect(errorEvents(rebuilt, "cam-04") == before + 2)
        #expect(rebuilt == (try reader.deviceSummaries(recentFromMs: to - 300_000, eventsFromMs: to - 3_600_000, toMs: to)))
        // A moved window evicts the buckets it left.
        _ = try reader.deviceSummaries(recentFromMs: to - 120_000, eventsFromMs: to - 3_600_000, toMs: to, cache: cache, nowMs: 5 + DeviceWindowCache.maxAgeMs)
        #expect(cache.buckets.count == 2)
    }

    @Test func versionHistoryCountsEachDeviceOncePerSliceAndVersion() throws {
        let db = TempDB()
        try fillFleet(db.path, devices: 30, minutes: 30)
        // Upgrades part-way (a second stretch in another cohort), a gap (two stretches in one
        // cohort), and a device on two SKUs of one version (two cohorts, counted once).
        let w = try StoreWriter(path: db.path)
        var items: [TelemetryMessage] = []
        for k in 0..<20 {
            let ts = t0 + 60_000 + Int64(k) * 30_000
            items.append(Device(id: "cam-01", version: "1.6.0").message(seq: 5000 + Int64(k), at: ts, records: [Device.inference(at: ts)]))
            items.append(Device(id: "cam-02", sku: k % 2 == 0 ? "orin-nano-8g" : "xavier-nx").message(seq: 5000 + Int64(k), at: ts, records: [Device.inference(at: ts)]))
            if k > 12 { items.append(Device(id: "cam-03").message(seq: 5000 + Int64(k), at: ts + 3_600_000, records: [Device.inference(at: ts + 3_600_000)])) }
        }
        try w.write(items, receivedMs: t0 + 5_000_000)
        let reader = try StoreReader(path: db.path)
        let from = t0 - 40 * 60_000, to = t0 + 80 * 60_000
        for slices in [1, 7, 48, 64, 65, 200] {
            let h = try reader.versionHistory(fromMs: from, toMs: to, buckets: slices)
            // Brute force in SQL, slice by slice.
            var expected: [String: [Int]] = [:]
            for b in 0..<slices {
                let lo = from + Int64(b) * h.bucketMs, hi = min(to, lo + h.bucketMs)
                guard lo < to else { break }
                let q = try reader.connection.statement("""
                    SELECT c.model_version, count(DISTINCT p.dev) FROM presence p JOIN cohorts c USING(cohort)
                    WHERE p.last_ms >= ?1 AND p.first_ms < ?2 AND p.last_ms >= ?3 AND p.first_ms < ?4 GROUP BY 1
                    """)
                q.bind(1, lo); q.bind(2, hi); q.bind(3, from); q.bind(4, to)
                while try q.step() { expected[q.text(0), default: [Int](repeating: 0, count: slices)][b] = Int(q.int(1)) }
            }
            #expect(h.devices == expected, "slices \(slices)")
            #expect(Set(h.devices.keys) == ["1.4.0", "1.5.0", "1.6.0"])
        }
    }

    @Test func driftBaselinesAreReusedForAMinuteOfDataTime() throws {
        let db = TempDB()
        try fillFleet(db.path, devices: 4, minutes: 150)
        let reader = try StoreReader(path: db.path)
        reader.baselineReuseMs = 60_000
        let baseline = DriftBaseline.first(durationMs: 3_600_000)
        func psi(_ r: StoreReader, to: Int64) throws -> [Double?] {
            try r.fleet(fromMs: to - 3_600_000, toMs: to, by: ["model_version"], baseline: baseline).map { $0.values.confidencePSI }
        }
        let before = try psi(reader, to: t0)
        #expect(before.contains { $0 != nil })
        // Late data lands in the reference hour (the first of the fill) with another shape.
        let w = try StoreWriter(path: db.path)
        var late: [TelemetryMessage] = []
        for d in 0..<4 {
            let ts = t0 - 140 * 60_000 + Int64(d)
            var hist = [Int64](repeating: 0, count: 10)
            hist[1] = 5_000
            late.append(Device(id: String(format: "cam-%02d", d), version: d % 3 == 0 ? "1.5.0" : "1.4.0").message(seq: 90_000, at: ts, records: [
                .inference(InferenceRecord(tsMs: ts, windowMs: 10_000, count: 5_000, errors: 0, latencyUs: DDSketch(), confidenceHist: hist, classCounts: []))]))
        }
        try w.write(late, receivedMs: t0)
        let fresh = try StoreReader(path: db.path)
        #expect(try psi(fresh, to: t0) != before)
        // Within a minute of data time the merged baseline is reused; past it, read again.
        let cached = try psi(reader, to: t0 + 30_000)
        #expect(cached != (try psi(StoreReader(path: db.path), to: t0 + 30_000)))
        let reread = try psi(reader, to: t0 + 61_000)
        #expect(reread == (try psi(fresh, to: t0 + 61_000)))
    }

    @Test func quantilesOverManySketchesMatchDDSketchMerge() throws {
        var rng = SplitMix64(seed: 7)
        for trial in 0..<200 {
            var merged = DDSketch()
            var acc = LatencyAccumulator()
            var scratch = LatencyAccumulator.Scratch()
            var cols = DeviceWindowCache.Columns()
            cols.keyStart.append(0)
            let parts = 1 + Int(rng.next() % 6)
            for p in 0..<parts {
                var s = DDSketch()
                let wide = trial % 5 == 0  // keys spanning more than the dense window
                for _ in 0..<(1 + Int(rng.next() % 300)) {
                    let v = wide ? exp(Double(rng.next() % 2000) / 100) : 10_000 + Double(rng.next() % 20_000)
                    s.insert(v)
                }
                merged.merge(s)
                let blob = s.encodedBinary()
                blob.withUnsafeBytes { acc.add($0, scratch: &scratch) }
                cols.devs.append(Int64(p))
                cols.inferences.append(0); cols.errors.append(0); cols.samples.append(0); cols.tempSum.append(0); cols.cpuSum.append(0)
                let n = blob.withUnsafeBytes { DeviceWindowCache.decodeSketch($0, keys: &cols.keys, counts: &cols.counts) }
                cols.sketchCount.append(n)
                cols.keyStart.append(Int32(cols.keys.count))
            }
            let bucket = DeviceWindowCache.Bucket(bucket: 0, cols)
            let runs = (0..<parts).map { (bucket: 0, from: Int(cols.keyStart[$0]), to: Int(cols.keyStart[$0 + 1])) }
            var heads: [Int] = []
            var dense: [Double] = []
            for q in [0.0, 0.5, 0.95, 0.99, 1.0] {
                #expect(acc.quantile(q) == merged.quantile(q), "trial \(trial) q \(q)")
                let r = withExtendedLifetime(bucket) {
                    StoreReader.quantile(q, runs: runs, views: [bucket.view], total: merged.count, heads: &heads, dense: &dense)
                }
                #expect(r == merged.quantile(q), "trial \(trial) q \(q) runs")
            }
        }
        // Malformed blobs are skipped whole.
        var keys: [Int32] = [], counts: [Int64] = []
        #expect([UInt8](repeating: 0xff, count: 40).withUnsafeBytes { DeviceWindowCache.decodeSketch($0, keys: &keys, counts: &counts) } == 0)
        #expect(keys.isEmpty)
    }

    @Test func drillDownVersionsAndAlerts() throws {
        let db = TempDB()
        try fillFleet(db.path)
        let d = try build(db.path, .devices, drill: "cam-02")
        let drill = try #require(d.drill)
        #expect(drill.history?.timeline.contains { $0.kind == "deploy" } == true)
        #expect(drill.windows.count == 20)
        let missing = try build(db.path, .devices, drill: "nope")
        #expect(missing.drill?.history == nil)

        let v = try build(db.path, .versions)
        let versions = try #require(v.versions)
        #expect(versions.devices["1.4.0"]?.last == 8 && versions.devices["1.5.0"]?.last == 4)
        #expect(versions.deploys["1.5.0"]?.rolledBack == 1)
        let rows = TableSpecs.versionRows(v)
        #expect(rows.map(\.version) == ["1.5.0", "1.4.0"])
        #expect(rows[0].rollbackRate == 1)

        // The alert engine's table, as issue 5 describes it.
        let w = try StoreWriter(path: db.path)
        try w.connection.execute("""
            INSERT INTO alerts(fingerprint, rule_group, alertname, severity, state, labels, annotations, value, active_at, fired_at, resolved_at, last_true_at, updated_at)
            VALUES('f1', 'g', 'CrashFreeSessionsLow', 'page', 'firing', '{"model_version":"1.5.0","alertname":"CrashFreeSessionsLow"}', '{"summary":"low"}', 0.98, \(t0 - 600_000), '2025-11-29T11:55:00Z', NULL, 0, 0);
            INSERT INTO alerts(fingerprint, rule_group, alertname, severity, state, labels, annotations, value, active_at, fired_at, resolved_at, last_true_at, updated_at)
            VALUES('f2', 'g', 'Old', 'ticket', 'resolved', 'not json', '', NULL, 1, NULL, 2, 0, 0);
            INSERT INTO alert_history(fingerprint, active_at, rule_group, alertname, severity, labels, annotations, value, fired_at, resolved_at)
            VALUES('f2', 1, 'g', 'Old', 'ticket', 'not json', '', NULL, NULL, 2);
            """)
        let a = try build(db.path, .alerts)
        let alerts = try #require(a.alerts)
        #expect(alerts.count == 2)
        let firing = alerts[0]
        #expect(firing.alertname == "CrashFreeSessionsLow" && firing.severity == "page" && firing.value == 0.98)
        #expect(firing.labels.map(\.0) == ["alertname", "model_version"])
        #expect(firing.annotations.first?.1 == "low")
        #expect(firing.activeAtMs == t0 - 600_000 && firing.firedAtMs == t0 - 300_000)
        #expect(alerts[1].labels.isEmpty && alerts[1].resolvedAtMs == 2)
        // Resolved ones come from the history, which keeps them after the engine lets them go.
        try w.connection.execute("DELETE FROM alerts WHERE state = 'resolved'")
        #expect(try build(db.path, .alerts).alerts?.map(\.alertname) == ["CrashFreeSessionsLow", "Old"])
        // A database from before the alert engine has no table: nil, not an error.
        try w.connection.execute("DROP TABLE alerts")
        #expect(try build(db.path, .alerts).alerts == nil)
    }

    @Test func missingAndEmptyDatabasesBecomeUnavailableSnapshots() throws {
        let dir = TempDB()
        let wake = try WakePipe()
        let path = dir.path
        let loader = try SnapshotLoader(dbPath: path, refreshMs: 50, request: LoadRequest(view: .cohorts, cohortLabels: ["model_version"]), uiWake: wake, clock: { t0 })
        loader.start()
        defer { loader.stop() }
        func next() -> Snapshot? {
            let deadline = Date().addingTimeInterval(5)
            while Date() < deadline {
                if let s = loader.take() { return s }
                usleep(10_000)
            }
            return nil
        }
        let first = try #require(next())
        guard case .unavailable(let why) = first.status else { Issue.record("\(first.status)"); return }
        #expect(why.contains("no database at") && why.contains("fleetwatch ingest"))
        // The database appears: the loader opens it by itself.
        try fillFleet(path, devices: 2, minutes: 2)
        // (It can first see the schema committed before the rows: wait for the rows.)
        var s = try #require(next())
        while s.status != .ok || s.totalDevices < 2 { s = try #require(next()) }
        #expect(s.totalDevices == 2)
        // A request change reloads at once, with the view's data.
        loader.request(LoadRequest(view: .devices, cohortLabels: ["model_version"]))
        let d = try #require(next())
        #expect(d.devices?.count == 2)
        #expect(!wake.drain().isEmpty)
    }
}
