import Foundation
import Testing

/// Every scenario end to end, through `fleetwatch demo --headless`: a real mosquitto, the
/// simulated fleet running real inference, the ingester process with the rules, and the
/// demo's webhook pager. Scenario time runs at 60x, so an hour of fleet time takes a minute.
///
/// Time-to-detect is checked in scenario time: the page must reach the pager within `for` +
/// one evaluation interval + 5 s of the engine first seeing the condition (an evaluation tick
/// on event time), which bounds every delay of the live pipeline (broker, batching,
/// evaluation, outbox, HTTP); and the alert must not become active before the fault onset.
/// The time from the fault onset itself (which includes gathering `min_samples`) is printed.
@Suite(.serialized) struct ScenarioEndToEndTests {
    static let speed = 60.0
    static let devices = 100
    static let rules = CLI.repoRoot.appendingPathComponent("Tests/Fixtures/e2e/alerts.yaml").path

    struct Page {
        var status: String
        var labels: [String: String]
        var scenarioMs: Int64
        var startsAtMs: Int64?
        var name: String { labels["alertname"] ?? "" }
    }

    struct Run {
        var stdout: [String]
        var pages: [Page]
        var onsetMs: Int64?
        var simulated: [String: Int64]
        var dir: String
        var ingest: [String: Any]

        func firing(_ name: String) -> [Page] { pages.filter { $0.name == name && $0.status == "firing" } }
        func resolved(_ name: String) -> [Page] { pages.filter { $0.name == name && $0.status == "resolved" } }
        var firingNames: Set<String> { Set(pages.filter { $0.status == "firing" }.map(\.name)) }
    }

    /// Runs the demo headless for `minutes` of scenario time and collects what happened.
    func runDemo(_ scenario: String, minutes: Double, rules: String = rules) throws -> Run {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fw-scenario-\(scenario)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let events = dir + "/events.jsonl"
        let wallSeconds = Int((minutes * 60 / Self.speed).rounded(.up))
        // The scenario starts on a clock hour, so the drift baselines (first:1h, whole clock
        // hours) cover the same part of the story in every run. From a random minute of the
        // hour, the stalled rollout's canary sometimes got a first hour of a few minutes and a
        // few devices as its baseline and paged drift once the rollout widened (docs/rules.md).
        let hourStart = Int64(Date().timeIntervalSince1970 * 1000) / 3_600_000 * 3_600_000
        let out = try CLI.run("fleetwatch", [
            "demo", "--headless", "--duration", "\(wallSeconds)s", "--scenario", scenario, "--devices", "\(Self.devices)",
            "--start", "\(hourStart)",
            "--speed", "\(Self.speed)", "--rules", rules, "--keep", "--events-log", events, "--inferences", "10",
        ])
        #expect(out.status == 0, "demo failed: \(out.stderr)")
        let stdout = out.stdout.split(separator: "\n").map(String.init)
        var pages: [Page] = []
        var onset: Int64?
        var simulated: [String: Int64] = [:]
        for line in try String(contentsOfFile: events, encoding: .utf8).split(separator: "\n") {
            let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            if obj["type"] as? String == "page" {
                pages.append(Page(status: obj["status"] as! String, labels: obj["labels"] as! [String: String], scenarioMs: (obj["scenario_ms"] as! NSNumber).int64Value, startsAtMs: Self.ms(obj["startsAt"])))
            } else if let l = obj["line"] as? String {
                let parts = l.split(separator: " ")
                if parts.first == "EVENT", parts.count > 2, parts[2] == "fault-onset", onset == nil { onset = Int64(parts[1]) }
                if parts.first == "SIMULATED" {
                    for kv in parts.dropFirst() {
                        let p = kv.split(separator: "=")
                        if p.count == 2, let v = Int64(p[1]) { simulated[String(p[0])] = v }
                    }
                }
            }
        }
        // The work directory is named on stderr; its database holds the counters.
        let work = out.stderr.split(separator: "\n").compactMap { l -> String? in
            guard let r = l.range(of: "work directory ") else { return nil }
            return String(l[r.upperBound...])
        }.first ?? ""
        let db = work + "/fleet.db"
        let ingestOut = try CLI.run("fleetwatch", ["query", "ingest", "--db", db, "--format", "json"])
        let ingest = (try? JSONSerialization.jsonObject(with: Data(ingestOut.stdout.utf8)) as? [String: Any]) ?? [:]
        if !work.isEmpty { try? FileManager.default.removeItem(atPath: work) }
        try? FileManager.default.removeItem(atPath: dir)
        // The contract's lines on stdout match the pager's record.
        #expect(stdout.filter { $0.hasPrefix("PAGE ") }.count == pages.count)
        #expect(stdout.last?.hasPrefix("SUMMARY pages=\(pages.count) ") == true, "\(stdout.suffix(3))")
        let run = Run(stdout: stdout, pages: pages, onsetMs: onset, simulated: simulated, dir: work, ingest: ingest)
        print("scenario \(scenario): pages \(pages.map { "\($0.status) \($0.name) \($0.labels["model_version"] ?? "") \($0.labels["sku"] ?? "") @\(($0.scenarioMs - (onset ?? 0)) / 1000)s" }); simulated \(simulated); ingest \(ingest)")
        return run
    }

