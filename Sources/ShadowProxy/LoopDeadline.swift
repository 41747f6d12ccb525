import NIOCore

/// A deadline on an event loop that moves often and cheaply: the request timer of a keep-alive
/// connection, the idle timeout of a streaming answer.
///
/// Re-arming a NIO timer (cancel, then schedule) costs a search and two heap updates in the
/// loop's timer queue, several times per request. This keeps one scheduled task instead: moving
/// the deadline later only records it, and when the task fires early it schedules the rest.
/// Only moving it earlier reschedules at once. Time is the loop's (`EventLoop.now`), so tests
/// drive it with an `EmbeddedEventLoop`. Loop-bound: use it from its loop only.
final class LoopDeadline {
    private let loop: any EventLoop
    private let action: () -> Void
    private var scheduled: Scheduled<Void>?
    /// When ``scheduled`` fires.
    private var firesAt = NIODeadline.distantFuture
    /// When ``action`` runs; nil: it does not.
    private(set) var deadline: NIODeadline?

    /// - Parameter action: runs once the deadline passes (it may capture its owner strongly if
    ///   the owner calls ``cancel()`` and lets this go when it is done).
    init(on loop: any EventLoop, action: @escaping () -> Void) {
        self.loop = loop
        self.action = action
    }

    /// Moves the deadline; nil disarms it (a task already scheduled fires and finds nothing to do).
    func set(_ deadline: NIODeadline?) {
        self.deadline = deadline
        guard let deadline else { return }
        if self.scheduled == nil || deadline < self.firesAt {
            self.scheduled?.cancel()
            self.schedule(at: deadline)
        }
    }

    /// Disarms it and frees the scheduled task (when the owner goes away).
    func cancel() {
        self.deadline = nil
        self.scheduled?.cancel()
        self.scheduled = nil
    }

    private func schedule(at deadline: NIODeadline) {
        self.firesAt = deadline
        // Strong: a weak capture costs every deadline a side table. The task holds this only
        // until it fires or is cancelled.
        self.scheduled = self.loop.assumeIsolated().scheduleTask(deadline: deadline) { self.fired() }
    }

    private func fired() {
        self.scheduled = nil
        guard let deadline = self.deadline else { return }
        if self.loop.now < deadline {
            self.schedule(at: deadline)
        } else {
            self.deadline = nil
            self.action()
        }
    }
}
