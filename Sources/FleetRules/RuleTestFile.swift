import FleetCore
import Foundation  // string matching and RFC 3339 parsing only; no I/O
import Yams

/// A `fleetwatch rules test` file (promtool `test rules` style, docs/rules.md "Unit tests"):
/// the rules files under test, then test cases, each with hand-written telemetry series and the
/// alerts expected at given times. Parsed by a pure function that reports every problem with
/// file:line:column.
public struct RuleTestFile: Sendable, Equatable {
    /// As written: relative paths are relative to the test file.
    public var ruleFiles: [String]
    public var tests: [RuleTestCase]
}

public struct RuleTestCase: Sendable, Equatable {
    public var name: String
    /// Where the case starts in the file (for messages).
    public var line: Int
    /// Time zero of the case (epoch ms); series offsets and `at` count from here.
    public var startMs: Int64
    public var series: [SeriesSpec]
    /// In the order written.
    public var checks: [AlertCheck]

    /// Default time zero: 2025-01-01T00:00:00Z.
    public static let defaultStartMs: Int64 = 1_735_689_600_000
}

/// One compact telemetry series: devices with the same labels, one message every `everyMs`
/// from `fromMs`, whose records come from per-kind value lists (index i = the i-th message).
public struct SeriesSpec: Sendable, Equatable {
    public var devices: [String]
    public var modelName = "model"
    public var modelVersion = "1.0.0"
    public var sku = "sku"
    public var firmware = "1.0.0"
    public var accelerator = "cpu"
    public var fromMs: Int64 = 0
    public var everyMs: Int64 = 60_000
    /// nil at an index: no record of that kind in that message (`_`).
    public var sessions: [[SessionStatus]?] = []
    public var inferences: [Int64?] = []
    public var errors: [Int64?] = []
    public var latencyMs: [Double?] = []
    public var confidence: [Double?] = []
    /// Class name and count (nil: every successful inference of the message).
    public var classes: [[ClassShare]?] = []
    public var tempC: [Double?] = []
    public var throttle: [Int64?] = []
    public var deploys: [DeploySpec?] = []
    /// The device's status topic at that step: true online, false offline (a will); not a
    /// telemetry message.
    public var status: [Bool?] = []

    public struct ClassShare: Sendable, Equatable {
        public var name: String
        public var count: Int64?
    }

    public struct DeploySpec: Sendable, Equatable {
        public var result: DeployResult
        /// The version being deployed (default: the series' model_version).
        public var toVersion: String?
    }

    /// How many messages the longest list makes.
    public var steps: Int {
        [sessions.count, inferences.count, errors.count, latencyMs.count, confidence.count, classes.count, tempC.count, throttle.count, deploys.count, status.count].max() ?? 0
    }
}

/// The alerts of one alert name expected at one time.
public struct AlertCheck: Sendable, Equatable {
    public var atMs: Int64
    public var alertname: String
    public var expected: [ExpectedAlert]
    public var line: Int
}

public struct ExpectedAlert: Sendable, Equatable {
    public var labels: [String: String]
    public var state: AlertPhase
    public var value: Double?
    public var annotations: [String: String]
}

// MARK: - Parsing

public enum RuleTestParser {
    public static func parse(_ text: String, file: String) -> Result<RuleTestFile, RuleErrors> {
        var w = Walker(file: file)
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let e as YamlError {
            return .failure(RuleErrors(errors: [w.yamlError(e)]))
        } catch {
            return .failure(RuleErrors(errors: [RuleError(file: file, line: 1, column: 1, message: "\(error)")]))
        }
        guard let root else {
            return .failure(RuleErrors(errors: [RuleError(file: file, line: 1, column: 1, message: "the file is empty: expected 'rule_files' and 'tests'")]))
        }
        let result = w.testFile(root)
        let sorted = w.errors.enumerated().sorted { ($0.element.line, $0.element.column, $0.offset) < ($1.element.line, $1.element.column, $1.offset) }.map(\.element)
        return sorted.isEmpty ? .success(result) : .failure(RuleErrors(errors: sorted))
    }

    /// `cam-{1..3}` -> cam-1, cam-2, cam-3 (one range per name; no braces: the name itself).
    public static func expandDevices(_ pattern: String) -> [String]? {
        guard let open = pattern.firstIndex(of: "{") else { return [pattern] }
        guard let close = pattern[open...].firstIndex(of: "}") else { return nil }
        let inner = pattern[pattern.index(after: open)..<close]
        guard let dots = inner.range(of: ".."), let a = Int(inner[..<dots.lowerBound]), let b = Int(inner[dots.upperBound...]),
              a <= b, b - a < 100_000 else { return nil }
        let head = pattern[..<open]
        let tail = pattern[pattern.index(after: close)...]
        if tail.contains("{") { return nil }
        return (a...b).map { "\(head)\($0)\(tail)" }
    }

