import NIOCore
import NIOHTTP1
import ShadowCore

/// The shadow queue and call slots of one candidate on one event loop.
///
/// `submit` never waits: a copy either starts now (a slot is free), waits in a bounded queue, or
/// is refused so the caller can count the drop. Memory is bounded by
/// `queueCapacity + maxConcurrency` copies per loop, whatever the candidate does.
///
/// A copy never waits longer than its candidate's `max_queue_wait` (older ones are dropped as
/// `queue_expired`, so a candidate back from a partition is not sent minutes-old traffic), and
/// when the candidate's breaker has opened the whole queue is dropped as `circuit_open`.
final class ShadowLane {
    let candidate: CandidateConfiguration
    let pool: UpstreamPool
    let queueCapacity: Int
    let maxConcurrency: Int
    private var waiting = CircularBuffer<ShadowCall>()
    private var running: [ObjectIdentifier: ShadowCall] = [:]
    /// The running calls' timeouts, a queue per length: the candidate's, the same for every
    /// copy until a reload changes it (a shorter one must not wait behind the longer ones).
    private var timeoutQueues: [TimeAmount: TimeoutQueue] = [:]
    /// Called when the last queued or running copy has finished (a shutdown drain waits for it).
    var becameIdle: (() -> Void)?

    init(candidate: CandidateConfiguration, pool: UpstreamPool, queueCapacity: Int, maxConcurrency: Int) {
        self.candidate = candidate
        self.pool = pool
        self.queueCapacity = queueCapacity
        self.maxConcurrency = maxConcurrency
    }

    /// The queue timing this lane's calls that last `amount`.
    func timeouts(after amount: TimeAmount) -> TimeoutQueue {
        if let queue = self.timeoutQueues[amount] { return queue }
        let queue = TimeoutQueue(loop: self.pool.loop, amount: amount)
        self.timeoutQueues[amount] = queue
        return queue
    }

    /// Copies queued or running.
    var pending: Int { self.running.count + self.waiting.count }

    /// Starts or queues the call. Returns `false` when the queue is full.
    func submit(_ call: ShadowCall) -> Bool {
        if self.running.count < self.maxConcurrency {
            self.start(call)
            return true
        }
        let now = NIODeadline.now()
        self.dropExpired(now: now)
        guard self.waiting.count < self.queueCapacity else { return false }
        call.queued(at: now)
        self.waiting.append(call)
        return true
    }

    /// Drops copies from the head of the queue (the oldest) that waited past their limit.
    private func dropExpired(now: NIODeadline) {
        while let first = self.waiting.first, now > first.queueDeadline {
            self.waiting.removeFirst().drop(.queueExpired)
        }
    }

    private func start(_ call: ShadowCall) {
        self.running[ObjectIdentifier(call)] = call
        call.start(pool: self.pool, lane: self)
    }

    /// A running call finished; the next waiting one takes its slot.
    func callFinished(_ call: ShadowCall) {
        self.running.removeValue(forKey: ObjectIdentifier(call))
        defer { if self.pending == 0 { self.becameIdle?() } }
        guard !self.waiting.isEmpty else { return }
        if call.breaker?.isOpen == true {
            while let stale = self.waiting.popFirst() { stale.drop(.circuitOpen) }
            return
        }
        self.dropExpired(now: .now())
        if let next = self.waiting.popFirst() {
            self.start(next)
        }
    }

    /// Cancels running calls (shutdown after the drain timeout); they are recorded as `shutdown`.
    func cancelRunning() {
        for call in Array(self.running.values) { call.cancel() }
    }

    /// Fails every waiting copy (shutdown), so their exchanges still get recorded.
    func abandonWaiting() {
        while let call = self.waiting.popFirst() {
            call.abandon()
        }
    }
}
