import NIOCore

/// Opens an HTTP `CONNECT` tunnel through a forward proxy on a new connection: sends the request
/// when the connection is up, completes `promise` on a 2xx answer, fails it naming the proxy's
/// status otherwise. The pool then removes it and speaks TLS or HTTP through the tunnel.
final class ProxyTunnelHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The proxy would not open the tunnel, or did not speak HTTP.
    struct TunnelError: Error, CustomStringConvertible {
        let reason: String
        var description: String { self.reason }
    }

    let promise: EventLoopPromise<Void>
    private let authority: String
    private var received: ByteBuffer?
    private var done = false
    /// A proxy's answer head is a few hundred bytes; more without an end is not a proxy.
    private static let maxHeadBytes = 16 * 1024

    /// - Parameter authority: `host:port` of the upstream, as the request target.
    init(authority: String, promise: EventLoopPromise<Void>) {
        self.authority = authority
        self.promise = promise
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { self.sendConnect(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.sendConnect(context: context)
        context.fireChannelActive()
    }

    private var sent = false

    private func sendConnect(context: ChannelHandlerContext) {
        guard !self.sent else { return }
        self.sent = true
        let request = "CONNECT \(self.authority) HTTP/1.1\r\nHost: \(self.authority)\r\n\r\n"
        context.writeAndFlush(Self.wrapOutboundOut(context.channel.allocator.buffer(string: request)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.done else { return }
        var buffer = Self.unwrapInboundIn(data)
        if self.received == nil {
            self.received = buffer
        } else {
            self.received!.writeBuffer(&buffer)
        }
        guard let received = self.received else { return }
        let bytes = received.readableBytesView
        guard let end = bytes.firstRange(of: Array("\r\n\r\n".utf8)) else {
            if bytes.count > Self.maxHeadBytes { self.fail(context: context, "the proxy's answer to CONNECT has no end") }
            return
        }
        let statusLine = String(decoding: bytes[bytes.startIndex..<end.lowerBound].prefix { $0 != 13 }, as: UTF8.self)
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            return self.fail(context: context, "the proxy did not answer CONNECT with HTTP ('\(statusLine.prefix(80))')")
        }
        guard (200..<300).contains(status) else {
            let hint = status == 407 ? " (the proxy wants credentials, which shadowd does not send)" : ""
            return self.fail(
                context: context,
                "the proxy refused CONNECT \(self.authority): \(statusLine.dropFirst(parts[0].count + 1).prefix(80))\(hint)"
            )
        }
        // A server speaks only after the client (TLS ClientHello, HTTP request): bytes past the
        // head here would be a broken proxy.
        guard end.upperBound == bytes.endIndex else { return self.fail(context: context, "the proxy sent bytes after its CONNECT answer") }
        self.done = true
        self.received = nil
        self.promise.succeed()
    }

    private func fail(context: ChannelHandlerContext, _ reason: String) {
        guard !self.done else { return }
        self.done = true
        self.promise.fail(TunnelError(reason: reason))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !self.done {
            self.done = true
            self.promise.fail(TunnelError(reason: "the proxy closed the connection before opening the tunnel"))
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.fail(context: context, "the connection to the proxy failed: \(error)")
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if !self.done {
            self.done = true
            self.promise.fail(ChannelError.ioOnClosedChannel)
        }
    }
}
