import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Reads NDJSON input rows from a file or standard input on its own thread and posts them to
/// the inbox (blocking while the loop is behind), then posts `inputEnded`.
public enum InputReader {
    /// `path` "-" reads standard input.
    public static func start(path: String, inbox: AgentInbox) throws(AgentError) {
        let fd: Int32
        if path == "-" {
            fd = 0
        } else {
            fd = open(path, O_RDONLY | O_CLOEXEC)
            if fd < 0 { throw AgentError("cannot read --input \(path): \(String(cString: strerror(errno)))") }
        }
        let thread = Thread {
            var pending: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            var failure: String?
            while true {
                let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = "reading \(path == "-" ? "standard input" : path): \(String(cString: strerror(errno)))"
                    break
                }
                if n == 0 { break }
                pending.append(contentsOf: chunk[0..<n])
                var start = 0
                while let nl = pending[start...].firstIndex(of: 0x0A) {
                    post(Array(pending[start..<nl]), inbox)
                    start = nl + 1
                }
                pending.removeFirst(start)
            }
            if !pending.isEmpty { post(pending, inbox) }
            if fd != 0 { close(fd) }
            inbox.post(.inputEnded(error: failure))
        }
        thread.name = "fleet-agent.input"
        thread.start()
    }

    private static func post(_ line: [UInt8], _ inbox: AgentInbox) {
        var l = line[...]
        if l.last == 0x0D { l = l.dropLast() }
        if l.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return }  // blank lines are skipped
        inbox.postRow(Array(l))
    }
}
