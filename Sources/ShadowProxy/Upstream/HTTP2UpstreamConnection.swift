import NIOCore
import NIOHTTP1
import NIOHTTP2
import ShadowCore

/// One multiplexed HTTP/2 connection to an upstream (`h2c://`, or `https://` for gRPC), shared by every call from its
/// event loop: each call gets a stream of its own, decoded into HTTP/1-shaped parts so the call
/// and response handling are the ones HTTP/1.1 connections use. Loop-bound, like its pool.
///
/// A GOAWAY from the upstream or the connection closing makes it unusable: the next call opens a
/// new connection (streams the upstream already accepted finish on the old one; ones it did not
/// are failed by NIO and reach their calls as resets).
final class HTTP2UpstreamConnection {
    let channel: any Channel
    private let multiplexer: NIOHTTP2Handler.StreamMultiplexer
    /// Over TLS: requests say `:scheme https`.
    private let secure: Bool
    private(set) var goingAway = false

    init(channel: any Channel, multiplexer: NIOHTTP2Handler.StreamMultiplexer, secure: Bool) {
        self.channel = channel
        self.multiplexer = multiplexer
        self.secure = secure
    }

    var isUsable: Bool { !self.goingAway && self.channel.isActive }

    func markGoingAway() {
        self.goingAway = true
    }

    /// Opens a stream for `call` (streams over the peer's `max_concurrent_streams` wait in NIO's
    /// buffer until one closes).
    func open(_ call: UpstreamCall, pool: UpstreamPool, generation: Int) {
        let loop = self.channel.eventLoop
        let scheme: HTTP2FramePayloadToHTTP1ClientCodec.HTTPProtocol = self.secure ? .https : .http
        self.multiplexer.createStreamChannel { stream in
            stream.eventLoop.makeCompletedFuture {
                let pipeline = stream.pipeline.syncOperations
                try pipeline.addHandler(HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: scheme))
                try pipeline.addHandler(UpstreamHandler(plain: false))
            }
        }.hop(to: loop).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let stream):
                guard let handler = try? stream.pipeline.syncOperations.handler(type: UpstreamHandler.self), !call.finished else {
                    stream.close(promise: nil)
                    call.fail(.reset)
                    return
                }
                let connection = UpstreamConnection(channel: stream, handler: handler, pool: pool, generation: generation, isStream: true)
                connection.start(call, inReadBurst: false)
            case .failure:
                call.fail(.reset, detail: "the upstream's HTTP/2 connection could not open a stream")
            }
        }
    }
}

/// Watches an upstream HTTP/2 connection's own frames: a GOAWAY retires it.
final class HTTP2GoAwayWatcher: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame

    var onGoAway: (() -> Void)?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .goAway = Self.unwrapInboundIn(data).payload { self.onGoAway?() }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.onGoAway?()
        context.fireChannelInactive()
    }
}
