import Testing

@testable import EdgeRuntime

@Suite struct EdgeRuntimeSmokeTests {
    @Test func opsetIsPinned() { #expect(EdgeRuntimeInfo.supportedOpset == 17) }
}
