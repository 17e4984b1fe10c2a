import Crypto
import FleetCore
import FleetIngest
import FleetRules
import FleetStore
import Foundation
import SQLiteKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Delivery of the outbox to a real HTTP receiver on 127.0.0.1, with a receiver outage.
@Suite struct OutboxSenderTests {
    final class Receiver: @unchecked Sendable {
        let process: ChildProcess
        let port: Int
        let log: String

        init(dir: URL, fail: Int) throws {
            log = dir.appendingPathComponent("received.jsonl").path
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Support/webhook_receiver.py").path
            // Its port arrives on stdout; ChildProcess gives us stderr, so have it print there.
            process = try ChildProcess("/usr/bin/env", ["python3", "-c", "import sys,runpy; sys.stdout = sys.stderr; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')", script, log, String(fail)])
            var text = ""
            while !text.contains("\n") {
                let d = process.readStderr()
                if d.isEmpty { throw TestFailure("receiver exited: \(text)") }
                text += String(decoding: d, as: UTF8.self)
            }
            port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        }

        var received: [[String: Any]] {
            guard let t = try? String(contentsOfFile: log, encoding: .utf8) else { return [] }
            return t.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }

        deinit {
            process.signal(SIGTERM)
            _ = process.wait()
        }
    }

    @Test func everyNotificationArrivesInOrderAfterAnOutageSigned() throws {
        let tmp = TempDir()
        let receiver = try Receiver(dir: tmp.url, fail: 5)
        // Five notifications queued while the receiver is "down" (it answers 503 five times).
        let w = try StoreWriter(path: tmp.db)
        for i in 1...5 {
            let s = try w.connection.statement("INSERT INTO outbox(receiver, created_ms, group_key, body, next_attempt_ms) VALUES('oncall', ?, 'g', ?, 0)")
            s.bind(1, Int64(i))
            s.bind(2, blob: Array(#"{"n":\#(i)}"#.utf8))
            try s.run()
        }
        let sender = try OutboxSender(
            dbPath: tmp.db, receivers: [FleetRules.Receiver(name: "oncall", kind: .webhook(url: "http://127.0.0.1:\(receiver.port)/hook", secretEnv: "HOOK_SECRET"))],
            environment: ["HOOK_SECRET": "s3cret"])
        // A simulated clock: each pass is one minute later, past any backoff up to 5 minutes.
        var now: Int64 = 1_000_000
        var passes = 0
        while sender.pending > 0 && passes < 100 {
            try sender.deliverDue(nowMs: now)
            now += 5 * 60_000 + 60_000
            passes += 1
        }
        #expect(sender.pending == 0)
        let got = receiver.received
        // 5 refusals of the oldest (no newer one is tried before it), then all 5 in order.
        #expect(got.count == 10)
        #expect(got.prefix(5).allSatisfy { ($0["body"] as? String) == #"{"n":1}"# && ($0["status"] as? Int) == 503 })
        #expect(got.suffix(5).map { $0["body"] as? String ?? "" } == (1...5).map { #"{"n":\#($0)}"# })
        // Every request is signed: HMAC-SHA256 of the body with the secret.
        for r in got {
            let body = Array((r["body"] as? String ?? "").utf8)
            let mac = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array("s3cret".utf8)))
            #expect(r["signature"] as? String == "sha256=" + mac.map { String(format: "%02x", $0) }.joined())
        }
    }

    @Test func backoffGrowsAndWaitsForItsTime() throws {
        let tmp = TempDir()
        let receiver = try Receiver(dir: tmp.url, fail: 1000)
        let w = try StoreWriter(path: tmp.db)
        try w.connection.execute("INSERT INTO outbox(receiver, created_ms, group_key, body, next_attempt_ms) VALUES('oncall', 1, 'g', x'7b7d', 0)")
        let sender = try OutboxSender(dbPath: tmp.db, receivers: [FleetRules.Receiver(name: "oncall", kind: .webhook(url: "http://127.0.0.1:\(receiver.port)/", secretEnv: nil))])
        #expect(try sender.deliverDue(nowMs: 0).count == 1)
        #expect(try sender.deliverDue(nowMs: 500).isEmpty)  // 1 s backoff (+ jitter) not over
        var attempts = 1
        var t: Int64 = 0
        var gaps: [Int64] = []
        for _ in 0..<6 {
            let next = try #require(try w.connection.scalar("SELECT next_attempt_ms FROM outbox"))
            gaps.append(next - t)
            t = next
            #expect(try sender.deliverDue(nowMs: t).count == 1)
            attempts += 1
        }
        #expect(zip(gaps, gaps.dropFirst()).allSatisfy { $0 < $1 })  // exponential
        #expect(receiver.received.count == attempts)
    }
}
