import FleetCore
import Testing

@testable import FleetSim

@Suite struct FleetPlanTests {
    @Test func sameSeedSameFleetAndEverySkuPresent() {
        let a = FleetPlan.devices(count: 40, seed: 7)
        let b = FleetPlan.devices(count: 40, seed: 7)
        #expect(a == b)
        #expect(Set(a.map(\.deviceID)).count == 40)
        #expect(Set(a.map(\.profile.sku)) == Set(FleetPlan.profiles.map(\.sku)))
        let c = FleetPlan.devices(count: 40, seed: 8)
        #expect(a.map(\.rolloutRank) != c.map(\.rolloutRank))
    }

    @Test func sharesFollowProfilesWithLargestRemainder() {
        for n in [1, 3, 7, 10, 101, 1000] {
            let fleet = FleetPlan.devices(count: n, seed: 1)
            #expect(fleet.count == n)
            for p in FleetPlan.profiles {
                let k = fleet.filter { $0.profile.sku == p.sku }.count
                #expect(abs(Double(k) - Double(n) * p.share) < 1, "sku \(p.sku) of \(n)")
            }
        }
    }

    @Test func idsMatchTheContractPatternAndAllXavierAreAtTheDriftSite() {
        for d in FleetPlan.devices(count: 300, seed: 3) {
            #expect(d.deviceID.wholeMatch(of: /[A-Za-z0-9][A-Za-z0-9._-]{0,63}/) != nil)
            if d.profile.sku == "xavier-nx" { #expect(d.site == Scenario.driftSite) }
            if d.site == Scenario.driftSite { #expect(d.profile.sku == "xavier-nx") }
        }
    }
}

@Suite struct ScenarioTests {
    let fleet = FleetPlan.devices(count: 400, seed: 11)
    let minute: Int64 = 60_000

    func share(_ s: Scenario, at t: Int64, _ p: (DeviceCondition) -> Bool) -> Double {
        Double(fleet.filter { p(s.condition(of: $0, at: t)) }.count) / Double(fleet.count)
    }

    @Test func steadyNeverChanges() {
        let s = Scenario(.steady)
        for t in stride(from: Int64(0), to: 300 * minute, by: Int(7 * minute)) {
            for d in fleet.prefix(50) {
                #expect(s.condition(of: d, at: t) == DeviceCondition(modelVersion: Scenario.currentVersion))
            }
        }
        #expect(s.expectedAlerts.isEmpty)
    }

    @Test func badRolloutStagesFaultOnOneSkuAndRollback() {
        let s = Scenario(.badRollout)
        let onNew = { (c: DeviceCondition) in c.modelVersion == Scenario.newVersion }
        #expect(share(s, at: 5 * minute, onNew) == 0)
        #expect(abs(share(s, at: 12 * minute, onNew) - 0.05) < 0.03)
        #expect(abs(share(s, at: 22 * minute, onNew) - 0.25) < 0.06)
        #expect(abs(share(s, at: 35 * minute, onNew) - 0.5) < 0.08)
        #expect(share(s, at: 50 * minute, onNew) == 0)
        // Stages only add devices: a device on 1.5.0 at 25% is still on it at 50%.
        for d in fleet where s.condition(of: d, at: 22 * minute).modelVersion == Scenario.newVersion {
            #expect(s.condition(of: d, at: 35 * minute).modelVersion == Scenario.newVersion)
        }
        for d in fleet {
            let c = s.condition(of: d, at: 35 * minute)
            let faulty = c.modelVersion == Scenario.newVersion && d.profile.sku == Scenario.faultySku
            #expect((c.crashProbability > 0) == faulty)
            #expect((c.latencyFactor > 1) == faulty)
            #expect(c.inputShift == 0 && c.connected)
        }
    }

    @Test func driftOnlyAtTheSiteAndOnlyAfterOnset() {
        let s = Scenario(.drift)
        for d in fleet {
            #expect(s.condition(of: d, at: 64 * minute).inputShift == 0)
            #expect((s.condition(of: d, at: 66 * minute).inputShift > 0) == (d.site == Scenario.driftSite))
            #expect(s.condition(of: d, at: 66 * minute).crashProbability == 0)
        }
    }

    @Test func offlineWaveTakesAboutAFifthAndBringsThemBack() {
        let s = Scenario(.offlineWave)
        #expect(share(s, at: 19 * minute) { !$0.connected } == 0)
        #expect(abs(share(s, at: 25 * minute) { !$0.connected } - 0.2) < 0.06)
        #expect(share(s, at: 36 * minute) { !$0.connected } == 0)
    }

    @Test func stalledRolloutStopsAtThirtyPercent() {
        let s = Scenario(.stalledRollout)
        let onNew = { (c: DeviceCondition) in c.modelVersion == Scenario.newVersion }
        #expect(abs(share(s, at: 15 * minute, onNew) - 0.1) < 0.05)
        for t in [25, 60, 300, 3000] { #expect(abs(share(s, at: Int64(t) * minute, onNew) - 0.3) < 0.07) }
        #expect(fleet.allSatisfy { s.condition(of: $0, at: 300 * minute).crashProbability == 0 })
    }

    @Test func everyScenarioHasAnOnsetEventWhenItExpectsAlerts() {
        for n in Scenario.Name.allCases {
            let s = Scenario(n)
            #expect(s.events.map(\.atMs) == s.events.map(\.atMs).sorted())
            #expect(s.expectedAlerts.isEmpty == !s.events.contains { $0.name == "fault-onset" })
        }
    }
}

@Suite struct SimDeviceTests {
    let models = try! SimModels(versions: [Scenario.currentVersion, Scenario.newVersion], seed: 1)
    let t0: Int64 = 1_764_417_600_000

    /// Messages decode under the contract's own validator, with seq +1 each and the
    /// consistency rule (sketch count = histogram sum = count - errors) holding.
    @Test func messagesAreValidTelemetry() throws {
        let engine = SimInference(models: models)
        let spec = FleetPlan.devices(count: 8, seed: 2)[0]
        var d = SimDevice(spec: spec, version: Scenario.currentVersion, replayCapacity: 16)
        d.boot(nowMs: t0)
        var sessions: [SessionRecord] = []
        for k in 1...40 {
            let now = t0 + Int64(k) * 10_000
            var c = DeviceCondition(modelVersion: k > 20 ? Scenario.newVersion : Scenario.currentVersion)
            c.errorRate = 0.05
            let (seq, bytes) = d.tick(nowMs: now, windowMs: 10_000, condition: c, inferences: 20, engine: engine)
            #expect(seq == Int64(k))
            let m = try TelemetryDecoder.decode(bytes, receivedAtMs: now, topicDeviceID: spec.deviceID).get()
            #expect(m.seq == Int64(k) && m.sentAtMs == now && m.schemaVersion == 2)
            #expect(m.device.accelerator == spec.profile.accelerator)
            #expect(m.model.version == c.modelVersion)
            for r in m.records {
                #expect(r.tsMs <= now)
                if case .inference(let i) = r {
                    #expect(i.count == 20)
                    #expect(i.latencyUs.count == i.count - i.errors)
                    #expect(i.confidenceHist.reduce(0, +) == i.count - i.errors)
                }
                if case .session(let s) = r { sessions.append(s) }
                if case .deploy(let dep) = r {
                    #expect(k == 21 && dep.fromVersion == Scenario.currentVersion && dep.toVersion == Scenario.newVersion)
                }
            }
            #expect(d.message(seq: seq) == bytes)
        }
        // Every started session but the running one ended exactly once.
        let started = Set(sessions.filter { $0.status == .started }.map(\.sessionID))
        let ended = sessions.filter { $0.status.isTerminal }.map(\.sessionID)
        #expect(Set(ended).count == ended.count)
        #expect(started.subtracting(ended).count == 1)
        #expect(ended.count >= 4)  // 400 s of 30-90 s sessions, plus the restart for the deploy
        #expect(d.message(seq: 40 - 16) == nil)  // beyond the buffer
    }

    @Test func crashProbabilityShowsInSessions() {
        let engine = SimInference(models: models)
        var crashed = 0
        var ended = 0
        for spec in FleetPlan.devices(count: 20, seed: 4) {
            var d = SimDevice(spec: spec, version: Scenario.newVersion, replayCapacity: 4)
            d.boot(nowMs: t0)
            var c = DeviceCondition(modelVersion: Scenario.newVersion)
            c.crashProbability = 0.25
            for k in 1...60 { _ = d.tick(nowMs: t0 + Int64(k) * 10_000, windowMs: 10_000, condition: c, inferences: 1, engine: engine) }
            crashed += d.crashes
            ended += d.sessionsEnded
        }
        let rate = Double(crashed) / Double(ended)
        #expect(ended > 150 && abs(rate - 0.25) < 0.08, "\(crashed)/\(ended)")
    }

    /// The drift scenario works through the model: shifting the inputs moves the real model's
    /// confidence histogram far enough for the shipped PSI threshold (0.2).
    @Test func inputShiftMovesConfidenceThroughTheModel() {
        let engine = SimInference(models: models)
        func histogram(shift: Double) -> [Int64] {
            var h = [Int64](repeating: 0, count: 10)
            var s = InputSampler(seed: 99)
            for _ in 0..<5000 {
                let (_, conf) = engine.infer(Scenario.currentVersion, &s, shift: shift)!
                h[InferenceRecord.confidenceBin(conf)] += 1
            }
            return h
        }
        let base = histogram(shift: 0)
        let same = histogram(shift: 0)
        let drifted = histogram(shift: Scenario(.drift).condition(of: FleetPlan.devices(count: 10, seed: 1).first { $0.site == Scenario.driftSite }!, at: 66 * 60_000).inputShift)
        let psiSame = Drift.psi(actual: same, expected: base)!
        let psiDrift = Drift.psi(actual: drifted, expected: base)!
        let js = Drift.jensenShannonDistance(drifted, base)!
        #expect(psiSame < 0.05, "\(psiSame)")
        #expect(psiDrift > 0.4, "\(psiDrift): \(base) -> \(drifted)")
        #expect(js > 0.25, "\(js)")
        #expect(engine.runs == 15_000)
    }

    @Test func replayParse() {
        func p(_ s: String) -> (Int64, Int64)? { Array(s.utf8).withUnsafeBytes { ReplayParse.range($0) } }
        #expect(p("{\"from_seq\":3,\"to_seq\":9}")! == (3, 9))
        #expect(p("{ \"to_seq\": 12 , \"from_seq\": 10 }")! == (10, 12))
        #expect(p("{\"from_seq\":3}") == nil)
        #expect(p("garbage") == nil)
    }

    @Test func dueQueueOrders() {
        var q = DueQueue(capacity: 8)
        var r = SplitMix64(seed: 5)
        var expected: [Int64] = []
        for i in 0..<200 {
            let t = Int64(r.next() % 1000)
            q.push(t, i)
            expected.append(t)
        }
        var got: [Int64] = []
        while let (t, _) = q.peek() {
            got.append(t)
            q.pop()
        }
        #expect(got == expected.sorted())
    }
}
