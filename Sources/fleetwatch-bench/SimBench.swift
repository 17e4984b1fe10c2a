import FleetIngest
import FleetSim
import FleetStore
import Foundation

/// `sim-scale`: N simulated devices at one message per device per 10 s with real inference,
/// through a real mosquitto into the real ingester, on this machine. Does the simulator keep
/// its schedule, and does the ingester keep up (lag bounded)?
///
/// Baseline in the same run: the EdgeRuntime's own inference rate on the simulator's model in
/// a tight loop (one thread), against which the simulator's inference cost is put.
func benchSimScale() throws {
    let devices = Int(option("--devices") ?? "10000") ?? 10_000
    let seconds = Double(option("--seconds") ?? "120") ?? 120
    let inferences = Int(option("--inferences") ?? "20") ?? 20
    let threads = option("--threads") ?? "2"
    let dir = NSTemporaryDirectory() + "fw-simbench-\(getpid())"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }

    // Baseline: raw inference on the same model, one thread.
    let models = try SimModels(versions: [Scenario.currentVersion], seed: 1)
    let engine = SimInference(models: models)
    var sampler = InputSampler(seed: 3)
    let raw = rate(seconds: 3) {
        for _ in 0..<1000 { sink &+= engine.infer(Scenario.currentVersion, &sampler, shift: 0)?.classIndex ?? 0 }
        return 1000
    }
    print("sim-scale: \(devices) devices, one message per device per 10 s, \(inferences) real inferences each, \(Int(seconds)) s; simulator, broker and ingester share 2 cores")
    print("  baseline: EdgeRuntime MLP 64-128-64-10 alone, one thread: \(fmt(raw)) inferences/s (sampling inputs included)")

    // Every process may hold one descriptor per device and then some.
    var lim = rlimit()
    getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &lim)
    lim.rlim_cur = lim.rlim_max
    setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &lim)

    let port = try Loopback.freePort()
    let conf = dir + "/mosquitto.conf"
    try "listener \(port) 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\nmax_inflight_messages 0\npersistence false\n".write(toFile: conf, atomically: true, encoding: .utf8)
    let broker = try ChildProcess("/usr/sbin/mosquitto", ["-c", conf], logPath: dir + "/mosquitto.log")
    defer { broker.signal(SIGTERM); _ = broker.wait() }
    guard Loopback.waitForPort(port, seconds: 10) else { throw SpawnError(description: "mosquitto did not listen on \(port)") }

    let exe = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("fleetwatch").path
    let db = dir + "/fleet.db"
    let ingestLog = dir + "/ingest.log"
    let ingester = try ChildProcess(exe, ["ingest", "--broker", "127.0.0.1:\(port)", "--db", db, "--client-id", "bench-ingest", "--rules", "alerts.yaml"], logPath: ingestLog)
    defer { ingester.signal(SIGTERM); _ = ingester.wait() }
    while !((try? String(contentsOfFile: ingestLog, encoding: .utf8))?.contains("connected to broker") ?? false) { usleep(20_000) }

    let simLog = dir + "/sim.log"
    let t0 = monotonicSeconds()
    let sim = try ChildProcess(exe, [
        "simulate", "--broker", "127.0.0.1:\(port)", "--devices", "\(devices)", "--duration", "\(Int(seconds))s",
        "--inferences", "\(inferences)", "--threads", threads,
    ], logPath: simLog)

    let reader = try StoreReader(path: db)
    func cpuSeconds(_ pid: pid_t) -> Double {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = s.lastIndex(of: ")")
        else { return 0 }
        let f = s[s.index(after: close)...].split(separator: " ")
        // Fields after the command: state is [0]; utime [11], stime [12] (clock ticks).
        guard f.count > 12, let u = Double(f[11]), let k = Double(f[12]) else { return 0 }
        return (u + k) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
    // Samples every 5 s: what the fleet should have sent by then vs what the ingester has.
    var samples: [(t: Double, offered: Double, received: Int64)] = []
    let warmup = 15.0
    var cpuAtWarmup: (Double, Double, Double)?
    var receivedAtWarmup: Int64 = 0
    while monotonicSeconds() - t0 < seconds {
        usleep(5_000_000)
        let t = monotonicSeconds() - t0
        let received = (try? reader.ingestCounters().received) ?? 0
        samples.append((t, Double(devices) * t / 10, received))
        if cpuAtWarmup == nil && t >= warmup {
            cpuAtWarmup = (cpuSeconds(sim.pid), cpuSeconds(ingester.pid), cpuSeconds(broker.pid))
            receivedAtWarmup = received
        }
        print(String(format: "  t=%5.0fs  offered %8.0f  ingested %8d  behind %6.0f", t, Double(devices) * t / 10, received, Double(devices) * t / 10 - Double(received)))
    }
    let tEnd = monotonicSeconds() - t0
    let cpuEnd = (cpuSeconds(sim.pid), cpuSeconds(ingester.pid), cpuSeconds(broker.pid))
    let receivedEnd = (try? reader.ingestCounters().received) ?? 0
    let simStatus = sim.wait()
    let simOut = (try? String(contentsOfFile: simLog, encoding: .utf8)) ?? ""
    let summary = simOut.split(separator: "\n").last { $0.hasPrefix("SIMULATED") }.map(String.init) ?? "(no SIMULATED line; simulator exit \(simStatus))"
    var values: [String: Double] = [:]
    for kv in summary.split(separator: " ") {
        let p = kv.split(separator: "=")
        if p.count == 2, let v = Double(p[1]) { values[String(p[0])] = v }
    }
    // Drain: everything the broker acknowledged reaches the database.
    let acked = Int64(values["acknowledged"] ?? 0)
    let drainStart = monotonicSeconds()
    while ((try? reader.ingestCounters().received) ?? 0) < acked && monotonicSeconds() - drainStart < 60 { usleep(100_000) }
    let drained = monotonicSeconds() - drainStart
    let finalReceived = (try? reader.ingestCounters().received) ?? 0

    let span = tEnd - warmup
    let w = cpuAtWarmup ?? (0, 0, 0)
    let cpu = ((cpuEnd.0 - w.0) / span * 100, (cpuEnd.1 - w.1) / span * 100, (cpuEnd.2 - w.2) / span * 100)
    let ingestRate = Double(receivedEnd - receivedAtWarmup) / span
    let offeredRate = Double(devices) / 10
    let behind = samples.filter { $0.t >= warmup }.map { $0.offered - Double($0.received) }
    let simInfPerCPUSecond = (values["inferences"] ?? 0) / max(0.001, cpuEnd.0)
    print("  \(summary)")
    print("  steady state (after \(Int(warmup)) s): offered \(fmt(offeredRate)) msgs/s, ingested \(fmt(ingestRate)) msgs/s = \(fmt(ingestRate / offeredRate)) of offered")
    print("  ingest backlog (offered - ingested) after warm-up: first \(fmt(behind.first ?? 0)), last \(fmt(behind.last ?? 0)), max \(fmt(behind.max() ?? 0)) messages; drained in \(fmt(drained)) s after the fleet stopped (\(finalReceived) of \(acked) acknowledged)")
    print("  simulator schedule: max lag \(Int(values["max_lag_ms"] ?? -1)) ms behind due")
    print("  CPU: simulator \(fmt(cpu.0))%, ingester \(fmt(cpu.1))%, mosquitto \(fmt(cpu.2))% (of one core; 200% = the machine)")
    print("  simulator inference: \(fmt(simInfPerCPUSecond)) inferences per simulator CPU-second = \(fmt(simInfPerCPUSecond / raw)) of the bare runtime's rate (the rest: telemetry, MQTT, sessions)")
}
