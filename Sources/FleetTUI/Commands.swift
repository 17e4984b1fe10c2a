import FleetStore

/// `:` command mode, k9s style: `:devices`, `:cohorts`, `:alerts`, `:versions` (any unique
/// prefix), `:by LABEL[,LABEL]`, `:sort COLUMN [asc|desc]`, `:filter EXPR`, `:drill ID`,
/// `:help`, `:q`. Pure parsing; the state applies the result.
public enum Commands {
    public enum Parsed: Equatable, Sendable {
        case none
        case quit
        case help
        case show(ViewKind)
        case by([String])
        case sort(String, descending: Bool?)
        case filter(String)
        case device(String)
    }

    public struct ParseError: Error, Equatable, Sendable {
        public var message: String
    }

    /// Every command word, for completion and the help screen.
    public static let words = ["cohorts", "devices", "alerts", "versions", "by", "sort", "filter", "drill", "help", "quit"]

    /// Short forms that would otherwise be ambiguous prefixes.
    static let aliases = ["d": "devices", "dev": "devices", "c": "cohorts", "co": "cohorts", "a": "alerts", "v": "versions", "ver": "versions"]

    public static func parse(_ line: String) -> Result<Parsed, ParseError> {
        let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard let head = parts.first?.lowercased() else { return .success(.none) }
        let rest = Array(parts.dropFirst())
        if head == "q" || head == "q!" || head == "quit" || head == "exit" { return .success(.quit) }
        let matches = words.filter { $0.hasPrefix(head) }
        let word: String
        if words.contains(head) {
            word = head
        } else if let a = aliases[head] {
            word = a
        } else if matches.count == 1 {
            word = matches[0]
        } else if matches.isEmpty {
            return .failure(ParseError(message: "unknown command ':\(head)': try :\(words.joined(separator: " :"))"))
        } else {
            return .failure(ParseError(message: "ambiguous ':\(head)': \(matches.map { ":" + $0 }.joined(separator: " "))"))
        }
        switch word {
        case "cohorts": return .success(.show(.cohorts))
        case "devices": return .success(.show(.devices))
        case "alerts": return .success(.show(.alerts))
        case "versions": return .success(.show(.versions))
        case "help": return .success(.help)
        case "quit": return .success(.quit)
        case "by":
            let labels = rest.flatMap { $0.split(separator: ",").map(String.init) }.filter { !$0.isEmpty }
            guard !labels.isEmpty else { return .failure(ParseError(message: ":by needs labels: \(StoreReader.cohortLabels.joined(separator: ", "))")) }
            let aliases = ["version": "model_version", "model": "model_name", "accel": "accelerator", "fw": "firmware"]
            let resolved = labels.map { aliases[$0] ?? $0 }
            for l in resolved where !StoreReader.cohortLabels.contains(l) {
                return .failure(ParseError(message: "unknown label '\(l)': use \(StoreReader.cohortLabels.joined(separator: ", "))"))
            }
            var unique: [String] = []
            for l in resolved where !unique.contains(l) { unique.append(l) }
            return .success(.by(unique))
        case "sort":
            guard let column = rest.first else { return .failure(ParseError(message: ":sort needs a column")) }
            var descending: Bool?
            if rest.count > 1 {
                switch rest[1].lowercased() {
                case "asc", "up": descending = false
                case "desc", "down": descending = true
                default: return .failure(ParseError(message: ":sort COLUMN [asc|desc]"))
                }
            }
            return .success(.sort(column.lowercased(), descending: descending))
        case "filter":
            return .success(.filter(rest.joined(separator: " ")))
        case "drill":
            guard let id = rest.first else { return .failure(ParseError(message: ":drill needs a device id")) }
            return .success(.device(id))
        default:
            return .success(.none)
        }
    }

    /// Completes the first word when the prefix is unique (Tab).
    public static func complete(_ line: String) -> String? {
        guard !line.contains(" ") else { return nil }
        let matches = words.filter { $0.hasPrefix(line.lowercased()) }
        return matches.count == 1 ? matches[0] + " " : nil
    }
}
