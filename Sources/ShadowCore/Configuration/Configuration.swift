/// The whole daemon configuration, validated.
///
/// Build one with ``Configuration/load(yaml:)``; every value in it has passed validation, so the
/// rest of the program never re-checks it.
public struct Configuration: Sendable, Equatable {
    public var server: ServerConfiguration
    public var admin: AdminConfiguration
    public var limits: LimitsConfiguration
    public var storage: StorageConfiguration
    /// Hosts other than loopback that upstream URLs may name.
    public var allowedUpstreamHosts: [String]
    /// Client headers stripped from candidate copies unless a candidate forwards credentials
    /// (lowercased; ``HeaderRewrite/defaultCredentialHeaders`` unless configured).
    public var credentialHeaders = HeaderRewrite.defaultCredentialHeaders
    /// The forward proxy upstream connections go through (`upstreams.proxy`), if any.
    public var egressProxy: EgressProxyConfiguration?
    public var routes: [RouteConfiguration]
    /// A stable hash of the source text, stored with every record so rows from different
    /// configurations (and so different model builds) never mix silently.
    public var revision: String

    public init(
        server: ServerConfiguration = .init(),
        admin: AdminConfiguration = .init(),
        limits: LimitsConfiguration = .init(),
        storage: StorageConfiguration = .init(),
        allowedUpstreamHosts: [String] = [],
        routes: [RouteConfiguration],
        revision: String = "inline"
    ) {
        self.server = server
        self.admin = admin
        self.limits = limits
        self.storage = storage
        self.allowedUpstreamHosts = allowedUpstreamHosts
        self.routes = routes
        self.revision = revision
    }
}

/// The client-facing listener.
public struct ServerConfiguration: Sendable, Equatable {
    public var listen: HostPort
    /// Event-loop threads; `nil` means one per core.
    public var threads: Int?
    /// A keep-alive connection with no complete request for this long is closed (also bounds
    /// clients that dribble headers).
    public var idleTimeout: Duration
    /// How long in-flight requests may take to finish after SIGTERM.
    public var drainTimeout: Duration
    /// Client connections open at once; beyond it new ones are closed at once (and logged).
    public var maxConnections: Int = 10_000

    public init(
        listen: HostPort = HostPort(host: "127.0.0.1", port: 8080),
        threads: Int? = nil,
        idleTimeout: Duration = .seconds(60),
        drainTimeout: Duration = .seconds(10)
    ) {
        self.listen = listen
        self.threads = threads
        self.idleTimeout = idleTimeout
        self.drainTimeout = drainTimeout
    }
}

/// The operator listener (`/healthz`, `/readyz`, `/stats`); loopback by default.
public struct AdminConfiguration: Sendable, Equatable {
    /// `nil` disables the admin listener.
    public var listen: HostPort?

    public init(listen: HostPort? = HostPort(host: "127.0.0.1", port: 8081)) {
        self.listen = listen
    }
}

/// Request size limits on the client side and on the mirror.
public struct LimitsConfiguration: Sendable, Equatable {
    /// Total size of the request line and headers; above it the client gets 431.
    public var maxHeaderBytes: Int
    /// Request body limit; above it the client gets 413.
    public var maxRequestBody: Int
    /// Requests with a larger body go to the baseline but are not mirrored (counted as `body_too_large`).
    public var mirrorMaxBody: Int
    /// A candidate compared on fewer than this percent of the copies meant for it over the last
    /// minute is logged (once per episode, and again when it recovers); 0 turns it off.
    public var coverageAlertPercent: Double
    /// Streams one HTTP/2 client connection may have open at once (its SETTINGS).
    public var http2MaxConcurrentStreams: Int

    public init(
        maxHeaderBytes: Int = 64 * 1024,
        maxRequestBody: Int = 16 << 20,
        mirrorMaxBody: Int = 1 << 20,
        coverageAlertPercent: Double = 50,
        http2MaxConcurrentStreams: Int = 100
    ) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxRequestBody = maxRequestBody
        self.mirrorMaxBody = mirrorMaxBody
        self.coverageAlertPercent = coverageAlertPercent
        self.http2MaxConcurrentStreams = http2MaxConcurrentStreams
    }
}

