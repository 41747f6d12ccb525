import NIOCore
import NIOHTTP1
import NIOSSL
import ShadowCore

/// A keep-alive HTTP/1.1 connection to one upstream, owned by a pool on one event loop; or one
/// HTTP/2 stream on a shared connection (``isStream``), which carries one call and closes.
final class UpstreamConnection {
    let channel: any Channel
    /// An HTTP/2 stream: never returned to the idle pool.
    let isStream: Bool
    private let handler: UpstreamHandler
    private let pool: UpstreamPool
    /// The pool's generation when connected: an older one is closed instead of reused.
    let generation: Int
    private(set) var isClosed = false
    /// When it went idle in the pool; stale connections are not reused.
    var idleSince: NIODeadline = .now()

    init(channel: any Channel, handler: UpstreamHandler, pool: UpstreamPool, generation: Int, isStream: Bool = false) {
        self.channel = channel
        self.isStream = isStream
        self.handler = handler
        self.pool = pool
        self.generation = generation
        handler.connection = self
    }

    /// Gives the connection to `call`: what it has written so far goes out, response parts go
    /// to it.
    func start(_ call: UpstreamCall, inReadBurst: Bool) {
        self.handler.call = call
        call.attach(self, inReadBurst: inReadBurst)
    }

    func write(_ part: HTTPClientRequestPart, flush: Bool) {
        if case .head(let head) = part { self.handler.expectsKeepAlive = head.isKeepAlive }
        if let outlet = self.handler.outlet {
            outlet.write(part, flush: flush)
        } else if flush {
            self.channel.writeAndFlush(part, promise: nil)
        } else {
            self.channel.write(part, promise: nil)
        }
    }

    func flush() {
        if let outlet = self.handler.outlet {
            outlet.flush()
        } else {
            self.channel.flush()
        }
    }

    func setAutoRead(_ enabled: Bool) {
        self.channel.setOption(ChannelOptions.autoRead, value: enabled).whenFailure { _ in }
        if enabled { self.channel.read() }
    }

    func close() {
        guard !self.isClosed else { return }
        self.isClosed = true
        self.channel.close(promise: nil)
    }

    // MARK: - From the handler

    func responseEnded(keepAlive: Bool) {
        // An answer framed by the connection's close ends as it closes: never back to the pool.
        if keepAlive && !self.isClosed && !self.isStream && self.channel.isActive {
            self.pool.release(self)
        } else {
            self.close()
        }
    }

    func closed() {
        self.isClosed = true
        self.pool.forget(self)
    }

    func tlsFailed(_ detail: String) {
        self.pool.noteFailure(UpstreamPool.Failure(kind: .tls, detail: detail))
    }
}

/// Turns decoded response parts into events for the current call.
final class UpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    weak var connection: UpstreamConnection?
    var call: UpstreamCall?
    var expectsKeepAlive = true
    private var responseKeepAlive = true
    private var sawHead = false
    /// Responses completed on this connection: a fresh plain connection closed before any byte
    /// is worth a hint (a TLS server on an `http://` URL closes just so).
    private var completedResponses = 0
    private let plain: Bool
    /// Where requests go as bytes on an HTTP/1.1 connection; nil on an HTTP/2 stream (whose
    /// codec takes request parts).
    let outlet: RequestOutlet?

    init(plain: Bool, outlet: RequestOutlet? = nil) {
        self.plain = plain
        self.outlet = outlet
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let call = self.call else { return }
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.sawHead = true
            self.responseKeepAlive = head.isKeepAlive
            call.deliverHead(head)
        case .body(let buffer):
            call.deliverBody(buffer)
        case .end(let trailers):
            self.call = nil
            self.sawHead = false
            // Reuse only when both sides agreed to keep the connection, the whole request went
            // out (an early answer leaves the rest of an upload unsent) and the call was not
            // abandoned (an abandoned call has already closed the connection).
            let reusable = self.expectsKeepAlive && self.responseKeepAlive && call.requestEnded && !call.finished
            self.completedResponses += 1
            call.complete(trailers: trailers)
            self.connection?.responseEnded(keepAlive: reusable)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.call?.deliverReadComplete()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { self.call?.deliverWritable() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let call = self.call {
            self.call = nil
            let silentFirst = self.plain && !self.sawHead && self.completedResponses == 0
            call.fail(.reset, detail: silentFirst ? "it closed a new connection without a byte (a TLS server? then use https://)" : nil)
        }
        self.connection?.closed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A TLS peer closing without close_notify: the connection's end decides (a response
        // framed by EOF ends there; anything else is a reset).
        if case NIOSSLError.uncleanShutdown? = error as? NIOSSLError { return }
        if let call = self.call {
            self.call = nil
            if TLSHandshakeWaiter.isTLSFailure(error) {
                let detail = UpstreamTLS.describe(error)
                self.connection?.tlsFailed(detail)
                call.fail(.tls, detail: detail)
            } else {
                // EOF in the middle of a response is the upstream closing early, not bad HTTP.
                let parserError = error as? HTTPParserError
                call.fail(parserError == nil || parserError == .invalidEOFState ? .reset : .invalidResponse)
            }
        }
        context.close(promise: nil)
    }
}
