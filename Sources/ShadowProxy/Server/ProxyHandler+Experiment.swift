import NIOCore
import NIOHTTP1
import ShadowCore
import ShadowStore
import Synchronization

extension ProxyHandler {
    /// A request's place in its route's experiment.
    struct Serving {
        let experiment: SidecarRuntime.Experiment
        var exposure: ExperimentExposure
        /// Stands between the treatment's call and the handler, so a call abandoned for the
        /// fallback cannot reach the client (`nil` unless treatment answers).
        let relay: CallRelay?
        /// The whole request, kept for a fallback to control once it has been sent to the
        /// treatment (`nil` when there is none: fallback off, or the body too large to keep).
        var fallbackRequest: (head: HTTPRequestHead, body: ByteBuffer?)?

        /// The treatment's index among the route's targets while it answers the client.
        var treatmentIndex: Int? {
            self.exposure.servedBy == .treatment && !self.exposure.fallback ? self.experiment.treatmentIndex : nil
        }

        mutating func keepForFallback(_ request: IncomingRequest, limits: LimitsConfiguration) {
            guard self.treatmentIndex != nil, self.experiment.configuration.fallback == .control else { return }
            // The body is kept whole up to mirror_max_body (and not at all beyond it).
            guard request.bodySize == 0 || (request.body?.readableBytes ?? 0) == request.bodySize else { return }
            self.fallbackRequest = (request.head, request.body)
        }
    }

    /// Assigns the request to an arm by its key (a header's value, or a body field's); a request
    /// without one is served by control and counted.
    static func serving(key value: String?, experiment: SidecarRuntime.Experiment) -> Serving {
        let configuration = experiment.configuration
        let key = value.flatMap { $0.isEmpty ? nil : String($0.prefix(256)) }
        if key == nil { experiment.counters.withoutKey.add(1, ordering: .relaxed) }
        let percent = experiment.counters.percent
        let decision = ServingDecision.decide(
            keyPosition: key.map { Sampler.position(key: $0.utf8, salt: configuration.salt) },
            treatmentPercent: percent
        )
        return Serving(
            experiment: experiment,
            exposure: ExperimentExposure(experiment: configuration.name, key: key, arm: decision.arm, servedBy: decision.servedBy),
            relay: decision.servedBy == .treatment ? CallRelay() : nil,
            fallbackRequest: nil
        )
    }

    /// The treatment answers this request: its result is the pair's candidate side, and (with
    /// `shadow_other_arm`) a copy to the baseline makes the control side. Other candidates are
    /// not sent this request; they are compared on control's answers.
    func mirrorServedByTreatment(
        _ request: IncomingRequest,
        route: SidecarRuntime.Route,
        runtime: SidecarRuntime,
        peer: String?,
        treatment: Int
    ) -> PendingExchange {
        let shared = self.loopContext.shared
        let configuration = route.configuration
        for (index, target) in route.targets.enumerated() where index != treatment {
            shared.coverage.add(route: configuration.name, candidate: target.name, reason: .servedByTreatment, atMicros: request.receivedAtMicros)
        }
        let copy =
            self.current.serving?.experiment.configuration.shadowOtherArm == true && request.bodySize <= self.limits.mirrorMaxBody
            && !self.isClientStreaming(request)
        let exchange = PendingExchange(
            record: self.newRecord(request, route: route, runtime: runtime, candidates: [treatment]),
            candidateCount: 1,
            shared: shared,
            served: .candidate(0),
            baselineCopy: copy
        )
        guard copy else { return exchange }
        let head = Self.upstreamHead(
            request.head,
            target: configuration.baseline.url,
            requestID: self.current.requestID,
            peer: peer,
            framing: .length(request.body?.readableBytes ?? 0),
            shadow: true,
            rewrite: route.baselineHeaders
        )
        let lane = self.loopContext.controlLane(for: route, treatment: treatment)
        let call = ShadowCall(
            slot: .baseline,
            candidate: lane.candidate,
            head: head,
            body: request.body,
            exchange: exchange,
            captureLimit: runtime.configuration.storage.maxStoredBody,
            latency: route.metrics.baseline,
            breaker: nil,
            breakerEpoch: 0,
            clientDeadline: self.current.grpcTimeout,
            shared: shared
        )
        if lane.submit(call) {
            shared.statistics.shadowPending.add(1, ordering: .relaxed)
            shared.statistics.mirrored.add(1, ordering: .relaxed)
        } else {
            shared.statistics.shadowDropped.add(1, ordering: .relaxed)
            exchange.droppedCopy(.baseline)
        }
        return exchange
    }

