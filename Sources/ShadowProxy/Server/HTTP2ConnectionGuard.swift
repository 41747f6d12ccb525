import Logging
import NIOCore
import NIOHTTP2
import ShadowCore
import Synchronization

/// The connection-level end of an h2c client connection, as `ProxyHandler` is for an HTTP/1.1
/// one: counts it against `server.max_connections`, closes it after `server.idle_timeout` without
/// a stream open, logs what closed it for a protocol error (NIO's HTTP/2 handler has already sent
/// the GOAWAY that says why), and on shutdown tells the client with a GOAWAY to open no more
/// streams while the ones in flight finish.
final class HTTP2ConnectionGuard: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    private let loopContext: LoopContext
    private weak var context: ChannelHandlerContext?
    private var sentGoAway = false
    private var openStreams = 0
    private var idleTimer: LoopDeadline?

    init(context: LoopContext) {
        self.loopContext = context
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.loopContext.register(http2: self)
        // Counted even when refused (admitConnection counts first), so always uncounted below.
        guard self.loopContext.admitConnection() else {
            context.close(promise: nil)
            return
        }
        self.idleTimer = LoopDeadline(on: context.eventLoop) { [weak self] in self?.close() }
        self.armIdleTimer()
        if self.loopContext.shuttingDown { self.goAway() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.idleTimer?.cancel()
        self.loopContext.unregister(http2: self)
        self.loopContext.shared.statistics.openConnections.subtract(1, ordering: .relaxed)
        self.context = nil
    }

    private func armIdleTimer() {
        let idle = self.loopContext.runtime.configuration.server.idleTimeout
        self.idleTimer?.set(self.openStreams == 0 ? .now() + TimeAmount(idle) : nil)
    }

    /// No new streams: GOAWAY naming the last possible stream, so none in flight is refused.
    func goAway() {
        guard let context = self.context, !self.sentGoAway else { return }
        self.sentGoAway = true
        let frame = HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: .maxID, errorCode: .noError, opaqueData: nil))
        context.writeAndFlush(Self.wrapOutboundOut(frame), promise: nil)
    }

    func close() {
        self.context?.close(promise: nil)
    }

    /// The connection's own frames (SETTINGS, PING, GOAWAY…) end here: NIO has acted on them,
    /// and the HTTP/1.1 handlers still leaving the pipeline behind this one must not see them.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {}

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.loopContext.shared.logger.notice(
            "HTTP/2 client connection closed: protocol error",
            metadata: ["error": "\(error)", "peer": "\(context.channel.remoteAddress.map { "\($0)" } ?? "?")"]
        )
        context.close(promise: nil)
    }

    /// Hears streams open and close (on the connection's event loop), for the idle timeout.
    struct StreamCounter: NIOHTTP2StreamDelegate {
        let connection: NIOLoopBound<HTTP2ConnectionGuard>

        init(_ connection: NIOLoopBound<HTTP2ConnectionGuard>) {
            self.connection = connection
        }

        func streamCreated(_ id: HTTP2StreamID, channel: any Channel) {
            self.connection.value.openStreams += 1
            self.connection.value.armIdleTimer()
        }

        func streamClosed(_ id: HTTP2StreamID, channel: any Channel) {
            self.connection.value.openStreams -= 1
            self.connection.value.armIdleTimer()
        }
    }
}
