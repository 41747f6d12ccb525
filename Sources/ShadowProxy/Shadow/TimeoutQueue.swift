import NIOCore
import ShadowCore

/// The timeouts of one shadow lane's calls: all of the same length and started in order, so
/// they expire in the order they were added, and one timer (for the oldest) serves them all.
///
/// A timer per call scheduled a task and cancelled it for every copy; NIO's cancel searches the
/// loop's task queue, which on a busy loop holds a task per call in flight (measured: ~3% of the
/// loop). Finished calls leave from the front as new ones come in; ones stuck behind a long
/// call are swept once they outnumber the live ones, so the queue stays within twice the calls
/// in flight. Loop-bound: use it from its loop only.
final class TimeoutQueue {
    private struct Entry {
        let deadline: NIODeadline
        let call: UpstreamCall
    }

    private let loop: any EventLoop
    /// Every call's timeout.
    let amount: TimeAmount
    private var entries = CircularBuffer<Entry>()
    private var timer: LoopDeadline?
    /// Entries the next sweep may keep: twice those left by the last one, at least 64.
    private var sweepAt = 64

    init(loop: any EventLoop, amount: TimeAmount) {
        self.loop = loop
        self.amount = amount
    }

    /// Fails `call` with `timeout` unless it finishes within ``amount``.
    func add(_ call: UpstreamCall) {
        while let first = self.entries.first, first.call.finished { self.entries.removeFirst() }
        if self.entries.count >= self.sweepAt {
            self.entries.removeAll { $0.call.finished }
            self.sweepAt = max(64, 2 * self.entries.count)
        }
        let deadline = self.loop.now + self.amount
        self.entries.append(Entry(deadline: deadline, call: call))
        if self.entries.count == 1 { self.armTimer(deadline) }
    }

    /// Calls whose deadline has not passed nor finished yet, or finished but not swept.
    var count: Int { self.entries.count }

    private func armTimer(_ deadline: NIODeadline) {
        if self.timer == nil {
            // Weak: a sidecar torn down while copies are timed lets its lanes go before the
            // loop's scheduled task fires (one side table per queue, not per call).
            self.timer = LoopDeadline(on: self.loop) { [weak self] in self?.expire() }
        }
        self.timer?.set(deadline)
    }

    private func expire() {
        let now = self.loop.now
        while let first = self.entries.first {
            if first.call.finished {
                self.entries.removeFirst()
            } else if first.deadline <= now {
                self.entries.removeFirst()
                // May add a call (the lane starts its next copy): it goes to the back.
                first.call.cancel(with: .timeout)
            } else {
                break
            }
        }
        if let first = self.entries.first { self.armTimer(first.deadline) }
    }
}
