import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A minimal HTTP/1.1 receiver for webhook POSTs on a loopback port (the demo's pager).
///
/// Every request with a body is handed to `handle` and answered `200 OK`; connections are kept
/// alive as URLSession expects, one thread per connection (a pager sees a handful).
public final class WebhookReceiver: @unchecked Sendable {
    public let port: Int
    private let fd: Int32
    private let handle: @Sendable (_ path: String, _ body: [UInt8]) -> Void

    public init(host: String = "127.0.0.1", port: Int = 0, handle: @escaping @Sendable (_ path: String, _ body: [UInt8]) -> Void) throws {
        self.handle = handle
        let s: Int32
        (s, self.port) = try listenTCP(host: host, port: port).mapError { SpawnError(description: "webhook receiver: \($0.description)") }.get()
        fd = s
        let t = Thread { [handle] in
            while true {
                let c = accept(s, nil, nil)
                if c < 0 {
                    if errno == EINTR { continue }
                    return  // closed
                }
                let conn = Thread { WebhookReceiver.serve(c, handle) }
                conn.name = "fleetwatch.webhook.conn"
                conn.start()
            }
        }
        t.name = "fleetwatch.webhook"
        t.start()
    }

    /// Stops accepting (connections in progress finish).
    public func close() {
        shutdown(fd, Int32(SHUT_RDWR))
        Glibc.close(fd)
    }

    static func serve(_ c: Int32, _ handle: (String, [UInt8]) -> Void) {
        defer { Glibc.close(c) }
        var tv = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        func fill() -> Bool {
            let n = chunk.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return false }
            buffer += chunk[0..<n]
            return true
        }
        while true {
            // Headers.
            var headerEnd: Int?
            while headerEnd == nil {
                if let r = find(buffer, [13, 10, 13, 10]) { headerEnd = r; break }
                if buffer.count > 65536 || !fill() { return }
            }
            let head = String(decoding: buffer[0..<headerEnd!], as: UTF8.self)
            let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
            let requestLine = lines.first.map(String.init) ?? ""
            let parts = requestLine.split(separator: " ")
            let path = parts.count > 1 ? String(parts[1]) : "/"
            var length = 0
            var close = false
            for l in lines.dropFirst() {
                let kv = l.split(separator: ":", maxSplits: 1)
                guard kv.count == 2 else { continue }
                let k = kv[0].lowercased()
                let v = kv[1].trimmingCharacters(in: .whitespaces)
                if k == "content-length" { length = Int(v) ?? 0 }
                if k == "connection" && v.lowercased() == "close" { close = true }
            }
            guard length >= 0, length <= 16 << 20 else { return }
            let bodyStart = headerEnd! + 4
            while buffer.count < bodyStart + length {
                if !fill() { return }
            }
            let body = Array(buffer[bodyStart..<(bodyStart + length)])
            buffer.removeFirst(bodyStart + length)
            if !body.isEmpty { handle(path, body) }
            let reply = Array("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\(close ? "Connection: close\r\n" : "")\r\n".utf8)
            _ = reply.withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if close { return }
        }
    }

    static func find(_ haystack: [UInt8], _ needle: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] {
            if Array(haystack[i..<(i + needle.count)]) == needle { return i }
        }
        return nil
    }
}
