import NIOCore
import NIOHTTP1

/// Turns an HTTP/1.1 upstream connection's bytes into response parts for its
/// ``UpstreamHandler``, handed over by a direct call rather than through the pipeline.
///
/// Sits below the handler, which still hears of the connection's other events (inactive,
/// writability, errors); a parse failure reaches it as an error, as a decoder's would.
final class ResponseReader: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = HTTPClientResponsePart

    private var parser = ResponseParser()
    /// Let go when the reader leaves the pipeline (the handler reaches it through its outlet).
    private var handler: UpstreamHandler?

    init(handler: UpstreamHandler) {
        self.handler = handler
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.handler = nil
    }

    /// A request went out; its answer is the next one on the connection.
    func requestSent(method: HTTPMethod) {
        self.parser.requestSent(method: method)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.parser.feed(Self.unwrapInboundIn(data))
        do {
            // Each event is acted on outside the parser's mutation: acting on one can close the
            // connection, which ends the parser (``channelInactive(context:)``).
            while let event = try self.parser.next() { self.handler?.deliver(event) }
        } catch {
            context.fireErrorCaught(error)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        do {
            if let event = try self.parser.finish() { self.handler?.deliver(event) }
        } catch {
            context.fireErrorCaught(error)
        }
        context.fireChannelInactive()
    }
}

extension UpstreamHandler {
    /// One parsed event of an HTTP/1.1 answer, as its part.
    func deliver(_ event: ResponseParser.Event) {
        switch event {
        case .head(let head): self.deliver(HTTPClientResponsePart.head(head))
        case .body(let bytes): self.deliver(HTTPClientResponsePart.body(bytes))
        case .end(let trailers): self.deliver(HTTPClientResponsePart.end(trailers))
        }
    }
}
