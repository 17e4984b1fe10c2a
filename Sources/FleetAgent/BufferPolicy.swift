/// How the store-and-forward buffer stays bounded. Pure.
///
/// Unacknowledged messages are kept up to `maxUnacked`; appending to a full buffer first
/// drops the oldest unacknowledged ones (and the drop is reported in the message being
/// appended). Acknowledged messages are kept only to answer replay requests, the newest
/// `replayKeep` of them.
public struct BufferPolicy: Sendable, Equatable {
    public var maxUnacked: Int
    public var replayKeep: Int

    public init(maxUnacked: Int = 100_000, replayKeep: Int = 10_000) {
        precondition(maxUnacked >= 1 && replayKeep >= 0, "the buffer holds at least one message")
        self.maxUnacked = maxUnacked
        self.replayKeep = replayKeep
    }

    /// How many of the oldest unacknowledged messages to drop before appending one more.
    public func dropsBeforeAppend(unacked: Int) -> Int {
        max(0, unacked + 1 - maxUnacked)
    }

    /// How many of the oldest acknowledged messages to delete.
    public func ackedToPrune(acked: Int) -> Int {
        max(0, acked - replayKeep)
    }
}

/// Messages dropped unacknowledged because the buffer was full.
public struct DropReport: Sendable, Equatable {
    public var count: Int64
    public var fromSeq: Int64
    public var toSeq: Int64

    public init(count: Int64, fromSeq: Int64, toSeq: Int64) {
        self.count = count
        self.fromSeq = fromSeq
        self.toSeq = toSeq
    }

    public var message: String {
        "buffer full: dropped \(count) unacknowledged message(s) (oldest first, seq \(fromSeq)..\(toSeq)); raise --buffer-max-messages or restore the broker link"
    }
}
