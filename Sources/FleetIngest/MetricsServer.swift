import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A minimal HTTP/1.1 server for `GET /metrics` (Prometheus text format) on its own thread.
/// One request per connection; anything else gets 404. Enough for a scraper, nothing more.
/// `@unchecked Sendable`: `fd` is set once at init; `stop()` only shuts the socket down.
public final class MetricsServer: @unchecked Sendable {
    private let fd: Int32
    public let port: Int
    private let render: @Sendable () -> String
    private let thread: Thread

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public init(host: String, port: Int, render: @escaping @Sendable () -> String) throws {
        self.render = render
        let s: Int32
        (s, self.port) = try listenTCP(host: host == "localhost" ? "127.0.0.1" : host, port: port).mapError { Failure(description: $0.description) }.get()
        fd = s
        let render = self.render
        thread = Thread {
            while true {
                let c = accept(s, nil, nil)
                if c < 0 {
                    if errno == EINTR { continue }
                    return  // socket shut down
                }
                MetricsServer.serve(c, render)
            }
        }
        thread.name = "fleetwatch.metrics"
        thread.start()
    }

    private static func serve(_ c: Int32, _ render: () -> String) {
        defer { close(c) }
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var request: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while request.count < 16_384 {
            let n = buf.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            request += buf[0..<n]
            if request.count >= 4, request.suffix(4) == [13, 10, 13, 10] { break }
        }
        let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
        let parts = line.split(separator: " ")
        let response: String
        if parts.count >= 2, parts[0] == "GET", parts[1] == "/metrics" || parts[1].hasPrefix("/metrics?") {
            let body = render()
            response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
        } else {
            let body = "not found: try /metrics\n"
            response = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
        }
        var bytes = Array(response.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeMutableBytes { send(c, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }
            sent += n
        }
    }

    public func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}

struct ListenError: Error {
    var description: String
}

/// A listening IPv4 TCP socket on `host:port` (port 0: any free one): the descriptor and the
/// port it got, or why not (one line).
func listenTCP(host: String, port: Int) -> Result<(fd: Int32, port: Int), ListenError> {
    let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard s >= 0 else { return .failure(ListenError(description: "socket: \(String(cString: strerror(errno)))")) }
    var one: Int32 = 1
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(clamping: port).bigEndian)
    guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else {
        close(s)
        return .failure(ListenError(description: "\(host) is not an IPv4 address"))
    }
    let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard rc == 0, listen(s, 16) == 0 else {
        let e = String(cString: strerror(errno))
        close(s)
        return .failure(ListenError(description: "bind \(host):\(port): \(e)"))
    }
    var bound = sockaddr_in()
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
    return .success((s, Int(UInt16(bigEndian: bound.sin_port))))
}
