import CSQLiteTuning
import GRDBSQLite

/// Process-wide SQLite settings, made once before the process's first connection opens.
enum SQLiteLibrary {
    /// Whether SQLite's memory statistics are off in this process. They are on by default, and
    /// then every allocation inside SQLite takes a global mutex to count its bytes: 8% of the
    /// writer thread in `perf`, ~11% more pairs/s insert-only without it (`BENCHMARKS.md`).
    /// False when something in the process opened a connection before shadowd's code did (a
    /// test, an embedding program): SQLite keeps the setting it started with.
    static let memoryStatisticsOff: Bool = shadow_sqlite_disable_memory_statistics() == SQLITE_OK

    /// Applies the settings if this process has not yet; every path that opens a connection
    /// calls it first.
    static func prepare() {
        _ = Self.memoryStatisticsOff
    }

    /// The bytes SQLite counts as allocated now: 0 while its memory statistics are off.
    static var countedBytes: Int64 { sqlite3_memory_used() }
}
