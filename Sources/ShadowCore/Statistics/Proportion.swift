/// A count of successes out of trials (diverged out of compared, errors out of calls), with the
/// interval and sample-size arithmetic a report needs.
public struct Proportion: Sendable, Equatable, Codable {
    public var successes: Int
    public var trials: Int

    public init(successes: Int, trials: Int) {
        precondition(successes >= 0 && successes <= trials, "successes must be within 0...trials")
        self.successes = successes
        self.trials = trials
    }

    /// The observed rate; 0 with no trials.
    public var rate: Double { self.trials == 0 ? 0 : Double(self.successes) / Double(self.trials) }

    /// The Wilson score interval: unlike the textbook p ± z·SE it stays inside [0, 1] and keeps its
    /// coverage for rates near 0, which is where divergence and error rates live.
    /// With no trials the interval is the whole of [0, 1].
    public func wilsonInterval(z: Double = Normal.z95) -> ClosedRange<Double> {
        guard self.trials > 0 else { return 0...1 }
        let n = Double(self.trials)
        let p = self.rate
        let z2 = z * z
        let centre = (p + z2 / (2 * n)) / (1 + z2 / n)
        let half = z / (1 + z2 / n) * (p * (1 - p) / n + z2 / (4 * n * n)).squareRoot()
        return max(0, centre - half)...min(1, centre + half)
    }

    /// Trials needed for the Wilson interval's half-width to come within `margin`, taking the
    /// observed rate as the truth (0.5, the worst case, before any trials): the smallest such n.
    public func trialsNeeded(margin: Double, z: Double = Normal.z95) -> Int {
        precondition(margin > 0, "margin must be positive")
        let p = self.trials == 0 ? 0.5 : self.rate
        // The Wilson half-width at rate p, z·√(p(1−p)n + z²/4) / (n + z²), falls strictly as n
        // grows, so the smallest n is found by bisection: from the normal approximation (which
        // says 0 at p = 0, where Wilson still has width) double until it fits, then halve the gap.
        func fits(_ n: Int) -> Bool {
            let trials = Double(n)
            return z * (p * (1 - p) * trials + z * z / 4).squareRoot() / (trials + z * z) <= margin
        }
        let limit = 1 << 40
        var high = max(1, Int((z * z * p * (1 - p) / (margin * margin)).rounded(.up)))
        while !fits(high), high < limit { high *= 2 }
        var low = 0  // never fits: no trials, no interval
        while high - low > 1 {
            let middle = low + (high - low) / 2
            if fits(middle) { high = middle } else { low = middle }
        }
        return high
    }
}
