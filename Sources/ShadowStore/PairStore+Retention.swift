import Foundation
import GRDB

extension PairStore {
    /// What one retention pass removed.
    public struct PruneResult: Sendable, Equatable {
        public var exchangesDeleted = 0
        public var pagesFreed = 0
        public var bytesBefore = 0
        public var bytesAfter = 0
    }

    /// Deletes exchanges (and their candidate rows) older than `olderThanMicros`, then the oldest
    /// ones while the file is larger than `maxBytes`, in transactions of at most `chunk` rows so
    /// the writer is never held for long; then frees the pages (`incremental_vacuum`, stepped to
    /// the end) so the file shrinks.
    public func prune(olderThanMicros: Int64?, maxBytes: Int?, chunk: Int = 5_000) throws -> PruneResult {
        var result = PruneResult()
        result.bytesBefore = try self.fileBytes()
        if let cutoff = olderThanMicros {
            while true {
                let deleted = try self.deleteOldest(chunk, where: "received_at_us < \(cutoff)")
                result.exchangesDeleted += deleted
                if deleted < chunk { break }
            }
            try self.queue.writeWithoutTransaction { db in
                try db.execute(sql: "DELETE FROM coverage_counts WHERE minute < ?", arguments: [cutoff / 1_000_000])
            }
        }
        result.pagesFreed += try self.vacuumFreePages()
        if let maxBytes {
            // The logical size (pages in use), not the file: a long reader can keep the -wal large,
            // and that must never make retention delete everything.
            while try self.logicalBytes() > maxBytes {
                let (rows, size) = try self.queue.read { db in
                    (try Int.fetchOne(db, sql: "SELECT count(*) FROM exchanges") ?? 0, try self.logicalBytes(db))
                }
                guard rows > 0 else { break }
                // Remove a slice of the oldest rows proportional to the excess, at most one chunk.
                let excess = Double(size - maxBytes) / Double(size)
                let target = max(1, min(chunk, Int((Double(rows) * excess).rounded(.up))))
                result.exchangesDeleted += try self.deleteOldest(target, where: "1")
                result.pagesFreed += try self.vacuumFreePages()
            }
        }
        try self.checkpoint()
        result.bytesAfter = try self.fileBytes()
        return result
    }

    private func deleteOldest(_ limit: Int, where condition: String) throws -> Int {
        try self.queue.writeWithoutTransaction { db in
            var deleted = 0
            try db.inTransaction(.immediate) {
                // ON DELETE CASCADE removes the shadows rows (foreign_keys is on for this connection).
                try db.execute(sql: "DELETE FROM exchanges WHERE id IN (SELECT id FROM exchanges WHERE \(condition) ORDER BY id LIMIT \(limit))")
                deleted = db.changesCount
                return .commit
            }
            return deleted
        }
    }

    /// Frees the free-list pages back to the file system. Each `sqlite3_step` frees one page, so
    /// the statement is stepped to completion (GRDB's execute does).
    private func vacuumFreePages() throws -> Int {
        try self.queue.writeWithoutTransaction { db in
            let free = try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0
            guard free > 0 else { return 0 }
            try db.execute(sql: "PRAGMA incremental_vacuum")
            try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
            return free
        }
    }

    /// Pages in use times the page size: the size the file shrinks to.
    func logicalBytes() throws -> Int {
        try self.queue.read { try self.logicalBytes($0) }
    }

    private func logicalBytes(_ db: Database) throws -> Int {
        let pages = try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0
        let free = try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0
        let size = try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 4096
        return (pages - free) * size
    }

    /// Size of the database file and its WAL.
    func fileBytes() throws -> Int {
        let manager = FileManager.default
        let main = (try? manager.attributesOfItem(atPath: self.path)[.size] as? Int) ?? 0
        let wal = (try? manager.attributesOfItem(atPath: self.path + "-wal")[.size] as? Int) ?? 0
        return main + wal
    }
}
