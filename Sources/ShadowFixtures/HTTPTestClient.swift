import NIOCore
import NIOHTTP1
import NIOPosix

/// A minimal HTTP/1.1 client over one keep-alive connection, for tests, the demo replay and
/// benchmarks: sends requests one after another and collects whole responses.
public final class HTTPTestClient: Sendable {
    private let channel: any Channel
    private let handler: NIOLoopBound<ResponseCollector>

    private init(channel: any Channel, handler: NIOLoopBound<ResponseCollector>) {
        self.channel = channel
        self.handler = handler
    }

    /// Connects to `host:port`.
    public static func connect(
        host: String = "127.0.0.1",
        port: Int,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> HTTPTestClient {
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseCollector())
                }
            }
            .connect(host: host, port: port)
            .get()
        let handler = try await channel.eventLoop.submit {
            NIOLoopBound(try channel.pipeline.syncOperations.handler(type: ResponseCollector.self), eventLoop: channel.eventLoop)
        }.get()
        return HTTPTestClient(channel: channel, handler: handler)
    }

    /// Sends one request and waits for the whole response.
    /// - Throws: when the connection closes before the response ends.
    public func send(
        method: HTTPMethod = .GET,
        path: String,
        headers: [(String, String)] = [],
        body: [UInt8]? = nil
    ) async throws -> HTTPTestResponse {
        let handler = self.handler
        let channel = self.channel
        let promise = channel.eventLoop.makePromise(of: HTTPTestResponse.self)
        channel.eventLoop.execute {
            // A connection the server already closed would never answer: fail at once.
            guard channel.isActive else {
                promise.fail(HTTPTestClientError(description: "connection closed"))
                return
            }
            var requestHeaders = HTTPHeaders(headers)
            if !requestHeaders.contains(name: "host") { requestHeaders.add(name: "host", value: "127.0.0.1") }
            if let body, !requestHeaders.contains(name: "content-length"), !requestHeaders.contains(name: "transfer-encoding") {
                requestHeaders.add(name: "content-length", value: String(body.count))
            }
            handler.value.expect(promise, started: .now())
            channel.write(
                HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: requestHeaders)),
                promise: nil
            )
            if let body, !body.isEmpty {
                channel.write(HTTPClientRequestPart.body(.byteBuffer(channel.allocator.buffer(bytes: body))), promise: nil)
            }
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        }
        return try await promise.futureResult.get()
    }

    public func close() async {
        try? await self.channel.close()
    }

    /// Whether the server has closed the connection.
    public var isActive: Bool { self.channel.isActive }
}

/// A whole response as the client received it.
public struct HTTPTestResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// How many body parts arrived (more than one for streamed responses).
    public var bodyParts: Int
    /// Request sent to last byte.
    public var latency: Duration
    /// Request sent to first body byte (or head when there is no body).
    public var timeToFirstByte: Duration

    public func header(_ name: String) -> String? {
        self.headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    public var text: String { String(decoding: self.body, as: UTF8.self) }
}

public struct HTTPTestClientError: Error, CustomStringConvertible {
    public let description: String
}

private final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private var pending: [(EventLoopPromise<HTTPTestResponse>, NIODeadline)] = []
    private var current: HTTPTestResponse?

    func expect(_ promise: EventLoopPromise<HTTPTestResponse>, started: NIODeadline) {
        self.pending.append((promise, started))
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let (promise, started) = self.pending.first else { return }
        let elapsed = Duration.nanoseconds((NIODeadline.now() - started).nanoseconds)
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.current = HTTPTestResponse(
                status: Int(head.status.code),
                headers: head.headers.map { ($0.name, $0.value) },
                body: [],
                bodyParts: 0,
                latency: .zero,
                timeToFirstByte: elapsed
            )
        case .body(let buffer):
            if self.current?.bodyParts == 0 { self.current?.timeToFirstByte = elapsed }
            self.current?.body.append(contentsOf: buffer.readableBytesView)
            self.current?.bodyParts += 1
        case .end:
            self.pending.removeFirst()
            if var response = self.current {
                response.latency = elapsed
                promise.succeed(response)
            }
            self.current = nil
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        for (promise, _) in self.pending {
            promise.fail(HTTPTestClientError(description: "connection closed before the response ended"))
        }
        self.pending.removeAll()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        for (promise, _) in self.pending { promise.fail(error) }
        self.pending.removeAll()
        context.close(promise: nil)
    }
}
