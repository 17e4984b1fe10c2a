import EdgeRuntime
import FleetCore
import Foundation
import Testing

@testable import FleetAgent

#if canImport(Glibc)
    import Glibc
#endif

/// `fleet-agent run` end to end: the real binary against a real mosquitto on 127.0.0.1, seen
/// through a subscriber that decodes (so validates) every message as the ingester would.
@Suite(.serialized) struct AgentProcessTests {
    static let fast = ["--window", "200ms", "--rate", "50"]

    func wallMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    @Test func brokerOutageLosesNothingAndKeepsOrder() throws {
        let broker = try Broker()
        let sub = try Subscriber(port: broker.port)
        let dir = TempDir()
        let agent = try AgentProcess(port: broker.port, device: "dev-a", model: Paths.model("mlp.onnx"), buffer: dir.path("buf.db"), extra: Self.fast)
        try eventually("first messages, log: \(agent.log)") { try sub.seqs("dev-a").count >= 3 }

        broker.stop()
        let downFrom = wallMs()
        usleep(1_500_000)  // about seven windows with nobody to take them
        let downTo = wallMs()
        try broker.start()
        try eventually("the agent catches up, log: \(agent.log)") {
            try sub.telemetry("dev-a").contains { $0.sentAtMs > downTo + 400 }
        }
        agent.signal(SIGTERM)
        #expect(agent.wait() == 0, "\(agent.log)")

        try eventually("the exited session arrives") { try sub.telemetry("dev-a").contains { $0.sessions.contains { $0.status == .exited } } }
        let messages = try sub.telemetry("dev-a")
        #expect(checkContiguousInOrder(messages.map(\.seq)) == nil)
        #expect(messages.filter { $0.sentAtMs > downFrom + 100 && $0.sentAtMs < downTo - 100 }.count >= 3, "messages made during the outage")
        // The session: one started, one exited, same id.
        let sessions = messages.flatMap(\.sessions)
        #expect(sessions.map(\.status) == [.started, .exited])
        #expect(Set(sessions.map(\.sessionID)).count == 1)
        // Windows: consistent records (the decoder checked), real inferences.
        let inferences = messages.flatMap(\.inferences)
        #expect(inferences.reduce(0) { $0 + $1.count } > 50)
        #expect(messages.allSatisfy { m in m.records.contains { $0.kind == .resources } || m.sessions.contains { $0.status == .started } })
        // Status: online (retained) on connect, offline on the clean exit.
        let statuses = sub.statuses("dev-a")
        #expect(statuses.contains { $0.contains("\"online\"") })
        #expect(statuses.last?.contains("\"offline\"") == true)
    }

    @Test func bufferedMessagesSurviveARestartAndGoOutInSeqOrder() throws {
        let broker = try Broker()
        let sub = try Subscriber(port: broker.port)  // its session persists across the outage
        broker.stop()
        let dir = TempDir()
        let buffer = dir.path("buf.db")

        // Run 1: the broker is down the whole time; everything stays in the buffer.
        let a1 = try AgentProcess(port: broker.port, device: "dev-b", model: Paths.model("mlp.onnx"), buffer: buffer, extra: Self.fast + ["--drain-timeout", "300ms"])
        try eventually("run 1 started") { a1.log.contains("started") }
        usleep(1_000_000)
        a1.signal(SIGTERM)
        #expect(a1.wait() == 0, "\(a1.log)")
        #expect(a1.log.contains("stay buffered for the next start"))

        // Run 2: the broker is back; run 1's messages go first, in seq order.
        try broker.start()
        let a2 = try AgentProcess(port: broker.port, device: "dev-b", model: Paths.model("mlp.onnx"), buffer: buffer, extra: Self.fast)
        try eventually("run 2 publishes, log: \(a2.log) got: \(sub.all.map { $0.topic + " " + $0.text.prefix(60) })") { try sub.telemetry("dev-b").filter { $0.sessions.contains { $0.status == .started } }.count == 2 }
        a2.signal(SIGTERM)
        #expect(a2.wait() == 0, "\(a2.log)")
        try eventually("run 2 exits") { try sub.telemetry("dev-b").flatMap(\.sessions).filter { $0.status == .exited }.count == 2 }

        let messages = try sub.telemetry("dev-b")
        #expect(checkContiguousInOrder(messages.map(\.seq)) == nil)
        let sessions = messages.flatMap(\.sessions)
        #expect(sessions.map(\.status) == [.started, .exited, .started, .exited])
        #expect(sessions[0].sessionID == sessions[1].sessionID && sessions[2].sessionID == sessions[3].sessionID && sessions[0].sessionID != sessions[2].sessionID)
        // Only the first run installed the model.
        #expect(messages.flatMap(\.deploys).map(\.result) == [.installed])
    }

