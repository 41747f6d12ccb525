import GRDB
import GRDBSQLite
import ShadowCore
import ShadowParquet
import ShadowStore

/// `shadowd export`: the `pairs` and `coverage` of one or many databases as Hive-style
/// partitions, `DIR/<table>/date=YYYY-MM-DD/host=NAME/part-<db>.parquet`, for DuckDB, Spark,
/// Trino or Athena.
///
/// Days are the unit: a day's partition of a database is always rewritten whole (written to a
/// temporary name, fsynced, renamed), so re-running a window never duplicates rows and readers
/// never see half a file. Without a window, a database's export cursor (kept in the database)
/// says where the last run stopped, and the run starts at the beginning of that day.
public struct Exporter {
    public let options: ExportOptions

    public init(options: ExportOptions) {
        self.options = options
    }

    /// What one run wrote.
    public struct Summary: Sendable {
        public var files = 0
        public var rows: [String: Int] = [:]
        public var bytes = 0
    }

    static let day: Int64 = 86_400_000_000

    public func run(now: Int64) throws -> Summary {
        var summary = Summary()
        for (host, path) in self.options.databases {
            // The same checks and messages as the report (missing, not shadowd, newer schema, …).
            try PairReader(path: path).close()
            var configuration = GRDB.Configuration()
            configuration.busyMode = .timeout(10)
            configuration.prepareDatabase { db in db.add(function: BodyCompression.uncompressFunction) }
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            defer { try? queue.close() }
            let cursor = try queue.write { db in
                try db.execute(sql: "CREATE TABLE IF NOT EXISTS export_cursors (target TEXT PRIMARY KEY, exported_until_us INTEGER NOT NULL)")
                return try Int64.fetchOne(
                    db,
                    sql: "SELECT exported_until_us FROM export_cursors WHERE target = ?",
                    arguments: [self.cursorKey]
                )
            }
            let from = Self.startOfDay(self.options.fromMicros ?? cursor ?? 0)
            let to = self.options.toMicros.map { Self.startOfDay($0 - 1) + Self.day } ?? (Self.startOfDay(now) + Self.day)
            let part = "part-" + String(StableHash.fnv1a64Hex(path).prefix(8))
            for table in self.options.tables {
                try self.export(table, queue: queue, host: host, part: part, from: from, to: to, summary: &summary)
            }
            // Rows arriving later today are picked up by the next run, which rewrites today whole.
            let reached = min(to, now)
            try queue.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO export_cursors (target, exported_until_us) VALUES (?, ?)
                        ON CONFLICT (target) DO UPDATE SET exported_until_us = max(exported_until_us, excluded.exported_until_us)
                        """,
                    arguments: [self.cursorKey, reached]
                )
            }
        }
        return summary
    }

    /// One cursor per output directory and format: exporting elsewhere starts afresh.
    var cursorKey: String { "\(self.options.format.rawValue):\(self.options.outputDirectory)" }

    static func startOfDay(_ micros: Int64) -> Int64 {
        (micros >= 0 ? micros / Self.day : (micros - Self.day + 1) / Self.day) * Self.day
    }

    private func export(
        _ table: ExportTable,
        queue: DatabaseQueue,
        host: String,
        part: String,
        from: Int64,
        to: Int64,
        summary: inout Summary
    ) throws {
        // Tables a database does not have yet (outcomes before schema 8) have nothing to export.
        let available = try queue.read { db in
            Set(try Row.fetchAll(db, sql: "SELECT name FROM pragma_table_info(?)", arguments: [table.source]).map { $0["name"] as String })
        }
        guard !available.isEmpty else { return }
        // The days that have rows (the window may span years of empty days).
        let days = try queue.read { db in
            try Int64.fetchAll(
                db,
                sql:
                    "SELECT DISTINCT (\(table.timeExpression)) / \(Self.day) \(table.windowClause) ORDER BY 1",
                arguments: [from, to]
            )
        }
        for dayNumber in days {
            // One day at a time: each partition is its own file and its own read.
            let day = dayNumber * Self.day
            let end = day + Self.day
            let directory = "\(self.options.outputDirectory)/\(table.name)/date=\(HTTPDate.isoDay(daysSince1970: day / Self.day))/host=\(host)"
            let file = directory + "/" + part + (self.options.format == .parquet ? ".parquet" : ".ndjson")
            let rows = try queue.read { db -> Int in
                let count =
                    try Int.fetchOne(
                        db,
                        sql: "SELECT count(*) \(table.windowClause)",
                        arguments: [day, end]
                    ) ?? 0
                guard count > 0 else { return 0 }
                let output = try PartitionFile(path: file)
                let sink: any RowSink =
                    self.options.format == .parquet
                    ? try ParquetSink(file: output, columns: table.columns, compression: self.options.compression)
                    : NDJSONSink(file: output, columns: table.columns)
                // Stepped on the C API, as the report's scan is: GRDB's Row decodes each value
                // through generic conversions that were a quarter of an export's time.
                let statement = try db.makeStatement(
                    sql:
                        "SELECT \(table.selectList(available: available)) \(table.windowClause) ORDER BY \(table.timeExpression)"
                )
                try statement.setArguments([day, end])
                let handle = statement.sqliteStatement
                while true {
                    let code = sqlite3_step(handle)
                    if code == SQLITE_DONE { break }
                    guard code == SQLITE_ROW else {
                        throw DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(db.sqliteConnection)))
                    }
                    try sink.append(table.columns.indices.map { Self.value(handle, Int32($0), table.columns[$0].kind) })
                }
                try sink.commit()
                summary.bytes += output.bytesWritten
                return count
            }
            if rows > 0 {
                summary.files += 1
                summary.rows[table.name, default: 0] += rows
            }
        }
    }

    static func value(_ statement: OpaquePointer, _ index: Int32, _ kind: ParquetColumn.Kind) -> ParquetValue {
        switch sqlite3_column_type(statement, index) {
        case SQLITE_NULL: return .null
        case SQLITE_INTEGER:
            let number = sqlite3_column_int64(statement, index)
            return kind == .double ? .double(Double(number)) : .int(number)
        case SQLITE_FLOAT:
            let number = sqlite3_column_double(statement, index)
            return kind == .double ? .double(number) : .int(Int64(number))
        default:
            // Text or blob: the bytes as stored (text is UTF-8 in these databases).
            let bytes = sqlite3_column_blob(statement, index)
            let count = Int(sqlite3_column_bytes(statement, index))
            guard let bytes, count > 0 else { return .bytes([]) }
            return .bytes(Array(UnsafeRawBufferPointer(start: bytes, count: count)))
        }
    }
}
