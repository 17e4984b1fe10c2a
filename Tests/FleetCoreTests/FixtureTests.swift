import Foundation
import Testing

@testable import FleetCore

/// Paths into the source tree (tests read the committed fixtures and schemas in place).
enum Repo {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = root.appendingPathComponent("Tests/Fixtures/telemetry")

    static func files(_ sub: String) -> [URL] {
        let dir = fixtures.appendingPathComponent(sub)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".json") && $0 != "reasons.json" }.sorted().map { dir.appendingPathComponent($0) }
    }

    struct Expectation: Decodable {
        var reason: String
        var jsonschema: String
        var rule: String?
        var why: String
    }

    static func reasons() throws -> [String: Expectation] {
        let data = try Data(contentsOf: fixtures.appendingPathComponent("invalid/reasons.json"))
        return try JSONDecoder().decode([String: Expectation].self, from: data)
    }
}

/// The Swift verdict on a fixture: "OK" or the exact reason.
func verdict(_ url: URL) throws -> String {
    let bytes = try [UInt8](Data(contentsOf: url))
    switch TelemetryDecoder.decode(bytes, receivedAtMs: fixtureNow) {
    case .success: return "OK"
    case .failure(let r): return r.reason.description
    }
}

@Suite struct FixtureTests {
    @Test func everyValidFixtureIsAccepted() throws {
        let files = Repo.files("valid")
        #expect(files.count >= 12)
        for f in files { #expect(try verdict(f) == "OK", "\(f.lastPathComponent)") }
    }

    @Test func everyInvalidFixtureIsRejectedWithItsReason() throws {
        let files = Repo.files("invalid")
        let reasons = try Repo.reasons()
        #expect(files.count >= 40)
        #expect(Set(files.map(\.lastPathComponent)) == Set(reasons.keys), "reasons.json and the files disagree")
        for f in files {
            guard let want = reasons[f.lastPathComponent] else { continue }
            #expect(try verdict(f) == want.reason, "\(f.lastPathComponent): \(want.why)")
        }
    }
}

/// Python's jsonschema (Draft 2020-12) and the Swift decoder agree on every fixture, except for
/// the rules JSON Schema cannot express, where only the decoder rejects. Those are listed in
/// `reasons.json` as `"jsonschema": "valid"` with their `rule`; this test checks the rule is one
/// of the known inexpressible ones and that Swift does reject:
///
/// - duplicate object keys (RFC 8259 allows them; JSON Schema sees one parsed object),
/// - sketch keys strictly increasing, keys/counts equal length, counts summing to count,
///   empty-sketch fields, min <= max (relations between values),
/// - inference consistency (errors <= count; sketch count and histogram sum = count - errors),
/// - future timestamps (need the receiver's clock),
/// - oversize (a transport limit, not a shape).
@Suite struct ConformanceTests {
    static let inexpressible: Set<String> = [
        "duplicate_keys", "sketch_keys_order", "sketch_length_mismatch", "sketch_count_sum", "sketch_empty_nonzero",
        "sketch_min_max", "inference_consistency", "future_timestamp", "oversize",
    ]

    @Test func jsonschemaAndSwiftAgree() throws {
        let files = Repo.files("valid") + Repo.files("invalid")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Repo.root.appendingPathComponent("Tests/conformance/jsonschema_verdicts.py").path,
                             Repo.root.appendingPathComponent("schemas").path] + files.map(\.path)
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "python3 with jsonschema must be installed (.ci/run installs it)")
        struct PyVerdict: Decodable { var verdict: String; var detail: String? }
        let python = try JSONDecoder().decode([String: PyVerdict].self, from: data)
        let reasons = try Repo.reasons()
        var agreed = 0
        var exceptions = 0
        for f in files {
            let py = try #require(python[f.path]?.verdict)
            let swift = try verdict(f) == "OK" ? "valid" : "invalid"
            if let want = reasons[f.lastPathComponent], want.jsonschema == "valid" {
                // A rule JSON Schema cannot express: jsonschema accepts, Swift must reject.
                #expect(Self.inexpressible.contains(want.rule ?? ""), "\(f.lastPathComponent): rule \(want.rule ?? "none") is not a known inexpressible rule")
                #expect(py == "valid", "\(f.lastPathComponent): jsonschema now rejects it; drop it from the exception list")
                #expect(swift == "invalid", "\(f.lastPathComponent)")
                exceptions += 1
            } else {
                #expect(py == swift, "\(f.lastPathComponent): jsonschema says \(py), Swift says \(swift) (\(python[f.path]?.detail ?? ""))")
                agreed += 1
            }
        }
        #expect(agreed + exceptions == files.count)
    }
}
