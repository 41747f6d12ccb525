#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Probability vectors: Jensen-Shannon divergence (base 2) or total variation distance, both in
/// 0...1, with top-1 agreement in the explanation.
///
/// Vectors are normalised to sum 1 first (scores or counts work too); negative or non-finite
/// entries, or vectors of different lengths, score 1 with the reason.
public struct DistributionScorer: ValueScorer {
    public let name = "distribution"
    let configuration: ScorerConfiguration

    public init(configuration: ScorerConfiguration) {
        self.configuration = configuration
    }

    func compare(_ baseline: JSONValue, _ candidate: JSONValue, documents: DocumentPair) -> Score {
        guard let p = Self.normalized(baseline.flattenedNumbers), let q = Self.normalized(candidate.flattenedNumbers), p.count == q.count else {
            return Score(
                value: 1,
                diverged: true,
                explanation: .object([("reason", .string("not comparable probability vectors (empty, negative or different lengths)"))]),
                differingPaths: ["distribution"]
            )
        }
        let tvd = Self.totalVariation(p, q)
        let js = Self.jensenShannon(p, q)
        let top1 = Self.argmax(p) == Self.argmax(q)
        let value = self.configuration.distributionMetric == .js ? js : tvd
        return Score(
            value: value,
            diverged: self.diverged(value) || (self.configuration.threshold == 0 && !top1),
            explanation: .object([("js", .number(js)), ("tvd", .number(tvd)), ("top1_agree", .bool(top1)), ("size", .number(Double(p.count)))]),
            differingPaths: value > 0 ? ["distribution"] : []
        )
    }

    static func normalized(_ values: [Double]) -> [Double]? {
        guard !values.isEmpty, values.allSatisfy({ $0.isFinite && $0 >= 0 }) else { return nil }
        let sum = values.reduce(0, +)
        guard sum > 0 else { return nil }
        return values.map { $0 / sum }
    }

    static func totalVariation(_ p: [Double], _ q: [Double]) -> Double {
        min(1, zip(p, q).reduce(0) { $0 + abs($1.0 - $1.1) } / 2)
    }

    static func jensenShannon(_ p: [Double], _ q: [Double]) -> Double {
        func kl(_ a: [Double], _ m: [Double]) -> Double {
            zip(a, m).reduce(0) { total, pair in pair.0 > 0 ? total + pair.0 * log2(pair.0 / pair.1) : total }
        }
        let m = zip(p, q).map { ($0 + $1) / 2 }
        return min(1, max(0, (kl(p, m) + kl(q, m)) / 2))
    }

    static func argmax(_ values: [Double]) -> Int {
        values.indices.max { values[$0] < values[$1] } ?? 0
    }
}
