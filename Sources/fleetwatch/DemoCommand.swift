import ArgumentParser

/// Placeholder until the simulator, ingester, alerting and TUI exist (issue 8 wires them).
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the whole stack locally: broker, simulated fleet, ingester, alerts and the TUI.")

    @Flag(help: "Run without the TUI, printing each page and a summary.")
    var headless = false

    @Option(help: "How long to run in headless mode (e.g. 90s, 5m).")
    var duration: String?

    func run() throws {
        print("fleetwatch demo: coming. The live demo needs the simulator, ingester, alert engine and TUI (issues 3-8).")
        print("Today: 'fleetwatch schema validate FILE' checks telemetry against schemas/fleet.telemetry.v1.json and v2.")
    }
}
