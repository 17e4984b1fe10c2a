import Crypto
import Foundation
import Testing

@testable import EdgeRuntime

@Suite struct IntegrityTests {
    static let testKey = try! TrustedKey(hex: String(decoding: Fixtures.bytes("test-signing-key.pub.hex"), as: UTF8.self))

    func check(_ model: [UInt8], _ manifest: ModelManifest, keys: [TrustedKey] = [testKey]) -> IntegrityError.Reason? {
        do {
            try ModelIntegrity.verify(model: model, manifest: manifest, trustedKeys: keys)
            return nil
        } catch {
            return error.reason
        }
    }

    @Test(arguments: Fixtures.index)
    func fixtureManifestsVerify(_ entry: Fixtures.Entry) throws {
        let manifest = try ModelManifest.parse(Fixtures.bytes(entry.manifest))
        #expect(manifest.name == entry.name)
        #expect(check(Fixtures.bytes(entry.model), manifest) == nil)
    }

    @Test func tamperedModelIsRefused() throws {
        var model = Fixtures.bytes("mlp.onnx")
        let manifest = try ModelManifest.parse(Fixtures.bytes("mlp.manifest.json"))
        model[model.count / 2] ^= 0x01  // one bit of one weight
        #expect(check(model, manifest) == .hashMismatch)
        // The wrong (but genuinely signed) model's manifest does not cover it either.
        #expect(check(Fixtures.bytes("cnn1d.onnx"), manifest) == .hashMismatch)
    }

    @Test func tamperedManifestIsRefused() throws {
        let model = Fixtures.bytes("mlp.onnx")
        let good = try ModelManifest.parse(Fixtures.bytes("mlp.manifest.json"))
        var m = good
        m.version = "9.9.9"
        #expect(check(model, m) == .badSignature)
        m = good
        m.sha256 = try ModelManifest.signed(name: "x", version: "1", model: [1, 2, 3], key: .init()).sha256
        #expect(check([1, 2, 3], m) == .badSignature)  // pointing the hash at other bytes breaks the signature
        m = good
        var sig = Data(base64Encoded: m.signature)!
        sig[0] ^= 0x80
        m.signature = sig.base64EncodedString()
        #expect(check(model, m) == .badSignature)
        m.signature = "not base64!"
        #expect(check(model, m) == .badSignature)
    }

    @Test func unknownKeyIsRefused() throws {
        let model = Fixtures.bytes("mlp.onnx")
        let manifest = try ModelManifest.parse(Fixtures.bytes("mlp.manifest.json"))
        let other = TrustedKey(Curve25519.Signing.PrivateKey().publicKey)
        #expect(check(model, manifest, keys: [other]) == .unknownKey)
        #expect(check(model, manifest, keys: []) == .unknownKey)
        #expect(check(model, manifest, keys: [other, Self.testKey]) == nil)
        // A manifest re-signed by an untrusted key that claims the trusted key's id.
        let rogue = Curve25519.Signing.PrivateKey()
        var forged = try ModelManifest.signed(name: "mlp", version: "1.0.0", model: model, key: rogue)
        forged.keyID = Self.testKey.id
        forged.signature = try rogue.signature(for: forged.canonicalBytes).base64EncodedString()
        #expect(check(model, forged) == .badSignature)
    }

    @Test func signParseRoundTrip() throws {
        let key = Curve25519.Signing.PrivateKey()
        let model: [UInt8] = Array("model bytes".utf8)
        let m = try ModelManifest.signed(name: "anomaly-ae", version: "2.1.0+build.7", model: model, key: key)
        let parsed = try ModelManifest.parse(m.json())
        #expect(parsed == m)
        #expect(check(model, parsed, keys: [TrustedKey(key.publicKey)]) == nil)
    }

    @Test func malformedManifestsAreRejected() {
        func reason(_ text: String) -> IntegrityError.Reason? {
            do { _ = try ModelManifest.parse(Array(text.utf8)); return nil } catch { return error.reason }
        }
        #expect(reason("{}") == .malformedManifest)
        #expect(reason("not json") == .malformedManifest)
        let fields = #""name": "m", "version": "1", "sha256": "\#(String(repeating: "a", count: 64))", "key_id": "0123456789abcdef", "signature": """#
        #expect(reason(#"{"schema": "fleetwatch.model-manifest/1", \#(fields)}"#) == nil)
        #expect(reason(#"{"schema": "other/1", \#(fields)}"#) == .malformedManifest)
        #expect(reason(#"{"schema": "fleetwatch.model-manifest/1", \#(fields.replacingOccurrences(of: "\"m\"", with: "\"a\\nb\""))}"#) == .malformedManifest)
        #expect(throws: IntegrityError.self) { try TrustedKey(hex: "abcd") }
    }
}
