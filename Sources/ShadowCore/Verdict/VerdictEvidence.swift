/// The figures a verdict is decided on, for one candidate of one route.
public struct VerdictEvidence: Sendable, Equatable {
    /// Diverged out of compared pairs.
    public var divergence: Proportion
    /// The A/A replica's diverged out of compared pairs, when one ran.
    public var noiseFloor: Proportion?
    /// Error rates over the mirrored pairs: reference = baseline, candidate = candidate.
    public var errors: ProportionComparison
    /// Candidate p99 − baseline p99, in microseconds, with its interval.
    public var p99Difference: PairedQuantileDifference?
    /// The baseline's p99 in microseconds (relative latency limits scale with it).
    public var baselineP99Micros: Double?
    /// Mean cost per request of each arm, when prices are configured.
    public var costPerRequest: (baseline: Double, candidate: Double)?
    /// The per-request costs of both arms, paired: the cost check's interval.
    public var costRatio: PairedRatio?

    public init(
        divergence: Proportion,
        noiseFloor: Proportion? = nil,
        errors: ProportionComparison,
        p99Difference: PairedQuantileDifference? = nil,
        baselineP99Micros: Double? = nil,
        costPerRequest: (baseline: Double, candidate: Double)? = nil,
        costRatio: PairedRatio? = nil
    ) {
        self.divergence = divergence
        self.noiseFloor = noiseFloor
        self.errors = errors
        self.p99Difference = p99Difference
        self.baselineP99Micros = baselineP99Micros
        self.costPerRequest = costPerRequest
        self.costRatio = costRatio
    }

    /// Divergence above the noise floor, with its 95% interval (Newcombe's, or Wilson's when no
    /// A/A pairs exist and the floor is taken as 0).
    public var divergenceAboveNoise: (estimate: Double, interval: ClosedRange<Double>) {
        guard let noise = self.noiseFloor, noise.trials > 0 else {
            return (self.divergence.rate, self.divergence.wilsonInterval())
        }
        let comparison = ProportionComparison(reference: noise, candidate: self.divergence)
        return (comparison.difference, comparison.differenceInterval())
    }

    public static func == (lhs: VerdictEvidence, rhs: VerdictEvidence) -> Bool {
        lhs.divergence == rhs.divergence && lhs.noiseFloor == rhs.noiseFloor && lhs.errors == rhs.errors
            && lhs.p99Difference == rhs.p99Difference && lhs.baselineP99Micros == rhs.baselineP99Micros
            && lhs.costPerRequest?.baseline == rhs.costPerRequest?.baseline && lhs.costPerRequest?.candidate == rhs.costPerRequest?.candidate
            && lhs.costRatio == rhs.costRatio
    }
}
