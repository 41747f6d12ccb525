/// Stops mirroring to a candidate that is failing, and tries it again carefully.
///
/// Closed: every copy goes; outcomes fill a sliding window of one-second buckets. When the window
/// holds at least `minCalls` and the error rate, timeout rate or p99 latency crosses its limit,
/// or `consecutiveFailures` calls in a row failed at the transport (a partition: the window's
/// earlier successes would dilute the rate for many seconds), the breaker opens: no copies. After
/// `coolDown` it is half-open: a `halfOpenPercent` share of copies go as probes; after
/// `halfOpenCalls` probe outcomes it closes if they are healthy, or opens again.
///
/// Every state change starts a new epoch, and an outcome counts only in the epoch its copy was
/// admitted in: copies queued or in flight before the breaker opened never decide a half-open
/// breaker, only its probes do. A value type with the time passed in: every path is unit-tested
/// without a clock.
public struct CircuitBreaker: Sendable {
    public enum State: String, Sendable, Equatable, CaseIterable {
        case closed
        case open
        case halfOpen = "half_open"
    }

    /// A state change, to log, count and record.
    public struct Transition: Sendable, Equatable {
        public var from: State
        public var to: State
        public var reason: String
    }

    public let configuration: CircuitBreakerConfiguration
    public private(set) var state: State = .closed
    /// Incremented on every state change; ``admit(nowNanos:draw:)`` hands it to the copy.
    public private(set) var epoch: UInt64 = 0
    /// Transport failures in a row (closed state).
    public private(set) var failureStreak = 0
    private var buckets: [Bucket]
    private var openedAtNanos: UInt64 = 0
    private var probes = Bucket(second: 0)
    private var probesInFlight = 0

    /// Latency bins: bin i holds latencies below 2^(i/2) · 100 µs (√2 steps up to ~4.7 min).
    static let latencyBins = 44

    struct Bucket: Sendable {
        var second: UInt64
        var calls = 0
        var errors = 0
        var timeouts = 0
        var latencies = [Int32](repeating: 0, count: CircuitBreaker.latencyBins)

        mutating func add(failure: Bool, timeout: Bool, latencyMicros: Int64?) {
            self.calls += 1
            if failure { self.errors += 1 }
            if timeout { self.timeouts += 1 }
            if let latencyMicros { self.latencies[CircuitBreaker.bin(latencyMicros)] += 1 }
        }

        mutating func merge(_ other: Bucket) {
            self.calls += other.calls
            self.errors += other.errors
            self.timeouts += other.timeouts
            for index in self.latencies.indices { self.latencies[index] += other.latencies[index] }
        }
    }

    public init(configuration: CircuitBreakerConfiguration) {
        self.configuration = configuration
        let seconds = max(1, Int(configuration.window.microseconds / 1_000_000))
        self.buckets = (0..<seconds).map { _ in Bucket(second: UInt64.max) }
    }

    static func bin(_ micros: Int64) -> Int {
        var bound = 100.0
        for index in 0..<(Self.latencyBins - 1) {
            if Double(micros) < bound { return index }
            bound *= 2.0.squareRoot()
        }
        return Self.latencyBins - 1
    }

    /// The upper bound of a latency bin, in microseconds.
    static func binUpperMicros(_ index: Int) -> Double {
        var bound = 100.0
        for _ in 0..<index { bound *= 2.0.squareRoot() }
        return bound
    }

    /// Whether this copy may go to the candidate.
    /// - Parameter draw: a uniform draw in [0, 1), for the half-open share.
    public mutating func admit(nowNanos: UInt64, draw: Double) -> (admitted: Bool, transition: Transition?) {
        switch self.state {
        case .closed:
            return (true, nil)
        case .open:
            guard nowNanos >= self.openedAtNanos &+ UInt64(self.configuration.coolDown.microseconds) * 1000 else { return (false, nil) }
            self.state = .halfOpen
            self.epoch &+= 1
            self.probes = Bucket(second: 0)
            self.probesInFlight = 0
            let transition = Transition(from: .open, to: .halfOpen, reason: "cool-down of \(Units.format(self.configuration.coolDown)) over")
            return (self.admitProbe(draw), transition)
        case .halfOpen:
            return (self.admitProbe(draw), nil)
        }
    }

    private mutating func admitProbe(_ draw: Double) -> Bool {
        guard self.probes.calls + self.probesInFlight < self.configuration.halfOpenCalls,
            draw * 100 < self.configuration.halfOpenPercent
        else { return false }
        self.probesInFlight += 1
        return true
    }

    /// An admitted copy that never went (its queue was full, or it waited too long): frees its
    /// probe slot.
    /// - Parameter epoch: the epoch the copy was admitted in (`nil`: the current one).
    public mutating func cancel(epoch: UInt64? = nil) {
        guard epoch == nil || epoch == self.epoch else { return }
        if self.state == .halfOpen { self.probesInFlight = max(0, self.probesInFlight - 1) }
    }

