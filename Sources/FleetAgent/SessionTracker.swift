import FleetCore

/// What the marker file next to the buffer says about the running (or last) session.
///
/// Text, one `key=value` a line; a key may repeat and the last value wins, so a crash handler
/// can append `crashed_ms=N` without rewriting the file (an append is one `write(2)`, which is
/// async-signal-safe).
public struct SessionMarker: Sendable, Equatable {
    public static let header = "fleet-agent-session/1"

    public var sessionID: String
    public var pid: Int32
    public var startedMs: Int64
    /// The last time the session was known alive (updated every window).
    public var lastAliveMs: Int64
    /// Failed inferences so far in the session.
    public var errors: Int64
    /// Set when the process recorded its own crash (abort, fault signal, `--crash-after`).
    public var crashedMs: Int64?

    public init(sessionID: String, pid: Int32, startedMs: Int64, lastAliveMs: Int64, errors: Int64, crashedMs: Int64? = nil) {
        self.sessionID = sessionID
        self.pid = pid
        self.startedMs = startedMs
        self.lastAliveMs = lastAliveMs
        self.errors = errors
        self.crashedMs = crashedMs
    }

    public func render() -> String {
        var s = "\(Self.header)\nsession_id=\(sessionID)\npid=\(pid)\nstarted_ms=\(startedMs)\nlast_alive_ms=\(lastAliveMs)\nerrors=\(errors)\n"
        if let crashedMs { s += "crashed_ms=\(crashedMs)\n" }
        return s
    }

    /// The line a crash handler appends.
    public static func crashLine(atMs ms: Int64) -> String { "crashed_ms=\(ms)\n" }

    /// Parses a marker; nil when it is not one (a torn write: treated as an abnormal end by
    /// `SessionTracker.recover` only if a session id can be read).
    public static func parse(_ text: String) -> SessionMarker? {
        var fields: [Substring: Substring] = [:]
        var lines = text.split(separator: "\n", omittingEmptySubsequences: true)[...]
        guard lines.popFirst() == Substring(header) else { return nil }
        for line in lines {
            guard let eq = line.firstIndex(of: "=") else { continue }
            fields[line[..<eq]] = line[line.index(after: eq)...]
        }
        guard let id = fields["session_id"], !id.isEmpty, id.count <= 64,
            let started = fields["started_ms"].flatMap({ Int64($0) })
        else { return nil }
        let alive = fields["last_alive_ms"].flatMap { Int64($0) } ?? started
        return SessionMarker(
            sessionID: String(id), pid: fields["pid"].flatMap { Int32($0) } ?? 0, startedMs: started,
            lastAliveMs: max(started, alive), errors: max(0, fields["errors"].flatMap { Int64($0) } ?? 0),
            crashedMs: fields["crashed_ms"].flatMap { Int64($0) })
    }
}

/// The session lifecycle with Sentry's semantics: one `started`, then exactly one terminal
/// status. Pure: the caller passes the time and does the file I/O the returned values ask for.
///
/// A session whose process died is detected at the next start from the marker it left:
/// `crashed` when the marker records a crash, `abnormal` otherwise (kill -9, power loss). The
/// buffer remembers the last session whose terminal status it holds (`alreadyReported`), so a
/// process that died between buffering `exited` and deleting its marker is not reported twice.
public struct SessionTracker: Sendable {
    private enum State: Sendable, Equatable {
        case idle
        case running(SessionMarker)
        case ended(SessionStatus)
    }

    private var state: State = .idle

    public init() {}

    /// The terminal record owed for a previous run's marker, if any.
    ///
    /// Its `ts_ms` is when that session ended as far as the device knows (the crash time, or
    /// the last time it was seen alive), and its duration runs from its start to then.
    public static func recover(previous: SessionMarker?, alreadyReported: String?) -> SessionRecord? {
        guard let m = previous, m.sessionID != alreadyReported else { return nil }
        if let crashed = m.crashedMs {
            let end = max(m.startedMs, crashed)
            return SessionRecord(tsMs: end, sessionID: m.sessionID, status: .crashed, durationMs: end - m.startedMs, errors: m.errors)
        }
        return SessionRecord(tsMs: m.lastAliveMs, sessionID: m.sessionID, status: .abnormal, durationMs: m.lastAliveMs - m.startedMs, errors: m.errors)
    }

    public var isRunning: Bool {
        if case .running = state { return true }
        return false
    }

    /// The marker of the running session; nil otherwise.
    public var marker: SessionMarker? {
        if case .running(let m) = state { return m }
        return nil
    }

    /// Opens a session: the `started` record to publish and the marker to write first.
    public mutating func start(sessionID: String, pid: Int32, nowMs: Int64) -> (record: SessionRecord, marker: SessionMarker) {
        precondition(state == .idle, "a tracker runs one session")
        let m = SessionMarker(sessionID: sessionID, pid: pid, startedMs: nowMs, lastAliveMs: nowMs, errors: 0)
        state = .running(m)
        return (SessionRecord(tsMs: nowMs, sessionID: sessionID, status: .started, durationMs: 0, errors: 0), m)
    }

    /// Adds failed inferences to the session's count.
    public mutating func addErrors(_ n: Int64) {
        guard case .running(var m) = state, n > 0 else { return }
        m.errors += n
        state = .running(m)
    }

    /// The session is alive at `nowMs`: the marker to rewrite (nil when not running).
    public mutating func heartbeat(nowMs: Int64) -> SessionMarker? {
        guard case .running(var m) = state else { return nil }
        m.lastAliveMs = max(m.lastAliveMs, nowMs)
        state = .running(m)
        return m
    }

    /// A clean exit: the `exited` record (then delete the marker). Nil when not running.
    public mutating func exit(nowMs: Int64) -> SessionRecord? {
        guard case .running(let m) = state else { return nil }
        state = .ended(.exited)
        let end = max(m.startedMs, nowMs)
        return SessionRecord(tsMs: end, sessionID: m.sessionID, status: .exited, durationMs: end - m.startedMs, errors: m.errors)
    }

    /// A crash the process noticed itself: the marker to leave behind (the next start reports
    /// it as `crashed`). Nil when not running.
    public mutating func crash(nowMs: Int64) -> SessionMarker? {
        guard case .running(var m) = state else { return nil }
        m.crashedMs = max(m.startedMs, nowMs)
        state = .ended(.crashed)
        return m
    }
}
