import NIOCore
import NIOHTTP1
import NIOHTTP2
import ShadowCore

/// One multiplexed HTTP/2 connection to an upstream (`h2c://`, or `https://` for gRPC), shared by
/// calls from its event loop: each call gets a stream of its own, decoded into HTTP/1-shaped
/// parts so the call and response handling are the ones HTTP/1.1 connections use. Loop-bound,
/// like its pool, which opens another connection when this one has as many streams open as the
/// upstream allows (its `SETTINGS_MAX_CONCURRENT_STREAMS`).
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
    /// Streams opened here and not yet closed.
    private(set) var openStreams = 0
    /// The upstream's limit on concurrent streams; unlimited until its SETTINGS say otherwise.
    var maxStreams = Int.max
    /// When the last stream closed (for closing a connection no longer needed).
    private(set) var idleSince = NIODeadline.now()

    init(channel: any Channel, multiplexer: NIOHTTP2Handler.StreamMultiplexer, secure: Bool) {
        self.channel = channel
        self.multiplexer = multiplexer
        self.secure = secure
    }

    var isUsable: Bool { !self.goingAway && self.channel.isActive }

    /// Another stream would not have to wait for one of this connection's to close.
    var hasRoom: Bool { self.isUsable && self.openStreams < self.maxStreams }

    func markGoingAway() {
        self.goingAway = true
    }

    /// Takes no new streams and closes once its open ones have finished (no longer needed, or
    /// made with certificates since re-read).
    func retire() {
        self.goingAway = true
        if self.openStreams == 0 { self.channel.close(promise: nil) }
    }

    /// Opens a stream for `call`; `pool` hears when it closes (room for a waiting call). Streams
    /// over the upstream's limit wait in NIO's buffer until one closes.
    func open(_ call: UpstreamCall, pool: UpstreamPool, generation: Int) {
        let loop = self.channel.eventLoop
        let scheme: HTTP2FramePayloadToHTTP1ClientCodec.HTTPProtocol = self.secure ? .https : .http
        self.openStreams += 1
        self.multiplexer.createStreamChannel { stream in
            stream.eventLoop.makeCompletedFuture {
                let pipeline = stream.pipeline.syncOperations
                try pipeline.addHandler(HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: scheme))
                try pipeline.addHandler(UpstreamHandler(plain: false))
            }
        }.hop(to: loop).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let stream):
                stream.closeFuture.hop(to: loop).assumeIsolated().whenComplete { _ in self.streamClosed(pool: pool) }
                guard let handler = try? stream.pipeline.syncOperations.handler(type: UpstreamHandler.self), !call.finished else {
                    stream.close(promise: nil)
                    call.fail(.reset)
                    return
                }
                let connection = UpstreamConnection(channel: stream, handler: handler, pool: pool, generation: generation, isStream: true)
                connection.start(call, inReadBurst: false)
            case .failure:
                self.streamClosed(pool: pool)
                call.fail(.reset, detail: "the upstream's HTTP/2 connection could not open a stream")
            }
        }
    }

    private func streamClosed(pool: UpstreamPool) {
        self.openStreams -= 1
        if self.openStreams == 0 {
            self.idleSince = .now()
            if self.goingAway { self.channel.close(promise: nil) }
        }
        pool.streamClosed()
    }
}

/// Watches an upstream HTTP/2 connection's own frames: its first SETTINGS (the connection is
/// ready once they came, so the stream limit is known before any call picks it), later changes
/// to the stream limit, and a GOAWAY or the close that retires it.
final class HTTP2ConnectionWatcher: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame

    /// The connection closed before the upstream's first SETTINGS: not an HTTP/2 server, or one
    /// that hung up.
    struct ClosedBeforeSettings: Error {}

    /// Completed by the upstream's first SETTINGS; failed if the connection closes before.
    let ready: EventLoopPromise<Void>
    private var settled = false
    /// The upstream's `SETTINGS_MAX_CONCURRENT_STREAMS`, once it named one.
    private(set) var maxStreams: Int?
    var onGoAway: (() -> Void)?
    var onMaxStreams: ((Int) -> Void)?

    init(ready: EventLoopPromise<Void>) {
        self.ready = ready
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data).payload {
        case .goAway:
            self.onGoAway?()
        case .settings(.settings(let settings)):
            for setting in settings where setting.parameter == .maxConcurrentStreams {
                self.maxStreams = setting.value
                self.onMaxStreams?(setting.value)
            }
            self.settle(nil)
        default:
            break
        }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.onGoAway?()
        self.settle(ClosedBeforeSettings())
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // A connect that failed never activates the channel; its pipeline just goes.
        self.settle(ClosedBeforeSettings())
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Not an HTTP/2 peer (a plain HTTP/1.1 server answers the preface with text).
        self.settle(error)
        context.fireErrorCaught(error)
    }

    private func settle(_ error: (any Error)?) {
        guard !self.settled else { return }
        self.settled = true
        if let error { self.ready.fail(error) } else { self.ready.succeed() }
    }
}
