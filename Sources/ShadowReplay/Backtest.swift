import Logging
import ShadowCore
import ShadowProxy
import ShadowStore

/// `shadowd replay`: re-sends recorded requests of one route to a candidate, scores each answer
/// against the recorded baseline answer with the route's scorer, and writes the pairs
/// (`source = 'replay'`, original request id and time) to an output database the report reads.
///
/// Resumable: requests already replayed against the same candidate name in the output are
/// skipped, so an interrupted run picks up where it stopped. Protected like a live candidate:
/// its concurrency cap and timeouts, and the run stops after a streak of failures.
public final class Backtest: Sendable {
    public struct Options: Sendable {
        public var route: RouteConfiguration
        public var candidate: CandidateConfiguration
        public var fromMicros: Int64?
        public var toMicros: Int64?
        public var limit: Int?
        public var pacing: ReplayPacer.Mode
        /// Methods replayed; others are counted `method_not_allowed`.
        public var methods: Set<String>
        /// Failures in a row (transport errors or 5xx) that stop the run.
        public var maxConsecutiveFailures: Int
        /// The output's bodies stored compressed (`storage.bodies: compressed`), as the daemon does.
        public var compressBodies = false
        /// The daemon's redaction (`storage.redact`, `storage.bodies: hash`), applied to the
        /// replayed answers before they are written, as the daemon applies it.
        public var redactor: Redactor?

        public init(route: RouteConfiguration, candidate: CandidateConfiguration) {
            self.route = route
            self.candidate = candidate
            self.pacing = .unpaced
            self.methods = ["POST", "GET"]
            self.maxConsecutiveFailures = 50
        }
    }

    /// Where a run stands (for a progress line) and how it ended.
    public struct Summary: Sendable, Equatable {
        public var replayed = 0
        public var alreadyDone = 0
        public var candidateFailures = 0
        public var skipped: [ReplayEligibility.Skip: Int] = [:]
        /// Why the run stopped early, if it did.
        public var stopped: String?
    }

    let source: PairReader
    let output: PairStore
    let options: Options
    let client: UpstreamClient
    let scorer: any Scorer
    let logger: Logger

    public init(source: PairReader, output: PairStore, options: Options, client: UpstreamClient, logger: Logger) {
        self.source = source
        self.output = output
        self.options = options
        self.client = client
        self.scorer = options.route.scorer.makeScorer()
        self.logger = logger
    }

    /// Runs until the window is exhausted, the limit is reached, a failure streak stops it, or
    /// the task is cancelled (what was answered so far is written).
    public func run(
        now: @escaping @Sendable () -> Int64,
        sleep: @escaping @Sendable (Int64) async throws -> Void,
        progress: (Summary) -> Void
    ) async throws -> Summary {
        var summary = Summary()
        let done = try self.output.replayedRequestIDs(route: self.options.route.name, candidate: self.options.candidate.name)
        var pacer = ReplayPacer(self.options.pacing)
        let started = now()
        var afterID: Int64 = 0
        var pending: [ExchangeRecord] = []
        var failuresInARow = 0
        let concurrency = max(1, self.options.candidate.maxConcurrency)
        // Whatever ends the run (Ctrl-C cancels it), the answers already collected are written,
        // so a rerun resumes after them instead of sending them again.
        defer {
            if !pending.isEmpty {
                do {
                    try self.write(pending)
                } catch {
                    self.logger.error("writing the last \(pending.count) replayed pair(s) failed: \(error)")
                }
            }
        }
        try await withThrowingTaskGroup(of: ExchangeRecord.self) { group in
            var inFlight = 0
            func collect(_ record: ExchangeRecord) throws {
                inFlight -= 1
                summary.replayed += 1
                let result = record.candidates[0].result
                if result.modelFailed {
                    summary.candidateFailures += 1
                    failuresInARow += 1
                } else {
                    failuresInARow = 0
                }
                pending.append(record)
                if pending.count >= 200 {
                    try self.write(pending)
                    pending.removeAll(keepingCapacity: true)
                }
                progress(summary)
            }
            paging: while true {
                let page = try self.source.recordedExchanges(
                    route: self.options.route.name,
                    fromMicros: self.options.fromMicros,
                    toMicros: self.options.toMicros,
                    afterID: afterID,
                    limit: 500
                )
                guard let last = page.last else { break }
                afterID = last.id
                for exchange in page {
                    if let limit = self.options.limit, summary.replayed + inFlight >= limit { break paging }
                    if done.contains(exchange.requestID) {
                        summary.alreadyDone += 1
                        continue
                    }
                    if let skip = ReplayEligibility.skip(
                        method: exchange.method,
                        storedBody: exchange.requestBody,
                        bodyBytes: exchange.requestBodyBytes,
                        methods: self.options.methods,
                        decoded: exchange.requestBodyDecoded,
                        grpc: exchange.isGRPC
                    ) {
                        summary.skipped[skip, default: 0] += 1
                        continue
                    }
                    if failuresInARow >= self.options.maxConsecutiveFailures {
                        summary.stopped = "\(failuresInARow) failures in a row from \(self.options.candidate.url): stopped"
                        break paging
                    }
                    let due = started + pacer.due(recordedMicros: exchange.receivedAtMicros)
                    let wait = due - now()
                    if wait > 0 { try await sleep(wait) }
                    while inFlight >= concurrency, let record = try await group.next() { try collect(record) }
                    inFlight += 1
                    group.addTask { await self.replay(exchange) }
                }
            }
            while let record = try await group.next() { try collect(record) }
        }
        if !pending.isEmpty {
            try self.write(pending)
            pending.removeAll()
        }
        return summary
    }

    /// Writes replayed pairs as the daemon writes its own: redacted, compressed if configured.
    private func write(_ pending: [ExchangeRecord]) throws {
        _ = try self.output.write(pending, coverage: [:], redactor: self.options.redactor, compressBodies: self.options.compressBodies)
    }

    private func replay(_ exchange: PairReader.RecordedExchange) async -> ExchangeRecord {
        let answer = await self.client.send(
            method: exchange.method,
            path: exchange.path,
            contentType: exchange.requestBodyBytes > 0 ? "application/json" : nil,
            body: exchange.requestBody ?? [],
            requestID: exchange.requestID
        )
        var record = ExchangeRecord(
            requestID: exchange.requestID,
            route: self.options.route.name,
            configRevision: exchange.configRevision,
            receivedAtMicros: exchange.receivedAtMicros,
            method: exchange.method,
            path: exchange.path,
            requestBody: CapturedBody(bytes: exchange.requestBody ?? [], totalBytes: exchange.requestBodyBytes),
            baseline: exchange.baseline,
            candidates: [CandidateResult(name: self.options.candidate.name, result: answer)],
            scorer: self.scorer,
            segment: exchange.segment
        )
        var baseline = record.baseline
        baseline.price = self.options.route.baseline.cost
        record.baseline = baseline
        record.readsUsage = self.options.route.scorer.outputProtocol.isLLM
        record.source = "replay"
        return record
    }
}
