import FleetCore
import Foundation
import Testing

@testable import FleetTUI

#if canImport(Glibc)
    import Glibc
#endif

/// glibc's wcwidth (Swift's Glibc module leaves it out: it needs _XOPEN_SOURCE).
@_silgen_name("wcwidth") func glibcWcwidth(_ c: Int32) -> Int32

@Suite struct TerminalWidthTests {
    /// The table is glibc's wcwidth: check every Unicode scalar against the running glibc.
    @Test func everyScalarMatchesGlibc() throws {
        guard setlocale(LC_CTYPE, "C.UTF-8") != nil else {
            Issue.record("C.UTF-8 locale missing")
            return
        }
        var mismatches: [String] = []
        for v in UInt32(0)...0x10FFFF {
            guard let u = Unicode.Scalar(v) else { continue }
            let glibc = glibcWcwidth(Int32(bitPattern: v))
            let ours: Int32
            switch TerminalWidth.classify(u) {
            case .zero: ours = 0
            case .narrow: ours = 1
            case .wide: ours = 2
            case .unprintable: ours = -1
            }
            if glibc != ours && mismatches.count < 20 { mismatches.append(String(format: "U+%04X glibc %d ours %d", v, glibc, ours)) }
        }
        #expect(mismatches.isEmpty, "\(mismatches)")
    }

    @Test func columnsOfStrings() {
        #expect(TerminalWidth.columns("cam-0042") == 8)
        #expect(TerminalWidth.columns("相机") == 4)
        #expect(TerminalWidth.columns("e\u{301}") == 1)
        #expect(TerminalWidth.columns("🚀") == 2)
        #expect(TerminalWidth.columns("") == 0)
    }
}

@Suite struct SafeTextTests {
    @Test func asciiIsKeptAsIs() {
        let t = SafeText("dev-0042 1.4.0")
        #expect(t.text == "dev-0042 1.4.0" && t.width == 14)
    }

    @Test func escapeSequencesAreShownInert() {
        let t = SafeText(hostileTitle + " camera gone")
        #expect(t.text == "\\x1b]0;pwned\\x07 camera gone")
        #expect(t.width == t.text.count)
        #expect(!t.text.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F })
        // CSI, C1 controls, DEL, newlines and tabs too.
        #expect(SafeText("a\u{1b}[2Jb").text == "a\\x1b[2Jb")
        #expect(SafeText("x\u{9b}31m").text == "x\\x9b31m")
        #expect(SafeText("l1\nl2\tz\u{7f}").text == "l1\\x0al2\\x09z\\x7f")
    }

    @Test func invisibleAndReorderingCharactersAreEscaped() {
        #expect(SafeText("abc\u{202e}fed").text == "abc\\u{202e}fed")  // right-to-left override
        #expect(SafeText("a\u{200b}b").text == "a\\u{200b}b")  // zero-width space
        #expect(SafeText("a\u{2028}b").text == "a\\u{2028}b")  // line separator
        #expect(SafeText("\u{feff}x").text == "\\u{feff}x")  // byte-order mark
        #expect(SafeText("a\u{e0001}b").text == "a\\u{e0001}b")  // language tag
        #expect(SafeText("a\u{378}b").text == "a\\u{378}b")  // unassigned
        #expect(SafeText("\u{301}x").text == "\\u{301}x")  // combining mark without a base
        #expect(SafeText("e\u{301}").text == "e\u{301}")  // with one it stays
        #expect(SafeText("e\u{301}").width == 1)
    }

    @Test func wideCharactersAreMeasuredInColumns() {
        let t = SafeText("相机-01")
        #expect(t.width == 7)
        #expect(SafeText("🚀x").width == 3)
    }

    @Test func truncationKeepsColumnsAndAddsAnEllipsis() {
        #expect(SafeText("defect-detector").truncated(to: 8).text == "defect-…")
        #expect(SafeText("defect-detector").truncated(to: 8, ellipsis: "~").text == "defect-~")
        #expect(SafeText("short").truncated(to: 8).text == "short")
        // A wide character that would straddle the edge is dropped, not split.
        let cjk = SafeText("相机相机相机").truncated(to: 6)
        #expect(cjk.text == "相机…" && cjk.width == 5)
        #expect(SafeText("a相机").truncated(to: 4).text == "a相…")
        // Combining marks stay with their base.
        #expect(SafeText("e\u{301}e\u{301}e\u{301}e\u{301}").truncated(to: 3).text == "e\u{301}e\u{301}…")
        #expect(SafeText("abc").truncated(to: 0).text == "")
        #expect(SafeText("abcdef").truncated(to: 1).text == "…")
        // Escapes are truncated like any text (never cut into raw control bytes).
        let hostile = SafeText(hostileTitle).truncated(to: 6)
        #expect(hostile.text == "\\x1b]…" && !hostile.text.contains("\u{1b}"))
    }

    @Test func fittingPadsToExactWidth() {
        #expect(SafeText("ab").fitted(to: 5).text == "ab   ")
        #expect(SafeText("ab").fitted(to: 5, alignRight: true).text == "   ab")
        #expect(SafeText("相机相机").fitted(to: 5).width == 5)
        #expect(SafeText("相机相机").fitted(to: 5).text == "相机…")
        for n in 0..<12 {
            #expect(SafeText("相a机b🚀c\u{1b}").fitted(to: n).width == n)
        }
    }
}

@Suite struct CanvasTests {
    @Test func textIsClippedToTheCanvasAndMaxWidth() {
        var c = Canvas(width: 10, height: 2)
        let end = c.put(7, 0, "abcdef")
        #expect(end == 10)
        #expect(c.lines()[0] == "       abc")
        c.put(0, 1, "abcdef", maxWidth: 3)
        #expect(c.lines()[1] == "abc")
        c.put(0, 5, "off the canvas")
        #expect(c.lines().count == 2)
    }

    @Test func wideCharactersTakeTwoCellsAndNeverStraddleTheEdge() {
        var c = Canvas(width: 5, height: 1)
        c.put(0, 0, "相机相")
        // The third wide character would need columns 4-5: a blank instead.
        #expect(c.lines()[0] == "相机")
        #expect(c[1, 0].text == "" && c[4, 0].text == " ")
        // Overwriting half of a wide character blanks the other half.
        c.put(1, 0, "x")
        #expect(c[0, 0].text == " " && c[1, 0].text == "x")
        c.put(2, 0, "y")
        #expect(c[3, 0].text == " ")
    }

    @Test func combiningMarksJoinTheirBaseCell() {
        var c = Canvas(width: 4, height: 1)
        c.put(0, 0, "e\u{301}x")
        #expect(c[0, 0].text == "e\u{301}" && c[1, 0].text == "x")
    }

    @Test func hostileTextArrivesInert() {
        var c = Canvas(width: 40, height: 1)
        c.put(0, 0, hostileTitle + "title")
        #expect(c.lines()[0] == "\\x1b]0;pwned\\x07title")
        #expect(!c.cells.contains { $0.text.unicodeScalars.contains { $0.value < 0x20 } })
    }
}
