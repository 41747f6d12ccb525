import ShadowCore

/// What a report covers and how it judges.
public struct ReportOptions: Sendable {
    /// Window start (inclusive), microseconds since the epoch; `nil` = from the first pair.
    public var fromMicros: Int64?
    /// Window end (exclusive); `nil` = up to now.
    public var toMicros: Int64?
    /// Only this route.
    public var route: String?
    /// The daemon's configuration, for guardrails, costs and segment keys; without it every route
    /// gets the default guardrails and no costs.
    public var configuration: Configuration?
    /// When the report is made, microseconds since the epoch.
    public var nowMicros: Int64
    /// Seeds the reservoirs and the bootstrap, so the same data gives the same report.
    public var seed: UInt64
    public var bootstrapReplicates: Int

    public init(
        fromMicros: Int64? = nil,
        toMicros: Int64? = nil,
        route: String? = nil,
        configuration: Configuration? = nil,
        nowMicros: Int64,
        seed: UInt64 = 0x5EED,
        bootstrapReplicates: Int = 1_000
    ) {
        self.fromMicros = fromMicros
        self.toMicros = toMicros
        self.route = route
        self.configuration = configuration
        self.nowMicros = nowMicros
        self.seed = seed
        self.bootstrapReplicates = bootstrapReplicates
    }

    func routeConfiguration(_ name: String) -> RouteConfiguration? {
        self.configuration?.routes.first { $0.name == name }
    }

    func guardrails(route: String) -> GuardrailConfiguration {
        self.routeConfiguration(route)?.guardrails ?? GuardrailConfiguration()
    }

    /// Baseline and candidate prices, when both are configured.
    func costs(route: String, candidate: String) -> (baseline: CostConfiguration, candidate: CostConfiguration)? {
        guard let configuration = self.routeConfiguration(route), let baseline = configuration.baseline.cost else { return nil }
        if candidate == NoiseFloorConfiguration.replicaName { return (baseline, baseline) }
        guard let candidateCost = configuration.candidates.first(where: { $0.name == candidate })?.cost else { return nil }
        return (baseline, candidateCost)
    }
}
