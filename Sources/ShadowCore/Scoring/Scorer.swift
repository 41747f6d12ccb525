/// Compares a baseline output with a candidate output.
///
/// The seam where the scorer family plugs in: every route holds one scorer, chosen in its
/// configuration. Implementations are pure and must never crash on any input.
public protocol Scorer: Sendable {
    /// The name stored with each scored pair (`exact`, `json`, …).
    var name: String { get }
    /// Scores two response bodies. Both arms answered with the same status.
    func score(baseline: [UInt8], candidate: [UInt8]) -> Score
    /// The same scorer, also skipping these JSON paths (noise found by the A/A comparison).
    /// Scorers that do not compare by path return themselves.
    func ignoring(_ paths: [String]) -> any Scorer
}

extension Scorer {
    public func ignoring(_ paths: [String]) -> any Scorer { self }
}

/// How far two outputs diverge.
public struct Score: Sendable, Equatable {
    /// 0 means the same, 1 entirely different.
    public var value: Double
    public var diverged: Bool
    /// A short structured account: which paths differ and how.
    public var explanation: JSONValue
    /// The JSON paths (or named fields) that differ, for per-path statistics and the noise floor.
    public var differingPaths: [String]

    public init(value: Double, diverged: Bool, explanation: JSONValue, differingPaths: [String] = []) {
        self.value = value
        self.diverged = diverged
        self.explanation = explanation
        self.differingPaths = differingPaths
    }
}

extension ScorerConfiguration {
    /// The scorer this configuration describes.
    public func makeScorer() -> any Scorer {
        switch self.kind {
        case .exact: ExactScorer(configuration: self)
        case .json: JSONScorer(configuration: self)
        case .label: LabelScorer(configuration: self)
        case .numeric: NumericScorer(configuration: self)
        case .distribution: DistributionScorer(configuration: self)
        case .ranking: RankingScorer(configuration: self)
        case .text: TextScorer(configuration: self)
        }
    }
}
