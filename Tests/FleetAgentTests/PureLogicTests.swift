import EdgeRuntime
import FleetCore
import Foundation
import Testing

@testable import FleetAgent

@Suite struct SyntheticSourceTests {
    func samples(_ s: inout SyntheticSource, _ n: Int) -> ([[Float]], [SyntheticSource.Fault]) {
        var rows: [[Float]] = []
        var faults: [SyntheticSource.Fault] = []
        var v: [Float] = []
        for _ in 0..<n {
            faults.append(s.next(into: &v))
            rows.append(v)
        }
        return (rows, faults)
    }

    @Test func sameSeedSameSamples() {
        var a = SyntheticSource(featureCount: 8, seed: 7)
        var b = SyntheticSource(featureCount: 8, seed: 7)
        var c = SyntheticSource(featureCount: 8, seed: 8)
        let (ra, _) = samples(&a, 50), (rb, _) = samples(&b, 50), (rc, _) = samples(&c, 50)
        #expect(ra == rb)
        #expect(ra != rc)
        #expect(ra.allSatisfy { $0.count == 8 && $0.allSatisfy(\.isFinite) })
    }

    @Test func driftShiftsTheMeanAndNoiseWidensIt() {
        func meanAndStd(_ settings: SyntheticSource.Settings) -> (Double, Double) {
            var s = SyntheticSource(featureCount: 4, seed: 3, settings: settings)
            let (rows, _) = samples(&s, 4000)
            let xs = rows.flatMap { $0.map(Double.init) }
            let m = xs.reduce(0, +) / Double(xs.count)
            return (m, (xs.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(xs.count)).squareRoot())
        }
        let (m0, s0) = meanAndStd(.init())
        let (m1, s1) = meanAndStd(.init(drift: 2))
        let (_, s2) = meanAndStd(.init(noise: 3))
        #expect(abs((m1 - m0) - 2) < 0.01)  // the same draws, shifted
        #expect(abs(s1 - s0) < 0.01)
        #expect(s2 > s0 * 1.5)
    }

    @Test func faultRatesAreRespected() {
        var s = SyntheticSource(featureCount: 2, seed: 11, settings: .init(errorRate: 0.1, latencySpikeMs: 25, spikeRate: 0.05))
        let (_, faults) = samples(&s, 20_000)
        let errors = Double(faults.filter(\.injectError).count) / 20_000
        let spikes = faults.filter { $0.spikeMs > 0 }
        #expect(abs(errors - 0.1) < 0.01)
        #expect(abs(Double(spikes.count) / 20_000 - 0.05) < 0.01)
        #expect(spikes.allSatisfy { $0.spikeMs == 25 })
        var quiet = SyntheticSource(featureCount: 2, seed: 11)
        #expect(samples(&quiet, 1000).1.allSatisfy { !$0.injectError && $0.spikeMs == 0 })
    }
}

@Suite struct OutputInterpreterTests {
    @Test func top1() {
        func top(_ v: [Float]) -> (Int, Double)? { v.withUnsafeBufferPointer { OutputInterpreter.top1($0).map { ($0.classIndex, $0.confidence) } } }
        #expect(top([0.1, 0.7, 0.2])! == (1, Double(Float(0.7))))
        #expect(top([3, 9, 1])! == (1, 1))  // logits: clamped
        #expect(top([-3, -1])! == (1, 0))
        #expect(top([0.5, .nan]) == nil)
        #expect(top([.infinity, 1]) == nil)
        #expect(top([]) == nil)
    }

    @Test func choosesTheScoresOutput() throws {
        let mlp = try CompiledModel(contentsOf: Paths.model("mlp.onnx"))
        #expect(OutputInterpreter(outputs: mlp.outputs)?.source == .scores(output: 0))
        let logreg = try CompiledModel(contentsOf: Paths.model("logreg.onnx"))
        // label (int64) first, probabilities second
        #expect(OutputInterpreter(outputs: logreg.outputs)?.source == .scores(output: logreg.outputs.firstIndex { $0.type == .float && $0.count >= 2 }!))
        let ae = try CompiledModel(contentsOf: Paths.model("autoencoder.onnx"))
        // reconstruction [32], then the anomaly score: the score is read.
        #expect(OutputInterpreter(outputs: ae.outputs)?.source == .scalar(output: ae.outputs.firstIndex { $0.name == "score" }!))
    }
}

