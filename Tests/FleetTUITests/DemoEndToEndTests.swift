import Foundation
import Testing

/// `fleetwatch demo` as a person runs it (the README's first command): in a real terminal
/// (tmux), the TUI shows the simulated fleet, the bad rollout pages, and `q` stops everything:
/// exit 0, no broker or ingester left behind, the work directory removed.
@Suite struct DemoEndToEndTests {
    @Test func demoShowsTheFleetPagesAndQStopsEverything() throws {
        let cmd = "\(shellQuote(Binaries.fleetwatch)) demo; echo EXIT=$?"
        let t = try Tmux(width: 160, height: 48, command: "sh -c " + shellQuote(cmd), cwd: Binaries.repoRoot.path)
        defer { t.kill() }
        let screen = try t.wait(timeout: 120, "the header with a firing alert") {
            $0.contains("DEVICES 100 online") && $0.contains("firing")
        }
        // The cohorts view shows the rollout's new version on the faulty sku.
        #expect(screen.contains("1.5.0") && screen.contains("rpi5-hailo8"), "\(screen)")
        // The work directory, from the header's database path.
        let dir = screen.split(separator: " ").first { $0.hasPrefix("/tmp/fleetwatch-demo-") }.map { String($0.dropLast("/fleet.db".count)) }
        #expect(dir != nil, "\(screen)")

        // The alerts view names the alert and its cohort (the cohorts view had neither name).
        try t.send("3")
        let alerts = try t.wait(timeout: 20, "the alerts view") { $0.contains("InferenceLatency") || $0.contains("CrashFreeSess") }
        #expect(alerts.contains("rpi5-hailo8"), "\(alerts)")

        try t.send("q")
        _ = try t.wait(for: "EXIT=0", timeout: 40)
        if let dir {
            #expect(!FileManager.default.fileExists(atPath: dir), "work directory left: \(dir)")
            // No process of this demo is left: none has the work directory on its command line.
            let procs = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            for p in procs where Int32(p) != nil {
                guard let raw = FileManager.default.contents(atPath: "/proc/\(p)/cmdline") else { continue }
                let line = String(decoding: raw.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
                #expect(!line.contains(dir), "left running: \(p) \(line)")
            }
        }
    }
}
