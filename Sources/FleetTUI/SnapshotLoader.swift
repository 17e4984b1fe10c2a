import FleetStore
import Foundation
import Synchronization

/// Loads snapshots off the UI thread: a thread that owns its own read-only `StoreReader`, wakes
/// every refresh interval (or at once when the UI asks for something else), and rebuilds the
/// snapshot only when the database changed (`PRAGMA data_version`) or the request did. Each new
/// snapshot goes into a mailbox and one byte into the UI's wake pipe.
///
/// A missing, empty or unreadable database becomes an `unavailable` snapshot with the fix, and
/// the loader keeps trying to open it.
public final class SnapshotLoader: Sendable {
    private struct Shared {
        var request: LoadRequest
        var latest: Snapshot?
        var stopping = false
    }

    public let dbPath: String
    public let refreshMs: Int
    public let windows: Windows
    private let shared: Mutex<Shared>
    private let requestPipe: WakePipe
    private let uiWake: WakePipe
    private let finished = DispatchSemaphore(value: 0)
    private let clock: @Sendable () -> Int64

    public init(dbPath: String, refreshMs: Int, request: LoadRequest, uiWake: WakePipe, windows: Windows = Windows(), clock: @escaping @Sendable () -> Int64) throws {
        self.dbPath = dbPath
        self.refreshMs = max(50, refreshMs)
        self.windows = windows
        shared = Mutex(Shared(request: request))
        requestPipe = try WakePipe()
        self.uiWake = uiWake
        self.clock = clock
    }

    public func start() {
        let t = Thread { [self] in
            // Terminal signals are for the UI thread (they arrive through its signal pipe).
            var set = sigset_t()
            sigemptyset(&set)
            for s in SignalRouter.routed { sigaddset(&set, s) }
            pthread_sigmask(SIG_BLOCK, &set, nil)
            run()
            finished.signal()
        }
        t.name = "fleetwatch-top-loader"
        t.start()
    }

    /// Asks for a different view, grouping or device; the loader reloads at once.
    public func request(_ r: LoadRequest) {
        shared.withLock { $0.request = r }
        requestPipe.wake()
    }

    /// The newest snapshot not yet taken.
    public func take() -> Snapshot? {
        shared.withLock { s in
            defer { s.latest = nil }
            return s.latest
        }
    }

    /// Stops the thread and waits for it (a query in flight finishes first; at most `timeoutMs`).
    public func stop(timeoutMs: Int = 3000) {
        shared.withLock { $0.stopping = true }
        requestPipe.wake()
        _ = finished.wait(timeout: .now() + .milliseconds(timeoutMs))
    }

    private func post(_ s: Snapshot) {
        shared.withLock { $0.latest = s }
        uiWake.wake()
    }

    private func run() {
        var builder: SnapshotBuilder?
        var lastVersion: Int64?
        var lastRequest: LoadRequest?
        var lastUnavailable: String?
        var lastPosted: Snapshot?
        while true {
            let (request, stopping) = shared.withLock { ($0.request, $0.stopping) }
            if stopping { return }
            if builder == nil {
                do {
                    let b = SnapshotBuilder(reader: try StoreReader(path: dbPath))
                    b.windows = windows
                    builder = b
                    lastVersion = nil
                    lastUnavailable = nil
                } catch {
                    let why = (error as? StoreError)?.description ?? "cannot open \(dbPath): \(error)"
                    if why != lastUnavailable {
                        var s = Snapshot(request: request)
                        s.status = .unavailable(why)
                        s.loadedAtMs = clock()
                        post(s)
                        lastUnavailable = why
                    }
                }
            }
            if let b = builder {
                do {
                    let version = try b.reader.dataVersion()
                    if version != lastVersion || request != lastRequest {
                        let s = try b.build(request, nowMs: clock(), monotonicMs: { Self.monotonicMs() })
                        lastVersion = version
                        lastRequest = request
                        lastPosted = s
                        post(s)
                    } else if var s = lastPosted, (s.ingestRate ?? 0) > 0 {
                        // Nothing was committed for a whole interval: ingest has stopped.
                        s.ingestRate = 0
                        lastPosted = s
                        post(s)
                    }
                } catch {
                    var s = Snapshot(request: request)
                    s.status = .unavailable("reading \(dbPath) failed: \(error)")
                    s.loadedAtMs = clock()
                    post(s)
                    builder = nil  // reopen next time
                    lastUnavailable = nil
                    lastPosted = nil
                }
            }
            waitForRequest(timeoutMs: refreshMs)
        }
    }

    private func waitForRequest(timeoutMs: Int) {
        var p = pollfd(fd: requestPipe.readFD, events: Int16(POLLIN), revents: 0)
        _ = poll(&p, 1, Int32(timeoutMs))
        _ = requestPipe.drain()
    }

    static func monotonicMs() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) * 1000 + Double(ts.tv_nsec) / 1e6
    }
}
