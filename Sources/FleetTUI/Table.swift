/// A value a column sorts by: numbers (missing values always last) or text.
public enum SortValue: Sendable {
    case number(Double?)
    case text(String)

    /// Ascending order; missing numbers sort after every number in both directions (the caller
    /// keeps them last when reversing).
    static func less(_ a: SortValue, _ b: SortValue) -> Bool {
        switch (a, b) {
        case let (.number(x), .number(y)):
            switch (x, y) {
            case let (x?, y?): return x < y
            case (_?, nil): return true
            default: return false
            }
        case let (.text(x), .text(y)): return x < y
        case (.number, .text): return true
        case (.text, .number): return false
        }
    }

    var isMissing: Bool {
        if case .number(nil) = self { return true }
        return false
    }
}

/// What a cell may need besides its row.
public struct CellContext: Sendable {
    public var nowMs: Int64
    public var glyphs: Glyphs
    public var thresholds: Thresholds
    public var sparkMetric: SparkMetric
    /// Length of the device table's activity window, for per-second rates.
    public var recentSeconds: Double

    public init(nowMs: Int64, glyphs: Glyphs, thresholds: Thresholds, sparkMetric: SparkMetric = .errorRate, recentSeconds: Double = 300) {
        self.nowMs = nowMs
        self.recentSeconds = recentSeconds
        self.glyphs = glyphs
        self.thresholds = thresholds
        self.sparkMetric = sparkMetric
    }
}

/// Which series the cohort sparklines show.
public enum SparkMetric: String, CaseIterable, Sendable {
    case errorRate = "error rate"
    case p95 = "p95 latency"
    case inferences = "inferences/min"

    public var next: SparkMetric {
        let all = Self.allCases
        return all[(all.firstIndex(of: self)! + 1) % all.count]
    }
}

/// One column of a table view.
public struct Column<Row>: Sendable {
    public let id: String
    public let title: String
    /// Preferred (and minimum) width; flexible columns share what is left.
    public let width: Int
    public let flex: Int
    public let alignRight: Bool
    /// 0 is always shown; higher numbers are dropped first on narrow terminals.
    public let priority: Int
    public let sortKey: @Sendable (Row) -> SortValue
    /// The cell's text (sanitised by the canvas) and style, for a cell `width` columns wide.
    public let cell: @Sendable (Row, CellContext, Int) -> (String, Style)

    public init(
        _ id: String, _ title: String, width: Int, flex: Int = 0, right: Bool = false, priority: Int = 0,
        sort: @escaping @Sendable (Row) -> SortValue, cell: @escaping @Sendable (Row, CellContext, Int) -> (String, Style)
    ) {
        self.id = id
        self.title = title
        self.width = width
        self.flex = flex
        alignRight = right
        self.priority = priority
        sortKey = sort
        self.cell = cell
    }
}

/// A table view's rows, columns and filter fields.
public struct TableSpec<Row>: Sendable {
    public var columns: [Column<Row>]
    /// Filter labels (aliases included) to canonical field names.
    public var filterFields: [String: String]
    public var fieldValue: @Sendable (Row, String) -> String
    public var searchable: @Sendable (Row) -> [String]
    /// Identity kept across refreshes (selection follows the row, not the position).
    public var rowKey: @Sendable (Row) -> String

    /// Indices of `rows` that pass `filter`, ordered by column `sort` (ties by row key).
    ///
    /// `hint`: the order of the previous refresh with the same sort and filter, if any. The
    /// result does not depend on it, but starting from it the (run-detecting, stable) sort has
    /// little left to do when only some values moved: at 10k rows that is most of a refresh's
    /// layout time.
    public func order(_ rows: [Row], sort: Int, descending: Bool, filter: RowFilter, hint: [Int]? = nil) -> [Int] {
        var idx: [Int] = []
        idx.reserveCapacity(rows.count)
        func passes(_ i: Int) -> Bool { filter.isEmpty || filter.matches(value: { fieldValue(rows[i], $0) }, all: searchable(rows[i])) }
        if let hint {
            var placed = [Bool](repeating: false, count: rows.count)
            for i in hint where i < rows.count && !placed[i] && passes(i) {
                placed[i] = true
                idx.append(i)
            }
            for i in rows.indices where !placed[i] && passes(i) { idx.append(i) }
        } else if filter.isEmpty {
            idx.append(contentsOf: rows.indices)
        } else {
            for i in rows.indices where passes(i) { idx.append(i) }
        }
        guard columns.indices.contains(sort) else { return idx }
        let key = columns[sort].sortKey
        var keys = [SortValue?](repeating: nil, count: rows.count)
        var ids = [String?](repeating: nil, count: rows.count)
        for i in idx {
            keys[i] = key(rows[i])
            ids[i] = rowKey(rows[i])
        }
        idx.sort { a, b in
            let ka = keys[a]!, kb = keys[b]!
            // Missing values last in either direction.
            if ka.isMissing != kb.isMissing { return kb.isMissing }
            if SortValue.less(ka, kb) { return !descending }
            if SortValue.less(kb, ka) { return descending }
            return ids[a]! < ids[b]!
        }
        return idx
    }

