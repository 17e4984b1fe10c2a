import FleetCore
import FleetStore

public typealias DeviceRow = StoreReader.DeviceSummary
public typealias AlertRow = StoreReader.AlertRow

/// The columns of each table view. Cells return program text or device strings; the canvas
/// sanitises both.
public enum TableSpecs {
    // MARK: - Devices

    static let deviceFields: [String: String] = [
        "device": "device", "id": "device", "device_id": "device",
        "state": "state",
        "model": "model", "model_name": "model",
        "version": "version", "model_version": "version", "ver": "version",
        "sku": "sku",
        "firmware": "firmware", "fw": "firmware",
        "accelerator": "accel", "accel": "accel",
    ]

    static func deviceField(_ d: DeviceRow, _ f: String) -> String {
        switch f {
        case "device": d.deviceID
        case "state": d.state
        case "model": d.modelName
        case "version": d.modelVersion
        case "sku": d.sku
        case "firmware": d.firmware
        case "accel": d.accelerator
        default: ""
        }
    }

    static func stateStyle(_ state: String) -> Style {
        switch state {
        case "online": .good
        case "stale": .warn
        case "offline": .bad
        default: .plain
        }
    }

    public static let devices = TableSpec<DeviceRow>(
        columns: [
            Column("device", "DEVICE", width: 14, flex: 3, sort: { .text($0.deviceID) }, cell: { d, _, _ in (d.deviceID, .plain) }),
            Column("state", "STATE", width: 7, sort: { .text($0.state) }, cell: { d, _, _ in (d.state, stateStyle(d.state)) }),
            Column("model", "MODEL", width: 12, flex: 1, priority: 6, sort: { .text($0.modelName) }, cell: { d, _, _ in (d.modelName, .plain) }),
            Column("version", "VERSION", width: 8, flex: 1, priority: 1, sort: { .text($0.modelVersion) }, cell: { d, _, _ in (d.modelVersion, .plain) }),
            Column("sku", "SKU", width: 12, flex: 1, priority: 2, sort: { .text($0.sku) }, cell: { d, _, _ in (d.sku, .plain) }),
            Column("firmware", "FIRMWARE", width: 8, priority: 4, sort: { .text($0.firmware) }, cell: { d, _, _ in (d.firmware, .plain) }),
            Column("accel", "ACCEL", width: 5, priority: 7, sort: { .text($0.accelerator) }, cell: { d, _, _ in (d.accelerator, .plain) }),
            Column("seen", "SEEN", width: 5, right: true, priority: 1, sort: { .number(-Double($0.lastReceivedMs)) }, cell: { d, ctx, _ in
                (Format.age(ctx.nowMs - d.lastReceivedMs), .plain)
            }),
            Column("inf", "INF/S", width: 6, right: true, priority: 3, sort: { .number(Double($0.inferences)) }, cell: { d, ctx, _ in
                (d.inferences > 0 ? Format.compact(Double(d.inferences) / ctx.recentSeconds) : Format.missing, .plain)
            }),
            Column("err", "ERR%", width: 6, right: true, priority: 1, sort: { .number($0.errorRate) }, cell: { d, ctx, _ in
                (Format.percent(d.errorRate), ctx.thresholds.style("error_rate", d.errorRate))
            }),
            Column("p95", "P95ms", width: 6, right: true, priority: 1, sort: { .number($0.latencyP95Ms) }, cell: { d, ctx, _ in
                (Format.ms(d.latencyP95Ms), ctx.thresholds.style("latency_p95_ms", d.latencyP95Ms))
            }),
            Column("temp", "TEMP", width: 5, right: true, priority: 3, sort: { .number($0.tempC) }, cell: { d, _, _ in
                (Format.fixed(d.tempC, 1), (d.tempC ?? 0) >= 85 ? .bad : .plain)
            }),
            Column("cpu", "CPU%", width: 5, right: true, priority: 5, sort: { .number($0.cpuPct) }, cell: { d, _, _ in
                (Format.fixed(d.cpuPct, 0), .plain)
            }),
            Column("crashes", "CRASH", width: 5, right: true, priority: 2, sort: { .number(Double($0.crashes)) }, cell: { d, _, _ in
                (String(d.crashes), d.crashes > 0 ? .bad : .dim)
            }),
            Column("errors", "ERRS", width: 5, right: true, priority: 4, sort: { .number(Double($0.errorEvents)) }, cell: { d, _, _ in
                (String(d.errorEvents), d.errorEvents > 0 ? .warn : .dim)
            }),
            Column("seq", "SEQ", width: 8, right: true, priority: 8, sort: { .number(Double($0.lastSeq)) }, cell: { d, _, _ in
                (String(d.lastSeq), .dim)
            }),
        ],
        filterFields: deviceFields,
        fieldValue: { deviceField($0, $1) },
        searchable: { [$0.deviceID, $0.state, $0.modelName, $0.modelVersion, $0.sku, $0.firmware, $0.accelerator] },
        rowKey: { $0.deviceID })

