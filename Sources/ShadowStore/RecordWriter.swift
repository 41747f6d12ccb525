import Foundation
import Logging
import Metrics
import ServiceLifecycle
import ShadowCore
import Synchronization

/// The only task that writes to the database: drains the record queue in batches.
///
/// It waits for a batch to fill for at most `flushInterval` (the window a `kill -9` can lose),
/// writes it in one transaction together with the coverage counts, and on graceful shutdown
/// drains everything still queued, checkpoints the WAL and returns. Put it first in the service
/// group so it stops last.
public final class RecordWriter: Service, Sendable {
    public let queue: RecordQueue<ExchangeRecord>
    public let coverage: CoverageCounter
    /// Gate state changes, written with the next batch.
    public let events: GatingEventLog
    /// Fed with every written batch.
    let ramp: RampController?
    let experiments: ExperimentController?
    /// Applied to everything written.
    let redactor: Redactor?
    let store: PairStore
    let metrics: (any MetricsFactory)?

    /// Size of the database file and its WAL, for `/metrics`.
    public func databaseBytes() throws -> Int { try self.store.fileBytes() }

    /// The A/A noise floor this writer scores against.
    public let noise: NoiseFloorTracker?
    let batchSize: Int
    let flushInterval: Duration
    /// `storage.bodies: compressed`.
    let compressBodies: Bool
    let logger: Logger
    /// Written and failed counts, for `/readyz` and `/stats`.
    public let statistics = WriterStatistics()
    /// Each candidate's compared share over the last minute, fed with every written batch.
    let watch: Mutex<CoverageWatch>
    /// Hears the token-priced cost of each candidate answer written (route, cost), for the
    /// route's daily cost budget.
    let chargeCandidateCost: (@Sendable (String, Double) -> Void)?

    public init(
        store: PairStore,
        queue: RecordQueue<ExchangeRecord>,
        coverage: CoverageCounter,
        events: GatingEventLog = GatingEventLog(),
        storage: StorageConfiguration,
        coverageAlertPercent: Double = 50,
        noise: NoiseFloorTracker? = nil,
        ramp: RampController? = nil,
        experiments: ExperimentController? = nil,
        redactor: Redactor? = nil,
        metrics: (any MetricsFactory)? = nil,
        chargeCandidateCost: (@Sendable (String, Double) -> Void)? = nil,
        logger: Logger
    ) {
        self.chargeCandidateCost = chargeCandidateCost
        self.metrics = metrics
        self.store = store
        self.noise = noise
        self.queue = queue
        self.coverage = coverage
        self.events = events
        self.ramp = ramp
        self.experiments = experiments
        self.redactor = redactor?.isActive == true ? redactor : nil
        self.batchSize = storage.batchSize
        self.flushInterval = storage.flushInterval
        self.compressBodies = storage.bodies == .compressed
        self.logger = logger
        self.watch = Mutex(CoverageWatch(threshold: coverageAlertPercent / 100))
    }

    public func run() async throws {
        // Cancellation (another service failed, e.g. the listener could not bind) ends the
        // writer like a graceful shutdown: it drains what is queued and returns. Without this
        // the loop would wait for records forever and the process would never exit.
        await withTaskCancellationHandler {
            await self.drainUntilFinished()
        } onCancel: {
            self.queue.finish()
        }
    }

