import GRDB
import Logging
import Metrics
import ShadowCore
import Synchronization

/// The routes' live experiments: read by the request path for each one's current treatment
/// share, fed by the writer with each written batch (guardrails judged after every batch),
/// stopped and resumed by a person through the admin listener, and persisted in
/// `experiment_state` so a restart resumes at the same stage, and a stop stays a stop.
public final class ExperimentController: Sendable {
    /// One experiment's state as `/stats`, the admin API and the CLI show it.
    public struct Status: Sendable, Equatable {
        public var experiment: String
        public var route: String
        public var stage: Int
        /// The share of users in each arm now (0 once stopped).
        public var percent: Double
        public var allocation: [Double]
        public var startedAtMicros: Int64
        public var enteredAtMicros: Int64
        public var stoppedReason: String?
        public var stoppedAtMicros: Int64?
        public var controlRequests: Int
        public var treatmentRequests: Int
        /// Requests since start without the assignment key (answered by control, not enrolled).
        public var requestsWithoutKey: Int
    }

    /// What the request path reads and counts per experiment, lock-free.
    public final class RequestCounters: Sendable {
        public let withoutKey = Atomic<Int>(0)
        /// The share per arm now (a `Double`'s bits), published on every change of stage or stop.
        let percentBits = Atomic<UInt64>(0)

        /// The share of users in each arm now (0...50; 0 once stopped).
        public var percent: Double { Double(bitPattern: self.percentBits.load(ordering: .relaxed)) }
    }

    /// A change refused: the experiment is unknown, or the call would change nothing.
    public struct ControlError: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    private struct Entry: Sendable {
        var route: String
        var run: ExperimentRun
        var startedAtMicros: Int64
    }

    private let entries: Mutex<[String: Entry]>
    private let counters = Mutex<[String: RequestCounters]>([:])
    /// Route name → experiment name, for the request path's lookups.
    private let byRoute: Mutex<[String: String]>
    private let store: PairStore
    private let events: GatingEventLog
    private let factory: (any MetricsFactory)?
    private let logger: Logger

    /// Loads the persisted state of the configured experiments.
    /// - Throws: ``ConfigurationError`` when an experiment's salt, key or arms differ from what
    ///   the database recorded under the same name (that would re-randomise its users).
    public init(routes: [RouteConfiguration], store: PairStore, events: GatingEventLog, factory: (any MetricsFactory)?, logger: Logger) throws {
        self.store = store
        self.events = events
        self.factory = factory
        self.logger = logger
        self.entries = Mutex([:])
        self.byRoute = Mutex([:])
        try self.apply(routes)
    }

    /// Refuses a configuration that changes a running experiment's assignment under the same
    /// name. Call before applying a reload.
    public func validate(_ routes: [RouteConfiguration]) throws(ConfigurationError) {
        let persisted = (try? self.store.experimentStates()) ?? [:]
        let running = self.entries.withLock { $0.mapValues { $0.run.configuration.assignmentSignature } }
        for (index, route) in routes.enumerated() {
            guard let experiment = route.experiment else { continue }
            let recorded = running[experiment.name] ?? persisted[experiment.name]?.signature
            if let recorded, recorded != experiment.assignmentSignature {
                throw ConfigurationError(
                    key: "routes[\(index)].experiment",
                    reason:
                        "experiment '\(experiment.name)' is running with another salt, key or treatment; changing them would move users between arms. Give the experiment a new name to start a new one"
                )
            }
        }
    }

