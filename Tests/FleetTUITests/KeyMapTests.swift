import Testing

@testable import FleetTUI

@Suite struct KeyMapTests {
    @Test func noKeyIsBoundTwiceInOneContext() {
        for context in KeyContext.allCases {
            var seen: [Key: Command] = [:]
            for b in KeyMap.bindings where b.context == context {
                for k in b.keys {
                    if let other = seen[k], other != b.command { Issue.record("\(k) bound to \(other) and \(b.command) in \(context)") }
                    seen[k] = b.command
                }
            }
        }
    }

    @Test func helpIsGeneratedFromTheTable() {
        let sections = KeyMap.helpSections()
        let rows = sections.flatMap(\.1)
        #expect(rows.count == KeyMap.bindings.count)
        for b in KeyMap.bindings { #expect(rows.contains { $0.0 == b.display && $0.1 == b.help }) }
        let help = HelpView.lines().map(\.0).joined(separator: "\n")
        for b in KeyMap.bindings { #expect(help.contains(b.help)) }
        #expect(help.contains(":by LABEL"))
    }

    @Test func dispatchPrefersTheMostSpecificContext() {
        #expect(KeyMap.command(for: .enter, in: [.devices, .table, .global]) == .open)
        #expect(KeyMap.command(for: .char("q"), in: [.drill, .global]) == .quit)
        #expect(KeyMap.command(for: .char("j"), in: [.drill, .global]) == .down)
        #expect(KeyMap.command(for: .char("/"), in: [.drill, .global]) == nil)
        #expect(KeyMap.command(for: .char("s"), in: [.cohorts, .table, .global]) == .cycleSparkline)
        #expect(KeyMap.command(for: .char("s"), in: [.devices, .table, .global]) == nil)
    }

    @Test func everyCommandTheStateHandlesHasAKey() {
        let bound = Set(KeyMap.bindings.map(\.command))
        let all: [Command] = [.quit, .back, .help, .show(.cohorts), .show(.devices), .show(.alerts), .show(.versions), .nextView, .previousView,
                              .commandMode, .filterMode, .clearFilter, .up, .down, .pageUp, .pageDown, .top, .bottom, .sortLeft,
                              .sortRight, .reverseSort, .open, .cycleSparkline, .refresh]
        for c in all { #expect(bound.contains(c), "\(c) has no key") }
    }

    @Test func hintsComeFromTheTable() {
        let hints = KeyMap.hints(for: [.devices, .table, .global])
        #expect(hints.contains { $0.0 == "q" } && hints.contains { $0.0 == "?" } && hints.contains { $0.0 == "Enter" })
        for (k, _) in hints { #expect(KeyMap.bindings.contains { $0.display == k }) }
    }

    @Test func terminalCharactersDecode() {
        #expect(NCursesScreen.key(forCharacter: 13) == .enter)
        #expect(NCursesScreen.key(forCharacter: 27) == .escape)
        #expect(NCursesScreen.key(forCharacter: 3) == .ctrl("c"))
        #expect(NCursesScreen.key(forCharacter: 127) == .backspace)
        #expect(NCursesScreen.key(forCharacter: 9) == .tab)
        #expect(NCursesScreen.key(forCharacter: 0x76F8) == .char("相"))
        #expect(NCursesScreen.key(forCharacter: 0x1F) == .unknown)
    }
}

@Suite struct CommandsTests {
    @Test func views() {
        #expect(Commands.parse("devices") == .success(.show(.devices)))
        #expect(Commands.parse("dev") == .success(.show(.devices)))
        #expect(Commands.parse("d") == .success(.show(.devices)))
        #expect(Commands.parse("co") == .success(.show(.cohorts)))
        #expect(Commands.parse("al") == .success(.show(.alerts)))
        #expect(Commands.parse("versions") == .success(.show(.versions)))
        #expect(Commands.parse("  ") == .success(.none))
        #expect(Commands.parse("q") == .success(.quit))
        #expect(Commands.parse("quit") == .success(.quit))
    }

    @Test func arguments() {
        #expect(Commands.parse("by model_version,firmware") == .success(.by(["model_version", "firmware"])))
        #expect(Commands.parse("by version sku version") == .success(.by(["model_version", "sku"])))
        #expect(Commands.parse("sort p95 desc") == .success(.sort("p95", descending: true)))
        #expect(Commands.parse("sort device") == .success(.sort("device", descending: nil)))
        #expect(Commands.parse("filter sku=xavier-nx !state=online") == .success(.filter("sku=xavier-nx !state=online")))
        #expect(Commands.parse("drill cam-01") == .success(.device("cam-01")))
    }

    @Test func errorsSayWhatWouldWork() throws {
        guard case .failure(let e) = Commands.parse("frobnicate") else { Issue.record("accepted"); return }
        #expect(e.message.contains(":devices"))
        guard case .failure(let l) = Commands.parse("by colour") else { Issue.record("accepted"); return }
        #expect(l.message.contains("model_version"))
        guard case .failure = Commands.parse("sort") else { Issue.record("accepted"); return }
        guard case .failure = Commands.parse("sort p95 sideways") else { Issue.record("accepted"); return }
        guard case .failure = Commands.parse("by") else { Issue.record("accepted"); return }
    }

    @Test func completion() {
        #expect(Commands.complete("ver") == "versions ")
        #expect(Commands.complete("d") == nil)  // devices, drill
        #expect(Commands.complete("sort x") == nil)
    }
}

@Suite struct RowFilterTests {
    let fields = ["sku": "sku", "state": "state", "version": "version", "model_version": "version"]

    func match(_ f: String, _ row: [String: String]) -> Bool {
        guard case .success(let filter) = RowFilter.parse(f, fields: fields) else { return false }
        return filter.matches(value: { row[$0] ?? "" }, all: Array(row.values))
    }

    @Test func termsCombine() {
        let row = ["device": "cam-0042", "sku": "Xavier-NX", "state": "online", "version": "1.4.0"]
        #expect(match("", row))
        #expect(match("cam-00", row))
        #expect(match("CAM", row))
        #expect(!match("!cam", row))
        #expect(match("sku=xavier-nx", row))
        #expect(!match("sku=xavier", row))
        #expect(match("!state=offline", row))
        #expect(match("version=1.4.0 sku=xavier-nx cam", row))
        #expect(!match("version=1.4.0 sku=orin", row))
        #expect(match("model_version=1.4.0", row))
        #expect(match("!!cam", row))
        #expect(match("nx 42", row))
    }

    @Test func unknownLabelsAreReported() {
        guard case .failure(let e) = RowFilter.parse("colour=red", fields: fields) else { Issue.record("accepted"); return }
        #expect(e.message.contains("colour") && e.message.contains("sku"))
    }
}
