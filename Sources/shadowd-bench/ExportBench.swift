import ArgumentParser
import Foundation
import ShadowFixtures

extension BenchCommand {
    /// `shadowd export` on synthetic databases: rows per second, bytes per pair in Parquet+ZSTD
    /// against the SQLite file, DuckDB's divergence-rate query over the export against sqlite3's
    /// over the source, and `shadowd replay` requests per second against a fast fixture candidate.
    struct ExportBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export",
            abstract: "Time shadowd export (rows/s, bytes per pair), DuckDB over the export vs sqlite3 over the source, and replay req/s."
        )

        @Option(help: "Synthetic pairs per database; repeat for several sizes.")
        var pairs: [Int] = []

        @Option(help: "Folder for the generated databases and exports.")
        var directory: String = "/tmp/shadowd-bench-export"

        @Option(help: "A Python with duckdb installed (scripts/export/check makes one).")
        var python: String = ".build/clients-venv/bin/python"

        @Option(help: "Requests replayed for the replay figure.")
        var replay: Int = 50_000

        @Flag(help: "Keep generated databases and reuse them on the next run.")
        var keep = false

        static let divergenceSQL =
            "SELECT route, candidate, count(*), sum(diverged), avg(diverged) FROM pairs WHERE outcome = 'compared' GROUP BY route, candidate"

        func run() async throws {
            guard let sqlite = which("sqlite3"), let time = which("time") else {
                throw ValidationError("needs sqlite3 and GNU time (apt-get install sqlite3 time)")
            }
            let sizes = self.pairs.isEmpty ? [1_000_000] : self.pairs
            try FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true)
            print("pairs        export s   rows/s     SQLite B/pair  Parquet B/pair  ratio   sqlite3 query s  duckdb query s  ratio")
            for size in sizes {
                let path = "\(self.directory)/pairs-\(size).sqlite"
                if !FileManager.default.fileExists(atPath: path) { try ReportScan.generate(path: path, pairs: size, sqlite: sqlite) }
                let out = "\(self.directory)/export-\(size)"
                try? FileManager.default.removeItem(atPath: out)
                let export = try ReportScan.timed(
                    time,
                    [
                        siblingBinary("shadowd"), "export", "--db", "bench=\(path)", "--out-dir", out, "--from", "2020-01-01T00:00:00Z", "--to",
                        "2040-01-01T00:00:00Z",
                    ]
                )
                let sqliteBytes = Self.size(path)
                let parquetBytes = Self.size(out)
                let sqliteQuery = try ReportScan.median(3) { try ReportScan.timed(time, [sqlite, "-readonly", path, Self.divergenceSQL]) }
                let duckdbQuery = try self.duckdb(out)
                print(
                    [
                        String(size).padding(toLength: 12, withPad: " ", startingAt: 0),
                        ReportScan.format(export.seconds).padding(toLength: 10, withPad: " ", startingAt: 0),
                        String(Int(Double(size) / export.seconds)).padding(toLength: 10, withPad: " ", startingAt: 0),
                        String(sqliteBytes / size).padding(toLength: 14, withPad: " ", startingAt: 0),
                        ReportScan.format(Double(parquetBytes) / Double(size)).padding(toLength: 15, withPad: " ", startingAt: 0),
                        "\(ReportScan.format(Double(sqliteBytes) / Double(parquetBytes)))×".padding(toLength: 7, withPad: " ", startingAt: 0),
                        ReportScan.format(sqliteQuery.seconds).padding(toLength: 16, withPad: " ", startingAt: 0),
                        ReportScan.format(duckdbQuery).padding(toLength: 15, withPad: " ", startingAt: 0),
                        "\(ReportScan.format(sqliteQuery.seconds / duckdbQuery))×",
                    ].joined(separator: " ")
                )
                if size == sizes.first { try await self.replayRate(path, time: time) }
                if !self.keep {
                    for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
                }
                try? FileManager.default.removeItem(atPath: out)
            }
        }

        /// The divergence query in DuckDB over the export, timed inside Python (the median of 3;
        /// interpreter start and import excluded).
        func duckdb(_ out: String) throws -> Double {
            let script = """
                import duckdb, time
                con = duckdb.connect()
                con.execute("CREATE VIEW pairs AS SELECT * FROM read_parquet('\(out)/pairs/*/*/*.parquet', hive_partitioning = true)")
                runs = []
                for _ in range(3):
                    start = time.perf_counter(); con.execute("\(Self.divergenceSQL)").fetchall(); runs.append(time.perf_counter() - start)
                print(sorted(runs)[1])
                """
            let process = Process()
            process.executableURL = URL(fileURLWithPath: self.python)
            process.arguments = ["-c", script]
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            guard process.terminationStatus == 0,
                let seconds = Double(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
            else { throw ValidationError("duckdb through \(self.python) failed (run scripts/export/check once to make the venv)") }
            return seconds
        }

        /// `shadowd replay` of the first N recorded requests against a fast in-process fixture.
        func replayRate(_ path: String, time: String) async throws {
            let candidate = try await ModelFixture(spec: ModelSpec(version: "2")).start()
            defer { Task { try? await candidate.stop() } }
            let out = "\(self.directory)/replay.sqlite"
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: out + suffix) }
            let replay = try ReportScan.timed(
                time,
                [
                    siblingBinary("shadowd"), "replay", "--config", "Fixtures/configs/example.yaml", "--db", path, "--route", "classifier",
                    "--candidate", "http://127.0.0.1:\(candidate.port)", "--name", "bench", "--limit", String(self.replay), "--concurrency", "32",
                    "--out", out,
                ]
            )
            print(
                "replay: \(self.replay) requests in \(ReportScan.format(replay.seconds)) s = \(Int(Double(self.replay) / replay.seconds)) req/s (32 in flight, fixture candidate in this process)"
            )
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: out + suffix) }
        }

        /// A file's size, or the sum of the regular files under a directory.
        static func size(_ path: String) -> Int {
            func fileSize(_ file: String) -> Int {
                let attributes = try? FileManager.default.attributesOfItem(atPath: file)
                return attributes?[.type] as? FileAttributeType == .typeRegular ? (attributes?[.size] as? Int) ?? 0 : 0
            }
            let files = FileManager.default.enumerator(atPath: path)?.compactMap { $0 as? String } ?? []
            return files.isEmpty ? fileSize(path) : files.reduce(0) { $0 + fileSize(path + "/" + $1) }
        }
    }
}
