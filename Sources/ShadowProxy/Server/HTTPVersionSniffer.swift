import NIOCore

/// Tells cleartext HTTP/2 with prior knowledge (h2c: what gRPC clients send without TLS) from
/// HTTP/1.1 by the connection's first bytes, sets the pipeline up for the one it is, and leaves.
///
/// An HTTP/2 client opens with the 24-byte preface `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, which no
/// valid HTTP/1.1 request starts like; the first byte that differs decides HTTP/1.1, so an
/// HTTP/1.1 request is never delayed waiting for more bytes.
final class HTTPVersionSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    private var buffered: ByteBuffer?
    private let http1: (any Channel) throws -> Void
    private let http2: (any Channel) throws -> Void

    /// - Parameters:
    ///   - http1: adds the HTTP/1.1 handlers after this one.
    ///   - http2: adds the HTTP/2 handlers after this one.
    init(http1: @escaping (any Channel) throws -> Void, http2: @escaping (any Channel) throws -> Void) {
        self.http1 = http1
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
            self.decide(context: context, bytes: incoming, configure: self.http1)
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
