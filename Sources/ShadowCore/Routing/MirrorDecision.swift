/// Which candidates get a copy of one request, and why each other one does not: the shadow
/// policy of a route in one pure value, decided from the request's facts, random draws and the
/// answers of the route's limiter and breakers (given as closures, so the decision is tested
/// without sockets, clocks or locks).
///
/// The order is the policy: gates, then the call's kind (a gRPC request stream is never
/// mirrored), then the sample (a keyed request draws its position from the
/// key, so a user is always in or always out; a ramp's stage scales the share, nested so a user
/// in at 5% stays in at 20%; a target with its own share, the A/A replica, draws apart), then the
/// mirror body limit, then the route's rate cap and budget (for the sampled copies together), then
/// each candidate's breaker.
public struct MirrorDecision: Sendable, Equatable {
    /// One mirror target, as far as the decision needs it.
    public struct Target: Sendable, Equatable {
        /// Its own sampling share (0...100) instead of the route's; `nil` follows the route.
        public var samplePercent: Double?
        /// What one copy costs up front (`cost.per_request`), for the daily cost budget.
        public var perRequestCost: Double

        public init(samplePercent: Double? = nil, perRequestCost: Double = 0) {
            self.samplePercent = samplePercent
            self.perRequestCost = perRequestCost
        }
    }

    /// What a candidate's circuit breaker says about one copy.
    public enum BreakerAnswer: Sendable, Equatable {
        /// The candidate has no breaker.
        case none
        /// Send it; the epoch ties the result to the breaker's current period.
        case admitted(epoch: UInt64)
        /// Open (or half-open and not probing this one).
        case refused
    }

    /// The request's facts the decision reads.
    public struct Request: Sendable, Equatable {
        /// The route's gates admit it.
        public var admittedByGates: Bool
        /// Its position (0..<1) from the sampling key, when the route has a key and the request
        /// carries it; `nil` draws at random.
        public var keyPosition: Double?
        /// The body exceeds `limits.mirror_max_body`.
        public var bodyTooLarge: Bool
        /// A gRPC client-streaming or bidirectional call (see ``GRPCSemantics/isStreamingRequest``).
        public var clientStreaming: Bool

        public init(admittedByGates: Bool = true, keyPosition: Double? = nil, bodyTooLarge: Bool = false, clientStreaming: Bool = false) {
            self.admittedByGates = admittedByGates
            self.keyPosition = keyPosition
            self.bodyTooLarge = bodyTooLarge
            self.clientStreaming = clientStreaming
        }
    }

    /// Targets that get a copy (their index among the route's targets, and the breaker epoch,
    /// 0 without a breaker), in target order.
    public var chosen: [(index: Int, epoch: UInt64)]
    /// Targets that do not, with the coverage reason recorded for each.
    public var dropped: [(index: Int, reason: CoverageReason)]

    @usableFromInline
    init(chosen: [(index: Int, epoch: UInt64)], dropped: [(index: Int, reason: CoverageReason)]) {
        self.chosen = chosen
        self.dropped = dropped
    }

    /// Decides for one request.
    /// - Parameters:
    ///   - samplePercent: the route's share (0...100).
    ///   - rampPercent: the ramp stage's share of that sample (0...100), `nil` without a ramp.
    ///   - limiter: takes the sampled copies' total up-front cost; `nil` admits them, else why not.
    ///   - breaker: for a target index and a uniform draw in 0..<1, its breaker's answer.
    @inlinable  // specialized for the caller's generator: it runs per request
    public static func decide(
        targets: [Target],
        request: Request,
        samplePercent: Double,
        rampPercent: Double?,
        random: inout some RandomNumberGenerator,
        limiter: (Double) -> CoverageReason?,
        breaker: (Int, Double) -> BreakerAnswer
    ) -> MirrorDecision {
        var decision = MirrorDecision(chosen: [], dropped: [])
        guard request.admittedByGates else {
            decision.dropped = targets.indices.map { ($0, .gated) }
            return decision
        }
        guard !request.clientStreaming else {
            decision.dropped = targets.indices.map { ($0, .clientStreaming) }
            return decision
        }
        let routeDraw = request.keyPosition.map { $0 * 100 } ?? Double.random(in: 0..<100, using: &random)
        let routePercent = samplePercent * (rampPercent ?? 100) / 100
        var sampled: [Int] = []
        for (index, target) in targets.enumerated() {
            let percent = target.samplePercent ?? routePercent
            let draw = target.samplePercent == nil ? routeDraw : Double.random(in: 0..<100, using: &random)
            if percent < 100 && draw >= percent {
                decision.dropped.append((index, .notSampled))
            } else if request.bodyTooLarge {
                decision.dropped.append((index, .bodyTooLarge))
            } else {
                sampled.append(index)
            }
        }
        guard !sampled.isEmpty else { return decision }
        if let reason = limiter(sampled.reduce(0) { $0 + targets[$1].perRequestCost }) {
            decision.dropped += sampled.map { ($0, reason) }
            return decision
        }
        for index in sampled {
            switch breaker(index, Double.random(in: 0..<1, using: &random)) {
            case .none: decision.chosen.append((index, 0))
            case .admitted(let epoch): decision.chosen.append((index, epoch))
            case .refused: decision.dropped.append((index, .circuitOpen))
            }
        }
        return decision
    }

    public static func == (left: MirrorDecision, right: MirrorDecision) -> Bool {
        left.chosen.elementsEqual(right.chosen) { $0.index == $1.index && $0.epoch == $1.epoch }
            && left.dropped.elementsEqual(right.dropped) { $0.index == $1.index && $0.reason == $1.reason }
    }
}
