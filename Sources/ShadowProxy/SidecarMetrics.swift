import Metrics
import Prometheus
import ShadowCore
import ShadowStore

/// The Prometheus registry behind `/metrics`, fed through swift-metrics.
///
/// The request path records through ``RouteHandles`` created once per route (and again on
/// reload), so it pays an atomic add, never a lookup, a lock or a string.
public final class SidecarMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    /// The factory every component records through (never the global `MetricsSystem`).
    public let factory: PrometheusMetricsFactory

    public init() {
        var factory = PrometheusMetricsFactory(registry: self.registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
            .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
            .seconds(2.5), .seconds(5), .seconds(10), .seconds(30),
        ]
        self.factory = factory
    }

    /// One route's metric handles.
    struct RouteHandles: Sendable {
        /// `shadowd_responses_total` by status class, index 1…5 for `1xx`…`5xx`.
        let responses: [Metrics.Counter]
        /// `shadowd_upstream_duration_seconds` for the baseline arm.
        let baseline: Metrics.Timer
        /// The same per mirror target, in the route's target order.
        let targets: [Metrics.Timer]

        func countResponse(status: Int) {
            self.responses[min(5, max(1, status / 100))].increment()
        }
    }

    /// Handles for a route and its mirror targets (the registry returns existing metrics for a
    /// label set it has seen, so a reload keeps counting where it was).
    func handles(route: String, targets: [String]) -> RouteHandles {
        RouteHandles(
            responses: (0...5).map {
                Metrics.Counter(label: "shadowd_responses_total", dimensions: [("route", route), ("status", "\($0)xx")], factory: self.factory)
            },
            baseline: Metrics.Timer(
                label: "shadowd_upstream_duration_seconds",
                dimensions: [("route", route), ("arm", "baseline")],
                factory: self.factory
            ),
            targets: targets.map {
                Metrics.Timer(label: "shadowd_upstream_duration_seconds", dimensions: [("route", route), ("arm", $0)], factory: self.factory)
            }
        )
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
        // Totals since start, as gauges read from the atomic counters the pools keep.
        gauge("shadowd_upstream_tls_handshakes", proxy.tlsHandshakes)
        gauge("shadowd_upstream_tls_failures", proxy.tlsFailures)
        gauge("shadowd_record_queue_depth", status.shared.records.depth)
        gauge("shadowd_recording_healthy", writer.lastBatchFailed ? 0 : 1)
        gauge("shadowd_database_bytes", (try? status.writer.databaseBytes()) ?? 0)
        return self.registry.emitToString()
    }
}
