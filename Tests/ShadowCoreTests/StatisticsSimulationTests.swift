import Testing

@testable import ShadowCore

#if canImport(Glibc)
import Glibc
#endif

/// The report's statistics checked against known truth by simulation: 200 seeded repetitions
/// each, so the outcome is the same on every run and machine.
@Suite struct StatisticsSimulationTests {
    static let repetitions = 200

    /// Simulated shadow traffic with known parameters.
    struct World {
        var random: SplitMix64

        mutating func normal() -> Double {
            // Box-Muller.
            let u = max(self.random.nextUnit(), 1e-300)
            let v = self.random.nextUnit()
            return (-2 * log(u)).squareRoot() * cos(2 * Double.pi * v)
        }

        mutating func successes(_ n: Int, rate: Double) -> Int {
            var count = 0
            for _ in 0..<n where self.random.nextUnit() < rate { count += 1 }
            return count
        }

        /// Log-normal latencies around 10 ms; the candidate's marginal is the baseline's shifted by
        /// `shift` µs exactly (so every quantile differs by `shift`), correlated with it as
        /// requests that are slow on one model tend to be slow on the other.
        mutating func latencies(_ n: Int, shift: Double, correlation: Double = 0.7) -> [(baseline: Double, candidate: Double)] {
            (0..<n).map { _ in
                let z = self.normal()
                let w = correlation * z + (1 - correlation * correlation).squareRoot() * self.normal()
                return (10_000 * exp(0.5 * z), shift + 10_000 * exp(0.5 * w))
            }
        }
    }

    @Test func wilsonIntervalsCoverTheTrueDivergenceRate() {
        var covered = 0
        for seed in 0..<Self.repetitions {
            var world = World(random: SplitMix64(seed: UInt64(seed)))
            let interval = Proportion(successes: world.successes(1_000, rate: 0.08), trials: 1_000).wilsonInterval()
            if interval.contains(0.08) { covered += 1 }
        }
        let coverage = Double(covered) / Double(Self.repetitions)
        #expect(coverage >= 0.90 && coverage <= 0.99, "coverage \(coverage)")
    }

    @Test func newcombeIntervalsCoverTheTrueExcessOverTheNoiseFloor() {
        var covered = 0
        for seed in 0..<Self.repetitions {
            var world = World(random: SplitMix64(seed: UInt64(seed) &+ 1_000))
            let comparison = ProportionComparison(
                reference: Proportion(successes: world.successes(1_500, rate: 0.03), trials: 1_500),
                candidate: Proportion(successes: world.successes(3_000, rate: 0.07), trials: 3_000)
            )
            if comparison.differenceInterval().contains(0.04) { covered += 1 }
        }
        let coverage = Double(covered) / Double(Self.repetitions)
        #expect(coverage >= 0.90 && coverage <= 0.99, "coverage \(coverage)")
    }

    @Test func bootstrapIntervalsCoverTheTrueLatencyShift() {
        var covered = [0, 0]
        for seed in 0..<Self.repetitions {
            var world = World(random: SplitMix64(seed: UInt64(seed) &+ 2_000))
            let pairs = world.latencies(800, shift: 1_500)
            let results = PairedQuantileDifference.bootstrap(pairs: pairs, quantiles: [0.5, 0.9], replicates: 200, seed: UInt64(seed))
            for (index, result) in results.enumerated() where result.lower <= 1_500 && 1_500 <= result.upper { covered[index] += 1 }
        }
        for count in covered {
            let coverage = Double(count) / Double(Self.repetitions)
            #expect(coverage >= 0.88 && coverage <= 0.99, "coverage \(covered)")
        }
    }

    @Test func subsampledBootstrapCoversTheShiftOfTheWholePopulation() {
        // The report keeps a reservoir of 20,000 pairs of millions; here 500 of 4,000, with the
        // interval rescaled to the population (m-out-of-n) and centred on its estimate.
        var covered = 0
        for seed in 0..<Self.repetitions {
            var world = World(random: SplitMix64(seed: UInt64(seed) &+ 3_000))
            let population = world.latencies(4_000, shift: 1_500)
            var reservoir = Reservoir<(baseline: Double, candidate: Double)>(capacity: 500, seed: UInt64(seed))
            for pair in population { reservoir.offer(pair) }
            let rank = PairedQuantileDifference.rank(0.5, of: population.count)
            let estimate = population.map(\.candidate).sorted()[rank] - population.map(\.baseline).sorted()[rank]
            let result = PairedQuantileDifference.bootstrap(
                pairs: reservoir.elements,
                quantiles: [0.5],
                population: reservoir.seen,
                estimates: [estimate],
                replicates: 200,
                seed: UInt64(seed)
            )[0]
            if result.lower <= 1_500 && 1_500 <= result.upper { covered += 1 }
        }
        let coverage = Double(covered) / Double(Self.repetitions)
        #expect(coverage >= 0.88 && coverage <= 0.99, "coverage \(coverage)")
    }

    /// One simulated route: A/A replica, candidate, error rates, latencies; returns the verdict
    /// under the default guardrails.
    static func verdict(seed: Int, candidateDivergence: Double, noise: Double = 0.03) -> Verdict {
        var world = World(random: SplitMix64(seed: UInt64(seed) &+ 4_000))
        let pairs = 2_000
        let latencies = world.latencies(pairs, shift: 0)
        // Few resamples: these runs test the decision; the intervals' coverage is tested above.
        let p99 = PairedQuantileDifference.bootstrap(pairs: latencies, quantiles: [0.99], replicates: 40, seed: UInt64(seed))[0]
        let baselineP99 = latencies.map(\.baseline).sorted()[PairedQuantileDifference.rank(0.99, of: pairs)]
        return GuardrailConfiguration().evaluate(
            VerdictEvidence(
                divergence: Proportion(successes: world.successes(pairs, rate: candidateDivergence), trials: pairs),
                noiseFloor: Proportion(successes: world.successes(pairs, rate: noise), trials: pairs),
                errors: ProportionComparison(
                    reference: Proportion(successes: world.successes(pairs, rate: 0.01), trials: pairs),
                    candidate: Proportion(successes: world.successes(pairs, rate: 0.01), trials: pairs)
                ),
                p99Difference: p99,
                baselineP99Micros: baselineP99
            )
        )
    }

    @Test func aaDataIsRarelyRejected() {
        let rejected = (0..<Self.repetitions).filter { Self.verdict(seed: $0, candidateDivergence: 0.03).decision == .reject }.count
        #expect(Double(rejected) / Double(Self.repetitions) <= 0.05, "rejected \(rejected) of \(Self.repetitions)")
    }

    @Test func divergenceFivePointsAboveTheGuardrailIsRejected() {
        // Default guardrail: 5 points above the floor; injected: floor + 5 + 5 points.
        let verdicts = (0..<Self.repetitions).map { Self.verdict(seed: $0, candidateDivergence: 0.03 + 0.05 + 0.05) }
        let rejected = verdicts.filter { $0.decision == .reject && $0.reasons.contains { $0.name == "divergence" } }.count
        #expect(Double(rejected) / Double(Self.repetitions) >= 0.95, "rejected \(rejected) of \(Self.repetitions)")
    }
}
