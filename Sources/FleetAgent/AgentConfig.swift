import EdgeRuntime
import FleetCore
import FleetMQTT

/// Everything `fleet-agent run` was told, validated (the command line makes it).
public struct AgentConfig: Sendable {
    public enum Input: Sendable, Equatable {
        /// The built-in seeded sensor source.
        case synthetic
        /// NDJSON rows from a file, or standard input for "-".
        case ndjson(path: String)
    }

    public var mqtt: MQTTOptions
    public var deviceID: String
    public var modelPath: String
    public var manifestPath: String
    public var trustedKeys: [TrustedKey]
    public var bufferPath: String
    public var device: DeviceInfo
    /// 1 or 2 (`fleet.telemetry/N`); 2 adds `device.accelerator` and `input_stats`.
    public var schemaVersion: Int = 1
    public var windowMs: Int64 = 10_000
    /// Inferences per second: the synthetic source's rate; for NDJSON input nil runs rows as
    /// they arrive.
    public var rate: Double? = 10
    public var input: Input = .synthetic
    public var seed: UInt64 = 1
    public var synthetic = SyntheticSource.Settings()
    /// `--crash-after`: record a crash and abort() this long after start.
    public var crashAfterMs: Int64?
    public var bufferPolicy = BufferPolicy()
    /// On exit, how long to wait for the broker to acknowledge what is buffered.
    public var drainTimeoutMs: Int64 = 5_000
    /// Messages handed to libmosquitto and not yet acknowledged, at most.
    public var maxInFlight = 100

    public init(mqtt: MQTTOptions, deviceID: String, modelPath: String, manifestPath: String, trustedKeys: [TrustedKey], bufferPath: String, device: DeviceInfo) {
        self.mqtt = mqtt
        self.deviceID = deviceID
        self.modelPath = modelPath
        self.manifestPath = manifestPath
        self.trustedKeys = trustedKeys
        self.bufferPath = bufferPath
        self.device = device
    }

    public var telemetryTopic: String { "fleet/\(deviceID)/telemetry" }
    public var statusTopic: String { "fleet/\(deviceID)/status" }
    public var replayTopic: String { "fleet/\(deviceID)/replay" }
    /// The session marker, next to the buffer.
    public var markerPath: String { bufferPath + ".session" }
    public var lockPath: String { bufferPath + ".lock" }

    /// `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$` (CONTRACTS section 2).
    public static func isValidDeviceID(_ s: String) -> Bool {
        let b = Array(s.utf8)
        guard (1...64).contains(b.count), isAlnum(b[0]) else { return false }
        return b.dropFirst().allSatisfy { isAlnum($0) || $0 == 0x2E || $0 == 0x5F || $0 == 0x2D }
    }

    /// `^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`: sku, firmware, accelerator, versions.
    public static func isValidLabel(_ s: String) -> Bool {
        let b = Array(s.utf8)
        guard (1...64).contains(b.count), isAlnum(b[0]) else { return false }
        return b.dropFirst().allSatisfy { isAlnum($0) || $0 == 0x2E || $0 == 0x5F || $0 == 0x2D || $0 == 0x2B }
    }

    private static func isAlnum(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
    }
}
