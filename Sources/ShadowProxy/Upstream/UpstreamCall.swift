import NIOCore
import NIOHTTP1
import ShadowCore

/// One request in flight on an upstream connection (or waiting for one to connect).
///
/// Loop-bound: created, used and completed on one event loop, so it needs no locks.
final class UpstreamCall {
    private(set) weak var delegate: (any UpstreamResponseDelegate)?
    var connection: UpstreamConnection?
    private(set) var finished = false
    private var timeout: Scheduled<Void>?
    private var lastActivity: NIODeadline = .now()

    init(delegate: any UpstreamResponseDelegate) {
        self.delegate = delegate
    }

    /// Arms a timer that fails the call with `error` unless it finishes first. With `idle`, the
    /// timer measures silence: every ``touch()`` pushes the deadline out again (one timer, re-armed
    /// only when it fires early).
    func arm(timeout amount: TimeAmount, on loop: any EventLoop, error: ArmError, idle: Bool = false) {
        self.timeout?.cancel()
        self.lastActivity = .now()
        self.schedule(after: amount, limit: amount, on: loop, error: error, idle: idle)
    }

    private func schedule(after delay: TimeAmount, limit: TimeAmount, on loop: any EventLoop, error: ArmError, idle: Bool) {
        self.timeout = loop.assumeIsolated().scheduleTask(in: delay) { [weak self] in
            guard let self, !self.finished else { return }
            let quietFor = NIODeadline.now() - self.lastActivity
            if idle, quietFor < limit {
                self.schedule(after: limit - quietFor, limit: limit, on: loop, error: error, idle: true)
            } else {
                self.cancel(with: error)
            }
        }
    }

    /// Marks progress for an idle timer.
    func touch() {
        self.lastActivity = .now()
    }

    /// Abandons the call: the connection is closed (never reused mid-response) and the delegate
    /// hears `error`, unless the call already finished.
    func cancel(with error: ArmError) {
        guard !self.finished else { return }
        let connection = self.connection
        self.fail(error)
        connection?.close()
    }

    /// Stops reading from the upstream while the client cannot take more (backpressure).
    func pauseReading() {
        self.connection?.setAutoRead(false)
    }

    func resumeReading() {
        self.connection?.setAutoRead(true)
    }

    // MARK: - Events from the connection

    func deliverHead(_ head: HTTPResponseHead) {
        guard !self.finished else { return }
        self.delegate?.upstreamHead(head)
    }

    func deliverBody(_ buffer: ByteBuffer) {
        guard !self.finished else { return }
        self.delegate?.upstreamBody(buffer)
    }

    func deliverReadComplete() {
        guard !self.finished else { return }
        self.delegate?.upstreamReadComplete()
    }

    func complete() {
        guard !self.finished else { return }
        self.finished = true
        self.timeout?.cancel()
        self.connection = nil
        self.delegate?.upstreamEnd()
    }

    func fail(_ error: ArmError) {
        guard !self.finished else { return }
        self.finished = true
        self.timeout?.cancel()
        self.connection = nil
        self.delegate?.upstreamFailed(error)
    }
}
