import GRDB

extension PairStore {
    /// Figures per (route, candidate) over the whole database, for `shadowd demo` and checks.
    public struct CandidateSummary: Sendable, Equatable {
        public var route: String
        public var candidate: String
        public var pairs: Int
        public var compared: Int
        public var diverged: Int
        public var baselineLatencyMicros: Percentiles
        public var candidateLatencyMicros: Percentiles
        public var candidateErrors: [String: Int]

        /// Diverged share of compared pairs.
        public var divergenceRate: Double { self.compared == 0 ? 0 : Double(self.diverged) / Double(self.compared) }
    }

    /// p50 / p99 of a latency column, in microseconds.
    public struct Percentiles: Sendable, Equatable {
        public var p50: Int64
        public var p99: Int64
    }

    /// One summary per (route, candidate).
    public func candidateSummaries() throws -> [CandidateSummary] {
        try self.queue.read { db in
            let keys = try Row.fetchAll(db, sql: "SELECT DISTINCT route, candidate FROM pairs ORDER BY route, candidate")
            return try keys.map { key in
                let route: String = key["route"]
                let candidate: String = key["candidate"]
                let counts = try Row.fetchOne(
                    db,
                    sql: """
                        SELECT count(*) AS pairs, count(divergence) AS compared, coalesce(sum(diverged), 0) AS diverged
                        FROM pairs WHERE route = ? AND candidate = ?
                        """,
                    arguments: [route, candidate]
                )
                var errors: [String: Int] = [:]
                for row in try Row.fetchAll(
                    db,
                    sql: """
                        SELECT candidate_error, count(*) AS n FROM pairs
                        WHERE route = ? AND candidate = ? AND candidate_error IS NOT NULL GROUP BY candidate_error
                        """,
                    arguments: [route, candidate]
                ) {
                    errors[row["candidate_error"]] = row["n"]
                }
                return CandidateSummary(
                    route: route,
                    candidate: candidate,
                    pairs: counts?["pairs"] ?? 0,
                    compared: counts?["compared"] ?? 0,
                    diverged: counts?["diverged"] ?? 0,
                    baselineLatencyMicros: try Self.percentiles(db, column: "baseline_latency_us", route: route, candidate: candidate),
                    candidateLatencyMicros: try Self.percentiles(db, column: "candidate_latency_us", route: route, candidate: candidate),
                    candidateErrors: errors
                )
            }
        }
    }

    private static func percentiles(_ db: Database, column: String, route: String, candidate: String) throws -> Percentiles {
        let values = try Int64.fetchAll(
            db,
            sql: "SELECT \(column) FROM pairs WHERE route = ? AND candidate = ? AND \(column) IS NOT NULL ORDER BY \(column)",
            arguments: [route, candidate]
        )
        guard !values.isEmpty else { return Percentiles(p50: 0, p99: 0) }
        func at(_ quantile: Double) -> Int64 { values[min(values.count - 1, Int(quantile * Double(values.count)))] }
        return Percentiles(p50: at(0.5), p99: at(0.99))
    }

    /// Total count per coverage reason.
    public func coverageTotals() throws -> [String: Int] {
        try self.queue.read { db in
            var totals: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT reason, sum(count) AS n FROM coverage_counts GROUP BY reason") {
                totals[row["reason"]] = row["n"]
            }
            return totals
        }
    }
}