    /// Expands a value list: space-separated tokens, `_` for nothing, `VALUExN` or `VALUE xN`
    /// for N repetitions. Each value goes through `value` (nil: not understood).
    public static func expand<T>(_ text: String, _ value: (String) -> T?) -> Result<[T?], ValueError> {
        var out: [T?] = []
        var last: T??
        for token in text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init) {
            if let n = repetition(token) {
                guard let l = last else { return .failure(ValueError("'\(token)' repeats nothing: write it after a value (exited x50)")) }
                out += Array(repeating: l, count: n - 1)
                last = nil
                continue
            }
            if token.hasPrefix("x"), token.count > 1, token.dropFirst().allSatisfy(\.isNumber) {
                return .failure(ValueError("'\(token)': a repetition is x1 to x1000000"))
            }
            var body = token
            var times = 1
            if let r = token.range(of: #"x[0-9]+$"#, options: .regularExpression), r.lowerBound > token.startIndex {
                body = String(token[..<r.lowerBound])
                guard let n = Int(token[token.index(after: r.lowerBound)...]), n >= 1, n <= 1_000_000 else { return .failure(ValueError("'\(token)': a repetition is x1 to x1000000")) }
                times = n
            }
            let v: T?
            if body == "_" {
                v = nil
            } else {
                guard let parsed = value(body) else { return .failure(ValueError("'\(body)' is not a valid value here")) }
                v = parsed
            }
            out += Array(repeating: v, count: times)
            last = times == 1 ? .some(v) : nil
        }
        return .success(out)
    }

    public struct ValueError: Error, Equatable {
        public var message: String
        init(_ m: String) { message = m }
    }

    static func repetition(_ token: String) -> Int? {
        guard token.hasPrefix("x"), let n = Int(token.dropFirst()), n >= 1, n <= 1_000_000 else { return nil }
        return n
    }

    // MARK: Value kinds

    /// `exited`, `crashed`, `9*exited+crashed`.
    static func status(_ s: String) -> Bool? {
        switch s {
        case "online": return true
        case "offline": return false
        default: return nil
        }
    }

    static func sessions(_ s: String) -> [SessionStatus]? {
        var out: [SessionStatus] = []
        for part in s.split(separator: "+", omittingEmptySubsequences: false) {
            let pieces = part.split(separator: "*", omittingEmptySubsequences: false)
            let n: Int
            let name: Substring
            if pieces.count == 2 {
                guard let k = Int(pieces[0]), k >= 1, k <= 1000 else { return nil }
                n = k
                name = pieces[1]
            } else if pieces.count == 1 {
                n = 1
                name = pieces[0]
            } else {
                return nil
            }
            guard let status = SessionStatus(rawValue: String(name)) else { return nil }
            out += Array(repeating: status, count: n)
        }
        return out.isEmpty ? nil : out
    }

    /// `ok`, `ok:90+defect:10`.
    static func classes(_ s: String) -> [SeriesSpec.ClassShare]? {
        var out: [SeriesSpec.ClassShare] = []
        for part in s.split(separator: "+", omittingEmptySubsequences: false) {
            let kv = part.split(separator: ":", omittingEmptySubsequences: false)
            guard let name = kv.first, !name.isEmpty, kv.count <= 2 else { return nil }
            if kv.count == 2 {
                guard let n = Int64(kv[1]), n >= 0 else { return nil }
                out.append(.init(name: String(name), count: n))
            } else {
                out.append(.init(name: String(name), count: nil))
            }
        }
        return out
    }

    /// `installed`, `rolled_back`, `failed`, optionally `@VERSION` (the version deployed).
    static func deploy(_ s: String) -> SeriesSpec.DeploySpec? {
        let parts = s.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false)
        guard let result = DeployResult(rawValue: String(parts[0])) else { return nil }
        if parts.count == 2 {
            guard !parts[1].isEmpty else { return nil }
            return .init(result: result, toVersion: String(parts[1]))
        }
        return .init(result: result, toVersion: nil)
    }

    static func count(_ s: String) -> Int64? {
        guard let n = Int64(s), n >= 0 else { return nil }
        return n
    }

    static func number(_ s: String) -> Double? {
        guard let d = Double(s), d.isFinite else { return nil }
        return d
    }

    static func confidence(_ s: String) -> Double? {
        guard let d = Double(s), d >= 0, d <= 1 else { return nil }
        return d
    }
}

