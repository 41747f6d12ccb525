import ShadowCore
import Synchronization

/// A route's caps on mirrored requests: a token bucket and a daily budget, shared by every event
/// loop behind one lock.
final class RouteLimiter: Sendable {
    let configuration: RateLimitConfiguration
    private let state: Mutex<(bucket: TokenBucket?, budget: DailyBudget?, costBudget: DailyBudget?)>

    init(configuration: RateLimitConfiguration) {
        self.configuration = configuration
        let bucket = configuration.perSecond.map { TokenBucket(rate: $0, burst: max(1, configuration.burst ?? $0)) }
        self.state = Mutex(
            (bucket, configuration.dailyRequests.map { DailyBudget(limit: Double($0)) }, configuration.dailyCost.map { DailyBudget(limit: $0) })
        )
    }

    /// `nil` when the request may be mirrored, otherwise the reason it may not.
    /// - Parameter cost: what mirroring it costs (the sampled candidates' `cost.per_request`).
    func take(cost: Double) -> CoverageReason? {
        let now = SidecarClock.monotonicNanos()
        let wall = SidecarClock.wallMicros()
        return self.state.withLock { state in
            // The bucket first: a rate-limited request does not spend the day's budget.
            if state.bucket != nil, !state.bucket!.take(nowNanos: now) { return .rateLimited }
            if state.costBudget != nil, !state.costBudget!.spend(cost, nowMicros: wall) { return .budgetExhausted }
            if state.budget != nil, !state.budget!.spend(1, nowMicros: wall) { return .budgetExhausted }
            return nil
        }
    }

    /// Charges the token-priced part of a candidate's answer to the daily cost budget, once its
    /// usage is known: a paid LLM API is capped by what it actually cost, not just per request.
    /// Copies already in flight when the budget runs out still finish (the overshoot is at most
    /// their cost).
    func charge(_ cost: Double) {
        guard cost > 0 else { return }
        let wall = SidecarClock.wallMicros()
        self.state.withLock { state in state.costBudget?.charge(cost, nowMicros: wall) }
    }
}
