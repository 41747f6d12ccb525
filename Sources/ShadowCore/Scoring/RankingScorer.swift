/// Ranked results (recommendations, search): 1 − rank-biased overlap at depth k.
///
/// The explanation adds Jaccard@k, Kendall's tau over the items both lists share, and each
/// side's distinct-item count (a candidate that loses diversity shows up there first).
public struct RankingScorer: ValueScorer {
    public let name = "ranking"
    let configuration: ScorerConfiguration

    public init(configuration: ScorerConfiguration) {
        self.configuration = configuration
    }

    func compare(_ baseline: JSONValue, _ candidate: JSONValue, documents: DocumentPair) -> Score {
        let k = self.configuration.k
        let left = Array(baseline.rankedItems.prefix(k))
        let right = Array(candidate.rankedItems.prefix(k))
        let rbo = Self.rankBiasedOverlap(left, right, p: self.configuration.rboP)
        let value = min(1, max(0, 1 - rbo))
        return Score(
            value: value,
            diverged: self.diverged(value),
            explanation: .object([
                ("rbo", .number(rbo)),
                ("jaccard_at_k", .number(Self.jaccard(left, right))),
                ("kendall_tau_shared", Self.kendallTau(left, right).map { .number($0) } ?? .null),
                ("baseline_distinct", .number(Double(Set(left).count))),
                ("candidate_distinct", .number(Double(Set(right).count))),
                ("k", .number(Double(k))),
            ]),
            differingPaths: value > 0 ? ["ranking"] : []
        )
    }

    /// Extrapolated RBO (Webber, Moffat & Zobel 2010, eq. 32) for lists cut at the same depth;
    /// 1 for identical lists, 0 for disjoint ones.
    static func rankBiasedOverlap(_ a: [String], _ b: [String], p: Double) -> Double {
        let depth = max(a.count, b.count)
        guard depth > 0 else { return 1 }
        var seenA: Set<String> = []
        var seenB: Set<String> = []
        var overlap = 0
        var sum = 0.0
        var weight = 1.0
        var agreementAtDepth = 0.0
        for d in 1...depth {
            let x = d <= a.count ? a[d - 1] : nil
            let y = d <= b.count ? b[d - 1] : nil
            if let x, let y, x == y {
                overlap += 1
            } else {
                if let x {
                    if seenB.contains(x) { overlap += 1 }
                    seenA.insert(x)
                }
                if let y {
                    if seenA.contains(y) { overlap += 1 }
                    seenB.insert(y)
                }
            }
            if let x, let y, x == y {
                seenA.insert(x)
                seenB.insert(y)
            }
            agreementAtDepth = Double(overlap) / Double(d)
            sum += weight * agreementAtDepth
            weight *= p
        }
        // weight is now p^depth
        return min(1, (1 - p) * sum + weight * agreementAtDepth)
    }

    static func jaccard(_ a: [String], _ b: [String]) -> Double {
        let left = Set(a)
        let right = Set(b)
        let union = left.union(right)
        return union.isEmpty ? 1 : Double(left.intersection(right).count) / Double(union.count)
    }

    /// Kendall's tau-a over the items present in both lists, or `nil` with fewer than two.
    static func kendallTau(_ a: [String], _ b: [String]) -> Double? {
        var positionInB: [String: Int] = [:]
        for (index, item) in b.enumerated() where positionInB[item] == nil { positionInB[item] = index }
        var seen: Set<String> = []
        // Positions in b of the shared items, in a's order: tau counts the pairs kept in order.
        let positions = a.compactMap { item -> Int? in seen.insert(item).inserted ? positionInB[item] : nil }
        guard positions.count >= 2 else { return nil }
        var concordant = 0
        var discordant = 0
        for i in 0..<positions.count {
            for j in (i + 1)..<positions.count {
                if positions[i] < positions[j] { concordant += 1 } else { discordant += 1 }
            }
        }
        return Double(concordant - discordant) / Double(concordant + discordant)
    }
}
