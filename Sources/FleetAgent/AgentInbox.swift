import Foundation

/// Something that happened outside the agent's loop thread: MQTT callbacks (network thread),
/// signals (a Dispatch queue), input rows (the reader thread).
public enum AgentEvent: Sendable, Equatable {
    case connected(code: Int32, sessionPresent: Bool)
    case disconnected(code: Int32)
    /// The broker acknowledged publish `mid` (MQTT 5 reason code; >= 0x80 means refused).
    case published(mid: Int32, reasonCode: Int32)
    case replay([UInt8])
    /// SIGTERM or SIGINT: finish cleanly.
    case stop(signal: Int32)
    /// SIGHUP: reload `--model`.
    case reload
    /// One NDJSON input line (without its newline).
    case row([UInt8])
    /// The input stream ended; `error` when reading failed.
    case inputEnded(error: String?)
}

/// The agent loop's mailbox: any thread posts, the loop thread takes everything at once.
///
/// `@unchecked Sendable`: all mutable state (`events`, `outstandingRows`) is read and written
/// only while holding `condition`'s lock.
public final class AgentInbox: @unchecked Sendable {
    private let condition = NSCondition()
    private var events: [AgentEvent] = []
    private var outstandingRows = 0
    /// Input rows posted but not yet run; the reader waits while this many are outstanding.
    public let rowCapacity: Int

    public init(rowCapacity: Int = 1024) {
        self.rowCapacity = rowCapacity
    }

    public func post(_ event: AgentEvent) {
        condition.lock()
        events.append(event)
        condition.broadcast()
        condition.unlock()
    }

    /// Posts an input row, blocking while `rowCapacity` rows are waiting to run (back-pressure
    /// on the reader, so a fast file never fills memory).
    public func postRow(_ row: [UInt8]) {
        condition.lock()
        while outstandingRows >= rowCapacity { condition.wait() }
        outstandingRows += 1
        events.append(.row(row))
        condition.broadcast()
        condition.unlock()
    }

    /// The loop ran (or discarded) one row.
    public func rowDone() {
        condition.lock()
        outstandingRows -= 1
        condition.broadcast()
        condition.unlock()
    }

    /// Everything posted so far, waiting up to `timeout` seconds when nothing is there.
    public func take(waitingUpTo timeout: Double) -> [AgentEvent] {
        condition.lock()
        defer { condition.unlock() }
        if events.isEmpty && timeout > 0 {
            _ = condition.wait(until: Date(timeIntervalSinceNow: timeout))
        }
        let out = events
        events.removeAll(keepingCapacity: true)
        return out
    }
}
