import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Counters the writer keeps for logs and the admin listener.
public final class WriterStatistics: Sendable {
    private let counts = Mutex((written: 0, failed: 0, lastBatchFailed: false))

    func recordWritten(_ count: Int) {
        self.counts.withLock {
            $0.written += count
            $0.lastBatchFailed = false
        }
    }

    func recordFailed(_ count: Int) {
        self.counts.withLock {
            $0.failed += count
            $0.lastBatchFailed = true
        }
    }

    private let reopened = Atomic<Int>(0)

    func recordReopened() { self.reopened.add(1, ordering: .relaxed) }

    /// Times the database was reopened because its file was deleted or replaced while running.
    public var databaseReopened: Int { self.reopened.load(ordering: .relaxed) }

    private let heartbeat = Atomic<Int64>(WriterStatistics.monotonicSeconds())

    /// The writer loop is alive (called at least once a second).
    func beat() { self.heartbeat.store(Self.monotonicSeconds(), ordering: .relaxed) }

    /// Seconds since the writer loop last showed it is alive.
    public func secondsSinceHeartbeat() -> Int64 { Self.monotonicSeconds() - self.heartbeat.load(ordering: .relaxed) }

    static func monotonicSeconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Int64(spec.tv_sec)
    }

    /// Records written and records lost to write failures since start; whether the last batch failed.
    public func snapshot() -> (written: Int, failed: Int, lastBatchFailed: Bool) { self.counts.withLock { $0 } }
}