    // MARK: - Cohorts

    static func labelTitle(_ l: String) -> String {
        switch l {
        case "model_version": "VERSION"
        case "model_name": "MODEL"
        case "accelerator": "ACCEL"
        default: l.uppercased()
        }
    }

    public static func cohorts(labels: [String]) -> TableSpec<CohortRow> {
        var cols: [Column<CohortRow>] = []
        for (i, l) in labels.enumerated() {
            cols.append(Column(l, labelTitle(l), width: 9, flex: 1, sort: { .text(i < $0.labels.count ? $0.labels[i] : "") }, cell: { r, _, _ in
                (i < r.labels.count ? r.labels[i] : "", .plain)
            }))
        }
        func num(_ id: String, _ title: String, _ w: Int, _ prio: Int, signal: String? = nil, _ v: @escaping @Sendable (SignalValues) -> Double?, _ f: @escaping @Sendable (Double?) -> String) {
            cols.append(Column(id, title, width: w, right: true, priority: prio, sort: { .number(v($0.values)) }, cell: { r, ctx, _ in
                let x = v(r.values)
                return (f(x), signal.map { ctx.thresholds.style($0, x) } ?? .plain)
            }))
        }
        num("devices", "DEVICES", 7, 0, { Double($0.devices) }, { $0.map { Format.count(Int64($0)) } ?? Format.missing })
        num("share", "SHARE", 6, 2, { $0.deviceShare }, { Format.percent($0, digits: 1) })
        num("sessions", "SESS", 6, 5, { Double($0.sessions) }, { $0.map { Format.compact($0) } ?? Format.missing })
        num("crash_free", "CRASHFREE", 9, 0, signal: "crash_free_sessions", { $0.crashFreeSessions }, { Format.percent($0) })
        num("error_rate", "ERR%", 6, 0, signal: "error_rate", { $0.errorRate }, { Format.percent($0) })
        num("p50", "P50ms", 6, 3, signal: "latency_p50_ms", { $0.latencyP50Ms }, { Format.ms($0) })
        num("p95", "P95ms", 6, 1, signal: "latency_p95_ms", { $0.latencyP95Ms }, { Format.ms($0) })
        num("psi", "PSI", 6, 2, signal: "confidence_psi", { $0.confidencePSI }, { Format.fixed($0, 3) })
        num("js", "JS", 6, 4, signal: "confidence_js", { $0.confidenceJS }, { Format.fixed($0, 3) })
        num("class_psi", "CLS-PSI", 7, 6, signal: "class_mix_psi", { $0.classMixPSI }, { Format.fixed($0, 3) })
        num("rollback", "ROLLBK", 6, 5, signal: "rollback_rate", { $0.rollbackRate }, { Format.percent($0, digits: 1) })
        cols.append(Column("spark", "LAST HOUR", width: 12, flex: 2, priority: 3, sort: { .number($0.values.errorRate) }, cell: { r, ctx, w in
            (sparkline(r.series, metric: ctx.sparkMetric, width: w, glyphs: ctx.glyphs), .accent)
        }))
        let fields = Dictionary(uniqueKeysWithValues: labels.map { ($0, $0) } + labels.compactMap { l -> (String, String)? in
            switch l {
            case "model_version": ("version", l)
            case "model_name": ("model", l)
            case "accelerator": ("accel", l)
            default: nil
            }
        })
        return TableSpec(
            columns: cols, filterFields: fields,
            fieldValue: { r, f in labels.firstIndex(of: f).map { $0 < r.labels.count ? r.labels[$0] : "" } ?? "" },
            searchable: { $0.labels },
            rowKey: { $0.labels.joined(separator: "\u{1}") })
    }

