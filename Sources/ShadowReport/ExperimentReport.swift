import ShadowCore

/// One live experiment in the report: who was exposed, the sample-ratio check, each metric's
/// comparison with the user as the unit, segments, planning, and the ship / continue / retrain /
/// kill decision with its reasons.
public struct ExperimentReport: Codable, Sendable {
    public struct SampleRatioCheck: Codable, Sendable {
        public var pValue: Double
        public var controlUsers: Int
        public var treatmentUsers: Int
        /// p < 0.001: the assignment is broken.
        public var mismatch: Bool
    }

    public struct Arm: Codable, Sendable {
        public var arm: String
        public var users: Int
        public var mean: Double
    }

    public struct MetricReport: Codable, Sendable {
        public var name: String
        public var kind: String
        /// `user` (one value per user) or `request` (a rate per request, by the delta method).
        public var per: String
        public var primary: Bool
        public var arms: [Arm]
        public var difference: MetricComparison.Estimate
        public var relativeLift: MetricComparison.Estimate
        public var pValue: Double
        /// Bayesian, flat priors: a secondary figure, not the decision's.
        public var probabilityTreatmentBetter: Double
        public var maxDecrease: Double?
    }

    public struct SegmentReport: Codable, Sendable {
        public var segment: String
        public var controlUsers: Int
        public var treatmentUsers: Int
        public var relativeLift: MetricComparison.Estimate
        public var worse: Bool
    }

    public struct Day: Codable, Sendable {
        public var date: String
        public var controlUsers: Int
        public var treatmentUsers: Int
        public var controlRequests: Int
        public var treatmentRequests: Int
    }

    public var name: String
    public var route: String
    public var treatment: String
    public var analysis: String
    /// `running` or `stopped`.
    public var state: String
    public var stoppedReason: String?
    public var stage: Int?
    public var allocation: [Double]
    public var decision: String
    public var reasons: [String]
    public var srm: SampleRatioCheck
    public var requests: [String: Int]
    public var fallbacks: Int
    /// Users seen in both arms (should be none).
    public var conflictingUsers: Int
    /// Outcome events of this experiment's metrics that match no enrolled request or user.
    public var unmatchedOutcomes: Int
    public var metrics: [MetricReport]
    public var segments: [SegmentReport]
    public var planning: ExperimentAnalysis.Planning
    /// `fixed` analysis before its planned sample: figures are shown but not decided on.
    public var resultsWithheld: Bool
    public var days: [Day]
}
