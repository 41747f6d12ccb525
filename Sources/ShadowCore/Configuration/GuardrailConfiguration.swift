/// The limits a route's candidate must stay within to be promoted to a live A/B test.
///
/// Each limit is checked against a 95% interval, not a point estimate: a limit *fails* when the
/// whole interval is beyond it, *passes* when the whole interval is within it, and is
/// *inconclusive* otherwise (which holds the candidate until there is more data).
public struct GuardrailConfiguration: Sendable, Equatable {
    /// How much slower the candidate's p99 may be than the baseline's.
    public enum LatencyLimit: Sendable, Equatable, CustomStringConvertible {
        /// An absolute amount.
        case absolute(Duration)
        /// A share of the baseline's p99 (0.2 = 20% slower).
        case relative(Double)

        /// The limit in microseconds for a baseline p99 in microseconds.
        public func microseconds(baselineP99 micros: Double) -> Double {
            switch self {
            case .absolute(let duration): Double(duration.microseconds)
            case .relative(let share): share * micros
            }
        }

        public var description: String {
            switch self {
            case .absolute(let duration): "+\(Units.format(duration))"
            case .relative(let share): "+\(Units.formatPercent(share))"
            }
        }
    }

    /// Largest divergence rate above the A/A noise floor (0.05 = five points).
    public var maxDivergenceAboveNoise: Double
    public var maxP99Regression: LatencyLimit
    /// Largest increase of the candidate's error rate over the baseline's (0.01 = one point).
    public var maxErrorRateIncrease: Double
    /// Largest cost increase per request as a share of the baseline's (0.1 = 10% dearer); `nil`
    /// does not check cost.
    public var maxCostIncrease: Double?
    /// Fewer compared pairs than this hold the verdict.
    public var minPairs: Int
    /// The divergence rate should be known within ± this (half-width of its 95% interval); the
    /// report says how many more pairs that needs.
    public var margin: Double

    public init(
        maxDivergenceAboveNoise: Double = 0.05,
        maxP99Regression: LatencyLimit = .relative(0.2),
        maxErrorRateIncrease: Double = 0.01,
        maxCostIncrease: Double? = nil,
        minPairs: Int = 1_000,
        margin: Double = 0.01
    ) {
        self.maxDivergenceAboveNoise = maxDivergenceAboveNoise
        self.maxP99Regression = maxP99Regression
        self.maxErrorRateIncrease = maxErrorRateIncrease
        self.maxCostIncrease = maxCostIncrease
        self.minPairs = minPairs
        self.margin = margin
    }
}

/// What one call to a model costs, in the operator's own units (dollars, cents, GPU-seconds).
public struct CostConfiguration: Sendable, Equatable {
    public var perRequest: Double
    /// Per 1,000 prompt (input) tokens, read from an OpenAI-style `usage.prompt_tokens`.
    public var per1kPromptTokens: Double
    /// Per 1,000 completion (output) tokens, from `usage.completion_tokens`.
    public var per1kCompletionTokens: Double

    public init(perRequest: Double = 0, per1kPromptTokens: Double = 0, per1kCompletionTokens: Double = 0) {
        self.perRequest = perRequest
        self.per1kPromptTokens = per1kPromptTokens
        self.per1kCompletionTokens = per1kCompletionTokens
    }

    /// Whether the price depends on token counts (the report then reads `usage` from the bodies).
    public var usesTokens: Bool { self.per1kPromptTokens > 0 || self.per1kCompletionTokens > 0 }

    /// The cost of one call.
    public func cost(promptTokens: Double, completionTokens: Double) -> Double {
        self.perRequest + promptTokens / 1000 * self.per1kPromptTokens + completionTokens / 1000 * self.per1kCompletionTokens
    }
}

/// Which value splits a route's traffic into segments (a tenant, a country, a client app) so the
/// report can show where a candidate is worse than it is overall.
public enum RequestKey: Sendable, Equatable, CustomStringConvertible {
    /// A request header, captured by the sidecar into `exchanges.segment`.
    case header(String)
    /// A JSONPath into the request body, read at report time with `json_extract`.
    case field(String)

    public var description: String {
        switch self {
        case .header(let name): "header \(name)"
        case .field(let path): "field \(path)"
        }
    }
}
