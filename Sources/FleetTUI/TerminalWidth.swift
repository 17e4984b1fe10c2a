/// How many terminal columns a Unicode scalar takes, as the terminal will count them.
///
/// The table (`WidthTable.swift`) is glibc's `wcwidth()`, which ncurses uses to advance its cursor
/// and tmux to place cells: measuring with anything else would let a wide or combining character
/// shift every column after it. Pure and locale-independent.
public enum TerminalWidth {
    /// The width class of one scalar.
    public enum Class: Equatable, Sendable {
        case zero
        case narrow
        case wide
        /// `wcwidth` says -1: a control, unassigned or otherwise not printable.
        case unprintable
    }

    public static func classify(_ u: Unicode.Scalar) -> Class {
        let v = u.value
        // Fast path: printable ASCII and Latin-1 are narrow.
        if v >= 0x20 && v < 0x7F { return .narrow }
        if v >= 0xA0 && v < 0x300 { return .narrow }
        let table = ranges
        var lo = 0
        var hi = table.count / 3
        while lo < hi {
            let mid = (lo + hi) / 2
            if table[mid * 3 + 1] < v {
                lo = mid + 1
            } else {
                hi = mid
            }
        }
        guard lo < table.count / 3, table[lo * 3] <= v else { return .narrow }
        switch table[lo * 3 + 2] {
        case 0: return .zero
        case 2: return .wide
        default: return .unprintable
        }
    }

    /// Columns of one scalar: 0, 1 or 2 (unprintable scalars count 0; `SafeText` escapes them
    /// before anything is measured for display).
    @inline(__always)
    public static func columns(_ u: Unicode.Scalar) -> Int {
        switch classify(u) {
        case .narrow: 1
        case .wide: 2
        case .zero, .unprintable: 0
        }
    }

    /// Columns of a whole string (sum over its scalars).
    public static func columns(_ s: String) -> Int {
        var n = 0
        for u in s.unicodeScalars { n += columns(u) }
        return n
    }
}
