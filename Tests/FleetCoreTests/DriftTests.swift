import Foundation
import Testing

@testable import FleetCore

@Suite struct DriftTests {
    @Test func identicalDistributionsHaveNoDrift() {
        let h: [Int64] = [1, 5, 9, 20, 40, 60, 30, 10, 4, 1]
        #expect(Drift.psi(actual: h, expected: h) == 0)
        #expect(Drift.jensenShannonDistance(h, h)! < 1e-7)
        // Scale does not matter: shares are compared.
        #expect(abs(Drift.psi(actual: h.map { $0 * 7 }, expected: h)!) < 1e-12)
    }

    @Test func psiMatchesAHandComputation() {
        let a: [Int64] = [30, 70]
        let e: [Int64] = [50, 50]
        let expected = (0.3 - 0.5) * log(0.3 / 0.5) + (0.7 - 0.5) * log(0.7 / 0.5)
        #expect(abs(Drift.psi(actual: a, expected: e)! - expected) < 1e-12)
    }

    @Test func emptyBinsAreFlooredInPSI() {
        let a: [Int64] = [0, 100]
        let e: [Int64] = [50, 50]
        let expected = (0.0001 - 0.5) * log(0.0001 / 0.5) + (1.0 - 0.5) * log(1.0 / 0.5)
        let got = Drift.psi(actual: a, expected: e)!
        #expect(got.isFinite)
        #expect(abs(got - expected) < 1e-12)
        // Both empty in a bin: that bin contributes 0.
        #expect(Drift.psi(actual: [0, 10, 10], expected: [0, 10, 10]) == 0)
    }

    @Test func jensenShannonIsBoundedAndSymmetric() {
        #expect(abs(Drift.jensenShannonDistance([10, 0], [0, 10])! - 1) < 1e-12)  // disjoint: 1 with base 2
        let p: [Int64] = [5, 3, 2, 0, 9]
        let q: [Int64] = [1, 1, 8, 4, 0]
        let pq = Drift.jensenShannonDistance(p, q)!
        let qp = Drift.jensenShannonDistance(q, p)!
        #expect(abs(pq - qp) < 1e-12)
        #expect(pq > 0 && pq < 1)
        // Against a direct computation.
        func shares(_ x: [Int64]) -> [Double] { let t = Double(x.reduce(0, +)); return x.map { Double($0) / t } }
        let ps = shares(p), qs = shares(q)
        var d = 0.0
        for i in ps.indices {
            let m = (ps[i] + qs[i]) / 2
            if ps[i] > 0 { d += 0.5 * ps[i] * log2(ps[i] / m) }
            if qs[i] > 0 { d += 0.5 * qs[i] * log2(qs[i] / m) }
        }
        #expect(abs(pq - d.squareRoot()) < 1e-12)
    }

    @Test func noCountsMeansNoValue() {
        #expect(Drift.psi(actual: [0, 0], expected: [1, 1]) == nil)
        #expect(Drift.psi(actual: [1, 1], expected: [0, 0]) == nil)
        #expect(Drift.jensenShannonDistance([0, 0], [1, 1]) == nil)
        #expect(Drift.classMixPSI(actual: [:], expected: ["a": 1]) == nil)
    }

    @Test func classMixAlignsOnTheUnionOfNames() {
        let base: [String: Int64] = ["ok": 90, "defect": 10]
        let now: [String: Int64] = ["ok": 50, "defect": 10, "unknown": 40]
        let got = Drift.classMixPSI(actual: now, expected: base)!
        // union sorted: defect, ok, unknown
        let a = [10.0 / 100, 50.0 / 100, 40.0 / 100]
        let e = [10.0 / 100, 90.0 / 100, 0.0001]
        var want = 0.0
        for i in 0..<3 { want += (a[i] - e[i]) * log(a[i] / e[i]) }
        #expect(abs(got - want) < 1e-12)
        #expect(Drift.classMixPSI(actual: base, expected: base) == 0)
    }

    @Test func psiGrowsWithShift() {
        // A bell shifting right one bin at a time: PSI and JS increase monotonically.
        let base: [Int64] = [1, 4, 12, 25, 30, 18, 7, 2, 1, 0]
        var lastPSI = -1.0
        var lastJS = -1.0
        for shift in 0..<5 {
            var h = [Int64](repeating: 0, count: 10)
            for i in 0..<10 where i + shift < 10 { h[i + shift] += base[i] }
            let p = Drift.psi(actual: h, expected: base)!
            let j = Drift.jensenShannonDistance(h, base)!
            #expect(p > lastPSI && j > lastJS)
            lastPSI = p
            lastJS = j
        }
    }
}
