/// Which arm answers one request of a route with an experiment. Pure: the key's position and
/// the experiment's current treatment share in, the arm out.
///
/// A user's position comes from the pinned hash of their key and the experiment's salt
/// (``Sampler/position(key:salt:)``), so the same user is in the same arm on every host, after
/// every restart and reload; a user is in treatment when their position is below the share, so
/// growing the share only adds users, and a share of 0 (a stopped experiment) sends everyone to
/// control.
public struct ServingDecision: Sendable, Equatable {
    public enum Reason: String, Sendable, Equatable {
        /// By the key's position against the share.
        case assigned
        /// The request carries no key: control answers, and it is counted.
        case noKey = "no_key"
    }

    public var arm: ExperimentArm
    public var reason: Reason

    public init(arm: ExperimentArm, reason: Reason) {
        self.arm = arm
        self.reason = reason
    }

    /// - Parameters:
    ///   - keyPosition: the key's position in [0, 1), `nil` without a key.
    ///   - treatmentPercent: the share of keyed users in treatment now, 0...100.
    public static func decide(keyPosition: Double?, treatmentPercent: Double) -> ServingDecision {
        guard let keyPosition else { return ServingDecision(arm: .control, reason: .noKey) }
        return ServingDecision(arm: keyPosition * 100 < treatmentPercent ? .treatment : .control, reason: .assigned)
    }
}
