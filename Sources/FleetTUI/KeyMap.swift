/// A key press, decoded from the terminal by the screen adapter.
public enum Key: Hashable, Sendable {
    case char(Character)
    case up, down, left, right, pageUp, pageDown, home, end
    case enter, escape, backspace, tab, backTab, delete
    /// Ctrl + a letter (lowercase), e.g. `.ctrl("c")`.
    case ctrl(Character)
    case resize
    case unknown
}

/// What a key asks for; the reducer (`AppState.apply`) decides what it means where.
public enum Command: Hashable, Sendable {
    case quit
    case back
    case help
    case show(ViewKind)
    case nextView, previousView
    case commandMode
    case filterMode
    case clearFilter
    case up, down, pageUp, pageDown, top, bottom
    case sortLeft, sortRight, reverseSort
    case open
    case cycleSparkline
    case refresh
}

/// Where a binding applies. Bindings of the current screen are tried first, then `table` (any
/// table view), then `global`.
public enum KeyContext: String, Hashable, Sendable, CaseIterable {
    case global
    case table
    case devices
    case cohorts
    case drill
}

/// One row of the key table: the keys, how help shows them, what they do, and where.
public struct KeyBinding: Sendable {
    public let keys: [Key]
    public let display: String
    public let help: String
    public let context: KeyContext
    public let command: Command
}

/// The key table: the single source for dispatch, the help screen and the hint line.
public enum KeyMap {
    public static let bindings: [KeyBinding] = [
        KeyBinding(keys: [.char("q")], display: "q", help: "quit", context: .global, command: .quit),
        KeyBinding(keys: [.ctrl("c")], display: "Ctrl-C", help: "quit", context: .global, command: .quit),
        KeyBinding(keys: [.escape], display: "Esc", help: "back: close help, leave drill-down, clear filter", context: .global, command: .back),
        KeyBinding(keys: [.char("?")], display: "?", help: "help", context: .global, command: .help),
        KeyBinding(keys: [.char(":")], display: ":", help: "command mode (commands below)", context: .global, command: .commandMode),
        KeyBinding(keys: [.char("1")], display: "1", help: "cohorts", context: .global, command: .show(.cohorts)),
        KeyBinding(keys: [.char("2")], display: "2", help: "devices", context: .global, command: .show(.devices)),
        KeyBinding(keys: [.char("3")], display: "3", help: "alerts", context: .global, command: .show(.alerts)),
        KeyBinding(keys: [.char("4")], display: "4", help: "versions", context: .global, command: .show(.versions)),
        KeyBinding(keys: [.tab], display: "Tab", help: "next view", context: .global, command: .nextView),
        KeyBinding(keys: [.backTab], display: "S-Tab", help: "previous view", context: .global, command: .previousView),
        KeyBinding(keys: [.ctrl("r")], display: "Ctrl-R", help: "reload now", context: .global, command: .refresh),

        KeyBinding(keys: [.down, .char("j")], display: "j/Down", help: "next row", context: .table, command: .down),
        KeyBinding(keys: [.up, .char("k")], display: "k/Up", help: "previous row", context: .table, command: .up),
        KeyBinding(keys: [.pageDown, .ctrl("f"), .char(" ")], display: "PgDn/Space", help: "next page", context: .table, command: .pageDown),
        KeyBinding(keys: [.pageUp, .ctrl("b")], display: "PgUp", help: "previous page", context: .table, command: .pageUp),
        KeyBinding(keys: [.home, .char("g")], display: "g/Home", help: "first row", context: .table, command: .top),
        KeyBinding(keys: [.end, .char("G")], display: "G/End", help: "last row", context: .table, command: .bottom),
        KeyBinding(keys: [.char("<"), .char(",")], display: "<", help: "sort by the column to the left", context: .table, command: .sortLeft),
        KeyBinding(keys: [.char(">"), .char(".")], display: ">", help: "sort by the column to the right", context: .table, command: .sortRight),
        KeyBinding(keys: [.char("r")], display: "r", help: "reverse the sort", context: .table, command: .reverseSort),
        KeyBinding(keys: [.char("/")], display: "/", help: "filter: text, !text, label=value, e.g. sku=xavier-nx", context: .table, command: .filterMode),
        KeyBinding(keys: [.char("c")], display: "c", help: "clear the filter", context: .table, command: .clearFilter),

        KeyBinding(keys: [.enter, .char("l")], display: "Enter", help: "drill into the device", context: .devices, command: .open),
        KeyBinding(keys: [.enter], display: "Enter", help: "show this cohort's devices", context: .cohorts, command: .open),
        KeyBinding(keys: [.char("s")], display: "s", help: "sparkline: error rate / p95 / inferences", context: .cohorts, command: .cycleSparkline),

        KeyBinding(keys: [.down, .char("j")], display: "j/Down", help: "scroll the timeline", context: .drill, command: .down),
        KeyBinding(keys: [.up, .char("k")], display: "k/Up", help: "scroll the timeline back", context: .drill, command: .up),
        KeyBinding(keys: [.pageDown, .char(" ")], display: "PgDn", help: "timeline page down", context: .drill, command: .pageDown),
        KeyBinding(keys: [.pageUp], display: "PgUp", help: "timeline page up", context: .drill, command: .pageUp),
        KeyBinding(keys: [.char("h"), .left], display: "h", help: "back to the devices", context: .drill, command: .back),
    ]

    /// The command for `key` in the given contexts (most specific first).
    public static func command(for key: Key, in contexts: [KeyContext]) -> Command? {
        for context in contexts {
            if let b = bindings.first(where: { $0.context == context && $0.keys.contains(key) }) { return b.command }
        }
        return nil
    }

    /// Help lines, grouped by context in table order: `(context title, [(keys, what)])`.
    public static func helpSections() -> [(String, [(String, String)])] {
        KeyContext.allCases.compactMap { context in
            let rows = bindings.filter { $0.context == context }.map { ($0.display, $0.help) }
            guard !rows.isEmpty else { return nil }
            return (title(context), rows)
        }
    }

    public static func title(_ c: KeyContext) -> String {
        switch c {
        case .global: "everywhere"
        case .table: "tables (cohorts, devices, alerts, versions)"
        case .devices: "devices"
        case .cohorts: "cohorts"
        case .drill: "device drill-down"
        }
    }

    /// The short hint line for the bottom of the screen: the first bindings of each context that
    /// applies, as `key help` pairs.
    public static func hints(for contexts: [KeyContext]) -> [(String, String)] {
        var out: [(String, String)] = []
        var seen = Set<String>()
        for context in contexts {
            for b in bindings where b.context == context && !seen.contains(b.display) {
                guard Self.hinted.contains(b.command) else { continue }
                seen.insert(b.display)
                out.append((b.display, shortHelp(b)))
            }
        }
        return out
    }

    /// Commands worth a place in the one-line hint bar.
    static let hinted: Set<Command> = [.quit, .help, .commandMode, .filterMode, .sortRight, .reverseSort, .open, .back, .cycleSparkline]

    static func shortHelp(_ b: KeyBinding) -> String {
        switch b.command {
        case .open: b.context == .cohorts ? "devices" : "drill"
        case .filterMode: "filter"
        case .sortRight: "sort"
        case .reverseSort: "reverse"
        case .commandMode: "command"
        case .cycleSparkline: "spark"
        case .back: "back"
        default: b.help
        }
    }
}
