import GRDB
import Logging
import Metrics
import ShadowCore
import Synchronization

/// The routes' ramps: fed by the writer with each batch's outcomes, read by the request path for
/// the share to mirror, persisted in `ramp_state` so a restart resumes at the same stage.
public final class RampController: Sendable {
    private let ramps: Mutex<[String: Ramp]>
    private let guardrails: Mutex<[String: GuardrailConfiguration]>
    private let store: PairStore
    private let events: GatingEventLog
    private let factory: (any MetricsFactory)?
    private let logger: Logger

    /// Loads the persisted stages of the configured ramps.
    public init(routes: [RouteConfiguration], store: PairStore, events: GatingEventLog, factory: (any MetricsFactory)?, logger: Logger) throws {
        self.store = store
        self.events = events
        self.factory = factory
        self.logger = logger
        self.ramps = Mutex([:])
        self.guardrails = Mutex([:])
        try self.apply(routes)
    }

    /// Takes a (re)loaded configuration: unchanged ramps keep their stage and figures, changed or
    /// new ones resume from the database when its stage list matches, else start at stage 0.
    public func apply(_ routes: [RouteConfiguration]) throws {
        let persisted = try self.store.rampStates()
        let now = wallClockMicros()
        self.ramps.withLock { ramps in
            var next: [String: Ramp] = [:]
            for route in routes {
                guard let configuration = route.ramp else { continue }
                if let existing = ramps[route.name], existing.configuration == configuration {
                    next[route.name] = existing
                    continue
                }
                var ramp = Ramp(configuration: configuration, enteredAtMicros: now)
                if let saved = persisted[route.name], saved.stages == ramp.signature {
                    ramp = Ramp(configuration: configuration, stage: saved.stage, enteredAtMicros: saved.enteredAtMicros)
                }
                next[route.name] = ramp
                self.gauge(route.name, ramp.percent)
            }
            ramps = next
        }
        self.guardrails.withLock { guardrails in
            guardrails = Dictionary(uniqueKeysWithValues: routes.map { ($0.name, $0.guardrails) })
        }
    }

    /// The share of the route's sample mirrored now (0...100), or `nil` when it has no ramp.
    public func percent(route: String) -> Double? {
        self.ramps.withLock { $0[route]?.percent }
    }

    /// The current stage index per route, for `/stats` and tests.
    public var stages: [String: Int] {
        self.ramps.withLock { $0.mapValues(\.stage) }
    }

    /// Adds a written batch to the current stages' figures (candidates only, not the A/A
    /// replica), then advances or falls back where the figures say so.
    func observe(_ batch: [ExchangeRecord], summary: PairStore.WriteSummary) {
        let now = wallClockMicros()
        let guardrails = self.guardrails.withLock { $0 }
        let transitions: [(route: String, ramp: Ramp, transition: Ramp.Transition)] = self.ramps.withLock { ramps in
            guard !ramps.isEmpty else { return [] }
            for record in batch where ramps[record.route] != nil {
                for candidate in record.candidates where candidate.name != NoiseFloorConfiguration.replicaName {
                    let result = candidate.result
                    ramps[record.route]!.add { tally in
                        tally.add(
                            baselineFailed: record.baseline.modelFailed,
                            candidateFailed: result.modelFailed,
                            baselineMicros: record.baseline.error == nil ? record.baseline.latencyMicros : nil,
                            candidateMicros: result.error == nil ? result.latencyMicros : nil
                        )
                    }
                }
            }
            for (key, totals) in summary.scored where key.candidate != NoiseFloorConfiguration.replicaName && ramps[key.route] != nil {
                ramps[key.route]!.add { $0.addScores(compared: totals.compared, diverged: totals.diverged) }
            }
            var changes: [(String, Ramp, Ramp.Transition)] = []
            for route in ramps.keys.sorted() {
                if let transition = ramps[route]!.evaluate(nowMicros: now, guardrails: guardrails[route] ?? GuardrailConfiguration()) {
                    changes.append((route, ramps[route]!, transition))
                }
            }
            return changes
        }
        for (route, ramp, transition) in transitions {
            let from = ramp.configuration.stages[transition.from].percent
            let to = ramp.configuration.stages[transition.to].percent
            self.logger.log(
                level: transition.to > transition.from ? .notice : .warning,
                "ramp \(Units.fixed(from, decimals: 1))% → \(Units.fixed(to, decimals: 1))%",
                metadata: ["shadow.route": "\(route)", "reason": "\(transition.reason)"]
            )
            self.gauge(route, to)
            self.events.append(
                GatingEvent(
                    atMicros: now,
                    route: route,
                    candidate: "",
                    kind: "ramp",
                    from: "\(Units.fixed(from, decimals: 1))%",
                    to: "\(Units.fixed(to, decimals: 1))%",
                    reason: transition.reason
                )
            )
            do {
                try self.store.saveRampState(route: route, stages: ramp.signature, stage: ramp.stage, enteredAtMicros: ramp.enteredAtMicros)
            } catch {
                self.logger.error("cannot persist the ramp stage", metadata: ["shadow.route": "\(route)", "error": "\(error)"])
            }
        }
    }

    private func gauge(_ route: String, _ percent: Double) {
        guard let factory = self.factory else { return }
        Gauge(label: "shadowd_ramp_stage_percent", dimensions: [("route", route)], factory: factory).record(percent)
    }
}

extension PairStore {
    /// Persisted ramp stages by route.
    public func rampStates() throws -> [String: (stages: String, stage: Int, enteredAtMicros: Int64)] {
        try self.queue.read { db in
            var states: [String: (String, Int, Int64)] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT route, stages, stage, entered_at_us FROM ramp_state") {
                states[row["route"]] = (row["stages"], row["stage"], row["entered_at_us"])
            }
            return states
        }
    }

    func saveRampState(route: String, stages: String, stage: Int, enteredAtMicros: Int64) throws {
        try self.queue.write { db in
            try db.execute(
                sql: """
                    INSERT INTO ramp_state (route, stages, stage, entered_at_us) VALUES (?, ?, ?, ?)
                    ON CONFLICT (route) DO UPDATE SET stages = excluded.stages, stage = excluded.stage, entered_at_us = excluded.entered_at_us
                    """,
                arguments: [route, stages, stage, enteredAtMicros]
            )
        }
    }
}
