import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import ShadowCore
import ShadowStore
import Synchronization

/// The operator listener: `/healthz` (alive), `/readyz` (listening and recording), `/stats`.
/// Bound to loopback by default; it serves no client traffic.
public final class AdminServer: Service, Sendable {
    let group: any EventLoopGroup
    let listen: HostPort
    let status: AdminStatus
    let logger: Logger
    public let address = AddressPromise()

    init(group: any EventLoopGroup, listen: HostPort, status: AdminStatus, logger: Logger) {
        self.group = group
        self.listen = listen
        self.status = status
        self.logger = logger
    }

    public func run() async throws {
        let status = self.status
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: self.group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        try channel.pipeline.syncOperations.addHandler(AdminHandler(status: status))
                    }
                }
                .bind(host: self.listen.host, port: self.listen.port)
                .get()
        } catch {
            self.address.fulfil(nil)
            throw ServeError("cannot listen on admin.listen \(self.listen): \(error)")
        }
        self.address.fulfil(channel.localAddress)
        self.logger.info("admin listening", metadata: ["shadow.admin": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
        try? await gracefulShutdown()
        try? await channel.close()
    }
}

/// What the admin endpoints report.
struct AdminStatus: Sendable {
    let proxy: ProxyServer
    let writer: RecordWriter
    let shared: SharedState
    let gating: GatingRegistry
    let ramp: RampController
    /// With a token, `/stats` and `/metrics` need `Authorization: Bearer <token>`; the probes
    /// (`/healthz`, `/readyz`) stay open for systemd and load balancers.
    let token: String?

    /// Whether the request may read the figures (compared in constant time).
    func authorized(_ headers: HTTPHeaders) -> Bool {
        guard let token = self.token else { return true }
        let expected = Array("Bearer \(token)".utf8)
        let given = Array((headers.first(name: "authorization") ?? "").utf8)
        var difference = UInt8(expected.count == given.count ? 0 : 1)
        for index in expected.indices { difference |= expected[index] ^ (index < given.count ? given[index] : 0) }
        return difference == 0
    }

    var ready: (Bool, String) {
        if self.proxy.address.current == nil { return (false, "listener not bound") }
        if self.writer.statistics.snapshot().lastBatchFailed { return (false, "recording failing (see logs)") }
        let unreachable = self.shared.statistics.baselineConnectFailuresInARow.load(ordering: .relaxed)
        if unreachable >= 5 { return (false, "baseline unreachable (\(unreachable) connection failures in a row)") }
        return (true, "ok")
    }

    var statsJSON: String {
        let proxy = self.shared.statistics.snapshot
        let writer = self.writer.statistics.snapshot()
        let totals = self.shared.records.totals
        return JSONValue.object([
            ("requests", .number(Double(proxy.requests))),
            ("rejected", .number(Double(proxy.rejected))),
            ("baseline_failures", .number(Double(proxy.baselineFailures))),
            ("mirrored", .number(Double(proxy.mirrored))),
            ("shadow_dropped", .number(Double(proxy.shadowDropped))),
            ("open_connections", .number(Double(proxy.openConnections))),
            ("upstream_tls_handshakes", .number(Double(proxy.tlsHandshakes))),
            ("upstream_tls_failures", .number(Double(proxy.tlsFailures))),
            ("record_queue_depth", .number(Double(self.shared.records.depth))),
            ("records_refused", .number(Double(totals.refused))),
            ("records_written", .number(Double(writer.written))),
            ("records_failed", .number(Double(writer.failed))),
            ("database_reopened", .number(Double(self.writer.statistics.databaseReopened))),
            (
                "circuit_breakers",
                .array(
                    self.gating.breakerStates.map {
                        .object([("route", .string($0.route)), ("candidate", .string($0.candidate)), ("state", .string($0.state.rawValue))])
                    }
                )
            ),
            (
                "ramps",
                .array(
                    self.ramp.stages.sorted { $0.key < $1.key }.map { route, stage in
                        .object([
                            ("route", .string(route)), ("stage", .number(Double(stage))),
                            ("percent", .number(self.ramp.percent(route: route) ?? 100)),
                        ])
                    }
                )
            ),
        ]).serialized
    }
}

private final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let status: AdminStatus
    private var head: HTTPRequestHead?

    init(status: AdminStatus) {
        self.status = status
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head = self.head else { return }
            self.head = nil
            let path = head.uri.split(separator: "?").first.map(String.init) ?? head.uri
            let (status, body): (HTTPResponseStatus, String)
            switch (head.method, path) {
            case (.GET, "/healthz"): (status, body) = (.ok, #"{"status":"ok"}"#)
            case (.GET, "/readyz"):
                let (ready, reason) = self.status.ready
                (status, body) = (
                    ready ? .ok : .serviceUnavailable,
                    JSONValue.object([("status", .string(ready ? "ready" : "not_ready")), ("reason", .string(reason))]).serialized
                )
            case (.GET, "/stats") where !self.status.authorized(head.headers), (.GET, "/metrics") where !self.status.authorized(head.headers):
                (status, body) = (.unauthorized, #"{"error":"this endpoint needs Authorization: Bearer <SHADOWD_ADMIN_TOKEN>"}"#)
            case (.GET, "/stats"): (status, body) = (.ok, self.status.statsJSON)
            case (.GET, "/metrics"): (status, body) = (.ok, self.status.shared.metrics.render(self.status))
            case (_, "/healthz"), (_, "/readyz"), (_, "/stats"), (_, "/metrics"): (status, body) = (.methodNotAllowed, #"{"error":"use GET"}"#)
            default: (status, body) = (.notFound, #"{"error":"unknown path; try /healthz, /readyz, /stats or /metrics"}"#)
            }
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: path == "/metrics" ? "text/plain; version=0.0.4" : "application/json")
            headers.add(name: "content-length", value: String(body.utf8.count))
            headers.add(name: "date", value: HTTPDate.format(secondsSince1970: wallClockMicros() / 1_000_000))
            headers.add(name: "cache-control", value: "no-store")
            context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
            context.write(Self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
            context.writeAndFlush(Self.wrapOutboundOut(.end(nil)), promise: nil)
            if !head.isKeepAlive { context.close(promise: nil) }
        }
    }
}
