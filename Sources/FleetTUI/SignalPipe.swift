#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A pipe used to wake a thread blocked in `poll`: the read end is polled, the write end is
/// non-blocking (a full pipe already means "wake up", so a failed write loses nothing).
public final class WakePipe: Sendable {
    public let readFD: Int32
    public let writeFD: Int32

    public init() throws {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw TUIError("cannot create a pipe: errno \(errno)") }
        readFD = fds[0]
        writeFD = fds[1]
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
    }

    public func wake(_ byte: UInt8 = 1) {
        var b = byte
        _ = write(writeFD, &b, 1)
    }

    /// Reads everything pending; returns the bytes (signal numbers for the signal pipe).
    public func drain() -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 64)
        while true {
            let n = read(readFD, &buf, buf.count)
            if n <= 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return out
    }

    deinit {
        close(readFD)
        close(writeFD)
    }
}

/// The write end of the signal pipe, read by the async-signal handler below.
///
/// `nonisolated(unsafe)`: written once by `SignalRouter.install` before any handler that reads
/// it is installed, and reset only after the handlers are restored; a signal handler can only
/// read a plain global (no locks, no allocation), which is all it does.
nonisolated(unsafe) private var signalPipeWriteFD: Int32 = -1

/// Routes SIGINT, SIGTERM, SIGHUP and SIGWINCH to a pipe, so the UI thread sees them in its
/// `poll` whichever thread the kernel delivered them to. The handler only calls `write`
/// (async-signal-safe). `restore()` puts the previous dispositions back.
public final class SignalRouter {
    public static let routed: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGWINCH]
    public let pipe: WakePipe
    private var previous: [(Int32, sigaction)] = []

    public init() throws {
        pipe = try WakePipe()
    }

    public func install() {
        signalPipeWriteFD = pipe.writeFD
        for sig in Self.routed {
            var old = sigaction()
            sigaction(sig, nil, &old)
            previous.append((sig, old))
            signal(sig) { sig in
                var b = UInt8(truncatingIfNeeded: sig)
                _ = write(signalPipeWriteFD, &b, 1)
            }
        }
    }

    public func restore() {
        for (sig, old) in previous {
            var o = old
            sigaction(sig, &o, nil)
        }
        previous.removeAll()
        signalPipeWriteFD = -1
    }

    deinit { restore() }
}

/// Restores the terminal if the process dies of a signal while the TUI owns it (a Swift trap is
/// SIGILL or SIGTRAP; also SIGSEGV, SIGBUS, SIGFPE, SIGABRT): writes the precomputed "leave the
/// alternate screen, show the cursor, reset attributes" bytes and the saved termios, then lets
/// the signal take its default course.
public enum CrashRestore {
    static let fatal: [Int32] = [SIGILL, SIGTRAP, SIGSEGV, SIGBUS, SIGFPE, SIGABRT]

    /// Armed by `arm`, read only by the crash handler.
    ///
    /// `nonisolated(unsafe)`: set on the UI thread before the handlers are installed and cleared
    /// after they are removed; the handler only reads them (fixed-size storage, no allocation).
    nonisolated(unsafe) static var restoreBytes = [UInt8](repeating: 0, count: 256)
    nonisolated(unsafe) static var restoreCount = 0
    nonisolated(unsafe) static var savedTermios = termios()
    nonisolated(unsafe) static var haveTermios = false
    nonisolated(unsafe) static var armed = false
    /// The dispositions before `arm` (e.g. the Swift runtime's backtracer), by signal number.
    nonisolated(unsafe) static var previous: [sigaction] = Array(repeating: sigaction(), count: 65)

    /// `sequence`: the bytes that put the terminal back (from terminfo); `termios`: the tty
    /// settings before the TUI changed them.
    public static func arm(sequence: [UInt8], termios t: termios?) {
        let n = min(sequence.count, restoreBytes.count)
        for i in 0..<n { restoreBytes[i] = sequence[i] }
        restoreCount = n
        if let t {
            savedTermios = t
            haveTermios = true
        }
        armed = true
        for sig in fatal {
            sigaction(sig, nil, &previous[Int(sig)])
            signal(sig) { sig in
                if CrashRestore.armed {
                    CrashRestore.armed = false
                    CrashRestore.restoreBytes.withUnsafeBufferPointer { b in _ = write(1, b.baseAddress, CrashRestore.restoreCount) }
                    if CrashRestore.haveTermios { _ = tcsetattr(0, TCSANOW, &CrashRestore.savedTermios) }
                }
                // Hand the signal on to whoever had it before (the runtime's backtracer prints
                // to the restored terminal), or to the default action.
                sigaction(sig, &CrashRestore.previous[Int(sig)], nil)
                raise(sig)
            }
        }
    }

    public static func disarm() {
        guard armed else { return }
        armed = false
        for sig in fatal { sigaction(sig, &previous[Int(sig)], nil) }
    }
}

/// A failure of the TUI itself (terminal, pipes), as one clear line.
public struct TUIError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
