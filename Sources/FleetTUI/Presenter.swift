import FleetCore
import FleetStore

/// Turns the UI state and the latest snapshot into a frame.
///
/// Owned by the UI thread. Pure apart from caching the sorted, filtered order of the current
/// table (10k devices are sorted once per snapshot or sort change, not once per frame). Also
/// reconciles the selection with the new order, so it follows its row across refreshes.
public final class Presenter {
    public var glyphs: Glyphs
    public var thresholds: Thresholds
    public var dbPath: String
    public private(set) var snapshot: Snapshot?

    private struct OrderKey: Equatable {
        var seq: Int
        var view: ViewKind
        var sort: Int
        var descending: Bool
        var filter: String
        var labels: [String]
    }
    private var orderKey: OrderKey?
    private var order: [Int] = []

    public init(dbPath: String, glyphs: Glyphs = .unicode, thresholds: Thresholds = .defaults) {
        self.dbPath = dbPath
        self.glyphs = glyphs
        self.thresholds = thresholds
    }

    public func update(_ s: Snapshot) {
        snapshot = s
    }

    /// Draws a frame of `width` x `height` at wall time `nowMs`; returns it with what key handling
    /// needs to know about it.
    public func frame(_ state: inout AppState, width: Int, height: Int, nowMs: Int64) -> (Canvas, AppState.Nav) {
        var c = Canvas(width: width, height: height)
        var nav = AppState.Nav()
        guard width >= 20, height >= 6 else {
            c.put(0, 0, SafeText("fleetwatch: terminal too small (\(width)x\(height)); need 20x6").truncated(to: width), .bold)
            return (c, nav)
        }
        let ctx = CellContext(
            nowMs: nowMs, glyphs: glyphs, thresholds: thresholds, sparkMetric: state.sparkMetric,
            recentSeconds: Double(snapshot?.windows.recentMs ?? 300_000) / 1000)
        drawTitle(&c, width: width, nowMs: nowMs)
        guard let s = snapshot else {
            centered(&c, width: width, top: 2, height: height - 3, lines: [("connecting to \(dbPath)…", .dim)])
            drawBottom(&c, state: state, width: width, height: height)
            return (c, nav)
        }
        if case .unavailable(let why) = s.status {
            centered(&c, width: width, top: 2, height: height - 3, lines: Self.unavailableLines(why, dbPath: dbPath))
            drawBottom(&c, state: state, width: width, height: height)
            return (c, nav)
        }
        // Header KPIs.
        let kpiLines = height >= 30 ? 3 : 2
        HeaderView.draw(&c, y: 1, width: width - 1, lines: kpiLines, kpis: HeaderView.kpis(s, thresholds: thresholds), glyphs: glyphs)
        let tabsY = 1 + kpiLines
        let bodyY = tabsY + 1
        let bodyH = height - bodyY - 1

        if s.totalDevices == 0 {
            drawTabs(&c, state: state, snapshot: s, y: tabsY, width: width, info: "")
            centered(&c, width: width, top: bodyY, height: bodyH, lines: Self.emptyLines(dbPath: dbPath))
        } else {
            switch state.screen {
            case .drill(let id):
                drawTabs(&c, state: state, snapshot: s, y: tabsY, width: width, info: "device \(id)")
                let (rows, page) = DrillView.draw(&c, x: 0, y: bodyY, width: width, height: bodyH, snapshot: s, deviceID: id, offset: state.drillOffset, ctx: ctx)
                nav.drillRows = rows
                nav.drillPage = page
                if state.drillOffset > max(0, rows - page) { state.drillOffset = max(0, rows - page) }
            case .view(let v):
                nav = drawView(&c, v, state: &state, snapshot: s, y: tabsY, bodyY: bodyY, bodyH: bodyH, width: width, ctx: ctx)
            }
        }
        drawBottom(&c, state: state, width: width, height: height)
        if state.showHelp { HelpView.draw(&c, width: width, height: height, offset: &state.helpOffset, glyphs: glyphs) }
        return (c, nav)
    }

    // MARK: - Title, tabs, bottom line

