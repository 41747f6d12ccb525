import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

/// A real HTTP server on loopback whose every answer is scripted: the stand-in for model servers
/// in tests, the demo and benchmarks, with faults on demand (delay, hang, garbage, reset, chunks).
public final class FixtureServer: Sendable {
    /// Decides the answer to one request. Called on the event loop; keep it quick.
    public typealias Responder = @Sendable (FixtureRequest) -> FixtureResponse

    public let port: Int
    private let channel: any Channel
    private let counters: FixtureCounters

    private init(port: Int, channel: any Channel, counters: FixtureCounters) {
        self.port = port
        self.channel = channel
        self.counters = counters
    }

    /// Binds `host:port` (port 0 lets the kernel choose) and serves until ``stop()``; over TLS
    /// with `tls` (HTTPS, as a hosted model API); with `http2`, cleartext HTTP/2 with prior
    /// knowledge (h2c, as a gRPC model server), each stream answered like a request.
    public static func start(
        host: String = "127.0.0.1",
        port: Int = 0,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        tls: NIOSSLContext? = nil,
        http2: Bool = false,
        responder: @escaping Responder
    ) async throws -> FixtureServer {
        let counters = FixtureCounters()
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                counters.connections.add(1, ordering: .relaxed)
                return channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                        try channel.pipeline.syncOperations.addHandler(HandshakeCounter(counters: counters))
                    }
                    if http2 {
                        _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                            mode: .server,
                            connectionConfiguration: .init(),
                            streamConfiguration: .init()
                        ) { stream in
                            stream.eventLoop.makeCompletedFuture {
                                try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                                try stream.pipeline.syncOperations.addHandler(FixtureHandler(responder: responder, counters: counters, http2: true))
                            }
                        }
                        return
                    }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(FixtureHandler(responder: responder, counters: counters))
                }
            }
            .bind(host: host, port: port)
            .get()
        guard let boundPort = channel.localAddress?.port else { throw FixtureError("fixture server did not bind") }
        return FixtureServer(port: boundPort, channel: channel, counters: counters)
    }

    /// Stops accepting; open connections are closed with their event loop.
    public func stop() async throws {
        try await self.channel.close()
    }

    /// Requests fully received so far.
    public var requestCount: Int { self.counters.requests.load(ordering: .relaxed) }
    /// Request body bytes received so far, counted as they arrive (before a request ends).
    public var bodyBytesReceived: Int { self.counters.bodyBytes.load(ordering: .relaxed) }
    /// TCP connections accepted so far.
    public var connectionCount: Int { self.counters.connections.load(ordering: .relaxed) }
    /// TLS handshakes completed so far (HTTPS fixtures).
    public var handshakeCount: Int { self.counters.handshakes.load(ordering: .relaxed) }
    /// The most recent requests (up to 64), oldest first.
    public var recentRequests: [FixtureRequest] { self.counters.recent.withLock { $0 } }
}

final class FixtureCounters: Sendable {
    let requests = Atomic<Int>(0)
    let connections = Atomic<Int>(0)
    let handshakes = Atomic<Int>(0)
    let bodyBytes = Atomic<Int>(0)
    let recent = Mutex<[FixtureRequest]>([])

    func record(_ request: FixtureRequest) {
        self.requests.add(1, ordering: .relaxed)
        self.recent.withLock { recent in
            recent.append(request)
            if recent.count > 64 { recent.removeFirst(recent.count - 64) }
        }
    }
}

