/// The eight ANSI colours every colour terminal has (16-colour terminals add bright variants of
/// the same eight; the TUI never needs more).
public enum Color: UInt8, Sendable, CaseIterable {
    case red = 1, green, yellow, blue, magenta, cyan, white
}

/// How a cell is drawn: an optional foreground colour and attributes. Without colour (NO_COLOR,
/// or a terminal without colours) the attributes alone must still carry the meaning.
public struct Style: Hashable, Sendable {
    public var color: Color?
    public var bold = false
    public var reverse = false
    public var dim = false
    public var underline = false

    public init(color: Color? = nil, bold: Bool = false, reverse: Bool = false, dim: Bool = false, underline: Bool = false) {
        self.color = color
        self.bold = bold
        self.reverse = reverse
        self.dim = dim
        self.underline = underline
    }

    public static let plain = Style()
    public static let bold = Style(bold: true)
    public static let dim = Style(dim: true)
    public static let reverse = Style(reverse: true)
    public static let bad = Style(color: .red, bold: true)
    public static let warn = Style(color: .yellow)
    public static let good = Style(color: .green)
    public static let accent = Style(color: .cyan)
    public static let title = Style(color: .cyan, bold: true)

    public func with(reverse r: Bool) -> Style {
        var s = self
        s.reverse = r
        return s
    }
}

/// One terminal cell: the text it shows (one character with its combining marks; empty for the
/// right half of a wide character) and its style.
public struct Cell: Equatable, Sendable {
    public var text: String
    public var style: Style

    public static let blank = Cell(text: " ", style: .plain)
}

/// A frame being drawn: views write into it, the screen adapter paints it in one pass.
///
/// Pure (no terminal): tests read it back as text. Writes are clipped to the canvas; a wide
/// character that would straddle the right edge is replaced by a space.
public struct Canvas: Sendable {
    public let width: Int
    public let height: Int
    public private(set) var cells: [Cell]
    /// Where the terminal cursor should be shown (input modes), or nil to hide it.
    public var cursor: (x: Int, y: Int)?

    public init(width: Int, height: Int) {
        self.width = max(0, width)
        self.height = max(0, height)
        cells = Array(repeating: .blank, count: self.width * self.height)
    }

    public subscript(x: Int, y: Int) -> Cell {
        cells[y * width + x]
    }

    /// Writes `text` at (x, y), clipped to `maxWidth` columns and to the canvas; returns the
    /// column after the last one written.
    @discardableResult
    public mutating func put(_ x: Int, _ y: Int, _ text: SafeText, _ style: Style = .plain, maxWidth: Int = .max) -> Int {
        guard y >= 0, y < height else { return x }
        let limit = min(width, maxWidth == .max ? width : x + max(0, maxWidth))
        var col = x
        var lastBase = -1
        for u in text.text.unicodeScalars {
            let w = TerminalWidth.columns(u)
            if w == 0 {
                // A combining mark joins the cell of its base.
                if lastBase >= 0 { cells[y * width + lastBase].text.unicodeScalars.append(u) }
                continue
            }
            if col + w > limit {
                // A wide character that does not fit leaves a blank where its first half would be.
                if w == 2, col < limit, col >= 0 { cells[y * width + col] = Cell(text: " ", style: style) }
                col = limit
                break
            }
            if col >= 0 {
                clearWide(at: col, y)
                cells[y * width + col] = Cell(text: String(Character(u)), style: style)
                if w == 2 {
                    clearWide(at: col + 1, y)
                    cells[y * width + col + 1] = Cell(text: "", style: style)
                }
                lastBase = col
            }
            col += w
        }
        return col
    }

    /// Convenience for program text (sanitised all the same).
    @discardableResult
    public mutating func put(_ x: Int, _ y: Int, _ text: String, _ style: Style = .plain, maxWidth: Int = .max) -> Int {
        put(x, y, SafeText(text), style, maxWidth: maxWidth)
    }

    /// Overwriting half of a wide character blanks its other half, so no orphan halves remain.
    private mutating func clearWide(at x: Int, _ y: Int) {
        guard x >= 0, x < width else { return }
        let i = y * width + x
        if cells[i].text.isEmpty, x > 0 {
            cells[i - 1].text = " "
        } else if x + 1 < width, cells[i + 1].text.isEmpty, TerminalWidth.columns(cells[i].text) == 2 {
            cells[i + 1].text = " "
        }
    }

    /// Fills a rectangle with `ch` (one narrow character).
    public mutating func fill(_ x: Int, _ y: Int, _ w: Int, _ h: Int, _ ch: Character = " ", _ style: Style = .plain) {
        let x0 = max(0, x)
        let x1 = min(width, x + w)
        let y0 = max(0, y)
        let y1 = min(height, y + h)
        guard x0 < x1, y0 < y1 else { return }
        let cell = Cell(text: String(ch), style: style)
        for row in y0..<y1 {
            for col in x0..<x1 { cells[row * width + col] = cell }
        }
    }

    /// Applies `style` to every cell of a row segment, keeping the text (selection bars).
    public mutating func restyle(_ x: Int, _ y: Int, _ w: Int, _ transform: (Style) -> Style) {
        guard y >= 0, y < height else { return }
        for col in max(0, x)..<min(width, x + w) { cells[y * width + col].style = transform(cells[y * width + col].style) }
    }

    /// The canvas as plain text lines (right-trimmed), for tests and the benchmark.
    public func lines() -> [String] {
        (0..<height).map { y in
            var s = ""
            for x in 0..<width { s += cells[y * width + x].text }
            while s.hasSuffix(" ") { s.removeLast() }
            return s
        }
    }

    public var text: String { lines().joined(separator: "\n") }
}
