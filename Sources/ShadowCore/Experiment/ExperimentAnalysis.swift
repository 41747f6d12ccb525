/// The analysis of one A/B experiment and its decision, from per-user summaries: pure, so the
/// decision table and the statistics are tested by simulation without a database.
///
/// The decision follows the path a model walks after shadow: **ship** (the primary metric
/// improved significantly, every guardrail held, the minimum duration is over), **kill** (the
/// primary metric or an outcome guardrail is significantly worse, a guardrail stopped the
/// exposure, or the sample ratio is broken), **retrain** (better overall but a segment is
/// significantly worse), **continue** (not enough evidence yet; it says how much more).
public struct ExperimentAnalysis: Sendable, Equatable, Codable {
    public enum Decision: String, Sendable, Equatable, Codable {
        case ship
        case `continue`
        case retrain
        case kill

        /// ship and continue exit 0; kill and retrain exit 3, like a rejected shadow verdict.
        public var failsTheRun: Bool { self == .kill || self == .retrain }
    }

    /// What the analysis is given.
    public struct Input: Sendable {
        public var configuration: ExperimentConfiguration
        /// Per metric (by name), per arm: each enrolled user's value.
        public var metrics: [String: (control: ArmSummary, treatment: ArmSummary)]
        /// The primary metric per segment (a user's segment at first exposure).
        public var segments: [String: (control: ArmSummary, treatment: ArmSummary)]
        /// Enrolled users per arm.
        public var controlUsers: Int
        public var treatmentUsers: Int
        /// Why exposure was stopped, if it was (a broken guardrail or a person).
        public var stoppedReason: String?
        /// From the first exposure to the last (or to now), microseconds.
        public var elapsedMicros: Int64
        /// The treatment's cost per request against control's, when both are priced (0.1 = 10%
        /// dearer), and the route's limit on it.
        public var costIncrease: Double?
        public var maxCostIncrease: Double?
        /// The treatment's divergence from control in the first and second half of the
        /// experiment's pairs: a model whose answers drift away over the test is retrained, not
        /// shipped, even when the primary metric is up.
        public var divergenceHalves: (first: Proportion, second: Proportion)?

        public init(configuration: ExperimentConfiguration, controlUsers: Int, treatmentUsers: Int, elapsedMicros: Int64) {
            self.configuration = configuration
            self.metrics = [:]
            self.segments = [:]
            self.controlUsers = controlUsers
            self.treatmentUsers = treatmentUsers
            self.elapsedMicros = elapsedMicros
        }
    }

    public struct Metric: Sendable, Equatable, Codable {
        public var name: String
        public var primary: Bool
        public var comparison: MetricComparison
        /// For an outcome guardrail: the largest decrease allowed, relative.
        public var maxDecrease: Double?
    }

    public struct Segment: Sendable, Equatable, Codable {
        public var name: String
        public var comparison: MetricComparison
        /// Significantly worse on the primary metric.
        public var worse: Bool
    }

    public struct Planning: Sendable, Equatable, Codable {
        /// Users per arm a fixed-horizon test needs for the configured MDE, alpha and power.
        public var usersNeededPerArm: Int?
        /// At the enrolment rate so far, days until then (0 when there).
        public var daysNeeded: Double?
        /// The relative lift detectable with the users so far.
        public var reachableMDE: Double?
        public var minDurationDays: Double
        public var elapsedDays: Double
    }

    public var decision: Decision
    public var reasons: [String]
    public var srmPValue: Double
    public var metrics: [Metric]
    public var segments: [Segment]
    public var planning: Planning
    /// `fixed` analysis before its planned sample and duration: intervals are withheld.
    public var resultsWithheld: Bool

