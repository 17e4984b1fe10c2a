import ArgumentParser
import FleetCore
import Foundation

struct Schema: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Telemetry schema tools for firmware authors.",
        subcommands: [Validate.self]
    )

    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate telemetry messages: one message per file, or one per line of stdin with '-'.",
            discussion: """
                Prints '<input>: OK' or '<input>: <reason> (<detail>)' for each message, where <reason> is
                the machine-readable rejection reason the ingester would quarantine it with
                (invalid_json, oversize, unsupported_schema, schema_violation:<json-pointer>,
                future_timestamp:<json-pointer>). Exits 1 if any input is rejected or unreadable.
                Timestamps are checked against this machine's clock. See docs/schema.md.
                """
        )

        @Argument(help: "Files holding one message each, or '-' for one message per line on stdin.")
        var inputs: [String]

        func validate() throws {
            if inputs.isEmpty { throw ValidationError("give at least one FILE or '-'") }
        }

        func run() throws {
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            var failed = false
            for input in inputs {
                if input == "-" {
                    let data = FileHandle.standardInput.readDataToEndOfFile()
                    var lineNumber = 0
                    for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
                        lineNumber += 1
                        var bytes = Array(line)
                        if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
                        if bytes.isEmpty { continue }
                        failed = report("-:\(lineNumber)", TelemetryDecoder.decode(bytes, receivedAtMs: now)) || failed
                    }
                } else {
                    guard let data = FileManager.default.contents(atPath: input) else {
                        printError("\(input): cannot read file")
                        failed = true
                        continue
                    }
                    failed = report(input, TelemetryDecoder.decode(Array(data), receivedAtMs: now)) || failed
                }
            }
            if failed { throw ExitCode(1) }
        }

        /// Prints one verdict; true when rejected.
        private func report(_ name: String, _ result: Result<TelemetryMessage, Rejection>) -> Bool {
            switch result {
            case .success: print("\(name): OK"); return false
            case .failure(let r): print("\(name): \(r)"); return true
            }
        }
    }
}

func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
