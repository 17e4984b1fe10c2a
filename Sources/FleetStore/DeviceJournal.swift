import FleetCore

/// The redo log of per-device state the writer holds back while ingest is behind
/// (docs/storage.md, "Deferred device state").
///
/// One `journal` row per deferred batch: for every message stored in it, what is needed to
/// redo its share of the device's registry times, seq ranges, presence stretch and per-device
/// minute and hour windows after a crash. The windows' values are read back from the raw rows,
/// which commit in the same transaction; the entry only names them (kind, idx, ts).
struct DeviceJournal {
    enum Kind: UInt64 {
        case inference = 0
        case resources = 1
    }

    struct Record: Equatable {
        var kind: Kind
        var idx: Int64
        var tsMs: Int64
    }

    struct Entry: Equatable {
        var dev: Int64
        var seq: Int64
        var sentAtMs: Int64
        var receivedMs: Int64
        var cohort: Int64
        var records: [Record]
    }

    private(set) var bytes: [UInt8] = []
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    mutating func append(_ e: Entry) {
        putHead(dev: e.dev, seq: e.seq, sentAtMs: e.sentAtMs, receivedMs: e.receivedMs, cohort: e.cohort, records: e.records.count)
        for r in e.records { put(r.kind, idx: r.idx, tsMs: r.tsMs, sentAtMs: e.sentAtMs) }
        count += 1
    }

    /// The entry of message `m` as stored for device `dev` in `cohort` (what `append(_:)` writes
    /// for it), encoded straight from the message: the writer's path, once per message.
    mutating func append(_ m: TelemetryMessage, dev: Int64, receivedMs: Int64, cohort: Int64) {
        // Records are read in place through the buffer (an array's subscript copies each).
        m.records.withUnsafeBufferPointer { records in
            var n = 0
            for i in records.indices {
                switch records[i].kind {
                case .inference, .resources: n += 1
                case .session, .error, .deploy: break
                }
            }
            putHead(dev: dev, seq: m.seq, sentAtMs: m.sentAtMs, receivedMs: receivedMs, cohort: cohort, records: n)
            for i in records.indices {
                switch records[i].kind {
                case .inference: put(.inference, idx: Int64(i), tsMs: records[i].tsMs, sentAtMs: m.sentAtMs)
                case .resources: put(.resources, idx: Int64(i), tsMs: records[i].tsMs, sentAtMs: m.sentAtMs)
                case .session, .error, .deploy: break
                }
            }
        }
        count += 1
    }

    private mutating func putHead(dev: Int64, seq: Int64, sentAtMs: Int64, receivedMs: Int64, cohort: Int64, records: Int) {
        Codecs.putVarint(UInt64(bitPattern: dev), &bytes)
        Codecs.putVarint(Self.zigzag(seq), &bytes)
        Codecs.putVarint(Self.zigzag(sentAtMs), &bytes)
        Codecs.putVarint(Self.zigzag(receivedMs &- sentAtMs), &bytes)
        Codecs.putVarint(UInt64(bitPattern: cohort), &bytes)
        Codecs.putVarint(UInt64(records), &bytes)
    }

    private mutating func put(_ kind: Kind, idx: Int64, tsMs: Int64, sentAtMs: Int64) {
        Codecs.putVarint(UInt64(bitPattern: idx) << 1 | kind.rawValue, &bytes)
        Codecs.putVarint(Self.zigzag(tsMs &- sentAtMs), &bytes)
    }

    /// The entries of one journal row; throws on bytes this writer did not produce.
    static func decode(_ p: UnsafeRawBufferPointer) throws -> [Entry] {
        var out: [Entry] = []
        var i = 0
        func next() throws -> UInt64 {
            guard let v = Codecs.getVarint(p, &i) else { throw StoreError("the device journal is damaged (at byte \(i) of \(p.count))") }
            return v
        }
        while i < p.count {
            let dev = Int64(bitPattern: try next())
            let seq = unzigzag(try next())
            let sent = unzigzag(try next())
            let received = sent &+ unzigzag(try next())
            let cohort = Int64(bitPattern: try next())
            let n = try next()
            guard n <= UInt64(p.count) else { throw StoreError("the device journal is damaged (record count \(n))") }
            var records: [Record] = []
            records.reserveCapacity(Int(n))
            for _ in 0..<n {
                let head = try next()
                guard let kind = Kind(rawValue: head & 1) else { throw StoreError("the device journal is damaged") }
                records.append(Record(kind: kind, idx: Int64(bitPattern: head >> 1), tsMs: sent &+ unzigzag(try next())))
            }
            out.append(Entry(dev: dev, seq: seq, sentAtMs: sent, receivedMs: received, cohort: cohort, records: records))
        }
        return out
    }

    static func zigzag(_ v: Int64) -> UInt64 { UInt64(bitPattern: (v << 1) ^ (v >> 63)) }
    static func unzigzag(_ v: UInt64) -> Int64 { Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1) }
}
