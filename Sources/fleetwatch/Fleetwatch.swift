import ArgumentParser
import FleetCore
import Foundation

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
        subcommands: [Ingest.self, Query.self, Alerts.self, Rules.self, Schema.self, Top.self, Simulate.self, Demo.self]
    )

    /// Exit codes of CONTRACTS section 7: usage errors exit 2 (argument-parser's default is 64).
    static func main() {
        // A parent may have spawned us with signals blocked (the mask survives exec); a daemon
        // that must honour SIGTERM/SIGINT/SIGHUP starts from a clean mask.
        var none = sigset_t()
        sigemptyset(&none)
        sigprocmask(SIG_SETMASK, &none, nil)
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
