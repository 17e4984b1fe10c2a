import Dispatch
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Delivers SIGTERM/SIGINT/SIGHUP to the agent's inbox through Dispatch (the default action is
/// ignored; the handler runs on a private queue, so posting is allowed).
///
/// `@unchecked Sendable`: `sources` is only appended to by `on` on the thread that sets the
/// agent up, before any signal can arrive, and is never read afterwards (it only keeps the
/// sources alive).
public final class SignalEvents: @unchecked Sendable {
    private var sources: [any DispatchSourceSignal] = []
    private let queue = DispatchQueue(label: "fleet-agent.signals")

    public init() {}

    public func on(_ sig: Int32, _ handler: @escaping @Sendable () -> Void) {
        signal(sig, SIG_IGN)
        let s = DispatchSource.makeSignalSource(signal: sig, queue: queue)
        s.setEventHandler(handler: handler)
        s.resume()
        sources.append(s)
    }

    deinit {
        for s in sources { s.cancel() }
    }
}

/// Records a crash in the session marker from a fatal-signal handler (SIGABRT, SIGSEGV,
/// SIGBUS, SIGILL, SIGTRAP, SIGFPE), so the next start reports the session as `crashed`
/// rather than `abnormal`.
///
/// The handler only calls async-signal-safe functions (`clock_gettime`, `open`, `write`,
/// `close`, `sigaction`, `raise`) on memory prepared by `install`: it appends one
/// `crashed_ms=N` line to the marker, then restores the previous action (the Swift runtime's
/// backtracer, or the default) and re-raises, so the process still dies of the signal.
public enum CrashRecorder {
    static let signals: [Int32] = [SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE]

    // Set once by `install` before any handler can run, then only read (by the handler).
    nonisolated(unsafe) static var path: UnsafeMutablePointer<CChar>?
    nonisolated(unsafe) static var line: UnsafeMutablePointer<UInt8> = .allocate(capacity: 64)
    nonisolated(unsafe) static var previous: UnsafeMutablePointer<sigaction> = .allocate(capacity: 65)

    /// Installs the handlers for the marker at `markerPath` (call once per process).
    public static func install(markerPath: String) {
        path = strdup(markerPath)
        _ = line
        previous.initialize(repeating: sigaction(), count: 65)
        for sig in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = handler
            sigemptyset(&action.sa_mask)
            action.sa_flags = 0
            sigaction(sig, &action, previous + Int(sig))
        }
    }

    private static let handler: @convention(c) (Int32) -> Void = { sig in
        CrashRecorder.appendCrashLine()
        sigaction(sig, CrashRecorder.previous + Int(sig), nil)
        raise(sig)
    }

    /// Appends `crashed_ms=<now>\n` to the marker (async-signal-safe).
    static func appendCrashLine() {
        guard let path else { return }
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var ms = UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
        let prefix: StaticString = "crashed_ms="
        var n = 0
        for i in 0..<prefix.utf8CodeUnitCount {
            line[n] = prefix.utf8Start[i]
            n += 1
        }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var d = 0
        withUnsafeMutableBytes(of: &digits) { b in
            repeat {
                b[d] = UInt8(ms % 10) + 0x30
                ms /= 10
                d += 1
            } while ms > 0 && d < 24
            while d > 0 {
                d -= 1
                line[n] = b[d]
                n += 1
            }
        }
        line[n] = 0x0A
        n += 1
        let fd = open(path, O_WRONLY | O_APPEND)
        if fd >= 0 {
            _ = write(fd, line, n)
            close(fd)
        }
    }
}

/// An exclusive advisory lock on a file (`flock`), held for the life of the process (the
/// kernel releases it when the process dies, kill -9 included).
public final class FileLock {
    private let fd: Int32

    /// Takes the lock or throws with who holds it.
    public init(path: String) throws(AgentError) {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw AgentError("cannot open lock file \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            var buf = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &buf, 31, 0)
            let holder = n > 0 ? String(decoding: buf[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "?"
            close(fd)
            throw AgentError("another fleet-agent (pid \(holder)) is using this buffer (\(path) is locked); give each agent its own --buffer")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, pid, pid.count, 0)
    }

    deinit { close(fd) }
}

/// One clear line for the user; the agent exits 1 with it.
public struct AgentError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
