#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An always-valid confidence sequence for a (difference of) mean(s) under the normal
/// approximation: the normal-mixture sequential probability ratio test (mSPRT; Robbins 1970,
/// Johari, Pekelis & Walsh, "Always valid inference", 2017).
///
/// A fixed-horizon 95% interval looked at again and again (every batch in the daemon, every
/// day in a report) excludes the truth far more often than 5% of the time. This interval is
/// wider, and the chance that it *ever* excludes the truth, however often it is looked at, is at
/// most `alpha`. The mixing scale `tau` is the effect size the test is tuned to detect fastest.
public struct ConfidenceSequence: Sendable, Equatable {
    public var estimate: Double
    /// The estimate's variance (squared standard error).
    public var variance: Double
    public var tau: Double
    public var alpha: Double

    public init(estimate: Double, variance: Double, tau: Double, alpha: Double = 0.05) {
        precondition(tau > 0 && alpha > 0 && alpha < 1)
        self.estimate = estimate
        self.variance = max(0, variance)
        self.tau = tau
        self.alpha = alpha
    }

    /// Half the interval's width: where the mixture likelihood ratio reaches 1/alpha.
    public var halfWidth: Double {
        let v = self.variance
        guard v > 0 else { return 0 }
        let t2 = self.tau * self.tau
        return (v * (v + t2) / t2 * (2 * log(1 / self.alpha) + log((v + t2) / v))).squareRoot()
    }

    public var interval: ClosedRange<Double> {
        let half = self.halfWidth
        return (self.estimate - half)...(self.estimate + half)
    }

    /// The always-valid p-value for "the true value is `null`": 1 over the mixture likelihood
    /// ratio, at most 1. (A running minimum over looks is also valid; each look here is its own.)
    public func pValue(null: Double = 0) -> Double {
        let v = self.variance
        guard v > 0 else { return self.estimate == null ? 1 : 0 }
        let t2 = self.tau * self.tau
        let d = self.estimate - null
        let logRatio = 0.5 * log(v / (v + t2)) + t2 * d * d / (2 * v * (v + t2))
        return min(1, exp(-logRatio))
    }

    /// One rate's sequence, its variance taken at (x+1)/(n+2) so a run of zero failures is not
    /// mistaken for certainty.
    public static func rate(_ proportion: Proportion, tau: Double, alpha: Double = 0.05) -> ConfidenceSequence {
        ConfidenceSequence(estimate: proportion.rate, variance: Self.rateVariance(proportion), tau: tau, alpha: alpha)
    }

    /// The difference of two rates, `treatment − control`.
    public static func difference(control: Proportion, treatment: Proportion, tau: Double, alpha: Double = 0.05) -> ConfidenceSequence {
        ConfidenceSequence(
            estimate: treatment.rate - control.rate,
            variance: Self.rateVariance(control) + Self.rateVariance(treatment),
            tau: tau,
            alpha: alpha
        )
    }

    static func rateVariance(_ proportion: Proportion) -> Double {
        let n = Double(proportion.trials)
        let p = (Double(proportion.successes) + 1) / (n + 2)
        return p * (1 - p) / max(1, n)
    }
}
