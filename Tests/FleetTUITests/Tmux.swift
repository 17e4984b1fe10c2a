import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The built binaries, found next to the test bundle (as the CLI tests find them).
enum Binaries {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var fleetwatch: String {
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        while url.pathComponents.count > 1 {
            url.deleteLastPathComponent()
            let candidate = url.appendingPathComponent("fleetwatch")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate.path }
        }
        return repoRoot.appendingPathComponent(".build/debug/fleetwatch").path
    }
}

struct TmuxError: Error, CustomStringConvertible {
    var description: String
}

/// A private tmux server (its own socket) with one detached session running a shell command:
/// keys go in with `send-keys`, the screen comes back with `capture-pane -p`. Waits poll the
/// screen for the expected text until a deadline rather than sleeping a fixed time.
final class Tmux {
    let socket = "fwtui-\(UUID().uuidString.prefix(8))"
    let session = "top"

    init(width: Int, height: Int, command: String, cwd: String) throws {
        // This command starts the server, which would inherit (and hold open forever) any pipe
        // given to the client: its output goes to /dev/null.
        // remain-on-exit: the pane (and its last screen) stays after the command exits.
        _ = try tmux(detached: true, [
            "-f", "/dev/null", "new-session", "-d", "-s", session, "-x", String(width), "-y", String(height), "-c", cwd, command,
            ";", "set-option", "-t", session, "remain-on-exit", "on",
        ])
        serverPid = Int32(try value("#{pid}")) ?? 0
    }

    private var serverPid: Int32 = 0

    deinit { kill() }

    /// Kills the server and with it the panes (SIGHUP); SIGKILL if it lingers.
    func kill() {
        _ = try? tmux(["kill-server"])
        guard serverPid > 0 else { return }
        for _ in 0..<40 {
            if Glibc.kill(serverPid, 0) != 0 { return }
            usleep(50_000)
        }
        _ = Glibc.kill(serverPid, SIGKILL)
    }

    /// Runs `tmux -L socket ARGS` and returns its stdout.
    ///
    /// Spawned with posix_spawn and reaped with waitpid, output through files: the command that
    /// starts the server daemonises a grandchild that keeps every inherited descriptor, so
    /// pipes (and Foundation's Process, which never saw those clients exit here) would wait forever.
    @discardableResult
    func tmux(detached: Bool = false, _ args: [String]) throws -> String {
        let r = try Spawn.run(["tmux", "-L", socket] + args, env: ["LANG=C.UTF-8", "LC_ALL=C.UTF-8"], timeout: 15)
        guard r.status == 0 else {
            throw TmuxError(description: "tmux \(args.joined(separator: " ")) exited \(r.status): \(r.stderr)")
        }
        return r.stdout
    }

    /// Sends keys (tmux key names: "Enter", "Escape", "C-c", "PageDown", or literal text with `literal`).
    func send(_ keys: String...) throws {
        try tmux(["send-keys", "-t", session] + keys)
    }

    func type(_ text: String) throws {
        try tmux(["send-keys", "-t", session, "-l", text])
    }

    func capture(escapes: Bool = false) throws -> String {
        try tmux(["capture-pane", "-p", "-t", session] + (escapes ? ["-e"] : []))
    }

    func lines() throws -> [String] {
        try capture().split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    }

    /// Polls the screen until `predicate` holds; returns that screen.
    @discardableResult
    func wait(timeout: Double = 20, _ what: String, _ predicate: (String) -> Bool) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        var last = ""
        while Date() < deadline {
            last = try capture()
            if predicate(last) { return last }
            usleep(50_000)
        }
        throw TmuxError(description: "timed out waiting for \(what); screen:\n\(last)")
    }

    @discardableResult
    func wait(for text: String, timeout: Double = 20) throws -> String {
        try wait(timeout: timeout, "'\(text)'") { $0.contains(text) }
    }

    func resize(width: Int, height: Int) throws {
        try tmux(["resize-window", "-t", session, "-x", String(width), "-y", String(height)])
    }

    func value(_ format: String) throws -> String {
        try tmux(["display-message", "-p", "-t", session, format]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The pid of the pane's shell's child (the program under test).
    func childPid() throws -> Int32 {
        let shell = try value("#{pane_pid}")
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let s = try? String(contentsOfFile: "/proc/\(shell)/task/\(shell)/children", encoding: .utf8),
                let pid = s.split(separator: " ").first.flatMap({ Int32($0) })
            {
                return pid
            }
            usleep(50_000)
        }
        throw TmuxError(description: "no child of pane shell \(shell)")
    }
}

/// A child process without Foundation's Process: posix_spawnp, output to temporary files,
/// waitpid with a deadline (then SIGKILL).
enum Spawn {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func run(_ argv: [String], env extra: [String], timeout: Double) throws -> Result {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fwtui-spawn-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let outPath = dir.appendingPathComponent("out").path
        let errPath = dir.appendingPathComponent("err").path
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        // Not inherited: a test runner's NO_COLOR, TMUX or locale would change what is tested.
        let dropped: Set<String> = ["TMUX", "LANG", "LC_ALL", "NO_COLOR", "TERM"]
        var environment = ProcessInfo.processInfo.environment.filter { !dropped.contains($0.key) }
            .map { "\($0.key)=\($0.value)" } + extra
        var cArgs = argv.map { strdup($0) } + [nil]
        var cEnv = environment.map { strdup($0) } + [nil]
        defer {
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
            environment.removeAll()
        }
        // Default dispositions and an empty mask, whatever the test runner inherited (an ignored
        // SIGHUP would survive exec and keep panes alive after kill-server).
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in [SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGPIPE, SIGCHLD] { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, argv[0], &actions, &attr, &cArgs, &cEnv)
        guard rc == 0 else { throw TmuxError(description: "cannot run \(argv[0]): errno \(rc)") }
        var status: Int32 = 0
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let w = waitpid(pid, &status, WNOHANG)
            if w == pid { break }
            if w < 0 && errno != EINTR { break }
            if Date() > deadline {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                throw TmuxError(description: "\(argv.joined(separator: " ")) did not finish in \(timeout) s")
            }
            usleep(5_000)
        }
        let exit = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        return Result(status: exit, stdout: out, stderr: err)
    }
}

/// Single quotes for sh.
func shellQuote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
