/// Byte equality, or JSON equality after canonicalisation (key order and whitespace ignored).
public struct ExactScorer: Scorer {
    public let name = "exact"
    let configuration: ScorerConfiguration
    let parser: JSONParser

    public init(configuration: ScorerConfiguration = .init(kind: .exact)) {
        self.configuration = configuration
        self.parser = JSONParser(maximumDepth: 512)
    }

    public func score(baseline: [UInt8], candidate: [UInt8]) -> Score {
        if baseline.hasSameBytes(as: candidate) {
            return Score(value: 0, diverged: false, explanation: .object([("equal", .string("bytes"))]))
        }
        if self.configuration.canonicalizeJSON,
            let left = try? self.parser.parse(baseline),
            let right = try? self.parser.parse(candidate),
            left == right
        {
            return Score(value: 0, diverged: false, explanation: .object([("equal", .string("canonical JSON"))]))
        }
        return Score(
            value: 1,
            diverged: 1 > self.configuration.threshold,
            explanation: .object([
                ("equal", .bool(false)),
                ("baseline_bytes", .number(Double(baseline.count))),
                ("candidate_bytes", .number(Double(candidate.count))),
            ])
        )
    }
}
