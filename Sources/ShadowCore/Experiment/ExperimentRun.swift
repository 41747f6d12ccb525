/// A running experiment's exposure state: the allocation stage, and whether it was stopped and
/// why. A value type with the time passed in; the daemon feeds it each written batch, judges the
/// guardrails on always-valid intervals after every batch, and persists every change.
///
/// Stages only grow while every operational guardrail is known to hold over the stage; any
/// guardrail known to be broken stops the experiment at once: the treatment share drops to 0
/// and stays there (also across restarts) until a person resumes it.
public struct ExperimentRun: Sendable, Equatable {
    public let configuration: ExperimentConfiguration
    public private(set) var stage: Int
    public private(set) var enteredAtMicros: Int64
    /// Why and when exposure was stopped; `nil` while it runs.
    public private(set) var stopped: (reason: String, atMicros: Int64)?
    public private(set) var tally = Tally()

    /// Served requests per arm in the current stage (since the last change).
    public struct Tally: Sendable, Equatable {
        public var control = ArmTally()
        public var treatment = ArmTally()

        public init() {}
    }

    public struct ArmTally: Sendable, Equatable {
        /// Requests of users assigned to the arm.
        public var requests = 0
        /// The arm's call failed (transport error, timeout or 5xx), whether or not a fallback
        /// then answered.
        public var failures = 0
        /// Answered by the control's fallback (treatment only).
        public var fallbacks = 0
        /// Latencies of answered calls, in the circuit breaker's √2 bins.
        public var latencies = [Int](repeating: 0, count: CircuitBreaker.latencyBins)

        public init() {}

        public mutating func add(failed: Bool, fallback: Bool, latencyMicros: Int64?) {
            self.requests += 1
            if failed { self.failures += 1 }
            if fallback { self.fallbacks += 1 }
            if !failed, let latencyMicros { self.latencies[CircuitBreaker.bin(latencyMicros)] += 1 }
        }

        /// Answered calls slower than `micros`: the bins wholly above it.
        func slowerThan(_ micros: Double) -> Proportion {
            let answered = self.latencies.reduce(0, +)
            let slow = self.latencies.indices.filter { $0 > 0 && CircuitBreaker.binUpperMicros($0 - 1) >= micros }.reduce(0) {
                $0 + self.latencies[$1]
            }
            return Proportion(successes: slow, trials: answered)
        }
    }

    /// A change to log, record in `gating_events` and persist.
    public enum Transition: Sendable, Equatable {
        case advanced(from: Int, to: Int, reason: String)
        case stopped(reason: String)
        case resumed(stage: Int)
    }

    /// What the guardrails say over the current stage.
    public struct Judgement: Sendable, Equatable {
        /// The first broken guardrail, in words.
        public var broken: String?
        /// Every operational guardrail is known to hold.
        public var held: Bool
    }

    public init(configuration: ExperimentConfiguration, stage: Int = 0, enteredAtMicros: Int64, stopped: (reason: String, atMicros: Int64)? = nil) {
        precondition(!configuration.allocation.isEmpty, "an experiment needs an allocation")
        self.configuration = configuration
        self.stage = min(max(0, stage), configuration.allocation.count - 1)
        self.enteredAtMicros = enteredAtMicros
        self.stopped = stopped
    }

    /// The share of keyed users served by treatment now, 0...100 (0 once stopped).
    public var treatmentPercent: Double {
        self.stopped == nil ? self.configuration.percent(stage: self.stage) : 0
    }

    public mutating func add(_ body: (inout Tally) -> Void) {
        body(&self.tally)
    }

