import Logging
import Metrics
import ShadowCore
import Synchronization

/// The gates' state across configuration reloads: a reload that leaves a route's breaker or rate
/// cap unchanged keeps its state (an open breaker stays open); a changed one starts afresh.
final class GatingRegistry: Sendable {
    let events: GatingEventLog
    private let factory: any MetricsFactory
    private let logger: Logger
    private let breakers = Mutex<[String: CandidateBreaker]>([:])
    private let limiters = Mutex<[String: RouteLimiter]>([:])

    init(events: GatingEventLog, factory: any MetricsFactory, logger: Logger) {
        self.events = events
        self.factory = factory
        self.logger = logger
    }

    func breaker(route: String, candidate: String, configuration: CircuitBreakerConfiguration?) -> CandidateBreaker? {
        let key = route + "\u{1F}" + candidate
        return self.breakers.withLock { breakers in
            guard let configuration else {
                breakers[key] = nil
                return nil
            }
            if let existing = breakers[key], existing.configuration == configuration { return existing }
            let breaker = CandidateBreaker(
                route: route,
                candidate: candidate,
                configuration: configuration,
                events: self.events,
                factory: self.factory,
                logger: self.logger
            )
            breakers[key] = breaker
            return breaker
        }
    }

    func limiter(route: String, configuration: RateLimitConfiguration?) -> RouteLimiter? {
        self.limiters.withLock { limiters in
            guard let configuration else {
                limiters[route] = nil
                return nil
            }
            if let existing = limiters[route], existing.configuration == configuration { return existing }
            let limiter = RouteLimiter(configuration: configuration)
            limiters[route] = limiter
            return limiter
        }
    }

    /// The route's limiter if it has one (never creates one).
    func existingLimiter(route: String) -> RouteLimiter? {
        self.limiters.withLock { $0[route] }
    }

    /// Breaker states for `/stats`.
    var breakerStates: [(route: String, candidate: String, state: CircuitBreaker.State)] {
        self.breakers.withLock { $0.values.map { ($0.route, $0.candidate, $0.state) } }.sorted { ($0.route, $0.candidate) < ($1.route, $1.candidate) }
    }
}
