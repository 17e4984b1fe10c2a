import FleetCore

/// Builds the agent's telemetry messages. Pure: seq, time and records are parameters.
///
/// The envelope follows `--schema`: version 1 carries no accelerator (and the encoder drops
/// `input_stats`); version 2 carries both. Records are split into messages of at most
/// `maxRecordsPerMessage`, far under the contract's 1000 records and 256 KiB (an error record
/// is at most ~600 bytes; an inference record with 256 classes and 64 input stats ~15 KB).
public struct MessageComposer: Sendable {
    public static let maxRecordsPerMessage = 200

    public var schemaVersion: Int
    public var deviceID: String
    public var device: DeviceInfo

    public init(schemaVersion: Int, deviceID: String, device: DeviceInfo) {
        precondition(schemaVersion == 1 || schemaVersion == 2, "schema 1 or 2")
        self.schemaVersion = schemaVersion
        self.deviceID = deviceID
        self.device = device
        if schemaVersion == 1 { self.device.accelerator = DeviceInfo.unknownAccelerator }
    }

    /// One message; a buffer drop (`drop`) is reported in it as a `BUFFER_OVERFLOW` error.
    public func encode(seq: Int64, sentAtMs: Int64, model: ModelInfo, records: [TelemetryRecord], drop: DropReport? = nil) -> [UInt8] {
        var recs = records
        if let drop { recs.append(.error(ErrorRecord(tsMs: sentAtMs, code: "BUFFER_OVERFLOW", message: drop.message))) }
        return TelemetryEncoder.encode(TelemetryMessage(
            schemaVersion: schemaVersion, deviceID: deviceID, seq: seq, sentAtMs: sentAtMs,
            device: device, model: model, records: recs))
    }

    /// `records` in message-sized chunks, in order.
    public static func chunks(_ records: [TelemetryRecord]) -> [[TelemetryRecord]] {
        stride(from: 0, to: records.count, by: maxRecordsPerMessage).map { Array(records[$0..<min($0 + maxRecordsPerMessage, records.count)]) }
    }
}
