import Testing

@testable import ShadowCore

/// Hand-checked values from the literature for the intervals and tests the report relies on.
@Suite struct StatisticsTests {
    @Test func wilsonIntervalMatchesPublishedValues() {
        // Newcombe (1998), table I: 0/10 → 0.0000–0.2775; 1/29 → 0.0061–0.1718; 81/263 → 0.2553–0.3662.
        let cases: [(Int, Int, Double, Double)] = [(0, 10, 0.0, 0.2775), (1, 29, 0.0061, 0.1718), (81, 263, 0.2553, 0.3662)]
        for (successes, trials, lower, upper) in cases {
            let interval = Proportion(successes: successes, trials: trials).wilsonInterval()
            #expect(abs(interval.lowerBound - lower) < 0.0001, "\(successes)/\(trials)")
            #expect(abs(interval.upperBound - upper) < 0.0001, "\(successes)/\(trials)")
        }
        #expect(Proportion(successes: 0, trials: 0).wilsonInterval() == 0...1)
    }

    @Test func newcombeDifferenceIntervalMatchesPublishedExample() {
        // Newcombe (1998), method 10, example (a): 56/70 − 48/80 → 0.0524 to 0.3339.
        let comparison = ProportionComparison(reference: Proportion(successes: 48, trials: 80), candidate: Proportion(successes: 56, trials: 70))
        let interval = comparison.differenceInterval()
        #expect(abs(comparison.difference - 0.2) < 1e-12)
        #expect(abs(interval.lowerBound - 0.0524) < 0.0001)
        #expect(abs(interval.upperBound - 0.3339) < 0.0001)
    }

    @Test func twoProportionTestAndEffectSize() {
        // 60/100 vs 40/100: pooled p = 0.5, z = 0.2 / sqrt(0.25 · 0.02) = 2.828, p = 0.00468.
        let comparison = ProportionComparison(reference: Proportion(successes: 40, trials: 100), candidate: Proportion(successes: 60, trials: 100))
        #expect(abs(comparison.zStatistic - 2.8284) < 0.0001)
        #expect(abs(comparison.pValue - 0.00468) < 0.00001)
        #expect(abs(comparison.cohensH - 0.4027) < 0.0001)
        let same = ProportionComparison(reference: Proportion(successes: 0, trials: 50), candidate: Proportion(successes: 0, trials: 50))
        #expect(same.pValue == 1)
    }

    @Test func normalQuantileInvertsTheCDF() {
        #expect(abs(Normal.quantile(0.975) - Normal.z95) < 1e-9)
        for p in [0.001, 0.02, 0.3, 0.5, 0.77, 0.99, 0.9999] {
            #expect(abs(Normal.cdf(Normal.quantile(p)) - p) < 1e-12)
        }
    }

    @Test func trialsNeededReachesTheMargin() {
        let observed = Proportion(successes: 50, trials: 1000)
        let needed = observed.trialsNeeded(margin: 0.005)
        // z² p (1-p) / m² = 3.8415 · 0.0475 / 0.000025 ≈ 7,299.
        #expect(needed >= 7_200 && needed <= 7_700)
        let probe = Proportion(successes: Int(0.05 * Double(needed)), trials: needed).wilsonInterval()
        #expect((probe.upperBound - probe.lowerBound) / 2 <= 0.0051)
        #expect(Proportion(successes: 0, trials: 0).trialsNeeded(margin: 0.01) >= 9_500)
    }

    /// The smallest n, not one 5% step past it: checked against the Wilson half-width written
    /// out here, at n and at n − 1, for rates from 0 to the worst case.
    @Test(arguments: [(0, 1_000, 0.01), (50, 1_000, 0.005), (31, 1_000, 0.006), (1, 3, 0.02), (0, 0, 0.01), (999, 1_000, 0.001)])
    func trialsNeededIsTheSmallestThatMeetsTheMargin(successes: Int, trials: Int, margin: Double) {
        let p = trials == 0 ? 0.5 : Double(successes) / Double(trials)
        let z = 1.959963984540054
        func halfWidth(_ n: Int) -> Double {
            let n = Double(n)
            let centreless = z / (1 + z * z / n) * (p * (1 - p) / n + z * z / (4 * n * n)).squareRoot()
            return centreless
        }
        let needed = Proportion(successes: successes, trials: trials).trialsNeeded(margin: margin, z: z)
        #expect(halfWidth(needed) <= margin)
        #expect(needed == 1 || halfWidth(needed - 1) > margin, "\(needed) is not the smallest")
    }