    /// The record of one request, with the given targets as its candidates.
    func newRecord(_ request: IncomingRequest, route: SidecarRuntime.Route, runtime: SidecarRuntime, candidates: [Int]) -> ExchangeRecord {
        let configuration = route.configuration
        let storage = runtime.configuration.storage
        var storedRequest = CapturedBody(bytes: [], totalBytes: request.bodySize)
        if storage.storeRequestBodies, let body = request.body {
            storedRequest.bytes = Array(body.readableBytesView.prefix(storage.maxStoredBody))
        }
        var record = ExchangeRecord(
            requestID: self.current.requestID,
            route: configuration.name,
            configRevision: runtime.configuration.revision,
            receivedAtMicros: request.receivedAtMicros,
            method: request.head.method.rawValue,
            path: request.head.uri,
            requestBody: storedRequest,
            baseline: ArmResult(version: configuration.baseline.version),
            candidates: candidates.map { CandidateResult(name: route.targets[$0].name, result: ArmResult(version: route.targets[$0].version)) },
            scorer: route.scorer,
            segment: configuration.segmentHeader.flatMap { request.head.headers.first(name: $0).map { String($0.prefix(128)) } }
        )
        record.readsUsage = route.readsUsage
        record.exposure = self.current.serving?.exposure
        if let decoder = route.bodyDecoder {
            record.bodyDecoder = decoder
            record.requestContentType = request.head.headers.first(name: "content-type")
            record.requestInferenceHeaderLength = request.head.headers.first(name: "inference-header-content-length").flatMap { Int($0) }
            record.requestGRPCEncoding = request.head.headers.first(name: "grpc-encoding")
        }
        return record
    }

    /// Whether a failed or 5xx treatment answer may still be replaced by control's: nothing
    /// has reached the client, the request is complete and kept, and fallback is on.
    var canFallBack: Bool {
        !self.current.responseStarted && self.current.serving?.fallbackRequest != nil && self.current.serving?.treatmentIndex != nil
    }

    /// Headers the experiment adds to the client's response: the arm that served it, and the
    /// request id for joining outcomes.
    func experimentHeaders(_ headers: inout HTTPHeaders) {
        guard let serving = self.current.serving else { return }
        if let name = serving.experiment.configuration.armHeader {
            headers.replaceOrAdd(name: name, value: serving.exposure.arm == nil ? "none" : serving.exposure.servedBy.rawValue)
        }
        headers.replaceOrAdd(name: "x-request-id", value: self.current.requestID)
    }
}

/// Forwards an upstream call's events to the handler until detached: the treatment call a
/// fallback replaced may still report, and must not reach the client.
final class CallRelay: UpstreamResponseDelegate {
    weak var target: (any UpstreamResponseDelegate)?

    func detach() { self.target = nil }

    func upstreamHead(_ head: HTTPResponseHead) { self.target?.upstreamHead(head) }
    func upstreamBody(_ buffer: ByteBuffer) { self.target?.upstreamBody(buffer) }
    func upstreamEnd(trailers: HTTPHeaders?) { self.target?.upstreamEnd(trailers: trailers) }
    func upstreamFailed(_ error: ArmError) { self.target?.upstreamFailed(error) }
    func upstreamReadComplete() { self.target?.upstreamReadComplete() }
    func upstreamWritable() { self.target?.upstreamWritable() }
}

extension ProxyHandler {
    /// The treatment failed (or answered 5xx) before anything reached the client: its result is
    /// recorded, its call abandoned, and the whole request goes to the baseline, whose answer the
    /// client gets. The analysis stays intention-to-treat: the request counts as treatment.
    func fallBack(status: Int?, error: ArmError?) {
        guard var serving = self.current.serving, let (head, body) = serving.fallbackRequest, let route = self.current.route,
            let context = self.context
        else { return }
        let limit = self.current.answer.limit
        var treatment = self.current.answer.finish(error: error)
        treatment.status = status
        treatment.body = CapturedBody(bytes: [], totalBytes: 0)
        serving.relay?.detach()
        let abandoned = self.current.call
        self.current.call = nil
        abandoned?.cancel(with: .clientClosed)
        serving.exposure.fallback = true
        serving.exposure.servedBy = .control
        serving.fallbackRequest = nil
        self.current.serving = serving
        self.current.record?.fellBack(treatment: treatment)
        self.loopContext.shared.statistics.experimentFallbacks.add(1, ordering: .relaxed)

        let baseline = route.configuration.baseline
        let controlHead = Self.upstreamHead(
            head,
            target: baseline.url,
            requestID: self.current.requestID,
            peer: self.peer(context),
            framing: .length(body?.readableBytes ?? 0),
            shadow: false,
            rewrite: route.baselineHeaders
        )
        self.current.answer = AnswerCapture(version: baseline.version, price: baseline.cost, limit: limit)
        self.current.baselineTimeout = TimeAmount(baseline.timeout)
        let call = UpstreamCall(delegate: self)
        self.current.call = call
        call.write(head: controlHead, body: body)
        self.armBaselineTimer()
        self.loopContext.baselinePool(for: route).execute(call, connectTimeout: TimeAmount(baseline.connectTimeout))
    }
}