/// Where and how pairs are recorded.
public struct StorageConfiguration: Sendable, Equatable {
    public enum Synchronous: String, Sendable, Equatable, CaseIterable {
        /// WAL + NORMAL: durable across process crashes; the last commits may roll back on power loss.
        case normal
        /// WAL + FULL: durable across power loss, one sync per batch.
        case full
    }

    public var path: String
    /// Completed exchanges waiting for the writer; beyond it they are dropped and counted (`recorder_full`).
    public var queueCapacity: Int
    /// Most exchanges per transaction.
    public var batchSize: Int
    /// How long the writer waits to fill a batch; bounds what a `kill -9` can lose.
    public var flushInterval: Duration
    public var synchronous: Synchronous
    /// Bodies (request, baseline, candidate) are stored up to this size; longer ones are cut and flagged.
    public var maxStoredBody: Int
    /// Whether request bodies are stored at all.
    public var storeRequestBodies: Bool
    /// JSON paths in requests and responses never written as they are.
    public var redaction: RedactionConfiguration = RedactionConfiguration()
    /// `full` stores bodies (after redaction); `compressed` stores them zlib-compressed where that
    /// saves space; `hash` stores only a keyed hash of each body.
    public var bodies: BodyStorage = .full

    public enum BodyStorage: String, Sendable, Equatable, CaseIterable {
        case full
        /// As `full`, each body of 64 bytes or more zlib-compressed (the `sqlite3` shell's
        /// `sqlar_compress` format) when that makes it at least an eighth smaller.
        case compressed
        case hash
    }
    /// Pairs older than this are deleted; `nil` keeps them.
    public var retentionAge: Duration?
    /// Oldest pairs are deleted while the database is larger than this; `nil` means no cap.
    public var retentionMaxBytes: Int?
    /// How often retention runs.
    public var retentionInterval: Duration

    public init(
        path: String = "shadow.sqlite",
        queueCapacity: Int = 10_000,
        batchSize: Int = 500,
        flushInterval: Duration = .milliseconds(50),
        synchronous: Synchronous = .normal,
        maxStoredBody: Int = 1 << 20,
        storeRequestBodies: Bool = true,
        retentionAge: Duration? = nil,
        retentionMaxBytes: Int? = nil,
        retentionInterval: Duration = .seconds(600)
    ) {
        self.path = path
        self.queueCapacity = queueCapacity
        self.batchSize = batchSize
        self.flushInterval = flushInterval
        self.synchronous = synchronous
        self.maxStoredBody = maxStoredBody
        self.storeRequestBodies = storeRequestBodies
        self.retentionAge = retentionAge
        self.retentionMaxBytes = retentionMaxBytes
        self.retentionInterval = retentionInterval
    }
}

/// One path prefix: a baseline, its candidates and how their outputs are compared.
public struct RouteConfiguration: Sendable, Equatable {
    public var name: String
    /// Requests whose path starts with this prefix take this route; the longest prefix wins.
    public var prefix: String
    public var baseline: BaselineConfiguration
    public var candidates: [CandidateConfiguration]
    /// Share of requests mirrored, 0...100.
    public var samplePercent: Double
    public var scorer: ScorerConfiguration
    /// The A/A comparison that measures how much the baseline disagrees with itself.
    public var noiseFloor: NoiseFloorConfiguration?
    /// What the report breaks the route's figures down by.
    public var segment: RequestKey?
    /// With a key, the sample is a deterministic function of it (sticky users); without, random.
    public var sampleKey: RequestKey?
    /// Mixed into the key's hash so routes draw independent samples; the route name by default.
    public var sampleSalt: String?
    /// Which requests may be mirrored at all.
    public var gates: GateConfiguration
    /// Per candidate: stop mirroring while it fails.
    public var circuitBreaker: CircuitBreakerConfiguration?
    /// Caps on mirrored requests.
    public var rateLimit: RateLimitConfiguration?
    /// Staged exposure: the share of the sample mirrored grows while the guardrails hold.
    public var ramp: RampConfiguration?
    /// A live A/B experiment: a sticky share of users served by one candidate.
    public var experiment: ExperimentConfiguration?
    /// The limits the report's verdict checks.
    public var guardrails: GuardrailConfiguration

