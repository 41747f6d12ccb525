import GRDB
import ShadowCore

/// Writes one recorded exchange as rows: its `exchanges` row, then a `shadows` row per
/// candidate, through the batch's prepared statements (``PairStore/write(_:coverage:noise:events:redactor:compressBodies:chargeCandidateCost:)``).
struct RowWriter {
    let exchange: Statement
    let shadow: Statement
    let redactor: Redactor?
    /// Set with `storage.bodies: compressed`.
    let compressor: BodyCompression.Compressor?

    /// Bodies as they may be written (redacted paths hashed or removed; a body that cannot be
    /// redacted is withheld, and its pairs' explanations say so).
    private func stored(_ body: CapturedBody) -> Redactor.Stored {
        self.redactor?.body(body) ?? Redactor.Stored(bytes: body.bytes)
    }

    /// A stored body as bound: compressed, with its length before, when that pays; else as it is.
    private func packed(_ bytes: [UInt8]) -> (bytes: [UInt8], zlib: Int?) {
        guard let compressed = self.compressor?.compress(bytes) else { return (bytes, nil) }
        return (compressed, bytes.count)
    }

    /// Inserts one record; `json` says which bodies are known JSON (bound as TEXT).
    func insert(
        _ record: borrowing ExchangeRecord,
        scores: [Score?],
        figures: (baseline: ArmFigures, candidates: [ArmFigures]),
        json: PairStore.JSONBodies?,
        in db: Database
    ) throws {
        let requestBody = self.stored(record.requestBody)
        let baselineBody = self.stored(record.baseline.body)
        let request = self.packed(requestBody.bytes)
        let baseline = self.packed(baselineBody.bytes)
        var exchange = RowBinder(self.exchange)
        exchange.bind(record.requestID)
        exchange.bind(record.route)
        exchange.bind(record.configRevision)
        exchange.bind(record.receivedAtMicros)
        exchange.bind(record.method)
        exchange.bind(record.path)
        exchange.bind(body: request.bytes, json: request.zlib == nil && json?.request == true)
        exchange.bind(record.requestBody.totalBytes)
        exchange.bind(record.baseline.version)
        exchange.bind(record.baseline.status)
        exchange.bind(record.baseline.latencyMicros)
        exchange.bind(record.baseline.timeToHeadMicros)
        exchange.bind(record.baseline.contentType)
        exchange.bind(body: baseline.bytes, json: baseline.zlib == nil && json?.baseline == true)
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
        exchange.bind(request.zlib)
        exchange.bind(baseline.zlib)
        try exchange.execute(in: db)
        let exchangeID = db.lastInsertedRowID
        let baselineTotal = record.baseline.body.totalBytes
        // By index: zipping the three arrays built and copied a tuple of a candidate, its score
        // and its figures per row (~3% of the writer thread).
        let candidates = record.candidates
        for index in candidates.indices where index < scores.count && index < figures.candidates.count {
            let candidate = candidates[index]
            let score = scores[index]
            let candidateFigures = figures.candidates[index]
            let result = candidate.result
            let candidateBody = self.stored(result.body)
            // Equal to the baseline's as stored: kept once, on the exchange.
            let same =
                !candidateBody.bytes.isEmpty && result.body.totalBytes == baselineTotal
                && PairStore.sameBytes(candidateBody.bytes, baselineBody.bytes)
            var shadow = RowBinder(self.shadow)
            shadow.bind(exchangeID)
            shadow.bind(candidate.name)
            shadow.bind(result.version)
            shadow.bind(result.status)
            shadow.bind(result.latencyMicros)
            shadow.bind(result.timeToHeadMicros)
            shadow.bind(result.contentType)
            let candidateStored = same ? nil : self.packed(candidateBody.bytes)
            if let candidateStored {
                shadow.bind(body: candidateStored.bytes, json: candidateStored.zlib == nil && json?.candidates[index] == true)
            } else {
                shadow.bind(nil as String?)
            }
            shadow.bind(result.body.totalBytes)
            shadow.bind(result.error?.rawValue)
            shadow.bind(record.coverageReason(candidate).rawValue)
            shadow.bind(score == nil ? nil : record.scorer.name)
            shadow.bind(score?.value)
            shadow.bind(score.map { $0.diverged ? 1 : 0 })
            let explanation = score?.explanation.serialized
            if let redactor = self.redactor {
                let withheld = [("request_body", requestBody), ("baseline_body", baselineBody), ("candidate_body", candidateBody)]
                    .compactMap { key, body in body.withheld.map { (key: key + "_withheld", value: JSONValue.string($0)) } }
                shadow.bind(PairStore.appending(withheld, to: redactor.explanation(explanation)))
            } else {
                shadow.bind(explanation)
            }
            shadow.bind(score.flatMap { PairStore.differingPathsJSON($0.differingPaths) })
            shadow.bind(result.firstByteMicros)
            shadow.bind(figures: candidateFigures)
            shadow.bind(same ? 1 : nil as Int?)
            shadow.bind(result.grpcStatus)
            shadow.bind(candidateStored?.zlib)
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
