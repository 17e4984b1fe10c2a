/// Per-key token buckets: each key may send `ratePerSecond` messages a second on average, with
/// bursts up to `burst`. Pure: time is a parameter.
///
/// The ingester keys it by the topic's device id, so one device flooding the broker cannot
/// starve the others; what it refuses is quarantined as `rate_limited`, never dropped.
public struct RateLimiter: Sendable {
    public let ratePerSecond: Double
    public let burst: Double
    private var buckets: [String: (tokens: Double, atMs: Int64)] = [:]

    public init(ratePerSecond: Double, burst: Double) {
        precondition(ratePerSecond > 0 && burst >= 1, "a rate limit needs a positive rate and a burst of at least 1")
        self.ratePerSecond = ratePerSecond
        self.burst = burst
    }

    /// Takes one token for `key` at `nowMs`; false when the bucket is empty.
    public mutating func allow(_ key: String, nowMs: Int64) -> Bool {
        var b = buckets[key] ?? (burst, nowMs)
        let elapsed = Double(max(0, nowMs - b.atMs)) / 1000
        b.tokens = min(burst, b.tokens + elapsed * ratePerSecond)
        b.atMs = max(b.atMs, nowMs)
        let ok = b.tokens >= 1
        if ok { b.tokens -= 1 }
        buckets[key] = b
        return ok
    }

    /// Forgets keys whose buckets have refilled (bounded memory across many devices).
    public mutating func prune(nowMs: Int64) {
        let full = (burst / ratePerSecond) * 1000
        buckets = buckets.filter { Double(nowMs - $0.value.atMs) < full }
    }

    public var trackedKeys: Int { buckets.count }
}

/// Decides when to ask a device to re-send a missing seq range (`fleet/<id>/replay`).
///
/// Each gap is requested at once, then again with exponential backoff while it stays open, at
/// most `maxAttempts` times; after that it is given up (it stays visible as an open gap). A
/// global budget per tick keeps a reconnecting fleet from triggering a request storm. Pure: the
/// caller passes the time and says which gaps are still open.
public struct ReplayScheduler: Sendable {
    public struct Request: Sendable, Equatable {
        public var deviceID: String
        public var fromSeq: Int64
        public var toSeq: Int64
        public var attempt: Int
    }

    struct Pending {
        var range: ClosedRange<Int64>
        var attempts: Int
        var nextAtMs: Int64
    }

    public let maxAttempts: Int
    public let firstRetryMs: Int64
    /// Largest range asked for in one request (a device re-sends at most this many at once).
    public let maxRangeLength: Int64
    private var pending: [String: [Pending]] = [:]
    public private(set) var givenUp = 0

    public init(maxAttempts: Int = 4, firstRetryMs: Int64 = 15_000, maxRangeLength: Int64 = 10_000) {
        self.maxAttempts = maxAttempts
        self.firstRetryMs = firstRetryMs
        self.maxRangeLength = maxRangeLength
    }

    /// A gap opened: ask for it at the next tick.
    public mutating func gapOpened(deviceID: String, range: ClosedRange<Int64>, nowMs: Int64) {
        var start = range.lowerBound
        while start <= range.upperBound {
            let end = min(range.upperBound, start + maxRangeLength - 1)
            pending[deviceID, default: []].append(Pending(range: start...end, attempts: 0, nextAtMs: nowMs))
            if end == .max { break }
            start = end + 1
        }
    }

    public var pendingCount: Int { pending.values.reduce(0) { $0 + $1.count } }

    /// The requests due at `nowMs`, at most `budget`. `stillMissing(device, range)` returns the
    /// parts of a range that are still missing (empty when filled meanwhile).
    public mutating func due(
        nowMs: Int64, budget: Int, stillMissing: (String, ClosedRange<Int64>) -> [ClosedRange<Int64>]
    ) -> [Request] {
        var out: [Request] = []
        for device in pending.keys.sorted() {
            guard out.count < budget else { break }
            var list = pending[device] ?? []
            var next: [Pending] = []
            for p in list {
                guard out.count < budget, p.nextAtMs <= nowMs else {
                    next.append(p)
                    continue
                }
                for part in stillMissing(device, p.range) {
                    if p.attempts >= maxAttempts {
                        givenUp += 1
                        continue
                    }
                    let attempt = p.attempts + 1
                    out.append(Request(deviceID: device, fromSeq: part.lowerBound, toSeq: part.upperBound, attempt: attempt))
                    let backoff = firstRetryMs << Int64(min(attempt - 1, 10))
                    next.append(Pending(range: part, attempts: attempt, nextAtMs: nowMs + backoff))
                }
            }
            list = next
            pending[device] = list.isEmpty ? nil : list
        }
        return out
    }
}
