import NIOCore
import ShadowCore
import ShadowStore
import ShadowTensor

/// A configuration made ready for the request path: routes indexed, scorers built, upstream
/// endpoints prepared (IP literals parsed once, TLS contexts built with their files read).
final class SidecarRuntime: Sendable {
    /// One route made ready. A class, not a struct: the request path hands a route around (the
    /// handler, its request, each copy), and a struct this size cost a retain per field at every
    /// hand-off.
    final class Route: Sendable {
        let configuration: RouteConfiguration
        let scorer: any Scorer
        /// The candidates, then the A/A replica if configured.
        let targets: [CandidateConfiguration]
        /// The same targets as the mirror decision sees them.
        let decisionTargets: [MirrorDecision.Target]
        let baseline: UpstreamEndpoint
        /// Per target (same order).
        let candidateEndpoints: [UpstreamEndpoint]
        let metrics: SidecarMetrics.RouteHandles
        /// Per target (same order), its circuit breaker if configured.
        let breakers: [CandidateBreaker?]
        let limiter: RouteLimiter?
        /// The sampling key's salt: the configured one or the route name.
        let salt: String
        /// The sampling key's field, parsed once.
        let sampleField: JSONPathPattern?
        /// Set when the route ramps: the stage scales its sample.
        let ramp: RampController?
        /// Whether the writer reads `usage` from JSON bodies (OpenAI-compatible or token prices).
        let readsUsage: Bool
        /// The baseline's header rewrite, secrets read.
        let baselineHeaders: UpstreamHeaders
        /// Per target (same order): its rewrite, with the client's credential headers stripped
        /// unless it forwards credentials.
        let targetHeaders: [UpstreamHeaders]
        /// The route's live experiment, if it has one.
        let experiment: Experiment?
        /// Reads gRPC tensor messages (and V2 binary tensor bodies) as JSON, when the scorer
        /// names `kserve_v2` or `tf_serving`.
        let bodyDecoder: (any BodyDecoder)?

        init(
            configuration: RouteConfiguration,
            scorer: any Scorer,
            targets: [CandidateConfiguration],
            decisionTargets: [MirrorDecision.Target],
            baseline: UpstreamEndpoint,
            candidateEndpoints: [UpstreamEndpoint],
            metrics: SidecarMetrics.RouteHandles,
            breakers: [CandidateBreaker?],
            limiter: RouteLimiter?,
            salt: String,
            sampleField: JSONPathPattern?,
            ramp: RampController?,
            readsUsage: Bool,
            baselineHeaders: UpstreamHeaders,
            targetHeaders: [UpstreamHeaders],
            experiment: Experiment?,
            bodyDecoder: (any BodyDecoder)?
        ) {
            self.configuration = configuration
            self.scorer = scorer
            self.targets = targets
            self.decisionTargets = decisionTargets
            self.baseline = baseline
            self.candidateEndpoints = candidateEndpoints
            self.metrics = metrics
            self.breakers = breakers
            self.limiter = limiter
            self.salt = salt
            self.sampleField = sampleField
            self.ramp = ramp
            self.readsUsage = readsUsage
            self.baselineHeaders = baselineHeaders
            self.targetHeaders = targetHeaders
            self.experiment = experiment
            self.bodyDecoder = bodyDecoder
        }
    }

    /// A route's experiment as the request path needs it.
    struct Experiment: Sendable {
        let configuration: ExperimentConfiguration
        /// The treatment's index among the route's targets.
        let treatmentIndex: Int
        /// The assignment key's body field, parsed once (nil when the key is a header).
        let keyField: JSONPathPattern?
        /// The current share per arm, read once per request.
        let controller: ExperimentController
        let counters: ExperimentController.RequestCounters
    }

    let configuration: Configuration
    let table: RouteTable
    let routes: [Route]
    /// Metric handles for requests that match no route.
    let unroutedMetrics: SidecarMetrics.RouteHandles

    init(
        configuration: Configuration,
        metrics: SidecarMetrics,
        gating: GatingRegistry,
        ramp: RampController,
        experiments: ExperimentController,
        environment: [String: String]
    ) throws {
        self.configuration = configuration
        self.table = RouteTable(routes: configuration.routes)
        self.routes = try configuration.routes.map { route in
            Route(
                configuration: route,
                scorer: route.scorer.makeScorer(),
                targets: route.mirrorTargets,
                decisionTargets: route.mirrorTargets.map {
                    MirrorDecision.Target(samplePercent: $0.samplePercent, perRequestCost: $0.cost?.perRequest ?? 0)
                },
                baseline: try UpstreamEndpoint(
                    url: route.baseline.url,
                    tls: route.baseline.tls,
                    proxy: configuration.egressProxy,
                    environment: environment
                ),
                candidateEndpoints: try route.mirrorTargets.map { target throws(ConfigurationError) in
                    try UpstreamEndpoint(url: target.url, tls: target.tls, proxy: configuration.egressProxy, environment: environment)
                },
                metrics: metrics.handles(route: route.name, targets: route.mirrorTargets.map(\.name)),
                breakers: route.mirrorTargets.map { gating.breaker(route: route.name, candidate: $0.name, configuration: route.circuitBreaker) },
                limiter: gating.limiter(route: route.name, configuration: route.rateLimit),
                salt: route.sampleSalt ?? route.name,
                sampleField: Self.pattern(route.sampleKey),
                ramp: route.ramp == nil ? nil : ramp,
                readsUsage: route.scorer.outputProtocol.isLLM || route.baseline.cost?.usesTokens == true
                    || route.candidates.contains { $0.cost?.usesTokens == true },
                baselineHeaders: try UpstreamHeaders(route.baseline.headers, environment: environment),
                targetHeaders: try route.mirrorTargets.map { target in
                    try UpstreamHeaders(
                        target.headers,
                        stripping: target.forwardCredentials ? [] : configuration.credentialHeaders,
                        environment: environment
                    )
                },
                experiment: route.experiment.flatMap { experiment in
                    route.mirrorTargets.firstIndex { $0.name == experiment.treatment }.map {
                        Experiment(
                            configuration: experiment,
                            treatmentIndex: $0,
                            keyField: Self.pattern(experiment.key),
                            controller: experiments,
                            counters: experiments.counters(for: experiment.name)
                        )
                    }
                },
                bodyDecoder: TensorBodyDecoder(outputProtocol: route.scorer.outputProtocol)
            )
        }
        self.unroutedMetrics = metrics.handles(route: "-", targets: [])
    }

    /// A key's body field, parsed (validated when the configuration was read).
    private static func pattern(_ key: RequestKey?) -> JSONPathPattern? {
        guard case .field(let text) = key, case .success(let pattern) = JSONPathPattern.parse(text) else { return nil }
        return pattern
    }

    func route(for path: String) -> Route? {
        self.table.index(for: path).map { self.routes[$0] }
    }
}
