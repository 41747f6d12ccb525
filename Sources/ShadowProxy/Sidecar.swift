import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import ShadowCore
import ShadowStore
import Synchronization

/// The whole daemon wired together: open the store, build the per-loop request path, and hand
/// back the services to run in one `ServiceGroup`, in dependency order (writer first, so it
/// stops last; the client listener last, so it stops first).
public final class Sidecar: Sendable {
    /// The configuration the daemon started with.
    public let configuration: Configuration
    /// The configuration in force now (changes on reload).
    public var activeConfiguration: Configuration { self.currentBox.value.withLock { $0 } }
    /// Shared with the admin listener, which reads the declared outcome metrics from it.
    private let currentBox: ConfigurationBox
    let contexts: [NIOLoopBound<LoopContext>]
    public let store: PairStore
    public let writer: RecordWriter
    public let proxy: ProxyServer
    public let admin: AdminServer?
    let group: MultiThreadedEventLoopGroup

    /// The services to run, in start order.
    public var services: [any Service] {
        [self.writer, self.retention] + (self.admin.map { [$0] } ?? []) + [self.proxy, self.notifier]
    }

    /// Deletes old pairs and shrinks the file (when `storage.retention` is set).
    public let retention: RetentionService

    /// sd_notify: READY, WATCHDOG, STOPPING (last in the group, so it hears shutdown first).
    public let notifier: SystemdNotifier

    /// Request counters.
    public var statistics: ProxyStatistics { self.shared.statistics }
    /// The registry behind `/metrics`.
    public let metrics: SidecarMetrics
    let shared: SharedState
    let gating: GatingRegistry
    /// The routes' staged ramps.
    public let ramp: RampController
    /// The routes' live experiments.
    public let experiments: ExperimentController
    /// The admin listener's own thread: operator calls and outcome batches never run on the
    /// request path's event loops.
    let adminGroup: MultiThreadedEventLoopGroup
    /// Outcome batches are parsed and stored here, at low priority.
    let ingestor: OutcomeIngestor

    /// Builds the daemon from a validated configuration.
    ///
    /// - Throws: ``StoreError`` when the database cannot be opened; an error when an upstream
    ///   host name does not resolve.
    /// Where `${env:…}` header values and `$CREDENTIALS_DIRECTORY` are read, at start and reload.
    let environment: [String: String]

