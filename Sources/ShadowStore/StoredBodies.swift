import ShadowCore

/// One record's bodies as the writer binds them: redacted, known JSON marked, compressed where
/// that pays, and an answer equal to the baseline's reduced to a flag. Prepared with the scoring
/// (``PairStore/score(_:noise:redactor:compressBodies:)``), off the writer's thread, so the writer
/// only binds rows.
struct StoredBodies: Sendable {
    struct Body: Sendable {
        /// The bytes to store: compressed when `zlib` is set; empty for an answer `same` as the
        /// baseline's.
        var bytes: [UInt8]
        /// Known JSON text, bound as TEXT; the rest is left to SQLite's `json_valid`.
        var json: Bool
        /// The length before compression, when compressed (`*_body_zlib`).
        var zlib: Int?
        /// Why the bytes were withheld, when redaction could not parse them.
        var withheld: String?
        /// A candidate answer equal to the baseline's as stored: kept once, on the exchange.
        var same = false
    }

    var request: Body
    var baseline: Body
    var candidates: [Body]

    /// Prepares `record`'s bodies. With a `redactor`, bodies are redacted first and their JSON
    /// is judged by SQLite (redaction may have replaced a body by its hash); `compressor`
    /// compresses what is then stored.
    init(_ record: borrowing ExchangeRecord, redactor: Redactor?, compressor: BodyCompression.Compressor?) {
        func redacted(_ body: CapturedBody) -> Redactor.Stored {
            redactor?.body(body) ?? Redactor.Stored(bytes: body.bytes)
        }
        func packed(_ stored: Redactor.Stored, json: Bool) -> Body {
            if let compressed = compressor?.compress(stored.bytes) {
                return Body(bytes: compressed, json: false, zlib: stored.bytes.count, withheld: stored.withheld)
            }
            return Body(bytes: stored.bytes, json: json, withheld: stored.withheld)
        }
        let judged = redactor == nil
        let baseline = redacted(record.baseline.body)
        let baselineIsJSON = judged && JSONValidator.isValid(baseline.bytes)
        let request = redacted(record.requestBody)
        self.request = packed(request, json: judged && JSONValidator.isValid(request.bytes))
        self.baseline = packed(baseline, json: baselineIsJSON)
        let baselineTotal = record.baseline.body.totalBytes
        self.candidates = record.candidates.map { candidate in
            let body = redacted(candidate.result.body)
            // An answer equal to the baseline's (most of them, in shadow traffic) is what the
            // baseline's is; comparing costs less than scanning or compressing it again.
            if !body.bytes.isEmpty, candidate.result.body.totalBytes == baselineTotal, body.bytes.hasSameBytes(as: baseline.bytes) {
                return Body(bytes: [], json: baselineIsJSON, withheld: body.withheld, same: true)
            }
            return packed(body, json: judged && JSONValidator.isValid(body.bytes))
        }
    }
}