    public init(
        name: String,
        prefix: String,
        baseline: BaselineConfiguration,
        candidates: [CandidateConfiguration],
        samplePercent: Double = 100,
        scorer: ScorerConfiguration = .init(),
        noiseFloor: NoiseFloorConfiguration? = nil,
        segment: RequestKey? = nil,
        guardrails: GuardrailConfiguration = .init()
    ) {
        self.name = name
        self.prefix = prefix
        self.baseline = baseline
        self.candidates = candidates
        self.samplePercent = samplePercent
        self.scorer = scorer
        self.noiseFloor = noiseFloor
        self.segment = segment
        self.guardrails = guardrails
        self.gates = GateConfiguration()
    }

    /// The header whose value the sidecar records as each exchange's segment, if any.
    public var segmentHeader: String? {
        if case .header(let name) = self.segment { return name }
        return nil
    }

    /// Everything a request may be mirrored to: the candidates, then the A/A replica if any.
    public var mirrorTargets: [CandidateConfiguration] {
        guard let noiseFloor = self.noiseFloor else { return self.candidates }
        return self.candidates + [noiseFloor.replicaTarget(baseline: self.baseline)]
    }
}

/// Values that must not reach the disk: replaced by a keyed hash (equal values stay equal, so
/// pairs can still be joined on them) or removed before a body is written.
public struct RedactionConfiguration: Sendable, Equatable {
    public enum Mode: String, Sendable, Equatable, CaseIterable {
        case hash
        case remove
    }

    /// Patterns such as `$.user.email` or `$.messages[*].content`.
    public var jsonPaths: [String]
    public var mode: Mode

    public init(jsonPaths: [String] = [], mode: Mode = .hash) {
        self.jsonPaths = jsonPaths
        self.mode = mode
    }

    public var isEmpty: Bool { self.jsonPaths.isEmpty }
}

/// Caps on how much a route mirrors, whatever the sample says.
public struct RateLimitConfiguration: Sendable, Equatable {
    /// Mirrored requests per second (token bucket); `nil` = no rate cap.
    public var perSecond: Double?
    /// Requests the bucket may save up (default: one second's worth).
    public var burst: Double?
    /// Mirrored requests per UTC day; `nil` = no budget.
    public var dailyRequests: Int?
    /// Cost units per UTC day, at the candidates' `cost.per_request`; `nil` = no cost budget.
    public var dailyCost: Double?

    public init(perSecond: Double? = nil, burst: Double? = nil, dailyRequests: Int? = nil, dailyCost: Double? = nil) {
        self.perSecond = perSecond
        self.burst = burst
        self.dailyRequests = dailyRequests
        self.dailyCost = dailyCost
    }
}

/// A/A: a share of requests also goes to a second instance of the baseline (or to the baseline
/// itself again), scored with the route's scorer. Paths on which the baseline disagrees with
/// itself more often than `maxDisagreement` are noise; with `autoIgnore` the candidates' scores
/// skip them.
public struct NoiseFloorConfiguration: Sendable, Equatable {
    /// The candidate name A/A pairs are recorded under (reserved).
    public static let replicaName = "aa-replica"

    /// A second instance of the baseline model; `nil` sends the copies to the baseline itself.
    public var replica: UpstreamURL?
    /// Share of requests also sent to the replica, 0...100.
    public var samplePercent: Double
    public var maxDisagreement: Double
    /// A/A pairs needed before a path can be called noisy.
    public var minPairs: Int
    public var autoIgnore: Bool

    public init(
        replica: UpstreamURL? = nil,
        samplePercent: Double? = nil,
        maxDisagreement: Double = 0.01,
        minPairs: Int = 50,
        autoIgnore: Bool = false
    ) {
        self.replica = replica
        self.samplePercent = samplePercent ?? (replica == nil ? 5 : 100)
        self.maxDisagreement = maxDisagreement
        self.minPairs = minPairs
        self.autoIgnore = autoIgnore
    }

