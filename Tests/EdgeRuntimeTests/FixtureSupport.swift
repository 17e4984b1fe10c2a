import Foundation

@testable import EdgeRuntime

/// The committed fixtures of Tests/Fixtures/models (made by make_models.py; no Python here).
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let models = root.appendingPathComponent("Tests/Fixtures/models")

    struct Tolerance: Decodable { var abs: Double; var rel: Double }

    struct Entry: Decodable, CustomStringConvertible {
        var name: String
        var model: String
        var inputs: String
        var expected: String
        var manifest: String
        var kind: String
        var tolerance: Tolerance
        var description: String { name }
    }

    static let index: [Entry] = {
        let data = FileManager.default.contents(atPath: models.appendingPathComponent("models.json").path)!
        return try! JSONDecoder().decode([Entry].self, from: data)
    }()

    static func entry(_ name: String) -> Entry { index.first { $0.name == name }! }

    static func path(_ file: String) -> String { models.appendingPathComponent(file).path }

    static func bytes(_ file: String) -> [UInt8] { [UInt8](FileManager.default.contents(atPath: path(file))!) }

    static func lines(_ file: String) -> [String] {
        String(decoding: bytes(file), as: UTF8.self).split(separator: "\n").map(String.init)
    }

    /// Expected outputs of one row: name -> flattened values.
    static func expected(_ line: String) -> [String: [Double]] {
        let object = try! JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        let outputs = object["outputs"] as! [String: [NSNumber]]
        return outputs.mapValues { $0.map(\.doubleValue) }
    }

    /// The largest violation of |ours - ref| <= abs + rel*|ref| over two value lists (0 when
    /// all are within), and the largest plain difference.
    static func compare(_ ours: [Double], _ ref: [Double], _ t: Tolerance) -> (excess: Double, maxDiff: Double) {
        var excess = 0.0, maxDiff = 0.0
        for (a, b) in zip(ours, ref) {
            let d = Swift.abs(a - b)
            maxDiff = max(maxDiff, d)
            excess = max(excess, d - (t.abs + t.rel * Swift.abs(b)))
        }
        return (excess, maxDiff)
    }
}
