/// Whether a candidate is ready for a live A/B test, and the checks that decided it.
public struct Verdict: Sendable, Equatable {
    public enum Decision: String, Sendable, Equatable, Codable, CaseIterable {
        /// Every guardrail holds with 95% confidence: ready for a live A/B test.
        case promote
        /// Not enough data, or an interval straddles a limit.
        case hold
        /// A guardrail is broken with 95% confidence.
        case reject
    }

    public enum Outcome: String, Sendable, Equatable, Codable {
        case pass
        case fail
        case inconclusive
        /// Not configured or nothing to check.
        case skipped
    }

    /// One guardrail's result.
    public struct Check: Sendable, Equatable, Codable {
        /// A stable identifier: `sample_size`, `divergence`, `latency_p99`, `error_rate`, `cost`.
        public var name: String
        public var outcome: Outcome
        /// One sentence with the figures, for people.
        public var detail: String

        public init(name: String, outcome: Outcome, detail: String) {
            self.name = name
            self.outcome = outcome
            self.detail = detail
        }
    }

    public var decision: Decision
    public var checks: [Check]

    public init(decision: Decision, checks: [Check]) {
        self.decision = decision
        self.checks = checks
    }

    /// The checks that decided the verdict: the failures of a rejection, the inconclusive checks
    /// of a hold, all checks of a promotion.
    public var reasons: [Check] {
        switch self.decision {
        case .reject: self.checks.filter { $0.outcome == .fail }
        case .hold: self.checks.filter { $0.outcome == .inconclusive }
        case .promote: self.checks.filter { $0.outcome == .pass }
        }
    }
}

extension GuardrailConfiguration {
    /// Decides promote / hold / reject: any guardrail failing with confidence rejects; otherwise
    /// any inconclusive one (including too few pairs) holds; otherwise promote.
    public func evaluate(_ evidence: VerdictEvidence) -> Verdict {
        var checks: [Verdict.Check] = []
        let pairs = evidence.divergence.trials
        checks.append(
            pairs >= self.minPairs
                ? .init(name: "sample_size", outcome: .pass, detail: "\(pairs) compared pairs (minimum \(self.minPairs))")
                : .init(name: "sample_size", outcome: .inconclusive, detail: "\(pairs) compared pairs, fewer than the \(self.minPairs) required")
        )

        let excess = evidence.divergenceAboveNoise
        let floor =
            evidence.noiseFloor.map { "noise floor \(Units.formatPercent($0.rate)) over \($0.trials) A/A pairs" } ?? "no A/A pairs, floor taken as 0"
        checks.append(
            Self.check(
                name: "divergence",
                interval: excess.interval,
                limit: self.maxDivergenceAboveNoise,
                detail:
                    "divergence above noise \(Units.formatPercent(excess.estimate)) (95% CI \(Self.percentRange(excess.interval))), limit \(Units.formatPercent(self.maxDivergenceAboveNoise)); \(floor)"
            )
        )

        if let difference = evidence.p99Difference, let baseline = evidence.baselineP99Micros {
            let limit = self.maxP99Regression.microseconds(baselineP99: baseline)
            checks.append(
                Self.check(
                    name: "latency_p99",
                    interval: difference.lower...max(difference.lower, difference.upper),
                    limit: limit,
                    detail:
                        "p99 candidate − baseline \(Units.formatMicros(difference.estimate)) (95% CI \(Units.formatMicros(difference.lower)) to \(Units.formatMicros(difference.upper))), limit \(self.maxP99Regression) = \(Units.formatMicros(limit))"
                )
            )
        } else {
            checks.append(.init(name: "latency_p99", outcome: .inconclusive, detail: "no pairs with both latencies"))
        }

        let errors = evidence.errors
        let errorInterval = errors.differenceInterval()
        checks.append(
            Self.check(
                name: "error_rate",
                interval: errorInterval,
                limit: self.maxErrorRateIncrease,
                detail:
                    "error rate \(Units.formatPercent(errors.candidate.rate)) vs baseline \(Units.formatPercent(errors.reference.rate)), increase \(Units.formatPercent(errors.difference)) (95% CI \(Self.percentRange(errorInterval)); p = \(Units.fixed(errors.pValue, decimals: 4)), Cohen's h \(Units.fixed(errors.cohensH, decimals: 3))), limit \(Units.formatPercent(self.maxErrorRateIncrease))"
            )
        )

        if let limit = self.maxCostIncrease {
            if let ratio = evidence.costRatio, let increase = ratio.relativeIncrease() {
                let interval = increase.interval
                checks.append(
                    Self.check(
                        name: "cost",
                        interval: interval,
                        limit: limit,
                        detail:
                            "cost per request \(Units.fixed(ratio.candidateMean, decimals: 6)) vs \(Units.fixed(ratio.baselineMean, decimals: 6)), \(increase.estimate >= 0 ? "+" : "")\(Units.formatPercent(increase.estimate)) (95% CI \(interval.lowerBound.isFinite ? Self.percentRange(interval) : "unbounded with one pair") over \(ratio.count) pairs), limit +\(Units.formatPercent(limit))"
                    )
                )
            } else {
                checks.append(.init(name: "cost", outcome: .inconclusive, detail: "max_cost_increase is set but no cost is configured for both arms"))
            }
        }

        let decision: Verdict.Decision =
            checks.contains { $0.outcome == .fail } ? .reject : checks.contains { $0.outcome == .inconclusive } ? .hold : .promote
        return Verdict(decision: decision, checks: checks)
    }

    private static func check(name: String, interval: ClosedRange<Double>, limit: Double, detail: String) -> Verdict.Check {
        let outcome: Verdict.Outcome = interval.lowerBound > limit ? .fail : interval.upperBound <= limit ? .pass : .inconclusive
        return .init(name: name, outcome: outcome, detail: detail)
    }

    private static func percentRange(_ interval: ClosedRange<Double>) -> String {
        "\(Units.formatPercent(interval.lowerBound)) to \(Units.formatPercent(interval.upperBound))"
    }
}
