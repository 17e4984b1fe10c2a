import FleetCore
import Foundation

// fleetwatch-bench: performance goals as runnable numbers. Every benchmark prints its own
// baseline measured in the same run and the ratio against it. Run in release:
//   swift run -c release fleetwatch-bench decode [--seconds S] [--file PATH] [--fleet N [--passes P]]

let args = Array(CommandLine.arguments.dropFirst())

func option(_ name: String) -> String? {
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    return args[i + 1]
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Runs `body` in rounds for about `seconds`, returning operations per second (best of 3 runs).
func rate(seconds: Double, _ body: () -> Int) -> Double {
    var best = 0.0
    for _ in 0..<3 {
        var ops = 0
        let start = monotonicSeconds()
        var now = start
        while now - start < seconds / 3 {
            ops += body()
            now = monotonicSeconds()
        }
        best = max(best, Double(ops) / (now - start))
    }
    return best
}

func fmt(_ x: Double) -> String { String(format: x >= 100 ? "%.0f" : "%.2f", x) }

/// Sinks a value so the optimizer cannot drop the work.
nonisolated(unsafe) var sink = 0

func benchDecode() {
    let seconds = Double(option("--seconds") ?? "3") ?? 3
    let path = option("--file") ?? "Tests/Fixtures/telemetry/valid/v1-typical.json"
    guard let data = FileManager.default.contents(atPath: path) else {
        FileHandle.standardError.write(Data("cannot read \(path) (run from the repository root)\n".utf8))
        exit(1)
    }
    let bytes = [UInt8](data)
    let now: Int64 = 1_764_417_600_000
    guard case .success(let m) = TelemetryDecoder.decode(bytes, receivedAtMs: now, topicDeviceID: nil) else {
        FileHandle.standardError.write(Data("\(path) does not decode\n".utf8))
        exit(1)
    }
    print("decode+validate: \(path), \(bytes.count) bytes, \(m.records.count) records, one thread, \(fmt(seconds)) s per measurement")

    let batch = 1000
    if let n = option("--fleet").flatMap({ Int($0) }) {
        // The end-to-end benchmark's messages (1,000 devices, each different), decoded once each.
        var fleet = SyntheticFleet(devices: 1000)
        let payloads = (0..<n).map { i -> [UInt8] in
            var m = fleet.message(device: i % 1000, n: Int64(i / 1000))
            m.schemaVersion = 1
            m.device.accelerator = DeviceInfo.unknownAccelerator
            return TelemetryEncoder.encode(m)
        }
        let bytes = payloads.reduce(0) { $0 + $1.count }
        // Each pass twice: each message on its own, then as the ingester's network thread
        // decodes them, sharing label strings through one LabelCache.
        var labels = LabelCache()
        for _ in 0..<(Int(option("--passes") ?? "3") ?? 3) {
            var start = monotonicSeconds()
            for p in payloads {
                p.withUnsafeBytes { raw in
                    if case .success(let m) = TelemetryDecoder.decode(raw, receivedAtMs: now + 3_600_000, topicDeviceID: nil) { sink &+= m.records.count }
                }
            }
            let alone = monotonicSeconds() - start
            start = monotonicSeconds()
            for p in payloads {
                p.withUnsafeBytes { raw in
                    if case .success(let m) = TelemetryDecoder.decode(raw, receivedAtMs: now + 3_600_000, topicDeviceID: nil, labels: &labels) { sink &+= m.records.count }
                }
            }
            let shared = monotonicSeconds() - start
            print("  \(n) fleet messages (\(bytes / n) bytes each): \(fmt(Double(n) / alone)) msgs/s, \(fmt(alone / Double(n) * 1e6)) µs each; sharing labels: \(fmt(Double(n) / shared)) msgs/s, \(fmt(shared / Double(n) * 1e6)) µs each (\(fmt(alone / shared))x)")
        }
        return
    }
    let ours = rate(seconds: seconds) {
        bytes.withUnsafeBytes { raw in
            for _ in 0..<batch {
                if case .success(let m) = TelemetryDecoder.decode(raw, receivedAtMs: now, topicDeviceID: "cam-0042") { sink &+= m.records.count }
            }
        }
        return batch
    }
    if args.contains("--ours-only") {  // for profiling
        print("  TelemetryDecoder.decode: \(fmt(ours)) msgs/s")
        return
    }
    let foundation = rate(seconds: seconds) {
        for _ in 0..<batch / 10 {
            if let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any] { sink &+= o.count }
        }
        return batch / 10
    }
    let encode = rate(seconds: seconds) {
        for _ in 0..<batch { sink &+= TelemetryEncoder.encode(m).count }
        return batch
    }
    print("  TelemetryDecoder.decode (parse + validate + build model): \(fmt(ours)) msgs/s  (\(fmt(ours * Double(bytes.count) / 1e6)) MB/s)")
    print("  baseline JSONSerialization.jsonObject (parse only):       \(fmt(foundation)) msgs/s")
    print("  ratio: \(fmt(ours / foundation))x JSONSerialization   goal: >= 250000 msgs/s and >= 3x")
    print("  TelemetryEncoder.encode (for reference):                  \(fmt(encode)) msgs/s")
}

func benchSketch() {
    let seconds = Double(option("--seconds") ?? "2") ?? 2
    var rng = SplitMix64(seed: 1)
    let values = (0..<100_000).map { _ in exp(Double.random(in: 5...9, using: &rng)) }
    var i = 0
    var s = DDSketch()
    let inserts = rate(seconds: seconds) {
        for _ in 0..<10_000 {
            s.insert(values[i])
            i = (i + 1) % values.count
        }
        return 10_000
    }
    var arr: [Double] = []
    arr.reserveCapacity(10_000)
    let baseline = rate(seconds: seconds) {
        arr.removeAll(keepingCapacity: true)
        for _ in 0..<10_000 {
            arr.append(values[i])
            i = (i + 1) % values.count
        }
        sink &+= arr.count
        return 10_000
    }
    var parts: [DDSketch] = []
    for _ in 0..<100 {
        var p = DDSketch()
        for _ in 0..<1000 { p.insert(values[Int.random(in: 0..<values.count, using: &rng)]) }
        parts.append(p)
    }
    let merges = rate(seconds: seconds) {
        var m = DDSketch()
        for p in parts { m.merge(p) }
        sink &+= m.keys.count
        return parts.count
    }
    print("sketch: insert \(fmt(inserts)) values/s (baseline: Array.append \(fmt(baseline))/s, ratio \(fmt(inserts / baseline))); merge of ~\(parts[0].keys.count)-bucket sketches \(fmt(merges))/s")
}

switch args.first {
case "decode": benchDecode()
case "sketch": benchSketch()
case "edge": benchEdge()
case "store-write": try benchStoreWrite()
case "store-query": try benchStoreQuery()
case "ingest": try benchIngest()
case "top": try benchTop()
case "alerts-eval": try benchAlertsEval()
case "sim-scale": try benchSimScale()
default:
    print("usage: fleetwatch-bench decode [--seconds S] [--file PATH] | sketch [--seconds S] | edge [--runs N] [--models DIR] [--no-ort] [--profile] | store-write [--devices N] [--messages M] [--batch B] | store-query [--devices N] | ingest [--messages N] [--devices D] | top [--devices N] [--frames F] [--idle-seconds S] | alerts-eval [--devices N] [--cycles C] | sim-scale [--devices N] [--seconds S] [--inferences I] [--threads T]")
    exit(args.isEmpty ? 0 : 2)
}
