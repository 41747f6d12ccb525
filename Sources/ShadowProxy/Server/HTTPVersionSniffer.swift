import NIOCore

/// Tells cleartext HTTP/2 with prior knowledge (h2c: what gRPC clients send without TLS) from
/// HTTP/1.1 by the connection's first bytes, and leaves.
///
/// The connection starts as HTTP/1.1 (its handlers are already behind this one, so it is
/// counted, limited and timed out from the moment it is accepted, whatever it sends); when the
/// bytes are the HTTP/2 preface, `http2` swaps those handlers for HTTP/2 ones. The preface,
/// `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, is no valid HTTP/1.1 request's start; the first byte that
/// differs decides HTTP/1.1, so an HTTP/1.1 request never waits for more bytes.
final class HTTPVersionSniffer: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    // @unchecked Sendable: only ever touched on its channel's event loop; it is Sendable only
    // because NIO's pipeline positions (`.after(handler)`) ask for it.
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    private var buffered: ByteBuffer?
    private let http2: (any Channel) throws -> Void

    /// - Parameter http2: replaces the HTTP/1.1 handlers after this one with HTTP/2 ones.
    init(http2: @escaping (any Channel) throws -> Void) {
        self.http2 = http2
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = Self.unwrapInboundIn(data)
        if var buffered = self.buffered {
            buffered.writeBuffer(&incoming)
            incoming = buffered
        }
        let seen = incoming.readableBytesView.prefix(Self.preface.count)
        guard seen.elementsEqual(Self.preface.prefix(seen.count)) else {
            self.decide(context: context, bytes: incoming, configure: { _ in })
            return
        }
        guard seen.count == Self.preface.count else {
            self.buffered = incoming  // a prefix of the preface so far: wait for the rest
            return
        }
        self.decide(context: context, bytes: incoming, configure: self.http2)
    }

    private func decide(context: ChannelHandlerContext, bytes: ByteBuffer, configure: (any Channel) throws -> Void) {
        self.buffered = nil
        do {
            try configure(context.channel)
        } catch {
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(Self.wrapInboundOut(bytes))
        context.fireChannelReadComplete()
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // Closed before a decision (a port scan, a client that gave up): nothing was served.
        self.buffered = nil
        context.fireChannelInactive()
    }
}
