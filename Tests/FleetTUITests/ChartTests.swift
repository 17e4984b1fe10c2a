import Foundation
import Testing

@testable import FleetTUI

@Suite struct SparklineTests {
    let g = Glyphs.unicode

    @Test func levelsSpanMinToMax() {
        #expect(Sparkline.render([0, 1, 2, 3, 4, 5, 6, 7], width: 8, glyphs: g) == "▁▂▃▄▅▆▇█")
        #expect(Sparkline.render([7, 0], width: 2, glyphs: g) == "█▁")
        #expect(Sparkline.render([10, 10, 10], width: 3, glyphs: g) == "▁▁▁")
        #expect(Sparkline.render([10, 10, 10], width: 3, glyphs: g, fromZero: true) == "███")
        #expect(Sparkline.render([0, 0], width: 2, glyphs: g, fromZero: true) == "▁▁")
        #expect(Sparkline.render([0, 5, 10], width: 3, glyphs: .ascii) == "_=#")
    }

    @Test func gapsAndShortSeries() {
        #expect(Sparkline.render([0, nil, 7], width: 3, glyphs: g) == "▁ █")
        // Shorter than the width: right-aligned (newest at the right edge).
        #expect(Sparkline.render([0, 7], width: 5, glyphs: g) == "   ▁█")
        #expect(Sparkline.render([], width: 3, glyphs: g) == "   ")
        #expect(Sparkline.render([nil, nil], width: 2, glyphs: g) == "  ")
        #expect(Sparkline.render([.nan, 1], width: 2, glyphs: g) == " ▁")
        #expect(Sparkline.render([1, 2], width: 0, glyphs: g) == "")
    }

    @Test func longSeriesAreAveragedFromTheNewestEnd() {
        #expect(Sparkline.resample([1, 2, 3, 4, 5, 6], to: 3) == [1.5, 3.5, 5.5])
        #expect(Sparkline.resample([1, 2, 3, 4, 5], to: 2) == [1.5, 4])
        #expect(Sparkline.resample([nil, nil, 1, 3], to: 2) == [nil, 2])
        #expect(Sparkline.resample([1, 2], to: 5) == [1, 2])
        for n in 1...70 {
            let xs = (0..<120).map { Double?(Double($0)) }
            #expect(Sparkline.render(xs, width: n, glyphs: g).count == n)
        }
    }

    @Test func barsUseEighths() {
        #expect(Sparkline.bar(1, width: 4, glyphs: g) == "████")
        #expect(Sparkline.bar(0, width: 4, glyphs: g) == "    ")
        #expect(Sparkline.bar(0.5, width: 4, glyphs: g) == "██  ")
        #expect(Sparkline.bar(0.53, width: 4, glyphs: g) == "██▏ ")
        #expect(Sparkline.bar(nil, width: 3, glyphs: g) == "   ")
        #expect(Sparkline.bar(2, width: 3, glyphs: g) == "███")
        #expect(Sparkline.bar(0.5, width: 4, glyphs: .ascii) == "##  ")
        for f in stride(from: 0.0, through: 1.0, by: 0.01) {
            #expect(Sparkline.bar(f, width: 7, glyphs: g).count == 7)
            #expect(Sparkline.bar(f, width: 7, glyphs: .ascii).count == 7)
        }
    }
}

@Suite struct TrendTests {
    @Test func directionWithTolerance() {
        #expect(Trend.between(1.1, 1.0) == .up)
        #expect(Trend.between(0.9, 1.0) == .down)
        #expect(Trend.between(1.04, 1.0) == .flat)
        #expect(Trend.between(nil, 1.0) == .unknown)
        #expect(Trend.between(1.0, nil) == .unknown)
        #expect(Trend.between(0.9992, 0.9995, relative: 0, absolute: 0.0005) == .flat)
        #expect(Trend.between(0.998, 0.9995, relative: 0, absolute: 0.0005) == .down)
        #expect(Trend.between(0.01, 0) == .up)
    }

    @Test func colourFollowsWhetherTheMoveIsGood() {
        #expect(Trend.up.style(higherIsBetter: true) == .good)
        #expect(Trend.up.style(higherIsBetter: false) == .bad)
        #expect(Trend.down.style(higherIsBetter: false) == .good)
        #expect(Trend.flat.style(higherIsBetter: false) == .plain)
        #expect(Trend.up.glyph(.unicode) == "↑" && Trend.down.glyph(.ascii) == "v")
    }
}

@Suite struct FormatTests {
    @Test func numbers() {
        #expect(Format.percent(0.99623) == "99.62%")
        #expect(Format.percent(nil) == "-")
        #expect(Format.percent(.nan) == "-")
        #expect(Format.percent(1) == "100.00%")
        #expect(Format.percent(0.0005, digits: 1) == "0.1%")
        #expect(Format.ms(1.234) == "1.23" && Format.ms(20.14) == "20.1" && Format.ms(350.4) == "350")
        #expect(Format.fixed(-0.0001, 3) == "0.000")
        #expect(Format.fixed(-1.25, 1) == "-1.3")
        #expect(Format.fixed(2.5, 0) == "3")
        #expect(Format.fixed(0.1, 3) == "0.100")
        #expect(Format.count(0) == "0" && Format.count(999) == "999" && Format.count(1000) == "1,000" && Format.count(1_234_567) == "1,234,567")
        #expect(Format.count(-12345) == "-12,345")
        #expect(Format.compact(5) == "5" && Format.compact(5.5) == "5.5" && Format.compact(999) == "999")
        #expect(Format.compact(1234) == "1.2k" && Format.compact(12_345) == "12k" && Format.compact(5_600_000) == "5.6M")
        #expect(Format.compact(nil) == "-")
    }

    @Test func agesAndDurations() {
        #expect(Format.age(0) == "0s" && Format.age(59_999) == "59s" && Format.age(60_000) == "1m")
        #expect(Format.age(3_600_000) == "1h" && Format.age(86_400_000 * 3) == "3d" && Format.age(-5) == "0s")
        #expect(Format.duration(45_000) == "45s")
        #expect(Format.duration(750_000) == "12m30s")
        #expect(Format.duration(3 * 3_600_000 + 5 * 60_000) == "3h05m")
        #expect(Format.duration(2 * 86_400_000 + 4 * 3_600_000) == "2d04h")
        #expect(Format.duration(nil) == "-")
    }

    @Test func utcTimesMatchFoundation() {
        #expect(Format.dateTime(t0) == "2025-11-29 12:00:00Z")
        #expect(Format.clock(t0 + 3_723_000) == "13:02:03Z")
        #expect(Format.shortDateTime(t0) == "11-29 12:00:00")
        #expect(Format.dateTime(0) == "1970-01-01 00:00:00Z")
        #expect(Format.dateTime(-1000) == "1969-12-31 23:59:59Z")
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd HH:mm:ss'Z'"
        f.timeZone = TimeZone(identifier: "UTC")
        f.locale = Locale(identifier: "en_US_POSIX")
        var x: UInt64 = 42
        for _ in 0..<2000 {
            x = x &* 6364136223846793005 &+ 1442695040888963407
            let ms = Int64(x % 8_000_000_000_000) - 1_000_000_000_000
            let expected = f.string(from: Date(timeIntervalSince1970: Double(ms.floorDiv(1000))))
            #expect(Format.dateTime(ms) == expected, "\(ms)")
        }
    }
}

extension Int64 {
    func floorDiv(_ d: Int64) -> Int64 { self >= 0 ? self / d : (self - d + 1) / d }
}
