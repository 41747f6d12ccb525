import NIOCore
import NIOSSL
import NIOTLS

/// Sits behind the TLS handler of a new upstream connection until the handshake ends: completes
/// its promise then (and leaves the pipeline), or fails it with the handshake's error, or, when
/// HTTP/2 was asked for, with ``NoHTTP2`` if the server did not choose `h2` by ALPN.
final class TLSHandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    /// The server finished the handshake without choosing `h2`.
    struct NoHTTP2: Error {}

    let promise: EventLoopPromise<Void>
    private let requiresHTTP2: Bool
    private var done = false

    init(promise: EventLoopPromise<Void>, requiresHTTP2: Bool = false) {
        self.promise = promise
        self.requiresHTTP2 = requiresHTTP2
    }

    func fail(_ error: any Error) {
        guard !self.done else { return }
        self.done = true
        self.promise.fail(error)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted(let negotiated) = event, !self.done {
            if self.requiresHTTP2 && negotiated != "h2" {
                // Not passed on: the HTTP/2 handler behind must not start on an HTTP/1.1 peer.
                self.fail(NoHTTP2())
                return
            }
            self.done = true
            self.promise.succeed()
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.fail(error)
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.fail(NIOSSLError.uncleanShutdown)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.fail(ChannelError.ioOnClosedChannel)
    }

    /// Whether a connect failure came from TLS (handshake, verification, or a peer speaking
    /// TLS on a plain connection) rather than from TCP.
    static func isTLSFailure(_ error: any Error) -> Bool {
        error is NIOSSLError || error is NIOSSLExtraError || error is BoringSSLError || error is PlainPeerSniffer.TLSOnPlainConnection
            || error is NoHTTP2
    }
}
