/// The characters the TUI draws with: UTF-8 line drawing and block elements, or plain ASCII
/// (`--ascii`, or a locale that is not UTF-8).
public struct Glyphs: Sendable, Equatable {
    public var horizontal: String
    public var vertical: String
    public var ellipsis: SafeText
    public var up: String
    public var down: String
    public var flat: String
    /// Sparkline levels, lowest first (a gap in the data is drawn as a space).
    public var spark: [String]
    /// Bar: full cell, and eighths for the fractional end (index 1...7).
    public var barFull: String
    public var barEighths: [String]
    /// Fill characters that tell versions apart in the stacked adoption chart without colour.
    public var areaFills: [String]
    public var selected: String
    public var bullet: String

    public static let unicode = Glyphs(
        horizontal: "─", vertical: "│", ellipsis: "…", up: "↑", down: "↓", flat: "→",
        spark: ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"],
        barFull: "█", barEighths: ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"],
        areaFills: ["█", "▓", "▒", "░", "▚", "▞", "▖", "▗"], selected: "▶", bullet: "●")

    public static let ascii = Glyphs(
        horizontal: "-", vertical: "|", ellipsis: "~", up: "^", down: "v", flat: "=",
        spark: ["_", ".", "-", "~", "=", "+", "*", "#"],
        barFull: "#", barEighths: ["", "", "", "", "=", "=", "=", "="],
        areaFills: ["#", "=", "+", ":", "o", "x", "%", "."], selected: ">", bullet: "*")
}
