import Testing

@testable import FleetCore

@Suite struct PromDurationTests {
    @Test(arguments: [
        ("30s", 30_000), ("5m", 300_000), ("1h", 3_600_000), ("7d", 604_800_000), ("1w", 604_800_000),
        ("250ms", 250), ("1h30m", 5_400_000), ("1d2h3m4s5ms", 93_784_005), ("0", 0),
    ] as [(String, Int64)])
    func parses(text: String, ms: Int64) { #expect(PromDuration.parseMs(text) == ms) }

    @Test(arguments: ["", "5", "m", "5x", "1m1h", "1h1h", "-5m", "1.5h", "5 m", "99999999999999999999y", "300000000y"])
    func rejects(text: String) { #expect(PromDuration.parseMs(text) == nil) }

    @Test func formatsBack() {
        for ms: Int64 in [1, 999, 1000, 90_000, 5_400_000, 93_784_005, 604_800_000] {
            #expect(PromDuration.parseMs(PromDuration.format(ms)) == ms)
        }
        #expect(PromDuration.format(90_000) == "1m30s")
    }
}

@Suite struct TerminalTextTests {
    @Test func escapesWhatCouldDriveATerminal() {
        #expect(TerminalText.inert("\u{1b}]0;pwned\u{07}") == "\\x1b]0;pwned\\x07")
        #expect(TerminalText.inert("a\u{9b}31m") == "a\\x9b31m")  // C1 CSI
        #expect(TerminalText.inert("x\u{202e}gnp.exe") == "x\\u{202e}gnp.exe")
        #expect(TerminalText.inert("tab\there\nnl\r") == "tab\\x09here\\x0anl\\x0d")
        #expect(TerminalText.inert("\u{7f}") == "\\x7f")
    }

    @Test func leavesOrdinaryTextAlone() {
        for s in ["cam-0042", "é€😀 日本語", "", "a b/c\\d"] { #expect(TerminalText.inert(s) == s) }
    }
}
