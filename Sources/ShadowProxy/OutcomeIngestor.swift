import NIOCore
import NIOPosix
import ShadowCore
import ShadowStore

#if canImport(Glibc)
import Glibc
#endif

/// Parses and stores outcome batches on a thread of its own that runs only on CPU the event
/// loops leave (SCHED_IDLE on Linux, and nice +10 should that be refused): a bulk upload of
/// outcomes slows itself rather than the proxy. A woken event loop preempts it at once, which
/// nice alone does not promise (it cost the proxy's p50 in `scripts/bench/ab`).
final class OutcomeIngestor: Sendable {
    /// What became of one batch.
    enum Outcome: Sendable {
        /// A line was wrong: nothing of the batch was stored.
        case rejected(OutcomeBatchError)
        case stored(PairStore.OutcomeInsert)
        /// The database refused the transaction: nothing of the batch was kept.
        case failed(String)
    }

    /// The niceness of the ingestion thread (0 is the event loops'), and its scheduling policy.
    static let niceness: Int32 = 10
    /// Linux's SCHED_IDLE (behind _GNU_SOURCE in the C headers).
    static let schedIdle: Int32 = 5
    /// At most 15 characters (the kernel's limit).
    static let threadName = "shadowd-outcome"

    private let pool: NIOThreadPool
    private let store: PairStore

    init(store: PairStore) {
        self.store = store
        self.pool = NIOThreadPool(numberOfThreads: 1)
        self.pool.start()
        // Linux keeps a niceness per thread, and `who` 0 is the calling thread: this lowers
        // only the ingestion thread (named so `top -H` and tests can find it).
        self.pool.submit { _ in
            NamedThread.nameCurrent(Self.threadName)
            #if os(Linux)
            _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, Self.niceness)
            var parameters = sched_param(sched_priority: 0)
            _ = sched_setscheduler(0, Self.schedIdle, &parameters)
            #endif
        }
    }

    /// Validates a batch whole against `parser` and stores it in one transaction; the answer
    /// arrives on `eventLoop`.
    func ingest(_ body: ByteBuffer, parser: OutcomeBatchParser, on eventLoop: any EventLoop) -> EventLoopFuture<Outcome> {
        let store = self.store
        return self.pool.runIfActive(eventLoop: eventLoop) {
            switch parser.parse(body.readableBytesView, nowMicros: SidecarClock.wallMicros()) {
            case .failure(let error):
                return .rejected(error)
            case .success(let events):
                do {
                    return .stored(try store.insertOutcomes(events))
                } catch {
                    return .failed("\(error)")
                }
            }
        }
    }

    func shutdown() async throws {
        try await self.pool.shutdownGracefully()
    }
}
