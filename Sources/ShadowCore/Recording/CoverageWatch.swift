/// Watches each candidate's compared share over the last minute, so a candidate that silently
/// stops being compared (far away, partitioned, too slow for its call slots) is said out loud.
///
/// The share is compared copies over the copies the configuration meant to compare: copies that
/// were sent or should have been (compared, candidate errors, breaker open, queue full or
/// expired, recorder full, write failed). Requests left out on purpose (not sampled, gated, rate
/// or budget capped, body too large) and those without a baseline answer do not count. An episode
/// starts when the share falls below the threshold with at least `minimumCopies` in the window,
/// and ends when it is back at or above it: one alert each way, not one per batch. The end is
/// judged only once a whole window lies inside the episode: until then the window still holds
/// counts from before it, and compared pairs reach the watch later than drops do (they are
/// counted when written, drops at once), so a recorder running behind would make the share
/// dip, rise and dip again at the episode's start.
///
/// A value type with the time passed in: tested without a clock.
public struct CoverageWatch: Sendable {
    /// A candidate whose share crossed the threshold.
    public struct Alert: Sendable, Equatable {
        public var route: String
        public var candidate: String
        /// Compared share over the window, 0…1.
        public var share: Double
        public var compared: Int
        public var intended: Int
        /// `true`: the share fell below the threshold; `false`: it recovered.
        public var low: Bool
    }

    /// One candidate's counts in one bucket of the window.
    struct Counts: Sendable {
        var compared = 0
        var intended = 0
    }

    struct Key: Hashable, Sendable {
        var route: String
        var candidate: String
    }

    public let threshold: Double
    public let minimumCopies: Int
    /// Buckets of `bucketSeconds` covering the window.
    static let bucketSeconds: UInt64 = 10
    static let bucketCount = 6
    private var buckets: [Key: [(second: UInt64, counts: Counts)]] = [:]
    /// Candidates in an episode, and when it started (seconds, monotonic).
    private var low: [Key: UInt64] = [:]

    /// - Parameters:
    ///   - threshold: a share below it starts an episode (0 turns the watch off).
    ///   - minimumCopies: fewer intended copies in the window are not judged.
    public init(threshold: Double, minimumCopies: Int = 100) {
        self.threshold = threshold
        self.minimumCopies = minimumCopies
    }

    /// Whether a reason counts towards the share (and whether as compared).
    static func counts(_ reason: CoverageReason) -> (intended: Bool, compared: Bool) {
        switch reason {
        case .compared: (true, true)
        case .candidateError, .circuitOpen, .queueFull, .queueExpired, .recorderFull, .writeFailed: (true, false)
        default: (false, false)
        }
    }

    /// Adds one batch's coverage counts, seen at `nowNanos` (monotonic).
    public mutating func add(_ coverage: [CoverageCounter.Key: Int], nowNanos: UInt64) {
        let start = nowNanos / 1_000_000_000 / Self.bucketSeconds * Self.bucketSeconds
        for (key, count) in coverage where count > 0 && !key.candidate.isEmpty {
            let (intended, compared) = Self.counts(key.reason)
            guard intended else { continue }
            let cell = Key(route: key.route, candidate: key.candidate)
            var ring = self.buckets[cell] ?? []
            if ring.last?.second != start { ring.append((start, Counts())) }
            ring[ring.count - 1].counts.intended += count
            if compared { ring[ring.count - 1].counts.compared += count }
            self.buckets[cell] = ring
        }
    }

    /// Each watched candidate's share over the window ending at `nowNanos`, with its counts.
    public mutating func shares(nowNanos: UInt64) -> [(route: String, candidate: String, share: Double, compared: Int, intended: Int)] {
        let oldest = (nowNanos / 1_000_000_000).saturatingSubtract(Self.bucketSeconds * UInt64(Self.bucketCount))
        var result: [(route: String, candidate: String, share: Double, compared: Int, intended: Int)] = []
        for (key, ring) in self.buckets {
            let kept = ring.filter { $0.second + Self.bucketSeconds > oldest }
            self.buckets[key] = kept
            let compared = kept.reduce(0) { $0 + $1.counts.compared }
            let intended = kept.reduce(0) { $0 + $1.counts.intended }
            result.append((key.route, key.candidate, intended == 0 ? 1 : Double(compared) / Double(intended), compared, intended))
        }
        return result.sorted { ($0.route, $0.candidate) < ($1.route, $1.candidate) }
    }

    /// The episodes that started or ended by `nowNanos`.
    public mutating func evaluate(nowNanos: UInt64) -> [Alert] {
        guard self.threshold > 0 else { return [] }
        var alerts: [Alert] = []
        for entry in self.shares(nowNanos: nowNanos) {
            let key = Key(route: entry.route, candidate: entry.candidate)
            let now = nowNanos / 1_000_000_000
            let lowSince = self.low[key]
            let isLow = entry.intended >= self.minimumCopies && entry.share < self.threshold
            // Recovery needs the share back, not just a quiet window, over a window that began
            // after the episode did.
            let recovered =
                lowSince.map { now >= $0 + Self.bucketSeconds * UInt64(Self.bucketCount) } == true && entry.intended > 0
                && entry.share >= self.threshold
            if isLow && lowSince == nil {
                self.low[key] = now
            } else if recovered {
                self.low[key] = nil
            } else {
                continue
            }
            alerts.append(
                Alert(
                    route: entry.route,
                    candidate: entry.candidate,
                    share: entry.share,
                    compared: entry.compared,
                    intended: entry.intended,
                    low: isLow
                )
            )
        }
        return alerts
    }
}

extension UInt64 {
    fileprivate func saturatingSubtract(_ other: UInt64) -> UInt64 { self > other ? self - other : 0 }
}
