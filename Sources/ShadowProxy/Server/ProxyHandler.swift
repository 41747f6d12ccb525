import Logging
import Metrics
import NIOCore
import NIOHTTP1
import ShadowCore
import Synchronization

/// One client connection: streams each request to the baseline as it arrives and its answer
/// back, and hands copies to the candidates' shadow lanes once the baseline has the whole request.
///
/// The client only ever sees the baseline's bytes (or a sidecar error when the baseline fails);
/// nothing on this path waits for a candidate, the writer or a lock held by either.
final class ProxyHandler: ChannelInboundHandler, RemovableChannelHandler, UpstreamResponseDelegate {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    enum State {
        case idle
        /// Reading the rest of a request that will get an error response.
        case rejecting(SidecarError)
        /// The request goes to the baseline (its body may still be arriving: ``upload``) and the
        /// answer comes back.
        case forwarding
        case closed
    }

    /// A request whose body is still streaming to the baseline, with the copy kept for the mirror.
    struct IncomingRequest {
        var head: HTTPRequestHead
        var route: SidecarRuntime.Route
        /// The body as the mirror sees it; nil when empty or once ``bodySize`` passed
        /// `limits.mirror_max_body` (it only grows, so the copy never restarts).
        var body: ByteBuffer?
        var bodySize = 0
        var receivedAtMicros: Int64
        /// Held whole until it ends instead of streamed: the experiment's arm comes from a body
        /// field, or the serving treatment rewrites the body. ``body`` then keeps every byte (up
        /// to `limits.max_request_body`), not only the mirror's share.
        var held = false
    }

    let loopContext: LoopContext
    var state = State.idle
    /// The exchange in progress (or the last one, while idle).
    var current = ClientExchange()
    /// Reading from the client is paused because the baseline cannot take the upload faster.
    private var uploadPaused = false
    /// Reading from the client is paused because too many pipelined requests wait.
    private var pipelineFull = false
    /// Whether the channel reads on its own (`autoRead`), as the two reasons above last set it.
    private var readingPaused = false
    /// Requests the client pipelined behind the one being answered.
    private var pipelined = PipelinedRequests()
    /// ``deliverPipelined()`` is running: an answer ending within it does not start it again.
    private var deliveringPipelined = false
    var context: ChannelHandlerContext?
    /// A request (or the rest of one) must arrive before this; nil while the baseline has it all.
    private var requestTimer: LoopDeadline?
    /// The serving arm's timeout: the whole answer from the end of the request, then the silence
    /// between its chunks. One per connection, moved per request (a timer per call scheduled
    /// and cancelled a task on the loop's timer queue for every request).
    private var baselineTimer: LoopDeadline?
    /// A baseline call waiting for the end of the current read burst to be dispatched.
    var pendingDispatch: (call: UpstreamCall, pool: UpstreamPool, connectTimeout: TimeAmount)?
    private var closeWhenDone = false
    /// The client's address as `X-Forwarded-For` gives it, read once per connection: the channel's
    /// address getter takes a lock and `inet_ntop` formats it with `sprintf` (~2% of the event
    /// loop when it ran twice per request).
    private var peerAddress: String??

    /// The client's IP address, or nil when the channel has none (a Unix socket, or closed).
    func peer(_ context: ChannelHandlerContext) -> String? {
        if let known = self.peerAddress { return known }
        let address = context.channel.remoteAddress?.ipAddress
        self.peerAddress = .some(address)
        return address
    }

    /// On an HTTP/2 stream: one exchange; its connection is counted and limited by
    /// ``HTTP2ConnectionGuard``, not here.
    let isStream: Bool

    init(loopContext: LoopContext, stream: Bool = false) {
        self.loopContext = loopContext
        self.isStream = stream
    }

    var limits: LimitsConfiguration { self.loopContext.runtime.configuration.limits }

