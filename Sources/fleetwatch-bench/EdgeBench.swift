import EdgeRuntime
import Foundation

// `fleetwatch-bench edge [--runs N] [--models DIR] [--no-ort] [--profile] [--isa NAME]`: batch-1
// latency of every fixture model in EdgeRuntime, with each kernel set this CPU runs (baseline,
// avx2+fma; `--isa` keeps one), beside onnxruntime on the same model in the same run
// (Tests/Fixtures/models/ort_bench.py, one thread, with and without IO binding, plus an
// Identity model's floor to estimate onnxruntime's engine time). Run from the repository
// root, in release:
//   swift run -c release --scratch-path .build-edge fleetwatch-bench edge

private struct EdgeFixture: Decodable {
    var name: String
    var model: String
    var inputs: String
    var kind: String
}

private struct EdgeResult {
    var name: String
    var kind: String
    var isa: KernelISA
    var p50: Double
    var p99: Double
    var rssKB: Int
    var weightBytes: Int
    var sessionBytes: Int
    var kernels: Int
    var inputCount: Int
}

private func edgeNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Resident set size of this process (VmRSS in /proc/self/status), in KiB.
private func edgeRSSKB() -> Int {
    guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in s.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
    }
    return 0
}

private func edgePercentile(_ sorted: [UInt64], _ q: Double) -> Double {
    Double(sorted[min(sorted.count - 1, Int(q * Double(sorted.count)))]) / 1000
}

/// Sinks outputs so the optimizer cannot drop the runs (only the main thread touches it).
nonisolated(unsafe) private var edgeSink: Float = 0

private func edgeFail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    exit(1)
}