    private func drawTitle(_ c: inout Canvas, width: Int, nowMs: Int64) {
        c.fill(0, 0, width, 1, " ", .reverse)
        var x = c.put(1, 0, "fleetwatch top", Style(bold: true, reverse: true))
        var right = Format.clock(nowMs)
        if let s = snapshot, s.status == .ok {
            let lag = nowMs - (s.newestDataMs ?? nowMs)
            let freshness = s.newestDataMs == nil ? "no data" : lag > 120_000 ? "data to \(Format.dateTime(s.asOfMs)) (\(Format.age(lag)) old)" : "live, data to \(Format.clock(s.asOfMs))"
            right = "\(Format.count(s.totalDevices)) devices  \(freshness)  load \(Format.fixed(s.loadMs, 1)) ms  " + right
        }
        x = c.put(x + 2, 0, SafeText(dbPath).truncated(to: max(0, width - x - 3 - SafeText(right).width - 2), ellipsis: glyphs.ellipsis), Style(reverse: true))
        let r = SafeText(right).truncated(to: max(0, width - x - 2), ellipsis: glyphs.ellipsis)
        c.put(width - r.width - 1, 0, r, Style(reverse: true))
    }

    private func drawTabs(_ c: inout Canvas, state: AppState, snapshot s: Snapshot, y: Int, width: Int, info: String) {
        c.fill(0, y, width, 1, Character(glyphs.horizontal), .dim)
        var x = 1
        for (i, v) in ViewKind.allCases.enumerated() {
            var title = " \(i + 1) \(v.title)"
            if v == .alerts, let a = s.alerts {
                let firing = a.filter { $0.state == "firing" }.count
                if firing > 0 { title += " (\(firing))" }
            }
            title += " "
            let active = state.view == v
            x = c.put(x, y, title, active ? Style(color: .cyan, bold: true, reverse: true) : .plain)
            x += 1
        }
        let t = SafeText(" " + info + " ").truncated(to: max(0, width - x - 2), ellipsis: glyphs.ellipsis)
        if !info.isEmpty { c.put(width - t.width - 1, y, t, .dim) }
    }

    private func drawBottom(_ c: inout Canvas, state: AppState, width: Int, height: Int) {
        let y = height - 1
        switch state.input {
        case .filter(let text):
            let t = SafeText(text)
            var x = c.put(0, y, "/", .bold)
            x = c.put(x, y, t.truncated(to: width - 2, ellipsis: glyphs.ellipsis))
            c.cursor = (min(x, width - 1), y)
            return
        case .command(let text):
            let t = SafeText(text)
            var x = c.put(0, y, ":", .bold)
            x = c.put(x, y, t.truncated(to: width - 2, ellipsis: glyphs.ellipsis))
            c.cursor = (min(x, width - 1), y)
            return
        case .none:
            break
        }
        if let m = state.message {
            c.put(1, y, SafeText(m.text).truncated(to: width - 2, ellipsis: glyphs.ellipsis), m.isError ? .bad : .accent)
            return
        }
        var x = 1
        for (k, h) in KeyMap.hints(for: state.contexts) {
            let w = SafeText(k).width + 1 + SafeText(h).width + 2
            guard x + w <= width else { break }
            x = c.put(x, y, k, Style(color: .cyan, bold: true))
            x = c.put(x + 1, y, h, .dim) + 2
        }
    }

    private func centered(_ c: inout Canvas, width: Int, top: Int, height: Int, lines: [(String, Style)]) {
        let y0 = top + max(0, (height - lines.count) / 2)
        for (i, (text, style)) in lines.enumerated() where y0 + i < top + height {
            let t = SafeText(text).truncated(to: width - 2, ellipsis: glyphs.ellipsis)
            c.put(max(1, (width - t.width) / 2), y0 + i, t, style)
        }
    }

    static func unavailableLines(_ why: String, dbPath: String) -> [(String, Style)] {
        [
            ("No fleet data to show yet", .bold),
            ("", .plain),
            (why, .warn),
            ("", .plain),
            ("Fill the database with one of:", .plain),
            ("fleetwatch ingest --broker HOST:PORT --db \(dbPath) [--rules alerts.yaml]", .accent),
            ("fleetwatch ingest --file CAPTURE --db \(dbPath)", .accent),
            ("fleetwatch demo   (simulated fleet, broker, ingest and alerts in one)", .accent),
            ("", .plain),
            ("Waiting for it; this screen updates by itself. q quits.", .dim),
        ]
    }

