import GRDB
import ShadowCore

/// Writes one recorded exchange as rows: its `exchanges` row, then a `shadows` row per
/// candidate, through the batch's prepared statements
/// (``PairStore/write(_:coverage:noise:events:chargeCandidateCost:)``). It only binds: bodies
/// and explanations come prepared by the scoring stage.
struct RowWriter {
    let exchange: Statement
    let shadow: Statement

    /// Inserts one record with what scoring prepared for it.
    func insert(
        _ record: borrowing ExchangeRecord,
        scores: [Score?],
        explanations: [String?],
        figures: (baseline: ArmFigures, candidates: [ArmFigures]),
        bodies: StoredBodies,
        in db: Database
    ) throws {
        var exchange = RowBinder(self.exchange)
        exchange.bind(record.requestID)
        exchange.bind(record.route)
        exchange.bind(record.configRevision)
        exchange.bind(record.receivedAtMicros)
        exchange.bind(record.method)
        exchange.bind(record.path)
        exchange.bind(body: bodies.request.bytes, json: bodies.request.json)
        exchange.bind(record.requestBody.totalBytes)
        exchange.bind(record.baseline.version)
        exchange.bind(record.baseline.status)
        exchange.bind(record.baseline.latencyMicros)
        exchange.bind(record.baseline.timeToHeadMicros)
        exchange.bind(record.baseline.contentType)
        exchange.bind(body: bodies.baseline.bytes, json: bodies.baseline.json)
        exchange.bind(record.baseline.body.totalBytes)
        exchange.bind(record.baseline.error?.rawValue)
        exchange.bind(record.segment)
        exchange.bind(record.baseline.firstByteMicros)
        exchange.bind(figures: figures.baseline)
        exchange.bind(record.source)
        exchange.bind(record.exposure?.experiment)
        exchange.bind(record.exposure?.key)
        exchange.bind(record.exposure?.arm?.rawValue)
        exchange.bind(record.exposure?.servedBy.rawValue)
        exchange.bind(record.exposure.map { $0.fallback ? 1 : 0 })
        exchange.bind(record.baseline.grpcStatus)
        exchange.bind(record.requestBody.isDecoded ? 1 : nil as Int?)
        exchange.bind(bodies.request.zlib)
        exchange.bind(bodies.baseline.zlib)
        try exchange.execute(in: db)
        let exchangeID = db.lastInsertedRowID
        // By index: zipping the arrays built and copied a tuple per row (~3% of the writer thread).
        let candidates = record.candidates
        for index in candidates.indices where index < scores.count && index < figures.candidates.count {
            let candidate = candidates[index]
            let score = scores[index]
            let result = candidate.result
            let body = bodies.candidates[index]
            var shadow = RowBinder(self.shadow)
            shadow.bind(exchangeID)
            shadow.bind(candidate.name)
            shadow.bind(result.version)
            shadow.bind(result.status)
            shadow.bind(result.latencyMicros)
            shadow.bind(result.timeToHeadMicros)
            shadow.bind(result.contentType)
            if body.same {
                shadow.bind(nil as String?)
            } else {
                shadow.bind(body: body.bytes, json: body.json)
            }
            shadow.bind(result.body.totalBytes)
            shadow.bind(result.error?.rawValue)
            shadow.bind(record.coverageReason(candidate).rawValue)
            shadow.bind(score == nil ? nil : record.scorer.name)
            shadow.bind(score?.value)
            shadow.bind(score.map { $0.diverged ? 1 : 0 })
            shadow.bind(explanations[index])
            shadow.bind(score.flatMap { PairStore.differingPathsJSON($0.differingPaths) })
            shadow.bind(result.firstByteMicros)
            shadow.bind(figures: figures.candidates[index])
            shadow.bind(body.same ? 1 : nil as Int?)
            shadow.bind(result.grpcStatus)
            shadow.bind(body.zlib)
            try shadow.execute(in: db)
        }
    }
}

extension RowBinder {
    /// An arm's streaming and cost columns, in both tables' order: first token, events, prompt
    /// and completion tokens, cost, last token.
    mutating func bind(figures: ArmFigures) {
        self.bind(figures.firstTokenMicros)
        self.bind(figures.events)
        self.bind(figures.promptTokens)
        self.bind(figures.completionTokens)
        self.bind(figures.cost)
        self.bind(figures.lastTokenMicros)
    }
}