    /// One value per minute of the series (gaps as nil), for the chosen metric.
    static func sparkline(_ series: [StoreReader.MinutePoint], metric: SparkMetric, width: Int, glyphs: Glyphs) -> String {
        guard let first = series.first, let last = series.last else { return String(repeating: " ", count: width) }
        let n = Int((last.bucketMs - first.bucketMs) / 60_000) + 1
        var values = [Double?](repeating: nil, count: min(n, 24 * 60))
        for p in series {
            let i = Int((p.bucketMs - first.bucketMs) / 60_000)
            guard i < values.count else { continue }
            switch metric {
            case .errorRate: values[i] = p.errorRate
            case .p95: values[i] = p.latencyP95Ms
            case .inferences: values[i] = Double(p.inferences)
            }
        }
        return Sparkline.render(values, width: width, glyphs: glyphs, fromZero: metric != .p95)
    }

    // MARK: - Alerts

    static func alertStyle(_ a: AlertRow) -> Style {
        switch a.state {
        case "firing": a.severity == "page" || a.severity == "critical" ? .bad : Style(color: .red)
        case "pending": .warn
        default: .dim
        }
    }

    static func labelText(_ a: AlertRow) -> String {
        a.labels.filter { $0.0 != "alertname" && $0.0 != "severity" }.map { "\($0.0)=\($0.1)" }.joined(separator: " ")
    }

    static func summary(_ a: AlertRow) -> String {
        a.annotations.first { $0.0 == "summary" }?.1 ?? a.annotations.first { $0.0 == "description" }?.1 ?? ""
    }

    static let stateRank: [String: Double] = ["firing": 0, "pending": 1, "resolved": 2]

    public static let alerts = TableSpec<AlertRow>(
        columns: [
            Column("state", "STATE", width: 8, sort: { .number(stateRank[$0.state] ?? 3) }, cell: { a, _, _ in (a.state.uppercased(), alertStyle(a)) }),
            Column("alertname", "ALERT", width: 16, flex: 1, sort: { .text($0.alertname) }, cell: { a, _, _ in (a.alertname, .bold) }),
            Column("severity", "SEVERITY", width: 8, priority: 1, sort: { .text($0.severity) }, cell: { a, _, _ in (a.severity, alertStyle(a)) }),
            Column("for", "FOR", width: 7, right: true, sort: { .number(Double(-($0.firedAtMs ?? $0.activeAtMs ?? 0))) }, cell: { a, ctx, _ in
                let since = a.state == "resolved" ? a.resolvedAtMs : (a.state == "firing" ? a.firedAtMs ?? a.activeAtMs : a.activeAtMs)
                return (since.map { Format.duration(ctx.nowMs - $0) } ?? Format.missing, .plain)
            }),
            Column("value", "VALUE", width: 8, right: true, priority: 2, sort: { .number($0.value) }, cell: { a, _, _ in
                (a.value.map { abs($0) >= 100 ? Format.fixed($0, 0) : Format.fixed($0, 4) } ?? Format.missing, .plain)
            }),
            Column("labels", "LABELS", width: 18, flex: 2, priority: 1, sort: { .text(labelText($0)) }, cell: { a, _, _ in (labelText(a), .plain) }),
            Column("summary", "SUMMARY", width: 20, flex: 3, priority: 3, sort: { .text(summary($0)) }, cell: { a, _, _ in (summary(a), .plain) }),
        ],
        filterFields: ["alertname": "alertname", "alert": "alertname", "state": "state", "severity": "severity"],
        fieldValue: { a, f in f == "state" ? a.state : f == "severity" ? a.severity : a.alertname },
        searchable: { [$0.alertname, $0.state, $0.severity, labelText($0), summary($0)] },
        rowKey: { $0.alertname + "\u{1}" + $0.labels.map { $0.0 + "=" + $0.1 }.joined(separator: "\u{1}") + "\u{1}" + $0.state + String($0.activeAtMs ?? 0) })