    static func emptyLines(dbPath: String) -> [(String, Style)] {
        [
            ("The database has no devices yet", .bold),
            ("", .plain),
            ("Devices appear when their telemetry is ingested:", .plain),
            ("fleetwatch ingest --broker HOST:PORT --db \(dbPath)", .accent),
            ("", .plain),
            ("Waiting for data; q quits.", .dim),
        ]
    }

    // MARK: - Table views

    private func drawView(
        _ c: inout Canvas, _ v: ViewKind, state: inout AppState, snapshot s: Snapshot, y: Int, bodyY: Int, bodyH: Int, width: Int,
        ctx: CellContext
    ) -> AppState.Nav {
        switch v {
        case .devices:
            guard let rows = s.devices, s.request.view == .devices else {
                drawTabs(&c, state: state, snapshot: s, y: y, width: width, info: "")
                centered(&c, width: width, top: bodyY, height: bodyH, lines: [("loading devices…", .dim)])
                return AppState.Nav()
            }
            return table(&c, v, TableSpecs.devices, rows, state: &state, snapshot: s, y: y, bodyY: bodyY, bodyH: bodyH, width: width, ctx: ctx, noun: "devices")
        case .cohorts:
            let spec = TableSpecs.cohorts(labels: s.request.cohortLabels)
            return table(&c, v, spec, s.cohorts, state: &state, snapshot: s, y: y, bodyY: bodyY, bodyH: bodyH, width: width, ctx: ctx, noun: "cohorts",
                         extra: "by " + s.request.cohortLabels.joined(separator: ",") + ", last " + Format.age(s.windows.signalMs) + ", spark: " + state.sparkMetric.rawValue)
        case .alerts:
            guard let rows = s.alerts else {
                drawTabs(&c, state: state, snapshot: s, y: y, width: width, info: "")
                centered(&c, width: width, top: bodyY, height: bodyH, lines: [
                    ("no alert rules loaded (run ingest with --rules alerts.yaml)", .warn),
                    ("", .plain),
                    ("fleetwatch ingest --broker HOST:PORT --db \(dbPath) --rules alerts.yaml", .accent),
                ])
                return AppState.Nav()
            }
            if rows.isEmpty {
                drawTabs(&c, state: state, snapshot: s, y: y, width: width, info: "")
                centered(&c, width: width, top: bodyY, height: bodyH, lines: [
                    ("no alerts: nothing pending, firing or recently resolved", .plain),
                    ("", .plain),
                    ("alerts appear here when 'fleetwatch ingest' runs with --rules alerts.yaml", .dim),
                ])
                return AppState.Nav()
            }
            return table(&c, v, TableSpecs.alerts, rows, state: &state, snapshot: s, y: y, bodyY: bodyY, bodyH: bodyH, width: width, ctx: ctx, noun: "alerts")
        case .versions:
            let rows = TableSpecs.versionRows(s)
            guard s.versions != nil, s.request.view == .versions else {
                drawTabs(&c, state: state, snapshot: s, y: y, width: width, info: "")
                centered(&c, width: width, top: bodyY, height: bodyH, lines: [("loading versions…", .dim)])
                return AppState.Nav()
            }
            let tableH = min(bodyH, max(3, min(rows.count + 1, bodyH / 2)))
            let nav = table(&c, v, TableSpecs.versions, rows, state: &state, snapshot: s, y: y, bodyY: bodyY, bodyH: tableH, width: width, ctx: ctx, noun: "versions")
            if bodyH - tableH >= 5 {
                AdoptionChart.draw(&c, x: 0, y: bodyY + tableH + 1, width: width, height: bodyH - tableH - 1, snapshot: s, rows: rows, glyphs: glyphs)
            }
            return nav
        }
    }

