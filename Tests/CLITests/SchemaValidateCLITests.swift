import Foundation
import Testing

@Suite struct SchemaValidateCLITests {
    let fixtures = CLI.repoRoot.appendingPathComponent("Tests/Fixtures/telemetry")

    @Test func helpAndVersion() throws {
        for binary in ["fleetwatch", "fleet-agent"] {
            let v = try CLI.run(binary, ["--version"])
            #expect(v.status == 0)
            #expect(v.stdout.hasPrefix("\(binary) 0."))
            let h = try CLI.run(binary, ["--help"])
            #expect(h.status == 0)
            #expect(h.stdout.contains("USAGE: \(binary)"))
        }
    }

    @Test func validFilesPrintOK() throws {
        let files = ["v1-typical.json", "v2-typical.json"].map { fixtures.appendingPathComponent("valid/\($0)").path }
        let r = try CLI.run("fleetwatch", ["schema", "validate"] + files)
        #expect(r.status == 0)
        #expect(r.stdout == files.map { "\($0): OK\n" }.joined())
    }

    @Test func rejectedFilePrintsReasonAndExitsOne() throws {
        let ok = fixtures.appendingPathComponent("valid/v1-typical.json").path
        let bad = fixtures.appendingPathComponent("invalid/bom.json").path
        let r = try CLI.run("fleetwatch", ["schema", "validate", ok, bad])
        #expect(r.status == 1)
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines[0] == "\(ok): OK")
        #expect(lines[1].hasPrefix("\(bad): invalid_json ("))
    }

    @Test func stdinLinesAreOneMessageEach() throws {
        let good = try String(contentsOf: fixtures.appendingPathComponent("valid/v1-typical.json"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let input = good + "\n" + #"{"schema":"fleet.telemetry/1"}"# + "\n" + "not json\n"
        let r = try CLI.run("fleetwatch", ["schema", "validate", "-"], stdin: input)
        #expect(r.status == 1)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 3)
        #expect(lines[0] == "-:1: OK")
        #expect(lines[1].hasPrefix("-:2: schema_violation:/device_id ("))
        #expect(lines[2].hasPrefix("-:3: invalid_json ("))
    }

    @Test func controlCharactersInTheDetailAreInert() throws {
        // The detail echoes a device-supplied value; it must not carry raw escapes to the terminal.
        let input = #"{"schema":"fleet.telemetry/\u001b]0;pwned\u0007"}"# + "\n"
        let r = try CLI.run("fleetwatch", ["schema", "validate", "-"], stdin: input)
        #expect(r.status == 1)
        #expect(r.stdout.hasPrefix("-:1: unsupported_schema"))
        #expect(!r.stdout.contains("\u{1b}") && !r.stdout.contains("\u{07}"))
    }

    @Test func missingFileAndUsageErrors() throws {
        let r = try CLI.run("fleetwatch", ["schema", "validate", "/nonexistent/x.json"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("/nonexistent/x.json: cannot read"))
        let u = try CLI.run("fleetwatch", ["schema", "validate"])
        #expect(u.status == 2)
        #expect(try CLI.run("fleetwatch", ["--no-such-flag"]).status == 2)
        #expect(try CLI.run("fleet-agent", ["--no-such-flag"]).status == 2)
    }
}
