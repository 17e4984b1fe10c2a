#if canImport(Glibc)
    import Glibc
#endif

/// A blocking FIFO with a fixed capacity between the network thread and the writer.
///
/// `push` blocks while the queue is full — `capacity` elements, or `maxCost` of their summed
/// `cost` (bytes of payload) — so backpressure reaches the MQTT socket (the broker then holds
/// the messages), and memory stays bounded however fast devices publish and however large their
/// messages are. One element costing more than `maxCost` is let in alone.
/// `@unchecked Sendable`: all state is guarded by `mutex`.
public final class BoundedQueue<Element>: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var notEmpty = pthread_cond_t()
    private var notFull = pthread_cond_t()
    private var items: [Element?]
    /// Each slot's cost, kept so `pop` need not work it out again.
    private var costs: [Int]
    private var head = 0
    private var count = 0
    private var totalCost = 0
    private var closed = false
    /// How many elements the waiting consumer wants before it is woken (`Int.max`: none waits).
    private var wanted = Int.max
    /// Producers blocked on a full queue: a consumer waiting for more takes what there is.
    private var blockedProducers = 0
    public let capacity: Int
    public let maxCost: Int
    private let cost: @Sendable (Element) -> Int

    public init(capacity: Int, maxCost: Int = .max, cost: @escaping @Sendable (Element) -> Int = { _ in 0 }) {
        precondition(capacity > 0 && maxCost > 0)
        self.capacity = capacity
        self.maxCost = maxCost
        self.cost = cost
        items = Array(repeating: nil, count: capacity)
        costs = Array(repeating: 0, count: capacity)
        pthread_mutex_init(&mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(&notEmpty, &attr)
        pthread_cond_init(&notFull, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(&notEmpty)
        pthread_cond_destroy(&notFull)
        pthread_mutex_destroy(&mutex)
    }

    /// Appends, waiting while full. False if the queue was closed (the element is not taken).
    @discardableResult
    public func push(_ e: Element) -> Bool { push(e, cost: cost(e)) }

    /// Appends an element whose cost the caller knows (in place of the `cost` function's).
    @discardableResult
    public func push(_ e: Element, cost c: Int) -> Bool {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        while (count == capacity || (count > 0 && totalCost + c > maxCost)) && !closed {
            // A consumer waiting for a fuller batch would wait for nothing: wake it.
            if wanted != .max { pthread_cond_signal(&notEmpty) }
            blockedProducers += 1
            pthread_cond_wait(&notFull, &mutex)
            blockedProducers -= 1
        }
        if closed { return false }
        let slot = (head + count) % capacity
        items[slot] = e
        costs[slot] = c
        count += 1
        totalCost += c
        // Wake the consumer only once it has what it waits for: one wake-up per batch.
        if count == wanted { pthread_cond_signal(&notEmpty) }
        return true
    }

    /// Takes up to `max` elements, waiting until at least `atLeast` are there (at most the
    /// capacity), the queue is full or closed, or `deadlineNs` (CLOCK_MONOTONIC) passes; then
    /// takes what there is. Empty when the deadline passed with nothing, or closed and drained.
    public func pop(max: Int, deadlineNs: UInt64, atLeast: Int = 1) -> [Element] {
        var out: [Element] = []
        pop(max: max, deadlineNs: deadlineNs, atLeast: atLeast, into: &out)
        return out
    }

    /// `pop(max:deadlineNs:atLeast:)`, appending to `out` (elements are moved, not copied).
    public func pop(max: Int, deadlineNs: UInt64, atLeast: Int = 1, into out: inout [Element]) {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        var ts = timespec(tv_sec: Int(deadlineNs / 1_000_000_000), tv_nsec: Int(deadlineNs % 1_000_000_000))
        let want = Swift.max(1, Swift.min(atLeast, capacity))
        while count < want && !closed && (count == 0 || blockedProducers == 0) {
            wanted = want
            let rc = pthread_cond_timedwait(&notEmpty, &mutex, &ts)
            wanted = Int.max
            if rc == ETIMEDOUT { break }
        }
        let n = Swift.min(max, count)
        out.reserveCapacity(out.count + n)
        for _ in 0..<n {
            // Moved out of its slot, not copied: a message holds a dozen references.
            out.append(items[head].take()!)
            totalCost -= costs[head]
            head = (head + 1) % capacity
        }
        count -= n
        if n > 0 { pthread_cond_broadcast(&notFull) }
    }

    /// No more pushes; blocked pushers return false; pops drain what is left.
    public func close() {
        pthread_mutex_lock(&mutex)
        closed = true
        pthread_cond_broadcast(&notEmpty)
        pthread_cond_broadcast(&notFull)
        pthread_mutex_unlock(&mutex)
    }

    public var depth: Int {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return count
    }

    public var isClosed: Bool {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return closed
    }
}

/// Monotonic nanoseconds (for deadlines; never goes back).
public func monotonicNs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Wall-clock epoch milliseconds (receiver time stamped on every message).
public func wallClockMs() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}
