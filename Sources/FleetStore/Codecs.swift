import CSQLite
import FleetCore
import SQLiteKit

/// Compact binary forms of the values rollups merge, and the SQL functions that merge them.
///
/// - histogram: 10 varints (confidence bins);
/// - classes: varint n, then n × (varint byte length, UTF-8 name, varint count), names sorted;
/// - latency: `DDSketch.encodedBinary()`.
///
/// `fw_sketch_merge(a, b)`, `fw_hist_merge(a, b)`, `fw_classes_merge(a, b)` merge two blobs (NULL
/// is the empty value) and serve `INSERT ... ON CONFLICT DO UPDATE`; the aggregate forms
/// `fw_sketch_agg`, `fw_hist_agg`, `fw_classes_agg` merge a column across rows for queries.
enum Codecs {
    // MARK: Varints

    static func putVarint(_ value: UInt64, _ out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    static func getVarint(_ p: UnsafeRawBufferPointer, _ i: inout Int) -> UInt64? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while i < p.count {
            let b = p[i]
            i += 1
            guard shift < 64 else { return nil }
            result |= UInt64(b & 0x7f) << shift
            if b < 0x80 { return result }
            shift += 7
        }
        return nil
    }

    // MARK: Histogram

    static func encodeHistogram(_ h: [Int64]) -> [UInt8] {
        var out: [UInt8] = []
        appendHistogram(h, to: &out)
        return out
    }

    static func appendHistogram(_ h: [Int64], to out: inout [UInt8]) {
        out.reserveCapacity(out.count + h.count + 2)
        for c in h { putVarint(UInt64(bitPattern: c), &out) }
    }

    static func decodeHistogram(_ p: UnsafeRawBufferPointer) -> [Int64] {
        var out = [Int64](repeating: 0, count: InferenceRecord.histogramBins)
        var i = 0
        var bin = 0
        while bin < out.count, let v = getVarint(p, &i) {
            out[bin] = Int64(bitPattern: v)
            bin += 1
        }
        return out
    }

    static func decodeHistogram(_ bytes: [UInt8]) -> [Int64] {
        bytes.withUnsafeBytes { decodeHistogram($0) }
    }

    static func addHistograms(_ a: inout [Int64], _ b: [Int64]) {
        for i in 0..<min(a.count, b.count) { a[i] = a[i].addingReportingOverflow(b[i]).overflow ? .max : a[i] &+ b[i] }
    }

    // MARK: Classes

    /// Sorted by name bytes, so equal maps encode equally.
    static func encodeClasses(_ classes: [String: Int64]) -> [UInt8] {
        var out: [UInt8] = []
        let names = classes.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        putVarint(UInt64(names.count), &out)
        for n in names {
            putVarint(UInt64(n.utf8.count), &out)
            out.append(contentsOf: n.utf8)
            putVarint(UInt64(bitPattern: classes[n]!), &out)
        }
        return out
    }

    static func encodeClasses(_ classes: [ClassCount]) -> [UInt8] {
        var out: [UInt8] = []
        appendClasses(classes, to: &out)
        return out
    }

    /// Appends `encodeClasses(classes)` to `out`.
    static func appendClasses(_ classes: [ClassCount], to out: inout [UInt8]) {
        guard classes.count <= 16 else {
            var map: [String: Int64] = [:]
            for c in classes {
                let (sum, overflow) = map[c.name, default: 0].addingReportingOverflow(c.count)
                map[c.name] = overflow ? .max : sum
            }
            out.append(contentsOf: encodeClasses(map))
            return
        }
        // A record's few classes (this runs for every inference record stored): their order
        // sorted by insertion on the stack, repeated names summed, no dictionary or copy.
        withUnsafeTemporaryAllocation(of: Int.self, capacity: classes.count) { order in
            for i in 0..<classes.count {
                var j = i
                while j > 0 && classes[i].name.utf8.lexicographicallyPrecedes(classes[order[j - 1]].name.utf8) {
                    order[j] = order[j - 1]
                    j -= 1
                }
                order[j] = i
            }
            var distinct = classes.isEmpty ? 0 : 1
            for i in 1..<max(classes.count, 1) where classes[order[i]].name != classes[order[i - 1]].name { distinct += 1 }
            out.reserveCapacity(out.count + 1 + classes.count * 12)
            putVarint(UInt64(distinct), &out)
            var i = 0
            while i < classes.count {
                let name = classes[order[i]].name
                var total = classes[order[i]].count
                var k = i + 1
                while k < classes.count && classes[order[k]].name == name {
                    let (sum, overflow) = total.addingReportingOverflow(classes[order[k]].count)
                    total = overflow ? .max : sum
                    k += 1
                }
                putVarint(UInt64(name.utf8.count), &out)
                out.append(contentsOf: name.utf8)
                putVarint(UInt64(bitPattern: total), &out)
                i = k
            }
        }
    }

