import Foundation
import GRDB
import ShadowCore

extension PairStore {
    /// A batch scored and measured, ready to be written: the scoring step's output, one value
    /// (so a later stage on another thread can hand it over whole).
    public struct ScoredBatch: Sendable {
        public let records: [ExchangeRecord]
        /// Per record, per candidate: its score (nil when not compared).
        let scores: [[Score?]]
        let figures: [(baseline: ArmFigures, candidates: [ArmFigures])]
        /// Coverage counts of these records.
        let coverage: [CoverageCounter.Key: Int]
        let pathCounts: [PathKey: Int]
        let totals: [PathKey: (compared: Int, diverged: Int)]
        /// Token-priced candidate cost per route, charged when the batch is written.
        let tokenCosts: [String: Double]
        /// Per record: which bodies are JSON text (`JSONValidator`), so the writer binds them as
        /// TEXT without SQLite's `json_valid` parsing them again on the writer's thread.
        let jsonBodies: [JSONBodies]
    }

    /// Which of one record's bodies are known to be JSON text.
    struct JSONBodies: Sendable {
        var request: Bool
        var baseline: Bool
        var candidates: [Bool]

        init(_ record: ExchangeRecord) {
            self.request = JSONValidator.isValid(record.requestBody.bytes)
            self.baseline = JSONValidator.isValid(record.baseline.body.bytes)
            self.candidates = record.candidates.map { JSONValidator.isValid($0.result.body.bytes) }
        }
    }

    /// Writes a batch of exchanges: ``score(_:noise:)`` then ``write(_:coverage:events:redactor:chargeCandidateCost:)``.
    @discardableResult
    public func write(
        _ batch: [ExchangeRecord],
        coverage: [CoverageCounter.Key: Int],
        noise: NoiseFloorTracker? = nil,
        events: [GatingEvent] = [],
        redactor: Redactor? = nil,
        chargeCandidateCost: ((String, Double) -> Void)? = nil
    ) throws -> WriteSummary {
        try self.write(
            Self.score(batch, noise: noise),
            coverage: coverage,
            noise: noise,
            events: events,
            redactor: redactor,
            chargeCandidateCost: chargeCandidateCost
        )
    }

    /// Scores a batch (each compared pair, its differing paths and the per-path totals; with a
    /// `noise` tracker, candidates are scored without the route's noisy paths) and counts its
    /// coverage. No I/O: it can run anywhere, apart from the database.
    public static func score(_ batch: [ExchangeRecord], noise: NoiseFloorTracker? = nil) -> ScoredBatch {
        // Binary bodies (gRPC tensor messages) become JSON here, off the event loop, before
        // they are scored and stored.
        let batch = batch.map { $0.decodingBodies() }
        var coverage: [CoverageCounter.Key: Int] = [:]
        var scored: [[Score?]] = []
        scored.reserveCapacity(batch.count)
        var scorers: [String: any Scorer] = [:]
        var pathCounts: [PathKey: Int] = [:]
        var totals: [PathKey: (compared: Int, diverged: Int)] = [:]
        var figures: [(baseline: ArmFigures, candidates: [ArmFigures])] = []
        figures.reserveCapacity(batch.count)
        var tokenCosts: [String: Double] = [:]
        var jsonBodies: [JSONBodies] = []
        jsonBodies.reserveCapacity(batch.count)
        for (offset, record) in batch.enumerated() {
            Self.yieldNow(after: offset)
            jsonBodies.append(JSONBodies(record))
            let baselineFigures = record.baseline.figures(readUsage: record.readsUsage)
            let candidateFigures = record.candidates.map { $0.result.figures(readUsage: record.readsUsage) }
            figures.append((baselineFigures, candidateFigures))
            for (candidate, candidateFigure) in zip(record.candidates, candidateFigures) {
                // The per-request part was charged when the copy was sent; the tokens only now.
                guard let cost = candidateFigure.cost, let price = candidate.result.price else { continue }
                let tokenCost = cost - price.perRequest
                if tokenCost > 0 { tokenCosts[record.route, default: 0] += tokenCost }
            }
            let scores = zip(record.candidates, candidateFigures).map { candidate, candidateFigures -> Score? in
                let scorer = noise?.scorer(for: record, candidate: candidate.name, cache: &scorers) ?? record.scorer
                guard
                    var score = record.score(
                        candidate,
                        using: scorer,
                        baselineBody: baselineFigures.scoringBody,
                        candidateBody: candidateFigures.scoringBody
                    )
                else { return nil }
                // A stream's oddities (malformed events, no [DONE]) travel with the pair.
                let notes = [("baseline_stream", baselineFigures.note), ("candidate_stream", candidateFigures.note)].compactMap { key, note in
                    note.map { (key: key, value: JSONValue.string($0)) }
                }
                if !notes.isEmpty, case .object(let members) = score.explanation { score.explanation = .object(members + notes) }
                return score
            }
            for (candidate, score) in zip(record.candidates, scores) {
                guard let score else { continue }
                let key = PathKey(route: record.route, candidate: candidate.name, path: "")
                totals[key, default: (0, 0)].compared += 1
                totals[key, default: (0, 0)].diverged += score.diverged ? 1 : 0
                for path in score.differingPaths {
                    pathCounts[PathKey(route: record.route, candidate: candidate.name, path: path), default: 0] += 1
                }
            }
            scored.append(scores)
            let minute = record.receivedAtMicros / 60_000_000 * 60
            for candidate in record.candidates {
                let key = CoverageCounter.Key(
                    minute: minute,
                    route: record.route,
                    candidate: candidate.name,
                    reason: record.coverageReason(candidate)
                )
                coverage[key, default: 0] += 1
            }
        }
        return ScoredBatch(
            records: batch,
            scores: scored,
            figures: figures,
            coverage: coverage,
            pathCounts: pathCounts,
            totals: totals,
            tokenCosts: tokenCosts,
            jsonBodies: jsonBodies
        )
    }

