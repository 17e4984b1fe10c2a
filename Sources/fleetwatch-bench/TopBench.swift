import FleetCore
import FleetStore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - fleetwatch top

/// `fleetwatch-bench top [--devices N] [--frames F] [--idle-seconds S]`
///
/// Frame time of `fleetwatch top` at N devices (default 10k, the store-query database) and its
/// CPU use while idle on that static database, each against a baseline measured in the same run:
///
/// - frame: snapshot query + layout + render into a real ncurses screen (`newterm` on /dev/null),
///   by the `fleetwatch` binary next to this one (`top --bench-frames`, hidden); baseline: the
///   store queries a CLI user would run for the same screens (`query fleet --since 1h` and the
///   device list), in this process.
/// - idle CPU: `fleetwatch top` in a detached 160x48 tmux session, utime+stime from
///   /proc/PID/stat over S seconds (default 30) after a 5 s warm-up; baseline: procps `top -d 2`
///   (the same refresh interval) measured the same way.
///
/// Run in release after `swift build -c release` (both binaries):
///   swift build -c release && .build/release/fleetwatch-bench top
func benchTop() throws {
    let devices = Int(option("--devices") ?? "10000") ?? 10_000
    let frames = Int(option("--frames") ?? "50") ?? 50
    let idleSeconds = Double(option("--idle-seconds") ?? "30") ?? 30
    // A live fleet reporting every 10 s, seen by a 2-s refresh: a fifth of the devices changed.
    let churn = Int(option("--churn") ?? String(devices / 5)) ?? devices / 5
    let binDir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    let fleetwatch = binDir.appendingPathComponent("fleetwatch").path
    guard FileManager.default.isExecutableFile(atPath: fleetwatch) else {
        FileHandle.standardError.write(Data("no fleetwatch binary next to this one (\(fleetwatch)): run 'swift build -c release' first\n".utf8))
        exit(1)
    }
    let dir = ProcessInfo.processInfo.environment["BENCH_DIR"] ?? NSTemporaryDirectory()
    let path = (dir as NSString).appendingPathComponent("bench-query-\(devices).db")
    let t = monotonicSeconds()
    let (_, endMs) = try buildQueryDatabase(devices: devices, path: path)
    print("top: \(devices) devices, database \(fileSize(path) / 1_000_000) MB (built or reused in \(fmt(monotonicSeconds() - t)) s: \(path))")

    // Baseline: the same data through the store's CLI queries, warm connection.
    let reader = try StoreReader(path: path)
    var baseline: [Double] = []
    for i in 0..<(frames + 1) {
        let s = monotonicSeconds()
        try reader.snapshot {
            sink &+= try reader.fleet(fromMs: endMs - 3_600_000, toMs: endMs, by: ["model_version", "sku"]).count
            sink &+= try reader.allDevices().count
        }
        if i > 0 { baseline.append((monotonicSeconds() - s) * 1000) }
    }
    let base = percentile(baseline, 0.5)
    print("  baseline: query fleet --since 1h --by model_version,sku + the device list: p50 \(fmt(base)) ms, p95 \(fmt(percentile(baseline, 0.95))) ms")

    // Frames, by the real binary.
    let r = try TopSpawn.run([fleetwatch, "top", "--db", path, "--bench-frames", String(frames), "--bench-size", "160x48",
                              "--bench-views", "cohorts,devices,alerts,versions", "--bench-churn", String(churn)], timeout: 600)
    guard r.status == 0 else {
        FileHandle.standardError.write(Data("fleetwatch top --bench-frames failed (\(r.status)): \(r.stderr)\n".utf8))
        exit(1)
    }
    print("  frame = snapshot query + layout + render into ncurses (160x48, newterm on /dev/null); each frame scrolls a page;")
    print("  before each refresh frame \(churn) devices' registry rows are touched (a live fleet: they are read again)")
    print("    view      refresh frame p50 / p95 (query + layout + render)        keypress frame p50 / p95   30-s rebuild p50   first frame (cold)")
    var worst = 0.0
    for line in r.stdout.split(separator: "\n") {
        guard let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
            let view = o["view"] as? String, let refresh = o["refresh"] as? [String: Any], let key = o["keypress"] as? [String: Any]
        else { continue }
        func p(_ phase: [String: Any], _ name: String, _ q: String) -> Double { ((phase[name] as? [String: Any])?[q] as? Double) ?? .nan }
        let total50 = p(refresh, "total", "p50"), total95 = p(refresh, "total", "p95")
        worst = max(worst, total50)
        print("    " + view.padding(toLength: 9, withPad: " ", startingAt: 0)
              + " \(fmt(total50)) / \(fmt(total95)) ms (\(fmt(p(refresh, "query", "p50"))) + \(fmt(p(refresh, "layout", "p50"))) + \(fmt(p(refresh, "render", "p50"))))"
              .padding(toLength: 56, withPad: " ", startingAt: 0)
              + " \(fmt(p(key, "total", "p50"))) / \(fmt(p(key, "total", "p95"))) ms".padding(toLength: 27, withPad: " ", startingAt: 0)
              + " \(fmt(p((o["rebuild"] as? [String: Any]) ?? [:], "total", "p50"))) ms".padding(toLength: 19, withPad: " ", startingAt: 0)
              + " \(fmt((o["first_frame_ms"] as? Double) ?? .nan)) ms")
    }
    print("  slowest view's refresh frame p50 \(fmt(worst)) ms = \(fmt(worst / base))x the baseline   goal: <= 16 ms at 10k devices")

    // Idle CPU on the static database.
    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/tmux") else {
        print("  idle CPU: skipped (needs tmux)")
        return
    }
    let ours = try idleCPU(command: "exec \(shq(fleetwatch)) top --db \(shq(path))", seconds: idleSeconds)
    let top = try idleCPU(command: "exec top -d 2", seconds: idleSeconds)
    print("  idle CPU over \(fmt(idleSeconds)) s (utime+stime from /proc/PID/stat, 160x48 tmux, static database):")
    print("    fleetwatch top: \(String(format: "%.3f", ours))% of a core   baseline procps 'top -d 2': \(String(format: "%.3f", top))%   goal: < 1%")
}

