import FleetCore
@testable import FleetStore
import Testing

@testable import FleetTUI

@Suite struct PresenterTests {
    func render(_ s: Snapshot?, state: inout AppState, width: Int = 160, height: Int = 48, glyphs: Glyphs = .unicode) -> (String, AppState.Nav) {
        let p = Presenter(dbPath: "/data/fleet.db", glyphs: glyphs)
        if let s { p.update(s) }
        let (c, nav) = p.frame(&state, width: width, height: height, nowMs: t0)
        #expect(c.width == width && c.height == height)
        #expect(!c.cells.contains { $0.text.unicodeScalars.contains { $0.value < 0x20 || ($0.value >= 0x7f && $0.value < 0xa0) } })
        return (c.text, nav)
    }

    @Test func headerShowsTheFleetKPIs() {
        var state = AppState(view: .devices)
        let (text, _) = render(syntheticSnapshot(devices: 30), state: &state)
        #expect(text.contains("DEVICES 27 online 3 offline"))
        #expect(text.contains("CRASH-FREE 99.00%"))
        #expect(text.contains("ERRORS 0.50% ↑"))  // 50 errors now against 10 before
        #expect(text.contains("P95 21.5 ms →"))
        #expect(text.contains("ALERTS no rules loaded"))
        #expect(text.contains("ADOPTION 33.3% on 1.5.0"))
        #expect(text.contains("INGEST 1.2k msg/s quarantined 3"))
    }

