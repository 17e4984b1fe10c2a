import FleetStore
import Foundation

/// Frame time as the issue defines it: snapshot query + layout + render into the ncurses buffer
/// (flushed to /dev/null through a real `newterm`), per view, on a given database.
///
/// Each frame scrolls a page so ncurses has real changes to send. `refresh` frames rebuild the
/// snapshot every frame on a warm connection (what the loader does each refresh of a live
/// database); `keypress` frames reuse the snapshot (what a key press costs the UI thread).
public enum FrameBenchmark {
    public struct Phases: Sendable {
        public var query: [Double] = []
        public var layout: [Double] = []
        public var render: [Double] = []
        public var total: [Double] = []
    }

    public struct Result: Sendable {
        public var view: ViewKind
        public var width: Int
        public var height: Int
        public var devices: Int64
        public var rows: Int
        public var refresh = Phases()
        public var keypress = Phases()
        /// Refresh frames 31 s apart: every cache (device windows, registry, cohort signals) is
        /// rebuilt, as happens once every 30 s in a live session.
        public var rebuild = Phases()
        public var firstFrameMs: Double = 0
    }

    /// `churn`: before each refresh frame, that many devices' registry rows are touched (their
    /// receiver time moved on), as a live ingester does for every device that reported since the
    /// last refresh: the frame then reads those devices again, as it would live. Writes to the
    /// database (`last_received_ms` only, moved past the newest and distinct, as new arrivals' would be).
    /// `rebuilds`: rebuild frames after the refresh and keypress frames (default max(3, frames / 5)).
    public static func run(dbPath: String, views: [ViewKind], frames: Int, width: Int, height: Int, churn: Int = 0, rebuilds: Int? = nil) throws -> [Result] {
        let writer = churn > 0 ? try StoreWriter(path: dbPath) : nil
        var next: Int64 = 0
        func touch() throws {
            guard let writer else { return }
            // Distinct receiver times, as live arrivals have (one shared time would make every
            // touched row match the next refresh's `>=` mark again and double the churn).
            let s = try writer.connection.statement("UPDATE devices SET last_received_ms = (SELECT max(last_received_ms) FROM devices) + dev - ?1 WHERE dev > ?1 AND dev <= ?2")
            let total = try writer.connection.scalar("SELECT max(dev) FROM devices") ?? 0
            if next >= total { next = 0 }
            s.bind(1, next)
            s.bind(2, next + Int64(churn))
            try s.run()
            next += Int64(churn)
        }
        let screen = try NCursesScreen(term: "xterm-256color", outputPath: "/dev/null", colors: true, size: (height, width))
        defer { screen.end() }
        var out: [Result] = []
        for view in views {
            // A fresh connection per view: the first frame pays for a cold page cache.
            let builder = SnapshotBuilder(reader: try StoreReader(path: dbPath))
            let presenter = Presenter(dbPath: dbPath, glyphs: .unicode, thresholds: .defaults)
            var state = AppState(view: view)
            let now = TopApp.wallMs()
            var result = Result(view: view, width: width, height: height, devices: 0, rows: 0)
            var nav = AppState.Nav()
            for i in 0..<(frames * 2 + 1) {
                let refresh = i <= frames
                if refresh { try touch() }
                let t0 = SnapshotLoader.monotonicMs()
                if refresh {
                    let s = try builder.build(state.loadRequest, nowMs: now)
                    presenter.update(s)
                    result.devices = s.totalDevices
                }
                let t1 = SnapshotLoader.monotonicMs()
                _ = state.apply(i % 20 == 19 ? .top : .pageDown, nav: nav)
                let (canvas, n) = presenter.frame(&state, width: width, height: height, nowMs: now)
                nav = n
                result.rows = n.rows
                let t2 = SnapshotLoader.monotonicMs()
                screen.paint(canvas)
                let t3 = SnapshotLoader.monotonicMs()
                if i == 0 {
                    result.firstFrameMs = t3 - t0
                    continue
                }
                if refresh {
                    result.refresh.query.append(t1 - t0)
                    result.refresh.layout.append(t2 - t1)
                    result.refresh.render.append(t3 - t2)
                    result.refresh.total.append(t3 - t0)
                } else {
                    result.keypress.layout.append(t2 - t1)
                    result.keypress.render.append(t3 - t2)
                    result.keypress.total.append(t3 - t1)
                }
            }
            for i in 0..<(rebuilds ?? max(3, frames / 5)) {
                let t0 = SnapshotLoader.monotonicMs()
                let s = try builder.build(state.loadRequest, nowMs: now + Int64(i + 1) * 31_000)
                presenter.update(s)
                let t1 = SnapshotLoader.monotonicMs()
                _ = state.apply(.pageDown, nav: nav)
                let (canvas, n) = presenter.frame(&state, width: width, height: height, nowMs: now)
                nav = n
                let t2 = SnapshotLoader.monotonicMs()
                screen.paint(canvas)
                let t3 = SnapshotLoader.monotonicMs()
                result.rebuild.query.append(t1 - t0)
                result.rebuild.layout.append(t2 - t1)
                result.rebuild.render.append(t3 - t2)
                result.rebuild.total.append(t3 - t0)
            }
            out.append(result)
        }
        return out
    }

    public static func percentile(_ xs: [Double], _ p: Double) -> Double {
        guard !xs.isEmpty else { return 0 }
        let s = xs.sorted()
        return s[min(s.count - 1, Int((Double(s.count - 1) * p).rounded()))]
    }

    /// One JSON object per view (the bench executable parses these).
    public static func json(_ results: [Result]) -> String {
        func f(_ x: Double) -> String { String(format: "%.3f", x) }
        func phase(_ xs: [Double]) -> String { "{\"p50\":\(f(percentile(xs, 0.5))),\"p95\":\(f(percentile(xs, 0.95))),\"max\":\(f(xs.max() ?? 0))}" }
        return results.map { r in
            "{\"view\":\"\(r.view.rawValue)\",\"width\":\(r.width),\"height\":\(r.height),\"devices\":\(r.devices),\"rows\":\(r.rows),"
                + "\"first_frame_ms\":\(f(r.firstFrameMs)),"
                + "\"refresh\":{\"query\":\(phase(r.refresh.query)),\"layout\":\(phase(r.refresh.layout)),\"render\":\(phase(r.refresh.render)),\"total\":\(phase(r.refresh.total))},"
                + "\"keypress\":{\"layout\":\(phase(r.keypress.layout)),\"render\":\(phase(r.keypress.render)),\"total\":\(phase(r.keypress.total))},"
                + "\"rebuild\":{\"query\":\(phase(r.rebuild.query)),\"total\":\(phase(r.rebuild.total))}}"
        }.joined(separator: "\n")
    }
}
