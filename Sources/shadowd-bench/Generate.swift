import ArgumentParser
import Foundation

extension BenchCommand {
    /// The report benchmark's synthetic database on its own, for the export round trip and the
    /// export benchmark.
    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "generate",
            abstract: "Write a synthetic database of N pairs (the report benchmark's: 1 ms apart, 10% diverged, 1% timeouts)."
        )

        @Option(help: "Pairs to generate.")
        var pairs: Int = 1_000_000

        @Option(help: "The database to create (must not exist).")
        var db: String

        func run() async throws {
            guard let sqlite = which("sqlite3") else { throw ValidationError("needs sqlite3 (apt-get install sqlite3)") }
            guard !FileManager.default.fileExists(atPath: self.db) else { throw ValidationError("\(self.db) exists") }
            try ReportScan.generate(path: self.db, pairs: self.pairs, sqlite: sqlite)
        }
    }
}
