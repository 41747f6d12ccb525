import NIOCore
import NIOHTTP1
import NIOPosix

/// The least a SwiftNIO mirroring proxy does, as `shared/FACTS.md` §6 describes the one it
/// measured: one event loop for the client connections and the upstream ones, keep-alive pools as
/// plain arrays touched only on that loop, no futures, tasks or locks per request, the same
/// request bytes to the baseline and the candidate, at most `maxMirrors` copies in flight, and
/// nothing recorded or scored. A reference for `shadowd-bench floor`, not a product.
final class FloorProxy {
    enum Target: Int {
        case baseline = 0
        case candidate = 1
    }

    let loop: any EventLoop
    let addresses: [SocketAddress]
    /// Idle keep-alive connections per target, each by the handler that reads its answers.
    private var idle: [[FloorAnswerReader]] = [[], []]
    var mirrorsInFlight = 0
    let maxMirrors = 64

    init(loop: any EventLoop, baseline: SocketAddress, candidate: SocketAddress) {
        self.loop = loop
        self.addresses = [baseline, candidate]
    }

    /// An idle connection to `target`, or a new one; `body` runs on the loop with it (nil when
    /// connecting failed).
    func withConnection(to target: Target, _ body: @escaping (FloorAnswerReader?) -> Void) {
        if let connection = self.idle[target.rawValue].popLast() {
            body(connection)
            return
        }
        ClientBootstrap(group: self.loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(enableOutboundHeaderValidation: false)
                    try channel.pipeline.syncOperations.addHandler(FloorAnswerReader())
                }
            }
            .connect(to: self.addresses[target.rawValue])
            .assumeIsolated()
            .whenComplete { result in
                body(try? result.flatMap { channel in Result { try channel.pipeline.syncOperations.handler(type: FloorAnswerReader.self) } }.get())
            }
    }

    /// Returns a connection whose answer ended to its pool, unless it cannot carry another request.
    func release(_ connection: FloorAnswerReader, to target: Target) {
        guard connection.reusable, let channel = connection.context?.channel, channel.isActive else {
            connection.context?.close(promise: nil)
            return
        }
        self.idle[target.rawValue].append(connection)
    }
}

/// Hands an upstream's answer parts to whoever sent the request.
final class FloorAnswerReader: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    var answer: ((HTTPClientResponsePart) -> Void)?
    private(set) var context: ChannelHandlerContext?
    /// The last answer allowed the connection to carry another request (nginx closes one after
    /// `keepalive_requests`, saying so in the answer).
    private(set) var reusable = true

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Sends one request; `answer` hears each part of its answer, on the loop.
    func send(_ head: HTTPRequestHead, _ body: ByteBuffer?, answer: @escaping (HTTPClientResponsePart) -> Void) {
        guard let context = self.context else { return }
        self.answer = answer
        context.write(NIOAny(HTTPClientRequestPart.head(head)), promise: nil)
        if let body { context.write(NIOAny(HTTPClientRequestPart.body(.byteBuffer(body))), promise: nil) }
        context.writeAndFlush(NIOAny(HTTPClientRequestPart.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = self.unwrapInboundIn(data)
        let answer = self.answer
        switch part {
        case .head(let head): self.reusable = head.isKeepAlive
        case .end: self.answer = nil
        case .body: break
        }
        answer?(part)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // An answer cut short ends here (the client of a baseline call gets its connection closed).
        let answer = self.answer
        self.answer = nil
        answer?(.end(nil))
        context.fireChannelInactive()
    }
}

/// One client connection of the floor proxy: each request, once whole, goes to the baseline,
/// whose answer streams back, and (within the bound) to the candidate, whose answer is read and
/// dropped.
final class FloorClientHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let proxy: FloorProxy
    private var head: HTTPRequestHead?
    private var body: ByteBuffer?

    init(proxy: FloorProxy) {
        self.proxy = proxy
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.body = nil
        case .body(var part):
            if self.body == nil { self.body = part } else { self.body!.writeBuffer(&part) }
        case .end:
            guard let head = self.head else { return }
            self.forward(head, self.body, context: context)
        }
    }

    private func forward(_ head: HTTPRequestHead, _ body: ByteBuffer?, context: ChannelHandlerContext) {
        let proxy = self.proxy
        proxy.withConnection(to: .baseline) { connection in
            guard let connection else {
                context.writeAndFlush(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .badGateway))), promise: nil)
                return
            }
            connection.send(head, body) { part in
                switch part {
                case .head(let answer): context.write(self.wrapOutboundOut(.head(answer)), promise: nil)
                case .body(let bytes): context.write(self.wrapOutboundOut(.body(.byteBuffer(bytes))), promise: nil)
                case .end:
                    context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
                    proxy.release(connection, to: .baseline)
                    if !head.isKeepAlive { context.close(promise: nil) }
                }
            }
        }
        guard proxy.mirrorsInFlight < proxy.maxMirrors else { return }
        proxy.mirrorsInFlight += 1
        proxy.withConnection(to: .candidate) { connection in
            guard let connection else {
                proxy.mirrorsInFlight -= 1
                return
            }
            connection.send(head, body) { part in
                guard case .end = part else { return }
                proxy.mirrorsInFlight -= 1
                proxy.release(connection, to: .candidate)
            }
        }
    }
}
