/// Block sparklines and bars, as plain strings of glyphs. Pure.
public enum Sparkline {
    /// `values` (oldest first; nil = no data) drawn in exactly `width` columns, newest at the
    /// right: longer series are averaged down in groups aligned to the newest value, shorter ones
    /// padded with spaces on the left. Scaled between the series' min and max, or from 0 when
    /// `fromZero` (counts and rates); a flat series sits on the lowest level.
    public static func render(_ values: [Double?], width: Int, glyphs: Glyphs, fromZero: Bool = false) -> String {
        guard width > 0 else { return "" }
        let points = resample(values, to: width)
        let present = points.compactMap { $0 }.filter(\.isFinite)
        guard let maxV = present.max(), let minV0 = present.min() else { return String(repeating: " ", count: width) }
        let minV = fromZero ? min(0, minV0) : minV0
        let levels = glyphs.spark.count
        var out = String(repeating: " ", count: width - points.count)
        for p in points {
            guard let v = p, v.isFinite else {
                out += " "
                continue
            }
            let level: Int
            if maxV > minV {
                level = Int(((v - minV) / (maxV - minV) * Double(levels - 1)).rounded())
            } else {
                level = fromZero && maxV > 0 ? levels - 1 : 0
            }
            out += glyphs.spark[max(0, min(levels - 1, level))]
        }
        return out
    }

    /// At most `width` points: groups of `ceil(count / width)` averaged (nil when a group has no
    /// data), the last group ending at the newest value.
    public static func resample(_ values: [Double?], to width: Int) -> [Double?] {
        guard width > 0 else { return [] }
        guard values.count > width else { return values }
        let group = (values.count + width - 1) / width
        var out: [Double?] = []
        var end = values.count
        while end > 0 && out.count < width {
            let start = max(0, end - group)
            let xs = values[start..<end].compactMap { $0 }
            out.append(xs.isEmpty ? nil : xs.reduce(0, +) / Double(xs.count))
            end = start
        }
        return out.reversed()
    }

    /// A horizontal bar of `fraction` (0...1) of `width` columns, with eighth-blocks for the
    /// fractional end (ASCII rounds to half cells), padded with spaces.
    public static func bar(_ fraction: Double?, width: Int, glyphs: Glyphs) -> String {
        guard width > 0 else { return "" }
        guard let f0 = fraction, f0.isFinite else { return String(repeating: " ", count: width) }
        let f = max(0, min(1, f0))
        let eighths = Int((f * Double(width * 8)).rounded())
        var out = String(repeating: glyphs.barFull, count: eighths / 8)
        var used = eighths / 8
        if eighths % 8 > 0, used < width, !glyphs.barEighths[eighths % 8].isEmpty {
            out += glyphs.barEighths[eighths % 8]
            used += 1
        }
        return out + String(repeating: " ", count: width - used)
    }
}