    /// The operational guardrails over the current stage, on always-valid intervals (they are
    /// looked at after every batch).
    public func judge() -> Judgement {
        let rails = self.configuration.guardrails
        let control = self.tally.control
        let treatment = self.tally.treatment
        guard treatment.requests > 0 else { return Judgement(broken: nil, held: false) }
        let errors = ConfidenceSequence.difference(
            control: Proportion(successes: control.failures, trials: control.requests),
            treatment: Proportion(successes: treatment.failures, trials: treatment.requests),
            tau: max(rails.maxErrorRateIncrease, 0.005)
        )
        let fallbacks = ConfidenceSequence.rate(
            Proportion(successes: treatment.fallbacks, trials: treatment.requests),
            tau: max(rails.maxFallbackRate, 0.005)
        )
        // Treatment's p99 is beyond the limit exactly when more than 1% of its answers are
        // slower than control's p99 plus the allowed regression.
        var slow: ConfidenceSequence?
        if let controlP99 = Ramp.StageTally.p99(control.latencies), treatment.latencies.reduce(0, +) > 0 {
            let limit = controlP99 + rails.maxP99Regression.microseconds(baselineP99: controlP99)
            slow = ConfidenceSequence.rate(treatment.slowerThan(limit), tau: 0.01)
        }
        var broken: String?
        if errors.interval.lowerBound > rails.maxErrorRateIncrease {
            broken =
                "error rate: treatment \(Units.formatPercent(Double(treatment.failures) / Double(treatment.requests))) vs control "
                + "\(Units.formatPercent(control.requests == 0 ? 0 : Double(control.failures) / Double(control.requests))), "
                + "increase at least \(Units.formatPercent(errors.interval.lowerBound)) > \(Units.formatPercent(rails.maxErrorRateIncrease))"
        } else if fallbacks.interval.lowerBound > rails.maxFallbackRate {
            broken =
                "fallback rate \(Units.formatPercent(fallbacks.estimate)) (at least \(Units.formatPercent(fallbacks.interval.lowerBound))) "
                + "> \(Units.formatPercent(rails.maxFallbackRate))"
        } else if let slow, slow.interval.lowerBound > 0.01 {
            broken =
                "p99 latency: \(Units.formatPercent(slow.estimate)) of treatment answers slower than control's p99 "
                + "\(rails.maxP99Regression) (at least \(Units.formatPercent(slow.interval.lowerBound)); 1% allowed)"
        }
        let held =
            broken == nil && errors.interval.upperBound <= rails.maxErrorRateIncrease
            && fallbacks.interval.upperBound <= rails.maxFallbackRate
        return Judgement(broken: broken, held: held)
    }

    /// Stops, advances or stays, judging the stage's figures.
    public mutating func evaluate(nowMicros: Int64) -> Transition? {
        guard self.stopped == nil else { return nil }
        let judgement = self.judge()
        if let broken = judgement.broken {
            return self.stop(reason: "guardrail broken at \(Units.fixed(self.treatmentPercent, decimals: 1))%: \(broken)", nowMicros: nowMicros)
        }
        guard self.stage + 1 < self.configuration.allocation.count,
            nowMicros - self.enteredAtMicros >= self.configuration.stageMinDuration.microseconds,
            self.tally.treatment.requests >= self.configuration.stageMinRequests,
            judgement.held
        else { return nil }
        let from = self.stage
        self.stage += 1
        self.enteredAtMicros = nowMicros
        let requests = self.tally.treatment.requests
        self.tally = Tally()
        return .advanced(from: from, to: self.stage, reason: "guardrails held over \(requests) treatment requests")
    }

    /// Stops exposure (a broken guardrail, or a person).
    public mutating func stop(reason: String, nowMicros: Int64) -> Transition? {
        guard self.stopped == nil else { return nil }
        self.stopped = (reason, nowMicros)
        self.tally = Tally()
        return .stopped(reason: reason)
    }

    /// Exposure again, from the stage it was stopped at, with fresh figures.
    public mutating func resume(nowMicros: Int64) -> Transition? {
        guard self.stopped != nil else { return nil }
        self.stopped = nil
        self.enteredAtMicros = nowMicros
        self.tally = Tally()
        return .resumed(stage: self.stage)
    }

    public static func == (left: ExperimentRun, right: ExperimentRun) -> Bool {
        left.configuration == right.configuration && left.stage == right.stage && left.enteredAtMicros == right.enteredAtMicros
            && left.stopped?.reason == right.stopped?.reason && left.stopped?.atMicros == right.stopped?.atMicros && left.tally == right.tally
    }
}
