/// A change of an alert instance's phase at one evaluation: what `rules backtest` prints and
/// what `rules test` can be asked about. Pure.
public struct AlertTransition: Sendable, Equatable {
    public var atMs: Int64
    public var group: String
    public var alertname: String
    public var labels: [String: String]
    /// The phase entered: pending, firing or resolved.
    public var phase: AlertPhase
    public var value: Double?

    public init(atMs: Int64, group: String, alertname: String, labels: [String: String], phase: AlertPhase, value: Double?) {
        self.atMs = atMs
        self.group = group
        self.alertname = alertname
        self.labels = labels
        self.phase = phase
        self.value = value
    }

    /// The phase entered between two states of one instance, nil when there is nothing to report:
    /// unchanged, forgotten (a pending alert that stopped holding, a resolved one past its
    /// retention) or a new episode that starts where the old one was.
    public static func entered(from old: AlertInstance?, to new: AlertInstance?) -> AlertPhase? {
        guard let new else { return nil }
        guard let old else { return new.phase }
        if old.phase != new.phase { return new.phase }
        // Resolved, then holding again with for: 0 -> firing again in one step is a phase change
        // above; same phase with a new episode (activeAt moved) is a new firing/pending.
        return old.activeAtMs != new.activeAtMs ? new.phase : nil
    }
}
