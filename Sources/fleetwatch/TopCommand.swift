import ArgumentParser
import FleetCore
import FleetStore
import FleetTUI
import Foundation

/// `fleetwatch top`: the live dashboard (docs/tui.md).
struct Top: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Live terminal dashboard of the fleet: KPIs, cohorts, devices, drill-down, alerts, versions.",
        discussion: """
            Reads the database read-only, next to a running ingester, and refreshes every --refresh.
            Keys: ? help, q quit, 1-4 or :devices/:cohorts/:alerts/:versions, / filter, < > r sort, Enter drill down.
            NO_COLOR=1 turns colour off; --ascii (or a non-UTF-8 locale) draws with ASCII only.
            """)

    @OptionGroup var database: DatabaseOption

    @Option(help: "Refresh interval (Prometheus duration, e.g. 1s, 2s, 500ms).")
    var refresh: String = "2s"

    @Flag(help: "Draw with ASCII only (no line drawing or block characters).")
    var ascii = false

    @Option(help: "Alert rules file whose thresholds colour the cells (default ./alerts.yaml if present).")
    var rules: String?

    @Option(help: "First view: cohorts, devices, alerts or versions.")
    var view: String = "cohorts"

    @Option(help: "Cohort labels (comma-separated): model_name, model_version, sku, firmware, accelerator.")
    var by: String = "model_version,sku"

    @Option(help: .hidden)
    var benchFrames: Int?

    @Option(help: .hidden)
    var benchSize: String = "160x48"

    @Option(help: .hidden)
    var benchViews: String = "cohorts,devices"

    /// Devices whose registry row is touched before each refresh frame (a live fleet's churn).
    @Option(help: .hidden)
    var benchChurn: Int = 0

    /// Rebuild frames after the refresh frames (default max(3, frames/5); 0 to profile refreshes alone).
    @Option(help: .hidden)
    var benchRebuilds: Int?

    @Flag(help: .hidden)
    var debugCrash = false

    func validate() throws {
        guard let ms = PromDuration.parseMs(refresh), ms >= 100 else {
            throw ValidationError("--refresh: '\(refresh)' is not a duration of at least 100ms (e.g. 2s)")
        }
        guard ViewKind(rawValue: view) != nil else { throw ValidationError("--view: use cohorts, devices, alerts or versions") }
        for l in labels where !StoreReader.cohortLabels.contains(l) {
            throw ValidationError("--by: unknown label '\(l)': use \(StoreReader.cohortLabels.joined(separator: ", "))")
        }
    }

    var labels: [String] { by.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }

    func run() throws {
        var options = TopOptions(dbPath: database.db)
        options.refreshMs = Int(PromDuration.parseMs(refresh) ?? 2000)
        options.ascii = ascii
        options.color = (ProcessInfo.processInfo.environment["NO_COLOR"] ?? "").isEmpty
        options.view = ViewKind(rawValue: view) ?? .cohorts
        options.cohortLabels = labels.isEmpty ? ["model_version", "sku"] : labels
        options.thresholds = try loadThresholds()
        options.crashAfterFirstFrame = debugCrash

        if let frames = benchFrames {
            let parts = benchSize.split(separator: "x").compactMap { Int($0) }
            guard parts.count == 2 else { throw ValidationError("--bench-size WxH") }
            let views = benchViews.split(separator: ",").compactMap { ViewKind(rawValue: String($0)) }
            let results = try FrameBenchmark.run(dbPath: database.db, views: views, frames: frames, width: parts[0], height: parts[1], churn: benchChurn, rebuilds: benchRebuilds)
            print(FrameBenchmark.json(results))
            return
        }
        guard isatty(1) == 1, isatty(0) == 1 else {
            throw fail("top needs a terminal on stdin and stdout (use 'fleetwatch query fleet' or 'query device' in scripts)")
        }
        let signal: Int32?
        do {
            signal = try TopApp.run(options)
        } catch let e as TUIError {
            throw fail(e.description)
        }
        // Ended by a signal: the terminal is restored; exit as shells expect (130 for SIGINT).
        if let signal { throw ExitCode(128 + signal) }
    }

    /// The rules file's thresholds: an explicit --rules must exist; the default ./alerts.yaml is
    /// used only if present.
    func loadThresholds() throws -> Thresholds {
        let path = rules ?? "alerts.yaml"
        guard let data = FileManager.default.contents(atPath: path) else {
            if rules != nil { throw fail("cannot read rules file \(path)") }
            return .defaults
        }
        return Thresholds.loading(yaml: String(decoding: data, as: UTF8.self))
    }
}
