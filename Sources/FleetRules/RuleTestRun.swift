import FleetCore

// MARK: - Series -> telemetry

extension SeriesSpec {
    public static let defaultInferences: Int64 = 100
    public static let defaultLatencyMs = 20.0
    public static let defaultConfidence = 0.9
    public static let defaultTempC = 50.0
}

/// Turns a test case's series into telemetry messages and its checks into an evaluation plan.
/// Pure: the runner writes the messages through the real StoreWriter and steps the real engine.
public enum RuleTestPlan {
    /// Every message of the case, oldest first; per device, seq 1, 2, ... in time order
    /// (a device may appear in several series, e.g. before and after an upgrade). A step where
    /// every list is `_` or has ended sends nothing: the device is silent.
    public static func messages(_ t: RuleTestCase) -> [TelemetryMessage] {
        var out: [(Int64, Int, TelemetryMessage)] = []
        var order = 0
        for s in t.series {
            for device in s.devices {
                for i in 0..<s.steps {
                    let ts = t.startMs + s.fromMs + Int64(i) * s.everyMs
                    let records = records(s, i, ts: ts, device: device)
                    guard !records.isEmpty else { continue }
                    let m = TelemetryMessage(
                        schemaVersion: 2, deviceID: device, seq: 0, sentAtMs: ts,
                        device: DeviceInfo(sku: s.sku, firmware: s.firmware, agent: "test", accelerator: s.accelerator),
                        model: ModelInfo(name: s.modelName, version: s.modelVersion, sha256: String(repeating: "0", count: 64)),
                        records: records)
                    out.append((ts, order, m))
                    order += 1
                }
            }
        }
        out.sort { ($0.0, $0.1) < ($1.0, $1.1) }
        var seq: [String: Int64] = [:]
        return out.map { _, _, m in
            var m = m
            let n = (seq[m.deviceID] ?? 0) + 1
            seq[m.deviceID] = n
            m.seq = n
            return m
        }
    }

    /// A status-topic message of a test case (`status:` in a series).
    public struct StatusEvent: Sendable, Equatable {
        public var tsMs: Int64
        public var deviceID: String
        public var online: Bool
    }

    /// Every status event of the case, oldest first.
    public static func statuses(_ t: RuleTestCase) -> [StatusEvent] {
        var out: [(Int, StatusEvent)] = []
        for s in t.series {
            for device in s.devices {
                for i in 0..<s.status.count {
                    guard let online = at(s.status, i) else { continue }
                    out.append((out.count, StatusEvent(tsMs: t.startMs + s.fromMs + Int64(i) * s.everyMs, deviceID: device, online: online)))
                }
            }
        }
        return out.sorted { ($0.1.tsMs, $0.0) < ($1.1.tsMs, $1.0) }.map(\.1)
    }

    static func at<T>(_ list: [T?], _ i: Int) -> T? { i < list.count ? list[i] : nil }

    static func records(_ s: SeriesSpec, _ i: Int, ts: Int64, device: String) -> [TelemetryRecord] {
        var out: [TelemetryRecord] = []
        let count = at(s.inferences, i)
        let errors = at(s.errors, i)
        let latency = at(s.latencyMs, i)
        let confidence = at(s.confidence, i)
        let classes = at(s.classes, i)
        if count != nil || errors != nil || latency != nil || confidence != nil || classes != nil {
            let n = count ?? SeriesSpec.defaultInferences
            let e = min(errors ?? 0, n)
            let ok = n - e
            var sketch = DDSketch()
            if ok > 0 { sketch.insert((latency ?? SeriesSpec.defaultLatencyMs) * 1000, times: ok) }
            var hist = [Int64](repeating: 0, count: InferenceRecord.histogramBins)
            hist[InferenceRecord.confidenceBin(confidence ?? SeriesSpec.defaultConfidence)] = ok
            let shares = classes ?? [SeriesSpec.ClassShare(name: "ok", count: nil)]
            let counts = shares.map { ClassCount(name: $0.name, count: $0.count ?? ok) }
            out.append(.inference(InferenceRecord(tsMs: ts, windowMs: s.everyMs, count: n, errors: e, latencyUs: sketch, confidenceHist: hist, classCounts: counts)))
        }
        let temp = at(s.tempC, i)
        let throttle = at(s.throttle, i)
        if temp != nil || throttle != nil {
            out.append(.resources(ResourcesRecord(tsMs: ts, cpuPct: 50, memMB: 1000, tempC: temp ?? SeriesSpec.defaultTempC, throttleEvents: throttle ?? 0)))
        }
        if let sessions = at(s.sessions, i) {
            for (k, status) in sessions.enumerated() {
                out.append(.session(SessionRecord(tsMs: ts, sessionID: "\(device)-\(i)-\(k)", status: status, durationMs: status == .started ? 0 : s.everyMs, errors: 0)))
            }
        }
        if let d = at(s.deploys, i) {
            let to = d.toVersion ?? s.modelVersion
            out.append(.deploy(DeployRecord(tsMs: ts, fromVersion: d.toVersion == nil ? "previous" : s.modelVersion, toVersion: to, result: d.result)))
        }
        return out
    }

