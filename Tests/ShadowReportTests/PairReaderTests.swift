import Foundation
import GRDB
import ShadowStore
import Testing

/// Every way a database can be unusable gives a message naming the file and a distinct code.
@Suite struct PairReaderTests {
    func expectFailure(_ path: String, _ code: StoreError.Code, mentioning text: String, timeout: Duration = .seconds(10)) {
        do {
            _ = try PairReader(path: path, busyTimeout: timeout)
            Issue.record("opened \(path)")
        } catch let error as StoreError {
            #expect(error.code == code, "\(error)")
            #expect(error.message.contains(path) && error.message.contains(text), "\(error)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func missingEmptyCorruptForeignAndNewerFiles() async throws {
        try await withTemporaryDirectory { folder in
            self.expectFailure(folder + "/nope.sqlite", .missing, mentioning: "no database")
            _ = FileManager.default.createFile(atPath: folder + "/empty.sqlite", contents: Data())
            self.expectFailure(folder + "/empty.sqlite", .notShadowDatabase, mentioning: "empty")
            _ = FileManager.default.createFile(
                atPath: folder + "/junk.sqlite",
                contents: Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 37) })
            )
            self.expectFailure(folder + "/junk.sqlite", .corrupt, mentioning: "not a valid SQLite database")
            let foreign = try DatabaseQueue(path: folder + "/foreign.sqlite")
            try await foreign.write { try $0.execute(sql: "CREATE TABLE t(x)") }
            try foreign.close()
            self.expectFailure(folder + "/foreign.sqlite", .notShadowDatabase, mentioning: "without a shadowd schema")
            try Traffic(pairs: 10).write(to: folder + "/newer.sqlite")
            let newer = try DatabaseQueue(path: folder + "/newer.sqlite")
            try await newer.write { try $0.execute(sql: "PRAGMA user_version = 99") }
            try newer.close()
            self.expectFailure(folder + "/newer.sqlite", .newerSchema, mentioning: "schema version 99")
            self.expectFailure(folder, .openFailed, mentioning: "directory")
        }
    }

    @Test func aLockedDatabaseTimesOutWithAClearMessage() async throws {
        try await withTemporaryDirectory { folder in
            let path = folder + "/locked.sqlite"
            try Traffic(pairs: 10).write(to: path)
            // Another connection's exclusive lock (rollback journal mode), held while the reader
            // tries; released afterwards.
            var configuration = Configuration()
            configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA journal_mode = DELETE") }
            let holder = try DatabaseQueue(path: path, configuration: configuration)
            let locked = DispatchSemaphore(value: 0)
            let release = DispatchSemaphore(value: 0)
            DispatchQueue.global().async {
                try? holder.writeWithoutTransaction { db in
                    try db.execute(sql: "BEGIN EXCLUSIVE")
                    locked.signal()
                    release.wait()
                    try db.execute(sql: "ROLLBACK")
                }
            }
            locked.wait()
            self.expectFailure(path, .locked, mentioning: "locked", timeout: .milliseconds(300))
            release.signal()
            _ = try await holder.read { try Int.fetchOne($0, sql: "SELECT 1") }
            try holder.close()
        }
    }
}
