import ArgumentParser
import FleetCore

@main
struct FleetAgent: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet-agent",
        abstract: "Edge inference runtime: runs an ONNX model on the device and publishes fleet telemetry.",
        discussion: "The runtime and its 'run' and 'infer' commands arrive with the edge runtime work (issue 7).",
        version: "fleet-agent \(FleetVersion.string)"
    )
}
