/// The ratio of two means over paired observations (each request's cost under the candidate
/// and under the baseline), with a delta-method interval: the cost guardrail is judged on an
/// interval of the relative increase, like every other check, never on a point estimate.
///
/// For r = c̄ / b̄ the linearised variance is Var(c − r·b) / (n · b̄²) (the ratio estimator's
/// standard error, e.g. Cochran, *Sampling Techniques*, §6.3), computed from running sums so
/// tallies from many database files merge exactly.
public struct PairedRatio: Sendable, Equatable, Codable {
    public private(set) var count = 0
    private var sumBaseline = 0.0
    private var sumCandidate = 0.0
    private var sumBaselineSquares = 0.0
    private var sumCandidateSquares = 0.0
    private var sumProducts = 0.0

    public init() {}

    /// Adds one pair.
    public mutating func add(baseline: Double, candidate: Double) {
        self.count += 1
        self.sumBaseline += baseline
        self.sumCandidate += candidate
        self.sumBaselineSquares += baseline * baseline
        self.sumCandidateSquares += candidate * candidate
        self.sumProducts += baseline * candidate
    }

    public var baselineMean: Double { self.count == 0 ? 0 : self.sumBaseline / Double(self.count) }
    public var candidateMean: Double { self.count == 0 ? 0 : self.sumCandidate / Double(self.count) }

    /// c̄ / b̄ − 1 with its interval, or `nil` without pairs or with a baseline mean of 0.
    public func relativeIncrease(z: Double = Normal.z95) -> (estimate: Double, interval: ClosedRange<Double>)? {
        guard self.count > 0, self.sumBaseline > 0 else { return nil }
        let n = Double(self.count)
        let ratio = self.sumCandidate / self.sumBaseline
        guard self.count > 1 else { return (ratio - 1, -Double.infinity...Double.infinity) }
        // Σ(c − r·b)² expanded; the residuals' mean is 0 by the choice of r.
        let residualSquares = self.sumCandidateSquares - 2 * ratio * self.sumProducts + ratio * ratio * self.sumBaselineSquares
        let variance = max(0, residualSquares) / (n - 1) / (n * self.baselineMean * self.baselineMean)
        let half = z * variance.squareRoot()
        return (ratio - 1, (ratio - 1 - half)...(ratio - 1 + half))
    }
}
