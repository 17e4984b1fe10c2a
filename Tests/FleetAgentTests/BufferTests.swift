import FleetCore
import Foundation
import Testing

@testable import FleetAgent

@Suite struct BufferPolicyTests {
    @Test func table() {
        let p = BufferPolicy(maxUnacked: 3, replayKeep: 2)
        #expect([0, 1, 2, 3, 4, 10].map { p.dropsBeforeAppend(unacked: $0) } == [0, 0, 0, 1, 2, 8])
        #expect([0, 2, 3, 7].map { p.ackedToPrune(acked: $0) } == [0, 0, 1, 5])
    }
}

@Suite struct TelemetryBufferTests {
    func payload(_ seq: Int64, _ drop: DropReport?) -> [UInt8] {
        Array("\(seq)|\(drop.map { "\($0.count):\($0.fromSeq)-\($0.toSeq)" } ?? "")".utf8)
    }

    @Test func seqStartsAtOneAndSurvivesReopen() throws {
        let dir = TempDir()
        let path = dir.path("b.db")
        do {
            let b = try TelemetryBuffer(path: path, deviceID: "d1")
            #expect(b.lastSeq == 0)
            for i in 1...3 { #expect(try b.append(nowMs: 1) { s, d in payload(s, d) }.seq == Int64(i)) }
            try b.markAcked([1, 2], nowMs: 2)
        }
        let b = try TelemetryBuffer(path: path, deviceID: "d1")
        #expect(b.lastSeq == 3 && b.unackedCount == 1 && b.ackedCount == 2)
        #expect(try b.unacked(after: 0, limit: 10).map(\.seq) == [3])
        #expect(try b.append(nowMs: 3) { s, d in payload(s, d) }.seq == 4)
        #expect(try b.unacked(after: 0, limit: 10).map(\.seq) == [3, 4])
        #expect(try b.unacked(after: 3, limit: 10).map(\.seq) == [4])
    }

    @Test func seqIsNeverReusedEvenWhenEverythingIsPruned() throws {
        let dir = TempDir()
        let b = try TelemetryBuffer(path: dir.path("b.db"), deviceID: "d1", policy: BufferPolicy(maxUnacked: 10, replayKeep: 0))
        for _ in 1...3 { try b.append(nowMs: 1) { s, d in payload(s, d) } }
        try b.markAcked([1, 2, 3], nowMs: 1)
        #expect(b.ackedCount == 0 && b.unackedCount == 0)
        #expect(try b.messages(in: 1...3, limit: 10).isEmpty)
        #expect(try b.append(nowMs: 1) { s, d in payload(s, d) }.seq == 4)
    }

    @Test func fullBufferDropsTheOldestUnackedAndReportsItInTheNewMessage() throws {
        let dir = TempDir()
        let b = try TelemetryBuffer(path: dir.path("b.db"), deviceID: "d1", policy: BufferPolicy(maxUnacked: 3, replayKeep: 5))
        for _ in 1...3 { try b.append(nowMs: 1) { s, d in payload(s, d) } }
        try b.markAcked([1], nowMs: 1)  // acknowledged messages do not count against the bound
        let a4 = try b.append(nowMs: 1) { s, d in payload(s, d) }
        #expect(a4.dropped == 0)
        let a5 = try b.append(nowMs: 1) { s, d in payload(s, d) }
        #expect(a5 == TelemetryBuffer.Appended(seq: 5, dropped: 1))
        #expect(String(decoding: try b.messages(in: 5...5, limit: 1)[0].payload, as: UTF8.self) == "5|1:2-2")
        #expect(try b.unacked(after: 0, limit: 10).map(\.seq) == [3, 4, 5])
        #expect(b.unackedCount == 3)
        // Acknowledged seq 1 is still there for replays.
        #expect(try b.messages(in: 1...5, limit: 10).map(\.seq) == [1, 3, 4, 5])
    }

    @Test func aFailedBuildDropsNothingAndUsesNoSeq() throws {
        let dir = TempDir()
        let b = try TelemetryBuffer(path: dir.path("b.db"), deviceID: "d1", policy: BufferPolicy(maxUnacked: 1, replayKeep: 0))
        try b.append(nowMs: 1) { s, d in payload(s, d) }
        #expect(throws: TestFailure.self) { try b.append(nowMs: 1) { _, _ in throw TestFailure("encode failed") } }
        #expect(b.lastSeq == 1 && b.unackedCount == 1)
        #expect(try b.unacked(after: 0, limit: 5).map(\.seq) == [1])
        #expect(try b.append(nowMs: 1) { s, d in payload(s, d) }.seq == 2)
    }

    @Test func ackedArePrunedBeyondReplayKeep() throws {
        let dir = TempDir()
        let b = try TelemetryBuffer(path: dir.path("b.db"), deviceID: "d1", policy: BufferPolicy(maxUnacked: 100, replayKeep: 2))
        for _ in 1...5 { try b.append(nowMs: 1) { s, d in payload(s, d) } }
        #expect(try b.markAcked([1, 2, 3, 4, 99], nowMs: 1) == 4)
        #expect(try b.markAcked([4], nowMs: 1) == 0)  // twice is once
        #expect(try b.messages(in: 1...10, limit: 10).map(\.seq) == [3, 4, 5])
        #expect(b.ackedCount == 2 && b.unackedCount == 1)
        #expect(try b.isUnacked(5) && !(try b.isUnacked(4)))
    }

    @Test func terminalSessionIsRemembered() throws {
        let dir = TempDir()
        let path = dir.path("b.db")
        do {
            let b = try TelemetryBuffer(path: path, deviceID: "d1")
            #expect(b.reportedSession == nil)
            try b.append(nowMs: 1, terminalSession: "s-1") { s, d in payload(s, d) }
        }
        #expect(try TelemetryBuffer(path: path, deviceID: "d1").reportedSession == "s-1")
    }

    @Test func anotherDevicesBufferIsRefused() throws {
        let dir = TempDir()
        _ = try TelemetryBuffer(path: dir.path("b.db"), deviceID: "d1")
        #expect { try TelemetryBuffer(path: dir.path("b.db"), deviceID: "d2") } throws: { ($0 as? BufferError)?.reason == .otherDevice }
    }
}
