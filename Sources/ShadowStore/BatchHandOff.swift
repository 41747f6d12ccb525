import Foundation

/// A bounded, blocking hand-off of whole batches from one thread to another (the scoring stage
/// to the writer): ``put(_:)`` blocks while `capacity` batches wait, so scoring runs at most that
/// far ahead of the database and memory stays bounded; ``take()`` blocks until a batch or the end.
final class BatchHandOff<Batch: Sendable>: @unchecked Sendable {
    // @unchecked: every stored property is read and written with `condition` held.
    private let condition = NSCondition()
    private var waiting: [Batch] = []
    private var closed = false
    let capacity: Int

    init(capacity: Int) {
        precondition(capacity > 0, "capacity must be positive")
        self.capacity = capacity
    }

    /// Waits for room, then queues `batch`. A batch put after ``close()`` is still taken.
    func put(_ batch: Batch) {
        self.condition.lock()
        defer { self.condition.unlock() }
        while self.waiting.count >= self.capacity { self.condition.wait() }
        self.waiting.append(batch)
        self.condition.broadcast()
    }

    /// Ends the hand-off once the queued batches are taken.
    func close() {
        self.condition.lock()
        defer { self.condition.unlock() }
        self.closed = true
        self.condition.broadcast()
    }

    /// The oldest queued batch, waiting for one; `nil` once closed and empty.
    func take() -> Batch? {
        self.condition.lock()
        defer { self.condition.unlock() }
        while self.waiting.isEmpty && !self.closed { self.condition.wait() }
        guard !self.waiting.isEmpty else { return nil }
        self.condition.broadcast()
        return self.waiting.removeFirst()
    }
}
