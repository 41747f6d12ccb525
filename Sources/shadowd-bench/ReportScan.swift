import ArgumentParser
import Foundation
import ShadowStore

extension BenchCommand {
    /// `shadowd report` against one plain full scan of the `pairs` view by the sqlite3 shell, on
    /// the same synthetic database, in the same run.
    struct ReportScan: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "report",
            abstract: "Time shadowd report against a full scan of pairs with sqlite3 (ratio and peak memory)."
        )

        @Option(help: "Synthetic pairs per database; repeat for several sizes.")
        var pairs: [Int] = []

        @Option(help: "Folder for the generated databases (several GB at 10M pairs).")
        var directory: String = "/tmp/shadowd-bench-report"

        @Option(help: "Timed repetitions per command (the median is printed).")
        var repetitions: Int = 3

        @Flag(help: "Keep generated databases and reuse them on the next run.")
        var keep = false

        func run() async throws {
            guard let sqlite = which("sqlite3"), let time = which("time") else {
                throw ValidationError("needs sqlite3 and GNU time (apt-get install sqlite3 time)")
            }
            let sizes = self.pairs.isEmpty ? [1_000_000] : self.pairs
            try FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true)
            print("pairs        db size   sqlite3 scan      shadowd report (html)   ratio   report peak RSS")
            for size in sizes {
                let path = "\(self.directory)/pairs-\(size).sqlite"
                if !FileManager.default.fileExists(atPath: path) { try Self.generate(path: path, pairs: size, sqlite: sqlite) }
                let bytes = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
                let scanSQL =
                    "SELECT count(*), sum(baseline_latency_us), sum(candidate_latency_us), sum(divergence), sum(diverged), count(segment) FROM pairs"
                let scan = try Self.median(self.repetitions) { try Self.timed(time, [sqlite, "-readonly", path, scanSQL]) }
                let report = try Self.median(self.repetitions) {
                    try Self.timed(
                        time,
                        [siblingBinary("shadowd"), "report", "--db", path, "--format", "html", "--out", "\(self.directory)/report.html", "--quiet"]
                    )
                }
                print(
                    "\(String(size).padding(toLength: 12, withPad: " ", startingAt: 0)) \(String(bytes >> 20).padding(toLength: 5, withPad: " ", startingAt: 0)) MiB  "
                        + "\(Self.format(scan.seconds)) s         \(Self.format(report.seconds)) s                  "
                        + "\(Self.format(report.seconds / scan.seconds))×   \(report.maxRSSKiB >> 10) MiB (sqlite3: \(scan.maxRSSKiB >> 10) MiB)"
                )
                if !self.keep {
                    for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
                }
            }
        }

        struct Measurement {
            var seconds: Double
            var maxRSSKiB: Int
        }

        static func median(_ count: Int, _ body: () throws -> Measurement) rethrows -> Measurement {
            let runs = try (0..<max(1, count)).map { _ in try body() }.sorted { $0.seconds < $1.seconds }
            return runs[runs.count / 2]
        }

        /// Runs a command under GNU time; exit codes 0 and 3 (a reject verdict) count as success.
        static func timed(_ time: String, _ command: [String]) throws -> Measurement {
            let output = NSTemporaryDirectory() + "shadowd-bench-time-\(getpid())"
            let process = Process()
            process.executableURL = URL(fileURLWithPath: time)
            process.arguments = ["-f", "%e %M", "-o", output] + command
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            guard [0, 3].contains(process.terminationStatus) else {
                throw ValidationError("\(command.joined(separator: " ")) exited \(process.terminationStatus)")
            }
            // GNU time prefixes "Command exited with non-zero status 3" on its own line.
            let lines = try String(contentsOfFile: output, encoding: .utf8).split(separator: "\n")
            let fields = (lines.last ?? "").split(whereSeparator: \.isWhitespace)
            return Measurement(seconds: Double(fields.first ?? "0") ?? 0, maxRSSKiB: Int(fields.last ?? "0") ?? 0)
        }

        /// Creates the schema with the real store, then fills it in SQL: one route, one candidate,
        /// a request a millisecond, three segments, 10% diverged pairs, 1% candidate timeouts.
        static func generate(path: String, pairs: Int, sqlite: String) throws {
            let store = try PairStore(path: path)
            try store.close()
            let start = 1_780_000_000_000_000
            // Loaded in rollback-journal mode (a fresh file journals almost nothing), then back to WAL
            // as the daemon leaves it: 10M pairs through the WAL would be written twice.
            let sql = """
                PRAGMA journal_mode = DELETE;
                PRAGMA synchronous = OFF;
                BEGIN;
                WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < \(pairs - 1))
                INSERT INTO exchanges (id, request_id, route, config_revision, received_at_us, method, path, request_body, request_body_bytes,
                    baseline_version, baseline_status, baseline_latency_us, baseline_ttfb_us, baseline_content_type, baseline_body,
                    baseline_body_bytes, baseline_error, segment)
                SELECT i + 1, printf('req-%08d', i), 'classifier', 'rev', \(start) + i * 1000, 'POST', '/v2/models/classifier/infer',
                    '{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[0.1,0.2,0.3,0.4]}]}', 80, '1', 200,
                    8000 + abs(random() % 8000), 7000, 'application/json',
                    '{"model_name":"classifier","outputs":[{"name":"label","data":["cat"]},{"name":"p","data":[0.9,0.1]}]}', 98, NULL,
                    CASE i % 3 WHEN 0 THEN 'eu' WHEN 1 THEN 'us' ELSE 'apac' END
                FROM n;
                INSERT INTO shadows (exchange_id, candidate, candidate_version, status, latency_us, ttfb_us, content_type, body, body_bytes,
                    error, outcome, scorer, divergence, diverged, explanation, differing_paths)
                SELECT id, 'v2', '2',
                    CASE WHEN id % 100 = 7 THEN NULL ELSE 200 END,
                    CASE WHEN id % 100 = 7 THEN 5000000 ELSE baseline_latency_us + abs(random() % 3000) END,
                    7000, 'application/json',
                    CASE WHEN id % 100 = 7 THEN NULL WHEN id % 10 = 0
                        THEN '{"model_name":"classifier","outputs":[{"name":"label","data":["dog"]},{"name":"p","data":[0.4,0.6]}]}'
                        ELSE baseline_body END,
                    98, CASE WHEN id % 100 = 7 THEN 'timeout' END,
                    CASE WHEN id % 100 = 7 THEN 'candidate_error' ELSE 'compared' END,
                    'json',
                    CASE WHEN id % 100 = 7 THEN NULL WHEN id % 10 = 0 THEN 0.75 ELSE 0 END,
                    CASE WHEN id % 100 = 7 THEN NULL ELSE id % 10 = 0 END,
                    CASE WHEN id % 10 = 0 THEN '{"leaves":4,"differing":3}' ELSE '{"leaves":4,"differing":0}' END,
                    CASE WHEN id % 10 = 0 AND id % 100 != 7 THEN '["$.outputs[0].data[0]","$.outputs[1].data[0]","$.outputs[1].data[1]"]' END
                FROM exchanges;
                COMMIT;
                PRAGMA journal_mode = WAL;
                """
            let process = Process()
            process.executableURL = URL(fileURLWithPath: sqlite)
            process.arguments = [path]
            let input = Pipe()
            process.standardInput = input
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            input.fileHandleForWriting.write(Data(sql.utf8))
            try input.fileHandleForWriting.close()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw ValidationError("generating \(path) failed") }
        }

        static func format(_ value: Double) -> String {
            String(format: "%.2f", value)
        }
    }
}
