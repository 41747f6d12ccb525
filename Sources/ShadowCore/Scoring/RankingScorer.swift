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
        // Items become small integers once; every measure below indexes arrays instead of hashing.
        var ids: [String: Int32] = [:]
        let left = Self.intern(baseline.rankedItems.prefix(k), &ids)
        let right = Self.intern(candidate.rankedItems.prefix(k), &ids)
        let lists = Lists(left, right, alphabet: ids.count)
        let rbo = lists.rankBiasedOverlap(p: self.configuration.rboP)
        let value = min(1, max(0, 1 - rbo))
        return Score(
            value: value,
            diverged: self.diverged(value),
            explanation: .object([
                ("rbo", .number(rbo)),
                ("jaccard_at_k", .number(lists.jaccard)),
                ("kendall_tau_shared", lists.kendallTau.map { .number($0) } ?? .null),
                ("baseline_distinct", .number(Double(lists.distinct.left))),
                ("candidate_distinct", .number(Double(lists.distinct.right))),
                ("k", .number(Double(k))),
            ]),
            differingPaths: value > 0 ? ["ranking"] : []
        )
    }

    static func intern(_ items: some Sequence<String>, _ ids: inout [String: Int32]) -> [Int32] {
        items.map { item in
            if let id = ids[item] { return id }
            let id = Int32(ids.count)
            ids[item] = id
            return id
        }
    }

    /// Two ranked lists of interned items.
    struct Lists {
        let a: [Int32]
        let b: [Int32]
        /// Per item: bit 1 when in `a`, bit 2 when in `b`.
        let membership: [UInt8]

        init(_ a: [Int32], _ b: [Int32], alphabet: Int) {
            self.a = a
            self.b = b
            var membership = [UInt8](repeating: 0, count: alphabet)
            for id in a { membership[Int(id)] |= 1 }
            for id in b { membership[Int(id)] |= 2 }
            self.membership = membership
        }

        var distinct: (left: Int, right: Int) {
            self.membership.reduce(into: (0, 0)) { counts, bits in
                counts.0 += Int(bits & 1)
                counts.1 += Int(bits >> 1)
            }
        }

        var jaccard: Double {
            let union = self.membership.reduce(0) { $0 + ($1 == 0 ? 0 : 1) }
            let both = self.membership.reduce(0) { $0 + ($1 == 3 ? 1 : 0) }
            return union == 0 ? 1 : Double(both) / Double(union)
        }

        /// Extrapolated RBO (Webber, Moffat & Zobel 2010, eq. 32) for lists cut at the same depth;
        /// 1 for identical lists, 0 for disjoint ones.
        func rankBiasedOverlap(p: Double) -> Double {
            let depth = max(self.a.count, self.b.count)
            guard depth > 0 else { return 1 }
            var seenA = [Bool](repeating: false, count: self.membership.count)
            var seenB = seenA
            var overlap = 0
            var sum = 0.0
            var weight = 1.0
            var agreementAtDepth = 0.0
            for d in 1...depth {
                let x = d <= self.a.count ? Int(self.a[d - 1]) : -1
                let y = d <= self.b.count ? Int(self.b[d - 1]) : -1
                if x >= 0, x == y {
                    overlap += 1
                    seenA[x] = true
                    seenB[x] = true
                } else {
                    if x >= 0 {
                        if seenB[x] { overlap += 1 }
                        seenA[x] = true
                    }
                    if y >= 0 {
                        if seenA[y] { overlap += 1 }
                        seenB[y] = true
                    }
                }
                agreementAtDepth = Double(overlap) / Double(d)
                sum += weight * agreementAtDepth
                weight *= p
            }
            // weight is now p^depth
            return min(1, (1 - p) * sum + weight * agreementAtDepth)
        }

        /// Kendall's tau-a over the items present in both lists, or `nil` with fewer than two.
        var kendallTau: Double? {
            var positionInB = [Int](repeating: -1, count: self.membership.count)
            for (index, id) in self.b.enumerated() where positionInB[Int(id)] < 0 { positionInB[Int(id)] = index }
            var seen = [Bool](repeating: false, count: self.membership.count)
            // Positions in b of the shared items, in a's order: tau counts the pairs kept in order.
            var positions: [Int] = []
            for id in self.a where !seen[Int(id)] {
                seen[Int(id)] = true
                if positionInB[Int(id)] >= 0 { positions.append(positionInB[Int(id)]) }
            }
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

    static func lists(_ a: [String], _ b: [String]) -> Lists {
        var ids: [String: Int32] = [:]
        let left = Self.intern(a, &ids)
        let right = Self.intern(b, &ids)
        return Lists(left, right, alphabet: ids.count)
    }

    static func rankBiasedOverlap(_ a: [String], _ b: [String], p: Double) -> Double { Self.lists(a, b).rankBiasedOverlap(p: p) }

    static func jaccard(_ a: [String], _ b: [String]) -> Double { Self.lists(a, b).jaccard }

    static func kendallTau(_ a: [String], _ b: [String]) -> Double? { Self.lists(a, b).kendallTau }
}
