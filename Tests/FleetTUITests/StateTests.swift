import FleetCore
import FleetStore
import Testing

@testable import FleetTUI

/// A snapshot built in memory: `n` devices with predictable values.
func syntheticSnapshot(devices n: Int, view: ViewKind = .devices, asOf: Int64 = t0, alerts: [AlertRow]? = nil) -> Snapshot {
    var s = Snapshot(request: LoadRequest(view: view, cohortLabels: ["model_version", "sku"]))
    s.seq = 1
    s.asOfMs = asOf
    s.newestDataMs = asOf - 1
    s.loadedAtMs = asOf
    var rows: [DeviceRow] = []
    for i in 0..<n {
        var d = DeviceRow(
            deviceID: "dev-\(i)", sku: i % 2 == 0 ? "orin-nano-8g" : "xavier-nx", firmware: "5.1.2", accelerator: "gpu",
            modelName: "defect-detector", modelVersion: i % 3 == 0 ? "1.5.0" : "1.4.0", state: i % 10 == 9 ? "offline" : "online",
            lastSeenMs: asOf - Int64(i) * 1000, lastReceivedMs: asOf - Int64(i) * 1000, lastSeq: Int64(100 + i))
        d.inferences = Int64(600 * (i % 5 + 1))
        d.errors = Int64(i % 7)
        d.latencyP95Ms = i % 11 == 0 ? nil : 20 + Double(i % 13)
        d.tempC = 50 + Double(i % 30)
        d.cpuPct = 40
        d.crashes = i == 3 ? 2 : 0
        s.devices = (s.devices ?? []) + []
        rows.append(d)
    }
    s.devices = rows
    var counts: [String: Int64] = [:]
    for d in rows { counts[d.state + "|" + d.modelVersion, default: 0] += 1 }
    s.registry = counts.map { k, v in
        let parts = k.split(separator: "|").map(String.init)
        return StoreReader.RegistryCount(state: parts[0], modelVersion: parts[1], seenInWindow: true, devices: v)
    }
    var agg = CohortAggregate(windowMs: 3_600_000)
    agg.devices = Int64(n / 2)
    agg.fleetDevices = Int64(n)
    agg.inferences = 10_000
    agg.errors = 50
    agg.sessionsExited = 99
    agg.sessionsCrashed = 1
    s.cohorts = [
        CohortRow(labels: ["1.4.0", "orin-nano-8g"], values: SignalValues(agg), series: (0..<60).map {
            StoreReader.MinutePoint(bucketMs: asOf - 3_600_000 + Int64($0) * 60_000, inferences: 100, errors: Int64($0 % 3), latencyP95Ms: 20)
        }),
        CohortRow(labels: ["1.5.0", hostileTitle], values: SignalValues(CohortAggregate(windowMs: 3_600_000)), series: []),
    ]
    s.signalTotals.inferences = 10_000
    s.signalTotals.errors = 50
    s.signalTotals.sessionsTerminal = 100
    s.signalTotals.sessionsCrashed = 1
    s.signalTotals.latencyP95Ms = 21.5
    s.trendNow = s.signalTotals
    s.trendPrevious = s.signalTotals
    s.trendPrevious.errors = 10
    s.alerts = alerts
    s.ingest.received = 1000
    s.ingest.quarantined = ["invalid_json": 3]
    s.ingestRate = 1234
    return s
}

@Suite struct TableTests {
    @Test func sortingPutsMissingValuesLastBothWays() {
        let s = syntheticSnapshot(devices: 40)
        let rows = s.devices!
        let spec = TableSpecs.devices
        let p95 = spec.columns.firstIndex { $0.id == "p95" }!
        for descending in [false, true] {
            let order = spec.order(rows, sort: p95, descending: descending, filter: RowFilter(terms: []))
            #expect(order.count == 40)
            let values = order.map { rows[$0].latencyP95Ms }
            let firstNil = values.firstIndex { $0 == nil }!
            #expect(values[firstNil...].allSatisfy { $0 == nil })
            let present = values[..<firstNil].map { $0! }
            #expect(present == (descending ? present.sorted(by: >) : present.sorted()))
        }
    }

    @Test func tiesBreakByRowKeyAndTextSortsByBytes() {
        let rows = syntheticSnapshot(devices: 12).devices!
        let spec = TableSpecs.devices
        let state = spec.columns.firstIndex { $0.id == "state" }!
        let order = spec.order(rows, sort: state, descending: false, filter: RowFilter(terms: []))
        #expect(rows[order[0]].state == "offline")
        let online = order.dropFirst().map { rows[$0].deviceID }
        #expect(online == online.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
    }

