import Synchronization

/// Per-minute counts of coverage reasons, filled on the request path and drained by the writer.
///
/// One short lock per count; the writer drains it inside the same transaction as the records, so
/// the coverage table and the pairs never disagree by more than the unflushed batch.
public final class CoverageCounter: Sendable {
    /// One cell of the coverage table.
    public struct Key: Sendable, Hashable {
        /// Start of the minute, seconds since the Unix epoch.
        public var minute: Int64
        public var route: String
        /// Empty for reasons that concern the request rather than a candidate.
        public var candidate: String
        public var reason: CoverageReason

        public init(minute: Int64, route: String, candidate: String, reason: CoverageReason) {
            self.minute = minute
            self.route = route
            self.candidate = candidate
            self.reason = reason
        }
    }

    private let counts = Mutex<[Key: Int]>([:])

    public init() {}

    /// Counts one event at the given wall-clock time.
    public func add(route: String, candidate: String = "", reason: CoverageReason, atMicros: Int64, count: Int = 1) {
        let key = Key(minute: atMicros / 60_000_000 * 60, route: route, candidate: candidate, reason: reason)
        self.counts.withLock { $0[key, default: 0] += count }
    }

    /// Takes every count accumulated so far.
    public func drain() -> [Key: Int] {
        self.counts.withLock { counts in
            let taken = counts
            counts.removeAll(keepingCapacity: true)
            return taken
        }
    }

    /// Puts counts back, e.g. after a failed transaction.
    public func restore(_ taken: [Key: Int]) {
        self.counts.withLock { counts in
            for (key, value) in taken { counts[key, default: 0] += value }
        }
    }

    /// A copy of the counts not yet drained.
    public func snapshot() -> [Key: Int] {
        self.counts.withLock { $0 }
    }
}