/// A request as the fixture received it.
public struct FixtureRequest: Sendable {
    public var method: String
    public var uri: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    /// The first value of a header, case-insensitively.
    public func header(_ name: String) -> String? {
        self.headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

/// A scripted answer.
public struct FixtureResponse: Sendable {
    public enum Mode: Sendable {
        /// A normal response with Content-Length.
        case normal
        /// A normal response, then the connection closed after `after` without notice (no
        /// `Connection: close`): a keep-alive connection the server drops at its own moment.
        case normalThenClose(after: Duration)
        /// Never answer (the connection stays open).
        case hang
        /// Send the body as these chunks (chunked encoding), pausing between them.
        case chunked([[UInt8]], pause: Duration)
        /// As `chunked`, then close the connection instead of ending the body (a stream cut short).
        case chunkedThenClose([[UInt8]], pause: Duration)
        /// Chunked: `first` at once, then nothing until the test opens `gate`, then `rest`.
        /// Proves streaming by order rather than by a clock.
        case gatedChunks(first: [[UInt8]], gate: FixtureGate, rest: [[UInt8]])
        /// Send the head and part of the body, then close the connection.
        case resetMidBody
        /// Send bytes that are not HTTP, then close.
        case garbage
        /// Close the connection without a response (over HTTP/2: reset the stream).
        case closeImmediately
        /// HTTP/2: send GOAWAY (refusing this stream and any later one), then close the connection.
        case goAway
    }

    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    public var delay: Duration
    public var mode: Mode
    /// Held until the test opens this gate (then `delay`, then the answer): order, not a clock.
    public var gate: FixtureGate?
    /// Sent after the body (gRPC's `grpc-status` travels here); forces chunked framing over HTTP/1.1.
    public var trailers: [(name: String, value: String)]?

    public init(
        status: Int = 200,
        headers: [(name: String, value: String)] = [],
        body: [UInt8] = [],
        delay: Duration = .zero,
        mode: Mode = .normal,
        gate: FixtureGate? = nil,
        trailers: [(name: String, value: String)]? = nil
    ) {
        self.trailers = trailers
        self.status = status
        self.headers = headers
        self.body = body
        self.delay = delay
        self.mode = mode
        self.gate = gate
    }

    /// A JSON response.
    public static func json(_ text: String, status: Int = 200, delay: Duration = .zero) -> FixtureResponse {
        FixtureResponse(status: status, headers: [("content-type", "application/json")], body: Array(text.utf8), delay: delay)
    }
}

public struct FixtureError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

private final class FixtureHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let responder: FixtureServer.Responder
    let counters: FixtureCounters
    /// On an HTTP/2 stream (its channel's parent is the connection, not the listener).
    let http2: Bool
    private var request: FixtureRequest?

    init(responder: @escaping FixtureServer.Responder, counters: FixtureCounters, http2: Bool = false) {
        self.responder = responder
        self.counters = counters
        self.http2 = http2
    }

    /// The request being answered is a HEAD.
    private var answeringHEAD = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.request = FixtureRequest(method: head.method.rawValue, uri: head.uri, headers: head.headers.map { ($0.name, $0.value) }, body: [])
        case .body(let buffer):
            self.counters.bodyBytes.add(buffer.readableBytes, ordering: .relaxed)
            self.request?.body.append(contentsOf: buffer.readableBytesView)
        case .end:
            guard let request = self.request else { return }
            self.request = nil
            self.answeringHEAD = request.method == "HEAD"
            self.counters.record(request)
            var response = self.responder(request)
            if let gate = response.gate {
                response.gate = nil
                let loop = context.eventLoop
                let bound = NIOLoopBound((self, context), eventLoop: loop)
                let held = response
                gate.whenOpen {
                    loop.execute {
                        let (handler, context) = bound.value
                        handler.respond(held, context: context)
                    }
                }
            } else {
                self.respond(response, context: context)
            }
        }
    }

    private func respond(_ response: FixtureResponse, context: ChannelHandlerContext) {
        if response.delay > .zero {
            context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(response.delay)) {
                self.send(response, context: context)
            }
        } else {
            self.send(response, context: context)
        }
    }

    private func send(_ response: FixtureResponse, context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        var headers = HTTPHeaders(response.headers.map { ($0.name, $0.value) })
        let status = HTTPResponseStatus(statusCode: response.status)
        switch response.mode {
        case .hang:
            return
        case .closeImmediately:
            context.close(promise: nil)
        case .garbage:
            // Bypass the HTTP encoder (over HTTP/2, the connection's framing): write raw bytes below it.
            let garbage = context.channel.allocator.buffer(string: "NOT HTTP AT ALL \u{0}\u{1}\r\n\r\n")
            if self.http2, let parent = context.channel.parent {
                if let framing = try? parent.pipeline.syncOperations.context(handlerType: NIOHTTP2Handler.self) {
                    framing.writeAndFlush(NIOAny(garbage), promise: nil)
                }
                parent.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(5)) { parent.close(promise: nil) }
                return
            }
            if let encoder = try? context.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self) {
                encoder.writeAndFlush(NIOAny(garbage), promise: nil)
            }
            context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(5)) { context.close(promise: nil) }
        case .goAway:
            guard self.http2, let parent = context.channel.parent else {
                context.close(promise: nil)
                return
            }
            let frame = HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: .rootStream, errorCode: .noError, opaqueData: nil))
            parent.writeAndFlush(frame).assumeIsolated().whenComplete { _ in parent.close(promise: nil) }
        case .normal, .normalThenClose:
            if response.trailers == nil || self.http2 {
                headers.replaceOrAdd(name: "content-length", value: String(response.body.count))
            }
            context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            // An answer to HEAD says the length its GET would have, and sends no body.
            if !response.body.isEmpty, !self.answeringHEAD {
                context.write(Self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))), promise: nil)
            }
            let trailers = response.trailers.map { HTTPHeaders($0.map { ($0.name, $0.value) }) }
            context.writeAndFlush(Self.wrapOutboundOut(.end(trailers)), promise: nil)
            if case .normalThenClose(let after) = response.mode {
                context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(after)) { context.close(promise: nil) }
            }
        case .resetMidBody:
            headers.replaceOrAdd(name: "content-length", value: String(max(response.body.count, 2) * 2))
            context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.writeAndFlush(Self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))), promise: nil)
            context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(5)) { context.close(promise: nil) }
        case .gatedChunks(let first, let gate, let rest):
            headers.remove(name: "content-length")
            context.writeAndFlush(Self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            self.sendChunks(first[...], pause: .zero, end: false, context: context)
            let loop = context.eventLoop
            let bound = NIOLoopBound((self, context), eventLoop: loop)
            gate.whenOpen {
                loop.execute {
                    let (handler, context) = bound.value
                    handler.sendChunks(rest[...], pause: .zero, context: context)
                }
            }
        case .chunked(let chunks, let pause), .chunkedThenClose(let chunks, let pause):
            headers.remove(name: "content-length")
            context.writeAndFlush(Self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            if case .chunkedThenClose = response.mode {
                self.sendChunks(chunks[...], pause: pause, close: true, context: context)
            } else {
                self.sendChunks(chunks[...], pause: pause, context: context)
            }
        }
    }

    private func sendChunks(_ chunks: ArraySlice<[UInt8]>, pause: Duration, close: Bool = false, end: Bool = true, context: ChannelHandlerContext) {
        guard let first = chunks.first else {
            guard end else { return }
            if close {
                context.close(promise: nil)
            } else {
                context.writeAndFlush(Self.wrapOutboundOut(.end(nil)), promise: nil)
            }
            return
        }
        context.writeAndFlush(Self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: first)))), promise: nil)
        let rest = chunks.dropFirst()
        if pause > .zero {
            context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(pause)) {
                self.sendChunks(rest, pause: pause, close: close, end: end, context: context)
            }
        } else {
            self.sendChunks(rest, pause: pause, close: close, end: end, context: context)
        }
    }
}

