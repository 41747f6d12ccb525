import Histogram
import ShadowCore
import ShadowStore

extension ReportBuilder {
    static let quantiles = [0.5, 0.9, 0.99, 0.999]

    func candidateReport(_ tally: CandidateAccumulator, noise: Proportion?, coverage: [String: Int]) -> CandidateReport {
        let guardrails = self.options.guardrails(route: tally.route)
        let divergence = Proportion(successes: tally.diverged, trials: tally.compared)
        let errors = ProportionComparison(
            reference: Proportion(successes: tally.errors.baselineErrors, trials: tally.errors.pairs),
            candidate: Proportion(successes: tally.errors.candidateErrors, trials: tally.errors.pairs)
        )
        let timeouts = ProportionComparison(
            reference: Proportion(successes: tally.errors.baselineTimeouts, trials: tally.errors.pairs),
            candidate: Proportion(successes: tally.errors.candidateTimeouts, trials: tally.errors.pairs)
        )
        let differences = self.latencyDifferences(tally)
        let p99 = differences.first { $0.quantile == 0.99 }
        let cost = Self.costSection(tally.cost)
        let evidence = VerdictEvidence(
            divergence: divergence,
            noiseFloor: noise,
            errors: errors,
            p99Difference: p99,
            baselineP99Micros: tally.baselineLatency.totalCount > 0 ? Double(tally.baselineLatency.valueAtPercentile(99)) : nil,
            costPerRequest: cost.map { ($0.baselinePerRequest, $0.candidatePerRequest) },
            costRatio: tally.cost.pairs > 0 ? tally.cost.ratio : nil
        )
        let verdict = guardrails.evaluate(evidence)
        let excess = evidence.divergenceAboveNoise
        let halfWidth = tally.compared == 0 ? 0.5 : (divergence.wilsonInterval().upperBound - divergence.wilsonInterval().lowerBound) / 2
        let needed = max(guardrails.minPairs, divergence.trialsNeeded(margin: guardrails.margin))
        let recordedReasons = Set(CoverageReason.allCases.filter(\.isRecorded).map(\.rawValue))
        return CandidateReport(
            name: tally.candidate,
            pairs: tally.pairs,
            coverage: CoverageSection(
                seen: coverage.values.reduce(0, +),
                recorded: coverage.filter { recordedReasons.contains($0.key) }.values.reduce(0, +),
                dropped: coverage.filter { !recordedReasons.contains($0.key) },
                candidateErrors: tally.candidateErrorKinds
            ),
            divergence: DivergenceSection(
                compared: tally.compared,
                diverged: tally.diverged,
                rate: divergence.rate,
                interval: divergence.wilsonInterval().bounds,
                noiseFloorRate: noise?.rate,
                aboveNoise: excess.estimate,
                aboveNoiseInterval: excess.interval.bounds,
                meanScore: tally.compared == 0 ? 0 : tally.scoreSum / Double(tally.compared),
                zeroScores: tally.zeroScores,
                scoreHistogram: tally.scoreBins,
                topPaths: tally.paths
                    .map {
                        PathCount(
                            path: $0.key,
                            count: $0.value.count,
                            share: Double($0.value.count) / Double(max(1, tally.compared)),
                            examples: $0.value.examples
                        )
                    }
                    .sorted { ($0.count, $1.path) > ($1.count, $0.path) }
                    .prefix(10)
                    .map { $0 }
            ),
            latency: LatencySection(
                baseline: Self.armLatency(tally.baselineLatency),
                candidate: Self.armLatency(tally.candidateLatency),
                differences: differences.map { QuantileDifference(quantile: $0.quantile, estimate: $0.estimate, lower: $0.lower, upper: $0.upper) },
                baselineCdf: Self.cdf(tally.baselineLatency),
                candidateCdf: Self.cdf(tally.candidateLatency)
            ),
            errors: ErrorSection(
                pairs: tally.errors.pairs,
                baselineErrors: tally.errors.baselineErrors,
                candidateErrors: tally.errors.candidateErrors,
                baselineTimeouts: tally.errors.baselineTimeouts,
                candidateTimeouts: tally.errors.candidateTimeouts,
                baselineRate: errors.reference.rate,
                candidateRate: errors.candidate.rate,
                difference: errors.difference,
                interval: errors.differenceInterval().bounds,
                pValue: errors.pValue,
                effectSize: errors.cohensH,
                significant: errors.pValue < 0.05,
                timeoutDifference: timeouts.difference,
                timeoutPValue: timeouts.pValue
            ),
            segments: self.segments(tally, guardrails: guardrails, noise: noise),
            hourly: tally.allHours.sorted { $0.key < $1.key }.map { hour, slice in
                HourReport(
                    hour: ReportTime.iso(micros: hour * 3_600_000_000),
                    pairs: slice.pairs,
                    compared: slice.compared,
                    divergenceRate: slice.compared == 0 ? 0 : Double(slice.diverged) / Double(slice.compared),
                    baselineP50: Self.percentile(slice.baselineLatency, 50),
                    baselineP99: Self.percentile(slice.baselineLatency, 99),
                    candidateP50: Self.percentile(slice.candidateLatency, 50),
                    candidateP99: Self.percentile(slice.candidateLatency, 99),
                    candidateErrors: slice.errors.candidateErrors
                )
            },
            cost: cost,
            enoughData: EnoughDataSection(
                enough: tally.compared >= needed,
                compared: tally.compared,
                halfWidth: halfWidth,
                margin: guardrails.margin,
                additionalPairsNeeded: max(0, needed - tally.compared),
                minPairs: guardrails.minPairs
            ),
            verdict: VerdictSection(decision: verdict.decision, reasons: verdict.reasons, checks: verdict.checks)
        )
    }

