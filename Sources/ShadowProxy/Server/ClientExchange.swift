import NIOCore
import NIOHTTP1

/// What a ``ProxyHandler`` knows of the exchange on its connection: one value, set whole when a
/// request head arrives, so nothing of the previous exchange can carry over into the next.
struct ClientExchange {
    /// The route of the request being forwarded.
    var route: SidecarRuntime.Route?
    /// The request while its body is still arriving; nil once it ended.
    var upload: ProxyHandler.IncomingRequest?
    /// The call answering the client (the baseline's, or the serving treatment's).
    var call: UpstreamCall?
    /// The record being assembled from every arm's result; nil once the serving call finished.
    var record: PendingExchange?
    var keepAlive = true
    var clientVersion = HTTPVersion.http1_1
    /// The request is gRPC: the sidecar's own errors go out as gRPC statuses.
    var isGRPC = false
    /// The client's `grpc-timeout`: caps the baseline's timeout.
    var grpcTimeout: Duration?
    var responseStarted = false
    /// The serving arm's answer as the record keeps it (timed from its dispatch, then from the
    /// end of the request).
    var answer = AnswerCapture(version: "", price: nil, limit: 0)
    var requestID = ""
    var baselineTimeout = TimeAmount.seconds(30)
    /// Metric handles of the request's route (the unrouted ones before one matched).
    var routeMetrics: SidecarMetrics.RouteHandles?
    /// The request's place in its route's experiment, if the route has one.
    var serving: ProxyHandler.Serving?
}