    /// Writes a scored batch (one `shadows` row per candidate) and the coverage counts in one
    /// `BEGIN IMMEDIATE` transaction: all or nothing.
    ///
    /// Bodies that are valid JSON are stored as TEXT so `json_extract` works on them; anything
    /// else is stored as a BLOB. Each compared pair also updates the per-path statistics
    /// (`path_stats`, `score_totals`).
    /// - Returns: what was written: coverage counts and per-candidate scoring totals.
    @discardableResult
    public func write(
        _ scoredBatch: ScoredBatch,
        coverage: [CoverageCounter.Key: Int],
        noise: NoiseFloorTracker? = nil,
        events: [GatingEvent] = [],
        redactor: Redactor? = nil,
        chargeCandidateCost: ((String, Double) -> Void)? = nil
    ) throws -> WriteSummary {
        // Bodies as they may be written (redacted paths hashed or removed; a body that cannot be
        // redacted is withheld, and its pairs' explanations say so).
        func stored(_ body: CapturedBody) -> Redactor.Stored { redactor?.body(body) ?? Redactor.Stored(bytes: body.bytes) }
        var coverage = coverage
        coverage.merge(scoredBatch.coverage, uniquingKeysWith: +)
        let (batch, scored, figures) = (scoredBatch.records, scoredBatch.scores, scoredBatch.figures)
        let (pathCounts, totals, tokenCosts) = (scoredBatch.pathCounts, scoredBatch.totals, scoredBatch.tokenCosts)
        // Charged before the rows commit (a reader that sees a pair knows its cost counted), and
        // whether or not they do: the calls were made and paid for either way.
        if let chargeCandidateCost {
            for (route, cost) in tokenCosts { chargeCandidateCost(route, cost) }
        }
        try self.queue.writeWithoutTransaction { db in
            try db.inTransaction(.immediate) {
                let insertExchange = try db.cachedStatement(sql: PairStore.insertExchangeSQL)
                let insertShadow = try db.cachedStatement(sql: PairStore.insertShadowSQL)
                let upsertCoverage = try db.cachedStatement(sql: PairStore.upsertCoverageSQL)
                for (offset, ((record, scores), arms)) in zip(zip(batch, scored), figures).enumerated() {
                    Self.yieldNow(after: offset)
                    // Known JSON is bound as TEXT; redacted bodies and the rest are left to
                    // `json_valid` (see `bodyExpression`).
                    let json = redactor == nil ? scoredBatch.jsonBodies[offset] : nil
                    let b = arms.baseline
                    let requestBody = stored(record.requestBody)
                    let baselineBody = stored(record.baseline.body)
                    var exchange = RowBinder(insertExchange)
                    exchange.bind(record.requestID)
                    exchange.bind(record.route)
                    exchange.bind(record.configRevision)
                    exchange.bind(record.receivedAtMicros)
                    exchange.bind(record.method)
                    exchange.bind(record.path)
                    exchange.bind(body: requestBody.bytes, json: json?.request == true)
                    exchange.bind(record.requestBody.totalBytes)
                    exchange.bind(record.baseline.version)
                    exchange.bind(record.baseline.status)
                    exchange.bind(record.baseline.latencyMicros)
                    exchange.bind(record.baseline.timeToHeadMicros)
                    exchange.bind(record.baseline.contentType)
                    exchange.bind(body: baselineBody.bytes, json: json?.baseline == true)
                    exchange.bind(record.baseline.body.totalBytes)
                    exchange.bind(record.baseline.error?.rawValue)
                    exchange.bind(record.segment)
                    exchange.bind(record.baseline.firstByteMicros)
                    exchange.bind(b.firstTokenMicros)
                    exchange.bind(b.events)
                    exchange.bind(b.promptTokens)
                    exchange.bind(b.completionTokens)
                    exchange.bind(b.cost)
                    exchange.bind(b.lastTokenMicros)
                    exchange.bind(record.source)
                    exchange.bind(record.exposure?.experiment)
                    exchange.bind(record.exposure?.key)
                    exchange.bind(record.exposure?.arm?.rawValue)
                    exchange.bind(record.exposure?.servedBy.rawValue)
                    exchange.bind(record.exposure.map { $0.fallback ? 1 : 0 })
                    exchange.bind(record.baseline.grpcStatus)
                    exchange.bind(record.requestBody.isDecoded ? 1 : nil as Int?)
                    try exchange.execute(in: db)
                    let exchangeID = db.lastInsertedRowID
                    for (index, ((candidate, score), c)) in zip(zip(record.candidates, scores), arms.candidates).enumerated() {
                        let result = candidate.result
                        let candidateBody = stored(result.body)
                        // Equal to the baseline's as stored: kept once, on the exchange.
                        let same =
                            !candidateBody.bytes.isEmpty && result.body.totalBytes == record.baseline.body.totalBytes
                            && Self.sameBytes(candidateBody.bytes, baselineBody.bytes)
                        var shadow = RowBinder(insertShadow)
                        shadow.bind(exchangeID)
                        shadow.bind(candidate.name)
                        shadow.bind(result.version)
                        shadow.bind(result.status)
                        shadow.bind(result.latencyMicros)
                        shadow.bind(result.timeToHeadMicros)
                        shadow.bind(result.contentType)
                        if same {
                            shadow.bind(nil as String?)
                        } else {
                            shadow.bind(body: candidateBody.bytes, json: json?.candidates[index] == true)
                        }
                        shadow.bind(result.body.totalBytes)
                        shadow.bind(result.error?.rawValue)
                        shadow.bind(record.coverageReason(candidate).rawValue)
                        shadow.bind(score == nil ? nil : record.scorer.name)
                        shadow.bind(score?.value)
                        shadow.bind(score.map { $0.diverged ? 1 : 0 })
                        let explanation = score?.explanation.serialized
                        if let redactor {
                            let withheld = [("request_body", requestBody), ("baseline_body", baselineBody), ("candidate_body", candidateBody)]
                                .compactMap { key, body in body.withheld.map { (key: key + "_withheld", value: JSONValue.string($0)) } }
                            shadow.bind(Self.appending(withheld, to: redactor.explanation(explanation)))
                        } else {
                            shadow.bind(explanation)
                        }
                        shadow.bind(score.flatMap { PairStore.differingPathsJSON($0.differingPaths) })
                        shadow.bind(result.firstByteMicros)
                        shadow.bind(c.firstTokenMicros)
                        shadow.bind(c.events)
                        shadow.bind(c.promptTokens)
                        shadow.bind(c.completionTokens)
                        shadow.bind(c.cost)
                        shadow.bind(c.lastTokenMicros)
                        shadow.bind(same ? 1 : nil as Int?)
                        shadow.bind(result.grpcStatus)
                        try shadow.execute(in: db)
                    }
                }
                if !events.isEmpty {
                    let insertEvent = try db.cachedStatement(
                        sql: "INSERT INTO gating_events (at_us, route, candidate, kind, from_state, to_state, reason) VALUES (?, ?, ?, ?, ?, ?, ?)"
                    )
                    for event in events {
                        try insertEvent.execute(arguments: [
                            event.atMicros, event.route, event.candidate, event.kind, event.from, event.to, event.reason,
                        ])
                    }
                }
                for (key, count) in coverage where count > 0 {
                    try upsertCoverage.execute(arguments: [key.minute, key.route, key.candidate, key.reason.rawValue, count])
                }
                if !totals.isEmpty {
                    let upsertPath = try db.cachedStatement(sql: PairStore.upsertPathSQL)
                    let upsertTotal = try db.cachedStatement(sql: PairStore.upsertTotalSQL)
                    for (key, count) in pathCounts {
                        try upsertPath.execute(arguments: [key.route, key.candidate, key.path, count])
                    }
                    for (key, total) in totals {
                        try upsertTotal.execute(arguments: [key.route, key.candidate, total.compared, total.diverged])
                    }
                    if totals.keys.contains(where: { $0.candidate == NoiseFloorConfiguration.replicaName }) {
                        try noise?.refresh(db)
                    }
                }
                return .commit
            }
        }
        return WriteSummary(
            coverage: coverage,
            scored: totals.reduce(into: [:]) { $0[ScoreKey(route: $1.key.route, candidate: $1.key.candidate)] = $1.value }
        )
    }

