import Foundation
import GRDB
import ShadowCore
import ShadowExport
import ShadowStore
import Testing

/// `shadowd export` on real databases: partitions by day and host, whole days rewritten (no
/// duplicates on a rerun), the cursor, and files that are complete or absent. DuckDB and pyarrow
/// check the Parquet content itself (`scripts/export/check`, in CI), and ShadowParquetTests read
/// the writer back with a reader written from the spec.
@Suite struct ExporterTests {
    static let day: Int64 = 86_400_000_000
    static let start: Int64 = 20_000 * 86_400_000_000  // 2024-10-04T00:00Z

    func database(_ folder: String, name: String, days: Int) throws -> String {
        let path = folder + "/\(name).sqlite"
        let store = try PairStore(path: path)
        var records: [ExchangeRecord] = []
        for index in 0..<(days * 10) {
            let at: Int64 = Self.start + Int64(index / 10) * Self.day + Int64(index) * 1_000
            let candidate = index % 3 == 0 ? #"{"label":"dog"}"# : #"{"label":"cat"}"#
            records.append(makeRecord(id: "\(name)-\(index)", candidate: candidate, at: at))
        }
        _ = try store.write(records, coverage: [:])
        try store.close()
        return path
    }

    func lines(_ folder: String) throws -> [String] {
        let files = FileManager.default.enumerator(atPath: folder)!.compactMap { $0 as? String }.filter { $0.hasSuffix(".ndjson") }
        return try files.sorted().flatMap { file in
            try String(contentsOfFile: folder + "/" + file, encoding: .utf8).split(separator: "\n").map(String.init)
        }
    }

    @Test func daysAndHostsBecomePartitionsAndARerunDuplicatesNothing() async throws {
        try await withTemporaryDirectory { folder in
            let a = try self.database(folder, name: "a", days: 3)
            let b = try self.database(folder, name: "b", days: 2)
            let out = folder + "/export"
            let options = ExportOptions(databases: [("host-a", a), ("host-b", b)], outputDirectory: out, format: .ndjson, tables: [.pairs])
            let summary = try Exporter(options: options).run(now: Self.start + 3 * Self.day)
            #expect(summary.rows["pairs"] == 50 && summary.files == 5)
            let partitions = try FileManager.default.contentsOfDirectory(atPath: out + "/pairs").sorted()
            #expect(partitions == ["date=2024-10-04", "date=2024-10-05", "date=2024-10-06"])
            #expect(try FileManager.default.contentsOfDirectory(atPath: out + "/pairs/date=2024-10-06") == ["host=host-a"])
            let first = try self.lines(out)
            #expect(first.count == 50 && first.filter { $0.contains(#""diverged":1"#) }.count == 17)
            // Again, over the same days: the partitions are replaced whole.
            _ = try Exporter(options: options).run(now: Self.start + 3 * Self.day)
            #expect(try self.lines(out) == first)
            let hidden = FileManager.default.enumerator(atPath: out)!.compactMap { $0 as? String }.filter { $0.contains("/.") }
            #expect(hidden.isEmpty, "no temporary file left: \(hidden)")
        }
    }

    /// Without a window, a run starts at the day its cursor reached: older days are not read
    /// again, the last one is rewritten whole with what arrived since.
    @Test func theCursorResumesAtTheDayItReached() async throws {
        try await withTemporaryDirectory { folder in
            let path = try self.database(folder, name: "a", days: 2)
            let out = folder + "/export"
            let options = ExportOptions(databases: [("h", path)], outputDirectory: out, format: .ndjson, tables: [.pairs])
            _ = try Exporter(options: options).run(now: Self.start + Self.day + 5_000)
            let store = try PairStore(path: path)
            _ = try store.write([makeRecord(id: "late", at: Self.start + Self.day + 60_000_000)], coverage: [:])
            try store.close()
            let summary = try Exporter(options: options).run(now: Self.start + 2 * Self.day)
            #expect(summary.rows["pairs"] == 11, "only the second day, whole: 10 + the late one")
            #expect(try self.lines(out).count == 21)
            let queue = try DatabaseQueue(path: path)
            let cursor = try queue.read { try Int64.fetchOne($0, sql: "SELECT exported_until_us FROM export_cursors") }
            try queue.close()
            #expect(cursor == Self.start + 2 * Self.day)
        }
    }

    /// A directory that cannot be written fails the run, naming it, and leaves nothing behind.
    @Test func anUnwritableDestinationFailsCleanly() async throws {
        try await withTemporaryDirectory { folder in
            let path = try self.database(folder, name: "a", days: 1)
            try "not a directory".write(toFile: folder + "/blocked", atomically: true, encoding: .utf8)
            let options = ExportOptions(databases: [("h", path)], outputDirectory: folder + "/blocked/out", tables: [.pairs])
            #expect {
                _ = try Exporter(options: options).run(now: Self.start + Self.day)
            } throws: { error in
                "\(error)".contains("cannot create directory") && "\(error)".contains("blocked")
            }
        }
    }
}
