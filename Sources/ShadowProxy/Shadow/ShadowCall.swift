import Metrics
import NIOCore
import NIOHTTP1
import ShadowCore
import Synchronization

/// One mirrored copy of a request to one candidate, and the capture of its answer.
///
/// The candidate's bytes go into the record only, never to a client. Its body is kept up to the
/// storage cap; beyond that the call is cut short (`too_large`), so a candidate sending 100 MB
/// costs one capped buffer and a closed connection.
final class ShadowCall: UpstreamResponseDelegate {
    /// Where its result goes: a candidate's slot, or the baseline's for an experiment's control
    /// copy of a request treatment answered.
    let slot: PendingExchange.Slot
    let head: HTTPRequestHead
    let body: ByteBuffer?
    let exchange: PendingExchange
    private let shared: SharedState
    /// `shadowd_upstream_duration_seconds` for this candidate.
    private let latency: Metrics.Timer
    private let candidate: CandidateConfiguration
    let breaker: CandidateBreaker?
    /// The breaker's epoch when this copy was admitted: its outcome counts in that epoch only.
    private let breakerEpoch: UInt64
    /// Until when it may wait in its lane's queue (it waits only if no call slot was free).
    private(set) var queueDeadline: NIODeadline = .distantFuture
    private var call: UpstreamCall?
    /// Strong (a lane lives as long as its loop, and lets a call go when it finishes).
    private var lane: ShadowLane?
    private var answer: AnswerCapture
    /// A gRPC client's `grpc-timeout`: it caps the copy's timeout too (its answer would be late
    /// anyway).
    private let clientDeadline: Duration?

    init(
        slot: PendingExchange.Slot,
        candidate: CandidateConfiguration,
        head: HTTPRequestHead,
        body: ByteBuffer?,
        exchange: PendingExchange,
        captureLimit: Int,
        latency: Metrics.Timer,
        breaker: CandidateBreaker?,
        breakerEpoch: UInt64,
        clientDeadline: Duration? = nil,
        shared: SharedState
    ) {
        self.clientDeadline = clientDeadline
        self.latency = latency
        self.breaker = breaker
        self.breakerEpoch = breakerEpoch
        self.shared = shared
        self.slot = slot
        self.candidate = candidate
        self.head = head
        self.body = body
        self.exchange = exchange
        self.answer = AnswerCapture(version: candidate.version, price: candidate.cost, limit: captureLimit)
    }

    func start(pool: UpstreamPool, lane: ShadowLane) {
        self.lane = lane
        self.answer.start()
        let call = UpstreamCall(delegate: self)
        self.call = call
        if let deadline = self.clientDeadline, deadline < self.candidate.timeout {
            // A gRPC client's shorter deadline: out of the lane's order, so a timer of its own.
            call.arm(timeout: TimeAmount(deadline), on: pool.loop, error: .timeout)
        } else {
            lane.timeouts(after: TimeAmount(self.candidate.timeout)).add(call)
        }
        call.write(head: self.head, body: self.body)
        pool.execute(call, connectTimeout: TimeAmount(self.candidate.connectTimeout))
    }

    /// Never started (shutdown while queued).
    func abandon() {
        self.shared.statistics.shadowPending.subtract(1, ordering: .relaxed)
        self.exchange.finished(self.slot, self.answer.abandon(.shutdown))
    }

    /// Joined the lane's queue at `now`.
    func queued(at now: NIODeadline) {
        self.queueDeadline = now + TimeAmount(self.candidate.maxQueueWait ?? self.candidate.timeout)
    }

    /// Dropped from the queue before it went (it waited too long, or the breaker opened): counted
    /// under `reason`, not recorded.
    func drop(_ reason: CoverageReason) {
        self.breaker?.cancel(epoch: self.breakerEpoch)
        self.shared.statistics.shadowPending.subtract(1, ordering: .relaxed)
        self.shared.statistics.shadowDropped.add(1, ordering: .relaxed)
        self.shared.coverage.add(route: self.exchange.route, candidate: self.candidate.name, reason: reason, atMicros: self.exchange.receivedAtMicros)
        self.exchange.droppedCopy(self.slot)
    }

    /// Cancels a running call (shutdown).
    func cancel() {
        self.call?.cancel(with: .shutdown)
    }

    func upstreamHead(_ head: HTTPResponseHead) {
        self.answer.head(head)
    }

    func upstreamBody(_ buffer: ByteBuffer) {
        if !self.answer.body(buffer) { self.call?.cancel(with: .tooLarge) }
    }

    func upstreamReadComplete() {}

    func upstreamEnd(trailers: HTTPHeaders?) {
        self.answer.trailers(trailers)
        self.finish(error: nil)
    }

    func upstreamFailed(_ error: ArmError) {
        self.finish(error: error)
    }

    private func finish(error: ArmError?) {
        self.call = nil
        let result = self.answer.finish(error: error)
        self.shared.statistics.shadowPending.subtract(1, ordering: .relaxed)
        if error == nil, let latency = result.latencyMicros {
            self.latency.recordNanoseconds(latency * 1000)
        }
        self.breaker?.record(result, epoch: self.breakerEpoch)
        self.lane?.callFinished(self)
        self.lane = nil
        self.exchange.finished(self.slot, result)
    }
}
