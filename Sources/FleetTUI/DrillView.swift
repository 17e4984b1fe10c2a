import FleetStore

/// The device drill-down: who the device is, four per-minute charts, and the timeline of what
/// changed (deploys, firmware and model changes, crashes, errors, refused input), newest first.
enum DrillView {
    /// One line of the timeline.
    struct Event: Equatable {
        var tsMs: Int64
        var kind: String
        var summary: String
        var style: Style
    }

    static func field(_ e: StoreReader.TimelineEntry, _ name: String) -> String {
        guard let v = e.fields.first(where: { $0.0 == name })?.1 else { return "" }
        switch v {
        case .text(let s): return s
        case .int(let i): return String(i)
        case .double(let d): return Format.fixed(d, 3)
        case .null: return "-"
        }
    }

    /// Timeline entries as display lines, newest first.
    static func events(_ h: StoreReader.DeviceHistory) -> [Event] {
        h.timeline.reversed().map { e in
            switch e.kind {
            case "session":
                let status = field(e, "status")
                let style: Style = status == "crashed" ? .bad : status == "abnormal" ? .warn : .dim
                var text = "session \(field(e, "session_id")) \(status)"
                if status != "started" { text += " after \(Format.duration(Int64(field(e, "duration_ms")) ?? 0)), \(field(e, "errors")) errors" }
                return Event(tsMs: e.tsMs, kind: status == "crashed" ? "CRASH" : "session", summary: text, style: style)
            case "error":
                return Event(tsMs: e.tsMs, kind: "error", summary: "\(field(e, "code")): \(field(e, "message"))", style: Style(color: .red))
            case "deploy":
                let result = field(e, "result")
                let style: Style = result == "installed" ? .good : result == "rolled_back" ? .warn : .bad
                return Event(tsMs: e.tsMs, kind: "DEPLOY", summary: "\(field(e, "from_version")) -> \(field(e, "to_version")) \(result)", style: style)
            case "change":
                return Event(tsMs: e.tsMs, kind: "CHANGE", summary: "\(field(e, "field")): \(field(e, "from")) -> \(field(e, "to"))", style: .accent)
            default:
                return Event(
                    tsMs: e.tsMs, kind: "refused",
                    summary: "\(field(e, "reason")) (\(field(e, "bytes")) bytes): \(field(e, "detail"))", style: Style(color: .magenta))
            }
        }
    }

    struct Chart {
        var title: String
        var values: [Double?]
        var format: (Double?) -> String
        var fromZero: Bool
        var signal: String?
    }

    static func charts(_ windows: [StoreReader.Window], fromMs: Int64, minutes: Int) -> [Chart] {
        var p95 = [Double?](repeating: nil, count: minutes)
        var err = [Double?](repeating: nil, count: minutes)
        var temp = [Double?](repeating: nil, count: minutes)
        var rate = [Double?](repeating: nil, count: minutes)
        for w in windows {
            let i = Int((w.tsMs - fromMs) / 60_000)
            guard i >= 0, i < minutes else { continue }
            p95[i] = w.latencyP95Ms
            err[i] = w.errorRate
            temp[i] = w.tempC
            rate[i] = Double(w.inferences) / (Double(w.windowMs) / 1000)
        }
        return [
            Chart(title: "p95 latency ms", values: p95, format: { Format.ms($0) }, fromZero: false, signal: "latency_p95_ms"),
            Chart(title: "error rate", values: err, format: { Format.percent($0) }, fromZero: true, signal: "error_rate"),
            Chart(title: "temperature C", values: temp, format: { Format.fixed($0, 1) }, fromZero: false, signal: nil),
            Chart(title: "inferences/s", values: rate, format: { Format.compact($0) }, fromZero: true, signal: nil),
        ]
    }

