import ShadowCore

/// The comparison report: per route and candidate, coverage, divergence, latency, errors,
/// segments, drift over time, cost, whether there is enough data, and the verdict.
///
/// This is also the JSON shape (`--format json`), versioned by ``formatVersion``: fields are only
/// ever added within a version; a rename or removal bumps it.
public struct Report: Codable, Sendable {
    /// The version of the JSON shape.
    public static let formatVersion = 1

    public var format = "shadowd-report"
    public var version = Report.formatVersion
    /// When the report was made (ISO 8601, UTC).
    public var generatedAt: String
    public var window: Window
    public var databases: [DatabaseInfo]
    /// The worst verdict over all candidates: `reject` if any rejects, else `hold` if any holds.
    public var decision: Verdict.Decision
    public var routes: [RouteReport]
    /// The routes' live experiments (absent when none is configured).
    public var experiments: [ExperimentReport]?

    /// Whether the run should fail (exit 3): a shadow verdict rejects, or an experiment is to
    /// be killed or its model retrained.
    public var fails: Bool {
        self.decision == .reject || (self.experiments ?? []).contains { $0.decision == "kill" || $0.decision == "retrain" }
    }

    /// The time window the figures cover.
    public struct Window: Codable, Sendable {
        public var from: String?
        public var to: String?
        public var fromMicros: Int64?
        public var toMicros: Int64?
    }

    /// One database file read.
    public struct DatabaseInfo: Codable, Sendable {
        public var path: String
        public var schemaVersion: Int
        /// Pairs of this file inside the window.
        public var pairs: Int
    }
}

/// One route: a baseline and its candidates.
public struct RouteReport: Codable, Sendable {
    public var name: String
    /// What segments are keyed by, e.g. `header X-Tenant`.
    public var segmentKey: String?
    /// The A/A replica's overall disagreement and its noisiest paths, when it ran.
    public var noiseFloor: NoiseFloorSection?
    /// Circuit-breaker and ramp changes in the window, oldest first (at most 1,000 per file).
    public var events: [GateEventReport]
    public var candidates: [CandidateReport]
}

/// A gate's state change.
public struct GateEventReport: Codable, Sendable {
    /// ISO 8601 UTC.
    public var at: String
    /// Empty for route-wide gates (the ramp).
    public var candidate: String
    /// `circuit_breaker` or `ramp`.
    public var kind: String
    public var from: String
    public var to: String
    public var reason: String
}

/// The baseline against itself.
public struct NoiseFloorSection: Codable, Sendable {
    public var compared: Int
    public var diverged: Int
    public var rate: Double
    public var interval: [Double]
    /// Paths on which the baseline disagrees with itself, all time.
    public var noisyPaths: [PathCount]
}

/// A path and how often it differs.
public struct PathCount: Codable, Sendable {
    public var path: String
    public var count: Int
    /// Share of compared pairs.
    public var share: Double
    /// Up to three request ids of pairs where it differed, to look up with sqlite3.
    public var examples: [String]
}

/// One candidate of a route.
public struct CandidateReport: Codable, Sendable {
    public var name: String
    /// Recorded pairs in the window.
    public var pairs: Int
    public var coverage: CoverageSection
    public var divergence: DivergenceSection
    public var latency: LatencySection
    public var errors: ErrorSection
    public var segments: [SegmentReport]
    public var hourly: [HourReport]
    public var cost: CostSection?
    public var enoughData: EnoughDataSection
    public var verdict: VerdictSection
}

/// What happened to the requests the route saw, for this candidate.
public struct CoverageSection: Codable, Sendable {
    /// Requests the route saw (every coverage reason).
    public var seen: Int
    /// Requests recorded as pairs (compared, candidate error, baseline error, client closed).
    public var recorded: Int
    /// Requests not recorded, by reason (`not_sampled`, `queue_full`, `body_too_large`, …).
    public var dropped: [String: Int]
    /// Recorded pairs whose candidate call failed, by kind (`timeout`, `refused`, `http_5xx`, …).
    public var candidateErrors: [String: Int]
}

