import ArgumentParser
import FleetCore
import Foundation

@main
struct FleetAgent: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet-agent",
        abstract: "Edge inference runtime: runs an ONNX model on the device and publishes fleet telemetry.",
        discussion: "'run' is the device daemon (docs/agent.md); 'infer' runs a model on NDJSON rows (CONTRACTS section 7).",
        version: "fleet-agent \(FleetVersion.string)",
        subcommands: [RunCommand.self, InferCommand.self]
    )

    /// Exit codes of CONTRACTS section 7: usage errors exit 2 (argument-parser's default is 64).
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}
