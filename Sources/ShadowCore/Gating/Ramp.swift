/// A staged ramp: the share of a route's sample that is mirrored grows stage by stage (1% → 5% →
/// 20% → 50% → 100%), each stage lasting at least its minimum duration and pair count, and only
/// while the route's guardrails hold over the stage; a broken guardrail falls back one stage (or
/// to the first). A value type with the time passed in.
public struct Ramp: Sendable, Equatable {
    public let configuration: RampConfiguration
    public private(set) var stage: Int
    /// When the current stage began, microseconds since the epoch (wall clock: it is persisted).
    public private(set) var enteredAtMicros: Int64
    public private(set) var tally = StageTally()

    /// The stage list as text, stored with the state: a changed list starts the ramp afresh.
    public var signature: String { self.configuration.stages.map { Units.fixed($0.percent, decimals: 3) }.joined(separator: ",") }

    /// A stage change, to log, count, record and persist.
    public struct Transition: Sendable, Equatable {
        public var from: Int
        public var to: Int
        public var reason: String
    }

    /// Outcomes seen during the current stage.
    public struct StageTally: Sendable, Equatable {
        public var pairs = 0
        public var compared = 0
        public var diverged = 0
        public var baselineErrors = 0
        public var candidateErrors = 0
        /// Latency bins (the circuit breaker's √2 bins) per arm.
        public var baselineLatencies = [Int](repeating: 0, count: CircuitBreaker.latencyBins)
        public var candidateLatencies = [Int](repeating: 0, count: CircuitBreaker.latencyBins)

        public init() {}

        /// One recorded pair.
        public mutating func add(baselineFailed: Bool, candidateFailed: Bool, baselineMicros: Int64?, candidateMicros: Int64?) {
            self.pairs += 1
            if baselineFailed { self.baselineErrors += 1 }
            if candidateFailed { self.candidateErrors += 1 }
            if let baselineMicros { self.baselineLatencies[CircuitBreaker.bin(baselineMicros)] += 1 }
            if let candidateMicros { self.candidateLatencies[CircuitBreaker.bin(candidateMicros)] += 1 }
        }

        /// Adds a batch's scoring totals.
        public mutating func addScores(compared: Int, diverged: Int) {
            self.compared += compared
            self.diverged += diverged
        }

        static func p99(_ bins: [Int]) -> Double? {
            let total = bins.reduce(0, +)
            guard total > 0 else { return nil }
            let rank = Int((0.99 * Double(total)).rounded(.up))
            var cumulative = 0
            for (index, count) in bins.enumerated() {
                cumulative += count
                if cumulative >= rank { return CircuitBreaker.binUpperMicros(index) }
            }
            return nil
        }
    }

    public init(configuration: RampConfiguration, stage: Int = 0, enteredAtMicros: Int64) {
        self.configuration = configuration
        self.stage = min(max(0, stage), configuration.stages.count - 1)
        self.enteredAtMicros = enteredAtMicros
    }

    /// The share of the route's sample mirrored now, 0...100.
    public var percent: Double { self.configuration.stages[self.stage].percent }

    public mutating func add(_ body: (inout StageTally) -> Void) {
        body(&self.tally)
    }

    /// Advances, falls back or stays, judging the stage's outcomes by the guardrails.
    public mutating func evaluate(nowMicros: Int64, guardrails: GuardrailConfiguration) -> Transition? {
        let stage = self.configuration.stages[self.stage]
        let tally = self.tally
        let evidence = VerdictEvidence(
            divergence: Proportion(successes: tally.diverged, trials: tally.compared),
            errors: ProportionComparison(
                reference: Proportion(successes: tally.baselineErrors, trials: tally.pairs),
                candidate: Proportion(successes: tally.candidateErrors, trials: tally.pairs)
            ),
            p99Difference: {
                guard let b = StageTally.p99(tally.baselineLatencies), let c = StageTally.p99(tally.candidateLatencies) else { return nil }
                return PairedQuantileDifference(quantile: 0.99, estimate: c - b, lower: c - b, upper: c - b)
            }(),
            baselineP99Micros: StageTally.p99(tally.baselineLatencies)
        )
        var stageRails = guardrails
        stageRails.minPairs = max(1, stage.minPairs)
        stageRails.maxCostIncrease = nil
        let verdict = stageRails.evaluate(evidence)
        if let failure = verdict.checks.first(where: { $0.outcome == .fail }) {
            let target = self.configuration.fallback == .first ? 0 : max(0, self.stage - 1)
            return self.move(
                to: target,
                nowMicros: nowMicros,
                reason: "\(failure.name) broke at \(Units.formatPercent(stage.percent / 100, decimals: 0)): \(failure.detail)"
            )
        }
        guard self.stage + 1 < self.configuration.stages.count,
            nowMicros - self.enteredAtMicros >= stage.minDuration.microseconds,
            tally.compared >= stage.minPairs,
            !verdict.checks.contains(where: { $0.outcome == .inconclusive })
        else { return nil }
        return self.move(to: self.stage + 1, nowMicros: nowMicros, reason: "guardrails held over \(tally.compared) pairs")
    }

    private mutating func move(to target: Int, nowMicros: Int64, reason: String) -> Transition? {
        let from = self.stage
        self.stage = target
        self.enteredAtMicros = nowMicros
        self.tally = StageTally()
        // Falling back from the first stage stays there, with fresh figures.
        return from == target ? nil : Transition(from: from, to: target, reason: reason)
    }
}

/// The stages of a ramp.
public struct RampConfiguration: Sendable, Equatable {
    public struct Stage: Sendable, Equatable {
        /// Share of the route's sample, 0...100.
        public var percent: Double
        public var minDuration: Duration
        public var minPairs: Int

        public init(percent: Double, minDuration: Duration, minPairs: Int) {
            self.percent = percent
            self.minDuration = minDuration
            self.minPairs = minPairs
        }
    }

    public enum Fallback: String, Sendable, Equatable, CaseIterable {
        /// One stage down.
        case previous
        /// Back to the first stage.
        case first
    }

    public var stages: [Stage]
    public var fallback: Fallback

    public init(stages: [Stage], fallback: Fallback = .previous) {
        precondition(!stages.isEmpty, "a ramp needs stages")
        self.stages = stages
        self.fallback = fallback
    }
}
