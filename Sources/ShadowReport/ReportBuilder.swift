import Foundation
import ShadowCore
import ShadowStore

/// Turns one or many divergence databases into a ``Report`` in a single pass over each file.
public struct ReportBuilder {
    public let options: ReportOptions
    private var accumulators: [CandidateAccumulator] = []
    private var slots: [Key: Int] = [:]
    private var databases: [Report.DatabaseInfo] = []
    private var coverage: [Key: [String: Int]] = [:]
    private var noisyPaths: [String: [String: (differing: Int, compared: Int)]] = [:]
    private var events: [GatingEvent] = []
    private var experiments: [ExperimentAccumulator] = []

    struct Key: Hashable, Comparable {
        var route: String
        var candidate: String

        static func < (lhs: Key, rhs: Key) -> Bool { (lhs.route, lhs.candidate) < (rhs.route, rhs.candidate) }
    }

    public init(options: ReportOptions) {
        self.options = options
        for route in options.configuration?.routes ?? [] where options.route == nil || options.route == route.name {
            if let experiment = route.experiment { self.experiments.append(ExperimentAccumulator(configuration: experiment, route: route.name)) }
        }
    }

    /// Reads one database's pairs in the window into the running totals.
    ///
    /// - Parameter progress: called now and then with the rows read so far from this file.
    public mutating func add(_ reader: PairReader, progress: (Int) -> Void = { _ in }) throws {
        var scan = PairReader.Scan(fromMicros: self.options.fromMicros, toMicros: self.options.toMicros, route: self.options.route)
        for route in self.options.configuration?.routes ?? [] {
            if case .field(let path) = route.segment { scan.segmentFields[route.name] = path }
            scan.tokenUsage = scan.tokenUsage || route.baseline.cost?.usesTokens == true || route.candidates.contains { $0.cost?.usesTokens == true }
        }
        var rows = 0
        // Rows come in storage order, so consecutive rows mostly share route and candidate: the
        // slot is looked up only when they change.
        var previous: (route: String, candidate: String, slot: Int)?
        var costsForSlot: (baseline: CostConfiguration, candidate: CostConfiguration)?
        // SQLite steps on the pipe's thread while this one accounts: same pairs, same order.
        try ScanPipe.run(reader, scan) { batch in
            for pair in batch {
                let slot: Int
                if let last = previous, last.route == pair.route, last.candidate == pair.candidate {
                    slot = last.slot
                } else {
                    slot = self.slot(for: Key(route: pair.route, candidate: pair.candidate))
                    costsForSlot = self.options.costs(route: pair.route, candidate: pair.candidate)
                    previous = (pair.route, pair.candidate, slot)
                }
                self.accumulators[slot].add(pair, baselineCost: costsForSlot?.baseline, candidateCost: costsForSlot?.candidate)
            }
            let before = rows
            rows += batch.count
            if rows / 65_536 > before / 65_536 { progress(rows) }
        }
        for count in try reader.coverage(fromMicros: self.options.fromMicros, toMicros: self.options.toMicros, route: self.options.route)
        where !count.candidate.isEmpty {
            self.coverage[Key(route: count.route, candidate: count.candidate), default: [:]][count.reason, default: 0] += count.count
        }
        let routes = Set(self.slots.keys.map(\.route))
        for route in routes {
            for entry in try reader.noisyPaths(route: route) {
                let previousEntry = self.noisyPaths[route, default: [:]][entry.path] ?? (0, 0)
                self.noisyPaths[route, default: [:]][entry.path] = (
                    previousEntry.differing + entry.differing, previousEntry.compared + entry.compared
                )
            }
        }
        for index in self.experiments.indices {
            let experiment = self.experiments[index].configuration
            self.experiments[index].add(
                try reader.experimentData(
                    experiment.name,
                    metrics: experiment.metrics.map(\.name),
                    fromMicros: self.options.fromMicros,
                    toMicros: self.options.toMicros
                )
            )
        }
        self.events += try reader.gatingEvents(fromMicros: self.options.fromMicros, toMicros: self.options.toMicros, route: self.options.route)
        self.databases.append(.init(path: reader.path, schemaVersion: reader.schemaVersion, pairs: rows))
    }