    /// Gives the core away every 16 pairs of a batch (a cheap no-op when no other thread waits
    /// for it). The writer shares the machine with the event loops: without this, a request
    /// arriving during a batch waited for the scheduler to end the writer's slice, which put the
    /// sidecar's p90 at one connection near 1 ms instead of ~0.25 ms.
    static func yieldNow(after offset: Int) {
        if offset % 16 == 15 { sched_yield() }
    }

    /// Byte equality by `memcmp` (`Array ==` compares element by element).
    static func sameBytes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBytes { a in b.withUnsafeBytes { b in a.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0 } }
    }

    /// What one batch wrote, for metrics.
    public struct WriteSummary: Sendable {
        public var coverage: [CoverageCounter.Key: Int]
        public var scored: [ScoreKey: (compared: Int, diverged: Int)]
    }

    /// A route and candidate.
    public struct ScoreKey: Hashable, Sendable {
        public let route: String
        public let candidate: String
    }

    struct PathKey: Hashable {
        let route: String
        let candidate: String
        let path: String
    }

    static let upsertPathSQL = """
        INSERT INTO path_stats (route, candidate, path, differing) VALUES (?, ?, ?, ?)
        ON CONFLICT (route, candidate, path) DO UPDATE SET differing = differing + excluded.differing
        """

    static let upsertTotalSQL = """
        INSERT INTO score_totals (route, candidate, compared, diverged) VALUES (?, ?, ?, ?)
        ON CONFLICT (route, candidate) DO UPDATE SET compared = compared + excluded.compared, diverged = diverged + excluded.diverged
        """

    /// Loads the noise tracker's state from the statistics already in the database.
    public func refresh(_ noise: NoiseFloorTracker) throws {
        try self.queue.read { try noise.refresh($0) }
    }

    /// JSON bodies become TEXT, everything else a BLOB. A body bound as TEXT was validated by
    /// the scoring stage; SQLite's `json_valid` judges the others (it took a quarter of the
    /// writer's time when it judged them all).
    private static func bodyExpression(_ placeholder: Int) -> String {
        let p = "?\(placeholder)"
        return "CASE WHEN typeof(\(p)) = 'text' THEN \(p) WHEN json_valid(CAST(\(p) AS TEXT)) THEN CAST(\(p) AS TEXT) ELSE \(p) END"
    }

    static let insertExchangeSQL = """
        INSERT INTO exchanges (
            request_id, route, config_revision, received_at_us, method, path, request_body, request_body_bytes,
            baseline_version, baseline_status, baseline_latency_us, baseline_ttfb_us, baseline_content_type,
            baseline_body, baseline_body_bytes, baseline_error, segment, baseline_first_byte_us, baseline_first_token_us, baseline_events,
            baseline_prompt_tokens, baseline_completion_tokens, baseline_cost, baseline_last_token_us, source,
            experiment, experiment_key, arm, served_by, fallback, baseline_grpc_status, request_body_decoded
        ) VALUES (?1, ?2, ?3, ?4, ?5, ?6, \(bodyExpression(7)), ?8, ?9, ?10, ?11, ?12, ?13, \(bodyExpression(14)), ?15, ?16, ?17, ?18, ?19,
            ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32)
        """

    static let insertShadowSQL = """
        INSERT INTO shadows (
            exchange_id, candidate, candidate_version, status, latency_us, ttfb_us, content_type, body, body_bytes,
            error, outcome, scorer, divergence, diverged, explanation, differing_paths, first_byte_us, first_token_us, events,
            prompt_tokens, completion_tokens, cost, last_token_us, body_same, grpc_status
        ) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, \(bodyExpression(8)), ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23,
            ?24, ?25)
        """

    /// An explanation with notes added (an object of its own when there was none).
    static func appending(_ notes: [(key: String, value: JSONValue)], to explanation: String?) -> String? {
        guard !notes.isEmpty else { return explanation }
        guard let explanation else { return JSONValue.object(notes).serialized }
        guard case .object(let members)? = try? JSONParser().parse(explanation) else { return explanation }
        return JSONValue.object(members + notes).serialized
    }

    /// Most differing paths stored per pair; the totals in `path_stats` count them all.
    static let storedPathLimit = 32

    /// The differing paths as a JSON array (`json_each` reads it), or NULL when there are none.
    static func differingPathsJSON(_ paths: [String]) -> String? {
        guard !paths.isEmpty else { return nil }
        return JSONValue.array(paths.prefix(storedPathLimit).map { .string($0) }).serialized
    }

    static let upsertCoverageSQL = """
        INSERT INTO coverage_counts (minute, route, candidate, reason, count) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (minute, route, candidate, reason) DO UPDATE SET count = count + excluded.count
        """
}
