/// Which arm a request of a route with an experiment belongs to, and so who answers it. Pure:
/// the key's position and the experiment's current treatment share in, the arm out.
///
/// A user's position comes from the pinned hash of their key and the experiment's salt
/// (``Sampler/position(key:salt:)``), so the same user is in the same arm on every host, after
/// every restart and reload. At a share of `t` percent, positions below `t` are treatment and
/// positions at or above `100 − t` are control: two equal slices growing towards each other from
/// both ends (so the arms stay 50/50 for the sample-ratio check), meeting at 50%. Users between
/// them are not enrolled: the baseline answers them as if there were no experiment. Growing the
/// share only enrols more users; no user ever moves between arms. A share of 0 (a stopped
/// experiment) enrols nobody.
public struct ServingDecision: Sendable, Equatable {
    public enum Reason: String, Sendable, Equatable {
        /// By the key's position against the share.
        case assigned
        /// Between the two slices at the current share.
        case notEnrolled = "not_enrolled"
        /// The request carries no key: the baseline answers, and it is counted.
        case noKey = "no_key"
    }

    /// The arm, `nil` when the request is not in the experiment.
    public var arm: ExperimentArm?
    public var reason: Reason

    public init(arm: ExperimentArm?, reason: Reason) {
        self.arm = arm
        self.reason = reason
    }

    /// Who answers: treatment's candidate for treatment, the baseline otherwise.
    public var servedBy: ExperimentArm { self.arm == .treatment ? .treatment : .control }

    /// Shares above this would make the slices overlap.
    public static let maxTreatmentPercent = 50.0

    /// - Parameters:
    ///   - keyPosition: the key's position in [0, 1), `nil` without a key.
    ///   - treatmentPercent: the share of keyed users in each arm now, 0...50.
    public static func decide(keyPosition: Double?, treatmentPercent: Double) -> ServingDecision {
        guard let keyPosition else { return ServingDecision(arm: nil, reason: .noKey) }
        let percent = min(treatmentPercent, Self.maxTreatmentPercent)
        let point = keyPosition * 100
        if point < percent { return ServingDecision(arm: .treatment, reason: .assigned) }
        if point >= 100 - percent { return ServingDecision(arm: .control, reason: .assigned) }
        return ServingDecision(arm: nil, reason: .notEnrolled)
    }
}
