import Logging
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import ServiceLifecycle
import ShadowCore

/// The client-facing listener, as a service.
///
/// On graceful shutdown it stops accepting, lets in-flight requests finish (bounded by
/// `server.drain_timeout`), waits for queued shadow copies to complete (bounded by the slowest
/// candidate timeout), records what is left as `shutdown`, and only then returns, so the writer
/// (which stops after it) sees every record.
public final class ProxyServer: Service, Sendable {
    let group: any EventLoopGroup
    let contexts: [NIOLoopBound<LoopContext>]
    let configuration: Configuration
    let shared: SharedState
    let logger: Logger
    /// Where the listener is bound, once it is.
    public let address = AddressPromise()

    init(group: any EventLoopGroup, contexts: [NIOLoopBound<LoopContext>], configuration: Configuration, shared: SharedState, logger: Logger) {
        self.group = group
        self.contexts = contexts
        self.configuration = configuration
        self.shared = shared
        self.logger = logger
    }

    public func run() async throws {
        let channel: any Channel
        do {
            channel = try await self.bind()
        } catch {
            self.address.fulfil(nil)
            throw ServeError("cannot listen on \(self.configuration.server.listen): \(error)")
        }
        self.address.fulfil(channel.localAddress)
        self.logger.info("listening", metadata: ["shadow.listen": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
        try? await gracefulShutdown()
        self.logger.info("draining", metadata: ["shadow.connections": "\(self.shared.statistics.snapshot.openConnections)"])
        try? await channel.close()
        await self.drain()
    }

    private func bind() async throws -> any Channel {
        let limits = self.configuration.limits
        let decoderLimits = {
            var decoderLimits = NIOHTTPDecoderLimitConfiguration()
            decoderLimits.maxHeaderListSize = limits.maxHeaderBytes
            decoderLimits.maxHeaderFieldSize = limits.maxHeaderBytes
            return decoderLimits
        }()
        let contexts = Dictionary(uniqueKeysWithValues: self.contexts.map { (ObjectIdentifier($0.eventLoop), $0) })
        let listen = self.configuration.server.listen
        return try await ServerBootstrap(group: self.group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let bound = contexts[ObjectIdentifier(channel.eventLoop)] else {
                        throw ServeError("no loop context for event loop")
                    }
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(HTTPVersionSniffer { channel in try Self.switchToHTTP2(channel, limits: limits, context: bound) })
                    try pipeline.configureHTTPServerPipeline(
                        // ProxyHandler keeps pipelined requests itself (PipelinedRequests).
                        withPipeliningAssistance: false,
                        withErrorHandling: false,
                        withOutboundHeaderValidation: false,
                        withEncoderConfiguration: .init(),
                        withDecoderLimitConfiguration: decoderLimits
                    )
                    try pipeline.addHandler(ProxyHandler(loopContext: bound.value))
                }
            }
            .bind(host: listen.host, port: listen.port)
            .get()
    }

    /// An h2c connection: every stream is an exchange of its own, decoded into the HTTP/1-shaped
    /// parts the proxy handler reads (trailers included), with the limits a production HTTP/2
    /// server sets. NIO's HTTP/2 handler bounds the known attacks itself (rapid reset, CVE-2023-44487;
    /// CONTINUATION floods; too many control frames or protocol glitches): it answers them with a
    /// GOAWAY and the connection closes, other connections unaffected.
    static func switchToHTTP2(_ channel: any Channel, limits: LimitsConfiguration, context: NIOLoopBound<LoopContext>) throws {
        let pipeline = channel.pipeline.syncOperations
        // The HTTP/1.1 handlers the connection started with (none has seen a byte yet). Some
        // leave the pipeline a moment later, so the HTTP/2 ones go in before them, right after
        // the sniffer that hands them the bytes.
        let sniffer = try pipeline.handler(type: HTTPVersionSniffer.self)
        pipeline.removeHandler(context: try pipeline.context(handlerType: ProxyHandler.self), promise: nil)
        pipeline.removeHandler(context: try pipeline.context(handlerType: ByteToMessageHandler<HTTPRequestDecoder>.self), promise: nil)
        pipeline.removeHandler(context: try pipeline.context(handlerType: HTTPResponseEncoder.self), promise: nil)
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: limits.http2MaxConcurrentStreams),
            HTTP2Setting(parameter: .maxHeaderListSize, value: limits.maxHeaderBytes),
        ]
        let guardHandler = HTTP2ConnectionGuard(context: context.value)
        _ = try pipeline.configureHTTP2Pipeline(
            mode: .server,
            connectionConfiguration: connection,
            streamConfiguration: .init(),
            streamDelegate: HTTP2ConnectionGuard.StreamCounter(NIOLoopBound(guardHandler, eventLoop: channel.eventLoop)),
            position: .after(sniffer)
        ) { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                // Streams run on their connection's event loop, the one `context` is bound to.
                try stream.pipeline.syncOperations.addHandler(ProxyHandler(loopContext: context.value, stream: true))
            }
        }
        try pipeline.addHandler(guardHandler, position: .after(try pipeline.handler(type: NIOHTTP2Handler.self)))
    }

    /// Whether every event loop runs a no-op within `limit` (a wedged loop would not).
    func eventLoopsRespond(within limit: Duration) async -> Bool {
        let deadline = NIODeadline.now() + TimeAmount(limit)
        for bound in self.contexts {
            let loop = bound.eventLoop
            let answered = loop.submit { true }
            let timer = loop.scheduleTask(deadline: deadline) { false }
            let first = loop.makePromise(of: Bool.self)
            answered.cascade(to: first)
            timer.futureResult.cascade(to: first)
            guard (try? await first.futureResult.get()) == true else { return false }
            timer.cancel()
        }
        return true
    }

    /// Runs `body` on every loop's context and sums the results.
    private func onEveryLoop(_ body: @escaping @Sendable (LoopContext) -> Int) async -> Int {
        var total = 0
        for bound in self.contexts {
            total += (try? await bound.eventLoop.submit { body(bound.value) }.get()) ?? 0
        }
        return total
    }

    /// Waits until every loop has nothing of `target` left, or `timeout` passes; returns what is
    /// left then.
    private func waitUntilDrained(_ target: LoopContext.DrainTarget, timeout: Duration) async -> Int {
        let deadline = NIODeadline.now() + TimeAmount(timeout)
        for bound in self.contexts {
            try? await bound.eventLoop.flatSubmit { bound.value.whenDrained(target, deadline: deadline) }.get()
        }
        return await self.onEveryLoop { $0.remaining(target) }
    }

    private func drain() async {
        _ = await self.onEveryLoop { context in
            context.beginShutdown()
            return 0
        }
        let requestsLeft = await self.waitUntilDrained(.connections, timeout: self.configuration.server.drainTimeout)
        if requestsLeft > 0 {
            self.logger.warning("drain timeout: closing connections with requests in flight", metadata: ["shadow.connections": "\(requestsLeft)"])
            _ = await self.onEveryLoop { context in
                context.forceCloseConnections()
                return 0
            }
        }
        let slowestCandidate = self.configuration.routes.flatMap(\.mirrorTargets).map(\.timeout).max() ?? .zero
        let shadowLeft = await self.waitUntilDrained(.shadowWork, timeout: slowestCandidate + .seconds(1))
        if shadowLeft > 0 {
            self.logger.warning("shadow copies still pending at shutdown; recorded as 'shutdown'", metadata: ["shadow.pending": "\(shadowLeft)"])
            _ = await self.onEveryLoop { context in
                context.abandonShadowWork()
                return 0
            }
        }
        _ = await self.onEveryLoop { context in
            context.closeUpstreams()
            return 0
        }
        self.logger.info("proxy stopped", metadata: ["shadow.requests": "\(self.shared.statistics.snapshot.requests)"])
    }
}

/// A failure to start serving.
public struct ServeError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
