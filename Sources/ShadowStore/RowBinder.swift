import GRDB
import GRDBSQLite

/// Binds one row's values straight to a prepared statement, in parameter order, and runs it.
///
/// The writer's inserts bypass GRDB's `StatementArguments`: building one boxes every column in
/// an existential, converts it to a `DatabaseValue` and copies each body into a `Data`, which
/// cost the recorder about a third of its time. Only for statements without result rows.
struct RowBinder {
    private let statement: Statement
    private var index: CInt = 0

    /// Starts a row; the statement must have been prepared on the connection in use.
    init(_ statement: Statement) {
        self.statement = statement
        // A failed step left its error on the statement (and was thrown then); reset clears it
        // and reports it again, which is not news.
        _ = sqlite3_reset(statement.sqliteStatement)
    }

    private mutating func next() -> CInt {
        self.index += 1
        return self.index
    }

    mutating func bind(_ value: String?) {
        let index = self.next()
        guard var value else {
            sqlite3_bind_null(self.statement.sqliteStatement, index)
            return
        }
        value.withUTF8 { bytes in
            _ = sqlite3_bind_text(self.statement.sqliteStatement, index, bytes.baseAddress, CInt(bytes.count), SQLITE_TRANSIENT)
        }
    }

    mutating func bind(_ value: Int?) {
        self.bind(value.map(Int64.init))
    }

    mutating func bind(_ value: Int64?) {
        let index = self.next()
        if let value {
            sqlite3_bind_int64(self.statement.sqliteStatement, index, value)
        } else {
            sqlite3_bind_null(self.statement.sqliteStatement, index)
        }
    }

    mutating func bind(_ value: Double?) {
        let index = self.next()
        if let value {
            sqlite3_bind_double(self.statement.sqliteStatement, index, value)
        } else {
            sqlite3_bind_null(self.statement.sqliteStatement, index)
        }
    }

    /// A BLOB; an empty one stays an empty BLOB, not NULL.
    mutating func bind(blob bytes: [UInt8]) {
        let index = self.next()
        guard !bytes.isEmpty else {
            sqlite3_bind_zeroblob(self.statement.sqliteStatement, index, 0)
            return
        }
        bytes.withUnsafeBytes { raw in
            _ = sqlite3_bind_blob(self.statement.sqliteStatement, index, raw.baseAddress, CInt(raw.count), SQLITE_TRANSIENT)
        }
    }

    /// A body: bound as TEXT when `json` (known JSON text), else as a BLOB.
    mutating func bind(body bytes: [UInt8], json: Bool) {
        guard json, !bytes.isEmpty else { return self.bind(blob: bytes) }
        let index = self.next()
        bytes.withUnsafeBytes { raw in
            _ = sqlite3_bind_text(self.statement.sqliteStatement, index, raw.baseAddress, CInt(raw.count), SQLITE_TRANSIENT)
        }
    }

    /// Runs the statement with the values bound so far.
    /// - Throws: `DatabaseError` when SQLite refuses the row (constraint, disk full, I/O error).
    func execute(in db: Database) throws {
        let handle = self.statement.sqliteStatement
        precondition(Int(self.index) == Int(sqlite3_bind_parameter_count(handle)), "\(self.index) values bound for \(self.statement.sql)")
        var code = sqlite3_step(handle)
        while code == SQLITE_ROW { code = sqlite3_step(handle) }
        guard code == SQLITE_DONE else {
            let message = sqlite3_errmsg(db.sqliteConnection).map { String(cString: $0) }
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: self.statement.sql)
        }
    }
}

/// SQLite copies the bytes during the bind call (the buffers live only that long).
private let SQLITE_TRANSIENT = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
