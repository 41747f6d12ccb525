import Synchronization

/// A change of a gate's state (a circuit breaker opening, say), recorded with the pairs so the
/// report can put it on the timeline.
public struct GatingEvent: Sendable, Equatable {
    public var atMicros: Int64
    public var route: String
    public var candidate: String
    /// `circuit_breaker`.
    public var kind: String
    public var from: String
    public var to: String
    public var reason: String

    public init(atMicros: Int64, route: String, candidate: String, kind: String, from: String, to: String, reason: String) {
        self.atMicros = atMicros
        self.route = route
        self.candidate = candidate
        self.kind = kind
        self.from = from
        self.to = to
        self.reason = reason
    }
}

/// Gate events waiting for the writer: appended from any event loop, drained with each batch.
public final class GatingEventLog: Sendable {
    private let events = Mutex<[GatingEvent]>([])

    public init() {}

    public func append(_ event: GatingEvent) {
        self.events.withLock { $0.append(event) }
    }

    public func drain() -> [GatingEvent] {
        self.events.withLock { events in
            defer { events = [] }
            return events
        }
    }

    /// Puts back events a failed transaction did not write.
    public func restore(_ drained: [GatingEvent]) {
        guard !drained.isEmpty else { return }
        self.events.withLock { $0.insert(contentsOf: drained, at: 0) }
    }
}