    static func ms(_ iso: Any?) -> Int64? {
        guard let s = iso as? String else { return nil }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: s) { return Int64((d.timeIntervalSince1970 * 1000).rounded()) }
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: s).map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) }
    }

    /// The first firing page of `name` for `labels` arrived within one evaluation interval + 5 s
    /// (scenario time) of the alert's `startsAt` (the evaluation that fired it, `for` after it
    /// became active): so within `for` + interval + 5 s of the engine first seeing the condition.
    /// And it did not become active before the fault. Returns the time-to-detect from the
    /// fault onset, seconds of scenario time.
    @discardableResult
    func checkDetection(_ run: Run, _ name: String, _ labels: [String: String], forSeconds: Int64, intervalSeconds: Int64) -> Double? {
        guard let page = run.firing(name).first(where: { p in labels.allSatisfy { p.labels[$0.key] == $0.value } }) else {
            Issue.record("no firing page for \(name) \(labels)")
            return nil
        }
        guard let fired = page.startsAtMs else {
            Issue.record("\(name): page without startsAt")
            return nil
        }
        let bound = (intervalSeconds + 5) * 1000
        #expect(page.scenarioMs - fired <= bound, "\(name): page \(page.scenarioMs - fired) ms after the evaluation that fired it; bound \(bound) ms")
        #expect(page.scenarioMs >= fired)
        if let onset = run.onsetMs {
            #expect(fired - forSeconds * 1000 >= onset, "\(name) became active \(onset - fired + forSeconds * 1000) ms before the fault")
            return Double(page.scenarioMs - onset) / 1000
        }
        return nil
    }

    func checkClean(_ run: Run) {
        let q = run.ingest["quarantined"] as? [String: Any] ?? [:]
        #expect(q.isEmpty, "quarantined: \(q)")
        #expect((run.ingest["received"] as? Int ?? 0) > Self.devices * 10)
        #expect((run.simulated["dropped"] ?? -1) == 0)
    }

    @Test func steadyFleetPagesNobody() throws {
        let run = try runDemo("steady", minutes: 40)
        #expect(run.pages.isEmpty, "\(run.pages.map(\.name))")
        checkClean(run)
    }

    @Test func badRolloutPagesTheFaultyCohortOnlyAndRollbackResolves() throws {
        let run = try runDemo("bad-rollout", minutes: 130)
        let cohort = ["model_version": "1.5.0", "sku": "rpi5-hailo8"]
        #expect(run.firingNames == ["CrashFreeSessionsLow", "InferenceLatencyP95High"], "\(run.firingNames)")
        for p in run.pages {
            #expect(p.labels["model_version"] == "1.5.0" && p.labels["sku"] == "rpi5-hailo8", "page for another cohort: \(p.labels)")
        }
        let crash = checkDetection(run, "CrashFreeSessionsLow", cohort, forSeconds: 300, intervalSeconds: 30)
        let latency = checkDetection(run, "InferenceLatencyP95High", cohort, forSeconds: 300, intervalSeconds: 30)
        print("bad-rollout time-to-detect from the canary: crash-free \(crash ?? -1) s, latency \(latency ?? -1) s")
        // The rollback (45m) resolves both: latency when its 15m window has passed, crash-free
        // after its 1h window and keep_firing_for 10m.
        #expect(run.resolved("InferenceLatencyP95High").count == 1)
        #expect(run.resolved("CrashFreeSessionsLow").count == 1)
        checkClean(run)
    }

    @Test func driftPagesTheDriftingSiteCohortOnly() throws {
        let run = try runDemo("drift", minutes: 135)
        let cohort = ["model_version": "1.4.0", "sku": "xavier-nx"]
        #expect(run.firingNames == ["ConfidenceDriftPSI", "ConfidenceDriftJS"], "\(run.firingNames)")
        for p in run.pages { #expect(p.labels["sku"] == "xavier-nx", "page for another cohort: \(p.labels)") }
        let psi = checkDetection(run, "ConfidenceDriftPSI", cohort, forSeconds: 900, intervalSeconds: 60)
        let js = checkDetection(run, "ConfidenceDriftJS", cohort, forSeconds: 900, intervalSeconds: 60)
        print("drift time-to-detect from the shift: PSI \(psi ?? -1) s, JS \(js ?? -1) s")
        checkClean(run)
    }

    @Test func offlineWavePagesAndLosesNothing() throws {
        let run = try runDemo("offline-wave", minutes: 48)
        #expect(run.firingNames == ["DevicesOffline"], "\(run.firingNames)")
        let ttd = checkDetection(run, "DevicesOffline", [:], forSeconds: 300, intervalSeconds: 30)
        print("offline-wave time-to-detect: \(ttd ?? -1) s")
        #expect(run.resolved("DevicesOffline").count == 1)
        // Nothing is lost: every message the fleet produced is stored once, no gap stays open,
        // and the devices' buffers were emptied.
        #expect(run.simulated["unsent"] == 0)
        #expect((run.simulated["resent"] ?? 0) > 0, "the wave should have made devices buffer")
        #expect(run.ingest["stored"] as? Int == run.simulated["messages"].map(Int.init), "stored \(run.ingest["stored"] ?? "-") of \(run.simulated["messages"] ?? -1)")
        #expect(run.ingest["open_gaps"] as? Int == 0)
        checkClean(run)
    }

    @Test func stalledRolloutPagesAdoption() throws {
        // RolloutStalled waits 6h in the shipped rules; 30m here so the test takes a minute.
        let text = try String(contentsOfFile: Self.rules, encoding: .utf8)
        let short = text.replacingOccurrences(of: "for: 6h", with: "for: 30m")
        #expect(short != text)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("stalled-\(UUID().uuidString.prefix(8)).yaml").path
        try short.write(toFile: path, atomically: true, encoding: .utf8)
        let run = try runDemo("stalled-rollout", minutes: 50, rules: path)
        #expect(run.firingNames == ["RolloutStalled"], "\(run.firingNames)")
        let ttd = checkDetection(run, "RolloutStalled", [:], forSeconds: 1800, intervalSeconds: 60)
        print("stalled-rollout time-to-detect: \(ttd ?? -1) s")
        checkClean(run)
    }
}

