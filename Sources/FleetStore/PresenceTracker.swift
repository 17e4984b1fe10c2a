/// One device's latest stretch of presence in each cohort it reported in.
///
/// A message at time t extends the stretch of its cohort when t is within `gapMs` of it;
/// otherwise it starts a new stretch. Changed stretches are handed to the writer once per batch.
struct PresenceTracker {
    struct Stretch {
        var firstMs: Int64
        var lastMs: Int64
        /// The first_ms the row was stored under, if it moved (late data extended it backwards).
        var storedFirstMs: Int64?
        var dirty = false
    }

    struct Change {
        var cohort: Int64
        var firstMs: Int64
        var lastMs: Int64
        var replacesFirstMs: Int64?
    }

    private var latest: [Int64: Stretch] = [:]
    private var standalone: [Change] = []

    mutating func load(cohort: Int64, firstMs: Int64, lastMs: Int64) {
        latest[cohort] = Stretch(firstMs: firstMs, lastMs: lastMs, storedFirstMs: firstMs)
    }

    mutating func note(cohort: Int64, at t: Int64, gapMs: Int64) {
        guard var s = latest[cohort] else {
            latest[cohort] = Stretch(firstMs: t, lastMs: t, storedFirstMs: nil, dirty: true)
            return
        }
        if t >= s.firstMs - gapMs && t <= s.lastMs + gapMs {
            if t > s.lastMs { s.lastMs = t; s.dirty = true }
            if t < s.firstMs { s.firstMs = t; s.dirty = true }
            latest[cohort] = s
        } else if t > s.lastMs {
            // A new stretch after a silence. The old one is stored unless it changed in this
            // batch (several stretches in one batch): then it is written as it stands.
            if s.dirty {
                let moved = s.storedFirstMs.flatMap { $0 != s.firstMs ? $0 : nil }
                standalone.append(Change(cohort: cohort, firstMs: s.firstMs, lastMs: s.lastMs, replacesFirstMs: moved))
            }
            latest[cohort] = Stretch(firstMs: t, lastMs: t, storedFirstMs: nil, dirty: true)
        } else {
            // Late data from long before the latest stretch: a stretch of its own.
            standalone.append(Change(cohort: cohort, firstMs: t, lastMs: t, replacesFirstMs: nil))
        }
    }

    /// A stretch began (or one from late data) that is not stored yet, or a stored one moved
    /// its start: who is in a cohort changed, not only until when.
    var hasNewStretch: Bool {
        !standalone.isEmpty || latest.values.contains { $0.dirty && $0.storedFirstMs != $0.firstMs }
    }

    /// The stretches to write, clearing the dirty marks.
    mutating func takeChanges() -> [Change] {
        var out = standalone
        standalone.removeAll()
        for (cohort, s) in latest where s.dirty {
            let moved = s.storedFirstMs.flatMap { $0 != s.firstMs ? $0 : nil }
            out.append(Change(cohort: cohort, firstMs: s.firstMs, lastMs: s.lastMs, replacesFirstMs: moved))
            latest[cohort] = Stretch(firstMs: s.firstMs, lastMs: s.lastMs, storedFirstMs: s.firstMs, dirty: false)
        }
        return out
    }
}
