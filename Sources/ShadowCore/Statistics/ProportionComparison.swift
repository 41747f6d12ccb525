#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Candidate against reference: two independent proportions (error rates of two arms, or a
/// candidate's divergence against the A/A noise floor).
public struct ProportionComparison: Sendable, Equatable, Codable {
    public var reference: Proportion
    public var candidate: Proportion

    public init(reference: Proportion, candidate: Proportion) {
        self.reference = reference
        self.candidate = candidate
    }

    /// candidate − reference.
    public var difference: Double { self.candidate.rate - self.reference.rate }

    /// Newcombe's hybrid score interval for the difference (method 10 of Newcombe 1998), built
    /// from the two Wilson intervals; it keeps its coverage near 0 where the Wald interval fails.
    public func differenceInterval(z: Double = Normal.z95) -> ClosedRange<Double> {
        let p1 = self.candidate.rate
        let p2 = self.reference.rate
        let w1 = self.candidate.wilsonInterval(z: z)
        let w2 = self.reference.wilsonInterval(z: z)
        let d = p1 - p2
        let lower = d - ((p1 - w1.lowerBound) * (p1 - w1.lowerBound) + (w2.upperBound - p2) * (w2.upperBound - p2)).squareRoot()
        let upper = d + ((w1.upperBound - p1) * (w1.upperBound - p1) + (p2 - w2.lowerBound) * (p2 - w2.lowerBound)).squareRoot()
        return max(-1, lower)...min(1, upper)
    }

    /// The pooled two-proportion z statistic; 0 when both arms are empty or constant alike.
    public var zStatistic: Double {
        let n1 = Double(self.candidate.trials)
        let n2 = Double(self.reference.trials)
        guard n1 > 0, n2 > 0 else { return 0 }
        let pooled = Double(self.candidate.successes + self.reference.successes) / (n1 + n2)
        let standardError = (pooled * (1 - pooled) * (1 / n1 + 1 / n2)).squareRoot()
        guard standardError > 0 else { return 0 }
        return self.difference / standardError
    }

    /// Two-sided p-value of the two-proportion z-test.
    public var pValue: Double { Normal.twoSidedPValue(self.zStatistic) }

    /// Cohen's h, the effect size of a difference in proportions (0.2 small, 0.5 medium, 0.8 large).
    public var cohensH: Double {
        2 * asin(self.candidate.rate.squareRoot()) - 2 * asin(self.reference.rate.squareRoot())
    }
}
