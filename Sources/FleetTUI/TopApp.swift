import FleetStore
import Foundation

/// `fleetwatch top`'s options (the command parses them; this runs them).
public struct TopOptions: Sendable {
    public var dbPath: String
    public var refreshMs: Int = 2000
    public var ascii = false
    public var color = true
    public var thresholds = Thresholds.defaults
    public var view: ViewKind = .cohorts
    public var cohortLabels = ["model_version", "sku"]
    /// Test hook (hidden `--debug-crash`): trap after the first frame, to prove the crash
    /// handler restores the terminal.
    public var crashAfterFirstFrame = false
    /// The clock windows end at (epoch ms). Default: the wall clock. `demo` passes the
    /// simulator's scenario clock, which runs faster than the wall.
    public var clock: @Sendable () -> Int64 = { TopApp.wallMs() }

    public init(dbPath: String) { self.dbPath = dbPath }
}

/// The live dashboard: the UI thread's loop.
///
/// This thread owns the terminal. It sleeps in `poll` on three pipes-worth of events (keys on
/// stdin, new snapshots from the loader, signals) with a one-second tick for the clock and
/// ages; each event maps to an `Effect`, and a frame is drawn and flushed once per wake-up that
/// needs it. Every way out (q, SIGINT, SIGTERM, SIGHUP, a thrown error, a crash) restores the
/// terminal.
public enum TopApp {
    /// Runs until q (returns nil) or a terminating signal (returns it, so the command can exit
    /// with 128 + its number, as shells expect).
    @discardableResult
    public static func run(_ options: TopOptions) throws -> Int32? {
        let glyphs = options.ascii || !localeIsUTF8() ? Glyphs.ascii : Glyphs.unicode
        var saved = termios()
        let haveTermios = tcgetattr(0, &saved) == 0
        let signals = try SignalRouter()
        let uiWake = try WakePipe()
        signals.install()
        defer { signals.restore() }
        let screen = try NCursesScreen(colors: options.color)
        CrashRestore.arm(sequence: NCursesScreen.restoreSequence(), termios: haveTermios ? saved : nil)
        defer {
            screen.end()
            CrashRestore.disarm()
        }

        var state = AppState(view: options.view, cohortLabels: options.cohortLabels)
        let loader = try SnapshotLoader(dbPath: options.dbPath, refreshMs: options.refreshMs, request: state.loadRequest, uiWake: uiWake, clock: options.clock)
        loader.start()
        defer { loader.stop() }
        let presenter = Presenter(dbPath: options.dbPath, glyphs: glyphs, thresholds: options.thresholds)
        var request = state.loadRequest
        var nav = AppState.Nav()
        var dirty = true
        var endedBy: Int32?

        loop: while true {
            if dirty {
                let (w, h) = screen.size
                let (canvas, n) = presenter.frame(&state, width: w, height: h, nowMs: options.clock())
                nav = n
                screen.paint(canvas)
                dirty = false
                if options.crashAfterFirstFrame && presenter.snapshot != nil { fatalError("crash requested by --debug-crash") }
            }
            // Sleep until input, a snapshot, a signal or the next whole second (clock, ages).
            var fds = [
                pollfd(fd: 0, events: Int16(POLLIN), revents: 0),
                pollfd(fd: uiWake.readFD, events: Int16(POLLIN), revents: 0),
                pollfd(fd: signals.pipe.readFD, events: Int16(POLLIN), revents: 0),
            ]
            let timeout = Int32(1000 - wallMs() % 1000)
            let n = poll(&fds, nfds_t(fds.count), timeout)
            if n == 0 {
                dirty = true
                continue
            }
            if n < 0 { continue }  // EINTR
            if fds[2].revents != 0 {
                for sig in signals.pipe.drain() {
                    if Int32(sig) == SIGWINCH {
                        screen.resize()
                        dirty = true
                    } else {
                        endedBy = Int32(sig)
                        break loop
                    }
                }
            }
            if fds[1].revents != 0 {
                _ = uiWake.drain()
                if let s = loader.take() {
                    presenter.update(s)
                    dirty = true
                }
            }
            if fds[0].revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 && fds[0].revents & Int16(POLLIN) == 0 {
                endedBy = SIGHUP  // the terminal went away
                break loop
            }
            if fds[0].revents != 0 {
                while let key = screen.readKey() {
                    switch state.handle(key, nav: nav) {
                    case .quit: break loop
                    case .redraw: dirty = true
                    case .skip: break
                    }
                }
                if state.loadRequest != request {
                    request = state.loadRequest
                    loader.request(request)
                }
            }
        }
        return endedBy
    }

    static func localeIsUTF8() -> Bool {
        setlocale(LC_ALL, "")
        return String(cString: nl_langinfo(nl_item(CODESET))).uppercased().replacingOccurrences(of: "-", with: "") == "UTF8"
    }

    public static func wallMs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}
