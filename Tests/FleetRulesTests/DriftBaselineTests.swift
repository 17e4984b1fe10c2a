import FleetCore
import Foundation
import Testing

@testable import FleetRules

/// Which rollups make up a drift baseline (`first:DUR`, `version:V`), and the drift values a
/// rule sees against it. Pure: cohorts and times in, plans and numbers out.
@Suite struct DriftBaselineTests {
    static let h: Int64 = 3_600_000

    /// Two versions on two SKUs; each fine cohort's first hour with a histogram.
    static let cohorts: [DriftBaseline.Cohort] = [
        .init(id: 1, labels: ["model_name": "det", "model_version": "1.4.0", "sku": "orin"], firstHour: 100),
        .init(id: 2, labels: ["model_name": "det", "model_version": "1.4.0", "sku": "xavier"], firstHour: 105),
        .init(id: 3, labels: ["model_name": "det", "model_version": "1.5.0", "sku": "orin"], firstHour: 130),
        .init(id: 4, labels: ["model_name": "det", "model_version": "1.5.0", "sku": "xavier"], firstHour: 140),
    ]

    @Test func firstDayPerGroupOnlyOnceItHasEnded() {
        let b = DriftBaseline.first(durationMs: 24 * Self.h)
        #expect(b.plan(by: ["model_version"], cohorts: Self.cohorts, asOfMs: 124 * Self.h - 1).isEmpty)
        #expect(b.plan(by: ["model_version"], cohorts: Self.cohorts, asOfMs: 124 * Self.h) == [
            ["model_version": "1.4.0"]: .init(cohorts: [1, 2], fromHour: 100, toHour: 124),
        ])
        #expect(b.plan(by: ["model_version"], cohorts: Self.cohorts, asOfMs: 154 * Self.h) == [
            ["model_version": "1.4.0"]: .init(cohorts: [1, 2], fromHour: 100, toHour: 124),
            ["model_version": "1.5.0"]: .init(cohorts: [3, 4], fromHour: 130, toHour: 154),
        ])
        // By version and SKU: each pair its own first day.
        #expect(b.plan(by: ["model_version", "sku"], cohorts: Self.cohorts, asOfMs: 129 * Self.h) == [
            ["model_version": "1.4.0", "sku": "orin"]: .init(cohorts: [1], fromHour: 100, toHour: 124),
            ["model_version": "1.4.0", "sku": "xavier"]: .init(cohorts: [2], fromHour: 105, toHour: 129),
        ])
        // The whole fleet: one baseline from the very first hour.
        #expect(b.plan(by: [], cohorts: Self.cohorts, asOfMs: 200 * Self.h) == [[:]: .init(cohorts: [1, 2, 3, 4], fromHour: 100, toHour: 124)])
        #expect(b.referenceKey(["model_version": "1.5.0", "sku": "orin"]) == ["model_version": "1.5.0", "sku": "orin"])
    }

    @Test func durationsAreWholeHoursAtLeastOne() {
        #expect(DriftBaseline.first(durationMs: 90 * 60_000).plan(by: [], cohorts: Self.cohorts, asOfMs: 101 * Self.h)[[:]]?.toHour == 101)
        #expect(DriftBaseline.first(durationMs: 30 * 60_000).plan(by: [], cohorts: Self.cohorts, asOfMs: 101 * Self.h)[[:]]?.toHour == 101)
        #expect(DriftBaseline.first(durationMs: 48 * Self.h).plan(by: [], cohorts: Self.cohorts, asOfMs: 148 * Self.h)[[:]]?.toHour == 148)
    }

    @Test func versionBaselineIsTheFirstDayOfThatVersionWithTheGroupsOtherLabels() {
        let b = DriftBaseline.version("1.4.0")
        // By version and SKU: 1.5.0 on orin is compared with 1.4.0 on orin, and so on.
        #expect(b.plan(by: ["model_version", "sku"], cohorts: Self.cohorts, asOfMs: 124 * Self.h) == [
            ["sku": "orin"]: .init(cohorts: [1], fromHour: 100, toHour: 124),
        ])
        let both = b.plan(by: ["sku", "model_version"], cohorts: Self.cohorts, asOfMs: 129 * Self.h)
        #expect(both == [
            ["sku": "orin"]: .init(cohorts: [1], fromHour: 100, toHour: 124),
            ["sku": "xavier"]: .init(cohorts: [2], fromHour: 105, toHour: 129),
        ])
        #expect(b.referenceKey(["model_version": "1.5.0", "sku": "xavier"]) == ["sku": "xavier"])
        // By version only: the whole of 1.4.0's first day, for every version.
        #expect(b.plan(by: ["model_version"], cohorts: Self.cohorts, asOfMs: 124 * Self.h) == [[:]: .init(cohorts: [1, 2], fromHour: 100, toHour: 124)])
        #expect(b.referenceKey(["model_version": "1.5.0"]) == [:])
        // Per device: the device's other labels (here its SKU) on 1.4.0.
        #expect(b.plan(by: ["device_id", "sku"], cohorts: Self.cohorts, asOfMs: 124 * Self.h) == [["sku": "orin"]: .init(cohorts: [1], fromHour: 100, toHour: 124)])
        #expect(b.referenceKey(["device_id": "cam-1", "sku": "orin"]) == ["sku": "orin"])
        // A version without data has no baseline: the drift signal is null.
        #expect(DriftBaseline.version("9.9.9").plan(by: ["model_version"], cohorts: Self.cohorts, asOfMs: 1000 * Self.h).isEmpty)
        // Its first day not over yet: null as well.
        #expect(DriftBaseline.version("1.5.0").plan(by: [], cohorts: Self.cohorts, asOfMs: 154 * Self.h - 1).isEmpty)
    }

    @Test func firstHasNoPerDeviceBaseline() {
        #expect(DriftBaseline.default.plan(by: ["device_id"], cohorts: Self.cohorts, asOfMs: 1000 * Self.h).isEmpty)
    }

    /// Half the window's confident inferences moved from bin 9 to bin 4, against a baseline all in
    /// bin 9: PSI = 0.4999 ln(5000) + 0.5 ln 2 (empty bins floored at 0.0001), JS distance
    /// sqrt(0.311278...) with base-2 logarithms.
    @Test func driftVerdictsAgainstABaselineHaveExactValues() throws {
        var agg = CohortAggregate(windowMs: Self.h)
        agg.inferences = 100
        agg.confidenceHist = [0, 0, 0, 0, 50, 0, 0, 0, 0, 50]
        agg.classes = ["ok": 50, "defect": 50]
        let noBaseline = agg
        agg.baselineHist = [0, 0, 0, 0, 0, 0, 0, 0, 0, 100]
        agg.baselineClasses = ["ok": 100]
        func rule(_ s: Signal, _ threshold: Double, minSamples: Int64 = 0) throws -> AlertRule {
            let text = """
                groups: [{name: g, rules: [{alert: D, signal: \(s.rawValue), baseline: "version:1.4.0", op: ">", threshold: \(threshold), min_samples: \(minSamples)}]}]
                """
            return try RulesParser.parse(text, file: "t.yaml").get().allRules[0]
        }
        let psi = try #require(RuleEvaluation.verdicts(try rule(.confidencePSI, 0.2), cohorts: [(["model_version": "1.5.0"], agg)]).first)
        #expect(abs(psi.value! - (0.4999 * log(5000.0) + 0.5 * log(2.0))) < 1e-12)
        #expect(abs(psi.value! - 4.60431846666895) < 1e-12 && psi.holds)
        let js = try #require(RuleEvaluation.verdicts(try rule(.confidenceJS, 0.6), cohorts: [([:], agg)]).first)
        #expect(abs(js.value! - 0.5579230452841438) < 1e-12 && !js.holds)
        // Class mix: ok 0.5 vs 1.0, defect 0.5 vs floor: the same numbers.
        let mix = try #require(RuleEvaluation.verdicts(try rule(.classMixPSI, 5), cohorts: [([:], agg)]).first)
        #expect(abs(mix.value! - 4.60431846666895) < 1e-12 && !mix.holds)
        // Without a baseline (none yet, or the version has no data): no verdict at all.
        #expect(RuleEvaluation.verdicts(try rule(.confidencePSI, 0.2), cohorts: [([:], noBaseline)]).isEmpty)
        // Below min_samples: no verdict either.
        #expect(RuleEvaluation.verdicts(try rule(.confidencePSI, 0.2, minSamples: 101), cohorts: [([:], agg)]).isEmpty)
    }
}
