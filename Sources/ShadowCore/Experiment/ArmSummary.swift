/// One arm's per-user values of a metric, summarised: users, and the sum and sum of squares of
/// their values (a binary metric's values are 0 or 1, so the sum is the converted users).
public struct ArmSummary: Sendable, Equatable, Codable {
    public var users: Int
    public var sum: Double
    public var sumOfSquares: Double

    public init(users: Int = 0, sum: Double = 0, sumOfSquares: Double = 0) {
        self.users = users
        self.sum = sum
        self.sumOfSquares = sumOfSquares
    }

    public mutating func add(_ value: Double) {
        self.users += 1
        self.sum += value
        self.sumOfSquares += value * value
    }

    public var mean: Double { self.users == 0 ? 0 : self.sum / Double(self.users) }

    /// The sample variance of the users' values (n − 1).
    public var variance: Double {
        guard self.users > 1 else { return 0 }
        let n = Double(self.users)
        return max(0, (self.sumOfSquares - self.sum * self.sum / n) / (n - 1))
    }

    /// The variance of the mean (squared standard error).
    public var varianceOfMean: Double { self.users == 0 ? 0 : self.variance / Double(self.users) }
}