    /// Bootstrap ranks: the 2.5% tail of 1,000 replicates is the 25th value, even though
    /// (1 − 0.95) / 2 is a hair above 0.025 in floating point.
    @Test func bootstrapRanksAreExactAtWholePositions() {
        let tail = (1 - 0.95) / 2
        #expect(tail > 0.025)
        #expect(PairedQuantileDifference.rank(tail, of: 1_000) == 24)
        #expect(PairedQuantileDifference.rank(1 - tail, of: 1_000) == 974)
        #expect(PairedQuantileDifference.rank(0.5, of: 1_000) == 499)
        #expect(PairedQuantileDifference.rank(0.99, of: 100) == 98)
        #expect(PairedQuantileDifference.rank(0.025, of: 10) == 0, "0.25 rounds up to the 1st")
        #expect(PairedQuantileDifference.rank(0.3, of: 10) == 2, "0.3 · 10 is 3.0000000000000004: the 3rd")
    }

    @Test func reservoirIsUniform() {
        // Every element of 0..<10,000 should land in a 1,000-slot reservoir with p = 0.1.
        var hits = [Int](repeating: 0, count: 10)
        for seed in 0..<200 {
            var reservoir = Reservoir<Int>(capacity: 1_000, seed: UInt64(seed))
            for value in 0..<10_000 { reservoir.offer(value) }
            #expect(reservoir.elements.count == 1_000 && reservoir.seen == 10_000 && !reservoir.isComplete)
            for value in reservoir.elements { hits[value / 1_000] += 1 }
        }
        // Each decile expects 20,000 hits; binomial sd ≈ 134.
        for count in hits { #expect(abs(count - 20_000) < 800, "decile hits \(hits)") }
    }

    @Test func bootstrapOnIdenticalArmsCentresOnZero() {
        var random = SplitMix64(seed: 7)
        let pairs = (0..<500).map { _ -> (baseline: Double, candidate: Double) in
            let value = 1_000 + random.nextUnit() * 9_000
            return (value, value)
        }
        let results = PairedQuantileDifference.bootstrap(pairs: pairs, quantiles: [0.5, 0.99], replicates: 200)
        for result in results {
            #expect(result.estimate == 0 && result.lower == 0 && result.upper == 0)
        }
    }

    @Test func verdictDecisionRules() {
        let guardrails = GuardrailConfiguration(
            maxDivergenceAboveNoise: 0.05,
            maxP99Regression: .absolute(.milliseconds(10)),
            maxErrorRateIncrease: 0.01,
            minPairs: 100
        )
        let noErrors = ProportionComparison(reference: Proportion(successes: 0, trials: 5_000), candidate: Proportion(successes: 0, trials: 5_000))
        let fast = PairedQuantileDifference(quantile: 0.99, estimate: 0, lower: -1_000, upper: 1_000)
        let promote = guardrails.evaluate(
            VerdictEvidence(divergence: Proportion(successes: 50, trials: 5_000), errors: noErrors, p99Difference: fast, baselineP99Micros: 20_000)
        )
        #expect(promote.decision == .promote)
        let reject = guardrails.evaluate(
            VerdictEvidence(divergence: Proportion(successes: 600, trials: 5_000), errors: noErrors, p99Difference: fast, baselineP99Micros: 20_000)
        )
        #expect(reject.decision == .reject && reject.reasons.map(\.name) == ["divergence"])
        let few = guardrails.evaluate(
            VerdictEvidence(
                divergence: Proportion(successes: 0, trials: 50),
                errors: ProportionComparison(reference: Proportion(successes: 0, trials: 50), candidate: Proportion(successes: 0, trials: 50)),
                p99Difference: fast,
                baselineP99Micros: 20_000
            )
        )
        #expect(few.decision == .hold && few.reasons.map(\.name).contains("sample_size"))
        let slow = PairedQuantileDifference(quantile: 0.99, estimate: 30_000, lower: 25_000, upper: 35_000)
        let slowVerdict = guardrails.evaluate(
            VerdictEvidence(divergence: Proportion(successes: 50, trials: 5_000), errors: noErrors, p99Difference: slow, baselineP99Micros: 20_000)
        )
        #expect(slowVerdict.decision == .reject && slowVerdict.reasons.map(\.name) == ["latency_p99"])
        // The noise floor is subtracted: 8% against a 6% floor is 2% above it.
        let noisy = guardrails.evaluate(
            VerdictEvidence(
                divergence: Proportion(successes: 400, trials: 5_000),
                noiseFloor: Proportion(successes: 300, trials: 5_000),
                errors: noErrors,
                p99Difference: fast,
                baselineP99Micros: 20_000
            )
        )
        #expect(noisy.decision == .promote)
        var priced = guardrails
        priced.maxCostIncrease = 0.1
        func costs(_ pairs: [(Double, Double)]) -> Verdict {
            var ratio = PairedRatio()
            for (baseline, candidate) in pairs { ratio.add(baseline: baseline, candidate: candidate) }
            return priced.evaluate(
                VerdictEvidence(
                    divergence: Proportion(successes: 50, trials: 5_000),
                    errors: noErrors,
                    p99Difference: fast,
                    baselineP99Micros: 20_000,
                    costRatio: ratio
                )
            )
        }
        let dear = costs(Array(repeating: (1.0, 1.5), count: 200))
        #expect(dear.decision == .reject && dear.reasons.map(\.name) == ["cost"])
        // +20% on the mean, but token counts vary so much that 40 requests cannot tell: hold.
        let noisy40 = (0..<40).map { index in (1.0, index % 2 == 0 ? 0.2 : 2.2) }
        let unsure = costs(noisy40)
        #expect(unsure.decision == .hold && unsure.reasons.map(\.name) == ["cost"], "\(unsure.checks)")
        #expect(costs(Array(repeating: (1.0, 0.8), count: 200)).decision == .promote)
    }

    /// Below `min_pairs` a confident failure rejects (documented): a candidate failing 40 of 50
    /// calls need not wait for a thousand pairs. Without one, the verdict holds, never promotes.
    @Test func fewerThanMinPairsHoldsOrRejectsButNeverPromotes() {
        let guardrails = GuardrailConfiguration(minPairs: 1_000)
        let failing = guardrails.evaluate(
            VerdictEvidence(
                divergence: Proportion(successes: 0, trials: 10),
                errors: ProportionComparison(reference: Proportion(successes: 0, trials: 50), candidate: Proportion(successes: 40, trials: 50))
            )
        )
        #expect(failing.decision == .reject && failing.reasons.map(\.name) == ["error_rate"])
        let clean = guardrails.evaluate(
            VerdictEvidence(
                divergence: Proportion(successes: 0, trials: 900),
                errors: ProportionComparison(reference: Proportion(successes: 0, trials: 900), candidate: Proportion(successes: 0, trials: 900)),
                p99Difference: PairedQuantileDifference(quantile: 0.99, estimate: 0, lower: -10, upper: 10),
                baselineP99Micros: 20_000
            )
        )
        #expect(clean.decision == .hold && clean.reasons.map(\.name) == ["sample_size"])
    }

    /// The cost ratio's delta-method interval covers the true ratio of means 95% ± 3% of the time
    /// (400 seeded experiments of 300 requests with token counts that vary per request).
    @Test func pairedRatioIntervalCoverage() {
        var random = SplitMix64(seed: 7)
        func uniform() -> Double { Double(random.next() >> 11) / Double(1 << 53) }
        var covered = 0
        let experiments = 400
        for _ in 0..<experiments {
            var ratio = PairedRatio()
            for _ in 0..<300 {
                let baseline = 0.5 + uniform()  // mean 1
                let candidate = 1.2 * baseline + (uniform() - 0.5) * 0.8  // mean 1.2
                ratio.add(baseline: baseline, candidate: candidate)
            }
            if let increase = ratio.relativeIncrease(), increase.interval.contains(0.2) { covered += 1 }
        }
        let coverage = Double(covered) / Double(experiments)
        #expect(abs(coverage - 0.95) <= 0.03, "coverage \(coverage)")
    }

    @Test func unitsFormatting() {
        #expect(Units.fixed(3.14159, decimals: 2) == "3.14")
        #expect(Units.fixed(-0.004, decimals: 2) == "0.00")
        #expect(Units.fixed(-2.5, decimals: 1) == "-2.5")
        #expect(Units.fixed(0.05, decimals: 3) == "0.050")
        #expect(Units.formatPercent(0.1127) == "11.27%")
        #expect(Units.formatMicros(850) == "850µs")
        #expect(Units.formatMicros(12_345) == "12.3ms")
        #expect(Units.formatMicros(2_500_000) == "2.50s")
    }
}
