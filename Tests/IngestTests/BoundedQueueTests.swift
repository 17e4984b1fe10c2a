@testable import FleetIngest
import FleetStore
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The queue between the network thread and the writer: FIFO, bounded, and the writer waits
/// for a whole batch (or its deadline) instead of waking for every message.
@Suite struct BoundedQueueTests {
    @Test func fifoAcrossWrapAround() {
        let q = BoundedQueue<Int>(capacity: 4)
        var out: [Int] = []
        for i in 0..<10 {
            #expect(q.push(i))
            if i % 3 == 2 { out += q.pop(max: 10, deadlineNs: monotonicNs()) }
        }
        out += q.pop(max: 10, deadlineNs: monotonicNs())
        #expect(out == Array(0..<10))
        #expect(q.depth == 0)
    }

    @Test func popTakesAtMostMax() {
        let q = BoundedQueue<Int>(capacity: 8)
        for i in 0..<6 { q.push(i) }
        #expect(q.pop(max: 4, deadlineNs: monotonicNs()) == [0, 1, 2, 3])
        #expect(q.pop(max: 4, deadlineNs: monotonicNs()) == [4, 5])
    }

    @Test func emptyAfterDeadline() {
        let q = BoundedQueue<Int>(capacity: 8)
        let start = monotonicNs()
        #expect(q.pop(max: 4, deadlineNs: start + 20_000_000).isEmpty)
        #expect(monotonicNs() - start >= 20_000_000)
    }

    /// With fewer than `atLeast` queued, pop waits out its deadline and then takes what is there.
    @Test func partialBatchAtDeadline() {
        let q = BoundedQueue<Int>(capacity: 8)
        q.push(1)
        q.push(2)
        let start = monotonicNs()
        #expect(q.pop(max: 5, deadlineNs: start + 30_000_000, atLeast: 5) == [1, 2])
        #expect(monotonicNs() - start >= 30_000_000)
    }

    /// The consumer is woken when the batch is complete, long before its deadline.
    @Test func wakesWhenBatchComplete() {
        let q = BoundedQueue<Int>(capacity: 100)
        let producer = Thread {
            for i in 0..<50 { q.push(i) }
        }
        let start = monotonicNs()
        producer.start()
        let got = q.pop(max: 50, deadlineNs: start + 60_000_000_000, atLeast: 50)
        #expect(got == Array(0..<50))
        #expect(monotonicNs() - start < 30_000_000_000)
    }

    /// `atLeast` above the capacity cannot be met by pushes: it is capped, so a full queue wakes.
    @Test func atLeastCappedAtCapacity() {
        let q = BoundedQueue<Int>(capacity: 3)
        let producer = Thread {
            for i in 0..<3 { q.push(i) }
        }
        producer.start()
        let start = monotonicNs()
        #expect(q.pop(max: 10, deadlineNs: start + 60_000_000_000, atLeast: 10) == [0, 1, 2])
        #expect(monotonicNs() - start < 30_000_000_000)
    }

    /// Close wakes a waiting consumer with what is queued; pushes after it are refused.
    @Test func closeWakesConsumerAndRefusesPushes() {
        let q = BoundedQueue<Int>(capacity: 8)
        q.push(7)
        let closer = Thread { q.close() }
        let start = monotonicNs()
        closer.start()
        #expect(q.pop(max: 8, deadlineNs: start + 60_000_000_000, atLeast: 8) == [7])
        #expect(monotonicNs() - start < 30_000_000_000)
        #expect(!q.push(8))
        #expect(q.pop(max: 8, deadlineNs: monotonicNs()).isEmpty)
        #expect(q.isClosed)
    }

    /// A full queue blocks the producer (backpressure) until the consumer takes some.
    @Test func fullQueueBlocksProducer() {
        let q = BoundedQueue<Int>(capacity: 2)
        q.push(0)
        q.push(1)
        let pushed = DispatchSemaphore(value: 0)
        let producer = Thread {
            q.push(2)
            pushed.signal()
        }
        producer.start()
        #expect(pushed.wait(timeout: .now() + .milliseconds(100)) == .timedOut)
        #expect(q.depth == 2)
        #expect(q.pop(max: 1, deadlineNs: monotonicNs()) == [0])
        #expect(pushed.wait(timeout: .now() + .seconds(30)) == .success)
        #expect(q.pop(max: 8, deadlineNs: monotonicNs()) == [1, 2])
    }
}