@Suite struct ProcParsersTests {
    @Test func cpuPercentOfTheWholeMachine() {
        let a = ProcParsers.cpuTimes(procStat: "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n")!
        #expect(a == .init(busy: 150, total: 1000))
        let b = ProcParsers.cpuTimes(procStat: "cpu  200 0 100 1500 100 0 0 0 0 0\n")!
        #expect(abs(ProcParsers.cpuPercent(from: a, to: b) - 100.0 * 150 / 900) < 1e-9)
        #expect(ProcParsers.cpuPercent(from: b, to: b) == 0)
        #expect(ProcParsers.cpuPercent(from: b, to: a) == 0)  // counters went back (never above 100 or below 0)
        #expect(ProcParsers.cpuTimes(procStat: "intr 1 2 3\n") == nil)
    }

    @Test func memory() {
        let meminfo = "MemTotal:       2048000 kB\nMemFree:         100 kB\nMemAvailable:    1024000 kB\n"
        #expect(ProcParsers.memUsedMB(meminfo: meminfo) == 1000)
        #expect(ProcParsers.memUsedMB(meminfo: "MemTotal: 10 kB\n") == nil)
        #expect(ProcParsers.rssMB(status: "Name:\tx\nVmRSS:\t    2048 kB\n") == 2)
    }

    @Test func hottestThermalZone() {
        #expect(ProcParsers.temperatureC(zoneTexts: ["45000\n", "61500\n", "garbage"]) == 61.5)
        #expect(ProcParsers.temperatureC(zoneTexts: []) == nil)
        #expect(ProcParsers.temperatureC(zoneTexts: ["-300000"]) == nil)
    }

    @Test func samplerOnAFakeTree() throws {
        let dir = TempDir()
        let root = dir.url.path
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/proc/self", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/sys/class/thermal/thermal_zone0", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/sys/devices/system/cpu/cpu0/thermal_throttle", withIntermediateDirectories: true)
        func write(_ path: String, _ text: String) throws { try text.write(toFile: root + path, atomically: true, encoding: .utf8) }
        try write("/proc/stat", "cpu  100 0 0 900 0 0 0 0 0 0\n")
        try write("/proc/meminfo", "MemTotal: 4096 kB\nMemAvailable: 1024 kB\n")
        try write("/sys/class/thermal/thermal_zone0/temp", "55000\n")
        try write("/sys/devices/system/cpu/cpu0/thermal_throttle/core_throttle_count", "7\n")
        let s = ResourceSampler(root: root)
        try write("/proc/stat", "cpu  150 0 0 950 0 0 0 0 0 0\n")
        try write("/sys/devices/system/cpu/cpu0/thermal_throttle/core_throttle_count", "10\n")
        let r = s.sample(tsMs: 5)
        #expect(r == ResourcesRecord(tsMs: 5, cpuPct: 50, memMB: 3, tempC: 55, throttleEvents: 3))
        #expect(s.sample(tsMs: 6).throttleEvents == 0)
        // This machine: whatever it has, a valid record.
        let real = ResourceSampler().sample(tsMs: 1)
        #expect((0...100).contains(real.cpuPct) && real.memMB > 0 && real.throttleEvents >= 0)
    }
}

@Suite struct ReplayAndStatusTests {
    @Test func replayRequests() {
        #expect(ReplayRequest.parse(Array(#"{"from_seq":3,"to_seq":9}"#.utf8)) == 3...9)
        #expect(ReplayRequest.parse(Array(#"{"to_seq":1,"from_seq":1}"#.utf8)) == 1...1)
        for bad in [#"{"from_seq":9,"to_seq":3}"#, #"{"from_seq":0,"to_seq":3}"#, #"{"from_seq":1}"#, "[]", "", #"{"from_seq":"1","to_seq":2}"#] {
            #expect(ReplayRequest.parse(Array(bad.utf8)) == nil, "\(bad)")
        }
    }