    public static func analyse(_ input: Input) -> ExperimentAnalysis {
        let configuration = input.configuration
        let srm = SampleRatio.pValue(control: input.controlUsers, treatment: input.treatmentUsers)
        let metrics: [Metric] = configuration.metrics.compactMap { metric in
            guard let arms = input.metrics[metric.name] else { return nil }
            return Metric(
                name: metric.name,
                primary: metric.name == configuration.primary,
                comparison: MetricComparison.compare(
                    kind: metric.kind,
                    control: arms.control,
                    treatment: arms.treatment,
                    analysis: configuration.analysis,
                    alpha: configuration.alpha,
                    mde: configuration.minimumDetectableEffect
                ),
                maxDecrease: configuration.guardrails.maxDecrease[metric.name]
            )
        }
        let primary = metrics.first { $0.primary }
        let primaryKind = configuration.metrics.first { $0.name == configuration.primary }?.kind ?? .binary
        let segments: [Segment] = input.segments.keys.sorted().compactMap { name in
            guard let arms = input.segments[name], arms.control.users > 1, arms.treatment.users > 1 else { return nil }
            let comparison = MetricComparison.compare(
                kind: primaryKind,
                control: arms.control,
                treatment: arms.treatment,
                analysis: configuration.analysis,
                alpha: configuration.alpha,
                mde: configuration.minimumDetectableEffect
            )
            return Segment(name: name, comparison: comparison, worse: comparison.difference.ciHigh < 0)
        }
        let days = Double(input.elapsedMicros) / 86_400_000_000
        let minDays = Double(configuration.minDuration.microseconds) / 86_400_000_000
        var planning = Planning(
            usersNeededPerArm: nil,
            daysNeeded: nil,
            reachableMDE: primary?.comparison.reachableMDE,
            minDurationDays: minDays,
            elapsedDays: days
        )
        if let primary {
            planning.usersNeededPerArm = MetricComparison.usersNeeded(
                kind: primary.comparison.control.ratio == nil ? primaryKind : .continuous,
                controlMean: primary.comparison.control.mean,
                controlVariance: primary.comparison.control.variance,
                mde: configuration.minimumDetectableEffect,
                alpha: configuration.alpha,
                power: configuration.power
            )
            if let needed = planning.usersNeededPerArm {
                let perDay = days > 0 ? Double(min(input.controlUsers, input.treatmentUsers)) / days : 0
                let missing = Double(max(0, needed - min(input.controlUsers, input.treatmentUsers)))
                planning.daysNeeded = missing == 0 ? max(0, minDays - days) : perDay > 0 ? max(missing / perDay, minDays - days) : nil
            }
        }
        let enoughForFixed =
            days >= minDays && (planning.usersNeededPerArm.map { min(input.controlUsers, input.treatmentUsers) >= $0 } ?? false)
        let withheld = configuration.analysis == .fixed && !enoughForFixed

        var reasons: [String] = []
        var decision = Decision.continue
        func percent(_ value: Double) -> String { Units.formatPercent(value) }
        if srm < SampleRatio.threshold {
            decision = .kill
            reasons.append(
                "sample ratio mismatch: \(input.controlUsers) control vs \(input.treatmentUsers) treatment users (p = \(Units.fixed(srm, decimals: 6)) < 0.001); the assignment is broken and no figure here can be trusted"
            )
        }
        if let stopped = input.stoppedReason {
            decision = .kill
            reasons.append("exposure was stopped: \(stopped)")
        }
        if !withheld {
            for metric in metrics where metric.maxDecrease != nil && metric.comparison.relativeLift.ciHigh < -metric.maxDecrease! {
                decision = .kill
                reasons.append(
                    "guardrail \(metric.name): \(percent(metric.comparison.relativeLift.estimate)) (at best \(percent(metric.comparison.relativeLift.ciHigh))), below the allowed −\(percent(metric.maxDecrease!))"
                )
            }
            if let primary, primary.comparison.difference.ciHigh < 0 {
                decision = .kill
                reasons.append(
                    "primary \(primary.name) is significantly worse: \(percent(primary.comparison.relativeLift.estimate)) (p = \(Units.fixed(primary.comparison.pValue, decimals: 4)))"
                )
            }
        }
        if decision != .kill, !withheld, let primary, primary.comparison.difference.ciLow > 0 {
            let worse = segments.filter(\.worse)
            let drift = input.divergenceHalves.map { halves in
                ConfidenceSequence.difference(control: halves.first, treatment: halves.second, tau: 0.01, alpha: configuration.alpha)
            }
            if let drift, let halves = input.divergenceHalves, drift.interval.lowerBound > 0 {
                decision = .retrain
                reasons.append(
                    "primary \(primary.name) improved (\(percent(primary.comparison.relativeLift.estimate))) but divergence from control drifts upward over the experiment: \(percent(halves.first.rate)) in its first half, \(percent(halves.second.rate)) in its second"
                )
            } else if !worse.isEmpty {
                decision = .retrain
                reasons.append(
                    "primary \(primary.name) improved overall (\(percent(primary.comparison.relativeLift.estimate))) but is significantly worse for segment(s) "
                        + worse.map(\.name).joined(separator: ", ")
                )
            } else if let cost = input.costIncrease, let limit = input.maxCostIncrease, cost > limit {
                reasons.append(
                    "primary improved, but cost per request is \(percent(cost)) higher (limit \(percent(limit))): continue only if worth it"
                )
            } else if days < minDays {
                reasons.append(
                    "primary \(primary.name) improved significantly (\(percent(primary.comparison.relativeLift.estimate))), but the experiment has run \(Units.fixed(days, decimals: 1)) of its \(Units.fixed(minDays, decimals: 1)) minimum days"
                )
            } else {
                decision = .ship
                reasons.append(
                    "primary \(primary.name) improved significantly: \(percent(primary.comparison.relativeLift.estimate)) [\(percent(primary.comparison.relativeLift.ciLow)), \(percent(primary.comparison.relativeLift.ciHigh))], every guardrail held"
                )
            }
        }
        if decision == .continue, reasons.isEmpty || withheld {
            if withheld {
                reasons.append(
                    "not yet (fixed analysis): \(min(input.controlUsers, input.treatmentUsers)) of \(planning.usersNeededPerArm.map(String.init) ?? "?") users per arm, \(Units.fixed(days, decimals: 1)) of \(Units.fixed(minDays, decimals: 1)) days"
                )
            } else if primary == nil {
                reasons.append("no outcomes for the primary metric yet")
            } else {
                let more = planning.daysNeeded.map { " (about \(Units.fixed($0, decimals: 1)) more days at the current rate)" } ?? ""
                reasons.append(
                    "no significant difference on the primary metric yet; \(planning.usersNeededPerArm.map { "\($0) users per arm" } ?? "more data") needed for a \(percent(configuration.minimumDetectableEffect)) lift\(more)"
                )
            }
        }
        return ExperimentAnalysis(
            decision: decision,
            reasons: reasons,
            srmPValue: srm,
            metrics: metrics,
            segments: segments,
            planning: planning,
            resultsWithheld: withheld
        )
    }
}
