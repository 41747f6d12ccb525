import ShadowCore

/// What scoring one batch adds up, record by record: each pair's score and figures, the per-path
/// and per-candidate totals, coverage and token costs, and the bodies and explanations as they
/// will be stored (``PairStore/score(_:noise:redactor:compressBodies:)``).
struct BatchScoring {
    let noise: NoiseFloorTracker?
    let redactor: Redactor?
    let compressor: BodyCompression.Compressor?
    /// Per record, per candidate: its score (nil when not compared).
    private(set) var scores: [[Score?]] = []
    /// Per record, per candidate: the score's explanation as stored (redacted, notes added).
    private(set) var explanations: [[String?]] = []
    private(set) var figures: [(baseline: ArmFigures, candidates: [ArmFigures])] = []
    private(set) var bodies: [StoredBodies] = []
    private(set) var coverage: [CoverageCounter.Key: Int] = [:]
    private(set) var pathCounts: [PairStore.PathKey: Int] = [:]
    private(set) var totals: [PairStore.PathKey: (compared: Int, diverged: Int)] = [:]
    private(set) var tokenCosts: [String: Double] = [:]
    /// Scorers without a route's noisy paths, built once per batch.
    private var scorers: [String: any Scorer] = [:]

    init(capacity: Int, noise: NoiseFloorTracker?, redactor: Redactor? = nil, compressor: BodyCompression.Compressor? = nil) {
        self.noise = noise
        self.redactor = redactor
        self.compressor = compressor
        self.scores.reserveCapacity(capacity)
        self.explanations.reserveCapacity(capacity)
        self.figures.reserveCapacity(capacity)
        self.bodies.reserveCapacity(capacity)
    }

    /// Scores one record's candidates, counts them and prepares its bodies and explanations
    /// for the writer.
    mutating func add(_ record: borrowing ExchangeRecord) {
        let bodies = StoredBodies(record, redactor: self.redactor, compressor: self.compressor)
        let readsUsage = record.readsUsage
        let baselineFigures = record.baseline.figures(readUsage: readsUsage)
        let candidates = record.candidates
        let candidateFigures = candidates.map { $0.result.figures(readUsage: readsUsage) }
        self.figures.append((baselineFigures, candidateFigures))
        let route = record.route
        let minute = record.receivedAtMicros / 60_000_000 * 60
        var scores: [Score?] = []
        scores.reserveCapacity(candidates.count)
        for index in candidates.indices {
            let (candidate, figures) = (candidates[index], candidateFigures[index])
            // The per-request part was charged when the copy was sent; the tokens only now.
            if let cost = figures.cost, let price = candidate.result.price, cost - price.perRequest > 0 {
                self.tokenCosts[route, default: 0] += cost - price.perRequest
            }
            let score = self.score(record, candidate, baselineFigures, figures)
            if let score {
                let key = PairStore.PathKey(route: route, candidate: candidate.name, path: "")
                self.totals[key, default: (0, 0)].compared += 1
                self.totals[key, default: (0, 0)].diverged += score.diverged ? 1 : 0
                for path in score.differingPaths {
                    self.pathCounts[PairStore.PathKey(route: route, candidate: candidate.name, path: path), default: 0] += 1
                }
            }
            scores.append(score)
            let coverageKey = CoverageCounter.Key(
                minute: minute,
                route: route,
                candidate: candidate.name,
                reason: record.coverageReason(candidate)
            )
            self.coverage[coverageKey, default: 0] += 1
        }
        self.scores.append(scores)
        self.explanations.append(scores.indices.map { self.explanation(scores[$0], bodies, candidate: $0) })
        self.bodies.append(bodies)
    }

    /// A score's explanation as stored: with a redactor, redacted and with a note for each body
    /// whose bytes were withheld.
    private func explanation(_ score: Score?, _ bodies: StoredBodies, candidate index: Int) -> String? {
        let explanation = score?.explanation.serialized
        guard let redactor = self.redactor else { return explanation }
        let withheld = [("request_body", bodies.request), ("baseline_body", bodies.baseline), ("candidate_body", bodies.candidates[index])]
            .compactMap { key, body in body.withheld.map { (key: key + "_withheld", value: JSONValue.string($0)) } }
        return PairStore.appending(withheld, to: redactor.explanation(explanation))
    }

    /// One candidate's score, with its stream's oddities (malformed events, no `[DONE]`) noted.
    private mutating func score(
        _ record: borrowing ExchangeRecord,
        _ candidate: CandidateResult,
        _ baselineFigures: ArmFigures,
        _ candidateFigures: ArmFigures
    ) -> Score? {
        let scorer: any Scorer
        if let noise = self.noise {
            scorer = noise.scorer(for: record, candidate: candidate.name, cache: &self.scorers)
        } else {
            scorer = record.scorer
        }
        guard
            var score = record.score(
                candidate,
                using: scorer,
                baselineBody: baselineFigures.scoringBody,
                candidateBody: candidateFigures.scoringBody
            )
        else { return nil }
        let notes = [("baseline_stream", baselineFigures.note), ("candidate_stream", candidateFigures.note)].compactMap { key, note in
            note.map { (key: key, value: JSONValue.string($0)) }
        }
        if !notes.isEmpty, case .object(let members) = score.explanation { score.explanation = .object(members + notes) }
        return score
    }
}
