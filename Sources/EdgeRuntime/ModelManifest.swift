import Crypto
import Foundation

/// The manifest a model ships with: what it is, the SHA-256 of its exact .onnx bytes, and an
/// Ed25519 signature by a publisher key over the canonical manifest bytes.
///
/// On disk it is JSON (`{"schema": "fleetwatch.model-manifest/1", "name", "version",
/// "sha256", "key_id", "signature"}`); the signed bytes are `canonicalBytes`, one `key=value`
/// line per field in a fixed order, so no JSON canonicalization is involved.
public struct ModelManifest: Sendable, Equatable, Codable {
    public static let schemaID = "fleetwatch.model-manifest/1"

    public var schema: String
    public var name: String
    public var version: String
    /// Lowercase hex SHA-256 of the model file.
    public var sha256: String
    /// The signing key's id: the first 16 hex digits of SHA-256(raw public key).
    public var keyID: String
    /// Base64 Ed25519 signature over `canonicalBytes`.
    public var signature: String

    enum CodingKeys: String, CodingKey {
        case schema, name, version, sha256, signature
        case keyID = "key_id"
    }

    /// The bytes that are signed:
    /// `fleetwatch.model-manifest/1\nname=N\nversion=V\nsha256=H\nkey_id=K\n`.
    public var canonicalBytes: [UInt8] {
        Array("\(Self.schemaID)\nname=\(name)\nversion=\(version)\nsha256=\(sha256)\nkey_id=\(keyID)\n".utf8)
    }

    /// Parses and checks the manifest's form (not yet its signature).
    public static func parse(_ bytes: [UInt8]) throws(IntegrityError) -> ModelManifest {
        let m: ModelManifest
        do {
            m = try JSONDecoder().decode(ModelManifest.self, from: Data(bytes))
        } catch {
            throw IntegrityError(.malformedManifest, "the manifest is not valid JSON with schema, name, version, sha256, key_id and signature")
        }
        guard m.schema == schemaID else {
            throw IntegrityError(.malformedManifest, "manifest schema is '\(m.schema)', expected '\(schemaID)'")
        }
        let token = { (s: String) in !s.isEmpty && s.count <= 128 && s.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "._+-".unicodeScalars.contains($0)) } }
        let hex = { (s: String, n: Int) in s.count == n && s.unicodeScalars.allSatisfy { "0123456789abcdef".unicodeScalars.contains($0) } }
        guard token(m.name), token(m.version) else {
            throw IntegrityError(.malformedManifest, "manifest name and version must be 1-128 characters of A-Z a-z 0-9 . _ + -")
        }
        guard hex(m.sha256, 64) else { throw IntegrityError(.malformedManifest, "manifest sha256 must be 64 lowercase hex digits") }
        guard hex(m.keyID, 16) else { throw IntegrityError(.malformedManifest, "manifest key_id must be 16 lowercase hex digits") }
        return m
    }

    /// Makes and signs a manifest for `model` (publishing tools and tests).
    public static func signed(name: String, version: String, model: [UInt8], key: Curve25519.Signing.PrivateKey) throws -> ModelManifest {
        var m = ModelManifest(
            schema: schemaID, name: name, version: version, sha256: hexString(SHA256.hash(data: model)),
            keyID: TrustedKey(key.publicKey).id, signature: "")
        m.signature = try key.signature(for: m.canonicalBytes).base64EncodedString()
        return m
    }

    /// The manifest as JSON (what `parse` reads).
    public func json() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array((try? encoder.encode(self)) ?? Data())
    }
}

/// A publisher key the device trusts.
public struct TrustedKey: Sendable {
    public let key: Curve25519.Signing.PublicKey
    /// First 16 hex digits of SHA-256(raw public key), as in manifests.
    public let id: String

    public init(_ key: Curve25519.Signing.PublicKey) {
        self.key = key
        id = String(hexString(SHA256.hash(data: key.rawRepresentation)).prefix(16))
    }

    /// A key from the 64 hex digits of its raw 32 bytes (the `.pub.hex` file format).
    public init(hex: String) throws(IntegrityError) {
        let s = hex.trimmingCharacters(in: .whitespacesAndNewlines)
        var bytes: [UInt8] = []
        var i = s.startIndex
        while i < s.endIndex, let j = s.index(i, offsetBy: 2, limitedBy: s.endIndex), let b = UInt8(s[i..<j], radix: 16) {
            bytes.append(b)
            i = j
        }
        guard i == s.endIndex, bytes.count == 32, let key = try? Curve25519.Signing.PublicKey(rawRepresentation: bytes) else {
            throw IntegrityError(.malformedKey, "a trusted key must be 64 hex digits (a raw Ed25519 public key)")
        }
        self.init(key)
    }
}

/// Why a model was refused. Each message says what failed.
public struct IntegrityError: Error, Equatable, CustomStringConvertible, Sendable {
    public enum Reason: String, Sendable, Equatable {
        case malformedManifest = "malformed_manifest"
        case malformedKey = "malformed_key"
        /// The manifest was signed by a key the device does not trust.
        case unknownKey = "unknown_key"
        /// The signature does not verify: the manifest was altered or not signed by that key.
        case badSignature = "bad_signature"
        /// The model bytes are not the ones the manifest describes.
        case hashMismatch = "hash_mismatch"
    }

    public var reason: Reason
    public var message: String

    public init(_ reason: Reason, _ message: String) {
        self.reason = reason
        self.message = message
    }

    public var description: String { message }
}

public enum ModelIntegrity {
    /// Verifies, in order: the signing key is trusted, the signature covers this manifest,
    /// and the model bytes hash to the manifest's sha256. Throws the first failure.
    public static func verify(model: [UInt8], manifest: ModelManifest, trustedKeys: [TrustedKey]) throws(IntegrityError) {
        guard let trusted = trustedKeys.first(where: { $0.id == manifest.keyID }) else {
            throw IntegrityError(.unknownKey, "model '\(manifest.name)' \(manifest.version) is signed by key \(manifest.keyID), which is not among the \(trustedKeys.count) trusted key(s)")
        }
        guard let signature = Data(base64Encoded: manifest.signature), signature.count == 64,
            trusted.key.isValidSignature(signature, for: manifest.canonicalBytes)
        else {
            throw IntegrityError(.badSignature, "the manifest signature of model '\(manifest.name)' \(manifest.version) does not verify with key \(manifest.keyID): the manifest was altered or signed by another key")
        }
        let digest = hexString(SHA256.hash(data: model))
        guard digest == manifest.sha256 else {
            throw IntegrityError(.hashMismatch, "model '\(manifest.name)' \(manifest.version): the model file's sha256 is \(digest), the signed manifest says \(manifest.sha256)")
        }
    }
}

func hexString<D: Sequence>(_ bytes: D) -> String where D.Element == UInt8 {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 15)])
    }
    return String(decoding: out, as: UTF8.self)
}
