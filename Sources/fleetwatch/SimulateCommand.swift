import ArgumentParser
import Dispatch
import FleetCore
import FleetMQTT
import FleetSim
import Foundation

struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a simulated fleet: N devices publishing real telemetry from real inference.",
        discussion: """
            Every device has its own identity, sku, firmware, accelerator, seq, sessions, MQTT
            connection (with a will) and message buffer; all run the EdgeRuntime on shared models.
            Scenarios (docs/simulator.md): \(Scenario.Name.allCases.map(\.rawValue).joined(separator: ", ")).

            Time: --speed 60 makes an hour pass in a minute, for devices and timestamps alike;
            --duration is scenario time (wall time = duration / speed).

            Prints 'CLOCK ...' at the start, 'EVENT <scenario ms> <name> <detail>' as the story
            unfolds, and 'SIMULATED ...' counts at the end. SIGTERM/SIGINT end the run cleanly.
            """)

    @Option(help: "Broker address HOST:PORT.")
    var broker: String

    @Option(help: "Number of devices.")
    var devices: Int

    @Option(help: "Scenario: \(Scenario.Name.allCases.map(\.rawValue).joined(separator: ", ")).")
    var scenario: String = Scenario.Name.steady.rawValue

    @Option(help: "Scenario time to run (e.g. 2h); default: until SIGTERM/SIGINT.")
    var duration: String?

    @Option(help: "Seed: the same seed gives the same fleet and the same story.")
    var seed: UInt64 = 1

    @Option(help: "Time compression: scenario seconds per wall second.")
    var speed: Double = 1

    @Option(help: "Each device sends one message per interval (scenario time).")
    var interval: String = "10s"

    @Option(help: "Real inferences per device per interval.")
    var inferences: Int = 20

    @Option(help: "Simulator threads.")
    var threads: Int = 2

    @Option(help: "Messages each device buffers for replay and outages.")
    var buffer: Int = 128

    @Option(help: "Scenario start time (epoch ms or RFC 3339); default now.")
    var start: String?

    func validate() throws {
        if parseBrokerAddress(broker) == nil { throw ValidationError("--broker: '\(broker)' is not HOST:PORT") }
        if devices < 1 || devices > 200_000 { throw ValidationError("--devices must be between 1 and 200000") }
        if Scenario.Name(rawValue: scenario) == nil {
            throw ValidationError("--scenario: '\(scenario)' is not one of \(Scenario.Name.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let d = duration, (PromDuration.parseMs(d) ?? 0) <= 0 { throw ValidationError("--duration: '\(d)' is not a duration like 90s, 30m or 2h") }
        if !(speed > 0 && speed <= 100_000) { throw ValidationError("--speed must be positive (at most 100000)") }
        if (PromDuration.parseMs(interval) ?? 0) < 100 { throw ValidationError("--interval: '\(interval)' must be a duration of at least 100ms") }
        if inferences < 1 || inferences > 1000 { throw ValidationError("--inferences must be between 1 and 1000") }
        if threads < 1 || threads > 64 { throw ValidationError("--threads must be between 1 and 64") }
        if buffer < 1 { throw ValidationError("--buffer must be at least 1") }
        if let s = start, parseTime(s) == nil { throw ValidationError("--start: '\(s)' is not RFC 3339 or epoch ms") }
    }

    func run() throws {
        let (host, port) = parseBrokerAddress(broker)!
        var config = SimulatorConfig(host: host, port: port, devices: devices)
        config.scenario = Scenario.Name(rawValue: scenario)!
        config.durationMs = duration.flatMap(PromDuration.parseMs)
        config.seed = seed
        config.speed = speed
        config.intervalMs = PromDuration.parseMs(interval)!
        config.inferencesPerWindow = inferences
        config.threads = threads
        config.bufferMessages = buffer
        config.startMs = start.flatMap(parseTime)
        let sim = Simulator(config: config) { line in
            let bytes = Array((line + "\n").utf8)
            _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        }
        let signals = SignalHandlers()
        signals.on(SIGTERM) { sim.stop() }
        signals.on(SIGINT) { sim.stop() }
        defer { withExtendedLifetime(signals) {} }
        do {
            _ = try sim.run()
        } catch {
            throw fail("simulate: \(error)")
        }
    }
}
