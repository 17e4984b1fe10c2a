/// The version both binaries report.
public enum FleetVersion {
    public static let string = "0.1.0"
}
