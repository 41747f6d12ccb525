import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import ShadowCore
import ShadowStore
import Synchronization

/// The operator listener: `/healthz` (alive), `/readyz` (listening and recording), `/stats`,
/// `/metrics`, the experiments' kill switch (`/experiments/NAME/stop|resume`) and outcome
/// ingestion (`POST /outcomes`). Bound to loopback by default; it serves no client traffic and
/// runs on its own thread.
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
    let experiments: ExperimentController
    /// Parses and stores outcome batches off the admin loop, at low priority.
    let ingestor: OutcomeIngestor
    /// Validates outcome batches against the metrics the current configuration declares.
    let outcomeParser: @Sendable () -> OutcomeBatchParser
    /// With a token, `/stats`, `/metrics` and `/experiments` need `Authorization: Bearer
    /// <token>`; the probes (`/healthz`, `/readyz`) stay open for systemd and load balancers.
    let token: String?
    /// With a token, `POST /outcomes` needs `Authorization: Bearer <token>`.
    let outcomesToken: String?

    /// Whether the request may read the figures or act (compared in constant time).
    func authorized(_ headers: HTTPHeaders) -> Bool {
        Self.matches(headers, self.token)
    }

    /// Whether the request may post outcomes.
    func mayPostOutcomes(_ headers: HTTPHeaders) -> Bool {
        Self.matches(headers, self.outcomesToken)
    }

    private static func matches(_ headers: HTTPHeaders, _ token: String?) -> Bool {
        guard let token else { return true }
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
            ("experiment_fallbacks", .number(Double(proxy.experimentFallbacks))),
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
            ("experiments", .array(self.experiments.statuses.map(\.json))),
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

    /// Largest outcome batch accepted (`413` above).
    static let maxBody = 16 << 20

    let status: AdminStatus
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var bodyTooLarge = false

    init(status: AdminStatus) {
        self.status = status
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.body.clear()
            self.bodyTooLarge = head.headers.first(name: "content-length").flatMap(Int.init).map { $0 > Self.maxBody } ?? false
        case .body(var part):
            if self.bodyTooLarge || self.body.readableBytes + part.readableBytes > Self.maxBody {
                self.bodyTooLarge = true
                self.body.clear()
            } else {
                self.body.writeBuffer(&part)
            }
        case .end:
            guard let head = self.head else { return }
            self.head = nil
            self.route(head, context: context)
        }
    }

    private func route(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?").first.map(String.init) ?? head.uri
        let segments = path.split(separator: "/").map(String.init)
        let (status, body): (HTTPResponseStatus, String)
        switch (head.method, path) {
        case (.GET, "/healthz"): (status, body) = (.ok, #"{"status":"ok"}"#)
        case (.GET, "/readyz"):
            let (ready, reason) = self.status.ready
            (status, body) = (
                ready ? .ok : .serviceUnavailable,
                JSONValue.object([("status", .string(ready ? "ready" : "not_ready")), ("reason", .string(reason))]).serialized
            )
        case (.POST, "/outcomes"):
            return self.receiveOutcomes(head, context: context)
        case (_, "/outcomes"):
            (status, body) = (.methodNotAllowed, #"{"error":"use POST"}"#)
        case (_, _) where ["/stats", "/metrics", "/experiments"].contains(path) || segments.first == "experiments":
            guard self.status.authorized(head.headers) else {
                (status, body) = (.unauthorized, #"{"error":"this endpoint needs Authorization: Bearer <SHADOWD_ADMIN_TOKEN>"}"#)
                break
            }
            (status, body) = self.operate(head.method, path: path, segments: segments, context: context)
        case (_, "/healthz"), (_, "/readyz"): (status, body) = (.methodNotAllowed, #"{"error":"use GET"}"#)
        default:
            (status, body) = (
                .notFound, #"{"error":"unknown path; try /healthz, /readyz, /stats, /metrics, /experiments or POST /outcomes"}"#
            )
        }
        self.respond(status, body, head: head, contentType: path == "/metrics" ? "text/plain; version=0.0.4" : "application/json", context: context)
    }

    /// The authorized endpoints: figures, and the experiments' status and kill switch.
    private func operate(_ method: HTTPMethod, path: String, segments: [String], context: ChannelHandlerContext) -> (HTTPResponseStatus, String) {
        switch (method, path) {
        case (.GET, "/stats"): return (.ok, self.status.statsJSON)
        case (.GET, "/metrics"): return (.ok, self.status.shared.metrics.render(self.status))
        case (.GET, "/experiments"): return (.ok, JSONValue.array(self.status.experiments.statuses.map(\.json)).serialized)
        case (.POST, _) where segments.count == 3 && (segments[2] == "stop" || segments[2] == "resume"):
            let name = segments[1]
            do {
                let result =
                    segments[2] == "stop"
                    ? try self.status.experiments.stop(name, reason: "stopped by hand (POST /experiments/\(name)/stop)")
                    : try self.status.experiments.resume(name)
                return (.ok, result.json.serialized)
            } catch {
                let unknown = error.description.hasPrefix("no experiment")
                return (unknown ? .notFound : .conflict, JSONValue.object([("error", .string(error.description))]).serialized)
            }
        case (_, "/stats"), (_, "/metrics"), (_, "/experiments"): return (.methodNotAllowed, #"{"error":"use GET"}"#)
        default:
            return (.notFound, #"{"error":"unknown path; try GET /experiments, POST /experiments/NAME/stop or /experiments/NAME/resume"}"#)
        }
    }

    /// `POST /outcomes`: validated whole and stored in one transaction on the ingestion thread
    /// (low priority, and the database may be busy with the writer); the answer comes back here.
    private func receiveOutcomes(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let json = "application/json"
        guard self.status.mayPostOutcomes(head.headers) else {
            return self.respond(
                .unauthorized,
                #"{"error":"POST /outcomes needs Authorization: Bearer <SHADOWD_OUTCOMES_TOKEN>"}"#,
                head: head,
                contentType: json,
                context: context
            )
        }
        guard !self.bodyTooLarge else {
            let message = "the batch is over \(Self.maxBody >> 20) MiB: send it in smaller batches"
            return self.respond(
                .payloadTooLarge,
                JSONValue.object([("error", .string(message))]).serialized,
                head: head,
                contentType: json,
                context: context
            )
        }
        let type = (head.headers.first(name: "content-type") ?? "").split(separator: ";").first.map { $0.filter { $0 != " " }.lowercased() } ?? ""
        guard ["application/json", "application/x-ndjson", "application/ndjson", ""].contains(type) else {
            let message = "content-type \(type) is not accepted: send application/x-ndjson (an event a line) or application/json (an array)"
            return self.respond(
                .unsupportedMediaType,
                JSONValue.object([("error", .string(message))]).serialized,
                head: head,
                contentType: json,
                context: context
            )
        }
        let body = self.body
        self.body = ByteBuffer()  // the batch is handed over whole, not copied
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        self.status.ingestor.ingest(body, parser: self.status.outcomeParser(), on: context.eventLoop).assumeIsolated().whenComplete { result in
            let (handler, context) = bound.value
            let (status, reply): (HTTPResponseStatus, String)
            // The ingestion thread is gone only when shadowd is stopping.
            switch (try? result.get()) ?? .failed("shadowd is shutting down") {
            case .rejected(let error):
                var members: [(key: String, value: JSONValue)] = [("error", .string(error.description))]
                if error.line > 0 { members.append(("line", .number(Double(error.line)))) }
                members.append(("stored", .number(0)))
                (status, reply) = (.badRequest, JSONValue.object(members).serialized)
            case .stored(let result):
                (status, reply) = (
                    .ok,
                    JSONValue.object([("stored", .number(Double(result.stored))), ("duplicates", .number(Double(result.duplicates)))]).serialized
                )
            case .failed(let error):
                (status, reply) = (
                    .serviceUnavailable,
                    JSONValue.object([("error", .string("storing the batch failed, nothing of it was kept: \(error)")), ("stored", .number(0))])
                        .serialized
                )
            }
            handler.respond(status, reply, head: head, contentType: json, context: context)
        }
    }

    private func respond(_ status: HTTPResponseStatus, _ body: String, head: HTTPRequestHead, contentType: String, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: contentType)
        headers.add(name: "content-length", value: String(body.utf8.count))
        headers.add(name: "date", value: HTTPDate.format(secondsSince1970: SidecarClock.wallMicros() / 1_000_000))
        headers.add(name: "cache-control", value: "no-store")
        context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        context.write(Self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        context.writeAndFlush(Self.wrapOutboundOut(.end(nil)), promise: nil)
        if !head.isKeepAlive { context.close(promise: nil) }
    }
}

extension ExperimentController.Status {
    /// As `/stats`, `/experiments` and `shadowd experiment status` show it.
    var json: JSONValue {
        .object([
            ("experiment", .string(self.experiment)),
            ("route", .string(self.route)),
            ("state", .string(self.stoppedReason == nil ? "running" : "stopped")),
            ("stage", .number(Double(self.stage))),
            ("percent_per_arm", .number(self.percent)),
            ("allocation", .array(self.allocation.map { .number($0) })),
            ("started_at", .string(HTTPDate.iso8601(micros: self.startedAtMicros))),
            ("stage_entered_at", .string(HTTPDate.iso8601(micros: self.enteredAtMicros))),
            ("stopped_reason", self.stoppedReason.map { .string($0) } ?? .null),
            ("stage_control_requests", .number(Double(self.controlRequests))),
            ("stage_treatment_requests", .number(Double(self.treatmentRequests))),
            ("requests_without_key", .number(Double(self.requestsWithoutKey))),
        ])
    }
}