    // MARK: - Connection lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // Strong (no side table for the handler): handlerRemoved cancels and drops the timer.
        self.requestTimer = LoopDeadline(on: context.eventLoop) { self.requestTimedOut() }
        self.baselineTimer = LoopDeadline(on: context.eventLoop) { self.current.call?.cancel(with: .timeout) }
        self.loopContext.register(self)
        if !self.isStream, !self.loopContext.admitConnection() {
            self.state = .closed
            // The initializer adds this handler before the channel is registered and active;
            // a close issued then can fail, leaving the connection open and counted. Close it
            // once it is active.
            if context.channel.isActive {
                context.close(promise: nil)
            } else {
                self.refusedBeforeActive = true
            }
            return
        }
        self.armRequestTimer()
    }

    func channelActive(context: ChannelHandlerContext) {
        if self.refusedBeforeActive {
            context.close(promise: nil)
            return
        }
        context.fireChannelActive()
    }

    /// Over `server.max_connections` when added: closed as soon as it is active.
    private var refusedBeforeActive = false

    func handlerRemoved(context: ChannelHandlerContext) {
        self.requestTimer?.cancel()
        self.requestTimer = nil
        self.baselineTimer?.cancel()
        self.baselineTimer = nil
        self.loopContext.unregister(self)
        if !self.isStream { self.loopContext.shared.statistics.openConnections.subtract(1, ordering: .relaxed) }
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        let wasForwarding: Bool
        if case .forwarding = self.state { wasForwarding = true } else { wasForwarding = false }
        self.state = .closed
        self.pipelined.removeAll()
        if wasForwarding, let call = self.current.call {
            // A client that read a stream's final event ([DONE]) has the whole answer: real
            // clients (the official openai package) close right there, before the terminating
            // chunk. That pair is complete and compared; any other leaving is the client's doing.
            if self.current.record != nil, self.current.upload == nil, self.current.answer.capturedAll,
                ServerSentEvents.endsWithFinalEvent(self.current.answer.captured)
            {
                self.finishBaseline(error: nil)
            }
            // Stop the baseline call; the shadow copies already sent are still recorded.
            call.cancel(with: .clientClosed)
        }
        context.fireChannelInactive()
    }

    /// A request (or the rest of one) must arrive within the idle timeout; this also cuts
    /// clients that dribble headers or bodies byte by byte.
    private func armRequestTimer() {
        self.requestTimer?.set(.now() + TimeAmount(self.loopContext.runtime.configuration.server.idleTimeout))
    }

    private func requestTimedOut() {
        switch self.state {
        case .idle:
            self.context?.close(promise: nil)
        case .rejecting:
            self.respond(.requestTimeout(), close: true)
        case .forwarding:
            if self.current.upload != nil { self.abortUpload(.requestTimeout()) }
        case .closed:
            // The answer was written but never taken (an HTTP/2 client that never opens its
            // flow-control window, an HTTP/1.1 one that stopped reading): let it go.
            self.context?.close(promise: nil)
        }
    }

    /// The serving arm's answer (or its next chunk) must arrive within its timeout from now.
    func armBaselineTimer() {
        self.baselineTimer?.set(.now() + self.current.baselineTimeout)
    }

    /// No serving call is waiting: a new one has not reached its timed part yet, or it ended.
    func disarmBaselineTimer() {
        self.baselineTimer?.set(nil)
    }

    func closeWhenIdle() {
        self.closeWhenDone = true
        if case .idle = self.state { self.context?.close(promise: nil) }
    }

    func forceClose() {
        self.context?.close(promise: nil)
    }

    // MARK: - Requests

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = Self.unwrapInboundIn(data)
        guard self.pipelined.mustWait else {
            self.receive(part, context: context)
            return
        }
        self.pipelined.hold(.part(part))
        if self.pipelined.isFull { self.setPipelineFull(true) }
    }

    private func receive(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            self.receiveHead(head, context: context)
        case .body(let buffer):
            self.receiveBody(buffer)
        case .end:
            self.receiveEnd()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.dispatchPendingBaseline()
        // One write to the baseline per read burst of a streaming upload.
        if self.current.upload != nil { self.current.call?.flush() }
        context.fireChannelReadComplete()
    }

    /// Sends the baseline call that waited for the end of the read burst (or of its request).
    func dispatchPendingBaseline() {
        guard let (call, pool, connectTimeout) = self.pendingDispatch else { return }
        self.pendingDispatch = nil
        // Cancelled within the burst (a broken or oversized body): no connection was opened.
        if !call.finished { pool.execute(call, connectTimeout: connectTimeout) }
    }

    private func receiveHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        guard case .idle = self.state else { return }
        self.loopContext.shared.statistics.requests.add(1, ordering: .relaxed)
        let now = SidecarClock.wallMicros()
        let isGRPC = GRPCSemantics.isGRPC(contentType: head.headers.first(name: "content-type"))
        self.current = ClientExchange(
            keepAlive: head.isKeepAlive && !self.closeWhenDone,
            clientVersion: head.version,
            isGRPC: isGRPC,
            grpcTimeout: isGRPC ? GRPCSemantics.timeout(head.headers.first(name: "grpc-timeout")) : nil,
            requestID: Self.requestID(from: head.headers, random: &self.loopContext.random, atMicros: now),
            routeMetrics: self.loopContext.runtime.unroutedMetrics
        )

        if let error = Self.framingError(head, maxBody: self.limits.maxRequestBody) {
            self.reject(error, routeName: "-", atMicros: now, immediately: error.closesConnection)
            return
        }
        guard let route = self.loopContext.runtime.route(for: head.uri) else {
            self.loopContext.shared.coverage.add(route: "-", reason: .unrouted, atMicros: now)
            self.state = .rejecting(.noRoute(head.uri))
            return
        }
        if head.headers[canonicalForm: "expect"].contains(where: { $0.lowercased() == "100-continue" }) {
            context.writeAndFlush(Self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
        }
        self.current.routeMetrics = route.metrics
        self.current.route = route
        var request = IncomingRequest(head: head, route: route, receivedAtMicros: now)
        if let experiment = route.experiment {
            if case .header(let name) = experiment.configuration.key {
                self.current.serving = Self.serving(key: head.headers.first(name: name), experiment: experiment)
                self.current.serving?.relay?.target = self
                request.held = self.current.serving?.treatmentIndex.map { !route.targets[$0].rewrite.isEmpty } ?? false
            } else {
                request.held = true
            }
        }
        self.state = .forwarding
        self.current.upload = request
        if !request.held { self.startBaseline(request, context: context) }
    }

    private func receiveBody(_ buffer: ByteBuffer) {
        guard case .forwarding = self.state, var request = self.current.upload else { return }
        request.bodySize += buffer.readableBytes
        if request.bodySize > self.limits.maxRequestBody {
            // Only a chunked body gets here: a declared length above the limit never starts.
            self.abortUpload(.bodyTooLarge(limit: self.limits.maxRequestBody))
            return
        }
        if !request.route.targets.isEmpty {
            // Avoid a copy-on-write of the whole copy: take the stored reference out first.
            self.current.upload = nil
            if request.bodySize > self.limits.mirrorMaxBody && !request.held {
                request.body = nil
            } else if request.body == nil {
                request.body = buffer
            } else {
                var incoming = buffer
                request.body!.writeBuffer(&incoming)
            }
        }
        self.current.upload = request
        // A held request starts once it ended; otherwise the baseline already answered and the
        // rest is dropped.
        guard !request.held, let call = self.current.call else { return }
        call.write(.body(.byteBuffer(buffer)))
        if !call.acceptsMoreRequestBytes { self.setUploadPaused(true) }
    }

    private func receiveEnd() {
        switch self.state {
        case .forwarding:
            // What the client sends from now on waits for this request's answer.
            self.pipelined.requestEnded()
            guard let request = self.current.upload, let context = self.context else { return }
            self.current.upload = nil
            self.requestTimer?.set(nil)
            self.setUploadPaused(false)
            if request.held { self.startHeld(request, context: context) }
            self.finishUpload(request)
        case .rejecting(let error):
            self.pipelined.requestEnded()
            self.respond(error, close: error.closesConnection)
        default:
            break
        }
    }

    /// The upload cannot go on (its body grew past the limit mid-stream, or it stalled): the
    /// baseline call is abandoned, the client is told why and the connection closed.
    private func abortUpload(_ error: SidecarError) {
        guard let request = self.current.upload else { return }
        self.current.upload = nil
        self.loopContext.shared.statistics.rejected.add(1, ordering: .relaxed)
        self.loopContext.shared.coverage.add(route: request.route.configuration.name, reason: .rejected, atMicros: request.receivedAtMicros)
        let answered = self.current.responseStarted
        // Closed first, so the cancelled call's failure writes nothing to the client.
        self.state = .closed
        self.current.call?.cancel(with: .clientClosed)
        if answered {
            self.context?.close(promise: nil)
        } else {
            self.respond(error, close: true)
        }
    }

    /// Stops or resumes reading the client while the baseline cannot take the upload faster.
    private func setUploadPaused(_ paused: Bool) {
        self.uploadPaused = paused
        self.updateReading()
    }

    /// Stops or resumes reading the client while too many pipelined requests wait.
    private func setPipelineFull(_ full: Bool) {
        self.pipelineFull = full
        self.updateReading()
    }

    private func updateReading() {
        let paused = self.uploadPaused || self.pipelineFull
        guard self.readingPaused != paused, let context = self.context else { return }
        self.readingPaused = paused
        try? context.channel.syncOptions?.setOption(.autoRead, value: !paused)
        if !paused { context.read() }
    }

    /// Hands on what the client pipelined behind an answer that just ended, up to the end of the
    /// next request (whose answer the rest then waits for), and sends that request's baseline
    /// call as the end of a read burst would.
    private func deliverPipelined() {
        guard !self.deliveringPipelined, !self.pipelined.isEmpty, let context = self.context else { return }
        self.deliveringPipelined = true
        defer { self.deliveringPipelined = false }
        while let event = self.pipelined.next() {
            if case .closed = self.state {
                self.pipelined.removeAll()
                break
            }
            switch event {
            case .part(let part): self.receive(part, context: context)
            case .error(let error): self.receiveMalformed(error, context: context)
            }
        }
        if !self.pipelined.isFull { self.setPipelineFull(false) }
        self.dispatchPendingBaseline()
        if self.current.upload != nil { self.current.call?.flush() }
    }

    func upstreamWritable() {
        if self.current.upload != nil, self.current.call?.acceptsMoreRequestBytes ?? true { self.setUploadPaused(false) }
    }

    private func reject(_ error: SidecarError, routeName: String, atMicros: Int64, immediately: Bool) {
        self.loopContext.shared.statistics.rejected.add(1, ordering: .relaxed)
        self.loopContext.shared.coverage.add(route: routeName, reason: .rejected, atMicros: atMicros)
        if immediately {
            self.respond(error, close: true)
        } else {
            self.state = .rejecting(error)
        }
    }

    // MARK: - Responses written by the sidecar itself

    func respond(_ error: SidecarError, close: Bool) {
        guard let context = self.context else { return }
        let shouldClose = close || !self.current.keepAlive
        if self.current.isGRPC {
            self.respondGRPC(error, close: shouldClose, context: context)
            return
        }
        var headers = HTTPHeaders()
        let body = error.jsonBody(requestID: self.current.requestID)
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(body.utf8.count))
        headers.add(name: "x-request-id", value: self.current.requestID)
        headers.add(name: "x-shadowd-error", value: error.code)
        headers.add(name: "date", value: HTTPDate.format(secondsSince1970: SidecarClock.wallMicros() / 1_000_000))
        headers.add(name: "cache-control", value: "no-store")
        if shouldClose { headers.add(name: "connection", value: "close") }
        let head = HTTPResponseHead(version: self.current.clientVersion, status: error.status, headers: headers)
        context.write(Self.wrapOutboundOut(.head(head)), promise: nil)
        self.current.routeMetrics?.countResponse(status: Int(error.status.code))
        context.write(Self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        self.finishResponse(context: context, close: shouldClose)
    }

    /// Ends the answer (with the baseline's trailers: gRPC's status travels there).
    func finishResponse(context: ChannelHandlerContext, close: Bool, trailers: HTTPHeaders? = nil) {
        // An answer that ends before its request did leaves unread body on the connection.
        let close = close || self.current.upload != nil
        self.current.upload = nil
        self.pipelined.answerEnded()
        self.setUploadPaused(false)
        if close || self.closeWhenDone {
            self.state = .closed
            // Requests pipelined behind this answer are not answered: the connection closes.
            self.pipelined.removeAll()
            // Closed once the answer is out, or at the idle timeout if the client never takes it.
            self.armRequestTimer()
            context.writeAndFlush(Self.wrapOutboundOut(.end(trailers))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        } else {
            self.state = .idle
            context.writeAndFlush(Self.wrapOutboundOut(.end(trailers)), promise: nil)
            self.armRequestTimer()
            self.deliverPipelined()
        }
    }

    /// Malformed HTTP from the client: 431 for oversized headers, 400 otherwise, then close.
    /// Nothing of such a request reaches an upstream.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.close(promise: nil)
            return
        }
        guard self.pipelined.mustWait else {
            self.receiveMalformed(parserError, context: context)
            return
        }
        self.pipelined.hold(.error(parserError))
    }

    private func receiveMalformed(_ parserError: HTTPParserError, context: ChannelHandlerContext) {
        switch self.state {
        case .idle, .rejecting:
            self.loopContext.shared.statistics.rejected.add(1, ordering: .relaxed)
            self.loopContext.shared.coverage.add(route: "-", reason: .rejected, atMicros: SidecarClock.wallMicros())
            self.current.keepAlive = false
            if parserError == .headerOverflow {
                self.respond(
                    SidecarError(
                        status: .requestHeaderFieldsTooLarge,
                        code: "headers_too_large",
                        message: "request headers exceed limits.max_header_bytes",
                        closesConnection: true
                    ),
                    close: true
                )
            } else {
                self.respond(.badRequest("malformed HTTP request: \(parserError)"), close: true)
            }
        case .forwarding where self.current.upload != nil && !self.current.responseStarted:
            // A broken chunked body: the baseline must not act on a truncated request.
            self.current.upload = nil
            self.loopContext.shared.statistics.rejected.add(1, ordering: .relaxed)
            self.state = .closed
            self.current.call?.cancel(with: .clientClosed)
            self.current.keepAlive = false
            self.respond(.badRequest("malformed HTTP request body: \(parserError)"), close: true)
        case .forwarding, .closed:
            context.close(promise: nil)
        }
    }
}