/// A gate a test opens to let a fixture go on (``FixtureResponse/Mode/gatedChunks(first:gate:rest:)``).
public final class FixtureGate: Sendable {
    private let state = Mutex<(open: Bool, waiting: [@Sendable () -> Void])>((false, []))

    public init() {}

    /// Runs `action` once the gate is open (at once if it already is).
    public func whenOpen(_ action: @escaping @Sendable () -> Void) {
        let now = self.state.withLock { state -> Bool in
            if state.open { return true }
            state.waiting.append(action)
            return false
        }
        if now { action() }
    }

    public func open() {
        let waiting = self.state.withLock { state in
            state.open = true
            defer { state.waiting = [] }
            return state.waiting
        }
        for action in waiting { action() }
    }
}

/// Counts completed TLS handshakes, then leaves the pipeline.
final class HandshakeCounter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private let counters: FixtureCounters

    init(counters: FixtureCounters) {
        self.counters = counters
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            self.counters.handshakes.add(1, ordering: .relaxed)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }
}

extension NIOSSLContext {
    /// A server context from PEM files, as `fixture-model --tls-cert/--tls-key` takes them; with
    /// `clientCA`, clients must present a certificate it issued (mutual TLS).
    public static func fixtureServer(certificatePEM: String, keyPEM: String, clientCAPEM: String? = nil) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(certificatePEM.utf8)).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(keyPEM.utf8), format: .pem))
        )
        configuration.applicationProtocols = ["http/1.1"]
        if let clientCAPEM {
            configuration.certificateVerification = .noHostnameVerification
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(clientCAPEM.utf8)))
        }
        return try NIOSSLContext(configuration: configuration)
    }
}
