import ArgumentParser
import EdgeRuntime
import Foundation

/// `fleet-agent infer`: runs a model on NDJSON rows (CONTRACTS section 7). A developer tool:
/// it checks no signature (`run` always verifies).
struct InferCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "infer",
        abstract: "Run a model on NDJSON input rows and print one NDJSON output row per input.",
        discussion: """
            Each input line is {"input": [numbers...]} or a bare array, flattened row-major into \
            the model's first input with batch 1. Each output line is \
            {"outputs": {"<output name>": [numbers...]}}, flattened row-major. Blank lines are \
            skipped. No signature is needed.
            """
    )

    @Option(name: .long, help: "The ONNX model file.")
    var model: String

    @Option(name: .long, help: "NDJSON input rows (default: standard input).")
    var input: String?

    @Option(name: .long, help: "Where to write the NDJSON output rows (default: standard output).")
    var output: String?

    func run() throws {
        let compiled: CompiledModel
        do {
            compiled = try CompiledModel(contentsOf: model)
        } catch {
            fail("cannot load model \(model): \(error)")
        }
        guard compiled.inputs.count == 1 else {
            fail("model \(model) has \(compiled.inputs.count) inputs; infer feeds one")
        }
        let session = InferenceSession(compiled)

        let inFD: Int32
        if let input {
            inFD = open(input, O_RDONLY)
            if inFD < 0 { fail("cannot read \(input): \(String(cString: strerror(errno)))") }
        } else {
            inFD = 0
        }
        let out: UnsafeMutablePointer<FILE>
        if let output {
            guard let f = fopen(output, "w") else { fail("cannot write \(output): \(String(cString: strerror(errno)))") }
            out = f
        } else {
            out = fdopen(1, "w")  // not the `stdout` global: Swift 6 flags it as shared mutable state
        }

        var reader = LineReader(fd: inFD)
        var values: [Float] = []
        values.reserveCapacity(compiled.inputs[0].count)
        var lineNumber = 0
        while let line = reader.next() {
            lineNumber += 1
            let blank = line.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
            if blank { continue }
            do throws(InferenceError) {
                try line.withUnsafeBufferPointer { (buf) throws(InferenceError) in try NDJSONRows.parseInput(buf, into: &values) }
                try session.setInput(0, values)
            } catch {
                fflush(out)
                fail("line \(lineNumber): \(error)")
            }
            session.run()
            let row = NDJSONRows.formatOutputs(compiled.outputs.indices.map { (compiled.outputs[$0], session.output($0)) })
            fputs(row, out)
            fputc(0x0A, out)
        }
        if reader.failed { fail("cannot read \(input ?? "standard input"): \(String(cString: strerror(errno)))") }
        if fflush(out) != 0 || (output != nil && fclose(out) != 0) {
            fail("cannot write \(output ?? "standard output")")
        }
    }

    /// One clear line on stderr, exit 1.
    private func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
        Foundation.exit(1)
    }
}

/// Reads a file descriptor line by line (without the newline), in 64 KiB chunks.
struct LineReader {
    let fd: Int32
    private var buffer: [UInt8] = []
    private var start = 0
    private var eof = false
    private(set) var failed = false

    init(fd: Int32) { self.fd = fd }

    mutating func next() -> [UInt8]? {
        while true {
            if let nl = buffer[start...].firstIndex(of: 0x0A) {
                let line = Array(buffer[start..<nl])
                start = nl + 1
                return line
            }
            if eof {
                guard start < buffer.count else { return nil }
                let line = Array(buffer[start...])
                start = buffer.count
                return line
            }
            if start > 0 {
                buffer.removeFirst(start)
                start = 0
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, 65536) }
            if n < 0 {
                if errno == EINTR { continue }
                failed = true
                eof = true
            } else if n == 0 {
                eof = true
            } else {
                buffer.append(contentsOf: chunk[0..<n])
            }
        }
    }
}
