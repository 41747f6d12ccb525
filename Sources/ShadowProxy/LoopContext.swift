import Logging
import NIOCore
import ShadowCore
import Synchronization

/// Everything the request path needs on one event loop: upstream pools, shadow lanes and the
/// live connections. Only ever touched on its loop, so the hot path takes no locks.
final class LoopContext {
    let loop: any EventLoop
    let shared: SharedState
    /// How many loops share the configured limits (queues and concurrency are split evenly).
    let loopCount: Int
    var runtime: SidecarRuntime {
        // A reload makes new routes: their pools and lanes are looked up (and updated) again.
        didSet { self.routeSlots.removeAll() }
    }
    /// Each route's pools and lanes on this loop, found by the route's identity: the keyed
    /// lookups below build strings, which cost ~1.5% of the loop when done per request.
    private var routeSlots: [ObjectIdentifier: RouteSlots] = [:]
    private var baselinePools: [String: UpstreamPool] = [:]
    /// Pools of experiment treatments that answer clients, by candidate URL.
    private var servingPools: [String: UpstreamPool] = [:]
    private var lanes: [String: ShadowLane] = [:]
    private var handlers: [ObjectIdentifier: ProxyHandler] = [:]
    /// Client h2c connections (their streams are among `handlers`).
    private var http2Connections: [ObjectIdentifier: HTTP2ConnectionGuard] = [:]
    private(set) var shuttingDown = false
    /// Shutdown steps waiting for this loop's connections or shadow copies to finish.
    var drainWaiters: [DrainWaiter] = []
    /// Request ids and sampling draws; seeded from the system once, so the request path makes
    /// no getrandom syscalls.
    var random = FastRandom()

    init(loop: any EventLoop, shared: SharedState, runtime: SidecarRuntime, loopCount: Int) {
        self.loop = loop
        self.shared = shared
        self.runtime = runtime
        self.loopCount = loopCount
    }

    /// A route's pools and lanes on this loop, once looked up.
    private final class RouteSlots {
        /// Held so its identifier cannot be reused while this entry stands.
        let route: SidecarRuntime.Route
        var baseline: UpstreamPool?
        var lanes: [ShadowLane?]

        init(route: SidecarRuntime.Route) {
            self.route = route
            self.lanes = Array(repeating: nil, count: route.targets.count)
        }
    }

    private func slots(of route: SidecarRuntime.Route) -> RouteSlots {
        if let slots = self.routeSlots[ObjectIdentifier(route)] { return slots }
        let slots = RouteSlots(route: route)
        self.routeSlots[ObjectIdentifier(route)] = slots
        return slots
    }

    func baselinePool(for route: SidecarRuntime.Route) -> UpstreamPool {
        let slots = self.slots(of: route)
        if let pool = slots.baseline { return pool }
        let pool = self.lookUpBaselinePool(for: route)
        slots.baseline = pool
        return pool
    }

    private func lookUpBaselinePool(for route: SidecarRuntime.Route) -> UpstreamPool {
        let baseline = route.configuration.baseline
        return Self.pool(
            in: &self.baselinePools,
            key: baseline.url.description,
            endpoint: route.baseline,
            maxIdle: baseline.maxIdleConnections,
            idleTimeout: baseline.idleTimeout,
            loop: self.loop,
            shared: self.shared
        )
    }

    /// The pool for an experiment's treatment answering clients: apart from its shadow lane's
    /// (client requests never wait behind shadow copies' call slots).
    func servingPool(for route: SidecarRuntime.Route, candidate index: Int) -> UpstreamPool {
        let candidate = route.targets[index]
        return Self.pool(
            in: &self.servingPools,
            key: candidate.url.description,
            endpoint: route.candidateEndpoints[index],
            maxIdle: route.configuration.baseline.maxIdleConnections,
            idleTimeout: candidate.idleTimeout,
            loop: self.loop,
            shared: self.shared
        )
    }

    /// The pool under `key`, made on first use; after a reload it takes the endpoint's re-read
    /// certificates and the new idle timeout.
    private static func pool(
        in pools: inout [String: UpstreamPool],
        key: String,
        endpoint: UpstreamEndpoint,
        maxIdle: Int,
        idleTimeout: Duration,
        loop: any EventLoop,
        shared: SharedState
    ) -> UpstreamPool {
        if let pool = pools[key] {
            if pool.endpoint.tls !== endpoint.tls { pool.update(endpoint) }
            pool.maxIdleTime = TimeAmount(idleTimeout)
            return pool
        }
        let pool = UpstreamPool(
            loop: loop,
            endpoint: endpoint,
            maxIdle: maxIdle,
            maxIdleTime: TimeAmount(idleTimeout),
            statistics: shared.statistics,
            logger: shared.logger
        )
        pools[key] = pool
        return pool
    }

    /// The lane for an experiment's copies to the baseline of requests treatment answered: the
    /// treatment's queue and concurrency limits, the baseline's endpoint and timeout.
    func controlLane(for route: SidecarRuntime.Route, treatment index: Int) -> ShadowLane {
        let key = "\(route.configuration.name)\u{0}\u{0}control\u{0}\(route.configuration.baseline.url)"
        if let lane = self.lanes[key] {
            if lane.pool.endpoint.tls !== route.baseline.tls { lane.pool.update(route.baseline) }
            return lane
        }
        var control = route.targets[index]
        control.name = "control"
        control.url = route.configuration.baseline.url
        control.version = route.configuration.baseline.version
        control.timeout = route.configuration.baseline.timeout
        control.connectTimeout = route.configuration.baseline.connectTimeout
        control.cost = route.configuration.baseline.cost
        control.tls = route.configuration.baseline.tls
        return self.newLane(
            key: key,
            candidate: control,
            endpoint: route.baseline,
            idleTime: route.configuration.baseline.idleTimeout,
            refusalBackoff: nil
        )
    }