    static func decodeClasses(_ p: UnsafeRawBufferPointer, into map: inout [String: Int64]) {
        var i = 0
        guard let n = getVarint(p, &i) else { return }
        for _ in 0..<n {
            guard let len = getVarint(p, &i), i + Int(len) <= p.count else { return }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: p[i..<i + Int(len)]), as: UTF8.self)
            i += Int(len)
            guard let c = getVarint(p, &i) else { return }
            let (s, o) = map[name, default: 0].addingReportingOverflow(Int64(bitPattern: c))
            map[name] = o ? .max : s
        }
    }

    static func decodeClasses(_ bytes: [UInt8]) -> [String: Int64] {
        var map: [String: Int64] = [:]
        bytes.withUnsafeBytes { decodeClasses($0, into: &map) }
        return map
    }

    static func decodeSketch(_ bytes: [UInt8]) -> DDSketch {
        bytes.isEmpty ? DDSketch() : (DDSketch(binary: bytes) ?? DDSketch())
    }
}

// MARK: - SQL functions

/// The three mergeable kinds, as an SQL function's user data.
enum MergeKind: Int {
    case sketch = 1, hist = 2, classes = 3
}

/// The running value of a merge: one of the three kinds.
final class MergeState {
    var sketch = DDSketch()
    var hist = [Int64](repeating: 0, count: InferenceRecord.histogramBins)
    var classes: [String: Int64] = [:]
    var any = false

    func add(_ kind: MergeKind, _ blob: UnsafeRawBufferPointer) {
        any = true
        switch kind {
        case .sketch:
            if blob.count > 0, let s = DDSketch(binary: blob) { sketch.merge(s) }
        case .hist:
            Codecs.addHistograms(&hist, Codecs.decodeHistogram(blob))
        case .classes:
            Codecs.decodeClasses(blob, into: &classes)
        }
    }

    func encoded(_ kind: MergeKind) -> [UInt8] {
        switch kind {
        case .sketch: sketch.encodedBinary()
        case .hist: Codecs.encodeHistogram(hist)
        case .classes: Codecs.encodeClasses(classes)
        }
    }
}

private func blobArgument(_ value: OpaquePointer?) -> UnsafeRawBufferPointer? {
    guard let value, sqlite3_value_type(value) != SQLITE_NULL else { return nil }
    let n = Int(sqlite3_value_bytes(value))
    guard n > 0, let p = sqlite3_value_blob(value) else { return UnsafeRawBufferPointer(start: nil, count: 0) }
    return UnsafeRawBufferPointer(start: p, count: n)
}

private func resultBlob(_ ctx: OpaquePointer?, _ bytes: [UInt8]) {
    bytes.withUnsafeBytes { raw in
        sqlite3_result_blob(ctx, raw.baseAddress, Int32(raw.count), fw_sqlite_transient())
    }
}

private func kindOf(_ ctx: OpaquePointer?) -> MergeKind {
    MergeKind(rawValue: Int(bitPattern: sqlite3_user_data(ctx))) ?? .sketch
}

extension SQLiteConnection {
    /// Registers the fw_* merge functions on this connection (writers and readers both).
    func registerMergeFunctions() throws(SQLiteError) {
        for (name, kind) in [("sketch", MergeKind.sketch), ("hist", .hist), ("classes", .classes)] {
            let user = UnsafeMutableRawPointer(bitPattern: kind.rawValue)
            var rc = sqlite3_create_function_v2(
                db, "fw_\(name)_merge", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, user,
                { ctx, argc, argv in
                    let kind = kindOf(ctx)
                    let state = MergeState()
                    for i in 0..<Int(argc) {
                        if let b = blobArgument(argv?[i]) { state.add(kind, b) }
                    }
                    resultBlob(ctx, state.encoded(kind))
                }, nil, nil, nil)
            guard rc == SQLITE_OK else { throw error(rc, "registering fw_\(name)_merge") }
            rc = sqlite3_create_function_v2(
                db, "fw_\(name)_agg", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, user, nil,
                { ctx, _, argv in
                    let slot = sqlite3_aggregate_context(ctx, Int32(MemoryLayout<UnsafeMutableRawPointer?>.size))!
                        .assumingMemoryBound(to: UnsafeMutableRawPointer?.self)
                    if slot.pointee == nil { slot.pointee = Unmanaged.passRetained(MergeState()).toOpaque() }
                    let state = Unmanaged<MergeState>.fromOpaque(slot.pointee!).takeUnretainedValue()
                    if let b = blobArgument(argv?[0]) { state.add(kindOf(ctx), b) }
                },
                { ctx in
                    let slot = sqlite3_aggregate_context(ctx, 0)?.assumingMemoryBound(to: UnsafeMutableRawPointer?.self)
                    guard let raw = slot?.pointee else {
                        sqlite3_result_null(ctx)
                        return
                    }
                    let state = Unmanaged<MergeState>.fromOpaque(raw).takeRetainedValue()
                    resultBlob(ctx, state.encoded(kindOf(ctx)))
                }, nil)
            guard rc == SQLITE_OK else { throw error(rc, "registering fw_\(name)_agg") }
        }
    }
}
