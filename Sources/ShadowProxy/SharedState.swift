import Logging
import NIOCore
import ShadowCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What every event loop shares: the hand-off to the writer, coverage counts, statistics.
final class SharedState: Sendable {
    let records: RecordQueue<ExchangeRecord>
    let coverage: CoverageCounter
    let statistics = ProxyStatistics()
    let metrics: SidecarMetrics
    let logger: Logger

    init(records: RecordQueue<ExchangeRecord>, coverage: CoverageCounter, metrics: SidecarMetrics, logger: Logger) {
        self.records = records
        self.coverage = coverage
        self.metrics = metrics
        self.logger = logger
    }
}

/// Process-wide request counters, lock-free.
public final class ProxyStatistics: Sendable {
    let requests = Atomic<Int>(0)
    let baselineFailures = Atomic<Int>(0)
    let rejected = Atomic<Int>(0)
    let mirrored = Atomic<Int>(0)
    let shadowDropped = Atomic<Int>(0)
    let openConnections = Atomic<Int>(0)
    /// Connections closed at once because `server.max_connections` were open.
    let refusedConnections = Atomic<Int>(0)
    /// Shadow copies queued or running.
    let shadowPending = Atomic<Int>(0)
    /// Baseline calls in a row that could not connect; reset by any response.
    let baselineConnectFailuresInARow = Atomic<Int>(0)
    /// TLS handshakes completed with upstreams (one per new pooled connection).
    let tlsHandshakes = Atomic<Int>(0)
    /// Upstream connections that failed in the TLS handshake.
    let tlsFailures = Atomic<Int>(0)
    /// Experiment requests whose treatment failed and control answered.
    let experimentFallbacks = Atomic<Int>(0)

    /// A point-in-time copy.
    public var snapshot: Snapshot {
        Snapshot(
            requests: self.requests.load(ordering: .relaxed),
            baselineFailures: self.baselineFailures.load(ordering: .relaxed),
            rejected: self.rejected.load(ordering: .relaxed),
            mirrored: self.mirrored.load(ordering: .relaxed),
            shadowDropped: self.shadowDropped.load(ordering: .relaxed),
            openConnections: self.openConnections.load(ordering: .relaxed),
            shadowPending: self.shadowPending.load(ordering: .relaxed),
            tlsHandshakes: self.tlsHandshakes.load(ordering: .relaxed),
            tlsFailures: self.tlsFailures.load(ordering: .relaxed),
            experimentFallbacks: self.experimentFallbacks.load(ordering: .relaxed)
        )
    }

    public struct Snapshot: Sendable, Equatable {
        public var requests: Int
        public var baselineFailures: Int
        public var rejected: Int
        public var mirrored: Int
        public var shadowDropped: Int
        public var openConnections: Int
        public var shadowPending: Int
        public var tlsHandshakes: Int
        public var tlsFailures: Int
        public var experimentFallbacks: Int
    }
}
