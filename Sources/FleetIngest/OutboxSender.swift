import Crypto
import FleetCore
import FleetRules
import FleetStore
import Foundation
import SQLiteKit

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Delivers the notification outbox: the oldest undelivered notification of each receiver is
/// POSTed; a 2xx removes it, anything else (or no answer) schedules a retry with exponential
/// backoff and jitter. Per receiver, nothing newer is sent before the oldest got through, so
/// after an outage everything arrives in order and nothing is sent twice unless a 2xx was lost
/// (the receiver can then drop it by groupKey and fingerprints).
///
/// Runs on its own thread with its own connection (short transactions; the writer waits on
/// the busy timeout at worst). `@unchecked Sendable`: `deliverDue` is called from one thread
/// only; `receivers` is guarded by `receiversLock`.
public final class OutboxSender: @unchecked Sendable {
    let db: SQLiteConnection
    private var receivers: [String: Receiver]
    private let receiversLock = NSLock()
    let environment: [String: String]
    public var timeoutSeconds: Double = 5
    public var maxBackoffMs: Int64 = 5 * 60_000
    var rng = SplitMix64(seed: UInt64(truncatingIfNeeded: Int64(Date().timeIntervalSince1970 * 1e6)))

    public init(dbPath: String, receivers: [Receiver], environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        db = try SQLiteConnection(path: dbPath)
        try db.execute("PRAGMA busy_timeout=5000")
        self.receivers = Dictionary(uniqueKeysWithValues: receivers.map { ($0.name, $0) })
        self.environment = environment
    }

    /// Swaps the receivers (rules reload) from any thread.
    public func setReceivers(_ r: [Receiver]) {
        receiversLock.lock()
        receivers = Dictionary(uniqueKeysWithValues: r.map { ($0.name, $0) })
        receiversLock.unlock()
    }

    private func receiver(_ name: String) -> Receiver? {
        receiversLock.lock()
        defer { receiversLock.unlock() }
        return receivers[name]
    }

    public struct Attempt: Sendable, Equatable {
        public var receiver: String
        public var id: Int64
        public var status: Int
    }

    /// One pass: for each receiver whose oldest notification is due, try it once.
    @discardableResult
    public func deliverDue(nowMs: Int64) throws -> [Attempt] {
        var heads: [(Int64, String, [UInt8], Int64, Int64)] = []
        let q = try db.statement("""
            SELECT o.id, o.receiver, o.body, o.attempts, o.next_attempt_ms FROM outbox o
            WHERE o.id = (SELECT min(id) FROM outbox WHERE receiver = o.receiver)
            """)
        while try q.step() { heads.append((q.int(0), q.text(1), q.blob(2), q.int(3), q.int(4))) }
        var out: [Attempt] = []
        for (id, name, body, attempts, nextAt) in heads where nextAt <= nowMs {
            guard let r = receiver(name) else { continue }  // unknown now: kept until it returns
            let status = post(r, body)
            out.append(Attempt(receiver: name, id: id, status: status))
            if (200..<300).contains(status) {
                let d = try db.statement("DELETE FROM outbox WHERE id = ?")
                d.bind(1, id)
                try d.run()
            } else {
                let backoff = min(maxBackoffMs, 1000 << min(Int64(attempts), 20))
                let jitter = Int64(rng.next() % UInt64(max(1, backoff / 5)))
                let u = try db.statement("UPDATE outbox SET attempts = attempts + 1, next_attempt_ms = ?, last_error = ? WHERE id = ?")
                u.bind(1, nowMs + backoff + jitter)
                u.bind(2, status == 0 ? "no response" : "HTTP \(status)")
                u.bind(3, id)
                try u.run()
            }
        }
        return out
    }

    /// POSTs and returns the HTTP status (0: no response).
    func post(_ r: Receiver, _ body: [UInt8]) -> Int {
        let urlText: String
        var headers = ["Content-Type": "application/json", "User-Agent": "fleetwatch/\(FleetVersion.string)"]
        switch r.kind {
        case .webhook(let url, let secretEnv):
            urlText = url
            if let env = secretEnv, let secret = environment[env], !secret.isEmpty {
                let mac = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array(secret.utf8)))
                headers["X-Fleetwatch-Signature"] = "sha256=" + mac.map { String(format: "%02x", $0) }.joined()
            }
        case .alertmanager(let url):
            urlText = url.hasSuffix("/") ? url + "api/v2/alerts" : url + "/api/v2/alerts"
        }
        guard let url = URL(string: urlText) else { return 0 }
        var req = URLRequest(url: url, timeoutInterval: timeoutSeconds)
        req.httpMethod = "POST"
        req.httpBody = Data(body)
        for (k, v) in headers { req.setValue(v, forHTTPHeaderField: k) }
        let done = DispatchSemaphore(value: 0)
        let box = StatusBox()
        let task = URLSession.shared.dataTask(with: req) { _, response, _ in
            box.status = (response as? HTTPURLResponse)?.statusCode ?? 0
            done.signal()
        }
        task.resume()
        if done.wait(timeout: .now() + timeoutSeconds + 1) == .timedOut {
            task.cancel()
            return 0
        }
        return box.status
    }

    public var pending: Int64 { (try? db.scalar("SELECT count(*) FROM outbox")) ?? 0 }
}

/// The status of one request, written by URLSession's callback before the semaphore signals.
private final class StatusBox: @unchecked Sendable {
    var status = 0
}

