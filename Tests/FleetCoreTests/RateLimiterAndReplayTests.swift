import Testing

@testable import FleetCore

@Suite struct RateLimiterTests {
    @Test func burstThenSteadyRate() {
        var r = RateLimiter(ratePerSecond: 10, burst: 5)
        func take(_ k: String, _ t: Int64) -> Bool { r.allow(k, nowMs: t) }
        let t: Int64 = 1_000_000
        #expect((0..<5).allSatisfy { _ in take("a", t) })
        #expect(!take("a", t))
        #expect(take("b", t))  // other devices are unaffected
        #expect(!take("a", t + 99))
        #expect(take("a", t + 100))  // one token per 100 ms
        #expect(!take("a", t + 100))
        // Over 10 s at full speed: about 10/s get through.
        var passed = 0
        for ms in stride(from: t + 200, to: t + 10_200, by: 1) where take("a", ms) { passed += 1 }
        #expect(passed >= 99 && passed <= 101)
    }

    @Test func clockGoingBackDoesNotMintTokens() {
        var r = RateLimiter(ratePerSecond: 1, burst: 1)
        func take(_ k: String, _ t: Int64) -> Bool { r.allow(k, nowMs: t) }
        #expect(take("a", 10_000))
        #expect(!take("a", 5_000))
        #expect(!take("a", 10_500))
        #expect(take("a", 11_000))
    }

    @Test func pruneForgetsRefilledBuckets() {
        var r = RateLimiter(ratePerSecond: 10, burst: 10)
        for i in 0..<100 { _ = r.allow("d\(i)", nowMs: 0) }
        #expect(r.trackedKeys == 100)
        r.prune(nowMs: 500)
        #expect(r.trackedKeys == 100)
        r.prune(nowMs: 1_000)
        #expect(r.trackedKeys == 0)
    }
}

@Suite struct ReplaySchedulerTests {
    @Test func asksAtOnceThenBacksOffThenGivesUp() {
        var s = ReplayScheduler(maxAttempts: 3, firstRetryMs: 1000)
        s.gapOpened(deviceID: "d", range: 5...9, nowMs: 0)
        let open: (String, ClosedRange<Int64>) -> [ClosedRange<Int64>] = { _, r in [r] }
        #expect(s.due(nowMs: 0, budget: 10, stillMissing: open) == [.init(deviceID: "d", fromSeq: 5, toSeq: 9, attempt: 1)])
        #expect(s.due(nowMs: 999, budget: 10, stillMissing: open).isEmpty)
        #expect(s.due(nowMs: 1000, budget: 10, stillMissing: open).map(\.attempt) == [2])
        #expect(s.due(nowMs: 2999, budget: 10, stillMissing: open).isEmpty)
        #expect(s.due(nowMs: 3000, budget: 10, stillMissing: open).map(\.attempt) == [3])
        #expect(s.due(nowMs: 100_000, budget: 10, stillMissing: open).isEmpty)
        #expect(s.givenUp == 1 && s.pendingCount == 0)
    }

    @Test func onlyWhatIsStillMissingIsAskedAgain() {
        var s = ReplayScheduler(maxAttempts: 5, firstRetryMs: 1000)
        s.gapOpened(deviceID: "d", range: 1...10, nowMs: 0)
        _ = s.due(nowMs: 0, budget: 10) { _, r in [r] }
        // 1...4 and 8...10 arrived meanwhile.
        let reqs = s.due(nowMs: 1000, budget: 10) { _, _ in [5...7] }
        #expect(reqs == [.init(deviceID: "d", fromSeq: 5, toSeq: 7, attempt: 2)])
        #expect(s.due(nowMs: 10_000, budget: 10) { _, _ in [] }.isEmpty)
        #expect(s.pendingCount == 0 && s.givenUp == 0)
    }

    @Test func budgetSpreadsAStormOverTicks() {
        var s = ReplayScheduler()
        for i in 0..<250 { s.gapOpened(deviceID: "d\(i)", range: 1...1, nowMs: 0) }
        let open: (String, ClosedRange<Int64>) -> [ClosedRange<Int64>] = { _, r in [r] }
        #expect(s.due(nowMs: 0, budget: 100, stillMissing: open).count == 100)
        #expect(s.due(nowMs: 0, budget: 100, stillMissing: open).count == 100)
        #expect(s.due(nowMs: 0, budget: 100, stillMissing: open).count == 50)
    }

    @Test func longRangesAreSplit() {
        var s = ReplayScheduler(maxRangeLength: 100)
        s.gapOpened(deviceID: "d", range: 1...250, nowMs: 0)
        let reqs = s.due(nowMs: 0, budget: 10) { _, r in [r] }
        #expect(reqs.map { $0.fromSeq...$0.toSeq } == [1...100, 101...200, 201...250])
    }
}