    /// Which columns fit in `width` (by priority) and how wide each is, in table order.
    public func layout(width: Int) -> [(column: Int, width: Int)] {
        let byPriority = columns.indices.sorted { (columns[$0].priority, $0) < (columns[$1].priority, $1) }
        var chosen = Set<Int>()
        var used = 0
        for i in byPriority {
            let need = columns[i].width + (chosen.isEmpty ? 0 : 1)
            if used + need <= width {
                chosen.insert(i)
                used += need
            } else if columns[i].priority == 0 && chosen.isEmpty {
                chosen.insert(i)
                used = width
            }
        }
        let ordered = columns.indices.filter { chosen.contains($0) }
        var widths = ordered.map { min(columns[$0].width, width) }
        var extra = width - used
        let flexTotal = ordered.reduce(0) { $0 + columns[$1].flex }
        if extra > 0 && flexTotal > 0 {
            let share = extra
            for (k, i) in ordered.enumerated() where columns[i].flex > 0 {
                let add = share * columns[i].flex / flexTotal
                widths[k] += add
                extra -= add
            }
            if let k = ordered.indices.last(where: { columns[ordered[$0]].flex > 0 }) { widths[k] += extra }
        }
        return zip(ordered, widths).map { ($0, $1) }
    }
}

/// Selection and scrolling of one table view.
public struct TableState: Equatable, Sendable {
    public var sortColumn: Int
    public var descending: Bool
    public var filterText = ""
    public var filter = RowFilter(terms: [])
    /// Position in the filtered, sorted order, and the row's key (followed across refreshes).
    public var selected = 0
    public var selectedKey: String?
    /// First visible row.
    public var offset = 0

    public init(sortColumn: Int = 0, descending: Bool = false) {
        self.sortColumn = sortColumn
        self.descending = descending
    }

    /// Keeps the selection on its row after a reorder, inside `count`, and visible in `page` rows.
    public mutating func reconcile(keys: (Int) -> String, count: Int, page: Int, find: (String) -> Int?) {
        if let k = selectedKey, let i = find(k) { selected = i }
        selected = max(0, min(selected, count - 1))
        selectedKey = count > 0 ? keys(selected) : nil
        scrollIntoView(page: page, count: count)
    }

    public mutating func scrollIntoView(page: Int, count: Int) {
        let p = max(1, page)
        if selected < offset { offset = selected }
        if selected >= offset + p { offset = selected - p + 1 }
        offset = max(0, min(offset, max(0, count - p)))
    }
}

/// Draws a table: a header row and the visible rows, the selected one highlighted.
enum TableView {
    static func draw<Row>(
        _ c: inout Canvas, x: Int, y: Int, width: Int, height: Int, spec: TableSpec<Row>, rows: [Row], order: [Int],
        state: TableState, ctx: CellContext, focused: Bool = true
    ) {
        guard height > 0, width > 0 else { return }
        let cols = spec.layout(width: width)
        // Header.
        var cx = x
        for (k, (i, w)) in cols.enumerated() {
            let col = spec.columns[i]
            var title = col.title
            if i == state.sortColumn { title += state.descending ? ctx.glyphs.down : ctx.glyphs.up }
            let t = SafeText(title).fitted(to: w, alignRight: col.alignRight, ellipsis: ctx.glyphs.ellipsis)
            c.put(cx, y, t, i == state.sortColumn ? Style(bold: true, underline: true) : .bold)
            cx += w + (k < cols.count - 1 ? 1 : 0)
        }
        // Rows.
        let visible = height - 1
        guard visible > 0 else { return }
        for r in 0..<visible {
            let pos = state.offset + r
            guard pos < order.count else { break }
            let row = rows[order[pos]]
            let ry = y + 1 + r
            cx = x
            for (k, (i, w)) in cols.enumerated() {
                let col = spec.columns[i]
                let (text, style) = col.cell(row, ctx, w)
                c.put(cx, ry, SafeText(text).fitted(to: w, alignRight: col.alignRight, ellipsis: ctx.glyphs.ellipsis), style)
                cx += w + (k < cols.count - 1 ? 1 : 0)
            }
            if pos == state.selected && focused {
                c.restyle(x, ry, width) { $0.with(reverse: true) }
            }
        }
    }
}