    @Test func aTamperedModelIsRefusedAndTheRefusalReported() throws {
        let broker = try Broker()
        let sub = try Subscriber(port: broker.port)
        let dir = TempDir()
        var bytes = TestModels.bytes("mlp.onnx")
        bytes[bytes.count / 2] ^= 0x01
        try Data(bytes).write(to: dir.url.appendingPathComponent("mlp.onnx"))
        try FileManager.default.copyItem(atPath: Paths.model("mlp.manifest.json"), toPath: dir.path("mlp.manifest.json"))

        let agent = try AgentProcess(port: broker.port, device: "dev-t", model: dir.path("mlp.onnx"), buffer: dir.path("buf.db"), extra: Self.fast)
        #expect(agent.wait() == 1)
        #expect(agent.log.contains("hash_mismatch") && agent.log.contains("refusing to run"), "\(agent.log)")
        try eventually("the refusal is published") { try !sub.telemetry("dev-t").isEmpty }
        let m = try sub.telemetry("dev-t")
        #expect(m.count == 1)
        #expect(m[0].errors.map(\.code) == ["MODEL_HASH_MISMATCH"])
        #expect(m[0].deploys == [DeployRecord(tsMs: m[0].deploys[0].tsMs, fromVersion: "", toVersion: "1.0.0", result: .failed)])
        #expect(m[0].model.sha256 == ModelDigest.sha256Hex(bytes))  // names what it refused
        #expect(m[0].sessions.isEmpty)  // nothing ran
    }

    @Test func killNineIsAbnormalAndAbortIsCrashedAtTheNextStart() throws {
        let broker = try Broker()
        let sub = try Subscriber(port: broker.port)
        let dir = TempDir()
        let buffer = dir.path("buf.db")
        func started() throws -> [SessionRecord] { try sub.telemetry("dev-c").flatMap(\.sessions).filter { $0.status == .started } }

        let a1 = try AgentProcess(port: broker.port, device: "dev-c", model: Paths.model("mlp.onnx"), buffer: buffer, extra: Self.fast)
        try eventually("run 1 windows") { try sub.telemetry("dev-c").count >= 3 }
        a1.signal(SIGKILL)
        #expect(a1.wait() == 128 + SIGKILL)

        let a2 = try AgentProcess(port: broker.port, device: "dev-c", model: Paths.model("mlp.onnx"), buffer: buffer, extra: Self.fast + ["--crash-after", "800ms"])
        #expect(a2.wait() == 128 + SIGABRT, "\(a2.log)")

        let a3 = try AgentProcess(port: broker.port, device: "dev-c", model: Paths.model("mlp.onnx"), buffer: buffer, extra: Self.fast)
        try eventually("run 3 started") { try started().count == 3 }
        a3.signal(SIGTERM)
        #expect(a3.wait() == 0, "\(a3.log)")
        try eventually("run 3 exited") { try sub.telemetry("dev-c").flatMap(\.sessions).contains { $0.status == .exited } }

        let ids = try started().map(\.sessionID)
        let terminal = try sub.telemetry("dev-c").flatMap(\.sessions).filter { $0.status.isTerminal }
        // Exactly one terminal status per session, each the right one.
        #expect(terminal.map(\.sessionID) == ids)
        #expect(terminal.map(\.status) == [.abnormal, .crashed, .exited])
        #expect(terminal[0].durationMs > 0 && terminal[1].durationMs >= 700)
        #expect(checkContiguousInOrder(try sub.seqs("dev-c")) == nil)
    }

