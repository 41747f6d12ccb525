import Synchronization

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

    /// Records written and records lost to write failures since start; whether the last batch failed.
    public func snapshot() -> (written: Int, failed: Int, lastBatchFailed: Bool) { self.counts.withLock { $0 } }
}
