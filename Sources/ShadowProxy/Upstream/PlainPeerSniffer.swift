import NIOCore

/// Looks at the first bytes a plain-HTTP upstream sends: a TLS record there (an alert or a
/// handshake) means an `http://` URL points at a TLS server, which deserves that name rather
/// than "invalid HTTP response". Leaves the pipeline after the first read.
final class PlainPeerSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    struct TLSOnPlainConnection: Error {}

    private var passed = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = Self.unwrapInboundIn(data)
        if !self.passed, buffer.readableBytes >= 2, let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
            first == 0x15 || first == 0x16, buffer.getInteger(at: buffer.readerIndex + 1, as: UInt8.self) == 0x03
        {
            context.fireErrorCaught(TLSOnPlainConnection())
            context.close(promise: nil)
            return
        }
        guard !self.passed else { return context.fireChannelRead(data) }
        self.passed = true
        context.fireChannelRead(data)
        // Removed only after the first bytes went on (removing first would drop them).
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
