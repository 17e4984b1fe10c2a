/// The normalized in-memory form of one telemetry message. Both schema versions decode into it:
/// a v1 message carries `accelerator == "unknown"` and no input statistics.
public struct TelemetryMessage: Sendable, Equatable {
    /// 1 or 2: the `fleet.telemetry/N` version the message was written in.
    public var schemaVersion: Int
    public var deviceID: String
    public var seq: Int64
    public var sentAtMs: Int64
    public var device: DeviceInfo
    public var model: ModelInfo
    public var records: [TelemetryRecord]

    public init(
        schemaVersion: Int, deviceID: String, seq: Int64, sentAtMs: Int64,
        device: DeviceInfo, model: ModelInfo, records: [TelemetryRecord]
    ) {
        self.schemaVersion = schemaVersion
        self.deviceID = deviceID
        self.seq = seq
        self.sentAtMs = sentAtMs
        self.device = device
        self.model = model
        self.records = records
    }
}

public struct DeviceInfo: Sendable, Equatable, Hashable {
    public var sku: String
    public var firmware: String
    public var agent: String
    /// `unknown` for v1 messages, which predate the field.
    public var accelerator: String

    public static let unknownAccelerator = "unknown"

    public init(sku: String, firmware: String, agent: String, accelerator: String = DeviceInfo.unknownAccelerator) {
        self.sku = sku
        self.firmware = firmware
        self.agent = agent
        self.accelerator = accelerator
    }
}

public struct ModelInfo: Sendable, Equatable, Hashable {
    public var name: String
    public var version: String
    /// 64 lowercase hex digits.
    public var sha256: String

    public init(name: String, version: String, sha256: String) {
        self.name = name
        self.version = version
        self.sha256 = sha256
    }
}

// MARK: - Records

public enum TelemetryRecord: Sendable, Equatable {
    case session(SessionRecord)
    case inference(InferenceRecord)
    case resources(ResourcesRecord)
    case error(ErrorRecord)
    case deploy(DeployRecord)

    /// Device-clock epoch milliseconds of the record.
    public var tsMs: Int64 {
        switch self {
        case .session(let r): r.tsMs
        case .inference(let r): r.tsMs
        case .resources(let r): r.tsMs
        case .error(let r): r.tsMs
        case .deploy(let r): r.tsMs
        }
    }

    public var kind: RecordKind {
        switch self {
        case .session: .session
        case .inference: .inference
        case .resources: .resources
        case .error: .error
        case .deploy: .deploy
        }
    }
}

public enum RecordKind: String, Sendable, CaseIterable {
    case session, inference, resources, error, deploy
}

public enum SessionStatus: String, Sendable, CaseIterable {
    case started, exited, crashed, abnormal

    /// Terminal statuses end a session; `started` opens one.
    public var isTerminal: Bool { self != .started }
}

public struct SessionRecord: Sendable, Equatable {
    public var tsMs: Int64
    public var sessionID: String
    public var status: SessionStatus
    public var durationMs: Int64
    public var errors: Int64

    public init(tsMs: Int64, sessionID: String, status: SessionStatus, durationMs: Int64, errors: Int64) {
        self.tsMs = tsMs
        self.sessionID = sessionID
        self.status = status
        self.durationMs = durationMs
        self.errors = errors
    }
}

public struct ClassCount: Sendable, Equatable, Hashable {
    public var name: String
    public var count: Int64

    public init(name: String, count: Int64) {
        self.name = name
        self.count = count
    }
}

/// Summary statistics of one model input feature over a window (schema v2).
public struct FeatureStats: Sendable, Equatable {
    public var name: String
    public var mean: Double
    public var std: Double
    public var min: Double
    public var max: Double

    public init(name: String, mean: Double, std: Double, min: Double, max: Double) {
        self.name = name
        self.mean = mean
        self.std = std
        self.min = min
        self.max = max
    }
}

public struct InferenceRecord: Sendable, Equatable {
    public static let histogramBins = 10

    public var tsMs: Int64
    public var windowMs: Int64
    public var count: Int64
    public var errors: Int64
    public var latencyUs: DDSketch
    /// Top-1 confidence counts in 10 equal bins over [0, 1] (1.0 in the last bin).
    public var confidenceHist: [Int64]
    /// In the order the device sent them; names are unique.
    public var classCounts: [ClassCount]
    /// Schema v2 only; empty otherwise.
    public var inputStats: [FeatureStats]

    public init(
        tsMs: Int64, windowMs: Int64, count: Int64, errors: Int64, latencyUs: DDSketch,
        confidenceHist: [Int64], classCounts: [ClassCount], inputStats: [FeatureStats] = []
    ) {
        self.tsMs = tsMs
        self.windowMs = windowMs
        self.count = count
        self.errors = errors
        self.latencyUs = latencyUs
        self.confidenceHist = confidenceHist
        self.classCounts = classCounts
        self.inputStats = inputStats
    }

    /// The confidence bin (0...9) of a top-1 confidence in [0, 1].
    public static func confidenceBin(_ confidence: Double) -> Int {
        guard confidence.isFinite, confidence > 0 else { return 0 }
        return min(histogramBins - 1, Int(confidence * Double(histogramBins)))
    }
}

public struct ResourcesRecord: Sendable, Equatable {
    public var tsMs: Int64
    public var cpuPct: Double
    public var memMB: Double
    public var tempC: Double
    public var throttleEvents: Int64

    public init(tsMs: Int64, cpuPct: Double, memMB: Double, tempC: Double, throttleEvents: Int64) {
        self.tsMs = tsMs
        self.cpuPct = cpuPct
        self.memMB = memMB
        self.tempC = tempC
        self.throttleEvents = throttleEvents
    }
}

public struct ErrorRecord: Sendable, Equatable {
    public var tsMs: Int64
    /// `^[A-Z][A-Z0-9_]{0,31}$`
    public var code: String
    /// Free text from the device, up to 512 code points: untrusted, sanitise before display.
    public var message: String

    public init(tsMs: Int64, code: String, message: String) {
        self.tsMs = tsMs
        self.code = code
        self.message = message
    }
}

public enum DeployResult: String, Sendable, CaseIterable {
    case installed
    case rolledBack = "rolled_back"
    case failed
}

public struct DeployRecord: Sendable, Equatable {
    public var tsMs: Int64
    /// Empty for a first install.
    public var fromVersion: String
    public var toVersion: String
    public var result: DeployResult

    public init(tsMs: Int64, fromVersion: String, toVersion: String, result: DeployResult) {
        self.tsMs = tsMs
        self.fromVersion = fromVersion
        self.toVersion = toVersion
        self.result = result
    }
}