    @Test func statusPayloads() {
        #expect(String(decoding: StatusPayload.online(tsMs: 5), as: UTF8.self) == #"{"state":"online","ts_ms":5}"#)
        #expect(String(decoding: StatusPayload.offline(tsMs: 6), as: UTF8.self) == #"{"state":"offline","ts_ms":6}"#)
    }
}

@Suite struct MessageComposerTests {
    static let now: Int64 = 1_764_417_600_000
    static let model = ModelInfo(name: "mlp", version: "1.0.0", sha256: String(repeating: "a", count: 64))

    static var everyRecordKind: [TelemetryRecord] {
        var a = WindowAggregator(trackInputs: true)
        let input: [Float] = [1, 2, 3]
        for i in 0..<50 {
            input.withUnsafeBufferPointer { a.recordSuccess(latencyUs: Double(i) * 3.7, confidence: Double(i) / 49, classIndex: i % 4, input: $0) }
        }
        a.recordError(tsMs: now, code: "INJECTED_FAULT", message: "fault \"quoted\"\nnewline")
        let (inference, errors) = a.finish(endMs: now, windowMs: 10_000)
        return [
            .session(SessionRecord(tsMs: now, sessionID: "6f1c2d4e-aaaa-bbbb-cccc-000000000000", status: .started, durationMs: 0, errors: 0)),
            .session(SessionRecord(tsMs: now, sessionID: "old", status: .abnormal, durationMs: 1234, errors: 3)),
            .deploy(DeployRecord(tsMs: now, fromVersion: "", toVersion: "1.0.0", result: .installed)),
            .deploy(DeployRecord(tsMs: now, fromVersion: "1.0.0", toVersion: "2.0.0", result: .rolledBack)),
            .inference(inference),
            .resources(ResourceSampler().sample(tsMs: now)),
        ] + errors.map { .error($0) }
    }

    @Test(arguments: [1, 2])
    func everyMessageValidates(schema: Int) throws {
        let c = MessageComposer(schemaVersion: schema, deviceID: "cam-7", device: DeviceInfo(sku: "orin-nano-8g", firmware: "5.1.2", agent: "0.1.0", accelerator: "gpu"))
        let bytes = c.encode(seq: 9, sentAtMs: Self.now, model: Self.model, records: Self.everyRecordKind, drop: DropReport(count: 4, fromSeq: 2, toSeq: 5))
        let m = try TelemetryDecoder.decode(bytes, receivedAtMs: Self.now, topicDeviceID: "cam-7").get()
        #expect(m.schemaVersion == schema && m.seq == 9)
        #expect(m.device.accelerator == (schema == 2 ? "gpu" : "unknown"))
        #expect(m.records.count == Self.everyRecordKind.count + 1)
        #expect(m.errors.last?.code == "BUFFER_OVERFLOW" && m.errors.last?.message.contains("dropped 4") == true)
        if schema == 2 { #expect(m.inferences[0].inputStats.count == 3) }
    }

    @Test func chunksStayUnderTheLimits() throws {
        let c = MessageComposer(schemaVersion: 1, deviceID: "d", device: DeviceInfo(sku: "s", firmware: "f", agent: "a"))
        let records = (0..<450).map { _ in TelemetryRecord.error(ErrorRecord(tsMs: Self.now, code: "REPLAY_UNAVAILABLE", message: String(repeating: "x", count: 512))) }
        let chunks = MessageComposer.chunks(records)
        #expect(chunks.map(\.count) == [200, 200, 50])
        for chunk in chunks {
            let bytes = c.encode(seq: 1, sentAtMs: Self.now, model: Self.model, records: chunk)
            #expect(bytes.count < TelemetryDecoder.maxMessageBytes)
            #expect(throws: Never.self) { try TelemetryDecoder.decode(bytes, receivedAtMs: Self.now).get() }
        }
    }
}
