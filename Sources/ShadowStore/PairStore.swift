import Foundation
import GRDB
import ShadowCore
import Synchronization

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
    public static let schemaVersion = 12

    public let path: String
    let synchronous: StorageConfiguration.Synchronous
    /// The open connection and the identity (device, inode) of the file it opened.
    private let connection: Mutex<(queue: DatabaseQueue, file: FileIdentity?)>

    /// The writer connection.
    var queue: DatabaseQueue { self.connection.withLock { $0.queue } }

    /// Opens (creating if needed) the database, applies pending migrations and asserts the
    /// durability settings.
    ///
    /// - Throws: ``StoreError`` when the file cannot be opened, is not a shadowd database, has a
    ///   newer schema than this build, or refuses WAL mode.
    public init(path: String, synchronous: StorageConfiguration.Synchronous = .normal) throws {
        self.path = path
        self.synchronous = synchronous
        let queue = try Self.connect(path: path, synchronous: synchronous)
        self.connection = Mutex((queue, FileIdentity(path: path)))
        try self.migrate()
    }

    private static func connect(path: String, synchronous: StorageConfiguration.Synchronous) throws -> DatabaseQueue {
        SQLiteLibrary.prepare()
        try PairStore.createFileIfMissing(path)
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        configuration.label = "shadowd.writer"
        configuration.prepareDatabase { db in
            // page_size and auto_vacuum only take effect before the first table exists; later
            // they are no-ops. 16 KiB pages: a pair carries ~3 KiB of bodies, and with 4 KiB
            // pages most rows spill to overflow pages (the recorder wrote ~40% fewer pairs/s).
            try db.execute(sql: "PRAGMA page_size = 16384")
            try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL")
            let mode = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
            guard mode?.lowercased() == "wal" else {
                throw StoreError(.walRefused, "journal_mode is \(mode ?? "unknown"), WAL is required")
            }
            try db.execute(sql: "PRAGMA synchronous = \(synchronous == .full ? "FULL" : "NORMAL")")
            // Checkpoint every 4000 pages (64 MiB) instead of 1000: hot index and leaf pages are
            // copied back once per checkpoint, not four times (the recorder gained ~25%). The
            // -wal is truncated back to that size whenever a checkpoint resets it, so one long
            // reader cannot leave a huge file behind (<https://www.sqlite.org/pragma.html#pragma_journal_size_limit>).
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 4000")
            try db.execute(sql: "PRAGMA journal_size_limit = 67108864")
            try db.execute(sql: "PRAGMA foreign_keys = ON")
            // 32 MiB of page cache instead of SQLite's 2 MiB: client-given request ids are
            // random and scatter index inserts over the file; each miss is a pread on the
            // writer's hot loop (the sidecar's own ids are time-ordered and append).
            try db.execute(sql: "PRAGMA cache_size = -32768")
            db.add(function: BodyCompression.uncompressFunction)
        }
        do {
            return try DatabaseQueue(path: path, configuration: configuration)
        } catch let error as StoreError {
            throw error
        } catch let error as DatabaseError {
            throw StoreError(.openFailed, "cannot open \(path): \(error.message ?? "\(error.resultCode)")")
        }
    }

    /// Reopens the database when the file at ``path`` is no longer the one open (deleted,
    /// moved away or replaced while running): SQLite would otherwise keep writing into the
    /// unlinked file, and every record from then on would be lost without a trace. A deleted
    /// file is created afresh with the current schema.
    ///
    /// - Returns: whether it reopened.
    /// - Throws: ``StoreError`` when the path cannot be opened now (the caller retries later).
    public func reopenIfReplaced() throws -> Bool {
        let current = FileIdentity(path: self.path)
        let opened = self.connection.withLock { $0.file }
        guard current == nil || current != opened else { return false }
        // Close first: closing checkpoints the old WAL and removes it, so the new file cannot
        // pick up frames that belong to the old one. Until the open succeeds, writes fail and
        // are counted, and the next batch tries again.
        try? self.queue.close()
        let queue = try Self.connect(path: self.path, synchronous: self.synchronous)
        self.connection.withLock { $0 = (queue, FileIdentity(path: self.path)) }
        try self.migrate()
        return true
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

/// Which file a path names right now: device and inode.
struct FileIdentity: Equatable {
    var device: UInt64
    var inode: UInt64

    /// nil when nothing is at `path`.
    init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        self.device = UInt64(info.st_dev)
        self.inode = UInt64(info.st_ino)
    }
}
