import NIOCore

extension LoopContext {
    /// What a shutdown step waits for on a loop.
    enum DrainTarget {
        /// Client connections (and HTTP/2 streams) with a handler.
        case connections
        /// Shadow copies queued or running.
        case shadowWork
    }

    /// A shutdown step waiting until its target is done on this loop, or its deadline passes.
    struct DrainWaiter {
        let target: DrainTarget
        let promise: EventLoopPromise<Void>
        let timeout: Scheduled<Void>
    }

    /// What is left of `target` on this loop.
    func remaining(_ target: DrainTarget) -> Int {
        switch target {
        case .connections: self.connectionCount
        case .shadowWork: self.pendingShadowWork
        }
    }

    /// Succeeds once nothing of `target` is left on this loop, or at `deadline`, whichever comes
    /// first: woken by the last connection or copy ending, not by polling. Call on the loop.
    func whenDrained(_ target: DrainTarget, deadline: NIODeadline) -> EventLoopFuture<Void> {
        self.loop.preconditionInEventLoop()
        guard self.remaining(target) > 0 else { return self.loop.makeSucceededVoidFuture() }
        let promise = self.loop.makePromise(of: Void.self)
        let timeout = self.loop.scheduleTask(deadline: deadline) { promise.succeed() }
        self.drainWaiters.append(DrainWaiter(target: target, promise: promise, timeout: timeout))
        promise.futureResult.assumeIsolated().whenComplete { _ in
            // Gone at its deadline or once done; `checkDrainWaiters` finds the rest.
            self.drainWaiters.removeAll { $0.promise.futureResult === promise.futureResult }
        }
        return promise.futureResult
    }

    /// Wakes the waiters whose target is done. Called when a connection or a lane's last copy ends.
    func checkDrainWaiters() {
        guard !self.drainWaiters.isEmpty else { return }
        for waiter in self.drainWaiters where self.remaining(waiter.target) == 0 {
            waiter.timeout.cancel()
            waiter.promise.succeed()
        }
    }
}
