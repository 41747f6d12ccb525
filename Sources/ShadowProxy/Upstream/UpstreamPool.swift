import Logging
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import ShadowCore
import Synchronization

/// Keep-alive connections to one upstream from one event loop.
///
/// Touched only on its loop (no locks, no futures on the reuse path). Idle connections are reused
/// last-in first-out so the warmest socket goes first; ones idle longer than `maxIdleTime` are
/// closed rather than reused, which keeps clear of upstream keep-alive timeouts (a request sent on
/// a connection the server is closing would fail, and inference POSTs are never retried).
/// Over TLS a pooled connection pays its handshake once: a warm pool does none per request.
final class UpstreamPool {
    let loop: any EventLoop
    private(set) var endpoint: UpstreamEndpoint
    var target: UpstreamURL { self.endpoint.url }
    private let maxIdle: Int
    /// Set again when a reload changes the upstream's `idle_timeout`.
    var maxIdleTime: TimeAmount
    private var idle: [UpstreamConnection] = []
    private var all: [ObjectIdentifier: UpstreamConnection] = [:]
    /// Bumped when the endpoint changes (certificates re-read): older connections are not reused.
    private(set) var generation = 0
    /// After a refused connect, calls within this window fail as `refused` without a new
    /// attempt (nil: always try, as for the baseline, whose recovery must be seen at once).
    private let refusalBackoff: TimeAmount?
    private(set) var refusedUntil: NIODeadline?
    let statistics: ProxyStatistics
    private let logger: Logger
    /// The last connect failure logged; the same one again is not logged until a connect succeeds.
    private var loggedFailure: String?
    /// `h2c://`, or gRPC calls to `https://`: the multiplexed connections (the first is kept;
    /// more open while every one has as many streams as the upstream allows), and the calls
    /// waiting for a connect.
    var http2: [HTTP2UpstreamConnection] = []
    var http2Connecting = false
    var http2Waiting: [UpstreamCall] = []
    var http2ConnectTimeout = TimeAmount.seconds(10)

    /// More HTTP/2 connections than this to one upstream from one event loop are not opened:
    /// further streams wait in NIO's buffer on the least busy one.
    static let maxHTTP2Connections = 8

    /// How long a candidate that refused a connection is not asked again: a refusing candidate
    /// then costs a queued failure per copy instead of a connect system call (measured: −14%
    /// req/s for the client path without it).
    static let candidateRefusalBackoff = TimeAmount.milliseconds(100)

    init(
        loop: any EventLoop,
        endpoint: UpstreamEndpoint,
        maxIdle: Int,
        maxIdleTime: TimeAmount = .seconds(4),
        refusalBackoff: TimeAmount? = nil,
        statistics: ProxyStatistics,
        logger: Logger
    ) {
        self.loop = loop
        self.endpoint = endpoint
        self.maxIdle = maxIdle
        self.maxIdleTime = maxIdleTime
        self.refusalBackoff = refusalBackoff
        self.statistics = statistics
        self.logger = logger
    }

    /// Switches to a re-read endpoint (new certificates): idle connections close, busy ones
    /// close when their response ends, new ones use the new context.
    func update(_ endpoint: UpstreamEndpoint) {
        guard !self.endpoint.connectsLike(endpoint) else { return }
        self.endpoint = endpoint
        self.generation += 1
        for connection in self.idle { connection.close() }
        self.idle.removeAll()
        for connection in self.http2 { connection.retire() }
        self.http2 = []
    }

