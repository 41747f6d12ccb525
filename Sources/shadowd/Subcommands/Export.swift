import ArgumentParser
import Foundation
import ShadowCore
import ShadowExport
import ShadowParquet
import ShadowReport
import ShadowStore

extension ShadowdCommand {
    /// Exports pairs and coverage as Hive-partitioned Parquet (or NDJSON) for warehouse engines.
    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export",
            abstract:
                "Write pairs, coverage, experiment exposures and outcomes as Parquet or NDJSON partitions (DIR/<table>/date=YYYY-MM-DD/host=NAME/) for DuckDB, Spark, Trino.",
            discussion: """
                Whole UTC days are rewritten atomically, so re-running a window never duplicates rows. Without \
                --since/--from, each database's export cursor (stored in it) resumes where the last run stopped.
                """
        )

        @Option(
            name: .customLong("db"),
            help: "A database file, or HOST=FILE to name its host partition; repeat for a fleet. Default host: this machine's name."
        )
        var databases: [String] = []

        @Option(help: "The host partition name for databases given without one.")
        var host: String?

        @Option(help: "The directory to write under.")
        var outDir: String

        @Option(help: "parquet or ndjson.")
        var format: String = "parquet"

        @Option(help: "Parquet page compression: zstd (the system libzstd; the default where it is installed), gzip or none.")
        var compression: String?

        @Option(help: "Only days touched by this much time before now (e.g. 24h, 7d).")
        var since: String?

        @Option(help: "Window start, ISO 8601 (widened to the start of its UTC day).")
        var from: String?

        @Option(help: "Window end (exclusive), ISO 8601 (widened to the end of its UTC day).")
        var to: String?

        @Option(help: "Tables to export: pairs, coverage, exposures, outcomes (default: all; the last two exist from schema 8).")
        var table: [String] = []

        func validate() throws {
            if self.databases.isEmpty { throw ValidationError("give --db FILE (repeatable)") }
            if self.since != nil, self.from != nil || self.to != nil { throw ValidationError("give --since or --from/--to, not both") }
            if ExportOptions.Format(rawValue: self.format) == nil { throw ValidationError("--format: parquet or ndjson") }
            if let compression = self.compression {
                guard let codec = ParquetCompression(rawValue: compression) else { throw ValidationError("--compression: zstd, gzip or none") }
                if !codec.isAvailable { throw ValidationError("--compression zstd needs the system libzstd (apt-get install libzstd1)") }
            }
            let names = ExportTable.all.map(\.name)
            if let bad = self.table.first(where: { !names.contains($0) }) {
                throw ValidationError("--table: \(names.joined(separator: ", ")), got '\(bad)'")
            }
        }

        func run() async throws {
            let nowMicros = Int64(Date().timeIntervalSince1970 * 1_000_000)
            let defaultHost = self.host ?? ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "localhost"
            let databases = self.databases.map { argument -> (host: String, path: String) in
                if let equals = argument.firstIndex(of: "="), !argument[..<equals].contains("/") {
                    return (String(argument[..<equals]), String(argument[argument.index(after: equals)...]))
                }
                return (defaultHost, argument)
            }
            var options = ExportOptions(databases: databases, outputDirectory: self.outDir, format: ExportOptions.Format(rawValue: self.format)!)
            if let compression = self.compression.flatMap(ParquetCompression.init(rawValue:)) { options.compression = compression }
            if !self.table.isEmpty { options.tables = ExportTable.all.filter { self.table.contains($0.name) } }
            do {
                (options.fromMicros, options.toMicros) = try Report.window(since: self.since, from: self.from, to: self.to, nowMicros: nowMicros)
                let summary = try Exporter(options: options).run(now: nowMicros)
                let rows = summary.rows.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
                print(
                    "exported \(rows.isEmpty ? "nothing new" : rows) in \(summary.files) file(s), \(Units.fixed(Double(summary.bytes) / 1_048_576, decimals: 1)) MiB under \(self.outDir)"
                )
            } catch let error as StoreError {
                throw CleanExit.message("error: \(error.message)", code: 1)
            } catch let error as ReportError {
                throw CleanExit.message("error: \(error.message)", code: 1)
            } catch {
                throw CleanExit.message("error: export failed: \(error)", code: 1)
            }
        }
    }
}
