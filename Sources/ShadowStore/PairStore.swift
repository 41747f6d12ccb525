import Foundation
import GRDB
import ShadowCore

#if canImport(Glibc)
import Glibc
#endif

/// The divergence database: one SQLite file in WAL mode, written by one connection.
///
/// Engineers and report jobs read the same file concurrently with the `sqlite3` shell; WAL lets
/// them read a consistent snapshot without ever blocking the writer
/// (<https://www.sqlite.org/wal.html#concurrency>).
public final class PairStore: Sendable {
    /// The schema version this build writes (`PRAGMA user_version`).
    public static let schemaVersion = 5

    public let path: String
    let queue: DatabaseQueue

    /// Opens (creating if needed) the database, applies pending migrations and asserts the
    /// durability settings.
    ///
    /// - Throws: ``StoreError`` when the file cannot be opened, is not a shadowd database, has a
    ///   newer schema than this build, or refuses WAL mode.
    public init(path: String, synchronous: StorageConfiguration.Synchronous = .normal) throws {
        self.path = path
        try PairStore.createFileIfMissing(path)
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        configuration.label = "shadowd.writer"
        configuration.prepareDatabase { db in
            // auto_vacuum only takes effect before the first table exists; later it is a no-op.
            try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL")
            let mode = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
            guard mode?.lowercased() == "wal" else {
                throw StoreError(.walRefused, "journal_mode is \(mode ?? "unknown"), WAL is required")
            }
            try db.execute(sql: "PRAGMA synchronous = \(synchronous == .full ? "FULL" : "NORMAL")")
            // Truncate the -wal back to 16 MiB whenever a checkpoint resets it, so one long
            // reader cannot leave a huge file behind (<https://www.sqlite.org/pragma.html#pragma_journal_size_limit>).
            try db.execute(sql: "PRAGMA journal_size_limit = 16777216")
            try db.execute(sql: "PRAGMA foreign_keys = ON")
            // 32 MiB of page cache instead of SQLite's 2 MiB: random request ids scatter index
            // inserts over the file, and each miss is a pread on the writer's hot loop.
            try db.execute(sql: "PRAGMA cache_size = -32768")
        }
        do {
            self.queue = try DatabaseQueue(path: path, configuration: configuration)
        } catch let error as StoreError {
            throw error
        } catch let error as DatabaseError {
            throw StoreError(.openFailed, "cannot open \(path): \(error.message ?? "\(error.resultCode)")")
        }
        try self.migrate()
    }

    /// Creates the file with mode 0640 so the service's group (the engineers) can read it and
    /// nobody else can; SQLite gives the -wal and -shm files the same mode.
    private static func createFileIfMissing(_ path: String) throws {
        guard !FileManager.default.fileExists(atPath: path) else { return }
        let descriptor = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o640)
        guard descriptor >= 0 else {
            throw StoreError(.openFailed, "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        fchmod(descriptor, 0o640)
        _ = Glibc.close(descriptor)
    }

    /// The pragmas in force on the writer connection, for startup logs and `/readyz`.
    public func pragmas() throws -> [String: String] {
        try self.queue.read { db in
            var result: [String: String] = [:]
            for name in ["journal_mode", "synchronous", "busy_timeout", "auto_vacuum", "journal_size_limit", "user_version"] {
                result[name] = try String.fetchOne(db, sql: "PRAGMA \(name)") ?? ""
            }
            return result
        }
    }

    /// Caps the database at its current size (`nil` lifts the cap), so the next write that needs a
    /// new page fails with SQLITE_FULL exactly as a full disk would. Fault injection for tests and
    /// drills (<https://www.sqlite.org/pragma.html#pragma_max_page_count>).
    public func simulateFullDisk(_ full: Bool) throws {
        try self.queue.writeWithoutTransaction { db in
            if full {
                let pages = try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 1
                _ = try Int.fetchOne(db, sql: "PRAGMA max_page_count = \(pages)")
            } else {
                _ = try Int.fetchOne(db, sql: "PRAGMA max_page_count = 4294967294")
            }
        }
    }

    /// Checkpoints the WAL into the database and truncates it; used on clean shutdown.
    public func checkpoint() throws {
        try self.queue.writeWithoutTransaction { db in
            _ = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)")
        }
    }

    /// Closes the connection; further use throws.
    public func close() throws {
        try self.queue.close()
    }
}
