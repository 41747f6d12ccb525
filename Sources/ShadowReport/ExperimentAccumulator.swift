import ShadowCore
import ShadowStore

/// One experiment's users and outcomes merged over every database read (a user may reach
/// several hosts), turned into the report's section.
struct ExperimentAccumulator {
    let configuration: ExperimentConfiguration
    let route: String
    private var users: [String: PairReader.ExperimentUser] = [:]
    private var outcomes: [PairReader.ExperimentOutcome] = []
    private var unmatchedByRequest = 0
    private var state: PairStore.ExperimentState?
    private var days: [Int64: [ExperimentArm: (users: Int, requests: Int)]] = [:]

    init(configuration: ExperimentConfiguration, route: String) {
        self.configuration = configuration
        self.route = route
    }

    mutating func add(_ data: PairReader.ExperimentData) {
        for (key, user) in data.users {
            guard var existing = self.users[key] else {
                self.users[key] = user
                continue
            }
            existing.conflicting = existing.conflicting || user.conflicting || existing.arm != user.arm
            existing.firstExposedMicros = min(existing.firstExposedMicros, user.firstExposedMicros)
            existing.lastSeenMicros = max(existing.lastSeenMicros, user.lastSeenMicros)
            existing.requests += user.requests
            existing.fallbacks += user.fallbacks
            existing.segment = [existing.segment, user.segment].compactMap { $0 }.min()
            self.users[key] = existing
        }
        self.outcomes += data.outcomes
        self.unmatchedByRequest += data.unmatchedByRequest
        if let state = data.state, state.stoppedReason != nil || self.state == nil { self.state = state }
        for (day, arms) in data.days {
            for (arm, figures) in arms {
                let previous = self.days[day, default: [:]][arm] ?? (0, 0)
                self.days[day, default: [:]][arm] = (previous.users + figures.users, previous.requests + figures.requests)
            }
        }
    }