extension Walker {
    mutating func testFile(_ root: Node) -> RuleTestFile {
        var out = RuleTestFile(ruleFiles: [], tests: [])
        guard let top = entries(root, "the test file", allowed: ["rule_files", "tests"]) else { return out }
        var sawRules = false
        var sawTests = false
        for (key, _, value) in top {
            if key == "rule_files" {
                sawRules = true
                out.ruleFiles = stringList(value, "rule_files") ?? []
                if out.ruleFiles.isEmpty { error(value, "rule_files: name at least one rules file") }
            } else {
                sawTests = true
                guard case .sequence(let seq) = value else {
                    error(value, "tests must be a list")
                    continue
                }
                var names = Set<String>()
                for n in seq {
                    guard let t = testCase(n) else { continue }
                    if !names.insert(t.name).inserted { error(n, "duplicate test name '\(t.name)'") }
                    out.tests.append(t)
                }
            }
        }
        if !sawRules { error(root, "missing 'rule_files' (the alerts.yaml under test, relative to this file)") }
        if !sawTests { error(root, "missing 'tests'") }
        return out
    }

    mutating func testCase(_ node: Node) -> RuleTestCase? {
        guard let e = entries(node, "test", allowed: ["name", "start", "series", "alerts"]) else { return nil }
        var t = RuleTestCase(name: "", line: node.mark?.line ?? 1, startMs: RuleTestCase.defaultStartMs, series: [], checks: [])
        var listedChecks = 0
        for (key, _, value) in e {
            switch key {
            case "name": t.name = string(value, "name") ?? ""
            case "start":
                guard let s = string(value, "start") else { continue }
                if let ms = Self.rfc3339(s) { t.startMs = ms } else { error(value, "start: '\(s)' is not an RFC 3339 time (2025-11-29T12:00:00Z) or epoch ms") }
            case "series":
                guard case .sequence(let seq) = value else {
                    error(value, "series must be a list")
                    continue
                }
                for n in seq { if let s = series(n) { t.series.append(s) } }
            default:
                guard case .sequence(let seq) = value else {
                    error(value, "alerts must be a list")
                    continue
                }
                listedChecks += seq.count
                for n in seq { if let c = check(n) { t.checks.append(c) } }
            }
        }
        if t.name.isEmpty { error(node, "a test needs a name") }
        if listedChecks == 0 { error(node, "test '\(t.name)' has no alerts to check") }
        return t
    }

    static let seriesKeys: Set<String> = [
        "device", "model_name", "model_version", "sku", "firmware", "accelerator", "from", "every",
        "sessions", "inferences", "errors", "latency_ms", "confidence", "classes", "temp_c", "throttle", "deploys", "status",
    ]

