import Logging
import NIOCore
import NIOHTTP2

/// The connection-level end of an h2c client connection: logs what closed it for a protocol
/// error (NIO's HTTP/2 handler has already sent the GOAWAY that says why), and on shutdown tells
/// the client with a GOAWAY to open no more streams while the ones in flight finish.
final class HTTP2ConnectionGuard: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    private let loopContext: LoopContext
    private weak var context: ChannelHandlerContext?
    private var sentGoAway = false

    init(context: LoopContext) {
        self.loopContext = context
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.loopContext.register(http2: self)
        if self.loopContext.shuttingDown { self.goAway() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.loopContext.unregister(http2: self)
        self.context = nil
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

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.loopContext.shared.logger.notice(
            "HTTP/2 client connection closed: protocol error",
            metadata: ["error": "\(error)", "peer": "\(context.channel.remoteAddress.map { "\($0)" } ?? "?")"]
        )
        context.close(promise: nil)
    }
}
