/// A route's live experiment: a sticky share of users served by one candidate (the treatment)
/// instead of the baseline (the control), grown stage by stage while guardrails hold, reverted
/// to control when one breaks, and analysed on business outcomes.
///
/// Without one a route shadows only (the default): the baseline answers every request.
public struct ExperimentConfiguration: Sendable, Equatable {
    public enum Mode: String, Sendable, Equatable, CaseIterable {
        /// Each keyed user is assigned to control or treatment; the assigned arm answers.
        case ab
    }

    /// What a failed treatment call (transport error, timeout, 5xx) answers with.
    public enum Fallback: String, Sendable, Equatable, CaseIterable {
        /// The control's answer (the request is sent to the baseline; recorded as a fallback).
        case control
        /// The treatment's failure, as it came.
        case none
    }

    /// How p-values and intervals are computed in the report.
    public enum Analysis: String, Sendable, Equatable, CaseIterable {
        /// Always-valid (a mixture SPRT confidence sequence): valid at every look.
        case sequential
        /// Fixed-horizon: reported only once the planned sample size and `min_duration` are in.
        case fixed
    }

    /// An outcome metric: events posted to `/outcomes` (or imported) under this name.
    public struct Metric: Sendable, Equatable {
        public enum Kind: String, Sendable, Equatable, CaseIterable, Codable {
            /// 0 or 1 per event; a user's value is 1 when any of their events is 1 (converted).
            case binary
            /// Any finite number; a user's value is the sum of their events (revenue per user).
            case continuous
        }

        /// What one value is measured over.
        public enum Unit: String, Sendable, Equatable, CaseIterable, Codable {
            /// Per user: converted or not, revenue per user.
            case user
            /// Per request: events over the user's requests (clicks per request), analysed as a
            /// ratio of per-user sums with the delta method, never request by request.
            case request
        }

        public var name: String
        public var kind: Kind
        public var per: Unit

        public init(name: String, kind: Kind, per: Unit = .user) {
            self.name = name
            self.kind = kind
            self.per = per
        }
    }

    /// The limits watched continuously by the daemon while treatment is exposed; any broken one
    /// stops the experiment (treatment weight 0) until a person resumes it.
    public struct Guardrails: Sendable, Equatable {
        /// Largest increase of the served arm's error rate (treatment minus control).
        public var maxErrorRateIncrease: Double
        /// How much slower treatment may be at p99 than control.
        public var maxP99Regression: GuardrailConfiguration.LatencyLimit
        /// Largest share of treatment requests answered by the control's fallback.
        public var maxFallbackRate: Double
        /// Largest relative decrease per outcome metric (0.02 = 2%), judged in the report.
        public var maxDecrease: [String: Double]

        public init(
            maxErrorRateIncrease: Double = 0.01,
            maxP99Regression: GuardrailConfiguration.LatencyLimit = .relative(0.2),
            maxFallbackRate: Double = 0.02,
            maxDecrease: [String: Double] = [:]
        ) {
            self.maxErrorRateIncrease = maxErrorRateIncrease
            self.maxP99Regression = maxP99Regression
            self.maxFallbackRate = maxFallbackRate
            self.maxDecrease = maxDecrease
        }
    }

    /// Identifies the experiment; changing it (not the salt, key or arms) starts a new one.
    public var name: String
    public var mode: Mode
    /// The candidate (by name) that serves the treatment arm.
    public var treatment: String
    /// The assignment unit: a header (`x-user-id`) or a JSON body field.
    public var key: RequestKey
    /// Mixed into the key's hash; the experiment's name by default.
    public var salt: String
    /// Percent of keyed users in each arm per stage, growing, at most 50 (`[1, 5, 20, 50]`): at
    /// 5%, 5% of users are in treatment and another 5% in control.
    public var allocation: [Double]
    /// A stage lasts at least this long and this many treatment requests before the next.
    public var stageMinDuration: Duration
    public var stageMinRequests: Int
    /// Send each exposed request to the arm that did not serve it too, off the response path,
    /// so divergence and latency stay paired during the test.
    public var shadowOtherArm: Bool
    public var fallback: Fallback
    /// The response header that names the serving arm; `nil` sends none.
    public var armHeader: String?
    public var guardrails: Guardrails
    public var metrics: [Metric]
    /// The metric the decision is made on.
    public var primary: String?
    /// Smallest relative lift worth detecting on the primary metric (0.05 = 5%).
    public var minimumDetectableEffect: Double
    public var alpha: Double
    public var power: Double
    /// The experiment runs at least this long (whole weeks cover day-of-week effects).
    public var minDuration: Duration
    public var analysis: Analysis

    public init(name: String, treatment: String, key: RequestKey) {
        self.name = name
        self.mode = .ab
        self.treatment = treatment
        self.key = key
        self.salt = name
        self.allocation = [1, 5, 20, 50]
        self.stageMinDuration = .seconds(3600)
        self.stageMinRequests = 1_000
        self.shadowOtherArm = true
        self.fallback = .control
        self.armHeader = "x-shadowd-arm"
        self.guardrails = Guardrails()
        self.metrics = []
        self.primary = nil
        self.minimumDetectableEffect = 0.05
        self.alpha = 0.05
        self.power = 0.8
        self.minDuration = .seconds(7 * 86_400)
        self.analysis = .sequential
    }

    /// What may not change while the experiment runs under the same name: changing any of it
    /// would move users between arms and confound the test.
    public var assignmentSignature: String {
        let key: String =
            switch self.key {
            case .header(let name): "header:" + name.lowercased()
            case .field(let path): "field:" + path
            }
        return [self.mode.rawValue, self.treatment, key, self.salt].joined(separator: "\u{1F}")
    }

    /// The share of users in each arm (0...50) at a stage.
    public func percent(stage: Int) -> Double {
        self.allocation[min(max(0, stage), self.allocation.count - 1)]
    }
}