/// CPU use of `command` (run by sh in a detached tmux session; it should `exec` the program so
/// the pane's pid is the program's) over `seconds`, after a 5 s warm-up, in percent of one core.
func idleCPU(command: String, seconds: Double) throws -> Double {
    let socket = "fwbench-\(getpid())-\(Int.random(in: 0..<1_000_000))"
    func tmux(_ args: [String]) throws -> String {
        let r = try TopSpawn.run(["tmux", "-L", socket] + args, timeout: 15)
        guard r.status == 0 else { throw StoreError("tmux \(args.first ?? ""): \(r.stderr)") }
        return r.stdout
    }
    _ = try tmux(["-f", "/dev/null", "new-session", "-d", "-s", "bench", "-x", "160", "-y", "48", "sh", "-c", command])
    defer { _ = try? tmux(["kill-server"]) }
    guard let pid = Int32(try tmux(["display-message", "-p", "-t", "bench", "#{pane_pid}"]).trimmingCharacters(in: .whitespacesAndNewlines)) else {
        throw StoreError("no pane pid")
    }
    usleep(5_000_000)
    let t0 = processCPUSeconds(pid)
    let w0 = monotonicSeconds()
    usleep(UInt32(seconds * 1_000_000))
    let used = processCPUSeconds(pid) - t0
    return used / (monotonicSeconds() - w0) * 100
}

func shq(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

/// Child processes by posix_spawnp + waitpid, output through files (tmux daemonises a server
/// that would hold any pipe open, and Foundation's Process misses its client's exit).
enum TopSpawn {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func run(_ argv: [String], timeout: Double) throws -> Result {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fwbench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let outPath = dir.appendingPathComponent("out").path
        let errPath = dir.appendingPathComponent("err").path
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in [SIGHUP, SIGINT, SIGTERM, SIGPIPE] { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        let env = ProcessInfo.processInfo.environment.filter { !["TMUX", "LANG", "LC_ALL", "NO_COLOR"].contains($0.key) }
            .map { "\($0.key)=\($0.value)" } + ["LANG=C.UTF-8", "LC_ALL=C.UTF-8"]
        var cArgs = argv.map { strdup($0) } + [nil]
        var cEnv = env.map { strdup($0) } + [nil]
        defer {
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, argv[0], &actions, &attr, &cArgs, &cEnv)
        guard rc == 0 else { throw StoreError("cannot run \(argv[0]): errno \(rc)") }
        var status: Int32 = 0
        let deadline = monotonicSeconds() + timeout
        while waitpid(pid, &status, WNOHANG) == 0 {
            if monotonicSeconds() > deadline {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                throw StoreError("\(argv[0]) did not finish in \(timeout) s")
            }
            usleep(5_000)
        }
        let exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Result(status: exitStatus, stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
                      stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "")
    }
}
