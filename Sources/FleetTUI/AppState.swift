import FleetStore

/// What the main loop does after an input: draw a new frame, nothing, or leave.
public enum Effect: Equatable, Sendable {
    case redraw
    case skip
    case quit
}

/// A screen on the navigation stack.
public enum Screen: Equatable, Sendable {
    case view(ViewKind)
    case drill(String)
}

/// A line being typed at the bottom of the screen.
public enum InputMode: Equatable, Sendable {
    case none
    case filter(String)
    case command(String)
}

/// Everything the UI remembers between frames. Pure: `apply` maps keys and commands to a new
/// state and an `Effect`; the main loop owns the one instance.
public struct AppState: Sendable {
    public var stack: [Screen]
    public var tables: [ViewKind: TableState]
    public var drillOffset = 0
    public var input: InputMode = .none
    public var showHelp = false
    public var helpOffset = 0
    public var message: (text: String, isError: Bool)?
    public var cohortLabels: [String]
    public var sparkMetric: SparkMetric = .errorRate
    public var generation = 0

    public init(view: ViewKind = .cohorts, cohortLabels: [String] = ["model_version", "sku"]) {
        stack = [.view(view)]
        self.cohortLabels = cohortLabels
        tables = [
            .cohorts: TableState(sortColumn: 0),
            .devices: TableState(sortColumn: 0),
            .alerts: TableState(sortColumn: 0),
            .versions: TableState(sortColumn: 0),
        ]
    }

    public var screen: Screen { stack.last ?? .view(.cohorts) }

    /// The table view underneath (a drill-down belongs to the devices view).
    public var view: ViewKind {
        for s in stack.reversed() { if case .view(let v) = s { return v } }
        return .cohorts
    }

    public var drillDevice: String? {
        if case .drill(let id) = screen { return id }
        return nil
    }

    public var loadRequest: LoadRequest {
        LoadRequest(view: view, cohortLabels: cohortLabels, drillDevice: drillDevice, generation: generation)
    }

    /// Key contexts, most specific first.
    public var contexts: [KeyContext] {
        switch screen {
        case .drill: [.drill, .global]
        case .view(.devices): [.devices, .table, .global]
        case .view(.cohorts): [.cohorts, .table, .global]
        case .view: [.table, .global]
        }
    }

    /// What navigation needs to know about the current table (from the frame just drawn).
    public struct Nav {
        public var rows = 0
        public var page = 1
        /// Key of the row at each position, for selection identity.
        public var key: (Int) -> String? = { _ in nil }
        /// For the drill-down: timeline entries and visible lines.
        public var drillRows = 0
        public var drillPage = 1
        public init() {}
    }

    // MARK: - Keys

    /// Applies a key: text input first, then the key table.
    public mutating func handle(_ key: Key, nav: Nav = Nav()) -> Effect {
        if key == .resize { return .redraw }
        switch input {
        case .filter(let text):
            return edit(text, key, commit: { s, t in s.commitFilter(t) }, live: { s, t in s.setFilter(t, live: true) }, wrap: { .filter($0) })
        case .command(let text):
            return edit(text, key, commit: { s, t in s.runCommand(t) }, live: nil, wrap: { .command($0) })
        case .none:
            break
        }
        if showHelp {
            switch key {
            case .down, .char("j"): helpOffset += 1; return .redraw
            case .up, .char("k"): helpOffset = max(0, helpOffset - 1); return .redraw
            case .char("q"), .ctrl("c"): return .quit
            default:
                showHelp = false
                helpOffset = 0
                return .redraw
            }
        }
        guard let command = KeyMap.command(for: key, in: contexts) else {
            if case .char(let c) = key {
                message = ("no key '\(c)' here: ? for help", true)
                return .redraw
            }
            return .skip
        }
        return apply(command, nav: nav)
    }

