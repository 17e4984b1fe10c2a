import Crypto
import FleetCore
import Foundation
import Testing

@testable import EdgeRuntime
@testable import FleetAgent

/// Models and manifests for the tests, signed with the fixtures' TEST-ONLY key.
enum TestModels {
    static var testKey: TrustedKey { try! TrustedKey(hex: Paths.testKeyHex) }

    static var privateKey: Curve25519.Signing.PrivateKey {
        let hex = Paths.testPrivateKeyHex
        var bytes: [UInt8] = []
        var i = hex.startIndex
        while i < hex.endIndex {
            let j = hex.index(i, offsetBy: 2)
            bytes.append(UInt8(hex[i..<j], radix: 16)!)
            i = j
        }
        return try! Curve25519.Signing.PrivateKey(rawRepresentation: bytes)
    }

    static func bytes(_ file: String) -> [UInt8] { [UInt8](FileManager.default.contents(atPath: Paths.model(file))!) }

    /// Writes `model` and its manifest signed as `name` `version` into `dir`; returns the model path.
    @discardableResult
    static func install(_ model: [UInt8], name: String = "mlp", version: String, at path: String, signedFor signed: [UInt8]? = nil) throws -> String {
        try Data(model).write(to: URL(fileURLWithPath: path))
        let manifest = try ModelManifest.signed(name: name, version: version, model: signed ?? model, key: privateKey)
        try Data(manifest.json()).write(to: URL(fileURLWithPath: ModelLoader.defaultManifestPath(for: path)))
        return path
    }

    /// x[1,4] / 0: loads, but its smoke inference on zeros gives NaN.
    static var nanModel: [UInt8] {
        var zero = Onnx_TensorProto()
        zero.name = "zero"
        zero.dims = [1]
        zero.dataType = 1
        zero.floatData = [0]
        var div = Onnx_NodeProto()
        div.opType = "Div"
        div.input = ["x", "zero"]
        div.output = ["y"]
        func value(_ name: String) -> Onnx_ValueInfoProto {
            var v = Onnx_ValueInfoProto()
            v.name = name
            var t = Onnx_TypeProto.Tensor()
            t.elemType = 1
            var s = Onnx_TensorShapeProto()
            s.dim = [Int64(1), 4].map { d in
                var dim = Onnx_TensorShapeProto.Dimension()
                dim.dimValue = d
                return dim
            }
            t.shape = s
            v.type.tensorType = t
            return v
        }
        var g = Onnx_GraphProto()
        g.name = "nan"
        g.node = [div]
        g.input = [value("x")]
        g.output = [value("y")]
        g.initializer = [zero]
        var m = Onnx_ModelProto()
        m.irVersion = 8
        m.graph = g
        var o = Onnx_OperatorSetIdProto()
        o.version = 17
        m.opsetImport = [o]
        return try! m.serializedBytes()
    }
}

@Suite struct ModelLoaderTests {
    func load(_ path: String, keys: [TrustedKey] = [TestModels.testKey]) -> Result<LoadedModel, ModelRefusal> {
        ModelLoader.load(model: path, manifest: ModelLoader.defaultManifestPath(for: path), trustedKeys: keys)
    }

    @Test func fixturesLoad() throws {
        for name in ["mlp", "mlp_int8_qdq", "mlp_int8_dynamic", "cnn1d", "autoencoder", "logreg"] {
            let m = try load(Paths.model("\(name).onnx")).get()
            #expect(m.info.name == name && m.info.version == "1.0.0")
            #expect(m.info.sha256 == m.manifest.sha256)
        }
    }

    @Test func refusalsSayWhyAndHowTheDeployEnded() throws {
        let dir = TempDir()
        var tampered = TestModels.bytes("mlp.onnx")
        tampered[tampered.count / 2] ^= 1
        let hash = try TestModels.install(tampered, version: "1.1.0", at: dir.path("tampered.onnx"), signedFor: TestModels.bytes("mlp.onnx"))
        let r = load(hash)
        guard case .failure(let e) = r else { Issue.record("tampered model loaded"); return }
        #expect(e.code == "MODEL_HASH_MISMATCH" && e.stage == .integrity && e.deployResult == .failed)
        #expect(e.attempted.version == "1.1.0" && e.attempted.sha256 == ModelDigest.sha256Hex(tampered))
        #expect(e.message.contains("hash_mismatch"))

        let other = TrustedKey(Curve25519.Signing.PrivateKey().publicKey)
        guard case .failure(let u) = load(Paths.model("mlp.onnx"), keys: [other]) else { Issue.record("untrusted key accepted"); return }
        #expect(u.code == "MODEL_UNTRUSTED_KEY")

        try Data(TestModels.bytes("mlp.onnx")).write(to: URL(fileURLWithPath: dir.path("unsigned.onnx")))
        guard case .failure(let n) = load(dir.path("unsigned.onnx")) else { Issue.record("unsigned model accepted"); return }
        #expect(n.code == "MODEL_NO_MANIFEST" && n.attempted.name == "unknown")

        guard case .failure(let missing) = load(dir.path("nothing.onnx")) else { Issue.record("missing model"); return }
        #expect(missing.code == "MODEL_UNREADABLE")

        let garbage = try TestModels.install([1, 2, 3, 4], version: "3.0.0", at: dir.path("garbage.onnx"))
        guard case .failure(let g) = load(garbage) else { Issue.record("garbage loaded"); return }
        #expect(g.code == "MODEL_LOAD_FAILED" && g.deployResult == .failed)
    }

    @Test func aModelThatFailsItsSmokeInferenceIsRolledBack() throws {
        let dir = TempDir()
        let path = try TestModels.install(TestModels.nanModel, name: "nan", version: "9.0.0", at: dir.path("nan.onnx"))
        guard case .failure(let e) = load(path) else { Issue.record("NaN model passed its smoke test"); return }
        #expect(e.stage == .smoke && e.code == "MODEL_SMOKE_FAILED" && e.deployResult == .rolledBack)
    }

    @Test func lastGoodModelIsVerifiedAgainWhenUsed() throws {
        let dir = TempDir()
        let keep = LastGoodModel(bufferPath: dir.path("b.db"))
        #expect(keep.load(trustedKeys: [TestModels.testKey]) == nil)
        let m = try load(Paths.model("mlp.onnx")).get()
        try keep.store(m)
        #expect(keep.load(trustedKeys: [TestModels.testKey])?.info == m.info)
        #expect(keep.stored()?.version == "1.0.0")
        var bytes = m.bytes
        bytes[100] ^= 1
        try Data(bytes).write(to: URL(fileURLWithPath: keep.modelPath))
        #expect(keep.load(trustedKeys: [TestModels.testKey]) == nil)
    }

    @Test func labels() {
        #expect(ModelLoader.label("1.4.0+rc1") == "1.4.0+rc1")
        #expect(ModelLoader.label("._v1") == "v1")
        #expect(ModelLoader.label("a b/c") == "abc")
        #expect(ModelLoader.label("...") == "unknown")
        #expect(ModelLoader.label(String(repeating: "x", count: 100)).count == 64)
        #expect(ModelLoader.defaultManifestPath(for: "/m/x.onnx") == "/m/x.manifest.json")
        #expect(ModelLoader.defaultManifestPath(for: "/m/x.bin") == "/m/x.bin.manifest.json")
    }
}
