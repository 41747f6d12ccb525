import NIOCore
import NIOHTTP1
import ShadowCore
import ShadowStore
import Synchronization

extension ProxyHandler {
    // MARK: - Forwarding

    /// Sends the head to the serving arm at once; the body follows part by part as it arrives,
    /// or goes with the head when the request was held (`heldBody`, its whole body as sent).
    func startBaseline(_ request: IncomingRequest, heldBody: ByteBuffer? = nil, context: ChannelHandlerContext) {
        let configuration = request.route.configuration
        let framing: UpstreamFraming =
            if let heldBody {
                .length(heldBody.readableBytes)
            } else if let length = request.head.headers.first(name: "content-length").flatMap({ Int($0) }) {
                .length(length)
            } else if request.head.headers.contains(name: "transfer-encoding") {
                .chunked
            } else {
                .length(0)
            }
        let treatment = self.current.serving?.treatmentIndex
        let target = treatment.map { request.route.targets[$0] }
        let baselineHead = Self.upstreamHead(
            request.head,
            target: target?.url ?? configuration.baseline.url,
            requestID: self.current.requestID,
            peer: self.peer(context),
            framing: framing,
            shadow: false,
            rewrite: treatment.map { request.route.targetHeaders[$0] } ?? request.route.baselineHeaders
        )
        self.current.responseStarted = false
        self.current.answer = AnswerCapture(
            version: target?.version ?? configuration.baseline.version,
            price: target.map { $0.cost } ?? configuration.baseline.cost,
            limit: 0
        )
        let configured = target?.timeout ?? configuration.baseline.timeout
        self.current.baselineTimeout = TimeAmount(self.current.grpcTimeout.map { min($0, configured) } ?? configured)
        let call = UpstreamCall(delegate: self.current.serving?.relay ?? self)
        self.current.call = call
        self.disarmBaselineTimer()
        call.write(.head(baselineHead))
        if let heldBody, heldBody.readableBytes > 0 { call.write(.body(.byteBuffer(heldBody))) }
        let pool =
            treatment.map { self.loopContext.servingPool(for: request.route, candidate: $0) } ?? self.loopContext.baselinePool(for: request.route)
        let connectTimeout = TimeAmount(target?.connectTimeout ?? configuration.baseline.connectTimeout)
        let bodiless = if case .length(0) = framing { true } else { false }
        if heldBody != nil || bodiless {
            // Nothing more can arrive that would cut the request: a held one is whole.
            pool.execute(call, connectTimeout: connectTimeout)
        } else {
            // A request with a body goes out at the end of the read burst its head came in: a
            // body that turns out broken or too large within that burst never reaches the
            // baseline, not even as a connection. (A later burst can only cut a streamed upload
            // the baseline has begun to receive; it never sees that request end.)
            self.pendingDispatch = (call, pool, connectTimeout)
        }
    }

    /// A held request has ended: its arm is chosen (from the body, when the experiment's key is
    /// a field) and it goes out whole, rewritten when the serving treatment rewrites bodies.
    func startHeld(_ request: IncomingRequest, context: ChannelHandlerContext) {
        guard let experiment = request.route.experiment else { return }
        let maxParsed = self.limits.mirrorMaxBody
        if self.current.serving == nil {
            // A body past mirror_max_body is not parsed on the event loop: it counts as keyless.
            let key = experiment.keyField.flatMap { pattern in
                Self.document(request.body, size: request.bodySize, limit: maxParsed).flatMap { pattern.select(in: $0).first?.gateText }
            }
            self.current.serving = Self.serving(key: key, experiment: experiment)
            self.current.serving?.relay?.target = self
        }
        var body = request.body ?? ByteBuffer()
        if let treatment = self.current.serving?.treatmentIndex, !request.route.targets[treatment].rewrite.isEmpty,
            let document = Self.document(request.body, size: request.bodySize, limit: request.bodySize)
        {
            body = Self.rewritten(document, for: request.route.targets[treatment])
        }
        self.startBaseline(request, heldBody: body, context: context)
    }

    /// A gRPC call whose request is a stream of other than one message: passed through, never
    /// mirrored. A body past `limits.mirror_max_body` is not kept to tell, and counts as too large.
    func isClientStreaming(_ request: IncomingRequest) -> Bool {
        guard self.current.isGRPC, request.bodySize <= self.limits.mirrorMaxBody else { return false }
        guard let body = request.body else { return true }
        return GRPCSemantics.isStreamingRequest(body.readableBytesView)
    }

