import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import ShadowTensor

/// A minimal HTTP/2 client with prior knowledge (h2c, as gRPC clients connect) over one
/// connection, for tests and benchmarks: each request gets its own stream, so many can be in
/// flight at once, and each answer comes back whole with its trailers.
public final class HTTP2TestClient: Sendable {
    private let channel: any Channel
    private let multiplexer: NIOLoopBound<NIOHTTP2Handler.StreamMultiplexer>

    private init(channel: any Channel, multiplexer: NIOLoopBound<NIOHTTP2Handler.StreamMultiplexer>) {
        self.channel = channel
        self.multiplexer = multiplexer
    }

    /// Connects to `host:port` and sends the HTTP/2 preface.
    public static func connect(
        host: String = "127.0.0.1",
        port: Int,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> HTTP2TestClient {
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                        mode: .client,
                        connectionConfiguration: .init(),
                        streamConfiguration: .init(),
                        inboundStreamInitializer: { $0.close() }
                    )
                }
            }
            .connect(host: host, port: port)
            .get()
        let multiplexer = try await channel.eventLoop.submit {
            NIOLoopBound(try channel.pipeline.syncOperations.handler(type: NIOHTTP2Handler.self).syncMultiplexer(), eventLoop: channel.eventLoop)
        }.get()
        return HTTP2TestClient(channel: channel, multiplexer: multiplexer)
    }

    /// Sends one request on a new stream and waits for the whole answer (or the stream's reset).
    /// `onFirstBody` runs when the answer's first body bytes arrive (to prove streaming by order).
    public func send(
        method: HTTPMethod = .POST,
        path: String,
        headers: [(String, String)] = [],
        body: [UInt8] = [],
        onFirstBody: (@Sendable () -> Void)? = nil
    ) async throws -> HTTP2TestResponse {
        let promise = self.channel.eventLoop.makePromise(of: HTTP2TestResponse.self)
        let multiplexer = self.multiplexer
        let started = ContinuousClock.now
        self.channel.eventLoop.execute {
            multiplexer.value.createStreamChannel { stream in
                stream.eventLoop.makeCompletedFuture {
                    try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: .http))
                    try stream.pipeline.syncOperations.addHandler(StreamCollector(promise: promise, started: started, onFirstBody: onFirstBody))
                }
            }.whenComplete { result in
                switch result {
                case .failure(let error):
                    promise.fail(error)
                case .success(let stream):
                    var requestHeaders = HTTPHeaders(headers)
                    if !requestHeaders.contains(name: "host") { requestHeaders.add(name: "host", value: "127.0.0.1") }
                    let head = HTTPRequestHead(version: .http2, method: method, uri: path, headers: requestHeaders)
                    stream.write(HTTPClientRequestPart.head(head), promise: nil)
                    if !body.isEmpty { stream.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil) }
                    stream.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
                }
            }
        }
        return try await promise.futureResult.get()
    }

    /// A gRPC call with one request message: `message` framed, `te: trailers` and the gRPC
    /// content type set.
    public func unary(
        path: String,
        message: [UInt8],
        headers: [(String, String)] = [],
        onFirstBody: (@Sendable () -> Void)? = nil
    ) async throws -> HTTP2TestResponse {
        try await self.send(
            path: path,
            headers: [("content-type", "application/grpc"), ("te", "trailers")] + headers,
            body: GRPCFraming.frame(message),
            onFirstBody: onFirstBody
        )
    }

    public func close() async {
        try? await self.channel.close()
    }
}

/// A whole HTTP/2 answer.
public struct HTTP2TestResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    public var trailers: [(name: String, value: String)]
    public var latency: Duration

    public func header(_ name: String) -> String? {
        self.headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    public func trailer(_ name: String) -> String? {
        self.trailers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    /// `grpc-status`, from the trailers or (trailers-only) the head.
    public var grpcStatus: Int? { (self.trailer("grpc-status") ?? self.header("grpc-status")).flatMap { Int($0) } }

    /// The gRPC messages of the body, unframed (none when the framing is broken).
    public var messages: [[UInt8]] { GRPCFraming.messages(in: self.body) ?? [] }
}

private final class StreamCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let promise: EventLoopPromise<HTTP2TestResponse>
    private let started: ContinuousClock.Instant
    private var response = HTTP2TestResponse(status: 0, headers: [], body: [], trailers: [], latency: .zero)
    private var done = false
    private var onFirstBody: (@Sendable () -> Void)?

    init(promise: EventLoopPromise<HTTP2TestResponse>, started: ContinuousClock.Instant, onFirstBody: (@Sendable () -> Void)?) {
        self.promise = promise
        self.started = started
        self.onFirstBody = onFirstBody
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.response.status = Int(head.status.code)
            self.response.headers = head.headers.map { ($0.name, $0.value) }
        case .body(let buffer):
            self.response.body.append(contentsOf: buffer.readableBytesView)
            self.onFirstBody?()
            self.onFirstBody = nil
        case .end(let trailers):
            self.response.trailers = trailers.map { $0.map { ($0.name, $0.value) } } ?? []
            self.response.latency = ContinuousClock.now - self.started
            self.done = true
            self.promise.succeed(self.response)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !self.done { self.promise.fail(HTTPTestClientError(description: "the stream closed before its answer ended")) }
        self.done = true
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !self.done { self.promise.fail(error) }
        self.done = true
        context.close(promise: nil)
    }
}
