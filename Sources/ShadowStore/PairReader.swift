import Foundation
import GRDB
import ShadowCore

/// A read-only view of a divergence database, for reports and checks that run while the daemon
/// keeps writing.
///
/// WAL gives the reader one consistent snapshot per transaction and never blocks the writer
/// (<https://www.sqlite.org/wal.html#concurrency>). The connection is opened read-only, so a
/// report can never change the file it reads.
public final class PairReader: Sendable {
    public let path: String
    /// The file's `PRAGMA user_version`.
    public let schemaVersion: Int
    /// How long a read waits for another process's lock.
    public let busyTimeout: Duration
    let queue: DatabaseQueue

    /// Opens and checks the file: it must exist, be a SQLite database, carry a shadowd schema this
    /// build understands, and not be locked for longer than `busyTimeout`.
    ///
    /// - Throws: ``StoreError`` with `missing`, `corrupt`, `notShadowDatabase`, `newerSchema`,
    ///   `locked` or `openFailed`, and a message naming the file.
    public init(path: String, busyTimeout: Duration = .seconds(10)) throws {
        self.path = path
        self.busyTimeout = busyTimeout
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw StoreError(.missing, "no database at \(path)")
        }
        guard !isDirectory.boolValue else { throw StoreError(.openFailed, "\(path) is a directory, not a database file") }
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw StoreError(.openFailed, "\(path) is not readable by this user (the service creates it 0640: join its group)")
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        guard size > 0 else { throw StoreError(.notShadowDatabase, "\(path) is empty: not a shadowd database") }
        SQLiteLibrary.prepare()
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(TimeInterval(busyTimeout.microseconds) / 1e6)
        configuration.label = "shadowd.reader"
        // Compressed bodies (`storage.bodies: compressed`) read back as the `sqlite3` shell reads them.
        configuration.prepareDatabase { db in db.add(function: BodyCompression.uncompressFunction) }
        do {
            self.queue = try DatabaseQueue(path: path, configuration: configuration)
            self.schemaVersion = try self.queue.read { db in try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0 }
        } catch let error as DatabaseError {
            throw PairReader.storeError(error, path: path, busyTimeout: busyTimeout)
        }
        if self.schemaVersion == 0 {
            throw StoreError(.notShadowDatabase, "\(path) is a SQLite database without a shadowd schema")
        }
        if self.schemaVersion > PairStore.schemaVersion {
            throw StoreError(
                .newerSchema,
                "\(path) has schema version \(self.schemaVersion); this shadowd reads up to \(PairStore.schemaVersion). Upgrade shadowd."
            )
        }
    }

    /// Maps SQLite's result codes to the messages an operator needs
    /// (<https://www.sqlite.org/rescode.html>).
    static func storeError(_ error: DatabaseError, path: String, busyTimeout: Duration) -> StoreError {
        switch error.resultCode {
        case .SQLITE_NOTADB, .SQLITE_CORRUPT:
            return StoreError(.corrupt, "\(path) is not a valid SQLite database or is damaged: \(error.message ?? "\(error.resultCode)")")
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            return StoreError(
                .locked,
                "\(path) stayed locked for \(Int(busyTimeout.microseconds / 1_000_000))s (another process holds an exclusive lock); try again later"
            )
        case .SQLITE_CANTOPEN:
            return StoreError(
                .openFailed,
                "cannot open \(path) read-only: \(error.message ?? "unable to open"). A WAL database needs its -wal and -shm files or a writable directory; run the report while shadowd runs, or copy the file"
            )
        default:
            return StoreError(.readFailed, "reading \(path) failed: \(error.message ?? "\(error.resultCode)")")
        }
    }

    /// A body column as it was before compression: from schema 12 on (`storage.bodies:
    /// compressed`), `column` read through `sqlar_uncompress` with its `column_zlib` length.
    func body(_ column: String) -> String {
        self.schemaVersion >= 12 ? BodyCompression.inflated(column) : column
    }

    /// As ``body(_:)``, a compressed body as TEXT (what a JSON body was before compression), so
    /// `typeof`, `json_valid` and `json_extract` read it as they read the rest.
    func textBody(_ column: String) -> String {
        guard self.schemaVersion >= 12 else { return column }
        return "(CASE WHEN \(column)_zlib IS NULL THEN \(column) ELSE CAST(\(self.body(column)) AS TEXT) END)"
    }

    /// Closes the connection.
    public func close() throws {
        try self.queue.close()
    }
}