public struct DivergenceSection: Codable, Sendable {
    public var compared: Int
    public var diverged: Int
    public var rate: Double
    /// Wilson 95% interval of `rate`.
    public var interval: [Double]
    /// The A/A floor subtracted below; 0 when no A/A pairs exist.
    public var noiseFloorRate: Double?
    public var aboveNoise: Double
    /// Newcombe 95% interval of `aboveNoise` (Wilson's when there is no floor).
    public var aboveNoiseInterval: [Double]
    public var meanScore: Double
    /// Pairs scoring exactly 0.
    public var zeroScores: Int
    /// Counts of scores in 20 bins of width 0.05 over (0, 1] (a score of exactly 0 is in `zeroScores`).
    public var scoreHistogram: [Int]
    /// The paths that differ most often, with example request ids.
    public var topPaths: [PathCount]
}

public struct LatencySection: Codable, Sendable {
    public var baseline: ArmLatency
    public var candidate: ArmLatency
    /// Candidate − baseline at p50, p90, p99, p99.9 (microseconds), with bootstrap 95% intervals.
    public var differences: [QuantileDifference]
    /// Points (microseconds, cumulative share) of each arm's latency distribution, for charts.
    public var baselineCdf: [[Double]]
    public var candidateCdf: [[Double]]
}

/// Latency percentiles of one arm in microseconds.
public struct ArmLatency: Codable, Sendable {
    public var count: Int
    public var mean: Double
    public var p50: Double
    public var p90: Double
    public var p99: Double
    public var p999: Double
}

public struct QuantileDifference: Codable, Sendable {
    public var quantile: Double
    public var estimate: Double
    public var lower: Double
    public var upper: Double
}

/// Error and timeout rates per arm over the recorded pairs, and whether they differ.
public struct ErrorSection: Codable, Sendable {
    /// Pairs both arms were asked to answer (client-closed and shutdown pairs excluded).
    public var pairs: Int
    public var baselineErrors: Int
    public var candidateErrors: Int
    public var baselineTimeouts: Int
    public var candidateTimeouts: Int
    public var baselineRate: Double
    public var candidateRate: Double
    public var difference: Double
    /// Newcombe 95% interval of `difference`.
    public var interval: [Double]
    /// Two-proportion z-test.
    public var pValue: Double
    /// Cohen's h of the two rates.
    public var effectSize: Double
    public var significant: Bool
    public var timeoutDifference: Double
    public var timeoutPValue: Double
}

/// The figures of one segment value.
public struct SegmentReport: Codable, Sendable {
    public var value: String
    public var pairs: Int
    public var compared: Int
    public var divergenceRate: Double
    public var interval: [Double]
    public var baselineErrorRate: Double
    public var candidateErrorRate: Double
    public var candidateP99: Double?
    public var baselineP99: Double?
    /// The candidate breaks a guardrail in this segment, whatever it does overall.
    public var flagged: Bool
    public var reasons: [String]
}

/// One hour of the window.
public struct HourReport: Codable, Sendable {
    /// Start of the hour, ISO 8601 UTC.
    public var hour: String
    public var pairs: Int
    public var compared: Int
    public var divergenceRate: Double
    public var baselineP50: Double?
    public var baselineP99: Double?
    public var candidateP50: Double?
    public var candidateP99: Double?
    public var candidateErrors: Int
}

public struct CostSection: Codable, Sendable {
    public var pairs: Int
    public var baselinePerRequest: Double
    public var candidatePerRequest: Double
    public var baselinePer1000: Double
    public var candidatePer1000: Double
    /// candidate / baseline − 1; `nil` when the baseline costs nothing.
    public var increase: Double?
    /// Spend per UTC day on the recorded pairs, oldest first: what shadowing this candidate cost
    /// (its column) beside what the same requests cost at the baseline.
    public var days: [DaySpend] = []

    public struct DaySpend: Codable, Sendable, Equatable {
        /// `YYYY-MM-DD`, UTC.
        public var day: String
        public var pairs: Int
        public var baseline: Double
        public var candidate: Double
    }
}

/// Whether the divergence rate is pinned down within the configured margin.
public struct EnoughDataSection: Codable, Sendable {
    public var enough: Bool
    public var compared: Int
    /// Half-width of the divergence rate's 95% interval.
    public var halfWidth: Double
    public var margin: Double
    /// More compared pairs needed to reach the margin (0 when enough).
    public var additionalPairsNeeded: Int
    public var minPairs: Int
}

public struct VerdictSection: Codable, Sendable {
    public var decision: Verdict.Decision
    /// The checks that decided it (failures for reject, open checks for hold).
    public var reasons: [Verdict.Check]
    public var checks: [Verdict.Check]
}