    public init(configuration: Configuration, logger: Logger, environment: [String: String] = [:]) async throws {
        self.environment = environment
        self.configuration = configuration
        self.currentBox = ConfigurationBox(configuration)
        self.metrics = SidecarMetrics()
        let events = GatingEventLog()
        self.gating = GatingRegistry(events: events, factory: self.metrics.factory, logger: logger)
        self.store = try PairStore(path: configuration.storage.path, synchronous: configuration.storage.synchronous)
        self.ramp = try RampController(routes: configuration.routes, store: self.store, events: events, factory: self.metrics.factory, logger: logger)
        self.experiments = try ExperimentController(
            routes: configuration.routes,
            store: self.store,
            events: events,
            factory: self.metrics.factory,
            logger: logger
        )
        let runtime = try SidecarRuntime(
            configuration: configuration,
            metrics: self.metrics,
            gating: self.gating,
            ramp: self.ramp,
            experiments: self.experiments,
            environment: self.environment
        )
        let records = RecordQueue<ExchangeRecord>(capacity: configuration.storage.queueCapacity)
        let coverage = CoverageCounter()
        let shared = SharedState(records: records, coverage: coverage, metrics: self.metrics, logger: logger)
        self.shared = shared
        let noise = NoiseFloorTracker(routes: configuration.routes)
        try self.store.refresh(noise)
        self.writer = RecordWriter(
            store: self.store,
            queue: records,
            coverage: coverage,
            events: events,
            storage: configuration.storage,
            coverageAlertPercent: configuration.limits.coverageAlertPercent,
            noise: noise,
            ramp: self.ramp,
            experiments: self.experiments,
            redactor: Sidecar.redactor(configuration.storage, environment: environment, logger: logger),
            metrics: self.metrics.factory,
            chargeCandidateCost: { [gating] route, cost in gating.existingLimiter(route: route)?.charge(cost) },
            logger: logger
        )
        self.retention = RetentionService(store: self.store, storage: configuration.storage, logger: logger)
        let threads = configuration.server.threads ?? System.coreCount
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        var contexts: [NIOLoopBound<LoopContext>] = []
        for loop in self.group.makeIterator() {
            contexts.append(
                try await loop.submit {
                    NIOLoopBound(LoopContext(loop: loop, shared: shared, runtime: runtime, loopCount: threads), eventLoop: loop)
                }.get()
            )
        }
        self.contexts = contexts
        self.proxy = ProxyServer(group: self.group, contexts: contexts, configuration: configuration, shared: shared, logger: logger)
        self.notifier = SystemdNotifier(environment: environment, proxy: self.proxy, writer: self.writer, logger: logger)
        self.adminGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.ingestor = OutcomeIngestor(store: self.store)
        if let listen = configuration.admin.listen {
            let current = self.currentBox
            self.admin = AdminServer(
                group: self.adminGroup,
                listen: listen,
                status: AdminStatus(
                    proxy: self.proxy,
                    writer: self.writer,
                    shared: shared,
                    gating: self.gating,
                    ramp: self.ramp,
                    experiments: self.experiments,
                    ingestor: self.ingestor,
                    outcomeParser: { OutcomeBatchParser(routes: current.value.withLock { $0.routes }) },
                    token: environment["SHADOWD_ADMIN_TOKEN"].flatMap { $0.isEmpty ? nil : $0 },
                    outcomesToken: environment["SHADOWD_OUTCOMES_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
                ),
                logger: logger
            )
        } else {
            self.admin = nil
        }
    }

    /// Applies a new configuration to the running daemon: each event loop switches to it between
    /// requests (in-flight ones finish under the old one). Listen addresses, threads and storage
    /// need a restart; a change there is refused.
    ///
    /// - Throws: ``ReloadError`` naming what cannot change, or a resolution error for a new upstream.
    public func apply(_ configuration: Configuration) async throws {
        let current = self.configuration
        var refused: [String] = []
        if configuration.server.listen != current.server.listen { refused.append("server.listen") }
        if configuration.server.threads != current.server.threads { refused.append("server.threads") }
        if configuration.admin != current.admin { refused.append("admin") }
        if configuration.storage != current.storage { refused.append("storage") }
        if configuration.limits.maxHeaderBytes != current.limits.maxHeaderBytes { refused.append("limits.max_header_bytes") }
        guard refused.isEmpty else { throw ReloadError(keys: refused) }
        try self.experiments.validate(configuration.routes)
        let runtime = try SidecarRuntime(
            configuration: configuration,
            metrics: self.metrics,
            gating: self.gating,
            ramp: self.ramp,
            experiments: self.experiments,
            environment: self.environment
        )
        self.writer.noise?.update(routes: configuration.routes)
        try self.ramp.apply(configuration.routes)
        try self.experiments.apply(configuration.routes)
        for bound in self.contexts {
            try await bound.eventLoop.submit { bound.value.runtime = runtime }.get()
        }
        self.currentBox.value.withLock { $0 = configuration }
    }

    /// Reads what a configuration needs from outside its file, as a start or reload would:
    /// TLS certificates and keys, and the sources of header values (environment variables,
    /// files, credentials). Nothing read is returned or printed.
    ///
    /// - Throws: ``ConfigurationError`` naming the key whose source is missing or unreadable.
    public static func checkExternalSources(_ configuration: Configuration, environment: [String: String]) throws(ConfigurationError) {
        for route in configuration.routes {
            _ = try UpstreamEndpoint(url: route.baseline.url, tls: route.baseline.tls, environment: environment)
            _ = try UpstreamHeaders(route.baseline.headers, environment: environment)
            for target in route.mirrorTargets {
                _ = try UpstreamEndpoint(url: target.url, tls: target.tls, environment: environment)
                _ = try UpstreamHeaders(target.headers, environment: environment)
            }
        }
    }

    /// The redactor for the configured paths, keyed by `SHADOWD_REDACT_KEY` (a random key per
    /// process without it: hashes then only join within one run); nil when nothing is redacted.
    public static func redactor(_ storage: StorageConfiguration, environment: [String: String], logger: Logger) -> Redactor? {
        guard !storage.redaction.isEmpty || storage.bodies == .hash else { return nil }
        if let key = environment["SHADOWD_REDACT_KEY"], !key.isEmpty { return Redactor(storage: storage, key: Array(key.utf8)) }
        logger.warning("redaction without SHADOWD_REDACT_KEY: a random key is used, so hashes differ after a restart")
        var random = SystemRandomNumberGenerator()
        return Redactor(storage: storage, key: (0..<32).map { _ in UInt8.random(in: 0...255, using: &random) })
    }

    /// Stops the event loops and closes the database; call after the service group returned.
    public func shutdown() async throws {
        try await self.group.shutdownGracefully()
        try await self.adminGroup.shutdownGracefully()
        try await self.ingestor.shutdown()
        try self.store.close()
    }
}

/// A reload that would change settings only a restart can change.
public struct ReloadError: Error, CustomStringConvertible {
    public let keys: [String]
    public var description: String { "\(self.keys.joined(separator: ", ")) cannot change on reload; restart shadowd to apply" }
}

/// The configuration in force, behind a lock, shareable by reference.
final class ConfigurationBox: Sendable {
    let value: Mutex<Configuration>

    init(_ configuration: Configuration) {
        self.value = Mutex(configuration)
    }
}
