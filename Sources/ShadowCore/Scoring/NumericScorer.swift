/// Regression: absolute and relative error of one or many values.
///
/// Each value pair within the configured absolute or relative tolerance counts as equal; the
/// others contribute `min(1, |error| / scale)`. The score is the mean over values; a different
/// number of values scores 1.
public struct NumericScorer: ValueScorer {
    public let name = "numeric"
    let configuration: ScorerConfiguration

    public init(configuration: ScorerConfiguration) {
        self.configuration = configuration
    }

    func compare(_ baseline: JSONValue, _ candidate: JSONValue, documents: DocumentPair) -> Score {
        let left = baseline.flattenedNumbers
        let right = candidate.flattenedNumbers
        guard left.count == right.count, !left.isEmpty else {
            let value: Double = left.isEmpty && right.isEmpty ? 0 : 1
            return Score(
                value: value,
                diverged: self.diverged(value),
                explanation: .object([
                    ("reason", .string("value counts differ")), ("baseline_count", .number(Double(left.count))),
                    ("candidate_count", .number(Double(right.count))),
                ]),
                differingPaths: value > 0 ? ["values"] : []
            )
        }
        var total = 0.0
        var maxAbsolute = 0.0
        var maxRelative = 0.0
        var outside = 0
        for (a, b) in zip(left, right) {
            let absolute = abs(a - b)
            let relative = absolute == 0 ? 0 : absolute / max(abs(a), abs(b))
            maxAbsolute = max(maxAbsolute, absolute)
            maxRelative = max(maxRelative, relative)
            if absolute <= self.configuration.absoluteTolerance || relative <= self.configuration.relativeTolerance { continue }
            outside += 1
            total += min(1, absolute / self.configuration.scale)
        }
        let value = total / Double(left.count)
        return Score(
            value: value,
            diverged: self.diverged(value),
            explanation: .object([
                ("values", .number(Double(left.count))),
                ("outside_tolerance", .number(Double(outside))),
                ("max_abs_error", .number(maxAbsolute)),
                ("max_rel_error", .number(maxRelative)),
            ]),
            differingPaths: outside > 0 ? ["values"] : []
        )
    }
}
