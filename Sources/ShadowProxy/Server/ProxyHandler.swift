import Logging
import Metrics
import NIOCore
import NIOHTTP1
import ShadowCore
import ShadowStore
import Synchronization

/// One client connection: streams each request to the baseline as it arrives and its answer
/// back, and hands copies to the candidates' shadow lanes once the baseline has the whole request.
///
/// The client only ever sees the baseline's bytes (or a sidecar error when the baseline fails);
/// nothing on this path waits for a candidate, the writer or a lock held by either.
final class ProxyHandler: ChannelInboundHandler, UpstreamResponseDelegate {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
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
    }

    let loopContext: LoopContext
    private var state = State.idle
    /// The route of the request being forwarded.
    var route: SidecarRuntime.Route?
    /// The request while its body is still arriving; nil once it ended.
    private var upload: IncomingRequest?
    /// Reading from the client is paused because the baseline cannot take the upload faster.
    private var uploadPaused = false
    var context: ChannelHandlerContext?
    /// A request (or the rest of one) must arrive before this; nil while the baseline has it all.
    private var requestTimer: LoopDeadline?
    /// A baseline call waiting for the end of the current read burst to be dispatched.
    private var pendingDispatch: (call: UpstreamCall, pool: UpstreamPool, connectTimeout: TimeAmount)?
    private var closeWhenDone = false

    // The exchange being forwarded.
    var call: UpstreamCall?
    var exchange: PendingExchange?
    private var keepAlive = true
    private var clientVersion = HTTPVersion.http1_1
    var responseStarted = false
    var baselineStarted = NIODeadline.now()
    var baselineResult = ArmResult(version: "")
    private var captureLimit = 0
    var captured: [UInt8] = []
    var seenBytes = 0
    var requestID = ""
    var baselineTimeout = TimeAmount.seconds(30)
    /// Metric handles of the request's route (the unrouted ones before one matched).
    private var routeMetrics: SidecarMetrics.RouteHandles?
    /// The request's place in its route's experiment, if the route has one.
    var serving: Serving?

    init(loopContext: LoopContext) {
        self.loopContext = loopContext
    }

    var limits: LimitsConfiguration { self.loopContext.runtime.configuration.limits }

    // MARK: - Connection lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.requestTimer = LoopDeadline(on: context.eventLoop) { [weak self] in self?.requestTimedOut() }
        self.loopContext.register(self)
        let statistics = self.loopContext.shared.statistics
        let open = statistics.openConnections.add(1, ordering: .relaxed).newValue
        let limit = self.loopContext.runtime.configuration.server.maxConnections
        if open > limit {
            // Thousands of idle keep-alive connections must not exhaust file descriptors or memory.
            let refused = statistics.refusedConnections.add(1, ordering: .relaxed).newValue
            if refused == 1 || refused % 1_000 == 0 {
                self.loopContext.shared.logger.warning(
                    "connection limit reached: closing new client connections",
                    metadata: ["server.max_connections": "\(limit)", "shadow.connections.refused": "\(refused)"]
                )
            }
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
        self.loopContext.unregister(self)
        self.loopContext.shared.statistics.openConnections.subtract(1, ordering: .relaxed)
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        let wasForwarding: Bool
        if case .forwarding = self.state { wasForwarding = true } else { wasForwarding = false }
        self.state = .closed
        if wasForwarding, let call = self.call {
            // A client that read a stream's final event ([DONE]) has the whole answer: real
            // clients (the official openai package) close right there, before the terminating
            // chunk. That pair is complete and compared; any other leaving is the client's doing.
            if self.exchange != nil, self.upload == nil, self.captured.count == self.seenBytes,
                ServerSentEvents.endsWithFinalEvent(self.captured)
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
            if self.upload != nil { self.abortUpload(.requestTimeout()) }
        case .closed:
            break
        }
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
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.receiveHead(head, context: context)
        case .body(let buffer):
            self.receiveBody(buffer)
        case .end:
            self.receiveEnd()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if let (call, pool, connectTimeout) = self.pendingDispatch {
            self.pendingDispatch = nil
            // Cancelled within the burst (a broken or oversized body): no connection was opened.
            if !call.finished { pool.execute(call, connectTimeout: connectTimeout) }
        }
        // One write to the baseline per read burst of a streaming upload.
        if self.upload != nil { self.call?.flush() }
        context.fireChannelReadComplete()
    }

    private func receiveHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        guard case .idle = self.state else { return }
        self.loopContext.shared.statistics.requests.add(1, ordering: .relaxed)
        self.keepAlive = head.isKeepAlive && !self.closeWhenDone
        self.clientVersion = head.version
        let now = wallClockMicros()
        self.requestID = Self.requestID(from: head.headers, random: &self.loopContext.random, atMicros: now)
        self.routeMetrics = self.loopContext.runtime.unroutedMetrics
        self.route = nil
        self.serving = nil

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
        self.routeMetrics = route.metrics
        self.route = route
        self.serving = route.experiment.map { Self.serving(head, experiment: $0) }
        self.serving?.relay?.target = self
        let request = IncomingRequest(head: head, route: route, receivedAtMicros: now)
        self.state = .forwarding
        self.upload = request
        self.startBaseline(request, context: context)
    }

    private func receiveBody(_ buffer: ByteBuffer) {
        guard case .forwarding = self.state, var request = self.upload else { return }
        request.bodySize += buffer.readableBytes
        if request.bodySize > self.limits.maxRequestBody {
            // Only a chunked body gets here: a declared length above the limit never starts.
            self.abortUpload(.bodyTooLarge(limit: self.limits.maxRequestBody))
            return
        }
        if !request.route.targets.isEmpty {
            // Avoid a copy-on-write of the whole copy: take the stored reference out first.
            self.upload = nil
            if request.bodySize > self.limits.mirrorMaxBody {
                request.body = nil
            } else if request.body == nil {
                request.body = buffer
            } else {
                var incoming = buffer
                request.body!.writeBuffer(&incoming)
            }
        }
        self.upload = request
        guard let call = self.call else { return }  // the baseline already answered; the rest is dropped
        call.write(.body(.byteBuffer(buffer)))
        if !call.acceptsMoreRequestBytes { self.setUploadPaused(true) }
    }

    private func receiveEnd() {
        switch self.state {
        case .forwarding:
            guard let request = self.upload else { return }
            self.upload = nil
            self.requestTimer?.set(nil)
            self.setUploadPaused(false)
            self.finishUpload(request)
        case .rejecting(let error):
            self.respond(error, close: error.closesConnection)
        default:
            break
        }
    }

    /// The upload cannot go on (its body grew past the limit mid-stream, or it stalled): the
    /// baseline call is abandoned, the client is told why and the connection closed.
    private func abortUpload(_ error: SidecarError) {
        guard let request = self.upload else { return }
        self.upload = nil
        self.loopContext.shared.statistics.rejected.add(1, ordering: .relaxed)
        self.loopContext.shared.coverage.add(route: request.route.configuration.name, reason: .rejected, atMicros: request.receivedAtMicros)
        let answered = self.responseStarted
        // Closed first, so the cancelled call's failure writes nothing to the client.
        self.state = .closed
        self.call?.cancel(with: .clientClosed)
        if answered {
            self.context?.close(promise: nil)
        } else {
            self.respond(error, close: true)
        }
    }

    /// Stops or resumes reading the client while the baseline cannot take the upload faster.
    private func setUploadPaused(_ paused: Bool) {
        guard self.uploadPaused != paused, let context = self.context else { return }
        self.uploadPaused = paused
        try? context.channel.syncOptions?.setOption(.autoRead, value: !paused)
        if !paused { context.read() }
    }

    func upstreamWritable() {
        if self.upload != nil, self.call?.acceptsMoreRequestBytes ?? true { self.setUploadPaused(false) }
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

    private func respond(_ error: SidecarError, close: Bool) {
        guard let context = self.context else { return }
        let shouldClose = close || !self.keepAlive
        var headers = HTTPHeaders()
        let body = error.jsonBody(requestID: self.requestID)
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(body.utf8.count))
        headers.add(name: "x-request-id", value: self.requestID)
        headers.add(name: "x-shadowd-error", value: error.code)
        headers.add(name: "date", value: HTTPDate.format(secondsSince1970: wallClockMicros() / 1_000_000))
        headers.add(name: "cache-control", value: "no-store")
        if shouldClose { headers.add(name: "connection", value: "close") }
        let head = HTTPResponseHead(version: self.clientVersion, status: error.status, headers: headers)
        context.write(Self.wrapOutboundOut(.head(head)), promise: nil)
        self.routeMetrics?.countResponse(status: Int(error.status.code))
        context.write(Self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        self.finishResponse(context: context, close: shouldClose)
    }

    private func finishResponse(context: ChannelHandlerContext, close: Bool) {
        // An answer that ends before its request did leaves unread body on the connection.
        let close = close || self.upload != nil
        self.upload = nil
        self.setUploadPaused(false)
        if close || self.closeWhenDone {
            self.state = .closed
            context.writeAndFlush(Self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        } else {
            self.state = .idle
            context.writeAndFlush(Self.wrapOutboundOut(.end(nil)), promise: nil)
            self.armRequestTimer()
        }
    }

    // MARK: - Forwarding

    /// Sends the head to the baseline at once; the body follows part by part as it arrives.
    private func startBaseline(_ request: IncomingRequest, context: ChannelHandlerContext) {
        let configuration = request.route.configuration
        let framing: UpstreamFraming =
            if let length = request.head.headers.first(name: "content-length").flatMap({ Int($0) }) {
                .length(length)
            } else if request.head.headers.contains(name: "transfer-encoding") {
                .chunked
            } else {
                .length(0)
            }
        let treatment = self.serving?.treatmentIndex
        let target = treatment.map { request.route.targets[$0] }
        var baselineHead = Self.upstreamHead(
            request.head,
            target: target?.url ?? configuration.baseline.url,
            requestID: self.requestID,
            peer: context.channel.remoteAddress?.ipAddress,
            framing: framing,
            shadow: false
        )
        if let treatment {
            request.route.targetHeaders[treatment].apply(to: &baselineHead)
        } else if !request.route.baselineHeaders.isEmpty {
            request.route.baselineHeaders.apply(to: &baselineHead)
        }
        self.responseStarted = false
        self.captured = []
        self.seenBytes = 0
        self.captureLimit = 0
        self.baselineResult = ArmResult(version: target?.version ?? configuration.baseline.version)
        self.baselineResult.price = target.map { $0.cost } ?? configuration.baseline.cost
        self.baselineStarted = .now()
        self.baselineTimeout = TimeAmount(target?.timeout ?? configuration.baseline.timeout)
        let call = UpstreamCall(delegate: self.serving?.relay ?? self)
        self.call = call
        call.write(.head(baselineHead))
        let pool =
            treatment.map { self.loopContext.servingPool(for: request.route, candidate: $0) } ?? self.loopContext.baselinePool(for: request.route)
        let connectTimeout = TimeAmount(target?.connectTimeout ?? configuration.baseline.connectTimeout)
        if case .length(0) = framing {
            pool.execute(call, connectTimeout: connectTimeout)
        } else {
            // A request with a body goes out at the end of the read burst its head came in: a
            // body that turns out broken or too large within that burst never reaches the
            // baseline, not even as a connection. (A later burst can only cut a streamed upload
            // the baseline has begun to receive; it never sees that request end.)
            self.pendingDispatch = (call, pool, connectTimeout)
        }
    }

    /// The whole request has reached the baseline: its answer is timed from here, and the
    /// candidates get their copies.
    private func finishUpload(_ request: IncomingRequest) {
        guard let context = self.context, let call = self.call, !self.responseStarted else {
            // The baseline answered (or failed) before the request ended: there is no pair to make.
            self.loopContext.shared.coverage.add(route: request.route.configuration.name, reason: .baselineError, atMicros: request.receivedAtMicros)
            return
        }
        call.write(.end(nil))
        self.baselineStarted = .now()
        call.arm(timeout: self.baselineTimeout, on: context.eventLoop, error: .timeout)
        let runtime = self.loopContext.runtime
        self.serving?.keepForFallback(request, limits: self.limits)
        self.exchange = self.mirror(request, route: request.route, runtime: runtime, peer: context.channel.remoteAddress?.ipAddress)
        self.captureLimit = self.exchange == nil ? 0 : runtime.configuration.storage.maxStoredBody
    }

    private func mirror(_ request: IncomingRequest, route: SidecarRuntime.Route, runtime: SidecarRuntime, peer: String?) -> PendingExchange? {
        let configuration = route.configuration
        let shared = self.loopContext.shared
        let at = request.receivedAtMicros
        let targets = route.targets
        guard !targets.isEmpty else {
            shared.coverage.add(route: configuration.name, reason: .noCandidates, atMicros: at)
            return nil
        }
        if let serving = self.serving, let treatment = serving.treatmentIndex {
            return self.mirrorServedByTreatment(request, route: route, runtime: runtime, peer: peer, treatment: treatment)
        }
        let bodySize = request.bodySize
        // The request body as JSON, parsed at most once and only if a gate or the sampling key
        // reads a field of it.
        var document: JSONValue?? = nil
        func body() -> JSONValue? {
            if document == nil {
                document = .some(request.body.flatMap { buffer in try? JSONParser(maximumDepth: 64).parse(buffer.readableBytesView) })
            }
            return document ?? nil
        }
        var admitted = true
        if !configuration.gates.isEmpty {
            let uri = request.head.uri
            let gateRequest = GateRequest(
                method: request.head.method.rawValue,
                path: String(uri.prefix { $0 != "?" }),
                header: { request.head.headers.first(name: $0) },
                bodyBytes: bodySize,
                body: body
            )
            admitted = configuration.gates.admits(gateRequest)
        }
        // The sampling key's position, when the route has one and the request carries it.
        var keyPosition: Double?
        switch configuration.sampleKey {
        case .header(let name):
            if let value = request.head.headers.first(name: name) { keyPosition = Sampler.position(key: value.utf8, salt: route.salt) }
        case .field:
            if admitted, let pattern = route.sampleField, let value = body().flatMap({ pattern.select(in: $0).first })?.gateText {
                keyPosition = Sampler.position(key: value.utf8, salt: route.salt)
            }
        case nil:
            break
        }
        var decisionTargets = route.decisionTargets
        if let serving = self.serving, serving.exposure.arm == .control {
            // Control answers an enrolled user: the treatment gets every copy, or none.
            decisionTargets[serving.experiment.treatmentIndex].samplePercent = serving.experiment.configuration.shadowOtherArm ? 100 : 0
        }
        let decision = MirrorDecision.decide(
            targets: decisionTargets,
            request: MirrorDecision.Request(
                admittedByGates: admitted,
                keyPosition: keyPosition,
                bodyTooLarge: bodySize > runtime.configuration.limits.mirrorMaxBody
            ),
            samplePercent: configuration.samplePercent,
            rampPercent: route.ramp?.percent(route: configuration.name),
            random: &self.loopContext.random,
            limiter: { cost in route.limiter?.take(cost: cost) },
            breaker: { index, draw in
                guard let breaker = route.breakers[index] else { return .none }
                return breaker.admit(draw: draw).map { .admitted(epoch: $0) } ?? .refused
            }
        )
        for (index, reason) in decision.dropped {
            shared.coverage.add(route: configuration.name, candidate: targets[index].name, reason: reason, atMicros: at)
        }
        let chosen = decision.chosen
        // An enrolled experiment request is recorded without copies too (its exposure counts).
        guard !chosen.isEmpty || self.serving?.exposure.arm != nil else { return nil }
        let storage = runtime.configuration.storage
        let record = self.newRecord(request, route: route, runtime: runtime, candidates: chosen.map(\.index))
        let exchange = PendingExchange(record: record, candidateCount: chosen.count, shared: shared)
        var accepted = 0
        for (slot, (index, epoch)) in chosen.enumerated() {
            let candidate = targets[index]
            // The candidate's own version of a JSON body (another model name, fields removed);
            // the baseline and the stored request keep the client's. Not JSON: sent as it came.
            var copy = request.body
            if !candidate.rewrite.isEmpty, let document = body() {
                copy = ByteBuffer(bytes: Array(candidate.rewrite.apply(to: document).serialized.utf8))
            }
            var head = Self.upstreamHead(
                request.head,
                target: candidate.url,
                requestID: self.requestID,
                peer: peer,
                framing: .length(copy?.readableBytes ?? 0),
                shadow: true
            )
            route.targetHeaders[index].apply(to: &head)
            let call = ShadowCall(
                slot: .candidate(slot),
                candidate: candidate,
                head: head,
                body: copy,
                exchange: exchange,
                captureLimit: storage.maxStoredBody,
                latency: route.metrics.targets[index],
                breaker: route.breakers[index],
                breakerEpoch: epoch,
                shared: shared
            )
            if self.loopContext.lane(for: route, candidate: index).submit(call) {
                accepted += 1
                shared.statistics.shadowPending.add(1, ordering: .relaxed)
            } else {
                shared.coverage.add(route: configuration.name, candidate: candidate.name, reason: .queueFull, atMicros: at)
                route.breakers[index]?.cancel(epoch: epoch)
                shared.statistics.shadowDropped.add(1, ordering: .relaxed)
                exchange.droppedCopy(.candidate(slot))
            }
        }
        shared.statistics.mirrored.add(accepted, ordering: .relaxed)
        return accepted > 0 || self.serving?.exposure.arm != nil ? exchange : nil
    }

    // MARK: - The baseline's response

    func upstreamHead(_ head: HTTPResponseHead) {
        guard let context = self.context, case .forwarding = self.state else { return }
        if head.status.code >= 500, self.canFallBack {
            self.fallBack(status: Int(head.status.code), error: nil)
            return
        }
        self.responseStarted = true
        self.loopContext.shared.statistics.baselineConnectFailuresInARow.store(0, ordering: .relaxed)
        self.baselineResult.status = Int(head.status.code)
        self.baselineResult.timeToHeadMicros = (NIODeadline.now() - self.baselineStarted).nanoseconds / 1000
        if self.exchange != nil { self.baselineResult.contentType = head.headers.first(name: "content-type") }
        var headers = Self.forwardableResponseHeaders(head.headers)
        if !self.keepAlive { headers.replaceOrAdd(name: "connection", value: "close") }
        if self.serving != nil { self.experimentHeaders(&headers) }
        let response = HTTPResponseHead(version: self.clientVersion, status: head.status, headers: headers)
        context.write(Self.wrapOutboundOut(.head(response)), promise: nil)
        self.routeMetrics?.countResponse(status: Int(head.status.code))
        // From now on the timeout bounds silence between body chunks, not the whole body.
        self.call?.arm(timeout: self.baselineTimeout, on: context.eventLoop, error: .timeout, idle: true)
    }

    func upstreamBody(_ buffer: ByteBuffer) {
        guard let context = self.context, case .forwarding = self.state else { return }
        self.call?.touch()
        self.seenBytes += buffer.readableBytes
        if self.exchange != nil {
            // Chunk arrival times let the writer time streamed events (first token).
            self.baselineResult.noteChunk(bytesSoFar: self.seenBytes, micros: (NIODeadline.now() - self.baselineStarted).nanoseconds / 1000)
        }
        if self.captured.count < self.captureLimit {
            self.captured.append(contentsOf: buffer.readableBytesView.prefix(self.captureLimit - self.captured.count))
        }
        context.write(Self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        if !context.channel.isWritable {
            // The client reads slower than the baseline sends: stop reading upstream until it
            // catches up. Pause before flushing: the flush may make the channel writable again,
            // and that event must find the upstream already paused.
            self.call?.pauseReading()
            context.flush()
        }
    }

    func upstreamReadComplete() {
        self.context?.flush()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { self.call?.resumeReading() }
        context.fireChannelWritabilityChanged()
    }

    func upstreamEnd() {
        self.finishBaseline(error: nil)
        guard let context = self.context, case .forwarding = self.state else { return }
        self.finishResponse(context: context, close: !self.keepAlive)
    }

    func upstreamFailed(_ error: ArmError) {
        if error != .clientClosed, case .forwarding = self.state, self.canFallBack {
            self.fallBack(status: nil, error: error)
            return
        }
        let detail = self.call?.failureDetail
        let servedByTreatment = self.serving?.treatmentIndex != nil
        self.finishBaseline(error: error)
        if error != .clientClosed, !servedByTreatment { self.loopContext.shared.statistics.baselineFailures.add(1, ordering: .relaxed) }
        if !servedByTreatment, error == .refused || error == .connectTimeout || error == .dns || error == .tls {
            self.loopContext.shared.statistics.baselineConnectFailuresInARow.add(1, ordering: .relaxed)
        }
        guard let context = self.context, case .forwarding = self.state else { return }
        if self.responseStarted {
            // Part of the answer is already on the wire; the only honest signal left is to close.
            self.state = .closed
            context.flush()
            context.close(promise: nil)
        } else {
            self.respond(SidecarError.baselineFailed(error, detail: detail), close: self.upload != nil)
        }
    }

    func finishBaseline(error: ArmError?) {
        self.call = nil
        self.serving?.fallbackRequest = nil
        let latency = (NIODeadline.now() - self.baselineStarted).nanoseconds / 1000
        if error == nil {
            let timer = self.serving?.treatmentIndex.flatMap { index in self.route?.metrics.targets[index] } ?? self.routeMetrics?.baseline
            timer?.recordNanoseconds(latency * 1000)
        }
        guard let exchange = self.exchange else { return }
        self.exchange = nil
        self.baselineResult.latencyMicros = latency
        self.baselineResult.body = CapturedBody(bytes: self.captured, totalBytes: self.seenBytes)
        self.baselineResult.error = error
        self.captured = []
        if self.serving?.exposure.fallback == true {
            exchange.finished(.baseline, self.baselineResult)
        } else {
            exchange.servedFinished(self.baselineResult)
        }
    }

    /// Malformed HTTP from the client: 431 for oversized headers, 400 otherwise, then close.
    /// Nothing of such a request reaches an upstream.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.close(promise: nil)
            return
        }
        switch self.state {
        case .idle, .rejecting:
            self.loopContext.shared.statistics.rejected.add(1, ordering: .relaxed)
            self.loopContext.shared.coverage.add(route: "-", reason: .rejected, atMicros: wallClockMicros())
            self.keepAlive = false
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
        case .forwarding where self.upload != nil && !self.responseStarted:
            // A broken chunked body: the baseline must not act on a truncated request.
            self.upload = nil
            self.loopContext.shared.statistics.rejected.add(1, ordering: .relaxed)
            self.state = .closed
            self.call?.cancel(with: .clientClosed)
            self.keepAlive = false
            self.respond(.badRequest("malformed HTTP request body: \(parserError)"), close: true)
        case .forwarding, .closed:
            context.close(promise: nil)
        }
    }
}
