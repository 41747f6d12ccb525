/// Compares a baseline output with a candidate output.
///
/// The seam where the scorer family plugs in: every route holds one scorer, chosen in its
/// configuration. Implementations are pure and must never crash on any input.
public protocol Scorer: Sendable {
    /// The name stored with each scored pair (`exact`, `json`, …).
    var name: String { get }
    /// Scores two response bodies. Both arms answered with the same status.
    func score(baseline: [UInt8], candidate: [UInt8]) -> Score
}

/// How far two outputs diverge.
public struct Score: Sendable, Equatable {
    /// 0 means the same, 1 entirely different.
    public var value: Double
    public var diverged: Bool
    /// A short structured account: which paths differ and how.
    public var explanation: JSONValue

    public init(value: Double, diverged: Bool, explanation: JSONValue) {
        self.value = value
        self.diverged = diverged
        self.explanation = explanation
    }
}

extension ScorerConfiguration {
    /// The scorer this configuration describes.
    public func makeScorer() -> any Scorer {
        switch self.kind {
        case .exact: ExactScorer(configuration: self)
        case .json: JSONScorer(configuration: self)
        }
    }
}
