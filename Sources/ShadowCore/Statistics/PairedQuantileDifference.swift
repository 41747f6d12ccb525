/// The difference between a quantile of the candidate's values and the same quantile of the
/// baseline's, on paired observations (both arms served the same request), with a bootstrap
/// interval.
public struct PairedQuantileDifference: Sendable, Equatable, Codable {
    public var quantile: Double
    /// candidate quantile − baseline quantile.
    public var estimate: Double
    public var lower: Double
    public var upper: Double

    public init(quantile: Double, estimate: Double, lower: Double, upper: Double) {
        self.quantile = quantile
        self.estimate = estimate
        self.lower = lower
        self.upper = upper
    }

    /// Bootstrap intervals for several quantiles at once from one set of resamples.
    ///
    /// Pairs are resampled together, so the correlation between arms (a slow request is slow on
    /// both) narrows the interval as it should. Each replicate costs O(n): a resample is a count
    /// per pair, and the quantiles are read by walking each arm's sorted order once.
    ///
    /// When `pairs` is a uniform subsample (a ``Reservoir``) of `population` pairs, the interval is
    /// the m-out-of-n bootstrap's: the resampled deviations shrink by √(m/population) and centre
    /// on `estimates` (the figures over the whole population, when known).
    ///
    /// - Parameters:
    ///   - pairs: (baseline, candidate) observations.
    ///   - quantiles: in (0, 1), e.g. 0.5 and 0.99.
    ///   - population: how many pairs the sample stands for; `pairs.count` when it is all of them.
    ///   - estimates: the point estimates to centre on, one per quantile; `nil` uses the sample's.
    ///   - replicates: bootstrap resamples.
    ///   - confidence: the interval's level.
    ///   - seed: the resampling seed, so a report is reproducible.
    public static func bootstrap(
        pairs: [(baseline: Double, candidate: Double)],
        quantiles: [Double],
        population: Int? = nil,
        estimates: [Double]? = nil,
        replicates: Int = 1000,
        confidence: Double = 0.95,
        seed: UInt64 = 0x5EED
    ) -> [PairedQuantileDifference] {
        let n = pairs.count
        guard n > 0 else { return [] }
        precondition(n < 1 << 32, "the sample must have fewer than 2^32 pairs")
        let baselineOrder = (0..<n).sorted { pairs[$0].baseline < pairs[$1].baseline }
        let candidateOrder = (0..<n).sorted { pairs[$0].candidate < pairs[$1].candidate }
        let ranks = quantiles.map { Self.rank($0, of: n) }
        let sampleEstimates = ranks.map { rank in pairs[candidateOrder[rank]].candidate - pairs[baselineOrder[rank]].baseline }
        let centres = estimates ?? sampleEstimates
        var differences = [[Double]](repeating: [], count: quantiles.count)
        for index in differences.indices { differences[index].reserveCapacity(replicates) }
        var random = SplitMix64(seed: seed)
        var counts = [Int32](repeating: 0, count: n)
        for _ in 0..<replicates {
            for index in counts.indices { counts[index] = 0 }
            // Multiply-shift instead of a modulo: a uniform index without a division per draw.
            for _ in 0..<n { counts[Int(((random.next() >> 32) &* UInt64(n)) >> 32)] &+= 1 }
            let baselineValues = Self.values(at: ranks, order: baselineOrder, counts: counts) { pairs[$0].baseline }
            let candidateValues = Self.values(at: ranks, order: candidateOrder, counts: counts) { pairs[$0].candidate }
            for index in ranks.indices { differences[index].append(candidateValues[index] - baselineValues[index]) }
        }
        let scale = (Double(n) / Double(max(population ?? n, n))).squareRoot()
        let tail = (1 - confidence) / 2
        return quantiles.indices.map { index in
            let sorted = differences[index].sorted()
            let low = sorted[Self.rank(tail, of: sorted.count)]
            let high = sorted[Self.rank(1 - tail, of: sorted.count)]
            let centre = centres[index]
            let sample = sampleEstimates[index]
            return PairedQuantileDifference(
                quantile: quantiles[index],
                estimate: centre,
                lower: centre + (low - sample) * scale,
                upper: centre + (high - sample) * scale
            )
        }
    }

    /// Nearest-rank definition: the smallest value with at least a share `q` of values at or below it.
    static func rank(_ q: Double, of n: Int) -> Int {
        // q·n within rounding error of a whole number is that number: (1 − 0.95) / 2 is
        // 0.025000000000000022 in floating point, and 0.025 · 1,000 must give the 25th value,
        // not the 26th.
        let position = q * Double(n)
        let nearest = position.rounded()
        let k = abs(position - nearest) <= 1e-9 * max(1, position) ? nearest : position.rounded(.up)
        return min(n - 1, max(0, Int(k) - 1))
    }

    private static func values(at ranks: [Int], order: [Int], counts: [Int32], value: (Int) -> Double) -> [Double] {
        var result = [Double](repeating: 0, count: ranks.count)
        var cumulative = 0
        var next = 0
        // Ranks ascend with the quantiles; one walk answers all of them.
        let sortedRanks = ranks.enumerated().sorted { $0.element < $1.element }
        for index in order {
            cumulative += Int(counts[index])
            while next < sortedRanks.count, cumulative > sortedRanks[next].element {
                result[sortedRanks[next].offset] = value(index)
                next += 1
            }
            if next == sortedRanks.count { break }
        }
        return result
    }
}