    // MARK: - Versions

    public struct VersionRow: Sendable, Equatable {
        public var version: String
        /// Devices on this version now (registry) among those seen in the signal window.
        public var devices: Int64
        public var share: Double?
        /// Share of devices seen per slice of the versions range (oldest first).
        public var shareOverTime: [Double?]
        public var deploys: StoreReader.DeployOutcomes
        public var rollbackRate: Double? { deploys.total > 0 ? Double(deploys.rolledBack) / Double(deploys.total) : nil }
    }

    /// Version rows, newest version first.
    public static func versionRows(_ s: Snapshot) -> [VersionRow] {
        var now: [String: Int64] = [:]
        for r in s.registry where r.seenInWindow { now[r.modelVersion, default: 0] += r.devices }
        let total = now.values.reduce(0, +)
        let history = s.versions
        var perSlice: [Int] = []
        if let h = history, let n = h.devices.values.first?.count {
            perSlice = (0..<n).map { i in h.devices.values.reduce(0) { $0 + $1[i] } }
        }
        let names = Set(now.keys).union(history?.devices.keys ?? [:].keys).union(history?.deploys.keys ?? [:].keys)
        return names.sorted { SemVer.less($1, $0) }.map { v in
            let counts = history?.devices[v] ?? []
            let shares: [Double?] = counts.enumerated().map { i, c in perSlice[i] > 0 ? Double(c) / Double(perSlice[i]) : nil }
            return VersionRow(
                version: v, devices: now[v] ?? 0, share: total > 0 ? Double(now[v] ?? 0) / Double(total) : nil,
                shareOverTime: shares, deploys: history?.deploys[v] ?? StoreReader.DeployOutcomes())
        }
    }

    public static let versions = TableSpec<VersionRow>(
        columns: [
            Column("version", "VERSION", width: 10, flex: 1, sort: { .text($0.version) }, cell: { r, _, _ in (r.version, .bold) }),
            Column("devices", "DEVICES", width: 7, right: true, sort: { .number(Double($0.devices)) }, cell: { r, _, _ in (Format.count(r.devices), .plain) }),
            Column("share", "SHARE", width: 6, right: true, sort: { .number($0.share) }, cell: { r, _, _ in (Format.percent(r.share, digits: 1), .plain) }),
            Column("bar", "NOW", width: 10, flex: 1, priority: 2, sort: { .number($0.share) }, cell: { r, ctx, w in
                (Sparkline.bar(r.share, width: w, glyphs: ctx.glyphs), .accent)
            }),
            Column("trend", "SHARE, 24H", width: 12, flex: 2, priority: 1, sort: { .number($0.shareOverTime.last ?? nil) }, cell: { r, ctx, w in
                (Sparkline.render(r.shareOverTime, width: w, glyphs: ctx.glyphs, fromZero: true), .accent)
            }),
            Column("installed", "INSTALLED", width: 9, right: true, priority: 1, sort: { .number(Double($0.deploys.installed)) }, cell: { r, _, _ in
                (String(r.deploys.installed), .plain)
            }),
            Column("rolled_back", "ROLLEDBACK", width: 10, right: true, sort: { .number(Double($0.deploys.rolledBack)) }, cell: { r, _, _ in
                (String(r.deploys.rolledBack), r.deploys.rolledBack > 0 ? .warn : .plain)
            }),
            Column("failed", "FAILED", width: 6, right: true, priority: 2, sort: { .number(Double($0.deploys.failed)) }, cell: { r, _, _ in
                (String(r.deploys.failed), r.deploys.failed > 0 ? .bad : .plain)
            }),
            Column("rollback", "ROLLBK%", width: 7, right: true, sort: { .number($0.rollbackRate) }, cell: { r, ctx, _ in
                (Format.percent(r.rollbackRate, digits: 1), ctx.thresholds.style("rollback_rate", r.rollbackRate))
            }),
        ],
        filterFields: ["version": "version", "model_version": "version"],
        fieldValue: { r, _ in r.version },
        searchable: { [$0.version] },
        rowKey: { $0.version })
}
