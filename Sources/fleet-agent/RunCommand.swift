import ArgumentParser
import EdgeRuntime
import FleetAgent
import FleetCore
import FleetMQTT
import Foundation

/// `fleet-agent run`: the device daemon (CONTRACTS section 7, docs/agent.md).
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a verified model on an input stream and publish fleet telemetry over MQTT.",
        discussion: """
            Runs --model (its signed manifest must verify against a trusted key) on the built-in \
            synthetic sensor or on NDJSON rows (--input), and publishes one telemetry message per \
            window to fleet/<device-id>/telemetry at QoS 1 through an on-disk buffer that keeps \
            every message until the broker acknowledged it. SIGTERM/SIGINT finish the session \
            cleanly (exit 0); SIGHUP reloads --model. Exit 1 when the model is refused and no \
            previous good model is kept next to the buffer. See docs/agent.md.
            """)

    // MARK: Required

    @Option(help: "Broker address HOST:PORT.")
    var broker: String

    @Option(help: "This device's id (^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$).")
    var deviceId: String

    @Option(help: "The ONNX model to run.")
    var model: String

    // MARK: Model integrity

    @Option(help: "The model's signed manifest (default: the model path with .onnx replaced by .manifest.json).")
    var manifest: String?

    @Option(help: "A trusted publisher key: 64 hex digits of a raw Ed25519 public key (repeatable).")
    var trustedKey: [String] = []

    @Option(help: "A file of trusted keys, one hex key a line ('#' comments). Default without --trusted-key: \(RunCommand.defaultKeysFile)")
    var trustedKeys: String?

    /// Where a provisioned device keeps its publisher keys, so the contract's command line
    /// (CONTRACTS section 7) needs no key flag.
    static let defaultKeysFile = "/etc/fleet-agent/trusted-keys"

    // MARK: Storage

    @Option(help: "The store-and-forward buffer (SQLite); the session marker and last good model live next to it. Default: ./fleet-agent-<device-id>.buffer.db")
    var buffer: String?

    @Option(help: "Unacknowledged messages kept at most; when full the oldest are dropped and the drop is reported.")
    var bufferMaxMessages: Int = 100_000

    @Option(help: "Acknowledged messages kept to answer replay requests.")
    var replayKeep: Int = 10_000

    @Option(help: "On exit, how long to wait for the broker to acknowledge buffered messages.")
    var drainTimeout: String = "5s"

    // MARK: Device labels and telemetry

    @Option(help: "Device SKU label.")
    var sku: String = "unknown"

    @Option(help: "Firmware version label.")
    var firmware: String = "unknown"

    @Option(help: "Accelerator label (schema 2).")
    var accelerator: String = "cpu"

    @Option(help: "Telemetry schema version: 1 or 2 (2 adds device.accelerator and inference.input_stats).")
    var schema: Int = 2

    @Option(help: "Aggregation window (one message per window).")
    var window: String = "10s"

    // MARK: Input

    @Option(help: "Inferences per second (synthetic source: default 10; --input: default as fast as rows arrive).")
    var rate: Double?

    @Option(help: "NDJSON input rows ({\"input\": [...]} or a bare array) from FILE, or '-' for stdin, instead of the synthetic source. The session ends at the end of the input.")
    var input: String?

    @Option(help: "Seed of the synthetic source.")
    var seed: UInt64 = 1

    // MARK: Fault injection

    @Option(help: "Covariate drift: shift every synthetic feature's mean by X standard deviations.")
    var drift: Double = 0

    @Option(help: "Extra Gaussian noise (standard deviation) on synthetic features.")
    var noise: Double = 0

    @Option(help: "Probability that an inference fails (injected error).")
    var errorRate: Double = 0

    @Option(help: "Add N ms of latency to spiked inferences (see --spike-rate).")
    var latencySpikeMs: Int = 0

    @Option(help: "Probability that an inference is spiked when --latency-spike-ms is set.")
    var spikeRate: Double = 0.01

    @Option(help: "Simulate a crash: record it and abort() this long after start.")
    var crashAfter: String?

    // MARK: MQTT

    @Option(help: "MQTT client id (default fleet-agent-<device-id>; keep it stable: the broker keeps the session).")
    var clientId: String?

    @Option(help: "Broker username (password from FLEET_AGENT_MQTT_PASSWORD).")
    var username: String?

    @Option(help: "CA certificate file: enables TLS.")
    var tlsCa: String?

    @Option(help: "Client certificate file (TLS).")
    var tlsCert: String?

    @Option(help: "Client key file (TLS).")
    var tlsKey: String?

    func validate() throws {
        guard parseBrokerAddress(broker) != nil else { throw ValidationError("--broker: '\(broker)' is not HOST:PORT") }
        guard AgentConfig.isValidDeviceID(deviceId) else { throw ValidationError("--device-id: '\(deviceId)' must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$") }
        for (name, value) in [("--sku", sku), ("--firmware", firmware), ("--accelerator", accelerator)] where !AgentConfig.isValidLabel(value) {
            throw ValidationError("\(name): '\(value)' must match ^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
        }
        guard schema == 1 || schema == 2 else { throw ValidationError("--schema must be 1 or 2") }
        guard let w = PromDuration.parseMs(window), w >= 10 else { throw ValidationError("--window: '\(window)' is not a duration of at least 10ms") }
        _ = w
        guard PromDuration.parseMs(drainTimeout) != nil else { throw ValidationError("--drain-timeout: '\(drainTimeout)' is not a duration") }
        if let c = crashAfter, PromDuration.parseMs(c) == nil { throw ValidationError("--crash-after: '\(c)' is not a duration") }
        if let rate, !(rate > 0 && rate <= 1_000_000) { throw ValidationError("--rate must be in (0, 1000000]") }
        guard (0...1).contains(errorRate), (0...1).contains(spikeRate) else { throw ValidationError("--error-rate and --spike-rate are probabilities in [0, 1]") }
        guard latencySpikeMs >= 0, latencySpikeMs <= 60_000 else { throw ValidationError("--latency-spike-ms must be in [0, 60000]") }
        guard noise >= 0, drift.isFinite, noise.isFinite else { throw ValidationError("--noise must be >= 0 and --drift finite") }
        guard bufferMaxMessages >= 1, replayKeep >= 0 else { throw ValidationError("--buffer-max-messages must be at least 1 and --replay-keep at least 0") }
        for k in trustedKey {
            do { _ = try TrustedKey(hex: k) } catch { throw ValidationError("--trusted-key: \(error.message)") }
        }
    }

    func run() throws {
        var keys = try trustedKey.map { try TrustedKey(hex: $0) }
        if let file = trustedKeys ?? (trustedKey.isEmpty ? Self.defaultKeysFile : nil) {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                fail("cannot read trusted keys from \(file): run always verifies the model's signature; give --trusted-key HEX or --trusted-keys FILE")
            }
            for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let l = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)?.trimmingCharacters(in: .whitespaces) ?? ""
                if l.isEmpty { continue }
                do { keys.append(try TrustedKey(hex: l)) } catch { fail("\(file):\(i + 1): \(error.message)") }
            }
            if keys.isEmpty { fail("--trusted-keys \(file) holds no key") }
        }
        let address = parseBrokerAddress(broker)!
        var mqtt = MQTTOptions(host: address.host, port: address.port, clientID: clientId ?? "fleet-agent-\(deviceId)")
        mqtt.username = username
        mqtt.password = ProcessInfo.processInfo.environment["FLEET_AGENT_MQTT_PASSWORD"]
        mqtt.tlsCAFile = tlsCa
        mqtt.tlsCertFile = tlsCert
        mqtt.tlsKeyFile = tlsKey
        var config = AgentConfig(
            mqtt: mqtt, deviceID: deviceId, modelPath: model,
            manifestPath: manifest ?? ModelLoader.defaultManifestPath(for: model),
            trustedKeys: keys, bufferPath: buffer ?? "fleet-agent-\(deviceId).buffer.db",
            device: DeviceInfo(sku: sku, firmware: firmware, agent: FleetVersion.string, accelerator: accelerator))
        config.schemaVersion = schema
        config.windowMs = PromDuration.parseMs(window)!
        config.input = input.map { .ndjson(path: $0) } ?? .synthetic
        config.rate = rate ?? (input == nil ? 10 : nil)
        config.seed = seed
        config.synthetic = SyntheticSource.Settings(drift: drift, noise: noise, errorRate: errorRate, latencySpikeMs: latencySpikeMs, spikeRate: spikeRate)
        config.crashAfterMs = crashAfter.flatMap(PromDuration.parseMs)
        config.bufferPolicy = BufferPolicy(maxUnacked: bufferMaxMessages, replayKeep: replayKeep)
        config.drainTimeoutMs = PromDuration.parseMs(drainTimeout)!
        let code = Agent(config: config).run()
        Foundation.exit(code)
    }

    private func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
        Foundation.exit(1)
    }
}
