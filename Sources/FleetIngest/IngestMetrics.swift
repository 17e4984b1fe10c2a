#if canImport(Glibc)
    import Glibc
#endif

/// The ingester's own counters and gauges, for `/metrics` (Prometheus text format).
///
/// Counters start from the values persisted in the database, so they survive restarts as
/// Prometheus expects of a `_total`. `@unchecked Sendable`: every field is guarded by `mutex`.
public final class IngestMetrics: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var received: Int64 = 0
    private var stored: Int64 = 0
    private var duplicates: Int64 = 0
    private var quarantined: [String: Int64] = [:]
    private var replaysRequested: Int64 = 0
    private var batches: Int64 = 0
    /// Commit latency histogram: upper bounds in seconds and cumulative-later counts.
    static let commitBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
    private var commitCounts = [Int64](repeating: 0, count: IngestMetrics.commitBuckets.count + 1)
    private var commitSum = 0.0
    private var connected = false
    private var openGaps: Int64 = 0
    private var devicesByState: [String: Int64] = [:]
    public var queueDepth: @Sendable () -> Int = { 0 }

    public init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return body()
    }

    public func seed(received: Int64, stored: Int64, duplicates: Int64, quarantined: [String: Int64], replaysRequested: Int64) {
        locked {
            self.received = received
            self.stored = stored
            self.duplicates = duplicates
            self.quarantined = quarantined
            self.replaysRequested = replaysRequested
        }
    }

    public func batch(received r: Int, stored s: Int, duplicates d: Int, quarantined q: [String: Int], commitSeconds: Double) {
        locked {
            received += Int64(r)
            stored += Int64(s)
            duplicates += Int64(d)
            for (k, v) in q { quarantined[k, default: 0] += Int64(v) }
            batches += 1
            commitSum += commitSeconds
            let i = Self.commitBuckets.firstIndex { commitSeconds <= $0 } ?? Self.commitBuckets.count
            commitCounts[i] += 1
        }
    }

    public func replays(_ n: Int) { locked { replaysRequested += Int64(n) } }
    public func setConnected(_ c: Bool) { locked { connected = c } }
    public func setOpenGaps(_ n: Int64) { locked { openGaps = n } }
    public func setDevices(_ byState: [String: Int64]) { locked { devicesByState = byState } }

    public struct Snapshot: Sendable {
        public var received, stored, duplicates, replaysRequested, batches, openGaps: Int64
        public var quarantined: [String: Int64]
        public var connected: Bool
    }

    public var snapshot: Snapshot {
        locked { Snapshot(received: received, stored: stored, duplicates: duplicates, replaysRequested: replaysRequested, batches: batches, openGaps: openGaps, quarantined: quarantined, connected: connected) }
    }

    /// The Prometheus text exposition format, version 0.0.4.
    public func render() -> String {
        let depth = queueDepth()
        return locked {
            var o = ""
            func metric(_ name: String, _ type: String, _ help: String, _ lines: [(String, String)]) {
                o += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
                for (labels, value) in lines { o += "\(name)\(labels) \(value)\n" }
            }
            metric("fleetwatch_ingest_received_total", "counter", "Messages received on telemetry topics.", [("", "\(received)")])
            metric("fleetwatch_ingest_stored_total", "counter", "Messages stored.", [("", "\(stored)")])
            metric("fleetwatch_ingest_duplicates_total", "counter", "Messages already stored (same device and seq).", [("", "\(duplicates)")])
            let families = ["oversize", "invalid_json", "unsupported_schema", "schema_violation", "device_id_mismatch", "future_timestamp", "rate_limited"]
            let keys = Array(Set(families).union(quarantined.keys)).sorted()
            metric("fleetwatch_ingest_quarantined_total", "counter", "Messages quarantined, by reason family.",
                   keys.map { ("{reason=\"\($0)\"}", "\(quarantined[$0] ?? 0)") })
            metric("fleetwatch_ingest_replays_requested_total", "counter", "Replay requests published for seq gaps.", [("", "\(replaysRequested)")])
            var cumulative: Int64 = 0
            var buckets: [(String, String)] = []
            for (i, le) in Self.commitBuckets.enumerated() {
                cumulative += commitCounts[i]
                buckets.append(("{le=\"\(le)\"}", "\(cumulative)"))
            }
            cumulative += commitCounts[Self.commitBuckets.count]
            buckets.append(("{le=\"+Inf\"}", "\(cumulative)"))
            o += "# HELP fleetwatch_ingest_batch_commit_seconds Time to commit one batch.\n# TYPE fleetwatch_ingest_batch_commit_seconds histogram\n"
            for (l, v) in buckets { o += "fleetwatch_ingest_batch_commit_seconds_bucket\(l) \(v)\n" }
            o += "fleetwatch_ingest_batch_commit_seconds_sum \(commitSum)\nfleetwatch_ingest_batch_commit_seconds_count \(cumulative)\n"
            metric("fleetwatch_ingest_queue_depth", "gauge", "Messages waiting between the network thread and the writer.", [("", "\(depth)")])
            metric("fleetwatch_ingest_open_gaps", "gauge", "Seq gaps not (yet) repaired.", [("", "\(openGaps)")])
            metric("fleetwatch_ingest_broker_connected", "gauge", "1 while connected to the broker.", [("", connected ? "1" : "0")])
            metric("fleetwatch_devices", "gauge", "Devices by presence state.",
                   ["online", "offline", "stale", "unknown"].map { ("{state=\"\($0)\"}", "\(devicesByState[$0] ?? 0)") })
            return o
        }
    }
}
