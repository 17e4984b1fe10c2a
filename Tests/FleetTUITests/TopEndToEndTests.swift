import FleetCore
import FleetStore
import FleetTUI
import Foundation
import Testing

/// `fleetwatch top` itself, in tmux, against databases filled by the store's own writer: what
/// an on-call engineer would see and do. Each test runs a private tmux server and kills it.
@Suite(.serialized, .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/tmux"), "needs tmux"))
struct TopEndToEndTests {
    /// Starts `fleetwatch top ARGS` in a shell that records the tty settings before and after
    /// and prints the exit status, in a `width` x `height` tmux session. The shell then sleeps,
    /// so the screen stays readable (tmux can drop the last output of a pane that just died);
    /// killing the tmux server at the end hangs the sleep up.
    func start(_ dir: TempDB, args: [String], env: String = "", width: Int = 160, height: Int = 48) throws -> Tmux {
        // `trap : INT`: Ctrl-C reaches the program (default disposition after exec) while the
        // shell lives on to print the exit status.
        let cmd = "trap : INT; stty -g > before.txt; \(env) \(shellQuote(Binaries.fleetwatch)) top " + args.map(shellQuote).joined(separator: " ")
            + "; echo \"EXIT=$?\"; stty -g > after.txt; exec sleep 600"
        return try Tmux(width: width, height: height, command: "sh -c " + shellQuote(cmd), cwd: dir.dir.path)
    }

    /// Waits for the exit line, then checks the tty settings are what they were before.
    func expectRestored(_ t: Tmux, _ dir: TempDB, exit: Int) throws {
        let screen = try t.wait(for: "EXIT=\(exit)")
        let deadline = Date().addingTimeInterval(5)
        var after = ""
        while Date() < deadline {
            after = (try? String(contentsOf: dir.dir.appendingPathComponent("after.txt"), encoding: .utf8)) ?? ""
            if !after.isEmpty { break }
            usleep(50_000)
        }
        let before = try String(contentsOf: dir.dir.appendingPathComponent("before.txt"), encoding: .utf8)
        #expect(!before.isEmpty && before == after, "tty settings changed: \(before) -> \(after)")
        // The alternate screen is gone: the dashboard no longer shows.
        #expect(!screen.contains("CRASH-FREE"))
        #expect(try t.value("#{alternate_on}") == "0")
        #expect(try t.value("#{cursor_flag}") == "1")
    }

    func dataRows(_ screen: String) -> [String] {
        let lines = screen.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let h = lines.firstIndex(where: { $0.contains("DEVICE") && $0.contains("STATE") }) else { return [] }
        return Array(lines[(h + 1)...].prefix { $0.hasPrefix(" cam-") || $0.hasPrefix(" dev-") })
    }

    @Test(.timeLimit(.minutes(2))) func valuesSortingAndFiltering() throws {
        let dir = TempDB()
        try fillFleet(dir.path)
        let t = try start(dir, args: ["--db", dir.path, "--refresh", "500ms"])
        defer { t.kill() }
        let header = try t.wait(for: "DEVICES 12 online")
        #expect(header.contains("ERRORS 1.75%"))  // (11 devices x 1% + 10%) / 12
        #expect(header.contains("CRASH-FREE 0.00%"))  // the one session that ended crashed
        // Cohorts: model version x sku, with the device counts and error rates of the fleet.
        let cohorts = try t.wait(for: "by model_version,sku")
        let lines = cohorts.split(separator: "\n").map(String.init)
        let v14xavier = try #require(lines.first { $0.contains("1.4.0") && $0.contains("xavier-nx") })
        #expect(v14xavier.contains(" 4 ") && v14xavier.contains("33.3%") && v14xavier.contains("3.25%"))
        let v15orin = try #require(lines.first { $0.contains("1.5.0") && $0.contains("orin-nano-8g") })
        #expect(v15orin.contains(" 2 ") && v15orin.contains("16.7%"))

        // Devices, by name.
        try t.send("2")
        // The footer can be painted before the rows of the same frame are: wait for all of them.
        var screen = try t.wait("the device table") { $0.contains("1-12 of 12 devices") && self.dataRows($0).count == 12 }
        #expect(dataRows(screen).first?.hasPrefix(" cam-00 ") == true)
        // Sorted by p95, largest first: the slow device on top; reversed, at the bottom.
        try t.send(":")
        try t.type("sort p95")
        try t.send("Enter")
        // Wait for the whole table to be repainted (a capture can land mid-frame), then check it.
        let p95Column = { (screen: String) in self.dataRows(screen).compactMap { Double($0.split(separator: " ").dropFirst(10).first ?? "") } }
        screen = try t.wait("p95 sort") {
            self.dataRows($0).first?.hasPrefix(" cam-02 ") == true && $0.contains("P95ms↓") && p95Column($0) == p95Column($0).sorted(by: >)
        }
        let p95 = p95Column(screen)
        #expect(p95.count == 12 && p95 == p95.sorted(by: >), "\(p95)")
        try t.send("r")
        screen = try t.wait("reversed") { self.dataRows($0).last?.hasPrefix(" cam-02 ") == true && $0.contains("P95ms↑") }
        // < and > move the sort column.
        try t.send("<")
        try t.wait(for: "ERR%↓")
        // Filter by label, then by inverted substring.
        try t.send("/")
        try t.type("sku=xavier-nx")
        try t.send("Enter")
        screen = try t.wait(for: "1-6 of 6 (12 total) devices")
        #expect(dataRows(screen).count == 6 && dataRows(screen).allSatisfy { $0.contains("xavier-nx") })
        try t.send("c")
        try t.wait(for: "1-12 of 12 devices")
        try t.send("/")
        try t.type("!cam-0")
        try t.send("Enter")
        screen = try t.wait(for: "1-2 of 2 (12 total) devices")
        #expect(Set(dataRows(screen).map { String($0.dropFirst().prefix(6)) }) == ["cam-10", "cam-11"])
        try t.send("q")
        try expectRestored(t, dir, exit: 0)
    }

    @Test(.timeLimit(.minutes(2))) func drillDownShowsWhatChangedWithHostileTextInert() throws {
        let dir = TempDB()
        try fillFleet(dir.path)
        let t = try start(dir, args: ["--db", dir.path, "--view", "devices"])
        defer { t.kill() }
        try t.wait(for: "1-12 of 12 devices")
        try t.send("/")
        try t.type("cam-01")
        try t.send("Enter")
        try t.wait(for: "1-1 of 1 (12 total) devices")
        try t.send("Enter")
        let screen = try t.wait(for: "WHAT CHANGED")
        #expect(screen.contains("E_CAM: \\x1b]0;pwned\\x07 camera gone"))
        #expect(screen.contains("p95 latency ms") && screen.contains("inferences/s") && screen.contains("LAST 2 HOURS"))
        #expect(try t.value("#{pane_title}") != "pwned")
        #expect(!(try t.capture(escapes: true)).contains("\u{1b}]0;pwned"))
        // Back, and straight to another device with a crash and a rollback.
        try t.send("Escape")
        try t.wait(for: "1-1 of 1 (12 total) devices")
        try t.send(":")
        try t.type("drill cam-02")
        try t.send("Enter")
        let c2 = try t.wait(for: "1.4.0 -> 1.5.0 rolled_back")
        #expect(c2.contains("DEPLOY"))
        try t.send(":")
        try t.type("drill cam-00")
        try t.send("Enter")
        let c0 = try t.wait(for: "session s-1 crashed after 10m00s")
        #expect(c0.contains("CRASH"))
        try t.send("q")
        try expectRestored(t, dir, exit: 0)
    }

    @Test(.timeLimit(.minutes(2))) func helpResizeAndCtrlC() throws {
        let dir = TempDB()
        try fillFleet(dir.path)
        let t = try start(dir, args: ["--db", dir.path])
        defer { t.kill() }
        try t.wait(for: "DEVICES 12 online")
        try t.send("?")
        // Wait for the whole overlay, not its title: a capture can land mid-frame.
        let expected = ["reverse the sort", "drill into the device", ":by LABEL[,LABEL]", "Esc", "sort the current table"]
        let help = try t.wait("the help overlay") { s in s.contains("fleetwatch top: keys") && expected.allSatisfy(s.contains) }
        for line in expected { #expect(help.contains(line)) }
        try t.send("Escape")
        try t.wait("help closed") { !$0.contains("fleetwatch top: keys") }
        // Shrink to 80x24: everything still fits, the essentials still show.
        try t.send("2")
        try t.wait(for: "of 12 devices")
        try t.resize(width: 80, height: 24)
        let small = try t.wait("80x24 frame") { s in
            let l = s.split(separator: "\n", omittingEmptySubsequences: false)
            return l.count <= 25 && s.contains("DEVICE↑") && !s.contains("ACCEL")
        }
        let lines = small.split(separator: "\n").map(String.init)
        #expect(lines.allSatisfy { TerminalWidthCheck.columns($0) <= 80 })
        let head = try #require(lines.first { $0.contains("DEVICE↑") })
        for c in ["STATE", "ERR%", "P95ms"] { #expect(head.contains(c)) }
        #expect(small.contains("DEVICES 12 online"))
        // Keys still work after a resize (Esc included).
        try t.send("Enter")
        try t.wait(for: "WHAT CHANGED")
        try t.send("Escape")
        try t.wait("back from the drill-down") { $0.contains("DEVICE↑") && !$0.contains("WHAT CHANGED") }
        try t.resize(width: 160, height: 48)
        try t.wait(for: "ACCEL")
        try t.send("C-c")
        try expectRestored(t, dir, exit: 130)
    }

    @Test(.timeLimit(.minutes(2))) func sigtermRestoresTheTerminal() throws {
        let dir = TempDB()
        try fillFleet(dir.path, devices: 3, minutes: 2)
        let t = try start(dir, args: ["--db", dir.path])
        defer { t.kill() }
        try t.wait(for: "DEVICES 3 online")
        let pid = try t.childPid()
        #expect(Foundation.kill(pid, SIGTERM) == 0)
        try expectRestored(t, dir, exit: 143)
    }

    @Test(.timeLimit(.minutes(2))) func aCrashStillRestoresTheTerminal() throws {
        let dir = TempDB()
        try fillFleet(dir.path, devices: 2, minutes: 2)
        let t = try start(dir, args: ["--db", dir.path, "--debug-crash"], env: "SWIFT_BACKTRACE=enable=no")
        defer { t.kill() }
        // A Swift trap is SIGILL (exit 132) or SIGTRAP (133), depending on the platform.
        let screen = try t.wait("crash exit") { $0.contains("EXIT=132") || $0.contains("EXIT=133") }
        try expectRestored(t, dir, exit: screen.contains("EXIT=132") ? 132 : 133)
    }

    @Test(.timeLimit(.minutes(2))) func withoutATerminalItSaysSo() throws {
        let dir = TempDB()
        let r = try Spawn.run([Binaries.fleetwatch, "top", "--db", dir.path], env: [], timeout: 30)
        #expect(r.status == 1)
        #expect(r.stderr == "fleetwatch: top needs a terminal on stdin and stdout (use 'fleetwatch query fleet' or 'query device' in scripts)\n")
        let usage = try Spawn.run([Binaries.fleetwatch, "top", "--db", dir.path, "--refresh", "fast"], env: [], timeout: 30)
        #expect(usage.status == 2 && usage.stderr.contains("--refresh"))
        let rules = try Spawn.run([Binaries.fleetwatch, "top", "--db", dir.path, "--rules", dir.dir.appendingPathComponent("none.yaml").path], env: [], timeout: 30)
        #expect(rules.status == 1 && rules.stderr.contains("cannot read rules file"))
    }

    @Test(.timeLimit(.minutes(2))) func anUnknownTerminalIsOneClearError() throws {
        let dir = TempDB()
        try fillFleet(dir.path, devices: 2, minutes: 2)
        let t = try start(dir, args: ["--db", dir.path], env: "TERM=no-such-terminal")
        defer { t.kill() }
        let screen = try t.wait(for: "EXIT=1")
        #expect(screen.contains("fleetwatch: cannot initialise the terminal (TERM=no-such-terminal)"))
        try expectRestored(t, dir, exit: 1)
    }

    @Test(.timeLimit(.minutes(2))) func aMissingDatabaseSaysWhatToRunAndThenShowsIt() throws {
        let dir = TempDB()
        let t = try start(dir, args: ["--db", dir.path, "--refresh", "200ms"])
        defer { t.kill() }
        let screen = try t.wait(for: "No fleet data to show yet")
        #expect(screen.contains("no database at \(dir.path)"))
        #expect(screen.contains("fleetwatch ingest --broker HOST:PORT --db \(dir.path)"))
        try fillFleet(dir.path, devices: 2, minutes: 2)
        try t.wait(for: "DEVICES 2 online")
        try t.send("q")
        try expectRestored(t, dir, exit: 0)
    }

    @Test(.timeLimit(.minutes(2))) func tenThousandDevicesPage() throws {
        let dir = TempDB()
        let w = try StoreWriter(path: dir.path)
        var items: [TelemetryMessage] = []
        for d in 0..<10_000 {
            let dev = Device(id: "dev-\(d)", version: d % 2 == 0 ? "1.4.0" : "1.5.0")
            items.append(dev.message(seq: 1, at: t0 - Int64(d), records: [Device.inference(at: t0 - Int64(d), count: 10, errors: Int64(d % 3)), Device.resources(at: t0)]))
        }
        try w.write(items)
        let t = try start(dir, args: ["--db", dir.path, "--view", "devices"])
        defer { t.kill() }
        try t.wait(timeout: 60, "10k devices") { $0.contains("of 10,000 devices") }
        try t.send("G")
        // Wait for the whole last page, not its status line alone (a capture can land mid-frame);
        // a last page that never ends with dev-9999 times out and fails.
        var screen = try t.wait("last page") { $0.contains("10,000 of 10,000 devices") && dataRows($0).last?.hasPrefix(" dev-9999 ") == true }
        #expect(dataRows(screen).last.map { $0.hasPrefix(" dev-9999 ") } == true)
        try t.send("PageUp")
        screen = try t.wait("page up") { !$0.contains("10,000 of 10,000 devices") && $0.contains("of 10,000 devices") }
        try t.send("g")
        screen = try t.wait("first page") { $0.contains("1-41 of 10,000 devices") && dataRows($0).first?.hasPrefix(" dev-0 ") == true }
        #expect(dataRows(screen).first?.hasPrefix(" dev-0 ") == true)
        try t.send("/")
        try t.type("dev-4242")
        try t.send("Enter")
        screen = try t.wait(for: "1-1 of 1 (10,000 total) devices")
        try t.send("q")
        try expectRestored(t, dir, exit: 0)
    }

    @Test(.timeLimit(.minutes(2))) func asciiAndNoColor() throws {
        let dir = TempDB()
        try fillFleet(dir.path, devices: 3, minutes: 2)
        let colour = try start(dir, args: ["--db", dir.path])
        defer { colour.kill() }
        try colour.wait(for: "DEVICES 3 online")
        let withColour = try colour.capture(escapes: true)
        #expect(Self.hasForegroundColour(withColour))
        #expect(withColour.contains("│") && withColour.contains("─"))
        colour.kill()

        let plain = try start(dir, args: ["--db", dir.path, "--ascii"], env: "NO_COLOR=1")
        defer { plain.kill() }
        try plain.wait(for: "DEVICES 3 online")
        try plain.send("4")
        try plain.wait(for: "ADOPTION, LAST 24H")
        let text = try plain.capture(escapes: true)
        #expect(!Self.hasForegroundColour(text))
        #expect(!text.unicodeScalars.contains { $0.value > 0x7E && $0.value != 0x1B })
        #expect(text.contains("# 1.4.0") || text.contains("# 1.5.0"))
        try plain.send("q")
        try expectRestored(plain, dir, exit: 0)
    }

    /// Whether tmux's `capture-pane -e` output sets a foreground colour (SGR 30-37/90-97/38).
    static func hasForegroundColour(_ s: String) -> Bool {
        var i = s.startIndex
        while let esc = s[i...].firstIndex(of: "\u{1b}") {
            guard let m = s[esc...].firstIndex(of: "m") else { break }
            let start = s.index(esc, offsetBy: 2, limitedBy: m) ?? m
            let params = s[start..<m].split(separator: ";")
            if params.contains(where: { p in Int(p).map { (30...38).contains($0) || (90...97).contains($0) } ?? false }) { return true }
            i = s.index(after: m)
        }
        return false
    }
}

/// Column widths as the terminal counts them (the TUI's table, checked against glibc).
enum TerminalWidthCheck {
    static func columns(_ s: String) -> Int { TerminalWidth.columns(s) }
}