    @Test func thePreviousOrderAsAHintChangesNothing() {
        let rows = syntheticSnapshot(devices: 60).devices!
        let spec = TableSpecs.devices
        var rng = SplitMix64(seed: 3)
        guard case .success(let filter) = RowFilter.parse("!state=offline", fields: spec.filterFields) else { Issue.record("filter"); return }
        for sort in spec.columns.indices {
            for descending in [false, true] {
                for f in [RowFilter(terms: []), filter] {
                    let plain = spec.order(rows, sort: sort, descending: descending, filter: f)
                    // Stale, shuffled, duplicated and out-of-range hints alike.
                    var shuffled = Array(rows.indices)
                    for i in shuffled.indices.reversed() { shuffled.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
                    for hint in [plain, plain.reversed(), Array(shuffled.prefix(30)) + [500, 3, 3], []] {
                        #expect(spec.order(rows, sort: sort, descending: descending, filter: f, hint: hint) == plain, "sort \(sort)")
                    }
                }
            }
        }
    }

    @Test func filteringUsesFieldsAndAliases() {
        let rows = syntheticSnapshot(devices: 30).devices!
        let spec = TableSpecs.devices
        func count(_ f: String) -> Int {
            guard case .success(let filter) = RowFilter.parse(f, fields: spec.filterFields) else { return -1 }
            return spec.order(rows, sort: 0, descending: false, filter: filter).count
        }
        #expect(count("state=offline") == 3)
        #expect(count("!state=offline") == 27)
        #expect(count("fw=5.1.2") == 30)
        #expect(count("version=1.5.0 sku=orin-nano-8g") == 5)
        #expect(count("dev-2") == 11)  // dev-2, dev-20..29
        #expect(count("colour=red") == -1)
    }

    @Test func columnsDropByPriorityAndFillTheWidth() {
        let spec = TableSpecs.devices
        for width in [40, 80, 120, 160, 240] {
            let cols = spec.layout(width: width)
            let used = cols.reduce(0) { $0 + $1.width } + cols.count - 1
            #expect(used == width, "width \(width): \(used)")
            #expect(cols.contains { spec.columns[$0.column].id == "device" })
            #expect(cols.map(\.column) == cols.map(\.column).sorted())
        }
        let narrow = Set(spec.layout(width: 80).map { spec.columns[$0.column].id })
        #expect(narrow.isSuperset(of: ["device", "state", "err", "p95"]))
        #expect(!narrow.contains("seq"))
        let wide = Set(spec.layout(width: 200).map { spec.columns[$0.column].id })
        #expect(wide.count == spec.columns.count)
    }
}

@Suite struct AppStateTests {
    func nav(rows: Int, page: Int = 10) -> AppState.Nav {
        var n = AppState.Nav()
        n.rows = rows
        n.page = page
        n.key = { "row-\($0)" }
        return n
    }

    @Test func movingThroughATable() {
        var s = AppState(view: .devices)
        let n = nav(rows: 100)
        #expect(s.handle(.down, nav: n) == .redraw)
        #expect(s.tables[.devices]?.selected == 1)
        _ = s.handle(.char("k"), nav: n)
        #expect(s.handle(.up, nav: n) == .skip)  // already at the top
        _ = s.handle(.pageDown, nav: n)
        #expect(s.tables[.devices]?.selected == 10 && s.tables[.devices]?.offset == 10)
        _ = s.handle(.char("G"), nav: n)
        #expect(s.tables[.devices]?.selected == 99 && s.tables[.devices]?.offset == 90)
        #expect(s.tables[.devices]?.selectedKey == "row-99")
        _ = s.handle(.home, nav: n)
        #expect(s.tables[.devices]?.selected == 0 && s.tables[.devices]?.offset == 0)
    }

    @Test func sortingKeys() {
        var s = AppState(view: .devices)
        _ = s.handle(.char(">"))
        #expect(s.tables[.devices]?.sortColumn == 1 && s.tables[.devices]?.descending == false)  // state: text ascending
        for _ in 0..<9 { _ = s.handle(.char(">")) }
        #expect(s.tables[.devices]?.sortColumn == 10 && s.tables[.devices]?.descending == true)  // p95: largest first
        _ = s.handle(.char("r"))
        #expect(s.tables[.devices]?.descending == false)
        _ = s.handle(.char("<"))
        #expect(s.tables[.devices]?.sortColumn == 9)
        var w = AppState(view: .devices)
        _ = w.handle(.char("<"))
        #expect(w.tables[.devices]?.sortColumn == TableSpecs.devices.columns.count - 1)
    }