    func lane(for route: SidecarRuntime.Route, candidate index: Int) -> ShadowLane {
        let slots = self.slots(of: route)
        if let lane = slots.lanes[index] { return lane }
        let lane = self.lookUpLane(for: route, candidate: index)
        slots.lanes[index] = lane
        return lane
    }

    private func lookUpLane(for route: SidecarRuntime.Route, candidate index: Int) -> ShadowLane {
        let candidate = route.targets[index]
        let key = "\(route.configuration.name)\u{0}\(candidate.name)\u{0}\(candidate.url)"
        if let lane = self.lanes[key] {
            let endpoint = route.candidateEndpoints[index]
            if lane.pool.endpoint.tls !== endpoint.tls { lane.pool.update(endpoint) }
            lane.pool.maxIdleTime = TimeAmount(candidate.idleTimeout)
            return lane
        }
        return self.newLane(
            key: key,
            candidate: candidate,
            endpoint: route.candidateEndpoints[index],
            idleTime: candidate.idleTimeout,
            refusalBackoff: UpstreamPool.candidateRefusalBackoff
        )
    }

    /// A lane with its own pool, this loop's share of the candidate's queue and concurrency.
    private func newLane(
        key: String,
        candidate: CandidateConfiguration,
        endpoint: UpstreamEndpoint,
        idleTime: Duration,
        refusalBackoff: TimeAmount?
    ) -> ShadowLane {
        let concurrency = max(1, candidate.maxConcurrency / self.loopCount)
        let pool = UpstreamPool(
            loop: self.loop,
            endpoint: endpoint,
            maxIdle: concurrency,
            maxIdleTime: TimeAmount(idleTime),
            refusalBackoff: refusalBackoff,
            statistics: self.shared.statistics,
            logger: self.shared.logger
        )
        let lane = ShadowLane(
            candidate: candidate,
            pool: pool,
            queueCapacity: candidate.queueCapacity == 0 ? 0 : max(1, candidate.queueCapacity / self.loopCount),
            maxConcurrency: concurrency
        )
        // Weak: a copy still running when the sidecar is torn down keeps its lane (and this
        // closure) past the context.
        lane.becameIdle = { [weak self] in self?.checkDrainWaiters() }
        self.lanes[key] = lane
        return lane
    }

    // MARK: - Connections and shutdown

    func register(_ handler: ProxyHandler) {
        self.handlers[ObjectIdentifier(handler)] = handler
    }

    func unregister(_ handler: ProxyHandler) {
        self.handlers.removeValue(forKey: ObjectIdentifier(handler))
        if self.handlers.isEmpty { self.checkDrainWaiters() }
    }

    var connectionCount: Int { self.handlers.count }

    /// Counts a new client connection; false (counted as refused, logged now and then) when it
    /// is over `server.max_connections`: thousands of idle connections must not exhaust file
    /// descriptors or memory. The caller closes it and still uncounts it when it goes.
    func admitConnection() -> Bool {
        let statistics = self.shared.statistics
        let open = statistics.openConnections.add(1, ordering: .relaxed).newValue
        let limit = self.runtime.configuration.server.maxConnections
        guard open > limit else { return true }
        let refused = statistics.refusedConnections.add(1, ordering: .relaxed).newValue
        if refused == 1 || refused % 1_000 == 0 {
            self.shared.logger.warning(
                "connection limit reached: closing new client connections",
                metadata: ["server.max_connections": "\(limit)", "shadow.connections.refused": "\(refused)"]
            )
        }
        return false
    }

    func register(http2 connection: HTTP2ConnectionGuard) {
        self.http2Connections[ObjectIdentifier(connection)] = connection
    }

    func unregister(http2 connection: HTTP2ConnectionGuard) {
        self.http2Connections.removeValue(forKey: ObjectIdentifier(connection))
    }

    /// Shadow copies queued or running on this loop.
    var pendingShadowWork: Int { self.lanes.values.reduce(0) { $0 + $1.pending } }

    /// Stop taking requests: idle keep-alive connections close now, busy ones after their response.
    func beginShutdown() {
        self.shuttingDown = true
        for handler in Array(self.handlers.values) { handler.closeWhenIdle() }
        for connection in self.http2Connections.values { connection.goAway() }
    }

    /// Drain timeout passed: cut every remaining client connection.
    func forceCloseConnections() {
        for handler in Array(self.handlers.values) { handler.forceClose() }
        for connection in Array(self.http2Connections.values) { connection.close() }
    }

    /// Shadow work that did not finish in time is recorded as `shutdown`, never silently lost.
    func abandonShadowWork() {
        for lane in self.lanes.values {
            lane.abandonWaiting()
            lane.cancelRunning()
        }
    }

    func closeUpstreams() {
        // Client HTTP/2 connections whose streams all ended.
        for connection in Array(self.http2Connections.values) { connection.close() }
        for pool in self.baselinePools.values { pool.closeAll() }
        for pool in self.servingPools.values { pool.closeAll() }
        for lane in self.lanes.values { lane.pool.closeAll() }
    }
}

/// SplitMix64: a fast generator for request ids and sampling draws (not for secrets).
struct FastRandom: RandomNumberGenerator {
    private var state: UInt64

    init() {
        var system = SystemRandomNumberGenerator()
        self.state = system.next()
    }

    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
