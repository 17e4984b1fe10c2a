#if canImport(Glibc)
    import Glibc
#endif

public struct SpawnError: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// A child process spawned with an empty signal mask and default dispositions.
///
/// Used by tests, benchmarks and `demo` to run brokers and ingesters. Foundation's `Process` spawns from a dispatch worker thread whose mask blocks every signal,
/// and children inherit it: a mosquitto or ingester started that way ignores SIGTERM.
public final class ChildProcess: @unchecked Sendable {
    public let pid: pid_t
    private let stderrFD: Int32
    private var status: Int32?
    private var lock = pthread_mutex_t()

    /// Starts `path` with `args`; stdout goes to /dev/null, stderr to a pipe read with
    /// `readStderr` — or, with `logPath`, both to that file (appended; nothing to read).
    public init(_ path: String, _ args: [String], logPath: String? = nil) throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw SpawnError(description: "pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        if let logPath {
            posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
            posix_spawn_file_actions_addclose(&actions, fds[1])
        } else {
            posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        }
        posix_spawn_file_actions_addclose(&actions, fds[0])
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var p: pid_t = 0
        let rc = posix_spawn(&p, path, &actions, &attr, argv, environ)
        posix_spawn_file_actions_destroy(&actions)
        posix_spawnattr_destroy(&attr)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            throw SpawnError(description: "spawning \(path): \(String(cString: strerror(rc)))")
        }
        pid = p
        stderrFD = fds[0]
        pthread_mutex_init(&lock, nil)
    }

    /// Blocks for the next chunk of stderr; empty at end of file.
    public func readStderr() -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: 65536)
        let n = buf.withUnsafeMutableBytes { read(stderrFD, $0.baseAddress, $0.count) }
        return n > 0 ? Array(buf[0..<n]) : []
    }

    public func signal(_ sig: Int32) { kill(pid, sig) }

    /// Waits for exit: the exit status, or 128 + the signal that killed it.
    public func wait() -> Int32 {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        if let status { return status }
        var st: Int32 = 0
        while waitpid(pid, &st, 0) < 0 && errno == EINTR {}
        // WIFEXITED / WEXITSTATUS / WTERMSIG by hand (macros are not imported).
        let s: Int32 = (st & 0x7f) == 0 ? (st >> 8) & 0xff : 128 + (st & 0x7f)
        status = s
        return s
    }

    deinit {
        if status == nil {
            kill(pid, SIGKILL)
            _ = wait()
        }
        close(stderrFD)
    }
}


/// Loopback ports for the processes `ChildProcess` starts (a broker, an ingester).
public enum Loopback {
    /// A port free on 127.0.0.1 now (the kernel's pick; another process could take it before
    /// it is used, which is why callers then wait for their server to listen on it).
    public static func freePort() throws -> Int {
        switch listenTCP(host: "127.0.0.1", port: 0) {
        case .success(let l):
            close(l.fd)
            return l.port
        case .failure(let e):
            throw SpawnError(description: "no free loopback port: \(e.description)")
        }
    }

    /// Waits until something accepts connections on 127.0.0.1:`port`; false after `seconds`.
    public static func waitForPort(_ port: Int, seconds: Double) -> Bool {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let deadline = Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9 + seconds
        while true {
            let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(clamping: port).bigEndian)
            inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
            let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            close(s)
            if rc == 0 { return true }
            clock_gettime(CLOCK_MONOTONIC, &ts)
            if Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9 >= deadline { return false }
            usleep(5000)
        }
    }
}
