import ArgumentParser
import FleetCore
import Foundation

/// `--db PATH`, shared by every command that reads or writes a database.
struct DatabaseOption: ParsableArguments {
    @Option(name: .long, help: "Path of the SQLite database.")
    var db: String
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json, csv
}

/// A time window: `--since DUR` back from `--until` (default now), or `--from`/`--until`.
struct WindowOptions: ParsableArguments {
    @Option(help: "How far back from --until (Prometheus duration: 30m, 24h, 7d).")
    var since: String?

    @Option(help: "Start of the window (RFC 3339 or epoch ms); instead of --since.")
    var from: String?

    @Option(help: "End of the window: RFC 3339, epoch ms, 'now' (default) or 'latest' (the newest data in the database).")
    var until: String = "now"

    /// Resolves to `[fromMs, toMs)`. `latest` asks the database.
    func resolve(defaultSince: String, latest: () throws -> Int64?) throws -> (Int64, Int64) {
        let to: Int64
        switch until {
        case "now": to = nowMs()
        case "latest": to = (try latest()).map { $0 + 1 } ?? nowMs()
        default:
            guard let t = parseTime(until) else { throw ValidationError("--until: '\(until)' is not RFC 3339, epoch ms, 'now' or 'latest'") }
            to = t
        }
        if let from {
            guard let f = parseTime(from) else { throw ValidationError("--from: '\(from)' is not RFC 3339 or epoch ms") }
            guard f < to else { throw ValidationError("--from must be before --until") }
            return (f, to)
        }
        let text = since ?? defaultSince
        guard let d = PromDuration.parseMs(text), d > 0 else { throw ValidationError("--since: '\(text)' is not a duration like 30m, 24h or 7d") }
        return (to - d, to)
    }
}

func nowMs() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }

/// RFC 3339 (with or without fractional seconds) or integer epoch milliseconds.
func parseTime(_ text: String) -> Int64? {
    if let ms = Int64(text) { return ms }
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    if let d = f.date(from: text) { return Int64((d.timeIntervalSince1970 * 1000).rounded()) }
    f.formatOptions = [.withInternetDateTime]
    if let d = f.date(from: text) { return Int64((d.timeIntervalSince1970 * 1000).rounded()) }
    return nil
}

/// RFC 3339 in UTC with milliseconds.
func rfc3339(_ ms: Int64) -> String {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    f.timeZone = TimeZone(identifier: "UTC")
    return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
}

/// One clear line on stderr, then exit 1 (a reported problem, CONTRACTS section 7).
func fail(_ message: String) -> ExitCode {
    printError("fleetwatch: " + message)
    return ExitCode(1)
}
