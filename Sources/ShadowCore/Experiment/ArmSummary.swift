/// One arm's per-user values of a metric, summarised: users, and the sum and sum of squares of
/// their values (a binary metric's values are 0 or 1, so the sum is the converted users).
///
/// A per-request metric (clicks per request) also carries ``ratio``: the users' request counts,
/// so the mean is a ratio of sums and its variance comes from the delta method over users,
/// which keeps the user the unit of analysis however many requests a heavy user makes.
public struct ArmSummary: Sendable, Equatable, Codable {
    public var users: Int
    public var sum: Double
    public var sumOfSquares: Double
    /// Set for a per-request metric.
    public var ratio: RatioSums?

    /// Per-user request counts summed, squared and multiplied by the users' values.
    public struct RatioSums: Sendable, Equatable, Codable {
        public var requests: Double = 0
        public var requestsSquared: Double = 0
        public var valueTimesRequests: Double = 0

        public init(requests: Double = 0, requestsSquared: Double = 0, valueTimesRequests: Double = 0) {
            self.requests = requests
            self.requestsSquared = requestsSquared
            self.valueTimesRequests = valueTimesRequests
        }
    }

    public init(users: Int = 0, sum: Double = 0, sumOfSquares: Double = 0, ratio: RatioSums? = nil) {
        self.users = users
        self.sum = sum
        self.sumOfSquares = sumOfSquares
        self.ratio = ratio
    }

    /// An empty summary of a per-request metric.
    public static var perRequest: ArmSummary { ArmSummary(ratio: RatioSums()) }

    /// Adds a user's value (for a per-request metric: the sum over their `requests`).
    public mutating func add(_ value: Double, requests: Int = 1) {
        self.users += 1
        self.sum += value
        self.sumOfSquares += value * value
        if self.ratio != nil {
            let n = Double(requests)
            self.ratio!.requests += n
            self.ratio!.requestsSquared += n * n
            self.ratio!.valueTimesRequests += value * n
        }
    }

    /// The per-user mean, or for a per-request metric the value per request.
    public var mean: Double {
        if let ratio { return ratio.requests == 0 ? 0 : self.sum / ratio.requests }
        return self.users == 0 ? 0 : self.sum / Double(self.users)
    }

    /// The sample variance of the users' values (n − 1). For a per-request metric, that of the
    /// users' linearised values (xᵢ − R·nᵢ) / n̄, so ``varianceOfMean`` is the delta method's
    /// variance of the ratio R and sample sizes plan as for a per-user mean.
    public var variance: Double {
        guard self.users > 1 else { return 0 }
        let n = Double(self.users)
        let valueVariance = max(0, (self.sumOfSquares - self.sum * self.sum / n) / (n - 1))
        guard let ratio, ratio.requests > 0 else { return valueVariance }
        let requestsVariance = max(0, (ratio.requestsSquared - ratio.requests * ratio.requests / n) / (n - 1))
        let covariance = (ratio.valueTimesRequests - self.sum * ratio.requests / n) / (n - 1)
        let r = self.mean
        let meanRequests = ratio.requests / n
        return max(0, valueVariance - 2 * r * covariance + r * r * requestsVariance) / (meanRequests * meanRequests)
    }

    /// The variance of the mean (squared standard error).
    public var varianceOfMean: Double { self.users == 0 ? 0 : self.variance / Double(self.users) }
}