    @Test func filterModeEditsLiveAndEscRestores() {
        var s = AppState(view: .devices)
        _ = s.handle(.char("/"))
        #expect(s.input == .filter(""))
        for c in "sku=x" { _ = s.handle(.char(c)) }
        #expect(s.tables[.devices]?.filterText == "sku=x")
        _ = s.handle(.backspace)
        #expect(s.input == .filter("sku=") && s.tables[.devices]?.filterText == "sku=")
        _ = s.handle(.escape)
        #expect(s.input == .none && s.tables[.devices]?.filterText == "")
        _ = s.handle(.char("/"))
        for c in "!state=online" { _ = s.handle(.char(c)) }
        _ = s.handle(.enter)
        #expect(s.input == .none && s.tables[.devices]?.filterText == "!state=online")
        #expect(s.message?.text == "filter: !state=online")
        // Esc with a filter and nothing to pop clears it.
        _ = s.handle(.escape)
        #expect(s.tables[.devices]?.filterText == "")
        // An unknown label is reported on Enter and not applied.
        _ = s.handle(.char("/"))
        for c in "nope=1" { _ = s.handle(.char(c)) }
        _ = s.handle(.enter)
        #expect(s.message?.isError == true && s.tables[.devices]?.filterText == "")
    }

    @Test func commandMode() {
        var s = AppState(view: .cohorts)
        _ = s.handle(.char(":"))
        for c in "dev" { _ = s.handle(.char(c)) }
        _ = s.handle(.enter)
        #expect(s.view == .devices && s.input == .none)
        _ = s.handle(.char(":"))
        for c in "by firmware" { _ = s.handle(.char(c)) }
        _ = s.handle(.enter)
        #expect(s.view == .cohorts && s.cohortLabels == ["firmware"])
        #expect(s.loadRequest.cohortLabels == ["firmware"])
        _ = s.handle(.char(":"))
        for c in "sort p95 asc" { _ = s.handle(.char(c)) }
        _ = s.handle(.enter)
        #expect(s.tables[.cohorts]?.sortColumn == 7 && s.tables[.cohorts]?.descending == false)
        _ = s.handle(.char(":"))
        for c in "sort nope" { _ = s.handle(.char(c)) }
        _ = s.handle(.enter)
        #expect(s.message?.isError == true)
        _ = s.handle(.char(":"))
        for c in "ver" { _ = s.handle(.char(c)) }
        _ = s.handle(.tab)
        #expect(s.input == .command("versions "))
        _ = s.handle(.enter)
        #expect(s.view == .versions)
        _ = s.handle(.char(":"))
        _ = s.handle(.char("q"))
        #expect(s.handle(.enter) == .quit)
    }

    @Test func drillDownAndBack() {
        var s = AppState(view: .devices)
        let n = nav(rows: 5)
        _ = s.handle(.down, nav: n)
        #expect(s.handle(.enter, nav: n) == .redraw)
        #expect(s.screen == .drill("row-1") && s.loadRequest.drillDevice == "row-1" && s.view == .devices)
        var d = AppState.Nav()
        d.drillRows = 50
        d.drillPage = 10
        _ = s.handle(.char(" "), nav: d)
        #expect(s.drillOffset == 10)
        _ = s.handle(.end, nav: d)
        #expect(s.drillOffset == 10)  // "G" is not bound in the drill-down; End is a table key
        _ = s.handle(.escape)
        #expect(s.screen == .view(.devices) && s.loadRequest.drillDevice == nil)
        _ = s.handle(.char(":"))
        for c in "drill cam-9" { _ = s.handle(.char(c)) }
        _ = s.handle(.enter)
        #expect(s.screen == .drill("cam-9"))
        _ = s.handle(.char("h"))
        #expect(s.screen == .view(.devices))
    }

    @Test func openingACohortFiltersTheDevices() {
        var s = AppState(view: .cohorts)
        var n = AppState.Nav()
        n.rows = 2
        n.key = { _ in "1.4.0\u{1}xavier-nx" }
        _ = s.handle(.enter, nav: n)
        #expect(s.view == .devices && s.tables[.devices]?.filterText == "model_version=1.4.0 sku=xavier-nx")
    }

    @Test func helpAndViewsAndQuit() {
        var s = AppState()
        _ = s.handle(.char("?"))
        #expect(s.showHelp)
        _ = s.handle(.char("x"))
        #expect(!s.showHelp)
        _ = s.handle(.char("3"))
        #expect(s.view == .alerts)
        _ = s.handle(.tab)
        #expect(s.view == .versions)
        _ = s.handle(.tab)
        #expect(s.view == .cohorts)
        _ = s.handle(.backTab)
        #expect(s.view == .versions)
        #expect(s.handle(.char("z")) == .redraw && s.message?.isError == true)
        #expect(s.handle(.unknown) == .skip)
        let before = s.generation
        _ = s.handle(.ctrl("r"))
        #expect(s.generation == before + 1 && s.loadRequest.generation == before + 1)
        #expect(s.handle(.char("q")) == .quit)
        var h = AppState()
        _ = h.handle(.char("?"))
        #expect(h.handle(.ctrl("c")) == .quit)
    }
}
