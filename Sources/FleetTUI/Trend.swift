/// Which way a KPI moved between two windows, and whether that is good news.
public enum Trend: Equatable, Sendable {
    case up, down, flat, unknown

    /// `current` against `previous`: a change smaller than `relative` of the previous value (and
    /// than `absolute`) is flat; unknown when either side is missing.
    public static func between(_ current: Double?, _ previous: Double?, relative: Double = 0.05, absolute: Double = 0) -> Trend {
        guard let c = current, let p = previous, c.isFinite, p.isFinite else { return .unknown }
        let delta = c - p
        if abs(delta) <= absolute || abs(delta) <= abs(p) * relative { return .flat }
        return delta > 0 ? .up : .down
    }

    public func glyph(_ g: Glyphs) -> String {
        switch self {
        case .up: g.up
        case .down: g.down
        case .flat: g.flat
        case .unknown: " "
        }
    }

    /// Red when the move is bad, green when good, plain when flat or unknown.
    public func style(higherIsBetter: Bool) -> Style {
        switch self {
        case .up: higherIsBetter ? .good : .bad
        case .down: higherIsBetter ? .bad : .good
        case .flat, .unknown: .plain
        }
    }
}
