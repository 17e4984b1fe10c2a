import ArgumentParser
import FleetCore
import FleetStore
import Foundation

struct Ingest: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ingest telemetry into the database: from captured traffic (--file) or live from the broker.",
        discussion: """
            --file reads captured traffic, one message a line as 'mosquitto_sub -v' prints it
            ('<topic> <payload>'), through the same validation and store path as live MQTT, then exits.
            Every line on a telemetry topic ends stored, deduplicated or quarantined with its reason;
            status lines set presence; lines on other topics are counted and skipped.
            Capture with: mosquitto_sub -v -t 'fleet/#' > capture.txt
            """)

    @OptionGroup var database: DatabaseOption

    @Option(help: "Captured traffic to replay ('-' for stdin).")
    var file: String?

    @Option(help: "Messages per transaction.")
    var batch: Int = 2000

    func validate() throws {
        if file == nil { throw ValidationError("live ingest (--broker) arrives with the MQTT ingester; use --file CAPTURE for now") }
        if batch < 1 { throw ValidationError("--batch must be at least 1") }
    }

    func run() throws {
        let writer: StoreWriter
        do { writer = try StoreWriter(path: database.db) } catch { throw fail("cannot open \(database.db): \(error)") }
        let input: FileHandle
        if file == "-" { input = .standardInput } else {
            guard let h = FileHandle(forReadingAtPath: file!) else { throw fail("cannot read \(file!)") }
            input = h
        }
        var items: [IngestItem] = []
        items.reserveCapacity(batch)
        var total = BatchOutcome()
        var otherTopics = 0
        var statusLines = 0
        var badStatus = 0
        func flush() throws {
            guard !items.isEmpty else { return }
            let o = try writer.write(items)
            total.received += o.received
            total.stored += o.stored
            total.duplicates += o.duplicates
            total.records += o.records
            for (k, v) in o.quarantined { total.quarantined[k, default: 0] += v }
            items.removeAll(keepingCapacity: true)
        }
        do {
            try LineReader(input).forEachLine { line in
                guard !line.isEmpty else { return }
                let space = line.firstIndex(of: UInt8(ascii: " ")) ?? line.endIndex
                let topic = String(decoding: line[line.startIndex..<space], as: UTF8.self)
                let payloadStart = space < line.endIndex ? line.index(after: space) : space
                let payload = line[payloadStart...]
                let received = nowMs()
                switch IngestClassifier.route(topic) {
                case .telemetry(let topicID):
                    items.append(payload.withUnsafeBytes { IngestClassifier.classify(topic: topic, topicDeviceID: topicID, payload: $0, receivedMs: received) })
                    if items.count >= batch { try flush() }
                case .status(let id):
                    statusLines += 1
                    if let s = IngestClassifier.parseStatus(Array(payload)) {
                        try flush()
                        try writer.setState(deviceID: id, online: s.online, tsMs: s.tsMs)
                    } else {
                        badStatus += 1
                    }
                case .other:
                    otherTopics += 1
                }
            }
            try flush()
        } catch let e as ExitCode {
            throw e
        } catch {
            throw fail("ingest failed: \(error)")
        }
        let q = total.quarantined.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        printError("ingested \(total.received) telemetry messages: stored \(total.stored) (\(total.records) records), duplicates \(total.duplicates), quarantined \(total.quarantined.values.reduce(0, +))\(q.isEmpty ? "" : " (\(q))"); status lines \(statusLines)\(badStatus > 0 ? " (\(badStatus) malformed)" : ""); other topics skipped \(otherTopics)")
    }
}

/// Reads a file handle line by line (LF, optional CR), in large chunks.
struct LineReader {
    let handle: FileHandle

    init(_ handle: FileHandle) { self.handle = handle }

    func forEachLine(_ body: (ArraySlice<UInt8>) throws -> Void) throws {
        var buffer: [UInt8] = []
        while true {
            let chunk = handle.readData(ofLength: 1 << 20)
            if chunk.isEmpty { break }
            buffer.append(contentsOf: chunk)
            var start = 0
            while let nl = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                var end = nl
                if end > start && buffer[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                try body(buffer[start..<end])
                start = nl + 1
            }
            buffer.removeFirst(start)
        }
        if !buffer.isEmpty {
            if buffer.last == UInt8(ascii: "\r") { buffer.removeLast() }
            try body(buffer[...])
        }
    }
}