    /// A line editor shared by `/` and `:`.
    private mutating func edit(
        _ text: String, _ key: Key, commit: (inout AppState, String) -> Effect, live: ((inout AppState, String) -> Void)?,
        wrap: (String) -> InputMode
    ) -> Effect {
        switch key {
        case .enter:
            input = .none
            return commit(&self, text)
        case .escape, .ctrl("c"):
            input = .none
            if live != nil { live?(&self, originalFilter ?? "") }
            return .redraw
        case .backspace:
            if text.isEmpty {
                input = .none
                return .redraw
            }
            let t = String(text.dropLast())
            input = wrap(t)
            live?(&self, t)
            return .redraw
        case .ctrl("u"):
            input = wrap("")
            live?(&self, "")
            return .redraw
        case .tab:
            if case .command = input, let completed = Commands.complete(text) {
                input = wrap(completed)
                return .redraw
            }
            return .skip
        case .char(let c):
            let t = text + String(c)
            input = wrap(t)
            live?(&self, t)
            return .redraw
        default:
            return .skip
        }
    }

    /// The filter text before `/` started editing (restored by Esc).
    var originalFilter: String?

    // MARK: - Commands

    public mutating func apply(_ command: Command, nav: Nav = Nav()) -> Effect {
        message = nil
        switch command {
        case .quit:
            return .quit
        case .help:
            showHelp = true
            helpOffset = 0
            return .redraw
        case .back:
            if stack.count > 1 {
                stack.removeLast()
                drillOffset = 0
                return .redraw
            }
            if case .view(let v) = screen, tables[v]?.filterText.isEmpty == false {
                tables[v]?.filterText = ""
                tables[v]?.filter = RowFilter(terms: [])
                return .redraw
            }
            return .skip
        case .show(let v):
            stack = [.view(v)]
            return .redraw
        case .nextView, .previousView:
            let all = ViewKind.allCases
            let i = all.firstIndex(of: view) ?? 0
            let j = (i + (command == .nextView ? 1 : all.count - 1)) % all.count
            stack = [.view(all[j])]
            return .redraw
        case .commandMode:
            input = .command("")
            return .redraw
        case .filterMode:
            originalFilter = tables[view]?.filterText ?? ""
            input = .filter(tables[view]?.filterText ?? "")
            return .redraw
        case .clearFilter:
            return setFilter("", live: false)
        case .refresh:
            generation += 1
            message = ("reloading", false)
            return .redraw
        case .cycleSparkline:
            sparkMetric = sparkMetric.next
            message = ("sparklines: \(sparkMetric.rawValue)", false)
            return .redraw
        case .up, .down, .pageUp, .pageDown, .top, .bottom:
            if case .drill = screen { return scrollDrill(command, nav) }
            return move(command, nav)
        case .sortLeft, .sortRight:
            guard var t = tables[view] else { return .skip }
            let n = columnCount(view)
            guard n > 0 else { return .skip }
            t.sortColumn = (t.sortColumn + (command == .sortRight ? 1 : n - 1)) % n
            // Numbers read best largest first, text A to Z.
            t.descending = !isTextColumn(view, t.sortColumn)
            tables[view] = t
            return .redraw
        case .reverseSort:
            tables[view]?.descending.toggle()
            return .redraw
        case .open:
            return open(nav)
        }
    }

    private mutating func move(_ command: Command, _ nav: Nav) -> Effect {
        guard var t = tables[view] else { return .skip }
        let page = max(1, nav.page)
        let last = max(0, nav.rows - 1)
        switch command {
        case .up: t.selected -= 1
        case .down: t.selected += 1
        case .pageUp: t.selected -= page; t.offset -= page
        case .pageDown: t.selected += page; t.offset += page
        case .top: t.selected = 0
        case .bottom: t.selected = last
        default: break
        }
        t.selected = max(0, min(t.selected, last))
        t.selectedKey = nav.key(t.selected)
        t.offset = max(0, t.offset)
        t.scrollIntoView(page: page, count: nav.rows)
        let changed = t != tables[view]
        tables[view] = t
        return changed ? .redraw : .skip
    }

    private mutating func scrollDrill(_ command: Command, _ nav: Nav) -> Effect {
        let page = max(1, nav.drillPage)
        let maxOffset = max(0, nav.drillRows - page)
        let before = drillOffset
        switch command {
        case .up: drillOffset -= 1
        case .down: drillOffset += 1
        case .pageUp: drillOffset -= page
        case .pageDown: drillOffset += page
        case .top: drillOffset = 0
        case .bottom: drillOffset = maxOffset
        default: break
        }
        drillOffset = max(0, min(drillOffset, maxOffset))
        return drillOffset == before ? .skip : .redraw
    }