    func replicaTarget(baseline: BaselineConfiguration) -> CandidateConfiguration {
        var target = CandidateConfiguration(
            name: Self.replicaName,
            url: self.replica ?? baseline.url,
            version: baseline.version,
            timeout: baseline.timeout,
            connectTimeout: baseline.connectTimeout
        )
        target.samplePercent = self.samplePercent
        // The baseline a second time: it is called as the baseline is, credentials included.
        target.forwardCredentials = true
        target.headers = baseline.headers
        target.idleTimeout = baseline.idleTimeout
        if target.url.usesTLS { target.tls = baseline.tls ?? UpstreamTLSConfiguration() }
        return target
    }
}

/// The production model: its answer is the only one a client ever sees.
public struct BaselineConfiguration: Sendable, Equatable {
    public var url: UpstreamURL
    /// A label of the model build, stored with every record.
    public var version: String
    /// No response head within this time gives the client 504; it also bounds gaps between body chunks.
    public var timeout: Duration
    public var connectTimeout: Duration
    /// Keep-alive connections kept open per event loop.
    public var maxIdleConnections: Int
    /// How long an idle pooled connection may be reused; keep it below the upstream's own
    /// keep-alive timeout (uvicorn, behind vLLM and many Python servers, closes after 5 s).
    /// Over TLS a longer one saves handshakes on bursts.
    public var idleTimeout: Duration = .seconds(4)
    /// What a call costs, for the report's cost comparison.
    public var cost: CostConfiguration?
    /// Headers the baseline gets beyond the client's (its own credentials, for instance).
    public var headers = HeaderRewrite()
    /// TLS settings; set exactly when the URL is `https://`.
    public var tls: UpstreamTLSConfiguration?

    public init(
        url: UpstreamURL,
        version: String = "",
        timeout: Duration = .seconds(30),
        connectTimeout: Duration = .seconds(2),
        maxIdleConnections: Int = 64
    ) {
        self.url = url
        self.version = version
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        self.maxIdleConnections = maxIdleConnections
        self.tls = url.usesTLS ? UpstreamTLSConfiguration() : nil
    }
}

/// A challenger model that receives mirrored copies; its answers are recorded, never returned.
public struct CandidateConfiguration: Sendable, Equatable {
    public var name: String
    public var url: UpstreamURL
    public var version: String
    /// Whole call, connect to last byte.
    public var timeout: Duration
    public var connectTimeout: Duration
    /// Mirrored copies waiting for a free call slot; beyond it they are dropped (`queue_full`).
    public var queueCapacity: Int
    /// Concurrent calls to this candidate (also its connection count).
    public var maxConcurrency: Int
    /// Longest a copy may wait in the queue before it is dropped (`queue_expired`); `nil` means
    /// the candidate's `timeout`.
    public var maxQueueWait: Duration?
    /// Its own sampling share, drawn separately from the route's (the A/A replica uses it).
    public var samplePercent: Double?
    /// What a call costs, for the report's cost comparison.
    public var cost: CostConfiguration?
    /// Headers this candidate's copies get beyond the client's (its own credentials).
    public var headers = HeaderRewrite()
    /// Changes to this candidate's copy of a JSON request body (another model name, say).
    public var rewrite = BodyRewrite()
    /// How long an idle pooled connection may be reused (see ``BaselineConfiguration/idleTimeout``).
    public var idleTimeout: Duration = .seconds(4)
    /// Whether copies keep the client's credential headers (``Configuration/credentialHeaders``);
    /// off by default: a candidate at another provider must not receive the baseline's key.
    public var forwardCredentials = false
    /// TLS settings; set exactly when the URL is `https://`.
    public var tls: UpstreamTLSConfiguration?

    public init(
        name: String,
        url: UpstreamURL,
        version: String = "",
        timeout: Duration = .seconds(5),
        connectTimeout: Duration = .seconds(1),
        queueCapacity: Int = 1_000,
        maxConcurrency: Int = 32
    ) {
        self.name = name
        self.url = url
        self.version = version
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        self.queueCapacity = queueCapacity
        self.maxConcurrency = maxConcurrency
        self.tls = url.usesTLS ? UpstreamTLSConfiguration() : nil
    }
}