    /// Runs `call` on an idle connection, or on a new one once connected. The request's parts
    /// may be written to the call before or after.
    func execute(_ call: UpstreamCall, connectTimeout: TimeAmount) {
        if self.endpoint.url.speaksHTTP2(forGRPC: call.isGRPC) {
            self.executeOnStream(call, connectTimeout: connectTimeout)
            return
        }
        let now = NIODeadline.now()
        while let connection = self.idle.popLast() {
            if connection.isClosed || !connection.channel.isActive { continue }
            if now - connection.idleSince > self.maxIdleTime {
                connection.close()
                continue
            }
            connection.start(call, inReadBurst: true)
            return
        }
        if self.failsWhileRefused(call, now: now) { return }
        let deadline = now + connectTimeout
        let endpoint = self.endpoint
        let generation = self.generation
        self.connect(endpoint, http2: false, deadline: deadline).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let channel):
                guard let handler = try? channel.pipeline.syncOperations.handler(type: UpstreamHandler.self) else {
                    channel.close(promise: nil)
                    call.fail(.reset)
                    return
                }
                self.connectSucceeded()
                if endpoint.tls != nil { self.statistics.tlsHandshakes.add(1, ordering: .relaxed) }
                let connection = UpstreamConnection(channel: channel, handler: handler, pool: self, generation: generation)
                self.all[ObjectIdentifier(connection)] = connection
                if call.finished {
                    // Timed out or cancelled while connecting: keep the fresh connection for the next call.
                    self.release(connection)
                } else if !channel.isActive {
                    call.fail(.reset)
                } else {
                    connection.start(call, inReadBurst: false)
                }
            case .failure(let error):
                let failure = self.connectFailed(error)
                call.fail(failure.kind, detail: failure.detail)
            }
        }
    }

    /// Within the backoff after a refused connect: fails `call` as refused (on the next loop
    /// turn, not re-entrantly inside the caller's start) without a new attempt.
    func failsWhileRefused(_ call: UpstreamCall, now: NIODeadline) -> Bool {
        guard let until = self.refusedUntil, now < until else { return false }
        self.loop.assumeIsolated().execute { call.fail(.refused) }
        return true
    }

    func connectSucceeded() {
        self.refusedUntil = nil
        self.loggedFailure = nil
    }

    /// Classifies a failed connect, starts the refusal backoff and logs it.
    func connectFailed(_ error: any Error) -> Failure {
        let failure = Self.classify(error)
        if failure.kind == .refused, let backoff = self.refusalBackoff { self.refusedUntil = .now() + backoff }
        self.noteFailure(failure)
        return failure
    }

    /// Connects (through the proxy's tunnel if one applies) and, for TLS, completes the
    /// handshake; all within `deadline`. With `http2`, the connection speaks HTTP/2 (over TLS,
    /// only once the server agreed to `h2`).
    func connect(_ endpoint: UpstreamEndpoint, http2: Bool, deadline: NIODeadline) -> EventLoopFuture<any Channel> {
        let bootstrap = ClientBootstrap(group: self.loop)
            .connectTimeout(max(.zero, deadline - .now()))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if endpoint.proxy != nil {
                        let tunnel = ProxyTunnelHandler(authority: endpoint.authority, promise: channel.eventLoop.makePromise())
                        try channel.pipeline.syncOperations.addHandler(tunnel)
                    } else {
                        try Self.addProtocolHandlers(channel, endpoint, http2: http2)
                    }
                }
            }
        let connected: EventLoopFuture<any Channel>
        if let proxy = endpoint.proxy {
            connected = bootstrap.connect(host: proxy.host, port: proxy.port)
        } else if let address = endpoint.address {
            connected = bootstrap.connect(to: address)
        } else {
            connected = bootstrap.connect(host: endpoint.url.host, port: endpoint.url.port)
        }
        return connected.flatMap { channel in
            guard let tunnel = try? channel.pipeline.syncOperations.handler(type: ProxyTunnelHandler.self) else {
                return channel.eventLoop.makeSucceededFuture(channel)
            }
            return Self.within(deadline, channel, tunnel.promise.futureResult).flatMapThrowing {
                let pipeline = channel.pipeline.syncOperations
                pipeline.removeHandler(context: try pipeline.context(handlerType: ProxyTunnelHandler.self), promise: nil)
                try Self.addProtocolHandlers(channel, endpoint, http2: http2)
                return channel
            }
        }.flatMap { channel in
            guard let waiter = try? channel.pipeline.syncOperations.handler(type: TLSHandshakeWaiter.self) else {
                return channel.eventLoop.makeSucceededFuture(channel)
            }
            // A server that accepts and then stalls the handshake is a connect timeout, not a
            // slow answer.
            return Self.within(deadline, channel, waiter.promise.futureResult).map { channel }
        }.flatMap { channel in
            // HTTP/2 is ready at the upstream's first SETTINGS: its stream limit is known before
            // a call picks the connection.
            guard http2, let watcher = try? channel.pipeline.syncOperations.handler(type: HTTP2ConnectionWatcher.self) else {
                return channel.eventLoop.makeSucceededFuture(channel)
            }
            return Self.within(deadline, channel, watcher.ready.futureResult).map { channel }
        }
    }

    /// TLS (when `https://`), then HTTP/1.1 and the response handler, or with `http2`, HTTP/2
    /// (its streams get their handlers when opened).
    private static func addProtocolHandlers(_ channel: any Channel, _ endpoint: UpstreamEndpoint, http2: Bool) throws {
        let pipeline = channel.pipeline.syncOperations
        if let tls = endpoint.tls {
            try pipeline.addHandler(try tls.makeHandler(http2: http2))
            try pipeline.addHandler(TLSHandshakeWaiter(promise: channel.eventLoop.makePromise(), requiresHTTP2: http2))
        }
        if http2 {
            // Over TLS the preface waits in the TLS handler until the handshake is done.
            _ = try pipeline.configureHTTP2Pipeline(
                mode: .client,
                connectionConfiguration: .init(),
                streamConfiguration: .init(),
                inboundStreamInitializer: { $0.close() }  // an upstream pushing streams: refused
            )
            try pipeline.addHandler(HTTP2ConnectionWatcher(ready: channel.eventLoop.makePromise()))
            return
        }
        if endpoint.tls == nil { try pipeline.addHandler(PlainPeerSniffer()) }
        // Requests go out as bytes through the outlet, below the decoder (no NIO encoder and no
        // header validation: every forwarded field was parsed from the client by llhttp, which
        // lets no CR, LF or NUL through, and the ones the sidecar adds are its own or validated).
        let decoder = HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes)
        let outlet = RequestOutlet(decoder: decoder)
        try pipeline.addHandler(outlet)
        try pipeline.addHandler(ByteToMessageHandler(decoder))
        try pipeline.addHandler(UpstreamHandler(plain: endpoint.tls == nil, outlet: outlet))
    }

    /// `step`, failed as a connect timeout (and the channel closed) unless it ends by `deadline`.
    private static func within(_ deadline: NIODeadline, _ channel: any Channel, _ step: EventLoopFuture<Void>) -> EventLoopFuture<Void> {
        let promise = channel.eventLoop.makePromise(of: Void.self)
        let timer = channel.eventLoop.scheduleTask(deadline: deadline) {
            promise.fail(ChannelError.connectTimeout(.zero))
            channel.close(promise: nil)
        }
        step.whenComplete { result in
            timer.cancel()
            if case .failure = result { channel.close(promise: nil) }
            promise.completeWith(result)
        }
        return promise.futureResult
    }

    struct Failure: Equatable {
        var kind: ArmError
        var detail: String?
    }

    static func classify(_ error: any Error) -> Failure {
        if let channelError = error as? ChannelError, case .connectTimeout = channelError { return Failure(kind: .connectTimeout) }
        if let connectionError = error as? NIOConnectionError {
            if connectionError.connectionErrors.isEmpty, connectionError.dnsAError != nil || connectionError.dnsAAAAError != nil {
                return Failure(kind: .dns, detail: "could not resolve \(connectionError.host)")
            }
            return Failure(kind: .refused)
        }
        if TLSHandshakeWaiter.isTLSFailure(error) { return Failure(kind: .tls, detail: UpstreamTLS.describe(error)) }
        if let tunnelError = error as? ProxyTunnelHandler.TunnelError { return Failure(kind: .refused, detail: tunnelError.reason) }
        // An HTTP/2 connection whose peer answered the preface with something else, or hung up.
        if error is any NIOHTTP2Error {
            return Failure(kind: .invalidResponse, detail: "the upstream does not speak HTTP/2 (an HTTP/1.1 server behind an h2c:// URL?)")
        }
        if error is HTTP2ConnectionWatcher.ClosedBeforeSettings {
            return Failure(kind: .reset, detail: "the upstream closed the connection before its HTTP/2 settings")
        }
        return Failure(kind: .refused)
    }

    /// Counts a TLS failure and logs a TLS or DNS one, once per distinct reason in a row.
    func noteFailure(_ failure: Failure) {
        if failure.kind == .tls { self.statistics.tlsFailures.add(1, ordering: .relaxed) }
        guard failure.kind == .tls || failure.kind == .dns || failure.detail != nil else { return }
        let text = "\(failure.kind.rawValue): \(failure.detail ?? "")"
        guard text != self.loggedFailure else { return }
        self.loggedFailure = text
        self.logger.warning(
            "cannot connect to upstream",
            metadata: ["upstream": "\(self.endpoint.url)", "error": "\(failure.kind.rawValue)", "reason": "\(failure.detail ?? "")"]
        )
    }

    func release(_ connection: UpstreamConnection) {
        guard !connection.isClosed else { return }
        if self.idle.count >= self.maxIdle || connection.generation != self.generation {
            connection.close()
            return
        }
        connection.idleSince = .now()
        self.idle.append(connection)
    }

    func forget(_ connection: UpstreamConnection) {
        self.all.removeValue(forKey: ObjectIdentifier(connection))
        self.idle.removeAll { $0 === connection }
    }

    /// Closes every connection (shutdown).
    func closeAll() {
        for connection in self.http2 { connection.channel.close(promise: nil) }
        self.http2 = []
        for connection in self.all.values { connection.close() }
        self.idle.removeAll()
    }
}
