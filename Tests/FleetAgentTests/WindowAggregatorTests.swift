import FleetCore
import Testing

@testable import FleetAgent

@Suite struct WindowAggregatorTests {
    @Test func emptyWindowIsAValidRecord() {
        var a = WindowAggregator()
        let (r, errors) = a.finish(endMs: 1_000, windowMs: 10_000)
        #expect(r.count == 0 && r.errors == 0 && r.latencyUs.isEmpty)
        #expect(r.confidenceHist == [Int64](repeating: 0, count: 10))
        #expect(r.classCounts.isEmpty && errors.isEmpty)
        #expect(r.windowMs == 10_000 && r.tsMs == 1_000)
    }

    @Test func countsAreConsistentWithTheContract() {
        var a = WindowAggregator()
        let table: [(latency: Double, confidence: Double, cls: Int)] = [
            (12.5, 0.95, 3), (0.4, 1.0, 3), (250, 0.05, 0), (99, 0.55, 7), (12, 1.7, 3), (13, -0.2, 1), (14, .nan, 2),
        ]
        for row in table { a.recordSuccess(latencyUs: row.latency, confidence: row.confidence, classIndex: row.cls) }
        a.recordError(tsMs: 5, code: "INJECTED_FAULT", message: "boom")
        a.recordError(tsMs: 6, code: "INFERENCE_FAILED", message: "nan")
        let (r, errors) = a.finish(endMs: 10_000, windowMs: 10_000)
        #expect(r.count == 9 && r.errors == 2)
        #expect(r.latencyUs.count == r.count - r.errors)
        #expect(r.confidenceHist.reduce(0, +) == r.count - r.errors)
        // 0.95, 1.0 and the clamped 1.7 in the last bin; -0.2 and NaN in the first.
        #expect(r.confidenceHist == [3, 0, 0, 0, 0, 1, 0, 0, 0, 3])
        #expect(r.classCounts == [ClassCount(name: "class_0", count: 1), ClassCount(name: "class_1", count: 1), ClassCount(name: "class_2", count: 1), ClassCount(name: "class_3", count: 3), ClassCount(name: "class_7", count: 1)])
        #expect(errors.map(\.code) == ["INJECTED_FAULT", "INFERENCE_FAILED"])
        #expect(r.latencyUs.min == 0.4 && r.latencyUs.max == 250)
    }

    @Test func finishResets() {
        var a = WindowAggregator()
        a.recordSuccess(latencyUs: 10, confidence: 0.5, classIndex: 1)
        _ = a.finish(endMs: 1, windowMs: 1)
        let (r, _) = a.finish(endMs: 2, windowMs: 0)
        #expect(r.count == 0 && r.classCounts.isEmpty)
        #expect(r.windowMs == 1)  // never 0: the schema needs window_ms >= 1
    }

    @Test func errorRecordsAreCappedPerWindow() {
        var a = WindowAggregator()
        for i in 0..<(WindowAggregator.maxErrorRecords + 7) { a.recordError(tsMs: Int64(i), code: "INJECTED_FAULT", message: "x") }
        let (r, errors) = a.finish(endMs: 100, windowMs: 100)
        #expect(r.errors == Int64(WindowAggregator.maxErrorRecords + 7))
        #expect(errors.count == WindowAggregator.maxErrorRecords + 1)
        #expect(errors.last?.code == "ERRORS_SUPPRESSED" && errors.last?.message.hasPrefix("7 more") == true)
    }

    @Test func manyClassesFoldIntoClassOther() {
        var a = WindowAggregator()
        for c in 0..<300 { a.recordSuccess(latencyUs: 1, confidence: 0.5, classIndex: c) }
        let (r, _) = a.finish(endMs: 1, windowMs: 1)
        #expect(r.classCounts.count == WindowAggregator.maxClasses)
        #expect(r.classCounts.last == ClassCount(name: "class_other", count: 300 - 255))
    }

    @Test func inputStatsForSchema2() {
        var a = WindowAggregator(trackInputs: true)
        for row: [Float] in [[1, 10], [3, 10], [5, 10]] {
            row.withUnsafeBufferPointer { a.recordSuccess(latencyUs: 1, confidence: 0.5, classIndex: 0, input: $0) }
        }
        let (r, _) = a.finish(endMs: 1, windowMs: 1)
        #expect(r.inputStats.count == 2)
        #expect(r.inputStats[0] == FeatureStats(name: "f0", mean: 3, std: (8.0 / 3).squareRoot(), min: 1, max: 5))
        #expect(r.inputStats[1].std == 0 && r.inputStats[1].mean == 10)
    }

    @Test func longMessagesAreClipped() {
        var a = WindowAggregator()
        a.recordError(tsMs: 1, code: "INPUT_INVALID", message: String(repeating: "é", count: 600))
        let (_, errors) = a.finish(endMs: 1, windowMs: 1)
        #expect(errors[0].message.unicodeScalars.count == 512)
    }
}