    private func drainUntilFinished() async {
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
            self.flush(PairStore.score([]))
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

    /// Thread names (at most 15 characters), for `top -H`, `perf` and tests.
    static let scoringThreadName = "shadowd-score"
    static let writingThreadName = "shadowd-write"

    /// Two stages on threads of their own, so neither waits for the cooperative pool (when it
    /// was busy, a writer running on it fell seconds behind): one takes batches from the queue,
    /// scores them and prepares their bodies (`PairStore.score`: redaction, compression; no
    /// I/O), the other binds and writes them. Scoring runs one batch
    /// ahead of the database and no further; a whole batch crosses between the threads.
    private func drainLoop() async {
        let handOff = BatchHandOff<PairStore.ScoredBatch>(capacity: 1)
        let spent = SpentBatches()
        await withCheckedContinuation { (finished: CheckedContinuation<Void, Never>) in
            NamedThread.start(Self.scoringThreadName) {
                self.scoreBatches(into: handOff, dropping: spent)
            }
            NamedThread.start(Self.writingThreadName) {
                while let scored = handOff.take() {
                    self.flush(scored)
                    spent.add(scored)
                }
                finished.resume()
            }
        }
    }

    /// Batches the writer is done with, freed by the scoring thread, which built most of what
    /// they hold: freed on the writer, they took ~7% of its time (the recorder's bottleneck when
    /// the two threads have a core each) and contended with scoring for malloc's arena lock.
    private final class SpentBatches: Sendable {
        private let batches = Mutex<[PairStore.ScoredBatch]>([])

        func add(_ batch: PairStore.ScoredBatch) {
            self.batches.withLock { $0.append(batch) }
        }

        /// Frees the batches added so far, on the calling thread (after the lock is released).
        func drop() {
            _ = self.batches.withLock { batches in
                var taken: [PairStore.ScoredBatch] = []
                swap(&taken, &batches)
                return taken
            }
        }
    }

    /// Takes batches from the queue (after a lone record, waiting up to `flushInterval` for the
    /// batch to fill), scores them and hands them to the writing thread until the queue ends;
    /// frees the batches the writer finished on the way.
    private func scoreBatches(into handOff: BatchHandOff<PairStore.ScoredBatch>, dropping spent: SpentBatches) {
        let fillWindow = Double(self.flushInterval.components.seconds) + Double(self.flushInterval.components.attoseconds) / 1e18
        while let first = self.queue.nextBatchBlocking(maximum: self.batchSize) {
            spent.drop()
            // Stops when the writer is stuck: `put` waits for it, and `/readyz` sees the silence.
            self.statistics.beat()
            var batch = first
            if !batch.isEmpty, batch.count < self.batchSize, !self.queue.isFinished {
                Thread.sleep(forTimeInterval: fillWindow)
                batch += self.queue.takeAvailable(maximum: self.batchSize - batch.count)
            }
            handOff.put(PairStore.score(batch, noise: self.noise, redactor: self.redactor, compressBodies: self.compressBodies))
        }
        handOff.close()
    }

    /// Coverage, divergence and batch figures for `/metrics`, once the transaction committed.
    private func export(_ summary: PairStore.WriteSummary, batchSize: Int, took: Duration) {
        guard let factory = self.metrics else { return }
        for (key, count) in summary.coverage where count > 0 {
            Counter(
                label: "shadowd_coverage_total",
                dimensions: [("route", key.route), ("candidate", key.candidate), ("reason", key.reason.rawValue)],
                factory: factory
            ).increment(by: count)
        }
        for (key, total) in summary.scored {
            let dimensions = [("route", key.route), ("candidate", key.candidate)]
            Counter(label: "shadowd_pairs_compared_total", dimensions: dimensions, factory: factory).increment(by: total.compared)
            Counter(label: "shadowd_pairs_diverged_total", dimensions: dimensions, factory: factory).increment(by: total.diverged)
        }
        if batchSize > 0 {
            Recorder(label: "shadowd_writer_batch_size", factory: factory).record(batchSize)
            Metrics.Timer(label: "shadowd_writer_batch_duration_seconds", factory: factory).recordNanoseconds(took.microseconds * 1000)
        }
    }

    /// Feeds the compared-share watch, exports each candidate's share and logs the episodes in
    /// which it fell below the alert threshold (once at the start, once at the end).
    private func watchCoverage(_ coverage: [CoverageCounter.Key: Int]) {
        let now = UInt64(DispatchTime.now().uptimeNanoseconds)
        let (alerts, shares) = self.watch.withLock { watch in
            watch.add(coverage, nowNanos: now)
            return (watch.evaluate(nowNanos: now), watch.shares(nowNanos: now))
        }
        if let factory = self.metrics {
            for entry in shares {
                Gauge(label: "shadowd_compared_share", dimensions: [("route", entry.route), ("candidate", entry.candidate)], factory: factory)
                    .record(entry.share)
            }
        }
        for alert in alerts {
            let metadata: Logger.Metadata = [
                "shadow.route": "\(alert.route)", "shadow.candidate": "\(alert.candidate)",
                "shadow.compared": "\(alert.compared)", "shadow.intended": "\(alert.intended)",
            ]
            let percent = (alert.share * 1000).rounded() / 10
            if alert.low {
                self.logger.warning(
                    "candidate compared on \(percent)% of its copies over the last minute, below limits.coverage_alert_percent; see the coverage table for why (circuit_open, queue_full, queue_expired, candidate_error)",
                    metadata: metadata
                )
            } else {
                self.logger.notice("candidate compared on \(percent)% of its copies over the last minute again", metadata: metadata)
            }
        }
    }

    /// Writes one batch with the pending coverage counts. On failure (disk full, I/O error) the
    /// records are counted as `write_failed`, never silently lost, and the proxy keeps serving.
    private func flush(_ scored: PairStore.ScoredBatch) {
        let batch = scored.records
        let counts = self.coverage.drain()
        let events = self.events.drain()
        if batch.isEmpty && counts.isEmpty && events.isEmpty { return }
        do {
            if try self.store.reopenIfReplaced() {
                self.statistics.recordReopened()
                self.logger.error(
                    "the database file was deleted or replaced while running; recording continues in a new file",
                    metadata: ["shadow.database": "\(self.store.path)"]
                )
            }
            let started = ContinuousClock.now
            let summary = try self.store.write(
                scored,
                coverage: counts,
                noise: self.noise,
                events: events,
                chargeCandidateCost: self.chargeCandidateCost
            )
            self.export(summary, batchSize: batch.count, took: ContinuousClock.now - started)
            self.ramp?.observe(batch, summary: summary)
            self.experiments?.observe(batch)
            self.watchCoverage(summary.coverage)
            if self.statistics.snapshot().lastBatchFailed {
                self.logger.notice("recording resumed")
            }
            self.statistics.recordWritten(batch.count)
        } catch {
            // The transaction rolled back as a whole (GRDB issues the ROLLBACK): nothing partial
            // is left behind, and the next batch tries again, so recording resumes by itself
            // once space returns.
            self.coverage.restore(counts)
            self.events.restore(events)
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