    /// Bootstrap intervals on the reservoir of paired latencies, centred on the whole
    /// population's figures when the reservoir is only a sample of it.
    private func latencyDifferences(_ tally: CandidateAccumulator) -> [PairedQuantileDifference] {
        let sample = tally.latencyPairs
        guard !sample.elements.isEmpty else { return [] }
        var estimates: [Double]?
        if !sample.isComplete {
            estimates = Self.quantiles.map {
                Double(tally.candidateLatency.valueAtPercentile($0 * 100)) - Double(tally.baselineLatency.valueAtPercentile($0 * 100))
            }
        }
        return PairedQuantileDifference.bootstrap(
            pairs: sample.elements,
            quantiles: Self.quantiles,
            population: sample.seen,
            estimates: estimates,
            replicates: self.options.bootstrapReplicates,
            seed: self.options.seed
        )
    }

    private func segments(_ tally: CandidateAccumulator, guardrails: GuardrailConfiguration, noise: Proportion?) -> [SegmentReport] {
        let overall = (
            divergence: Proportion(successes: tally.diverged, trials: tally.compared).rate,
            errorRate: Proportion(successes: tally.errors.candidateErrors, trials: tally.errors.pairs).rate
        )
        return tally.segments.sorted { ($0.value.pairs, $1.key) > ($1.value.pairs, $0.key) }.map { value, slice in
            let divergence = Proportion(successes: slice.diverged, trials: slice.compared)
            let errors = ProportionComparison(
                reference: Proportion(successes: slice.errors.baselineErrors, trials: slice.errors.pairs),
                candidate: Proportion(successes: slice.errors.candidateErrors, trials: slice.errors.pairs)
            )
            // Simpson's-paradox guard: a segment is flagged when the route's guardrails fail on
            // it alone *and* that figure is significantly worse there than over the whole route,
            // so a bad segment stands out even when the overall figures look fine.
            let verdict = guardrails.evaluate(VerdictEvidence(divergence: divergence, noiseFloor: noise, errors: errors))
            let failures = verdict.checks.filter { check in
                guard check.outcome == .fail else { return false }
                switch check.name {
                case "divergence": return divergence.wilsonInterval().lowerBound > overall.divergence
                case "error_rate": return errors.candidate.wilsonInterval().lowerBound > overall.errorRate
                default: return true
                }
            }
            return SegmentReport(
                value: value,
                pairs: slice.pairs,
                compared: slice.compared,
                divergenceRate: divergence.rate,
                interval: divergence.wilsonInterval().bounds,
                baselineErrorRate: errors.reference.rate,
                candidateErrorRate: errors.candidate.rate,
                candidateP99: Self.percentile(slice.candidateLatency, 99),
                baselineP99: Self.percentile(slice.baselineLatency, 99),
                flagged: !failures.isEmpty,
                reasons: failures.map(\.detail)
            )
        }
    }

    static func costSection(_ cost: CandidateAccumulator.CostTally) -> CostSection? {
        guard cost.pairs > 0 else { return nil }
        let baseline = cost.baseline / Double(cost.pairs)
        let candidate = cost.candidate / Double(cost.pairs)
        return CostSection(
            pairs: cost.pairs,
            baselinePerRequest: baseline,
            candidatePerRequest: candidate,
            baselinePer1000: baseline * 1000,
            candidatePer1000: candidate * 1000,
            increase: baseline > 0 ? candidate / baseline - 1 : nil,
            days: cost.days.sorted { $0.key < $1.key }.map { day, spend in
                CostSection.DaySpend(
                    day: HTTPDate.isoDay(daysSince1970: day),
                    pairs: spend.pairs,
                    baseline: spend.baseline,
                    candidate: spend.candidate
                )
            }
        )
    }

    static func armLatency(_ histogram: Histogram<UInt64>) -> ArmLatency {
        guard histogram.totalCount > 0 else { return ArmLatency(count: 0, mean: 0, p50: 0, p90: 0, p99: 0, p999: 0) }
        return ArmLatency(
            count: Int(histogram.totalCount),
            mean: histogram.mean,
            p50: Double(histogram.valueAtPercentile(50)),
            p90: Double(histogram.valueAtPercentile(90)),
            p99: Double(histogram.valueAtPercentile(99)),
            p999: Double(histogram.valueAtPercentile(99.9))
        )
    }

    static func percentile(_ histogram: Histogram<UInt64>, _ percentile: Double) -> Double? {
        histogram.totalCount == 0 ? nil : Double(histogram.valueAtPercentile(percentile))
    }

    /// About 60 points of the cumulative distribution, denser in the tail where arms differ.
    static func cdf(_ histogram: Histogram<UInt64>) -> [[Double]] {
        guard histogram.totalCount > 0 else { return [] }
        let percentiles = [0.1] + stride(from: 2.0, through: 90, by: 2).map { $0 } + [92, 94, 95, 96, 97, 98, 99, 99.5, 99.9, 99.99, 100]
        return percentiles.map { [Double(histogram.valueAtPercentile($0)), $0 / 100] }
    }
}
