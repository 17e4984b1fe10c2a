import Foundation

/// The label strings a decoding thread saw last (a device's sku, firmware, agent and
/// accelerator; its model's name, version and sha256; a deploy's target version), so that the
/// next message naming the same labels shares their storage instead of allocating and
/// validating a new string for each.
///
/// A fleet names few distinct labels (its cohorts'), and every message repeats them. A label
/// longer than 15 bytes is a heap allocation in Swift (shorter ones are stored inline and cost
/// nothing to make); a 64-digit sha256 is one in every message. Sharing also makes the store's
/// "same attributes as before?" comparison a pointer comparison.
///
/// Pure and bounded: `capacity` strings, replaced round-robin; a miss costs one length
/// comparison per entry. Not thread-safe: one per decoding thread, passed `inout`.
public struct LabelCache: Sendable {
    public static let capacity = 16
    /// Labels of at most this many bytes are built directly (Swift's small-string form).
    static let inlineBytes = 15

    private var entries: [String] = []
    private var next = 0
    public private(set) var hits = 0
    public private(set) var misses = 0

    public init() {}

    /// Labels held now (at most `capacity`).
    public var count: Int { entries.count }

    /// The string of `bytes` (valid UTF-8, already checked against the label's pattern).
    mutating func string(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        guard bytes.count > Self.inlineBytes else { return String(decoding: bytes, as: UTF8.self) }
        for e in entries where e.utf8.count == bytes.count {
            let same = e.utf8.withContiguousStorageIfAvailable { s in
                memcmp(s.baseAddress!, bytes.baseAddress!, bytes.count) == 0
            }
            if same == true {
                hits += 1
                return e
            }
        }
        misses += 1
        let s = String(decoding: bytes, as: UTF8.self)
        if entries.count < Self.capacity {
            entries.append(s)
        } else {
            entries[next] = s
            next = (next + 1) % Self.capacity
        }
        return s
    }
}