    @Test func replayRequestsAreAnsweredFromTheBuffer() throws {
        let broker = try Broker()
        let sub = try Subscriber(port: broker.port)
        let dir = TempDir()
        let agent = try AgentProcess(port: broker.port, device: "dev-r", model: Paths.model("mlp.onnx"), buffer: dir.path("buf.db"), extra: Self.fast + ["--replay-keep", "3"])
        try eventually("messages") { try sub.seqs("dev-r").count >= 8 }
        let newest = try sub.seqs("dev-r").max()!
        try sub.client.publish("fleet/dev-r/replay", Array(#"{"from_seq":\#(newest - 1),"to_seq":\#(newest)}"#.utf8), qos: 1)
        try eventually("the newest two re-sent") {
            let s = try sub.seqs("dev-r")
            return s.filter { $0 == newest }.count >= 2 && s.filter { $0 == newest - 1 }.count >= 2
        }
        // Long acknowledged and pruned (--replay-keep 3): reported, not silently ignored.
        try sub.client.publish("fleet/dev-r/replay", Array(#"{"from_seq":1,"to_seq":2}"#.utf8), qos: 1)
        try eventually("the gap is reported") { try sub.telemetry("dev-r").flatMap(\.errors).contains { $0.code == "REPLAY_UNAVAILABLE" } }
        agent.signal(SIGTERM)
        #expect(agent.wait() == 0, "\(agent.log)")
        #expect(checkContiguousInOrder(try sub.seqs("dev-r")) == nil)
    }

    @Test func sighupSwapsTheModelAndKeepsTheOldOneWhenTheNewOneFails() throws {
        let broker = try Broker()
        let sub = try Subscriber(port: broker.port)
        let dir = TempDir()
        let model = dir.path("model.onnx")
        let buffer = dir.path("buf.db")
        try TestModels.install(TestModels.bytes("mlp.onnx"), version: "1.0.0", at: model)
        func deploys() throws -> [DeployRecord] { try sub.telemetry("dev-h").flatMap(\.deploys) }

        let agent = try AgentProcess(port: broker.port, device: "dev-h", model: model, buffer: buffer, extra: Self.fast)
        try eventually("installed 1.0.0") { try deploys().map(\.toVersion) == ["1.0.0"] }

        // A different model (another input size, too) as 2.0.0: installed.
        try TestModels.install(TestModels.bytes("cnn1d.onnx"), version: "2.0.0", at: model)
        agent.signal(SIGHUP)
        try eventually("installed 2.0.0, log: \(agent.log)") { try deploys().count == 2 }
        #expect(try deploys()[1] == DeployRecord(tsMs: deploys()[1].tsMs, fromVersion: "1.0.0", toVersion: "2.0.0", result: .installed))
        try eventually("2.0.0 runs") { try sub.telemetry("dev-h").contains { $0.model.version == "2.0.0" && ($0.inferences.first?.count ?? 0) > 0 } }

        // Tampered 3.0.0: failed, 2.0.0 keeps running.
        var tampered = TestModels.bytes("mlp.onnx")
        tampered[500] ^= 1
        try TestModels.install(tampered, version: "3.0.0", at: model, signedFor: TestModels.bytes("mlp.onnx"))
        agent.signal(SIGHUP)
        try eventually("3.0.0 failed") { try deploys().count == 3 }
        #expect(try deploys()[2].fromVersion == "2.0.0" && deploys()[2].toVersion == "3.0.0" && deploys()[2].result == .failed)
        #expect(try sub.telemetry("dev-h").flatMap(\.errors).contains { $0.code == "MODEL_HASH_MISMATCH" })

        // 4.0.0 loads but gives NaN on its smoke inference: rolled back.
        try TestModels.install(TestModels.nanModel, version: "4.0.0", at: model)
        agent.signal(SIGHUP)
        try eventually("4.0.0 rolled back") { try deploys().count == 4 }
        #expect(try deploys()[3].result == .rolledBack && deploys()[3].fromVersion == "2.0.0")
        let seqNow = try sub.seqs("dev-h").max()!
        try eventually("2.0.0 still runs") { try sub.telemetry("dev-h").contains { $0.seq > seqNow && $0.model.version == "2.0.0" && !$0.inferences.isEmpty } }
        agent.signal(SIGTERM)
        #expect(agent.wait() == 0, "\(agent.log)")

        // A restart with the tampered model still at --model falls back to the kept 2.0.0.
        try TestModels.install(tampered, version: "3.0.0", at: model, signedFor: TestModels.bytes("mlp.onnx"))
        let again = try AgentProcess(port: broker.port, device: "dev-h", model: model, buffer: buffer, extra: Self.fast)
        try eventually("fallback start") { try deploys().count == 5 }
        #expect(try deploys()[4].fromVersion == "2.0.0" && deploys()[4].toVersion == "3.0.0" && deploys()[4].result == .failed)
        try eventually("2.0.0 runs after the restart") {
            try sub.telemetry("dev-h").filter { $0.model.version == "2.0.0" && !$0.inferences.isEmpty }.count >= 3
        }
        again.signal(SIGTERM)
        #expect(again.wait() == 0, "\(again.log)")
        #expect(checkContiguousInOrder(try sub.seqs("dev-h")) == nil)
    }

    @Test func ndjsonInputFromStdinEndsTheSessionAtItsEnd() throws {
        let broker = try Broker()
        let sub = try Subscriber(port: broker.port)
        let dir = TempDir()
        let rows = try String(contentsOfFile: Paths.model("mlp.inputs.ndjson"), encoding: .utf8).split(separator: "\n")
        let input = dir.path("rows.ndjson")
        try (rows.joined(separator: "\n") + "\n\n[1, 2]\n").write(toFile: input, atomically: true, encoding: .utf8)
        let agent = try AgentProcess(port: broker.port, device: "dev-n", model: Paths.model("mlp.onnx"), buffer: dir.path("buf.db"), extra: ["--input", "-", "--schema", "1"], stdinPath: input)
        #expect(agent.wait() == 0, "\(agent.log)")
        try eventually("exited") { try sub.telemetry("dev-n").flatMap(\.sessions).contains { $0.status == .exited } }
        let messages = try sub.telemetry("dev-n")
        let inferences = messages.flatMap(\.inferences)
        #expect(inferences.reduce(0) { $0 + $1.count } == Int64(rows.count + 1))
        #expect(inferences.reduce(0) { $0 + $1.errors } == 1)
        #expect(messages.flatMap(\.errors).map(\.code) == ["INPUT_INVALID"])
        #expect(messages.allSatisfy { $0.schemaVersion == 1 && $0.device.accelerator == "unknown" })
        #expect(messages.flatMap(\.sessions).last?.errors == 1)
    }

    @Test func aFullBufferDropsTheOldestAndReportsIt() throws {
        let broker = try Broker()
        let sub = try Subscriber(port: broker.port)
        broker.stop()
        let dir = TempDir()
        let agent = try AgentProcess(port: broker.port, device: "dev-o", model: Paths.model("mlp.onnx"), buffer: dir.path("buf.db"), extra: ["--window", "100ms", "--buffer-max-messages", "3"])
        try eventually("started") { agent.log.contains("started") }
        usleep(1_000_000)
        try broker.start()
        try eventually("the drop is reported, log: \(agent.log)") { try sub.telemetry("dev-o").flatMap(\.errors).contains { $0.code == "BUFFER_OVERFLOW" } }
        agent.signal(SIGTERM)
        #expect(agent.wait() == 0)
        #expect(agent.log.contains("buffer full"))
    }

    @Test func usageErrorsExit2() throws {
        let dir = TempDir()
        for args in [
            ["run", "--broker", "127.0.0.1:1", "--device-id", "bad/id", "--model", "m.onnx", "--trusted-key", Paths.testKeyHex],
            ["run", "--broker", "127.0.0.1:1", "--device-id", "d", "--model", "m.onnx", "--trusted-key", "abc"],
            ["run", "--broker", "127.0.0.1:1", "--device-id", "d", "--model", "m.onnx", "--trusted-key", Paths.testKeyHex, "--window", "soon"],
        ] {
            let p = try ChildProcess(Paths.agent, args + ["--buffer", dir.path("b.db")])
            #expect(p.wait() == 2, "\(args)")
        }
        // The contract's command line works without a key flag, reading the default key file;
        // without one it says so and exits 1 (it never runs unverified).
        if !FileManager.default.fileExists(atPath: "/etc/fleet-agent/trusted-keys") {
            let p = try ChildProcess(Paths.agent, ["run", "--broker", "127.0.0.1:1", "--device-id", "d", "--model", Paths.model("mlp.onnx"), "--buffer", dir.path("b.db")])
            let err = String(decoding: p.readStderr(), as: UTF8.self)
            #expect(p.wait() == 1)
            #expect(err.contains("/etc/fleet-agent/trusted-keys") && err.contains("--trusted-key"), "\(err)")
        }
    }
}
