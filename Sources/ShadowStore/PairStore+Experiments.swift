import GRDB
import ShadowCore

extension PairStore {
    /// One experiment's persisted state (`experiment_state`).
    public struct ExperimentState: Sendable, Equatable {
        public var experiment: String
        public var route: String
        public var signature: String
        public var stage: Int
        public var percent: Double
        public var startedAtMicros: Int64
        public var enteredAtMicros: Int64
        public var stoppedReason: String?
        public var stoppedAtMicros: Int64?
    }

    public func experimentStates() throws -> [String: ExperimentState] {
        try self.queue.read { db in try Self.experimentStates(db) }
    }

    static func experimentStates(_ db: Database) throws -> [String: ExperimentState] {
        try Row.fetchAll(db, sql: "SELECT * FROM experiment_state").reduce(into: [:]) { states, row in
            let name: String = row["experiment"]
            states[name] = ExperimentState(
                experiment: name,
                route: row["route"],
                signature: row["signature"],
                stage: row["stage"],
                percent: row["percent"],
                startedAtMicros: row["started_at_us"],
                enteredAtMicros: row["entered_at_us"],
                stoppedReason: row["stopped_reason"],
                stoppedAtMicros: row["stopped_at_us"]
            )
        }
    }

    func saveExperimentState(_ state: ExperimentState) throws {
        try self.queue.write { db in
            try db.execute(
                sql: """
                    INSERT INTO experiment_state (experiment, route, signature, stage, percent, started_at_us, entered_at_us,
                        stopped_reason, stopped_at_us, updated_at_us)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (experiment) DO UPDATE SET route = excluded.route, signature = excluded.signature,
                        stage = excluded.stage, percent = excluded.percent, entered_at_us = excluded.entered_at_us,
                        stopped_reason = excluded.stopped_reason, stopped_at_us = excluded.stopped_at_us, updated_at_us = excluded.updated_at_us
                    """,
                arguments: [
                    state.experiment, state.route, state.signature, state.stage, state.percent, state.startedAtMicros, state.enteredAtMicros,
                    state.stoppedReason, state.stoppedAtMicros, wallClockMicros(),
                ]
            )
        }
    }
}

extension PairStore {
    /// What storing a batch of outcomes did.
    public struct OutcomeInsert: Sendable, Equatable {
        public var stored: Int
        /// Events whose `event_id` was already stored (at-least-once delivery): ignored.
        public var duplicates: Int

        public init(stored: Int, duplicates: Int) {
            self.stored = stored
            self.duplicates = duplicates
        }
    }

    /// Stores a validated batch in one transaction: all of it, or (on an error) none of it.
    public func insertOutcomes(_ events: [OutcomeEvent], receivedAtMicros: Int64 = wallClockMicros()) throws -> OutcomeInsert {
        try self.queue.write { db in
            let statement = try db.cachedStatement(
                sql: """
                    INSERT INTO outcomes (event_id, request_id, key, metric, value, at_us, received_at_us)
                    VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING
                    """
            )
            var stored = 0
            for event in events {
                try statement.execute(arguments: [
                    event.eventID, event.requestID, event.key, event.metric, event.value, event.atMicros, receivedAtMicros,
                ])
                stored += db.changesCount
            }
            return OutcomeInsert(stored: stored, duplicates: events.count - stored)
        }
    }
}