/// Which scorer compares a route's outputs, and its options.
public struct ScorerConfiguration: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        /// Byte equality (optionally after canonicalising JSON).
        case exact
        /// Structural JSON diff: share of leaf paths that differ.
        case json
        /// Classification: the labels (or argmax of a probability vector) differ.
        case label
        /// Regression: absolute / relative error of one or many values.
        case numeric
        /// Probability vectors: Jensen-Shannon divergence or total variation distance.
        case distribution
        /// Recommendation / search results: rank-biased overlap, Jaccard@k, Kendall tau.
        case ranking
        /// Generated text: token edit distance or token Jaccard.
        case text
    }

    /// How arrays compare in the `json` scorer.
    public enum ArrayMode: String, Sendable, Equatable, CaseIterable {
        case ordered
        /// As multisets: order does not matter.
        case set
    }

    public enum DistributionMetric: String, Sendable, Equatable, CaseIterable {
        /// Jensen-Shannon divergence, base 2 (0...1).
        case js
        /// Total variation distance (0...1).
        case tvd
    }

    public enum TextMetric: String, Sendable, Equatable, CaseIterable {
        /// Token-level Levenshtein distance over the longer token count.
        case edit
        /// 1 − Jaccard similarity of the token sets.
        case jaccard
    }

    public var kind: Kind
    /// Where the compared value lives in the response, by protocol (adapters know the shape).
    public var outputProtocol: OutputProtocol
    /// A JSONPath to the compared value; overrides the protocol's default.
    public var path: String?
    /// For the Open Inference Protocol: which named output to compare (default: the first).
    public var output: String?
    /// JSONPath-like patterns whose values are not compared, e.g. `$.id`, `$.outputs[*].parameters`.
    public var ignorePaths: [String]
    /// A pair is `diverged` when its score is above this.
    public var threshold: Double
    /// Numbers within this absolute difference are equal.
    public var absoluteTolerance: Double
    /// Numbers within this relative difference are equal.
    public var relativeTolerance: Double
    /// For `exact`: compare JSON bodies after normalising key order and whitespace.
    public var canonicalizeJSON: Bool
    /// For `json`: arrays in order, or as multisets.
    public var arrays: ArrayMode
    /// For `numeric`: an absolute error of this size scores 1.
    public var scale: Double
    public var distributionMetric: DistributionMetric
    /// For `ranking`: the depth compared.
    public var k: Int
    /// For `ranking`: rank-biased overlap's persistence (0 < p < 1; higher weighs deep ranks more).
    public var rboP: Double
    public var textMetric: TextMetric
    /// For `text`: compare case- and whitespace-insensitively.
    public var normalizeText: Bool
    /// Bodies above this size are compared by bytes (scoring time stays bounded).
    public var maxDocumentBytes: Int
    /// Documents nested deeper than this are compared by bytes.
    public var maxDepth: Int

    public init(
        kind: Kind = .json,
        outputProtocol: OutputProtocol = .raw,
        path: String? = nil,
        output: String? = nil,
        ignorePaths: [String] = [],
        threshold: Double = 0,
        absoluteTolerance: Double = 0,
        relativeTolerance: Double = 0,
        canonicalizeJSON: Bool = true,
        arrays: ArrayMode = .ordered,
        scale: Double = 1,
        distributionMetric: DistributionMetric = .js,
        k: Int = 10,
        rboP: Double = 0.9,
        textMetric: TextMetric = .edit,
        normalizeText: Bool = true,
        maxDocumentBytes: Int = 8 << 20,
        maxDepth: Int = 256
    ) {
        self.kind = kind
        self.outputProtocol = outputProtocol
        self.path = path
        self.output = output
        self.ignorePaths = ignorePaths
        self.threshold = threshold
        self.absoluteTolerance = absoluteTolerance
        self.relativeTolerance = relativeTolerance
        self.canonicalizeJSON = canonicalizeJSON
        self.arrays = arrays
        self.scale = scale
        self.distributionMetric = distributionMetric
        self.k = k
        self.rboP = rboP
        self.textMetric = textMetric
        self.normalizeText = normalizeText
        self.maxDocumentBytes = maxDocumentBytes
        self.maxDepth = maxDepth
    }
}
