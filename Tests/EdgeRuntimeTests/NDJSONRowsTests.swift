import Testing

@testable import EdgeRuntime

@Suite struct NDJSONRowsTests {
    @Test func inputForms() throws {
        #expect(try NDJSONRows.parseInput(#"{"input": [1, -2.5, 3e-2]}"#) == [1, -2.5, 0.03])
        #expect(try NDJSONRows.parseInput(#"[1, 2, 3]"#) == [1, 2, 3])
        #expect(try NDJSONRows.parseInput(#"  {"id": "a\"b", "meta": {"x": [1, {"y": null}]}, "input": [[1, 2], [3, 4]], "ok": true}  "#) == [1, 2, 3, 4])
        #expect(try NDJSONRows.parseInput("[]") == [])
    }

    @Test(arguments: [
        "", "{}", #"{"inputs": [1]}"#, "[1, 2", "[1, nope]", "[1, null]", #"{"input": 3}"#, "[1] x", "[.5]", "[+1]", #"{"input": [1],}"#,
    ])
    func badRowsAreRejected(_ row: String) {
        #expect(throws: InferenceError.self) { try NDJSONRows.parseInput(row) }
    }

    @Test func outputFormat() {
        let probs = TensorInfo(name: "probabilities", type: .float, shape: [1, 3])
        let label = TensorInfo(name: "label", type: .int64, shape: [1])
        let line = NDJSONRows.formatOutputs([(label, [2]), (probs, [Double(Float(0.1)), 1e-7, .nan])])
        #expect(line == #"{"outputs": {"label": [2], "probabilities": [0.1, 1e-07, null]}}"#)
    }
}
