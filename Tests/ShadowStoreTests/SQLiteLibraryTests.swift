import Testing

@testable import ShadowStore

@Suite struct SQLiteLibraryTests {
    /// Opening a store turns SQLite's memory statistics off (they cost a global mutex per
    /// allocation), and the flag that says so tells the truth.
    @Test func aStoreTurnsSQLitesMemoryStatisticsOff() async throws {
        try await withTemporaryDirectory { directory in
            let store = try PairStore(path: directory + "/db.sqlite")
            defer { try? store.close() }
            try store.write((0..<50).map { makeRecord(id: "r\($0)") }, coverage: [:])
            // Another test in this process may have opened a connection of its own first: then
            // SQLite keeps counting, and the flag must say so.
            if SQLiteLibrary.memoryStatisticsOff {
                #expect(SQLiteLibrary.countedBytes == 0)
            } else {
                #expect(SQLiteLibrary.countedBytes > 0)
            }
        }
    }
}