    private mutating func open(_ nav: Nav) -> Effect {
        guard case .view(let v) = screen, let t = tables[v], nav.rows > 0, let key = nav.key(t.selected) else { return .skip }
        switch v {
        case .devices:
            stack.append(.drill(key))
            drillOffset = 0
            return .redraw
        case .cohorts:
            // The cohort's devices: a filter on its labels.
            let values = key.split(separator: "\u{1}", omittingEmptySubsequences: false).map(String.init)
            let terms = zip(cohortLabels, values).map { "\($0)=\($1.contains(" ") ? $1.replacingSpaces() : $1)" }
            stack = [.view(.devices)]
            _ = setFilter(terms.joined(separator: " "), live: false)
            return .redraw
        default:
            return .skip
        }
    }

    /// Enter in filter mode: apply, or report the error and put back the filter from before.
    mutating func commitFilter(_ text: String) -> Effect {
        _ = setFilter(text, live: false)
        if message?.isError == true {
            let error = message
            _ = setFilter(originalFilter ?? "", live: false)
            message = error
        }
        return .redraw
    }

    @discardableResult
    mutating func setFilter(_ text: String, live: Bool) -> Effect {
        let spec = TableSpecs.filterFields(view, labels: cohortLabels)
        switch RowFilter.parse(text, fields: spec) {
        case .success(let f):
            tables[view]?.filterText = text
            tables[view]?.filter = f
            tables[view]?.selected = 0
            tables[view]?.offset = 0
            tables[view]?.selectedKey = nil
            if !live { message = text.isEmpty ? nil : ("filter: \(text)", false) }
        case .failure(let e):
            if !live { message = (e.message, true) }
        }
        return .redraw
    }

    mutating func runCommand(_ line: String) -> Effect {
        switch Commands.parse(line) {
        case .failure(let e):
            message = (e.message, true)
            return .redraw
        case .success(let c):
            switch c {
            case .none: return .redraw
            case .quit: return .quit
            case .help:
                showHelp = true
                return .redraw
            case .show(let v):
                stack = [.view(v)]
                return .redraw
            case .by(let labels):
                cohortLabels = labels
                tables[.cohorts] = TableState(sortColumn: 0)
                stack = [.view(.cohorts)]
                message = ("cohorts by \(labels.joined(separator: ", "))", false)
                return .redraw
            case .sort(let column, let descending):
                guard let i = columnIndex(view, column) else {
                    message = ("no column '\(column)' in \(view.rawValue): \(columnIDs(view).joined(separator: ", "))", true)
                    return .redraw
                }
                let desc = descending ?? !isTextColumn(view, i)
                tables[view]?.sortColumn = i
                tables[view]?.descending = desc
                return .redraw
            case .filter(let text):
                return setFilter(text, live: false)
            case .device(let id):
                stack = [.view(.devices), .drill(id)]
                drillOffset = 0
                return .redraw
            }
        }
    }

    // MARK: - Column facts (from the table specs)

    func columnIDs(_ v: ViewKind) -> [String] {
        switch v {
        case .devices: TableSpecs.devices.columns.map(\.id)
        case .cohorts: TableSpecs.cohorts(labels: cohortLabels).columns.map(\.id)
        case .alerts: TableSpecs.alerts.columns.map(\.id)
        case .versions: TableSpecs.versions.columns.map(\.id)
        }
    }

    func columnCount(_ v: ViewKind) -> Int { columnIDs(v).count }

    func columnIndex(_ v: ViewKind, _ id: String) -> Int? {
        let ids = columnIDs(v)
        return ids.firstIndex(of: id) ?? ids.firstIndex { $0.hasPrefix(id) }
    }

    func isTextColumn(_ v: ViewKind, _ i: Int) -> Bool {
        switch v {
        case .devices: i < 7
        case .cohorts: i < cohortLabels.count
        case .alerts: [1, 2, 5, 6].contains(i)
        case .versions: i == 0
        }
    }
}

extension String {
    /// Filter terms are split on spaces; a label value with spaces is matched by its first word.
    func replacingSpaces() -> String { split(separator: " ").first.map(String.init) ?? self }
}

extension TableSpecs {
    /// Filter labels of a view.
    static func filterFields(_ v: ViewKind, labels: [String]) -> [String: String] {
        switch v {
        case .devices: devices.filterFields
        case .cohorts: cohorts(labels: labels).filterFields
        case .alerts: alerts.filterFields
        case .versions: versions.filterFields
        }
    }
}