    /// The evaluation times of `groups` from `startMs` up to `endMs`: each group every its
    /// interval from `startMs`, merged (the engine evaluates only the groups due at each).
    public static func evaluationTimes(intervals: [Int64], startMs: Int64, endMs: Int64) -> [Int64] {
        var times = Set<Int64>()
        for step in Set(intervals) where step > 0 {
            var t = startMs
            while t <= endMs {
                times.insert(t)
                t += step
            }
        }
        return times.sorted()
    }
}

// MARK: - Checking

/// An alert instance as the runner saw it at a check time.
public struct ObservedAlert: Sendable, Equatable {
    public var labels: [String: String]
    public var state: AlertPhase
    public var value: Double?
    public var annotations: [String: String]

    public init(labels: [String: String], state: AlertPhase, value: Double?, annotations: [String: String]) {
        self.labels = labels
        self.state = state
        self.value = value
        self.annotations = annotations
    }
}

public enum RuleTestCheck {
    /// Compares the expected alerts of one name at one time with what the engine has.
    ///
    /// An alert is identified by its labels other than `alertname`, `severity` and the rule's own
    /// `labels` (`constant`): those must be written exactly. Constant labels are compared only
    /// where the test writes them. Pending and firing alerts must match exactly (none missing,
    /// none extra); a `resolved` expectation must find a resolved alert, but resolved alerts that
    /// are not listed are not reported (they linger 15 minutes). `value` is compared to 1e-9
    /// (relative), annotations where written. Returns diff lines (`- expected`, `+ got`); empty
    /// when it matches.
    public static func diff(_ expected: [ExpectedAlert], observed: [ObservedAlert], constant: Set<String>) -> [String] {
        let fixed = constant.union(["alertname", "severity"])
        func identity(_ l: [String: String]) -> [String: String] { l.filter { !fixed.contains($0.key) } }
        var lines: [String] = []
        var matched = Set<Int>()
        for x in expected {
            let id = identity(x.labels)
            let candidates = observed.indices.filter { !matched.contains($0) && identity(observed[$0].labels) == id }
            guard let i = candidates.first(where: { observed[$0].state == x.state }) ?? candidates.first else {
                lines.append("- " + describe(x.labels, x.state, x.value))
                continue
            }
            matched.insert(i)
            let o = observed[i]
            var problems: [String] = []
            if o.state != x.state { problems.append("state") }
            for (k, v) in x.labels where fixed.contains(k) && o.labels[k] != v { problems.append("label \(k)") }
            if let v = x.value, !close(v, o.value) { problems.append("value") }
            for (k, v) in x.annotations.sorted(by: { $0.key < $1.key }) where o.annotations[k] != v {
                problems.append("annotation \(k): expected \"\(v)\", got \"\(o.annotations[k] ?? "")\"")
            }
            if !problems.isEmpty {
                lines.append("- " + describe(x.labels, x.state, x.value))
                lines.append("+ " + describe(o.labels.filter { x.labels[$0.key] != nil || !fixed.contains($0.key) }, o.state, o.value) + "  (\(problems.joined(separator: "; ")))")
            }
        }
        for (i, o) in observed.enumerated() where !matched.contains(i) && o.state != .resolved {
            lines.append("+ " + describe(identity(o.labels), o.state, o.value))
        }
        return lines
    }

    static func close(_ a: Double, _ b: Double?) -> Bool {
        guard let b else { return false }
        return abs(a - b) <= 1e-9 * max(1, abs(a), abs(b))
    }

    /// `firing {model_version="1.5.0", sku="orin"} value=0.96`
    public static func describe(_ labels: [String: String], _ state: AlertPhase, _ value: Double?) -> String {
        let l = labels.sorted { $0.key < $1.key }.map { "\($0.key)=\"\($0.value)\"" }.joined(separator: ", ")
        let v = value.map { " value=" + AlertTemplate.format($0) } ?? ""
        return "\(state.rawValue) {\(l)}\(v)"
    }
}
