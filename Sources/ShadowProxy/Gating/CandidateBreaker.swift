import Logging
import Metrics
import ShadowCore
import Synchronization

/// One candidate's circuit breaker, shared by every event loop: the state machine behind a lock,
/// its state changes logged, counted, exported as a gauge and recorded in the database.
final class CandidateBreaker: Sendable {
    let route: String
    let candidate: String
    let configuration: CircuitBreakerConfiguration
    private let machine: Mutex<CircuitBreaker>
    private let events: GatingEventLog
    private let logger: Logger
    private let stateGauge: Gauge
    private let factory: any MetricsFactory

    init(
        route: String,
        candidate: String,
        configuration: CircuitBreakerConfiguration,
        events: GatingEventLog,
        factory: any MetricsFactory,
        logger: Logger
    ) {
        self.route = route
        self.candidate = candidate
        self.configuration = configuration
        self.machine = Mutex(CircuitBreaker(configuration: configuration))
        self.events = events
        self.logger = logger
        self.factory = factory
        self.stateGauge = Gauge(label: "shadowd_circuit_state", dimensions: [("route", route), ("candidate", candidate)], factory: factory)
        self.stateGauge.record(0)
    }

    var state: CircuitBreaker.State { self.machine.withLock { $0.state } }

    /// Whether this copy may go (`draw` is uniform in [0, 1)): the breaker's epoch to hand back
    /// with its outcome, or `nil` when it may not.
    func admit(draw: Double) -> UInt64? {
        let (admitted, transition, epoch) = self.machine.withLock { machine in
            let (admitted, transition) = machine.admit(nowNanos: SidecarClock.monotonicNanos(), draw: draw)
            return (admitted, transition, machine.epoch)
        }
        if let transition { self.announce(transition) }
        return admitted ? epoch : nil
    }

    /// Whether the breaker is open now (queued copies are then dropped, not sent).
    var isOpen: Bool { self.machine.withLock { $0.state == .open } }

    /// An admitted copy that was dropped before it went.
    func cancel(epoch: UInt64) {
        self.machine.withLock { $0.cancel(epoch: epoch) }
    }

    /// Transport failures in a row that make an episode worth a log line (the breaker may open
    /// later, at its own limit, or never when that rule is off).
    static let streakToLog = 3

    /// One finished call: failures are transport errors and 5xx answers (not the capture cap,
    /// not shutdown). Only outcomes of the epoch the copy was admitted in count.
    func record(_ result: ArmResult, epoch: UInt64) {
        if result.error == .shutdown || result.error == .clientClosed { return }
        let failure = result.modelFailed
        let timeout = result.error == .timeout || result.error == .connectTimeout
        let (transition, before, after) = self.machine.withLock { machine in
            let before = machine.failureStreak
            let transition = machine.record(
                nowNanos: SidecarClock.monotonicNanos(),
                failure: failure,
                timeout: timeout,
                latencyMicros: result.error == nil ? result.latencyMicros : nil,
                transportFailure: failure && result.error != nil,
                epoch: epoch
            )
            return (transition, before, machine.failureStreak)
        }
        let metadata: Logger.Metadata = ["shadow.route": "\(self.route)", "shadow.candidate": "\(self.candidate)"]
        if before < Self.streakToLog, after >= Self.streakToLog {
            self.logger.warning(
                "candidate failing: \(after) transport failures in a row (last: \(result.error?.rawValue ?? "?"))",
                metadata: metadata
            )
        } else if before >= Self.streakToLog, after == 0, transition == nil {
            self.logger.notice("candidate answering again after \(before) transport failures in a row", metadata: metadata)
        }
        if let transition { self.announce(transition) }
    }

    private func announce(_ transition: CircuitBreaker.Transition) {
        let level: Logger.Level = transition.to == .open ? .warning : .notice
        self.logger.log(
            level: level,
            "circuit breaker \(transition.from.rawValue) → \(transition.to.rawValue)",
            metadata: ["shadow.route": "\(self.route)", "shadow.candidate": "\(self.candidate)", "reason": "\(transition.reason)"]
        )
        self.stateGauge.record(transition.to == .closed ? 0 : transition.to == .halfOpen ? 1 : 2)
        Counter(
            label: "shadowd_circuit_transitions_total",
            dimensions: [("route", self.route), ("candidate", self.candidate), ("to", transition.to.rawValue)],
            factory: self.factory
        ).increment()
        self.events.append(
            GatingEvent(
                atMicros: SidecarClock.wallMicros(),
                route: self.route,
                candidate: self.candidate,
                kind: "circuit_breaker",
                from: transition.from.rawValue,
                to: transition.to.rawValue,
                reason: transition.reason
            )
        )
    }
}