    private func table<Row>(
        _ c: inout Canvas, _ v: ViewKind, _ spec: TableSpec<Row>, _ rows: [Row], state: inout AppState, snapshot s: Snapshot, y: Int,
        bodyY: Int, bodyH: Int, width: Int, ctx: CellContext, noun: String, extra: String = ""
    ) -> AppState.Nav {
        var t = state.tables[v] ?? TableState()
        if t.sortColumn >= spec.columns.count { t.sortColumn = 0 }
        let key = OrderKey(seq: s.seq, view: v, sort: t.sortColumn, descending: t.descending, filter: t.filterText, labels: s.request.cohortLabels)
        if key != orderKey {
            var same = key
            same.seq = orderKey?.seq ?? 0
            order = spec.order(rows, sort: t.sortColumn, descending: t.descending, filter: t.filter, hint: same == orderKey ? order : nil)
            orderKey = key
        }
        let page = max(1, bodyH - 1)
        let ord = order
        let was = t.selected
        // The selected row's new position: checked where it was first, then searched.
        t.reconcile(keys: { spec.rowKey(rows[ord[$0]]) }, count: ord.count, page: page, find: { k in
            if was < ord.count, spec.rowKey(rows[ord[was]]) == k { return was }
            return ord.firstIndex { spec.rowKey(rows[$0]) == k }
        })
        state.tables[v] = t

        var info = ""
        if !t.filterText.isEmpty { info += "filter: \(t.filterText)  " }
        if ord.isEmpty {
            info += "0 of \(Format.count(Int64(rows.count))) \(noun)"
        } else {
            info += "\(Format.count(Int64(t.offset + 1)))-\(Format.count(Int64(min(ord.count, t.offset + page)))) of \(Format.count(Int64(ord.count)))"
            if ord.count != rows.count { info += " (\(Format.count(Int64(rows.count))) total)" }
            info += " \(noun)"
        }
        if !extra.isEmpty { info = extra + "  " + info }
        drawTabs(&c, state: state, snapshot: s, y: y, width: width, info: info)
        TableView.draw(&c, x: 1, y: bodyY, width: width - 2, height: bodyH, spec: spec, rows: rows, order: ord, state: t, ctx: ctx, focused: !state.showHelp)
        if ord.isEmpty && bodyH > 2 {
            c.put(3, bodyY + 2, t.filterText.isEmpty ? "no \(noun)" : "no \(noun) match the filter (c clears it)", .dim)
        }
        var nav = AppState.Nav()
        nav.rows = ord.count
        nav.page = page
        nav.key = { i in i >= 0 && i < ord.count ? spec.rowKey(rows[ord[i]]) : nil }
        return nav
    }
}

/// Version adoption over time as a stacked area chart: one column per time slice, each version
/// a band of its share, told apart by fill character (and colour when there is colour).
enum AdoptionChart {
    static let palette: [Color] = [.green, .cyan, .yellow, .magenta, .blue, .red]

    static func draw(_ c: inout Canvas, x: Int, y: Int, width: Int, height: Int, snapshot s: Snapshot, rows: [TableSpecs.VersionRow], glyphs: Glyphs) {
        guard let h = s.versions, height >= 4, width >= 20 else { return }
        let slices = h.devices.values.first?.count ?? 0
        let hours = s.windows.versionsMs / 3_600_000
        c.put(x + 1, y, "ADOPTION, LAST \(hours)H (share of devices seen per \(Format.duration(h.bucketMs)) slice)", .bold)
        // Legend under the time axis.
        let legendY = y + min(height - 3, 20) + 2
        var lx = x + 1
        for (i, r) in rows.enumerated() {
            let item = SafeText(glyphs.areaFills[i % glyphs.areaFills.count] + " " + r.version)
            guard lx + item.width + 2 < x + width else { break }
            lx = c.put(lx, legendY, item, Style(color: palette[i % palette.count])) + 2
        }
        let chartH = min(height - 3, 20)
        let axisW = 5
        let chartW = width - axisW - 2
        guard chartH >= 1, chartW >= 4, slices > 0 else { return }
        for (r, label) in [(0, "100%"), (chartH / 2, " 50%"), (chartH - 1, "  0%")] { c.put(x, y + 1 + r, label, .dim) }
        for col in 0..<chartW {
            let slice = min(slices - 1, col * slices / chartW)
            let counts = rows.map { Double(h.devices[$0.version]?[slice] ?? 0) }
            let total = counts.reduce(0, +)
            guard total > 0 else { continue }
            // Bands from the bottom: rows are newest version first, so the newest sits on top.
            for r in 0..<chartH {
                let mid = (Double(chartH - 1 - r) + 0.5) / Double(chartH)
                var acc = 0.0
                var chosen = -1
                for (i, n) in counts.enumerated().reversed() {
                    acc += n / total
                    if mid < acc { chosen = i; break }
                }
                guard chosen >= 0 else { continue }
                c.put(x + axisW + 1 + col, y + 1 + r, glyphs.areaFills[chosen % glyphs.areaFills.count], Style(color: palette[chosen % palette.count]))
            }
        }
        let from = Format.shortDateTime(h.fromMs)
        c.put(x + axisW + 1, y + 1 + chartH, from, .dim)
        let to = Format.shortDateTime(s.asOfMs)
        c.put(x + axisW + 1 + chartW - to.count, y + 1 + chartH, to, .dim)
    }
}

