import FleetCore
import FleetIngest
import FleetRules
import FleetStore
import Foundation

// MARK: - Alert evaluation

/// 20 rules (the shipped nine plus warning tiers and other cuts of the same signals) over the
/// store-query database (10k devices, 7 days), evaluated as `ingest --rules` does: one cycle =
/// every group due at one event time. Baseline in the same run: the same engine with query
/// sharing off (each rule queries the store on its own, as before the per-cycle cache).
let benchRules = """
    receivers:
      - name: oncall
        webhook: {url: "http://127.0.0.1:9/hook"}
    groups:
      - name: reliability
        interval: 30s
        rules:
          - {alert: CrashFreeSessionsLow, signal: crash_free_sessions, by: [model_version, sku], window: 1h, op: "<", threshold: 0.995, min_samples: 50, for: 5m, keep_firing_for: 10m, severity: page, receivers: [oncall]}
          - {alert: CrashFreeSessionsWarn, signal: crash_free_sessions, by: [model_version, sku], window: 1h, op: "<", threshold: 0.999, min_samples: 50, for: 15m, receivers: [oncall]}
          - {alert: CrashFreeDevicesLow, signal: crash_free_devices, by: [model_version, sku], window: 1h, op: "<", threshold: 0.99, min_samples: 20, for: 10m, receivers: [oncall]}
          - {alert: CrashFreeSessionsFleet, signal: crash_free_sessions, window: 1h, op: "<", threshold: 0.99, min_samples: 100, for: 5m, receivers: [oncall]}
          - {alert: InferenceErrorRateHigh, signal: error_rate, by: [model_version, sku], window: 15m, op: ">", threshold: 0.02, min_samples: 1000, for: 5m, severity: page, receivers: [oncall]}
          - {alert: InferenceErrorRateWarn, signal: error_rate, by: [model_version, sku], window: 15m, op: ">", threshold: 0.01, min_samples: 1000, for: 15m, receivers: [oncall]}
          - {alert: InferenceLatencyP95High, signal: latency_p95_ms, by: [model_version, sku], window: 15m, op: ">", threshold: 50, min_samples: 1000, for: 5m, receivers: [oncall]}
          - {alert: InferenceLatencyP99High, signal: latency_p99_ms, by: [sku, model_version], window: 15m, op: ">", threshold: 120, min_samples: 1000, for: 5m, receivers: [oncall]}
          - {alert: InferenceLatencyP50High, signal: latency_p50_ms, by: [model_version, sku], window: 1h, op: ">", threshold: 30, min_samples: 1000, for: 15m, receivers: [oncall]}
      - name: model-quality
        interval: 1m
        rules:
          - {alert: ConfidenceDriftPSI, signal: confidence_psi, by: [model_version, sku], window: 1h, op: ">", threshold: 0.2, min_samples: 5000, for: 15m, receivers: [oncall]}
          - {alert: ConfidenceDriftJS, signal: confidence_js, by: [model_version, sku], window: 1h, op: ">", threshold: 0.15, min_samples: 5000, for: 15m, receivers: [oncall]}
          - {alert: ClassMixDrift, signal: class_mix_psi, by: [model_version, sku], window: 1h, op: ">", threshold: 0.2, min_samples: 5000, for: 15m, receivers: [oncall]}
          - {alert: ConfidenceDriftVsStable, signal: confidence_psi, by: [model_version], baseline: "version:1.4.0", window: 1h, op: ">", threshold: 0.25, min_samples: 5000, for: 15m, receivers: [oncall]}
      - name: rollouts
        interval: 1m
        rules:
          - {alert: RolloutStalled, signal: version_adoption, target: latest, window: 1h, op: "<", threshold: 0.9, min_samples: 20, for: 6h, receivers: [oncall]}
          - {alert: RolloutStalledPerSku, signal: version_adoption, by: [sku], target: latest, window: 1h, op: "<", threshold: 0.8, min_samples: 20, for: 6h, receivers: [oncall]}
          - {alert: DeployRollbacksHigh, signal: rollback_rate, by: [model_version], window: 1h, op: ">", threshold: 0.05, min_samples: 20, severity: page, receivers: [oncall]}
      - name: fleet-health
        interval: 30s
        rules:
          - {alert: DevicesOffline, signal: offline_ratio, stale_after: 5m, window: 5m, op: ">", threshold: 0.1, min_samples: 10, for: 5m, severity: page, receivers: [oncall]}
          - {alert: DevicesOfflinePerSku, signal: offline_devices, by: [sku], stale_after: 5m, window: 5m, op: ">", threshold: 50, min_samples: 10, for: 5m, receivers: [oncall]}
          - {alert: ThermalThrottling, signal: throttle_rate, by: [sku], window: 1h, op: ">", threshold: 2, min_samples: 5, for: 15m, receivers: [oncall]}
          - {alert: ThermalThrottlingFirmware, signal: throttle_rate, by: [sku, firmware], window: 1h, op: ">", threshold: 2, min_samples: 5, for: 15m, receivers: [oncall]}
    """

func benchAlertsEval() throws {
    let devices = Int(option("--devices") ?? "10000") ?? 10_000
    let cycles = Int(option("--cycles") ?? "20") ?? 20
    let dir = ProcessInfo.processInfo.environment["BENCH_DIR"] ?? NSTemporaryDirectory()
    let path = (dir as NSString).appendingPathComponent("bench-query-\(devices).db")
    let t = monotonicSeconds()
    let (_, endMs) = try buildQueryDatabase(devices: devices, path: path)
    let rules: RulesFile
    switch RulesParser.parse(benchRules, file: "bench-rules.yaml") {
    case .success(let r): rules = r
    case .failure(let e): throw StoreError("bench rules: \(e)")
    }
    print("alerts eval: \(rules.allRules.count) rules in \(rules.groups.count) groups over \(devices) devices, 7 days of data (database built or reused in \(fmt(monotonicSeconds() - t)) s: \(path))")
    let writer = try StoreWriter(path: path)
    // Each cycle one minute later: every group is due every time.
    func run(share: Bool) throws -> (times: [Double], stats: AlertEngine.CycleStats, firing: Int) {
        let engine = try AlertEngine(rules: rules, dbPath: path, writer: writer)
        engine.shareQueries = share
        var times: [Double] = []
        for i in 0...cycles {
            let now = endMs - Int64(cycles - i) * 60_000
            let s = monotonicSeconds()
            try engine.evaluate(nowMs: now)
            if i > 0 { times.append((monotonicSeconds() - s) * 1000) }  // the first warms the caches
        }
        let firing = engine.currentAlerts.filter { $0.instance.phase != .resolved }.count
        try writer.connection.execute("DELETE FROM alerts; DELETE FROM outbox;")
        return (times, engine.lastCycle, firing)
    }
    let baseline = try run(share: false)
    let shared = try run(share: true)
    func line(_ name: String, _ r: (times: [Double], stats: AlertEngine.CycleStats, firing: Int)) -> String {
        "\(name): p50 \(fmt(percentile(r.times, 0.5))) ms, p95 \(fmt(percentile(r.times, 0.95))) ms per cycle (\(r.stats.rules) rules, \(r.stats.queries) store queries, \(r.stats.shared) shared; \(r.firing) alerts pending/firing)"
    }
    print("  " + line("shared per-cycle queries", shared) + "   goal: <= 50 ms")
    print("    baseline, each rule on its own: " + line("", baseline).dropFirst(2))
    print("    ratio: \(fmt(percentile(baseline.times, 0.5) / percentile(shared.times, 0.5)))x faster (p50)")
}