    /// Draws the drill-down into the body area; returns (timeline entries, visible timeline lines).
    static func draw(
        _ c: inout Canvas, x: Int, y: Int, width: Int, height: Int, snapshot s: Snapshot, deviceID: String, offset: Int,
        ctx: CellContext
    ) -> (Int, Int) {
        let g = ctx.glyphs
        guard let drill = s.drill, drill.deviceID == deviceID else {
            c.put(x + 1, y + 1, "loading \(deviceID)…", .dim)
            return (0, 1)
        }
        guard let h = drill.history else {
            c.put(x + 1, y + 1, SafeText("no device '\(deviceID)' in this database").truncated(to: width - 2, ellipsis: g.ellipsis), .warn)
            c.put(x + 1, y + 2, "Esc goes back", .dim)
            return (0, 1)
        }
        let d = h.device
        var row = y
        // Identity lines.
        var cx = c.put(x + 1, row, SafeText(d.deviceID).truncated(to: max(8, width / 3), ellipsis: g.ellipsis), .title)
        cx = c.put(cx + 2, row, g.bullet + " " + d.state, TableSpecs.stateStyle(d.state))
        let facts: [(String, String)] = [
            ("model", d.modelName + " " + d.modelVersion), ("sku", d.sku), ("fw", d.firmware), ("accel", d.accelerator),
            ("agent", d.agent),
        ]
        for (k, v) in facts {
            let t = SafeText(v)
            guard cx + 3 + k.count + t.width < x + width else { break }
            cx = c.put(cx + 2, row, k + " ", .dim)
            cx = c.put(cx, row, t, .plain)
        }
        row += 1
        let gaps = h.gaps.isEmpty ? "none" : "\(h.gaps.count): " + h.gaps.prefix(4).map { "\($0.lowerBound)-\($0.upperBound)" }.joined(separator: ", ") + (h.gaps.count > 4 ? ", …" : "")
        let line2 = "seen \(Format.age(ctx.nowMs - d.lastReceivedMs)) ago (device time \(Format.dateTime(d.lastSeenMs)))  first seen \(Format.dateTime(d.firstSeenMs))  seq \(d.lastSeq)  gaps \(gaps)"
        c.put(x + 1, row, SafeText(line2).truncated(to: width - 2, ellipsis: g.ellipsis), .dim)
        row += 2

        // Charts: one line each, label | sparkline | now, min, max.
        let minutes = Int(s.windows.chartMs / 60_000)
        let charts = charts(drill.windows, fromMs: s.asOfMs - s.windows.chartMs, minutes: minutes)
        let chartRows = height >= 16 ? charts.count : (height >= 10 ? 2 : 0)
        if chartRows > 0 {
            c.put(x + 1, row, "LAST \(minutes / 60) HOURS, PER MINUTE", .bold)
            row += 1
        }
        for chart in charts.prefix(chartRows) {
            let labelW = 16
            let statsW = 30
            let sparkW = max(8, width - labelW - statsW - 4)
            c.put(x + 1, row, SafeText(chart.title).fitted(to: labelW), .dim)
            c.put(x + 2 + labelW, row, Sparkline.render(chart.values, width: sparkW, glyphs: g, fromZero: chart.fromZero), .accent)
            let present = chart.values.compactMap { $0 }
            let now = chart.values.last(where: { $0 != nil }) ?? nil
            let nowStyle = chart.signal.map { ctx.thresholds.style($0, now) } ?? .bold
            var sx = c.put(x + 3 + labelW + sparkW, row, "now ", .dim)
            sx = c.put(sx, row, chart.format(now), nowStyle == .plain ? .bold : nowStyle)
            sx = c.put(sx + 1, row, "min " + chart.format(present.min()) + " max " + chart.format(present.max()), .dim)
            row += 1
        }
        if chartRows > 0 { row += 1 }

        // Timeline.
        let events = events(h)
        let days = s.windows.timelineMs / 86_400_000
        c.put(x + 1, row, "WHAT CHANGED (last \(days)d, newest first): \(events.count) events", .bold)
        row += 1
        let visible = max(1, y + height - row)
        if events.isEmpty {
            c.put(x + 3, row, "nothing: no sessions ended, no errors, deploys or changes in the range", .dim)
            return (0, visible)
        }
        for (i, e) in events.dropFirst(offset).prefix(visible).enumerated() {
            let ry = row + i
            var ex = c.put(x + 1, ry, Format.shortDateTime(e.tsMs), .dim)
            ex = c.put(ex + 2, ry, SafeText(e.kind).fitted(to: 7), e.style.color == nil ? e.style : Style(color: e.style.color, bold: true))
            c.put(ex + 1, ry, SafeText(e.summary).truncated(to: max(0, x + width - ex - 2), ellipsis: g.ellipsis), e.style.color == .red ? .plain : e.style)
        }
        return (events.count, visible)
    }
}
