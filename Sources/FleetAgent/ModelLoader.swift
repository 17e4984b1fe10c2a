import EdgeRuntime
import FleetCore
import Foundation

/// A model that verified, compiled and passed its smoke inference: ready to run.
public struct LoadedModel: Sendable {
    public let compiled: CompiledModel
    public let manifest: ModelManifest
    public let bytes: [UInt8]
    public let interpreter: OutputInterpreter
    /// The telemetry envelope's `model` (name and version made label-safe).
    public let info: ModelInfo
}

/// Why a model was not taken, as the `error` record and deploy result that report it.
public struct ModelRefusal: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Stage: String, Sendable {
        case unreadable, manifest, integrity, compile, smoke
    }

    public var stage: Stage
    /// The error record's code (`^[A-Z][A-Z0-9_]{0,31}$`).
    public var code: String
    public var message: String
    /// What the refused model would have been, as far as it could be read.
    public var attempted: ModelInfo

    /// A model that loaded but failed its smoke inference was rolled back; anything earlier
    /// failed to install.
    public var deployResult: DeployResult { stage == .smoke ? .rolledBack : .failed }

    public var description: String { message }
}

/// Loads a model for `fleet-agent run`: read, parse the manifest, verify hash and signature
/// against the trusted keys (always), compile, and run one smoke inference on zeros whose
/// outputs must be finite.
public enum ModelLoader {
    /// `PATH.onnx` -> `PATH.manifest.json` (any other name: `PATH.manifest.json`).
    public static func defaultManifestPath(for model: String) -> String {
        (model.hasSuffix(".onnx") ? String(model.dropLast(5)) : model) + ".manifest.json"
    }

    public static func load(model path: String, manifest manifestPath: String, trustedKeys: [TrustedKey]) -> Result<LoadedModel, ModelRefusal> {
        guard let data = FileManager.default.contents(atPath: path) else {
            return .failure(ModelRefusal(stage: .unreadable, code: "MODEL_UNREADABLE", message: "cannot read model \(path)", attempted: unknownInfo(nil)))
        }
        let bytes = [UInt8](data)
        guard let mdata = FileManager.default.contents(atPath: manifestPath) else {
            return .failure(ModelRefusal(stage: .manifest, code: "MODEL_NO_MANIFEST", message: "cannot read manifest \(manifestPath) for model \(path); run refuses unsigned models", attempted: unknownInfo(bytes)))
        }
        return load(bytes: bytes, manifestBytes: [UInt8](mdata), trustedKeys: trustedKeys, origin: path)
    }

    public static func load(bytes: [UInt8], manifestBytes: [UInt8], trustedKeys: [TrustedKey], origin: String) -> Result<LoadedModel, ModelRefusal> {
        let manifest: ModelManifest
        do {
            manifest = try ModelManifest.parse(manifestBytes)
        } catch {
            return .failure(ModelRefusal(stage: .manifest, code: "MODEL_BAD_MANIFEST", message: "model \(origin) refused: \(error.message)", attempted: unknownInfo(bytes)))
        }
        let info = modelInfo(manifest, bytes)
        do {
            try ModelIntegrity.verify(model: bytes, manifest: manifest, trustedKeys: trustedKeys)
        } catch {
            let code: String
            switch error.reason {
            case .unknownKey: code = "MODEL_UNTRUSTED_KEY"
            case .badSignature: code = "MODEL_BAD_SIGNATURE"
            case .hashMismatch: code = "MODEL_HASH_MISMATCH"
            case .malformedManifest, .malformedKey: code = "MODEL_BAD_MANIFEST"
            }
            return .failure(ModelRefusal(stage: .integrity, code: code, message: "model \(origin) refused (\(error.reason.rawValue)): \(error.message)", attempted: info))
        }
        let compiled: CompiledModel
        do {
            compiled = try CompiledModel(onnx: bytes)
        } catch {
            return .failure(ModelRefusal(stage: .compile, code: "MODEL_LOAD_FAILED", message: "model \(origin) does not load: \(error)", attempted: info))
        }
        guard !compiled.inputs.isEmpty, let interpreter = OutputInterpreter(outputs: compiled.outputs) else {
            return .failure(ModelRefusal(stage: .compile, code: "MODEL_LOAD_FAILED", message: "model \(origin) has no input or no output", attempted: info))
        }
        // Smoke test: one inference on zeros must give finite outputs.
        let session = InferenceSession(compiled)
        do {
            for i in compiled.inputs.indices { try session.setInput(i, [Float](repeating: 0, count: compiled.inputs[i].count)) }
        } catch {
            return .failure(ModelRefusal(stage: .smoke, code: "MODEL_SMOKE_FAILED", message: "model \(origin) failed its smoke inference: \(error)", attempted: info))
        }
        session.run()
        for i in compiled.outputs.indices where !session.output(i).allSatisfy(\.isFinite) {
            return .failure(ModelRefusal(stage: .smoke, code: "MODEL_SMOKE_FAILED", message: "model \(origin) failed its smoke inference: output '\(compiled.outputs[i].name)' is not finite on zero input", attempted: info))
        }
        return .success(LoadedModel(compiled: compiled, manifest: manifest, bytes: bytes, interpreter: interpreter, info: info))
    }

    /// The envelope's model info from a manifest: name and version as the schema's labels
    /// (`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`), sha256 of the actual bytes.
    static func modelInfo(_ m: ModelManifest, _ bytes: [UInt8]) -> ModelInfo {
        ModelInfo(name: label(m.name), version: label(m.version), sha256: ModelDigest.sha256Hex(bytes))
    }

    static func unknownInfo(_ bytes: [UInt8]?) -> ModelInfo {
        ModelInfo(name: "unknown", version: "unknown", sha256: bytes.map(ModelDigest.sha256Hex) ?? String(repeating: "0", count: 64))
    }

    /// A string made into a schema label: leading non-alphanumerics dropped, at most 64
    /// characters; `unknown` when nothing is left.
    public static func label(_ s: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-".unicodeScalars)
        var scalars = s.unicodeScalars.filter { allowed.contains($0) }[...]
        while let f = scalars.first, !(f.properties.isAlphabetic || ("0"..."9").contains(f)) { scalars = scalars.dropFirst() }
        let out = String(String.UnicodeScalarView(scalars.prefix(64)))
        return out.isEmpty ? "unknown" : out
    }
}

/// The last model that ran, kept next to the buffer so a device can fall back to it when the
/// model it is told to run fails to load or verify. It is verified again whenever it is used.
public struct LastGoodModel {
    public let modelPath: String
    public let manifestPath: String

    public init(bufferPath: String) {
        modelPath = bufferPath + ".last-good.onnx"
        manifestPath = bufferPath + ".last-good.manifest.json"
    }

    public func load(trustedKeys: [TrustedKey]) -> LoadedModel? {
        guard FileManager.default.fileExists(atPath: modelPath) else { return nil }
        return try? ModelLoader.load(model: modelPath, manifest: manifestPath, trustedKeys: trustedKeys).get()
    }

    /// Keeps `model` (atomically: write then rename, model before manifest).
    public func store(_ model: LoadedModel) throws {
        try Data(model.bytes).write(to: URL(fileURLWithPath: modelPath), options: .atomic)
        try Data(model.manifest.json()).write(to: URL(fileURLWithPath: manifestPath), options: .atomic)
    }
}