/// Usage errors of `simulate` and `demo` exit 2 with one clear line (CONTRACTS section 7).
@Suite struct SimulateCLITests {
    @Test(arguments: [
        (["simulate", "--broker", "127.0.0.1:1883", "--devices", "0"], "--devices"),
        (["simulate", "--broker", "127.0.0.1:1883", "--devices", "5", "--scenario", "meltdown"], "bad-rollout"),
        (["simulate", "--broker", "127.0.0.1:notaport", "--devices", "5"], "HOST:PORT"),
        (["simulate", "--broker", "127.0.0.1:1883", "--devices", "5", "--speed", "0"], "--speed"),
        (["simulate", "--broker", "127.0.0.1:1883", "--devices", "5", "--duration", "soon"], "--duration"),
        (["demo", "--headless", "--scenario", "meltdown"], "offline-wave"),
        (["demo", "--headless", "--duration", "forever"], "--duration"),
    ])
    func usageErrorsExit2(args: [String], mentions: String) throws {
        let out = try CLI.run("fleetwatch", args)
        #expect(out.status == 2, "\(args): \(out.stderr)")
        #expect(out.stderr.contains(mentions), "\(args): \(out.stderr)")
    }

    @Test func demoWithoutATerminalSaysUseHeadless() throws {
        let out = try CLI.run("fleetwatch", ["demo"])
        #expect(out.status == 1)
        #expect(out.stderr.contains("--headless"), "\(out.stderr)")
    }

    @Test func demoWithAMissingRulesFileSaysSo() throws {
        let out = try CLI.run("fleetwatch", ["demo", "--headless", "--duration", "5s", "--rules", "/nonexistent/alerts.yaml"])
        #expect(out.status == 1)
        #expect(out.stderr.contains("/nonexistent/alerts.yaml"), "\(out.stderr)")
    }
}
