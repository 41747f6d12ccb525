import Metrics
import Prometheus
import ShadowCore
import ShadowStore
import Synchronization

/// The Prometheus registry behind `/metrics`, fed through swift-metrics.
///
/// Counters with labels are created once per label set and cached, so the request path pays
/// a dictionary lookup and an atomic add, never a registry lock.
public final class SidecarMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    /// The factory every component records through (never the global `MetricsSystem`).
    public let factory: PrometheusMetricsFactory
    private let counters = Mutex<[String: Metrics.Counter]>([:])
    private let timers = Mutex<[String: Metrics.Timer]>([:])

    public init() {
        var factory = PrometheusMetricsFactory(registry: self.registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
            .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
            .seconds(2.5), .seconds(5), .seconds(10), .seconds(30),
        ]
        self.factory = factory
    }

    /// Responses to clients by route and status class (`2xx`…`5xx`).
    func countResponse(route: String, status: Int) {
        self.counter("shadowd_responses_total", [("route", route), ("status", "\(status / 100)xx")]).increment()
    }

    /// Upstream call duration per arm (`baseline` or the candidate's name).
    func recordUpstream(route: String, arm: String, micros: Int64) {
        self.timer("shadowd_upstream_duration_seconds", [("route", route), ("arm", arm)]).recordNanoseconds(micros * 1000)
    }

    func counter(_ label: String, _ dimensions: [(String, String)]) -> Metrics.Counter {
        let key = Self.key(label, dimensions)
        if let counter = self.counters.withLock({ $0[key] }) { return counter }
        let counter = Metrics.Counter(label: label, dimensions: dimensions, factory: self.factory)
        self.counters.withLock { $0[key] = counter }
        return counter
    }

    func timer(_ label: String, _ dimensions: [(String, String)]) -> Metrics.Timer {
        let key = Self.key(label, dimensions)
        if let timer = self.timers.withLock({ $0[key] }) { return timer }
        let timer = Metrics.Timer(label: label, dimensions: dimensions, factory: self.factory)
        self.timers.withLock { $0[key] = timer }
        return timer
    }

    private static func key(_ label: String, _ dimensions: [(String, String)]) -> String {
        dimensions.reduce(label) { $0 + "\u{0}" + $1.0 + "=" + $1.1 }
    }

    /// Prometheus text exposition, with the point-in-time gauges refreshed first.
    func render(_ status: AdminStatus) -> String {
        let proxy = status.shared.statistics.snapshot
        let writer = status.writer.statistics.snapshot()
        func gauge(_ label: String, _ value: Int) {
            Gauge(label: label, factory: self.factory).record(value)
        }
        gauge("shadowd_open_connections", proxy.openConnections)
        gauge("shadowd_shadow_pending", proxy.shadowPending)
        gauge("shadowd_record_queue_depth", status.shared.records.depth)
        gauge("shadowd_recording_healthy", writer.lastBatchFailed ? 0 : 1)
        gauge("shadowd_database_bytes", (try? status.writer.databaseBytes()) ?? 0)
        return self.registry.emitToString()
    }
}
