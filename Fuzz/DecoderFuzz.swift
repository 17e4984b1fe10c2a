// libFuzzer entry point for the telemetry decoder. Built by Fuzz/run.sh together with the
// FleetCore sources (swiftc -sanitize=fuzzer,address), not by SwiftPM.
//
// Besides "never crash, never hang, never read out of bounds", it checks two properties on
// every input: the verdict is deterministic, and an accepted message survives a round trip
// through the encoder unchanged.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDecoder(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    let now: Int64 = 1_764_417_600_000
    let first = TelemetryDecoder.decode(bytes, receivedAtMs: now, topicDeviceID: nil)
    let second = TelemetryDecoder.decode(bytes, receivedAtMs: now, topicDeviceID: nil)
    precondition(first == second, "verdict is not deterministic")
    if case .success(let message) = first {
        let encoded = TelemetryEncoder.encode(message)
        let back = TelemetryDecoder.decode(encoded, receivedAtMs: now, topicDeviceID: message.deviceID)
        guard case .success(let again) = back else {
            preconditionFailure("re-encoded message rejected: \(back)")
        }
        precondition(again == message, "round trip changed the message")
    }
    if case .failure(let rejection) = first {
        precondition(RejectionReason(rejection.reason.description) == rejection.reason, "reason does not round-trip")
    }
    return 0
}
