/// A token bucket: `rate` tokens a second, at most `burst` saved up. Time is passed in, so it is
/// tested without sleeping.
public struct TokenBucket: Sendable, Equatable {
    public let rate: Double
    public let burst: Double
    private var tokens: Double
    private var lastNanos: UInt64?

    public init(rate: Double, burst: Double) {
        precondition(rate > 0 && burst >= 1, "rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self.tokens = burst
    }

    /// Takes one token if there is one.
    public mutating func take(nowNanos: UInt64) -> Bool {
        if let last = self.lastNanos, nowNanos > last {
            self.tokens = min(self.burst, self.tokens + Double(nowNanos - last) / 1e9 * self.rate)
        }
        self.lastNanos = max(self.lastNanos ?? nowNanos, nowNanos)
        guard self.tokens >= 1 else { return false }
        self.tokens -= 1
        return true
    }
}

/// At most `limit` units per UTC day (requests, or cost units).
public struct DailyBudget: Sendable, Equatable {
    public let limit: Double
    private var day: Int64 = -1
    public private(set) var used: Double = 0

    public init(limit: Double) {
        self.limit = limit
    }

    /// Spends `amount` if it fits in today's budget.
    /// - Parameter nowMicros: wall-clock time, microseconds since the epoch.
    public mutating func spend(_ amount: Double, nowMicros: Int64) -> Bool {
        self.roll(nowMicros)
        // A budget charged to its limit (or past it, after the fact) admits nothing more,
        // not even something priced at zero up front.
        guard self.used < self.limit, self.used + amount <= self.limit else { return false }
        self.used += amount
        return true
    }

    /// Records `amount` already spent (known only after the fact, like a call's token cost):
    /// it counts against today's budget even if it overshoots it.
    public mutating func charge(_ amount: Double, nowMicros: Int64) {
        self.roll(nowMicros)
        self.used += amount
    }

    private mutating func roll(_ nowMicros: Int64) {
        let day = nowMicros / 86_400_000_000
        if day != self.day {
            self.day = day
            self.used = 0
        }
    }
}
