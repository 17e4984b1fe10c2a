import Foundation
import Testing

@testable import FleetCore

@Suite struct LabelCacheTests {
    /// A cache kept across messages never changes what a message decodes to, whatever mix of
    /// labels (short, long, repeated, evicted) the stream carries.
    @Test func sharedCacheDecodesEveryMessageAsWithout() {
        var gen = MessageGenerator(rng: SplitMix64(seed: 77))
        var labels = LabelCache()
        // A pool of labels a little larger than the cache, so entries are evicted and reused.
        let pool = (0..<(LabelCache.capacity + 4)).map { "jetpack-5.1.\($0)-l4t-35.3.1" }
        for i in 0..<1500 {
            var m = gen.message()
            if i % 3 != 0 { m.device.sku = pool[i % pool.count]; m.device.firmware = pool[(i * 7) % pool.count] }
            let bytes = TelemetryEncoder.encode(m)
            let alone = TelemetryDecoder.decode(bytes, receivedAtMs: fixtureNow)
            let shared = bytes.withUnsafeBytes { TelemetryDecoder.decode($0, receivedAtMs: fixtureNow, labels: &labels) }
            guard case .success(let a) = alone, case .success(let b) = shared else {
                Issue.record("message \(i) rejected: \(alone) / \(shared)")
                return
            }
            #expect(a == m)
            #expect(b == m)
        }
        #expect(labels.hits > 0)
    }

    /// The second message naming the same long labels reuses them; short ones are not cached.
    @Test func repeatedLongLabelsHit() throws {
        var gen = MessageGenerator(rng: SplitMix64(seed: 3))
        var m = gen.message()
        m.device = DeviceInfo(sku: "orin-nano-8g", firmware: "jetpack-5.1.2-l4t-35.3.1", agent: "0.3.0")
        m.model = ModelInfo(name: "defect-detector", version: "1.4.0", sha256: String(repeating: "ab", count: 32))
        m.schemaVersion = 1
        m.records = [.resources(ResourcesRecord(tsMs: 1, cpuPct: 1, memMB: 1, tempC: 1, throttleEvents: 0))]
        var labels = LabelCache()
        for n in 1...3 {
            m.seq = Int64(n)
            let bytes = TelemetryEncoder.encode(m)
            let r = bytes.withUnsafeBytes { TelemetryDecoder.decode($0, receivedAtMs: fixtureNow, labels: &labels) }
            #expect((try? r.get()) == m)
        }
        // Two labels are longer than 15 bytes (firmware, sha256): 2 misses, then 2 hits twice.
        #expect(labels.misses == 2)
        #expect(labels.hits == 4)
        #expect(labels.count == 2)
        let before = labels
        // A message with a different firmware misses once, then hits.
        m.device.firmware = "jetpack-6.0.0-l4t-36.3.0"
        _ = TelemetryEncoder.encode(m).withUnsafeBytes { TelemetryDecoder.decode($0, receivedAtMs: fixtureNow, labels: &labels) }
        #expect(labels.misses == before.misses + 1)
        #expect(labels.hits == before.hits + 1)
    }

    /// Rejected messages leave the cache usable, and the cache never holds more than its size.
    @Test func boundedAndUnharmedByRejections() {
        var labels = LabelCache()
        for i in 0..<200 {
            let sha = String(repeating: String(format: "%02x", i % 256), count: 32)
            let good = #"{"schema":"fleet.telemetry/1","device_id":"d1","seq":1,"sent_at_ms":1,"device":{"sku":"s","firmware":"f","agent":"a"},"model":{"name":"m","version":"v","sha256":"\#(sha)"},"records":[{"kind":"resources","ts_ms":1,"cpu_pct":1,"mem_mb":1,"temp_c":1,"throttle_events":0}]}"#
            let r = Array(good.utf8).withUnsafeBytes { TelemetryDecoder.decode($0, receivedAtMs: fixtureNow, labels: &labels) }
            #expect((try? r.get())?.model.sha256 == sha)
            let broken = Array(good.utf8.dropLast(3))
            let b = broken.withUnsafeBytes { TelemetryDecoder.decode($0, receivedAtMs: fixtureNow, labels: &labels) }
            #expect((try? b.get()) == nil)
        }
        #expect(labels.count <= LabelCache.capacity)
        #expect(labels.misses == 200)
    }
}
