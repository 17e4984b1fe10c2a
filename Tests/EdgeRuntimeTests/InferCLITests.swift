import Foundation
import Testing

/// `fleet-agent infer` end to end: the real binary (next to the test bundle) against
/// onnxruntime's reference outputs, and the contract's errors and exit codes.
@Suite(.serialized) struct InferCLITests {
    static var agent: URL {
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        while url.pathComponents.count > 1 {
            url.deleteLastPathComponent()
            let candidate = url.appendingPathComponent("fleet-agent")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return Fixtures.root.appendingPathComponent(".build/debug/fleet-agent")
    }

    struct Output { var status: Int32; var stdout: String; var stderr: String }

    static func run(_ args: [String], stdin: String? = nil, environment: [String: String] = [:]) throws -> Output {
        let p = Process()
        p.executableURL = agent
        p.arguments = args
        if !environment.isEmpty {
            p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        p.currentDirectoryURL = Fixtures.models
        let out = Pipe(), err = Pipe(), inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = inp
        try p.run()
        if let stdin { inp.fileHandleForWriting.write(Data(stdin.utf8)) }
        try inp.fileHandleForWriting.close()
        // Read both pipes concurrently so a chatty child cannot block on a full pipe; the
        // group's wait orders the write before the read.
        nonisolated(unsafe) var errData = Data()
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) { errData = err.fileHandleForReading.readDataToEndOfFile() }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        return Output(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
    }

    func expectMatches(_ stdout: String, _ entry: Fixtures.Entry) {
        let got = stdout.split(separator: "\n").map(String.init)
        let want = Fixtures.lines(entry.expected)
        #expect(got.count == want.count, "\(entry.name): \(got.count) lines")
        for (i, (g, w)) in zip(got, want).enumerated() {
            let ours = Fixtures.expected(g), ref = Fixtures.expected(w)
            #expect(Set(ours.keys) == Set(ref.keys))
            for (name, values) in ref {
                let (excess, diff) = Fixtures.compare(ours[name] ?? [], values, entry.tolerance)
                #expect(excess <= 0 && ours[name]?.count == values.count, "\(entry.name) line \(i + 1) \(name): off by \(diff)")
            }
        }
    }

    @Test(arguments: Fixtures.index)
    func inferMatchesOnnxruntime(_ entry: Fixtures.Entry) throws {
        let r = try Self.run(["infer", "--model", entry.model, "--input", entry.inputs])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.isEmpty)
        expectMatches(r.stdout, entry)
    }

    /// `FLEET_EDGE_ISA=baseline` forces the baseline kernels in a real process (the default
    /// run above uses avx2+fma where the CPU has it): the same references hold.
    @Test(arguments: Fixtures.index)
    func inferWithBaselineKernelsMatchesOnnxruntime(_ entry: Fixtures.Entry) throws {
        let r = try Self.run(["infer", "--model", entry.model, "--input", entry.inputs], environment: ["FLEET_EDGE_ISA": "baseline"])
        #expect(r.status == 0, "\(r.stderr)")
        expectMatches(r.stdout, entry)
    }

    @Test func stdinStdoutAndOutputFile() throws {
        let entry = Fixtures.entry("cnn1d")
        let input = Fixtures.lines(entry.inputs).joined(separator: "\n") + "\n"
        let r = try Self.run(["infer", "--model", entry.model], stdin: input)
        #expect(r.status == 0, "\(r.stderr)")
        expectMatches(r.stdout, entry)

        let out = FileManager.default.temporaryDirectory.appendingPathComponent("infer-\(UUID().uuidString).ndjson")
        defer { try? FileManager.default.removeItem(at: out) }
        let f = try Self.run(["infer", "--model", entry.model, "--input", entry.inputs, "--output", out.path])
        #expect(f.status == 0 && f.stdout.isEmpty, "\(f.stderr)")
        expectMatches(String(decoding: try Data(contentsOf: out), as: UTF8.self), entry)
    }

    @Test func bareArraysAndBlankLines() throws {
        let entry = Fixtures.entry("logreg")
        let rows = try Fixtures.lines(entry.inputs).prefix(2).map { line -> String in
            let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            return String(decoding: try JSONSerialization.data(withJSONObject: o["input"]!), as: UTF8.self)
        }
        let r = try Self.run(["infer", "--model", entry.model], stdin: rows[0] + "\n\n" + rows[1] + "\n")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.split(separator: "\n").count == 2)
        #expect(r.stdout.hasPrefix(#"{"outputs": {"label": ["#))
    }

    @Test func badRowStopsWithItsLineNumber() throws {
        let good = Fixtures.lines("mlp.inputs.ndjson")
        let r = try Self.run(["infer", "--model", "mlp.onnx"], stdin: [good[0], good[1], #"{"input": [1, 2, oops]}"#, good[3]].joined(separator: "\n"))
        #expect(r.status == 1)
        #expect(r.stdout.split(separator: "\n").count == 2)
        #expect(r.stderr.hasPrefix("error: line 3: ") && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")

        let short = try Self.run(["infer", "--model", "mlp.onnx"], stdin: "[1, 2, 3]\n")
        #expect(short.status == 1)
        #expect(short.stderr.contains("line 1") && short.stderr.contains("64"), "\(short.stderr)")
    }

    @Test func badModelAndUsage() throws {
        let missing = try Self.run(["infer", "--model", "no-such-model.onnx"], stdin: "")
        #expect(missing.status == 1)
        #expect(missing.stderr.hasPrefix("error: cannot load model no-such-model.onnx"), "\(missing.stderr)")

        let notModel = try Self.run(["infer", "--model", "models.json"], stdin: "")
        #expect(notModel.status == 1 && notModel.stderr.contains("not an ONNX model"), "\(notModel.stderr)")

        let usage = try Self.run(["infer"], stdin: "")
        #expect(usage.status == 2, "\(usage.stderr)")
        let unknown = try Self.run(["infer", "--model", "mlp.onnx", "--bogus"], stdin: "")
        #expect(unknown.status == 2)
    }
}