    func report(
        nowMicros: Int64,
        costIncrease: Double?,
        maxCostIncrease: Double?,
        divergenceHalves: (first: Proportion, second: Proportion)?
    ) -> ExperimentReport {
        let metricsByName = Dictionary(uniqueKeysWithValues: self.configuration.metrics.map { ($0.name, $0) })
        // Each user's value per metric: converted (any 1) for binary per-user metrics, the sum
        // otherwise (a per-request metric divides it by the user's requests, over the arm).
        // Outcomes by key count from the user's first exposure on; by request id, always.
        var values: [String: [String: Double]] = [:]
        // A binary per-request metric counts a request once, however often its 1 was posted.
        var clickedRequests: Set<String> = []
        var unmatched = self.unmatchedByRequest
        for outcome in self.outcomes {
            guard let user = self.users[outcome.key], let metric = metricsByName[outcome.metric] else {
                if !outcome.viaRequest { unmatched += 1 }
                continue
            }
            if !outcome.viaRequest && outcome.atMicros < user.firstExposedMicros { continue }
            switch (metric.kind, metric.per) {
            case (.binary, .request) where outcome.requestID != nil:
                if outcome.value == 1, clickedRequests.insert(outcome.metric + "\u{0}" + outcome.requestID!).inserted {
                    values[outcome.key, default: [:]][outcome.metric, default: 0] += 1
                }
            case (.binary, .user): values[outcome.key, default: [:]][outcome.metric] = max(values[outcome.key]?[outcome.metric] ?? 0, outcome.value)
            default: values[outcome.key, default: [:]][outcome.metric, default: 0] += outcome.value
            }
        }
        var controlUsers = 0
        var treatmentUsers = 0
        var requests: [String: Int] = ["control": 0, "treatment": 0]
        var fallbacks = 0
        var metrics: [String: (control: ArmSummary, treatment: ArmSummary)] = [:]
        var segments: [String: (control: ArmSummary, treatment: ArmSummary)] = [:]
        var first = Int64.max
        var last = Int64.min
        for (key, user) in self.users {
            first = min(first, user.firstExposedMicros)
            last = max(last, user.lastSeenMicros)
            requests[user.arm.rawValue, default: 0] += user.requests
            fallbacks += user.fallbacks
            if user.arm == .control { controlUsers += 1 } else { treatmentUsers += 1 }
            for metric in self.configuration.metrics {
                let value = values[key]?[metric.name] ?? 0
                let empty = metric.per == .request ? ArmSummary.perRequest : ArmSummary()
                var arms = metrics[metric.name] ?? (empty, empty)
                if user.arm == .control {
                    arms.control.add(value, requests: user.requests)
                } else {
                    arms.treatment.add(value, requests: user.requests)
                }
                metrics[metric.name] = arms
                if metric.name == self.configuration.primary, let segment = user.segment {
                    var byArm = segments[segment] ?? (empty, empty)
                    if user.arm == .control {
                        byArm.control.add(value, requests: user.requests)
                    } else {
                        byArm.treatment.add(value, requests: user.requests)
                    }
                    segments[segment] = byArm
                }
            }
        }
        var input = ExperimentAnalysis.Input(
            configuration: self.configuration,
            controlUsers: controlUsers,
            treatmentUsers: treatmentUsers,
            elapsedMicros: first == Int64.max ? 0 : max(last, first) - first
        )
        input.metrics = metrics
        input.segments = segments
        input.stoppedReason = self.state?.stoppedReason
        input.costIncrease = costIncrease
        input.maxCostIncrease = maxCostIncrease
        input.divergenceHalves = divergenceHalves
        let analysis = ExperimentAnalysis.analyse(input)
        return ExperimentReport(
            name: self.configuration.name,
            route: self.route,
            treatment: self.configuration.treatment,
            analysis: self.configuration.analysis.rawValue,
            state: self.state?.stoppedReason == nil ? "running" : "stopped",
            stoppedReason: self.state?.stoppedReason,
            stage: self.state?.stage,
            allocation: self.configuration.allocation,
            decision: analysis.decision.rawValue,
            reasons: analysis.reasons,
            srm: .init(
                pValue: analysis.srmPValue,
                controlUsers: controlUsers,
                treatmentUsers: treatmentUsers,
                mismatch: analysis.srmPValue < SampleRatio.threshold
            ),
            requests: requests,
            fallbacks: fallbacks,
            conflictingUsers: self.users.values.filter(\.conflicting).count,
            unmatchedOutcomes: unmatched,
            metrics: analysis.metrics.map { metric in
                ExperimentReport.MetricReport(
                    name: metric.name,
                    kind: metric.comparison.kind.rawValue,
                    per: metric.comparison.control.ratio == nil ? "user" : "request",
                    primary: metric.primary,
                    arms: [
                        .init(arm: "control", users: metric.comparison.control.users, mean: metric.comparison.control.mean),
                        .init(arm: "treatment", users: metric.comparison.treatment.users, mean: metric.comparison.treatment.mean),
                    ],
                    difference: metric.comparison.difference,
                    relativeLift: metric.comparison.relativeLift,
                    pValue: metric.comparison.pValue,
                    probabilityTreatmentBetter: metric.comparison.probabilityTreatmentBetter,
                    maxDecrease: metric.maxDecrease
                )
            },
            segments: analysis.segments.map {
                .init(
                    segment: $0.name,
                    controlUsers: $0.comparison.control.users,
                    treatmentUsers: $0.comparison.treatment.users,
                    relativeLift: $0.comparison.relativeLift,
                    worse: $0.worse
                )
            },
            planning: analysis.planning,
            resultsWithheld: analysis.resultsWithheld,
            days: self.days.keys.sorted().map { day in
                let arms = self.days[day] ?? [:]
                return ExperimentReport.Day(
                    date: HTTPDate.isoDay(daysSince1970: day),
                    controlUsers: arms[.control]?.users ?? 0,
                    treatmentUsers: arms[.treatment]?.users ?? 0,
                    controlRequests: arms[.control]?.requests ?? 0,
                    treatmentRequests: arms[.treatment]?.requests ?? 0
                )
            }
        )
    }
}