    @Test func devicesTableRowsAndPaging() {
        var state = AppState(view: .devices)
        let (text, nav) = render(syntheticSnapshot(devices: 10_000), state: &state)
        #expect(nav.rows == 10_000)
        #expect(text.contains("1-41 of 10,000 devices"))
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let header = lines.first { $0.contains("DEVICE↑") }!
        for title in ["STATE", "VERSION", "SKU", "ERR%", "P95ms", "CRASH"] { #expect(header.contains(title)) }
        let row = lines.first { $0.hasPrefix(" dev-0 ") }!
        #expect(row.contains("online") && row.contains("1.5.0") && row.contains("orin-nano-8g") && row.contains("0.00%"))
        // Paging to the end shows the last rows.
        var s2 = state
        _ = s2.apply(.bottom, nav: nav)
        let (end, _) = render(syntheticSnapshot(devices: 10_000), state: &s2)
        #expect(end.contains("9,960-10,000 of 10,000 devices"))
    }

    @Test func narrowTerminalsKeepTheEssentials() {
        var state = AppState(view: .devices)
        let (text, _) = render(syntheticSnapshot(devices: 50), state: &state, width: 80, height: 24)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 24)
        #expect(lines.allSatisfy { TerminalWidth.columns(String($0)) <= 80 })
        let header = lines.first { $0.contains("DEVICE↑") }!
        for title in ["STATE", "ERR%", "P95ms"] { #expect(header.contains(title)) }
        #expect(text.contains("DEVICES"))
    }

    @Test func cohortLabelsFromDevicesAreInert() {
        var state = AppState(view: .cohorts)
        let (text, _) = render(syntheticSnapshot(devices: 5, view: .cohorts), state: &state)
        #expect(text.contains("\\x1b]0;pwned\\x07"))
        #expect(text.contains("VERSION↑"))
        #expect(text.contains("99.00%"))
    }

    @Test func theDatabaseNotThereYetScreen() {
        var state = AppState()
        var s = Snapshot(request: state.loadRequest)
        s.status = .unavailable("no database at /data/fleet.db: fill one with 'fleetwatch ingest ...'")
        let (text, _) = render(s, state: &state)
        #expect(text.contains("No fleet data to show yet"))
        #expect(text.contains("fleetwatch ingest --broker HOST:PORT --db /data/fleet.db"))
        #expect(text.contains("q quit"))
        var empty = syntheticSnapshot(devices: 0, view: .cohorts)
        empty.registry = []
        empty.cohorts = []
        let (e, _) = render(empty, state: &state)
        #expect(e.contains("The database has no devices yet"))
    }

    @Test func alertsViewWithAndWithoutAnEngine() {
        var state = AppState(view: .alerts)
        let (none, _) = render(syntheticSnapshot(devices: 3, view: .alerts), state: &state)
        #expect(none.contains("no alert rules loaded (run ingest with --rules alerts.yaml)"))
        let alerts = [
            AlertRow(alertname: "CrashFreeSessionsLow", state: "firing", severity: "page", labels: [("alertname", "CrashFreeSessionsLow"), ("model_version", "1.5.0"), ("severity", "page")],
                     annotations: [("summary", "crash-free sessions 0.97 on 1.5.0 " + hostileTitle)], value: 0.97, activeAtMs: t0 - 900_000, firedAtMs: t0 - 600_000, resolvedAtMs: nil),
            AlertRow(alertname: "P95High", state: "pending", severity: "ticket", labels: [("sku", "xavier-nx")], annotations: [], value: 180, activeAtMs: t0 - 120_000, firedAtMs: nil, resolvedAtMs: nil),
            AlertRow(alertname: "ErrorsHigh", state: "resolved", severity: "ticket", labels: [], annotations: [], value: 0.01, activeAtMs: t0 - 7_200_000, firedAtMs: t0 - 7_000_000, resolvedAtMs: t0 - 3_600_000),
        ]
        state = AppState(view: .alerts)
        let (text, nav) = render(syntheticSnapshot(devices: 3, view: .alerts, alerts: alerts), state: &state)
        #expect(nav.rows == 3)
        let lines = text.split(separator: "\n").map(String.init)
        let firing = lines.firstIndex { $0.contains("FIRING") && $0.contains("CrashFreeSessionsLow") }!
        let pending = lines.firstIndex { $0.contains("PENDING") && $0.contains("P95High") }!
        let resolved = lines.firstIndex { $0.contains("RESOLVED") && $0.contains("ErrorsHigh") }!
        #expect(firing < pending && pending < resolved)
        #expect(lines[firing].contains("10m00s") && lines[firing].contains("model_version=1.5.0") && lines[firing].contains("\\x1b]0;pwned"))
        #expect(lines[pending].contains("2m00s"))
        #expect(text.contains("ALERTS 1 firing (1 page) 1 pending"))
        #expect(text.contains("3 Alerts (1)"))
    }

    @Test func versionsViewChartsAdoption() {
        var state = AppState(view: .versions)
        var s = syntheticSnapshot(devices: 30, view: .versions)
        var outcomes = StoreReader.DeployOutcomes()
        outcomes.installed = 7
        outcomes.rolledBack = 3
        s.versions = StoreReader.VersionHistory(
            bucketMs: 1_800_000, fromMs: t0 - 86_400_000,
            devices: ["1.4.0": (0..<48).map { 30 - $0 / 3 }, "1.5.0": (0..<48).map { $0 / 3 }], deploys: ["1.5.0": outcomes])
        let (text, nav) = render(s, state: &state)
        #expect(nav.rows == 2)
        let lines = text.split(separator: "\n").map(String.init)
        let v15 = lines.first { $0.hasPrefix(" 1.5.0") }!
        #expect(v15.contains("10") && v15.contains("33.3%") && v15.contains("7") && v15.contains("3") && v15.contains("30.0%"))
        #expect(text.contains("ADOPTION, LAST 24H"))
        #expect(text.contains("█ 1.5.0") && text.contains("▓ 1.4.0"))
        #expect(text.contains("100%") && text.contains("  0%"))
        let ascii = render(s, state: &state, glyphs: .ascii).0
        #expect(ascii.contains("# 1.5.0") && !ascii.contains("█"))
    }

    @Test func drillDownShowsTimelineAndCharts() {
        var state = AppState(view: .devices)
        state.stack.append(.drill("cam-01"))
        var s = syntheticSnapshot(devices: 3)
        let row = StoreReader.DeviceRow(
            deviceID: "cam-01", sku: "xavier-nx", firmware: "5.2.0", agent: "0.3.0", accelerator: "gpu", modelName: "defect-detector",
            modelVersion: "1.5.0", modelSHA256: "", state: "online", stateChangedMs: nil, firstSeenMs: t0 - 86_400_000, lastSeenMs: t0 - 5000,
            lastReceivedMs: t0 - 5000, lastSeq: 999)
        let timeline = [
            StoreReader.TimelineEntry(tsMs: t0 - 3_000_000, kind: "deploy", seq: 10, fields: [("from_version", .text("1.4.0")), ("to_version", .text("1.5.0")), ("result", .text("installed"))]),
            StoreReader.TimelineEntry(tsMs: t0 - 2_000_000, kind: "change", seq: 11, fields: [("field", .text("model_version")), ("from", .text("1.4.0")), ("to", .text("1.5.0"))]),
            StoreReader.TimelineEntry(tsMs: t0 - 1_000_000, kind: "error", seq: 12, fields: [("code", .text("E_CAM")), ("message", .text(hostileTitle + " camera gone"))]),
            StoreReader.TimelineEntry(tsMs: t0 - 500_000, kind: "session", seq: 13, fields: [("session_id", .text("s-1")), ("status", .text("crashed")), ("duration_ms", .int(600_000)), ("errors", .int(2))]),
        ]
        let windows = (0..<120).map { i in
            StoreReader.Window(tsMs: t0 - 7_200_000 + Int64(i) * 60_000, windowMs: 60_000, inferences: 600, errors: Int64(i % 4), latencyP50Ms: 18, latencyP95Ms: 20 + Double(i % 10),
                               tempC: 55, cpuPct: 40, memMB: 900, throttleEvents: 0)
        }
        s.drill = DrillData(deviceID: "cam-01", history: StoreReader.DeviceHistory(device: row, timeline: timeline, windows: [], resolution: "minute", gaps: [13...14]), windows: windows)
        let (text, nav) = render(s, state: &state)
        #expect(nav.drillRows == 4)
        let lines = text.split(separator: "\n").map(String.init)
        #expect(text.contains("cam-01") && text.contains("model defect-detector 1.5.0") && text.contains("gaps 1: 13-14"))
        #expect(text.contains("p95 latency ms") && text.contains("temperature C") && text.contains("inferences/s"))
        let crash = lines.firstIndex { $0.contains("CRASH") && $0.contains("session s-1 crashed after 10m00s") }!
        let error = lines.firstIndex { $0.contains("E_CAM: \\x1b]0;pwned\\x07 camera gone") }!
        let change = lines.firstIndex { $0.contains("CHANGE") && $0.contains("model_version: 1.4.0 -> 1.5.0") }!
        let deploy = lines.firstIndex { $0.contains("DEPLOY") && $0.contains("1.4.0 -> 1.5.0 installed") }!
        #expect(crash < error && error < change && change < deploy)  // newest first
        // A device that is not there.
        s.drill = DrillData(deviceID: "cam-01", history: nil, windows: [])
        #expect(render(s, state: &state).0.contains("no device 'cam-01' in this database"))
    }

    @Test func helpOverlayAndInputLines() {
        var state = AppState(view: .devices)
        _ = state.handle(.char("?"))
        let (help, _) = render(syntheticSnapshot(devices: 3), state: &state)
        #expect(help.contains("fleetwatch top: keys") && help.contains("reverse the sort") && help.contains("drill into the device"))
        state = AppState(view: .devices)
        _ = state.handle(.char("/"))
        for c in "sku=xav" { _ = state.handle(.char(c)) }
        let p = Presenter(dbPath: "x")
        p.update(syntheticSnapshot(devices: 3))
        let (c, _) = p.frame(&state, width: 100, height: 30, nowMs: t0)
        #expect(c.lines()[29] == "/sku=xav")
        #expect(c.cursor?.y == 29 && c.cursor?.x == 8)
    }

    @Test func everySizeFromTinyToHuge() {
        let s = syntheticSnapshot(devices: 200)
        for view in ViewKind.allCases {
            for (w, h) in [(10, 3), (20, 6), (40, 10), (80, 24), (132, 43), (160, 48), (300, 100)] {
                var state = AppState(view: view)
                var snap = s
                snap.request.view = view
                let p = Presenter(dbPath: "/db")
                p.update(snap)
                let (c, _) = p.frame(&state, width: w, height: h, nowMs: t0)
                #expect(c.lines().allSatisfy { TerminalWidth.columns($0) <= w })
            }
        }
    }
}
