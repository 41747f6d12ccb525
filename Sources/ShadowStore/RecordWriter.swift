import Logging
import ServiceLifecycle
import ShadowCore

/// The only task that writes to the database: drains the record queue in batches.
///
/// It waits for a batch to fill for at most `flushInterval` (the window a `kill -9` can lose),
/// writes it in one transaction together with the coverage counts, and on graceful shutdown
/// drains everything still queued, checkpoints the WAL and returns. Put it first in the service
/// group so it stops last.
public final class RecordWriter: Service, Sendable {
    public let queue: RecordQueue<ExchangeRecord>
    public let coverage: CoverageCounter
    let store: PairStore
    /// The A/A noise floor this writer scores against.
    public let noise: NoiseFloorTracker?
    let batchSize: Int
    let flushInterval: Duration
    let logger: Logger
    /// Written and failed counts, for `/readyz` and `/stats`.
    public let statistics = WriterStatistics()

    public init(
        store: PairStore,
        queue: RecordQueue<ExchangeRecord>,
        coverage: CoverageCounter,
        storage: StorageConfiguration,
        noise: NoiseFloorTracker? = nil,
        logger: Logger
    ) {
        self.store = store
        self.noise = noise
        self.queue = queue
        self.coverage = coverage
        self.batchSize = storage.batchSize
        self.flushInterval = storage.flushInterval
        self.logger = logger
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                // Coverage counts must reach the table even when no record flows (all traffic
                // unsampled, candidate down…), so the writer is woken at least once a second.
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(1))
                        self.queue.wake()
                    }
                }
                await self.drainLoop()
                group.cancelAll()
            }
            self.flush([])
            do {
                try self.store.checkpoint()
            } catch {
                self.logger.warning("final WAL checkpoint failed", metadata: ["error": "\(error)"])
            }
            let totals = self.statistics.snapshot()
            self.logger.info(
                "writer stopped",
                metadata: ["shadow.records.written": "\(totals.written)", "shadow.records.failed": "\(totals.failed)"]
            )
        } onGracefulShutdown: {
            self.queue.finish()
        }
    }

    private func drainLoop() async {
        while let first = await self.queue.nextBatch(maximum: self.batchSize) {
            self.statistics.beat()
            var batch = first
            if !batch.isEmpty, batch.count < self.batchSize, !self.queue.isFinished {
                try? await Task.sleep(for: self.flushInterval)
                batch += self.queue.takeAvailable(maximum: self.batchSize - batch.count)
            }
            self.flush(batch)
        }
    }

    /// Writes one batch with the pending coverage counts. On failure (disk full, I/O error) the
    /// records are counted as `write_failed`, never silently lost, and the proxy keeps serving.
    private func flush(_ batch: [ExchangeRecord]) {
        let counts = self.coverage.drain()
        if batch.isEmpty && counts.isEmpty { return }
        do {
            try self.store.write(batch, coverage: counts, noise: self.noise)
            if self.statistics.snapshot().lastBatchFailed {
                self.logger.notice("recording resumed")
            }
            self.statistics.recordWritten(batch.count)
        } catch {
            // The transaction rolled back as a whole (GRDB issues the ROLLBACK): nothing partial
            // is left behind, and the next batch tries again, so recording resumes by itself
            // once space returns.
            self.coverage.restore(counts)
            for record in batch {
                for candidate in record.candidates {
                    self.coverage.add(route: record.route, candidate: candidate.name, reason: .writeFailed, atMicros: record.receivedAtMicros)
                }
            }
            let wasFailing = self.statistics.snapshot().lastBatchFailed
            self.statistics.recordFailed(batch.count)
            // One error line when recording degrades, not one per batch.
            if !wasFailing {
                self.logger.error(
                    "recording failed; records are dropped and counted as write_failed until writes succeed again",
                    metadata: ["error": "\(error)", "shadow.batch.size": "\(batch.count)"]
                )
            }
        }
    }
}