/// Topic routing, against the obvious split-based definition.
@Suite struct TopicRouteTests {
    func reference(_ topic: String) -> IngestClassifier.Route {
        let parts = topic.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "fleet" else { return .other }
        switch parts[2] {
        case "telemetry": return .telemetry(topicDeviceID: String(parts[1]))
        case "status": return .status(deviceID: String(parts[1]))
        default: return .other
        }
    }

    @Test(arguments: [
        ("fleet/cam-1/telemetry", IngestClassifier.Route.telemetry(topicDeviceID: "cam-1")),
        ("fleet/cam-1/status", .status(deviceID: "cam-1")),
        ("fleet//telemetry", .telemetry(topicDeviceID: "")),
        ("fleet/kamera-ü/telemetry", .telemetry(topicDeviceID: "kamera-ü")),
        ("fleet/a/b/telemetry", .other),
        ("fleet/a/telemetry/", .other),
        ("fleet/a/telemetryx", .other),
        ("fleet/a/", .other),
        ("fleet/a", .other),
        ("fleet/", .other),
        ("fleetx/a/telemetry", .other),
        ("Fleet/a/telemetry", .other),
        ("", .other),
    ])
    func routes(topic: String, expected: IngestClassifier.Route) {
        #expect(IngestClassifier.route(topic) == expected)
        #expect(reference(topic) == expected)
    }

    @Test func agreesWithTheReferenceOnRandomTopics() {
        let pieces = ["fleet", "status", "telemetry", "", "/", "a", "ü", "fleet/", "/telemetry", "x/y", "stat"]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<5_000 {
            let topic = (0..<Int.random(in: 0...5, using: &rng)).map { _ in pieces.randomElement(using: &rng)! }.joined(separator: Bool.random(using: &rng) ? "/" : "")
            #expect(IngestClassifier.route(topic) == reference(topic), "\(topic)")
        }
    }
}

/// The byte bound: payload bytes queued never exceed `maxCost` (one larger element alone).
@Suite struct BoundedQueueCostTests {
    @Test func pushBlocksWhileTheCostWouldExceedTheBound() {
        let q = BoundedQueue<Int>(capacity: 100, maxCost: 10) { $0 }
        q.push(6)
        let pushed = DispatchSemaphore(value: 0)
        let producer = Thread {
            q.push(5)
            pushed.signal()
        }
        producer.start()
        #expect(pushed.wait(timeout: .now() + .milliseconds(100)) == .timedOut)
        #expect(q.pop(max: 1, deadlineNs: monotonicNs()) == [6])
        #expect(pushed.wait(timeout: .now() + .seconds(30)) == .success)
        #expect(q.pop(max: 8, deadlineNs: monotonicNs()) == [5])
    }

    @Test func anElementAboveTheBoundGoesInAlone() {
        let q = BoundedQueue<Int>(capacity: 100, maxCost: 10) { $0 }
        #expect(q.push(50))
        #expect(q.pop(max: 8, deadlineNs: monotonicNs()) == [50])
    }

    /// A consumer waiting for a batch larger than the byte bound allows is woken by the
    /// blocked producer, long before its deadline.
    @Test func aBlockedProducerWakesAConsumerWaitingForMore() {
        let q = BoundedQueue<Int>(capacity: 100, maxCost: 10) { $0 }
        let producer = Thread {
            for _ in 0..<6 { q.push(4) }
            q.close()
        }
        producer.start()
        let start = monotonicNs()
        var got: [Int] = []
        while got.count < 6 {
            let batch = q.pop(max: 100, deadlineNs: start + 60_000_000_000, atLeast: 100)
            #expect(batch.reduce(0, +) <= 10)
            got += batch
        }
        #expect(got == Array(repeating: 4, count: 6))
        #expect(monotonicNs() - start < 30_000_000_000)
    }
}
