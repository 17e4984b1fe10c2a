import Crypto

/// The SHA-256 of model bytes as 64 lowercase hex digits: the form manifests and telemetry
/// (`model.sha256`) use. Exposed so the agent can name a model it refused without linking Crypto.
public enum ModelDigest {
    public static func sha256Hex(_ bytes: [UInt8]) -> String {
        hexString(SHA256.hash(data: bytes))
    }
}