    /// The finished report.
    public func build() -> Report {
        var keys = Set(self.slots.keys).union(self.coverage.keys)
        for event in self.events where !event.candidate.isEmpty { keys.insert(Key(route: event.route, candidate: event.candidate)) }
        // Configured routes and candidates appear even with no pairs, so a silent one is visible.
        for route in self.options.configuration?.routes ?? [] where self.options.route == nil || self.options.route == route.name {
            for candidate in route.candidates { keys.insert(Key(route: route.name, candidate: candidate.name)) }
        }
        var routes: [RouteReport] = []
        for routeName in Set(keys.map(\.route)).sorted() {
            let replica = self.accumulator(Key(route: routeName, candidate: NoiseFloorConfiguration.replicaName))
            let noiseFloor = replica.map { self.noiseFloorSection($0) }
            let candidates = keys.filter { $0.route == routeName && $0.candidate != NoiseFloorConfiguration.replicaName }.sorted()
            routes.append(
                RouteReport(
                    name: routeName,
                    segmentKey: self.options.routeConfiguration(routeName)?.segment?.description,
                    noiseFloor: noiseFloor,
                    events: self.events.filter { $0.route == routeName }.sorted { $0.atMicros < $1.atMicros }.map {
                        GateEventReport(
                            at: ReportTime.iso(micros: $0.atMicros),
                            candidate: $0.candidate,
                            kind: $0.kind,
                            from: $0.from,
                            to: $0.to,
                            reason: $0.reason
                        )
                    },
                    candidates: candidates.map { key in
                        self.candidateReport(
                            self.accumulator(key) ?? CandidateAccumulator(route: key.route, candidate: key.candidate, seed: self.options.seed),
                            noise: replica.map { Proportion(successes: $0.diverged, trials: $0.compared) },
                            coverage: self.coverage[key] ?? [:]
                        )
                    }
                )
            )
        }
        let decisions = routes.flatMap { $0.candidates.map(\.verdict.decision) }
        let decision: Verdict.Decision = decisions.contains(.reject) ? .reject : decisions.contains(.hold) || decisions.isEmpty ? .hold : .promote
        return Report(
            generatedAt: ReportTime.iso(micros: self.options.nowMicros),
            window: .init(
                from: self.options.fromMicros.map(ReportTime.iso(micros:)),
                to: self.options.toMicros.map(ReportTime.iso(micros:)),
                fromMicros: self.options.fromMicros,
                toMicros: self.options.toMicros
            ),
            databases: self.databases,
            decision: decision,
            routes: routes,
            experiments: self.experiments.isEmpty
                ? nil
                : self.experiments.map { experiment in
                    let treatment = routes.first { $0.name == experiment.route }?.candidates.first { $0.name == experiment.configuration.treatment }
                    return experiment.report(
                        nowMicros: self.options.nowMicros,
                        costIncrease: treatment?.cost?.increase,
                        maxCostIncrease: self.options.guardrails(route: experiment.route).maxCostIncrease,
                        divergenceHalves: treatment.flatMap { Self.halves($0.hourly) }
                    )
                }
        )
    }

    /// Divergence in the first and the second half of the compared pairs, hour by hour.
    static func halves(_ hours: [HourReport]) -> (first: Proportion, second: Proportion)? {
        let total = hours.reduce(0) { $0 + $1.compared }
        guard hours.count >= 2, total >= 200 else { return nil }
        var first = (compared: 0, diverged: 0)
        var second = (compared: 0, diverged: 0)
        for hour in hours {
            let diverged = Int((hour.divergenceRate * Double(hour.compared)).rounded())
            if first.compared < total / 2 {
                first = (first.compared + hour.compared, first.diverged + diverged)
            } else {
                second = (second.compared + hour.compared, second.diverged + diverged)
            }
        }
        guard second.compared > 0 else { return nil }
        return (Proportion(successes: first.diverged, trials: first.compared), Proportion(successes: second.diverged, trials: second.compared))
    }

    private mutating func slot(for key: Key) -> Int {
        if let slot = self.slots[key] { return slot }
        let seed = self.options.seed ^ StableHash.fnv1a64(Array((key.route + "/" + key.candidate).utf8))
        self.accumulators.append(CandidateAccumulator(route: key.route, candidate: key.candidate, seed: seed))
        self.slots[key] = self.accumulators.count - 1
        return self.accumulators.count - 1
    }

    private func accumulator(_ key: Key) -> CandidateAccumulator? {
        self.slots[key].map { self.accumulators[$0] }
    }

    /// Pairs read so far over all files.
    public var pairs: Int { self.databases.reduce(0) { $0 + $1.pairs } }

    private func noiseFloorSection(_ replica: CandidateAccumulator) -> NoiseFloorSection {
        let proportion = Proportion(successes: replica.diverged, trials: replica.compared)
        let paths = (self.noisyPaths[replica.route] ?? [:])
            .map {
                PathCount(
                    path: $0.key,
                    count: $0.value.differing,
                    share: Double($0.value.differing) / Double(max(1, $0.value.compared)),
                    examples: []
                )
            }
            .sorted { ($0.count, $1.path) > ($1.count, $0.path) }
        return NoiseFloorSection(
            compared: replica.compared,
            diverged: replica.diverged,
            rate: proportion.rate,
            interval: proportion.wilsonInterval().bounds,
            noisyPaths: Array(paths.prefix(10))
        )
    }
}

extension ClosedRange where Bound == Double {
    var bounds: [Double] { [self.lowerBound, self.upperBound] }
}

/// Timestamps in the report.
enum ReportTime {
    static func iso(micros: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: Date(timeIntervalSince1970: TimeInterval(micros / 1_000_000)))
    }
}