    /// Takes a (re)loaded configuration: running experiments keep their stage and figures;
    /// others resume from the database, or start at their first stage.
    public func apply(_ routes: [RouteConfiguration]) throws {
        try self.validate(routes)
        let persisted = try self.store.experimentStates()
        let now = wallClockMicros()
        var started: [(String, Entry)] = []
        self.entries.withLock { entries in
            var next: [String: Entry] = [:]
            for route in routes {
                guard let configuration = route.experiment else { continue }
                if var existing = entries[configuration.name] {
                    if existing.run.configuration != configuration {
                        existing.run = ExperimentRun(
                            configuration: configuration,
                            stage: existing.run.stage,
                            enteredAtMicros: existing.run.enteredAtMicros,
                            stopped: existing.run.stopped
                        )
                    }
                    existing.route = route.name
                    next[configuration.name] = existing
                    continue
                }
                if let saved = persisted[configuration.name] {
                    let stopped = saved.stoppedReason.map { ($0, saved.stoppedAtMicros ?? now) }
                    let run = ExperimentRun(
                        configuration: configuration,
                        stage: saved.stage,
                        enteredAtMicros: saved.enteredAtMicros,
                        stopped: stopped
                    )
                    next[configuration.name] = Entry(route: route.name, run: run, startedAtMicros: saved.startedAtMicros)
                } else {
                    let entry = Entry(route: route.name, run: ExperimentRun(configuration: configuration, enteredAtMicros: now), startedAtMicros: now)
                    next[configuration.name] = entry
                    started.append((configuration.name, entry))
                }
            }
            entries = next
        }
        self.byRoute.withLock { byRoute in
            byRoute = Dictionary(uniqueKeysWithValues: routes.compactMap { route in route.experiment.map { (route.name, $0.name) } })
        }
        for name in self.entries.withLock({ Array($0.keys) }) { self.publish(name) }
        for (name, entry) in started { self.persist(name, entry) }
        for status in self.statuses { self.gauge(status.experiment, status.route, status.percent) }
    }

    /// The share of users in each arm of the route's experiment now (0...50), or `nil` when the
    /// route has none. (The request path reads ``RequestCounters/percent`` instead: one atomic
    /// load, and a stop reaches every event loop's next request.)
    public func percent(route: String) -> Double? {
        guard let name = self.byRoute.withLock({ $0[route] }) else { return nil }
        return self.counters(for: name).percent
    }

    /// Stores the experiment's current share for the request path. Read and stored under the
    /// entries' lock, so concurrent changes publish in the order they happened.
    private func publish(_ name: String) {
        let counters = self.counters(for: name)
        self.entries.withLock { entries in
            guard let run = entries[name]?.run else { return }
            counters.percentBits.store(run.treatmentPercent.bitPattern, ordering: .relaxed)
        }
    }

    public var statuses: [Status] {
        self.entries.withLock { entries in
            entries.map { name, entry in
                Status(
                    experiment: name,
                    route: entry.route,
                    stage: entry.run.stage,
                    percent: entry.run.treatmentPercent,
                    allocation: entry.run.configuration.allocation,
                    startedAtMicros: entry.startedAtMicros,
                    enteredAtMicros: entry.run.enteredAtMicros,
                    stoppedReason: entry.run.stopped?.reason,
                    stoppedAtMicros: entry.run.stopped?.atMicros,
                    controlRequests: entry.run.tally.control.requests,
                    treatmentRequests: entry.run.tally.treatment.requests,
                    requestsWithoutKey: self.counters(for: name).withoutKey.load(ordering: .relaxed)
                )
            }.sorted { $0.experiment < $1.experiment }
        }
    }

    /// The experiment's request-path counters (kept across reloads).
    public func counters(for name: String) -> RequestCounters {
        self.counters.withLock { counters in
            if let existing = counters[name] { return existing }
            let created = RequestCounters()
            counters[name] = created
            return created
        }
    }

    /// Stops exposure by hand (`POST /experiments/NAME/stop`).
    public func stop(_ name: String, reason: String) throws(ControlError) -> Status {
        try self.change(name) { run, now in run.stop(reason: reason, nowMicros: now) }
    }

    /// Resumes a stopped experiment at the stage it stopped at.
    public func resume(_ name: String) throws(ControlError) -> Status {
        try self.change(name) { run, now in run.resume(nowMicros: now) }
    }

    private func change(_ name: String, _ body: (inout ExperimentRun, Int64) -> ExperimentRun.Transition?) throws(ControlError) -> Status {
        let now = wallClockMicros()
        let outcome: (Entry, ExperimentRun.Transition?)? = self.entries.withLock { entries in
            guard var entry = entries[name] else { return nil }
            let transition = body(&entry.run, now)
            entries[name] = entry
            return (entry, transition)
        }
        guard let (entry, transition) = outcome else {
            let known = self.statuses.map(\.experiment).joined(separator: ", ")
            throw ControlError(description: "no experiment '\(name)' (configured: \(known.isEmpty ? "none" : known))")
        }
        guard let transition else {
            throw ControlError(description: "experiment '\(name)' is already \(entry.run.stopped == nil ? "running" : "stopped")")
        }
        self.announce(name, entry, transition, now: now)
        return self.statuses.first { $0.experiment == name }!
    }

