import FleetCore
import Testing

@testable import FleetAgent

@Suite struct SessionTrackerTests {
    @Test func cleanLifecycle() {
        var t = SessionTracker()
        let (started, marker) = t.start(sessionID: "s1", pid: 42, nowMs: 1_000)
        #expect(started == SessionRecord(tsMs: 1_000, sessionID: "s1", status: .started, durationMs: 0, errors: 0))
        #expect(marker == SessionMarker(sessionID: "s1", pid: 42, startedMs: 1_000, lastAliveMs: 1_000, errors: 0))
        t.addErrors(3)
        #expect(t.heartbeat(nowMs: 11_000)?.lastAliveMs == 11_000)
        #expect(t.heartbeat(nowMs: 9_000)?.lastAliveMs == 11_000)  // a clock step back does not shorten it
        t.addErrors(2)
        #expect(t.exit(nowMs: 21_000) == SessionRecord(tsMs: 21_000, sessionID: "s1", status: .exited, durationMs: 20_000, errors: 5))
        // Exactly one terminal status.
        #expect(t.exit(nowMs: 22_000) == nil)
        #expect(t.crash(nowMs: 22_000) == nil)
        #expect(t.heartbeat(nowMs: 22_000) == nil)
    }

    /// The table of the contract: what the next start reports for the marker a run left.
    @Test func recoveryTable() {
        let running = SessionMarker(sessionID: "a", pid: 1, startedMs: 1_000, lastAliveMs: 31_000, errors: 4)
        var crashed = running
        crashed.crashedMs = 35_000
        let rows: [(SessionMarker?, String?, SessionRecord?)] = [
            (nil, nil, nil),  // clean exit removed the marker
            (running, nil, SessionRecord(tsMs: 31_000, sessionID: "a", status: .abnormal, durationMs: 30_000, errors: 4)),  // kill -9
            (crashed, nil, SessionRecord(tsMs: 35_000, sessionID: "a", status: .crashed, durationMs: 34_000, errors: 4)),  // abort
            (running, "a", nil),  // died after buffering `exited`, before removing the marker
            (crashed, "a", nil),
            (running, "older", SessionRecord(tsMs: 31_000, sessionID: "a", status: .abnormal, durationMs: 30_000, errors: 4)),
        ]
        for (marker, reported, want) in rows {
            #expect(SessionTracker.recover(previous: marker, alreadyReported: reported) == want)
        }
    }

    @Test func crashMarksTheMarker() {
        var t = SessionTracker()
        _ = t.start(sessionID: "s", pid: 1, nowMs: 100)
        let m = t.crash(nowMs: 600)
        #expect(m?.crashedMs == 600)
        #expect(SessionTracker.recover(previous: m, alreadyReported: nil)?.status == .crashed)
        #expect(t.exit(nowMs: 700) == nil)
    }

    @Test func markerRoundTripsAndTakesAppendedCrashLines() {
        let m = SessionMarker(sessionID: "0f8e-x", pid: 77, startedMs: 5, lastAliveMs: 9, errors: 2)
        #expect(SessionMarker.parse(m.render()) == m)
        // What the crash handler appends to the file.
        let crashed = SessionMarker.parse(m.render() + SessionMarker.crashLine(atMs: 12))
        #expect(crashed?.crashedMs == 12 && crashed?.sessionID == "0f8e-x")
        #expect(SessionMarker.parse("") == nil)
        #expect(SessionMarker.parse("something else\nsession_id=x\n") == nil)
        #expect(SessionMarker.parse("\(SessionMarker.header)\npid=3\n") == nil)  // no id: nothing to report
        // A torn last line still leaves the session reportable.
        let torn = SessionMarker.parse("\(SessionMarker.header)\nsession_id=s\nstarted_ms=10\nlast_al")
        #expect(torn == SessionMarker(sessionID: "s", pid: 0, startedMs: 10, lastAliveMs: 10, errors: 0))
    }
}