    mutating func series(_ node: Node) -> SeriesSpec? {
        guard let e = entries(node, "series", allowed: Self.seriesKeys) else { return nil }
        var s = SeriesSpec(devices: [])
        func list<T>(_ v: Node, _ key: String, _ parse: (String) -> T?, hint: String) -> [T?] {
            guard let text = string(v, key) else { return [] }
            switch RuleTestParser.expand(text, parse) {
            case .success(let values): return values
            case .failure(let why):
                error(v, "\(key): \(why.message) (\(hint))")
                return []
            }
        }
        for (key, _, v) in e {
            switch key {
            case "device":
                guard let d = string(v, "device") else { continue }
                guard let ids = RuleTestParser.expandDevices(d), ids.allSatisfy(Self.isDeviceID) else {
                    error(v, "device '\(d)' is not a device id (^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$), optionally with one range like cam-{1..20}")
                    continue
                }
                s.devices = ids
            case "model_name": s.modelName = string(v, key) ?? s.modelName
            case "model_version": s.modelVersion = string(v, key) ?? s.modelVersion
            case "sku": s.sku = string(v, key) ?? s.sku
            case "firmware": s.firmware = string(v, key) ?? s.firmware
            case "accelerator": s.accelerator = string(v, key) ?? s.accelerator
            case "from": s.fromMs = duration(v, "from") ?? 0
            case "every":
                if let d = duration(v, "every") {
                    if d < 1000 { error(v, "every must be at least 1s") } else { s.everyMs = d }
                }
            case "sessions": s.sessions = list(v, key, RuleTestParser.sessions, hint: "per message: exited, crashed, abnormal, started or counts like 9*exited+crashed")
            case "inferences": s.inferences = list(v, key, RuleTestParser.count, hint: "per message: a count >= 0")
            case "errors": s.errors = list(v, key, RuleTestParser.count, hint: "per message: failed inferences >= 0")
            case "latency_ms": s.latencyMs = list(v, key, RuleTestParser.number, hint: "per message: milliseconds")
            case "confidence": s.confidence = list(v, key, RuleTestParser.confidence, hint: "per message: the top-1 confidence in [0, 1]")
            case "classes": s.classes = list(v, key, RuleTestParser.classes, hint: "per message: ok, or ok:90+defect:10")
            case "temp_c": s.tempC = list(v, key, RuleTestParser.number, hint: "per message: degrees C")
            case "throttle": s.throttle = list(v, key, RuleTestParser.count, hint: "per message: throttle events >= 0")
            case "status": s.status = list(v, key, RuleTestParser.status, hint: "per step: online or offline (the status topic, e.g. a will)")
            default: s.deploys = list(v, key, RuleTestParser.deploy, hint: "per message: installed, rolled_back or failed, optionally @VERSION")
            }
        }
        if s.devices.isEmpty {
            if !e.contains(where: { $0.0 == "device" }) { error(node, "a series needs a device") }
            return nil
        }
        for i in 0..<s.steps {
            let n = i < s.inferences.count ? s.inferences[i] ?? nil : nil
            let errs = i < s.errors.count ? s.errors[i] ?? nil : nil
            if let errs, errs > (n ?? SeriesSpec.defaultInferences) {
                error(node, "series \(s.devices[0]): message \(i + 1) has more errors (\(errs)) than inferences (\(n ?? SeriesSpec.defaultInferences))")
                break
            }
        }
        return s
    }

    mutating func check(_ node: Node) -> AlertCheck? {
        guard let e = entries(node, "alerts entry", allowed: ["at", "alertname", "expect"]) else { return nil }
        var at: Int64?
        var name: String?
        var expected: [ExpectedAlert] = []
        var sawExpect = false
        for (key, _, v) in e {
            switch key {
            case "at": at = duration(v, "at")
            case "alertname": name = string(v, "alertname")
            default:
                sawExpect = true
                if case .scalar(let sc) = v, sc.string.isEmpty || sc.string == "[]" { continue }
                guard case .sequence(let seq) = v else {
                    error(v, "expect must be a list of {labels, state} (empty: no pending or firing alert)")
                    continue
                }
                for n in seq { if let x = expectedAlert(n) { expected.append(x) } }
            }
        }
        let keys = Set(e.map(\.0))
        guard keys.isSuperset(of: ["at", "alertname", "expect"]) else {
            error(node, "an alerts entry needs at (offset from start, e.g. 10m), alertname and expect")
            return nil
        }
        guard let at, let name, sawExpect else { return nil }
        return AlertCheck(atMs: at, alertname: name, expected: expected, line: node.mark?.line ?? 1)
    }

    mutating func expectedAlert(_ node: Node) -> ExpectedAlert? {
        guard let e = entries(node, "expected alert", allowed: ["labels", "state", "value", "annotations"]) else { return nil }
        var x = ExpectedAlert(labels: [:], state: .firing, value: nil, annotations: [:])
        for (key, _, v) in e {
            switch key {
            case "labels": x.labels = stringMap(v, "labels", labelNames: true) ?? [:]
            case "state":
                guard let s = string(v, "state") else { continue }
                if let p = AlertPhase(rawValue: s) { x.state = p } else { error(v, "state '\(s)' must be pending, firing or resolved") }
            case "value": x.value = number(v, "value")
            default: x.annotations = stringMap(v, "annotations", labelNames: true) ?? [:]
            }
        }
        return x
    }

    static func isDeviceID(_ s: String) -> Bool {
        guard let f = s.unicodeScalars.first, s.unicodeScalars.count <= 64, f.isASCII, f.properties.isAlphabetic || ("0"..."9").contains(f) else { return false }
        return s.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "." || $0 == "_" || $0 == "-") }
    }

    /// RFC 3339 (with or without a fraction) or integer epoch ms.
    static func rfc3339(_ s: String) -> Int64? {
        if let ms = Int64(s) { return ms }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: s) { return Int64((d.timeIntervalSince1970 * 1000).rounded()) }
        f.formatOptions = [.withInternetDateTime]
        if let d = f.date(from: s) { return Int64((d.timeIntervalSince1970 * 1000).rounded()) }
        return nil
    }
}
