import ArgumentParser
import FleetRules
import Foundation

struct Rules: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Alert rule tooling.",
        subcommands: [Check.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Lint an alerts.yaml: every problem with file:line:column; exit 1 on any.")

        @Argument(help: "The rules file.")
        var file: String

        func run() throws {
            guard let data = FileManager.default.contents(atPath: file) else { throw fail("cannot read \(file)") }
            let text = String(decoding: data, as: UTF8.self)
            switch RulesParser.parse(text, file: file) {
            case .success(let f):
                let rules = f.allRules.count
                print("\(file): OK (\(f.receivers.count) receivers, \(f.groups.count) groups, \(rules) rules)")
            case .failure(let e):
                for err in e.errors { printError(err.description) }
                throw ExitCode(1)
            }
        }
    }
}