/// The `?` screen, generated from the key table and the command list.
enum HelpView {
    static func lines() -> [(String, Style)] {
        var out: [(String, Style)] = [("fleetwatch top: keys", .title), ("", .plain)]
        for (title, rows) in KeyMap.helpSections() {
            out.append((title, .bold))
            for (k, h) in rows { out.append(("  " + k.padding(12) + h, .plain)) }
            out.append(("", .plain))
        }
        out.append(("commands (:)", .bold))
        for (k, h) in [
            (":cohorts :c", "cohorts view"), (":devices :d", "devices view"), (":alerts :a", "alerts view"), (":versions :v", "versions view"),
            (":by LABEL[,LABEL]", "group cohorts by labels"),
            ("", "labels: " + StoreReader.cohortLabels.joined(separator: " ")),
            (":sort COLUMN [asc|desc]", "sort the current table"),
            (":filter EXPR", "same as / (empty clears)"),
            (":drill DEVICE_ID", "open a device"),
            (":q", "quit"),
        ] { out.append((k.isEmpty ? "    " + h : "  " + k.padding(25) + h, k.isEmpty ? .dim : .plain)) }
        out.append(("", .plain))
        out.append(("any other key closes this help", .dim))
        return out
    }

    /// Draws the help box: one column, or two when the terminal is wide enough and one column
    /// would not fit; scrolls (j/k) when even that does not fit.
    static func draw(_ c: inout Canvas, width: Int, height: Int, offset: inout Int, glyphs: Glyphs) {
        let content = lines()
        let colW = (content.map { SafeText($0.0).width }.max() ?? 60) + 2
        var columns = [content]
        if content.count > height - 4, width >= 2 * colW + 8 {
            // Split at the blank line (a section boundary) nearest the middle.
            let mid = content.count / 2
            let blanks = content.indices.filter { content[$0].0.isEmpty }
            let cut = (blanks.min { abs($0 - mid) < abs($1 - mid) } ?? mid) + 1
            columns = [Array(content[..<cut]), [("", .plain), ("", .plain)] + Array(content[cut...])]
        }
        let w = min(width - 2, max(60, colW * columns.count + 4))
        let rows = columns.map(\.count).max() ?? 0
        let h = min(height - 2, rows + 2)
        let x0 = (width - w) / 2
        let y0 = (height - h) / 2
        c.fill(x0, y0, w, h, " ")
        c.put(x0, y0, String(repeating: glyphs.horizontal, count: w), .accent)
        c.put(x0, y0 + h - 1, String(repeating: glyphs.horizontal, count: w), .accent)
        let visible = h - 2
        offset = max(0, min(offset, rows - visible))
        for (k, column) in columns.enumerated() {
            let cx = x0 + 2 + k * colW
            let room = columns.count == 1 ? w - 4 : colW - 1
            for (i, (text, style)) in column.dropFirst(offset).prefix(visible).enumerated() {
                c.put(cx, y0 + 1 + i, SafeText(text).truncated(to: room, ellipsis: glyphs.ellipsis), style)
            }
        }
    }
}

extension String {
    func padding(_ n: Int) -> String {
        let w = SafeText(self).width
        return w >= n ? self + " " : self + String(repeating: " ", count: n - w)
    }
}
