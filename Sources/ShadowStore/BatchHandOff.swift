import Foundation

/// A bounded, blocking hand-off of whole batches from one thread to another (the recorder's
/// scoring stage to its writer; the report's scan to its accounting): ``put(_:)`` blocks while
/// `capacity` batches wait, so the producer runs at most that far ahead and memory stays
/// bounded; ``take()`` blocks until a batch or the end.
public final class BatchHandOff<Batch: Sendable>: @unchecked Sendable {
    // @unchecked: every stored property is read and written with `condition` held.
    private let condition = NSCondition()
    private var waiting: [Batch] = []
    private var closed = false
    private var cancelled = false
    private var closingFailure: (any Error)?
    public let capacity: Int

    public init(capacity: Int) {
        precondition(capacity > 0, "capacity must be positive")
        self.capacity = capacity
    }

    /// Waits for room, then queues `batch`; false (and nothing queued) once the consumer
    /// cancelled. A batch put after ``close(failure:)`` is still taken.
    @discardableResult
    public func put(_ batch: Batch) -> Bool {
        self.condition.lock()
        defer { self.condition.unlock() }
        while self.waiting.count >= self.capacity && !self.cancelled { self.condition.wait() }
        guard !self.cancelled else { return false }
        self.waiting.append(batch)
        self.condition.broadcast()
        return true
    }

    /// Ends the hand-off once the queued batches are taken; a `failure` is the producer's
    /// reason for ending early, read from ``failure`` after ``take()`` returned `nil`.
    public func close(failure: (any Error)? = nil) {
        self.condition.lock()
        defer { self.condition.unlock() }
        self.closed = true
        self.closingFailure = failure
        self.condition.broadcast()
    }

    /// The oldest queued batch, waiting for one; `nil` once closed (or cancelled) and empty.
    public func take() -> Batch? {
        self.condition.lock()
        defer { self.condition.unlock() }
        while self.waiting.isEmpty && !self.closed && !self.cancelled { self.condition.wait() }
        guard !self.waiting.isEmpty else { return nil }
        self.condition.broadcast()
        return self.waiting.removeFirst()
    }

    /// Why the producer closed early, if it said so.
    public var failure: (any Error)? {
        self.condition.lock()
        defer { self.condition.unlock() }
        return self.closingFailure
    }

    /// The consumer gives up: queued batches are dropped, a waiting or later ``put(_:)`` returns
    /// false at once, and ``take()`` returns `nil`.
    public func cancel() {
        self.condition.lock()
        defer { self.condition.unlock() }
        self.cancelled = true
        self.waiting.removeAll()
        self.condition.broadcast()
    }

    /// Waits until the producer called ``close(failure:)``.
    public func waitUntilClosed() {
        self.condition.lock()
        defer { self.condition.unlock() }
        while !self.closed { self.condition.wait() }
    }
}