    /// A request body as JSON, when it is whole, at most `limit` bytes and parses.
    static func document(_ body: ByteBuffer?, size: Int, limit: Int) -> JSONValue? {
        guard size <= limit, let body, body.readableBytes == size else { return nil }
        return try? JSONParser(maximumDepth: 64).parse(body.readableBytesView)
    }

    /// A candidate's own version of a JSON request body (another model name, fields removed).
    static func rewritten(_ document: JSONValue, for candidate: CandidateConfiguration) -> ByteBuffer {
        ByteBuffer(bytes: Array(candidate.rewrite.apply(to: document).serialized.utf8))
    }

    /// The whole request has reached the baseline: its answer is timed from here, and the
    /// candidates get their copies.
    func finishUpload(_ request: IncomingRequest) {
        guard let context = self.context, let call = self.current.call, !self.current.responseStarted else {
            // The baseline answered (or failed) before the request ended: there is no pair to
            // make. Over gRPC that is a bidirectional call doing what it should, and the end of
            // its request must still reach the baseline (the server's stream ends after it).
            self.current.call?.write(.end(nil))
            let reason: CoverageReason = self.current.isGRPC && self.current.call != nil ? .clientStreaming : .baselineError
            self.loopContext.shared.coverage.add(route: request.route.configuration.name, reason: reason, atMicros: request.receivedAtMicros)
            return
        }
        call.write(.end(nil))
        self.current.answer.start()
        // The request is whole, so nothing can cut it now: it goes to the baseline before the
        // copies are written, never behind them.
        self.dispatchPendingBaseline()
        self.armBaselineTimer()
        let runtime = self.loopContext.runtime
        self.current.serving?.keepForFallback(request, limits: self.limits)
        self.current.record = self.mirror(request, route: request.route, runtime: runtime, peer: self.peer(context))
        self.current.answer.limit = self.current.record == nil ? 0 : runtime.configuration.storage.maxStoredBody
    }

    func mirror(_ request: IncomingRequest, route: SidecarRuntime.Route, runtime: SidecarRuntime, peer: String?) -> PendingExchange? {
        let configuration = route.configuration
        let shared = self.loopContext.shared
        let at = request.receivedAtMicros
        let targets = route.targets
        guard !targets.isEmpty else {
            shared.coverage.add(route: configuration.name, reason: .noCandidates, atMicros: at)
            return nil
        }
        if let serving = self.current.serving, let treatment = serving.treatmentIndex {
            return self.mirrorServedByTreatment(request, route: route, runtime: runtime, peer: peer, treatment: treatment)
        }
        let bodySize = request.bodySize
        // The request body as JSON, parsed at most once and only if a gate or the sampling key
        // reads a field of it.
        var document: JSONValue?? = nil
        func body() -> JSONValue? {
            if document == nil {
                document = .some(Self.document(request.body, size: bodySize, limit: runtime.configuration.limits.mirrorMaxBody))
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
        if let serving = self.current.serving, serving.exposure.arm == .control {
            // Control answers an enrolled user: the treatment gets every copy, or none.
            decisionTargets[serving.experiment.treatmentIndex].samplePercent = serving.experiment.configuration.shadowOtherArm ? 100 : 0
        }
        let decision = MirrorDecision.decide(
            targets: decisionTargets,
            request: MirrorDecision.Request(
                admittedByGates: admitted,
                keyPosition: keyPosition,
                bodyTooLarge: bodySize > runtime.configuration.limits.mirrorMaxBody,
                clientStreaming: self.isClientStreaming(request)
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
        guard !chosen.isEmpty || self.current.serving?.exposure.arm != nil else { return nil }
        let storage = runtime.configuration.storage
        let record = self.newRecord(request, route: route, runtime: runtime, candidates: chosen.map(\.index))
        let exchange = PendingExchange(record: record, candidateCount: chosen.count, shared: shared)
        var accepted = 0
        for (slot, (index, epoch)) in chosen.enumerated() {
            let candidate = targets[index]
            // The candidate's own version of a JSON body (another model name, fields removed);
            // the baseline and the stored request keep the client's. Not JSON: sent as it came.
            var copy = request.body
            if !candidate.rewrite.isEmpty, let document = body() { copy = Self.rewritten(document, for: candidate) }
            let head = Self.upstreamHead(
                request.head,
                target: candidate.url,
                requestID: self.current.requestID,
                peer: peer,
                framing: .length(copy?.readableBytes ?? 0),
                shadow: true,
                rewrite: route.targetHeaders[index]
            )
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
                clientDeadline: self.current.grpcTimeout,
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
        return accepted > 0 || self.current.serving?.exposure.arm != nil ? exchange : nil
    }
}
