/// One side of an A/B experiment.
public enum ExperimentArm: String, Sendable, Equatable, Hashable, CaseIterable {
    /// The baseline model.
    case control
    /// The experiment's candidate.
    case treatment
}

/// What the request path records about one request of a route with an experiment.
public struct ExperimentExposure: Sendable, Equatable {
    public var experiment: String
    /// The assignment key's value; `nil` for a request without one (served by control, counted).
    public var key: String?
    /// The arm the user is assigned to; `nil` when not enrolled (recorded only with a pair).
    public var arm: ExperimentArm?
    /// The arm whose answer the client got: control for a fallback or a stopped experiment.
    public var servedBy: ExperimentArm
    /// Treatment failed and the control's answer was sent instead.
    public var fallback: Bool
    /// The treatment's answer when it served and no control copy made a pair with it (in
    /// memory only: the guardrails read it; the database has the exposure without a pair).
    public var unpairedTreatment: ArmResult?

    public init(experiment: String, key: String?, arm: ExperimentArm?, servedBy: ExperimentArm, fallback: Bool = false) {
        self.experiment = experiment
        self.key = key
        self.arm = arm
        self.servedBy = servedBy
        self.fallback = fallback
    }
}
