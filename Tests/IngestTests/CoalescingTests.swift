import Testing

@testable import FleetMQTT

/// Receive coalescing's decisions (MQTTClient.Coalescing): wait only after small rounds, and
/// stop waiting on a socket whose broker caps the messages in flight to us.
@Suite struct CoalescingTests {
    @Test func waitsOnlyAfterSmallRoundsAndWhenOn() {
        var c = MQTTClient.Coalescing()
        #expect(c.shouldWait(microseconds: 500))
        #expect(!c.shouldWait(microseconds: 0))
        _ = c.roundEnded(packets: 64, waited: true)
        #expect(!c.shouldWait(microseconds: 500))  // a big round: the next one reads at once
        _ = c.roundEnded(packets: 63, waited: false)
        #expect(c.shouldWait(microseconds: 500))
    }

    @Test func aCappedWindowTurnsTheWaitOff() {
        var c = MQTTClient.Coalescing()
        var turnedOff = 0
        for round in 1...MQTTClient.Coalescing.windowEvidence {
            #expect(c.shouldWait(microseconds: 500))
            if c.roundEnded(packets: 20, waited: true) { turnedOff = round }
        }
        #expect(turnedOff == MQTTClient.Coalescing.windowEvidence)
        #expect(!c.shouldWait(microseconds: 500))
        let again = c.roundEnded(packets: 20, waited: true)
        #expect(!again)  // reported once
    }

    @Test func varyingRoundsTricklesAndUnwaitedRoundsKeepItOn() {
        var c = MQTTClient.Coalescing()
        var offs = 0
        // A steady rate: counts vary around the mean.
        for i in 0..<1000 { offs += c.roundEnded(packets: 20 + (i * 7) % 5, waited: true) ? 1 : 0 }
        // A trickle: one message per wake-up, however long.
        for _ in 0..<1000 { offs += c.roundEnded(packets: 1, waited: true) ? 1 : 0 }
        // Rounds read without a wait say nothing about the broker's window.
        for _ in 0..<1000 { offs += c.roundEnded(packets: 20, waited: false) ? 1 : 0 }
        // A run one short of the evidence, broken by a different count, starts over.
        for _ in 1..<MQTTClient.Coalescing.windowEvidence { offs += c.roundEnded(packets: 20, waited: true) ? 1 : 0 }
        offs += c.roundEnded(packets: 21, waited: true) ? 1 : 0
        for _ in 1..<MQTTClient.Coalescing.windowEvidence { offs += c.roundEnded(packets: 20, waited: true) ? 1 : 0 }
        #expect(offs == 0)
        #expect(c.shouldWait(microseconds: 500))
    }
}
