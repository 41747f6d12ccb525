import NIOCore
import Synchronization

/// The address a listener bound, for whoever needs it (tests and the demo bind port 0).
public final class AddressPromise: Sendable {
    private let state = Mutex<(address: SocketAddress?, failed: Bool, waiters: [CheckedContinuation<SocketAddress?, Never>])>((nil, false, []))

    public init() {}

    func fulfil(_ address: SocketAddress?) {
        let waiters = self.state.withLock { state in
            state.address = address
            state.failed = address == nil
            let waiters = state.waiters
            state.waiters = []
            return waiters
        }
        for waiter in waiters { waiter.resume(returning: address) }
    }

    /// Waits until the listener is bound; `nil` when binding failed.
    public func get() async -> SocketAddress? {
        await withCheckedContinuation { continuation in
            let ready: SocketAddress?? = self.state.withLock { state in
                if state.address != nil || state.failed { return .some(state.address) }
                state.waiters.append(continuation)
                return .none
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Waits until the listener is bound and returns its port; `nil` when binding failed.
    public func port() async -> Int? {
        await self.get()?.port
    }

    /// The bound address if known now.
    public var current: SocketAddress? { self.state.withLock { $0.address } }
}
