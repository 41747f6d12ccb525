import GRDB
import ShadowCore

extension PairReader {
    /// An enrolled user as one database saw them.
    public struct ExperimentUser: Sendable {
        public var arm: ExperimentArm
        public var firstExposedMicros: Int64
        public var lastSeenMicros: Int64
        public var requests: Int
        public var fallbacks: Int
        /// The smallest segment the user's requests had (usually their only one).
        public var segment: String?
        /// Seen in both arms: the assignment misbehaved.
        public var conflicting: Bool
    }

    /// One outcome event as the analysis needs it: the user it belongs to (by its request's key
    /// or its own), when, the metric and value.
    public struct ExperimentOutcome: Sendable {
        public var key: String
        /// The request the event names (nil for an event by key).
        public var requestID: String?
        public var viaRequest: Bool { self.requestID != nil }
        public var atMicros: Int64
        public var metric: String
        public var value: Double
    }

    /// One experiment's raw material from this file: enrolled users, outcomes that name a user
    /// (by request id or key), the persisted state, and enrolled requests per UTC day and arm.
    public struct ExperimentData: Sendable {
        public var users: [String: ExperimentUser] = [:]
        public var outcomes: [ExperimentOutcome] = []
        /// Outcome events of the experiment's metrics whose request id is not (yet) recorded here.
        public var unmatchedByRequest = 0
        public var state: PairStore.ExperimentState?
        /// (day number since 1970, arm) → (users, requests).
        public var days: [Int64: [ExperimentArm: (users: Int, requests: Int)]] = [:]
    }

    /// Reads an experiment's users, outcomes and state (schema 8 and later; empty before).
    public func experimentData(_ experiment: String, metrics: [String], fromMicros: Int64?, toMicros: Int64?) throws -> ExperimentData {
        var data = ExperimentData()
        guard self.schemaVersion >= 8 else { return data }
        let window = "AND received_at_us >= ? AND received_at_us < ?"
        let bounds: [Int64] = [fromMicros ?? Int64.min, toMicros ?? Int64.max]
        try self.queue.read { db in
            let users = try Row.fetchCursor(
                db,
                sql: """
                    SELECT experiment_key, min(arm) AS low, max(arm) AS high, min(received_at_us) AS first, max(received_at_us) AS last,
                        count(*) AS requests, sum(coalesce(fallback, 0)) AS fallbacks, min(segment) AS segment
                    FROM exchanges WHERE experiment = ? AND experiment_key IS NOT NULL AND arm IS NOT NULL \(window)
                    GROUP BY experiment_key
                    """,
                arguments: StatementArguments([experiment as (any DatabaseValueConvertible)] + bounds)
            )
            while let row = try users.next() {
                let low: String = row["low"]
                let high: String = row["high"]
                guard let arm = ExperimentArm(rawValue: high) else { continue }
                data.users[row["experiment_key"]] = ExperimentUser(
                    arm: arm,
                    firstExposedMicros: row["first"],
                    lastSeenMicros: row["last"],
                    requests: row["requests"],
                    fallbacks: row["fallbacks"],
                    segment: row["segment"],
                    conflicting: low != high
                )
            }
            guard !metrics.isEmpty else { return }
            let placeholders = metrics.map { _ in "?" }.joined(separator: ", ")
            let metricArguments = metrics.map { $0 as any DatabaseValueConvertible }
            let byRequest = try Row.fetchCursor(
                db,
                sql: """
                    SELECT e.experiment_key AS key, o.request_id, o.at_us, o.metric, o.value FROM outcomes o
                    JOIN exchanges e ON e.request_id = o.request_id
                    WHERE o.request_id IS NOT NULL AND o.metric IN (\(placeholders)) AND e.experiment = ? AND e.arm IS NOT NULL
                        AND e.experiment_key IS NOT NULL
                    """,
                arguments: StatementArguments(metricArguments + [experiment])
            )
            while let row = try byRequest.next() {
                data.outcomes.append(
                    ExperimentOutcome(
                        key: row["key"],
                        requestID: row["request_id"],
                        atMicros: row["at_us"],
                        metric: row["metric"],
                        value: row["value"]
                    )
                )
            }
            data.unmatchedByRequest =
                try Int.fetchOne(
                    db,
                    sql: """
                        SELECT count(*) FROM outcomes o WHERE o.request_id IS NOT NULL AND o.metric IN (\(placeholders))
                            AND NOT EXISTS (SELECT 1 FROM exchanges e WHERE e.request_id = o.request_id)
                        """,
                    arguments: StatementArguments(metricArguments)
                ) ?? 0
            let byKey = try Row.fetchCursor(
                db,
                sql: "SELECT key, at_us, metric, value FROM outcomes WHERE request_id IS NULL AND key IS NOT NULL AND metric IN (\(placeholders))",
                arguments: StatementArguments(metricArguments)
            )
            while let row = try byKey.next() {
                data.outcomes.append(
                    ExperimentOutcome(key: row["key"], requestID: nil, atMicros: row["at_us"], metric: row["metric"], value: row["value"])
                )
            }
        }
        try self.queue.read { db in
            let days = try Row.fetchCursor(
                db,
                sql: """
                    SELECT received_at_us / 86400000000 AS day, arm, count(DISTINCT experiment_key) AS users, count(*) AS requests
                    FROM exchanges WHERE experiment = ? AND arm IS NOT NULL \(window) GROUP BY day, arm
                    """,
                arguments: StatementArguments([experiment as (any DatabaseValueConvertible)] + bounds)
            )
            while let row = try days.next() {
                guard let arm = ExperimentArm(rawValue: row["arm"]) else { continue }
                data.days[row["day"], default: [:]][arm] = (row["users"], row["requests"])
            }
        }
        data.state = try? self.experimentStates()[experiment]
        return data
    }

    /// Persisted experiment states (schema 8 and later).
    func experimentStates() throws -> [String: PairStore.ExperimentState] {
        guard self.schemaVersion >= 8 else { return [:] }
        return try self.queue.read { db in try PairStore.experimentStates(db) }
    }
}