    /// Adds a written batch's enrolled requests to the current stages' figures, then stops or
    /// advances where the guardrails say so.
    func observe(_ batch: [ExchangeRecord]) {
        let now = wallClockMicros()
        let changes: [(String, Entry, ExperimentRun.Transition)] = self.entries.withLock { entries in
            guard !entries.isEmpty else { return [] }
            for record in batch {
                guard let exposure = record.exposure, let arm = exposure.arm, entries[exposure.experiment] != nil else { continue }
                let treatmentName = entries[exposure.experiment]!.run.configuration.treatment
                entries[exposure.experiment]!.run.add { tally in
                    switch arm {
                    case .control:
                        tally.control.add(
                            failed: record.baseline.modelFailed,
                            fallback: false,
                            latencyMicros: record.baseline.error == nil ? record.baseline.latencyMicros : nil
                        )
                    case .treatment:
                        // Unpaired (no copy to control made it), the answer travels on the exposure.
                        let result = record.candidates.first { $0.name == treatmentName }?.result ?? exposure.unpairedTreatment
                        tally.treatment.add(
                            failed: exposure.fallback || result?.modelFailed == true,
                            fallback: exposure.fallback,
                            latencyMicros: result?.error == nil ? result?.latencyMicros : nil
                        )
                    }
                }
            }
            var changes: [(String, Entry, ExperimentRun.Transition)] = []
            for name in entries.keys.sorted() {
                if let transition = entries[name]!.run.evaluate(nowMicros: now) { changes.append((name, entries[name]!, transition)) }
            }
            return changes
        }
        for (name, entry, transition) in changes { self.announce(name, entry, transition, now: now) }
    }

    /// Logs, records in `gating_events`, exports and persists a change.
    private func announce(_ name: String, _ entry: Entry, _ transition: ExperimentRun.Transition, now: Int64) {
        self.publish(name)
        let allocation = entry.run.configuration.allocation
        let (level, message, from, to, reason): (Logger.Level, String, String, String, String) =
            switch transition {
            case .advanced(let from, let to, let reason):
                (.notice, "experiment exposure grows", "\(allocation[from])%", "\(allocation[to])%", reason)
            case .stopped(let reason):
                (.warning, "experiment stopped: every user is served by control", "\(allocation[entry.run.stage])%", "stopped", reason)
            case .resumed(let stage):
                (.notice, "experiment resumed", "stopped", "\(allocation[stage])%", "resumed by hand")
            }
        self.logger.log(
            level: level,
            "\(message)",
            metadata: ["shadow.experiment": "\(name)", "shadow.route": "\(entry.route)", "reason": "\(reason)"]
        )
        self.events.append(
            GatingEvent(
                atMicros: now,
                route: entry.route,
                candidate: entry.run.configuration.treatment,
                kind: "experiment",
                from: from,
                to: to,
                reason: reason
            )
        )
        self.gauge(name, entry.route, entry.run.treatmentPercent)
        if case .stopped = transition, let factory = self.factory {
            Counter(label: "shadowd_experiment_stops_total", dimensions: [("experiment", name)], factory: factory).increment()
        }
        self.persist(name, entry)
    }

    private func persist(_ name: String, _ entry: Entry) {
        do {
            try self.store.saveExperimentState(
                PairStore.ExperimentState(
                    experiment: name,
                    route: entry.route,
                    signature: entry.run.configuration.assignmentSignature,
                    stage: entry.run.stage,
                    percent: entry.run.treatmentPercent,
                    startedAtMicros: entry.startedAtMicros,
                    enteredAtMicros: entry.run.enteredAtMicros,
                    stoppedReason: entry.run.stopped?.reason,
                    stoppedAtMicros: entry.run.stopped?.atMicros
                )
            )
        } catch {
            self.logger.error("cannot persist the experiment's state", metadata: ["shadow.experiment": "\(name)", "error": "\(error)"])
        }
    }

    private func gauge(_ name: String, _ route: String, _ percent: Double) {
        guard let factory = self.factory else { return }
        Gauge(label: "shadowd_experiment_arm_percent", dimensions: [("experiment", name), ("route", route)], factory: factory).record(percent)
    }
}