    /// Records one call's outcome.
    /// - Parameters:
    ///   - failure: a transport error or a 5xx answer.
    ///   - transportFailure: no answer at all (refused, connect timeout, timeout, reset, not
    ///     HTTP); these in a row open the breaker.
    ///   - epoch: the epoch the copy was admitted in; an outcome from an earlier epoch is ignored
    ///     (`nil`: count it in the current one).
    public mutating func record(
        nowNanos: UInt64,
        failure: Bool,
        timeout: Bool,
        latencyMicros: Int64?,
        transportFailure: Bool = false,
        epoch: UInt64? = nil
    ) -> Transition? {
        if let epoch, epoch != self.epoch { return nil }
        switch self.state {
        case .closed:
            self.failureStreak = transportFailure ? self.failureStreak + 1 : 0
            let limit = self.configuration.consecutiveFailures
            if limit > 0, self.failureStreak >= limit {
                return self.open(nowNanos: nowNanos, from: .closed, reason: "\(self.failureStreak) transport failures in a row")
            }
            let second = nowNanos / 1_000_000_000
            let slot = Int(second % UInt64(self.buckets.count))
            if self.buckets[slot].second != second { self.buckets[slot] = Bucket(second: second) }
            self.buckets[slot].add(failure: failure, timeout: timeout, latencyMicros: latencyMicros)
            var window = Bucket(second: second)
            for bucket in self.buckets where bucket.second != UInt64.max && bucket.second + UInt64(self.buckets.count) > second {
                window.merge(bucket)
            }
            guard window.calls >= self.configuration.minCalls, let reason = self.unhealthy(window) else { return nil }
            return self.open(nowNanos: nowNanos, from: .closed, reason: reason)
        case .halfOpen:
            self.probesInFlight = max(0, self.probesInFlight - 1)
            self.probes.add(failure: failure, timeout: timeout, latencyMicros: latencyMicros)
            guard self.probes.calls >= self.configuration.halfOpenCalls else { return nil }
            if let reason = self.unhealthy(self.probes) {
                return self.open(nowNanos: nowNanos, from: .halfOpen, reason: "probes: " + reason)
            }
            self.state = .closed
            self.epoch &+= 1
            self.failureStreak = 0
            for index in self.buckets.indices { self.buckets[index] = Bucket(second: UInt64.max) }
            return Transition(from: .halfOpen, to: .closed, reason: "\(self.probes.calls) probes healthy")
        case .open:
            // Calls admitted before the breaker opened finish late; they say nothing new.
            return nil
        }
    }

    private mutating func open(nowNanos: UInt64, from: State, reason: String) -> Transition {
        self.state = .open
        self.epoch &+= 1
        self.failureStreak = 0
        self.openedAtNanos = nowNanos
        return Transition(from: from, to: .open, reason: reason)
    }

    /// Why the outcomes breach a limit, or `nil` when they do not.
    private func unhealthy(_ window: Bucket) -> String? {
        let calls = Double(max(window.calls, 1))
        let errorRate = Double(window.errors) / calls
        if errorRate > self.configuration.maxErrorRate {
            return
                "error rate \(Units.formatPercent(errorRate)) over \(window.calls) calls above \(Units.formatPercent(self.configuration.maxErrorRate))"
        }
        let timeoutRate = Double(window.timeouts) / calls
        if timeoutRate > self.configuration.maxTimeoutRate {
            return
                "timeout rate \(Units.formatPercent(timeoutRate)) over \(window.calls) calls above \(Units.formatPercent(self.configuration.maxTimeoutRate))"
        }
        if let limit = self.configuration.maxP99 {
            let timed = window.latencies.reduce(0) { $0 + Int($1) }
            if timed > 0 {
                var cumulative = 0
                let rank = Int((0.99 * Double(timed)).rounded(.up))
                for (index, count) in window.latencies.enumerated() {
                    cumulative += Int(count)
                    if cumulative >= rank {
                        // The bin's lower bound: p99 is at least this.
                        let lower = index == 0 ? 0 : Self.binUpperMicros(index - 1)
                        if lower >= Double(limit.microseconds) {
                            return "p99 latency at least \(Units.formatMicros(lower)) above \(Units.format(limit))"
                        }
                        break
                    }
                }
            }
        }
        return nil
    }
}

/// The limits of a candidate's circuit breaker.
public struct CircuitBreakerConfiguration: Sendable, Equatable {
    /// The sliding window the rates are measured over (whole seconds).
    public var window: Duration
    /// Fewer outcomes in the window never open the breaker.
    public var minCalls: Int
    /// Share of failed calls (transport errors and 5xx) above which it opens.
    public var maxErrorRate: Double
    public var maxTimeoutRate: Double
    /// A p99 above this opens it; `nil` does not check latency.
    public var maxP99: Duration?
    /// How long it stays open before probing.
    public var coolDown: Duration
    /// Share of copies sent as probes while half-open, 0...100.
    public var halfOpenPercent: Double
    /// Probe outcomes needed to decide.
    public var halfOpenCalls: Int
    /// Transport failures in a row (refused, connect timeout, timeout, reset) that open it
    /// whatever the window says; 0 turns the rule off.
    public var consecutiveFailures: Int

    public init(
        window: Duration = .seconds(30),
        minCalls: Int = 20,
        maxErrorRate: Double = 0.5,
        maxTimeoutRate: Double = 0.5,
        maxP99: Duration? = nil,
        coolDown: Duration = .seconds(30),
        halfOpenPercent: Double = 10,
        halfOpenCalls: Int = 10,
        consecutiveFailures: Int = 10
    ) {
        self.window = window
        self.minCalls = minCalls
        self.maxErrorRate = maxErrorRate
        self.maxTimeoutRate = maxTimeoutRate
        self.maxP99 = maxP99
        self.coolDown = coolDown
        self.halfOpenPercent = halfOpenPercent
        self.halfOpenCalls = halfOpenCalls
        self.consecutiveFailures = consecutiveFailures
    }
}
