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
        /// Per record: its bodies as stored (redacted, compressed, equal answers flagged).
        let bodies: [StoredBodies]
        /// Per record, per candidate: the explanation as stored.
        let explanations: [[String?]]
    }

    /// Writes a batch of exchanges: ``score(_:noise:redactor:compressBodies:)`` then
    /// ``write(_:coverage:noise:events:chargeCandidateCost:)``.
    @discardableResult
    public func write(
        _ batch: [ExchangeRecord],
        coverage: [CoverageCounter.Key: Int],
        noise: NoiseFloorTracker? = nil,
        events: [GatingEvent] = [],
        redactor: Redactor? = nil,
        compressBodies: Bool = false,
        chargeCandidateCost: ((String, Double) -> Void)? = nil
    ) throws -> WriteSummary {
        try self.write(
            Self.score(batch, noise: noise, redactor: redactor, compressBodies: compressBodies),
            coverage: coverage,
            noise: noise,
            events: events,
            chargeCandidateCost: chargeCandidateCost
        )
    }

    /// Scores a batch (each compared pair, its differing paths and the per-path totals; with a
    /// `noise` tracker, candidates are scored without the route's noisy paths), counts its
    /// coverage, and prepares its bodies as they will be stored: redacted by `redactor` (scoring
    /// saw the real ones), compressed with `compressBodies` (`storage.bodies: compressed`, see
    /// ``BodyCompression``). No I/O: it can run anywhere, apart from the database.
    public static func score(
        _ batch: consuming [ExchangeRecord],
        noise: NoiseFloorTracker? = nil,
        redactor: Redactor? = nil,
        compressBodies: Bool = false
    ) -> ScoredBatch {
        var batch = batch
        // Binary bodies (gRPC tensor messages) become JSON here, off the event loop, before
        // they are scored and stored, in place.
        for index in batch.indices where batch[index].bodyDecoder != nil {
            batch[index].decodeBodies()
        }
        // One zlib state per batch; should it fail to start (out of memory), bodies are stored
        // as they are.
        var scoring = BatchScoring(
            capacity: batch.count,
            noise: noise,
            redactor: redactor?.isActive == true ? redactor : nil,
            compressor: compressBodies ? try? BodyCompression.Compressor() : nil
        )
        // Each record is lent, not copied, to the scoring (`borrowing` makes a copy an error).
        batch.withUnsafeBufferPointer { records in
            for offset in records.indices {
                Self.yieldNow(after: offset)
                scoring.add(records[offset])
            }
        }
        return ScoredBatch(
            records: batch,
            scores: scoring.scores,
            figures: scoring.figures,
            coverage: scoring.coverage,
            pathCounts: scoring.pathCounts,
            totals: scoring.totals,
            tokenCosts: scoring.tokenCosts,
            bodies: scoring.bodies,
            explanations: scoring.explanations
        )
    }

    /// Writes a scored batch (one `shadows` row per candidate) and the coverage counts in one
    /// `BEGIN IMMEDIATE` transaction: all or nothing.
    ///
    /// Bodies that are valid JSON are stored as TEXT so `json_extract` works on them; anything
    /// else is stored as a BLOB (compressed bodies too, with their length in `*_body_zlib`).
    /// Each compared pair also updates the per-path statistics (`path_stats`, `score_totals`).
    /// - Returns: what was written: coverage counts and per-candidate scoring totals.
    @discardableResult
    public func write(
        _ scoredBatch: ScoredBatch,
        coverage: [CoverageCounter.Key: Int],
        noise: NoiseFloorTracker? = nil,
        events: [GatingEvent] = [],
        chargeCandidateCost: ((String, Double) -> Void)? = nil
    ) throws -> WriteSummary {
        var coverage = coverage
        coverage.merge(scoredBatch.coverage, uniquingKeysWith: +)
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
                let rows = RowWriter(exchange: insertExchange, shadow: insertShadow)
                // Each record is lent, not copied, to the row writer.
                try scoredBatch.records.withUnsafeBufferPointer { records in
                    for offset in records.indices {
                        Self.yieldNow(after: offset)
                        try rows.insert(
                            records[offset],
                            scores: scoredBatch.scores[offset],
                            explanations: scoredBatch.explanations[offset],
                            figures: scoredBatch.figures[offset],
                            bodies: scoredBatch.bodies[offset],
                            in: db
                        )
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
            experiment, experiment_key, arm, served_by, fallback, baseline_grpc_status, request_body_decoded, request_body_zlib,
            baseline_body_zlib
        ) VALUES (?1, ?2, ?3, ?4, ?5, ?6, \(bodyExpression(7)), ?8, ?9, ?10, ?11, ?12, ?13, \(bodyExpression(14)), ?15, ?16, ?17, ?18, ?19,
            ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34)
        """

    static let insertShadowSQL = """
        INSERT INTO shadows (
            exchange_id, candidate, candidate_version, status, latency_us, ttfb_us, content_type, body, body_bytes,
            error, outcome, scorer, divergence, diverged, explanation, differing_paths, first_byte_us, first_token_us, events,
            prompt_tokens, completion_tokens, cost, last_token_us, body_same, grpc_status, body_zlib
        ) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, \(bodyExpression(8)), ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23,
            ?24, ?25, ?26)
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
