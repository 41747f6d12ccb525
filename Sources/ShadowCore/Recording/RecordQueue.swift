import Synchronization

/// A bounded, never-blocking hand-off from many producers to one consumer that takes batches.
///
/// Producers call ``offer(_:)``, which never suspends: when the queue is full the element is
/// refused and the caller counts the drop. The consumer awaits ``nextBatch(maximum:)``, or, on a
/// thread of its own, polls with ``poll(maximum:orWake:)`` and blocks until woken.
public final class RecordQueue<Element: Sendable>: Sendable {
    private struct State {
        var buffer: [Element] = []
        var head = 0
        /// Called once when an element arrives, on ``wake()`` or on ``finish()``.
        var waiter: (@Sendable () -> Void)?
        var finished = false
        var accepted = 0
        var refused = 0

        var count: Int { self.buffer.count - self.head }

        mutating func take(_ maximum: Int) -> [Element] {
            let end = min(self.buffer.count, self.head + maximum)
            let batch = Array(self.buffer[self.head..<end])
            self.head = end
            if self.head == self.buffer.count {
                self.buffer.removeAll(keepingCapacity: true)
                self.head = 0
            } else if self.head > 4096, self.head * 2 > self.buffer.count {
                self.buffer.removeFirst(self.head)
                self.head = 0
            }
            return batch
        }
    }

    public let capacity: Int
    private let state = Mutex(State())

    public init(capacity: Int) {
        precondition(capacity > 0, "capacity must be positive")
        self.capacity = capacity
    }

    /// Adds an element unless the queue is full or finished. Never suspends.
    /// - Returns: `false` when the element was refused.
    @discardableResult
    public func offer(_ element: Element) -> Bool {
        let waiter: (@Sendable () -> Void)?
        let accepted: Bool
        (accepted, waiter) = self.state.withLock { state in
            guard !state.finished, state.count < self.capacity else {
                state.refused += 1
                return (false, nil)
            }
            state.buffer.append(element)
            state.accepted += 1
            let waiter = state.waiter
            state.waiter = nil
            return (true, waiter)
        }
        waiter?()
        return accepted
    }

    /// What ``poll(maximum:orWake:)`` found.
    public enum Poll: Sendable {
        /// Elements taken, or `nil` once finished and drained.
        case ready([Element]?)
        /// Nothing queued: the wake-up was registered and will be called once.
        case registered
    }

    /// Takes up to `maximum` elements when some are queued (or reports the end); otherwise
    /// registers `wake`, called once when an element arrives, ``wake()`` or ``finish()`` is
    /// called, after which ``takeAfterWake(maximum:)`` says what woke it. One consumer only.
    public func poll(maximum: Int, orWake wake: @escaping @Sendable () -> Void) -> Poll {
        self.state.withLock { state in
            if state.count > 0 { return .ready(state.take(maximum)) }
            if state.finished { return .ready(nil) }
            state.waiter = wake
            return .registered
        }
    }

    /// After a registered wake-up: up to `maximum` elements, empty after a bare ``wake()``, or
    /// `nil` once finished and drained.
    public func takeAfterWake(maximum: Int) -> [Element]? {
        self.state.withLock { state in
            if state.count > 0 { return state.take(maximum) }
            return state.finished ? nil : []
        }
    }

    /// Waits until an element is queued, ``wake()`` is called or the queue is finished, and takes
    /// up to `maximum` elements.
    /// - Returns: the elements (empty after a wake-up), or `nil` once finished and drained.
    public func nextBatch(maximum: Int) async -> [Element]? {
        let ready: [Element]?? = self.state.withLock { state in
            if state.count > 0 { return .some(state.take(maximum)) }
            return state.finished ? .some(nil) : .none
        }
        if let ready { return ready }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            if case .ready = self.poll(maximum: 0, orWake: { continuation.resume() }) {
                continuation.resume()
            }
        }
        return self.takeAfterWake(maximum: maximum)
    }

    /// Wakes a waiting consumer, which then gets an empty batch.
    public func wake() {
        let waiter = self.state.withLock { state in
            let waiter = state.waiter
            state.waiter = nil
            return waiter
        }
        waiter?()
    }

    /// Whether ``finish()`` was called.
    public var isFinished: Bool { self.state.withLock { $0.finished } }

    /// Takes up to `maximum` elements already queued, without waiting.
    public func takeAvailable(maximum: Int) -> [Element] {
        self.state.withLock { $0.take(maximum) }
    }

    /// Refuses further elements and wakes the consumer; queued elements can still be taken.
    public func finish() {
        let waiter = self.state.withLock { state in
            state.finished = true
            let waiter = state.waiter
            state.waiter = nil
            return waiter
        }
        waiter?()
    }

    /// Elements waiting.
    public var depth: Int { self.state.withLock { $0.count } }
    /// Elements accepted and refused since creation.
    public var totals: (accepted: Int, refused: Int) { self.state.withLock { ($0.accepted, $0.refused) } }
}