func benchEdge() {
    let runs = Int(option("--runs") ?? "10000") ?? 10000
    let dir = option("--models") ?? "Tests/Fixtures/models"
    guard let indexData = FileManager.default.contents(atPath: dir + "/models.json"),
        let fixtures = try? JSONDecoder().decode([EdgeFixture].self, from: indexData)
    else { edgeFail("cannot read \(dir)/models.json (run from the repository root)") }

    var isas = EdgeRuntimeInfo.availableKernelISAs
    if let only = option("--isa") {
        guard let isa = KernelISA(rawValue: only), isas.contains(isa) else {
            edgeFail("--isa \(only): this CPU runs \(isas.map(\.rawValue).joined(separator: ", "))")
        }
        isas = [isa]
    }
    print("edge: batch-1 latency over \(runs) runs per model (after \(runs / 10) warm-up runs), one thread; timed: copy the input in + run")
    print("edge: kernel sets measured: \(isas.map(\.rawValue).joined(separator: ", ")); the default here is \(EdgeRuntimeInfo.kernelISA) (FLEET_EDGE_ISA=\(ProcessInfo.processInfo.environment["FLEET_EDGE_ISA"] ?? "unset"))")
    var results: [EdgeResult] = []
    // Page in the runtime's code and Foundation's file reading once, so the RSS growth below
    // is what each model adds.
    if let first = fixtures.first, let warm = try? CompiledModel(contentsOf: dir + "/" + first.model) {
        InferenceSession(warm).run()
    }
    func measure(_ f: EdgeFixture, compact: Bool, isa: KernelISA) {
        let rowText = (try? String(contentsOfFile: dir + "/" + f.inputs, encoding: .utf8))?.split(separator: "\n").first.map(String.init) ?? ""
        guard let row = try? NDJSONRows.parseInput(rowText) else { edgeFail("cannot read the first row of \(f.inputs)") }
        let before = edgeRSSKB()
        let model: CompiledModel
        do { model = try CompiledModel(contentsOf: dir + "/" + f.model, compactInt8Weights: compact, kernelISA: isa) } catch { edgeFail("\(f.model): \(error)") }
        let session = InferenceSession(model)
        let after = edgeRSSKB()
        var samples = [UInt64](repeating: 0, count: runs)
        row.withUnsafeBufferPointer { input in
            for _ in 0..<(runs / 10) {
                try? session.setInput(0, input)
                session.run()
            }
            for i in 0..<runs {
                let t0 = edgeNanos()
                try? session.setInput(0, input)
                session.run()
                samples[i] = edgeNanos() - t0
                edgeSink += session.floatOutput(model.outputs.count - 1)?.first ?? 0
            }
        }
        samples.sort()
        if args.contains("--profile") {
            for (step, ns) in session.profile(runs: runs) { print("  \(f.name)\(compact ? " (int8 weights)" : "") [\(isa)]: \(step) \(Int(ns)) ns") }
        }
        results.append(EdgeResult(
            name: f.name, kind: compact ? f.kind + ", int8 weights" : f.kind, isa: isa, p50: edgePercentile(samples, 0.5), p99: edgePercentile(samples, 0.99),
            rssKB: after - before, weightBytes: model.weightBytes, sessionBytes: model.sessionBytes,
            kernels: model.steps.count, inputCount: model.inputs[0].count))
    }
    for f in fixtures {
        for isa in isas {
            measure(f, compact: false, isa: isa)
            if f.kind.hasPrefix("int8") { measure(f, compact: true, isa: isa) }
        }
    }

    // onnxruntime, same models, same run.
    var ort: [String: [String: Double]] = [:]
    var ortVersion = "not run"
    if !args.contains("--no-ort") {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", dir + "/ort_bench.py", "--runs", String(runs)] + fixtures.flatMap { [dir + "/" + $0.model, dir + "/" + $0.inputs] }
        let pipe = Pipe()
        p.standardOutput = pipe
        do {
            try p.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
                guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
                if let v = o["onnxruntime"] as? String { ortVersion = "onnxruntime \(v)" }
                if let name = o["name"] as? String {
                    ort[name] = o.compactMapValues { ($0 as? NSNumber)?.doubleValue }
                }
            }
            if p.terminationStatus != 0 { ortVersion = "ort_bench.py failed (exit \(p.terminationStatus)); is onnxruntime installed?" }
        } catch {
            ortVersion = "python3 not runnable: \(error)"
        }
    }

    print("baseline: \(ortVersion), 1 intra-op thread; engine = IO-binding p50 minus the Identity floor of the same input size")
    print("")
    print("| model | kind | kernels | ours p50 µs | ours p99 µs | ort run() p50/p99 µs | ort IO-binding p50/p99 µs | ort Identity floor (IO-binding) µs | ort engine µs (est.) | ours / ort engine | ours / ort IO-binding |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    func f2(_ x: Double?) -> String { x.map { String(format: "%.2f", $0) } ?? "-" }
    for r in results {
        let o = ort[r.name]
        let floor = ort["identity[\(r.inputCount)]"]?["iobinding_p50_us"]
        let bound = o?["iobinding_p50_us"]
        let engine = bound.flatMap { b in floor.map { max(b - $0, 0.01) } }
        print("| \(r.name) | \(r.kind) | \(r.isa) | \(f2(r.p50)) | \(f2(r.p99)) | \(f2(o?["run_p50_us"]))/\(f2(o?["run_p99_us"])) | \(f2(bound))/\(f2(o?["iobinding_p99_us"])) | \(f2(floor)) | \(f2(engine)) | \(engine.map { f2(r.p50 / $0) + "x" } ?? "-") | \(bound.map { f2(r.p50 / $0) + "x" } ?? "-") |")
    }
    print("")
    print("| model | kernels | packed weights KiB | session memory KiB | RSS growth on load KiB (ours) | ort session RSS growth KiB |")
    print("|---|---|---|---|---|---|")
    for r in results where r.isa == isas.last {
        let ortRSS = ort[r.name]?["session_rss_kb"].map { String(Int($0)) } ?? "-"
        print("| \(r.name) (\(r.kind)) | \(r.kernels) | \(String(format: "%.1f", Double(r.weightBytes) / 1024)) | \(String(format: "%.1f", Double(r.sessionBytes) / 1024)) | \(r.rssKB) | \(ortRSS) |")
    }
    if let b = ort["mlp"]?["iobinding_p50_us"], let fl = ort["identity[64]"]?["iobinding_p50_us"] {
        print("")
        for mlp in results where mlp.name == "mlp" {
            let ratio = mlp.p50 / max(b - fl, 0.01)
            print("goal: MLP fp32 p50 <= 0.5x onnxruntime's engine time, \(mlp.isa) kernels: \(f2(mlp.p50)) µs vs \(f2(b - fl)) µs = \(f2(ratio))x -> \(ratio <= 0.5 ? "met" : "NOT met")")
        }
    }
    if edgeSink == 12345 { print("") }
}
