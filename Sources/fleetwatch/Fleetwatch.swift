import ArgumentParser
import FleetCore

@main
struct Fleetwatch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleetwatch",
        abstract: "Fleet observability for edge AI devices: ingest, alerts, live TUI and incident queries.",
        discussion: """
            Devices publish telemetry (schema fleet.telemetry/1 and /2) on fleet/<device_id>/telemetry.
            Docs: docs/ in the source tree (architecture, schema, operations, rules).
            """,
        version: "fleetwatch \(FleetVersion.string)",
        subcommands: [Schema.self]
    )
}
