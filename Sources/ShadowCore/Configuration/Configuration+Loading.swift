import Yams

extension Configuration {
    /// Parses and validates a YAML configuration.
    ///
    /// - Throws: ``ConfigurationError`` naming the first offending key and the reason.
    public static func load(yaml: String) throws(ConfigurationError) -> Configuration {
        let node: Yams.Node
        do {
            guard let composed = try Yams.compose(yaml: yaml) else {
                throw ConfigurationError(key: "", reason: "the configuration is empty")
            }
            node = composed
        } catch let error as ConfigurationError {
            throw error
        } catch {
            throw ConfigurationError(key: "", reason: "not valid YAML: \(error)")
        }
        var root = try YAMLReader(path: "", node: node)
        var configuration = Configuration(routes: [])
        if var server = try root.object("server") {
            configuration.server = try ServerConfiguration(reading: &server)
            try server.finish()
        }
        if var admin = try root.object("admin") {
            let enabled = try admin.bool("enabled", default: true)
            let listen = try admin.listenAddress("listen", default: HostPort(host: "127.0.0.1", port: 8081))
            configuration.admin = AdminConfiguration(listen: enabled ? listen : nil)
            try admin.finish()
        }
        if var limits = try root.object("limits") {
            configuration.limits = try LimitsConfiguration(reading: &limits)
            try limits.finish()
        }
        if var storage = try root.object("storage") {
            configuration.storage = try StorageConfiguration(reading: &storage)
            try storage.finish()
        }
        if var upstreams = try root.object("upstreams") {
            configuration.allowedUpstreamHosts = try upstreams.strings("allow_hosts")
            if upstreams.has("credential_headers") {
                configuration.credentialHeaders = try upstreams.strings("credential_headers").map { $0.lowercased() }
            }
            configuration.egressProxy = try EgressProxyConfiguration.read(from: &upstreams, allowedHosts: configuration.allowedUpstreamHosts)
            try upstreams.finish()
        }
        var guardrails = GuardrailConfiguration()
        if var reader = try root.object("guardrails") {
            guardrails = try GuardrailConfiguration(reading: &reader, defaults: guardrails)
            try reader.finish()
        }
        let routeReaders = try root.objects("routes")
        guard !routeReaders.isEmpty else { throw ConfigurationError(key: "routes", reason: "at least one route is required") }
        var names: Set<String> = []
        var prefixes: Set<String> = []
        for var reader in routeReaders {
            let route = try RouteConfiguration(reading: &reader, allowedHosts: configuration.allowedUpstreamHosts, guardrails: guardrails)
            try reader.finish()
            guard names.insert(route.name).inserted else { throw reader.fail("name", "duplicate route name '\(route.name)'") }
            guard prefixes.insert(route.prefix).inserted else { throw reader.fail("prefix", "duplicate prefix '\(route.prefix)'") }
            configuration.routes.append(route)
        }
        try root.finish()
        try configuration.validateCrossReferences()
        configuration.revision = StableHash.fnv1a64Hex(yaml)
        return configuration
    }

    private func validateCrossReferences() throws(ConfigurationError) {
        if let admin = self.admin.listen, admin == self.server.listen, admin.port != 0 {
            throw ConfigurationError(key: "admin.listen", reason: "must differ from server.listen (\(admin))")
        }
        if self.limits.mirrorMaxBody > self.limits.maxRequestBody {
            throw ConfigurationError(
                key: "limits.mirror_max_body",
                reason: "must not exceed limits.max_request_body (\(self.limits.maxRequestBody) bytes)"
            )
        }
    }
}

extension YAMLReader {
    mutating func listenAddress(_ key: String, default fallback: HostPort) throws(ConfigurationError) -> HostPort {
        guard let text = try self.string(key) else { return fallback }
        guard let address = HostPort(parsing: text) else {
            throw self.fail(key, "expected host:port such as 127.0.0.1:8080, got '\(text)'")
        }
        return address
    }

    mutating func upstreamURL(_ key: String, allowedHosts: [String]) throws(ConfigurationError) -> UpstreamURL {
        let text = try self.requiredString(key)
        switch UpstreamURL.parse(text) {
        case .failure(let failure):
            throw self.fail(key, failure.reason)
        case .success(let url):
            guard HostPort.isLoopback(url.host) || allowedHosts.contains(url.host) else {
                throw self.fail(key, "host '\(url.host)' is not loopback; add it to upstreams.allow_hosts to allow it")
            }
            return url
        }
    }

    /// The `tls` settings of an upstream: defaults for an `https://` URL, an error on `http://`.
    mutating func upstreamTLS(for url: UpstreamURL) throws(ConfigurationError) -> UpstreamTLSConfiguration? {
        guard var reader = try self.object("tls") else { return url.usesTLS ? UpstreamTLSConfiguration(key: self.child("tls")) : nil }
        guard url.usesTLS else { throw self.fail("tls", "applies to https:// URLs only; this upstream is \(url)") }
        let tls = try UpstreamTLSConfiguration(reading: &reader)
        try reader.finish()
        return tls
    }

    mutating func name(_ key: String) throws(ConfigurationError) -> String {
        let value = try self.requiredString(key)
        let allowed = value.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0)
        }
        guard allowed, value.count <= 64 else {
            throw self.fail(key, "use 1-64 letters, digits, '-', '_' or '.', got '\(value)'")
        }
        return value
    }
}

extension ServerConfiguration {
    init(reading reader: inout YAMLReader) throws(ConfigurationError) {
        self.init()
        self.listen = try reader.listenAddress("listen", default: self.listen)
        let threads = try reader.int("threads", default: 0, range: 0...64)
        self.threads = threads == 0 ? nil : threads
        self.idleTimeout = try reader.duration("idle_timeout", default: self.idleTimeout)
        self.maxConnections = try reader.int("max_connections", default: self.maxConnections, range: 1...1_000_000)
        self.drainTimeout = try reader.duration("drain_timeout", default: self.drainTimeout)
    }
}

extension LimitsConfiguration {
    init(reading reader: inout YAMLReader) throws(ConfigurationError) {
        self.init()
        self.maxHeaderBytes = try reader.bytes("max_header_bytes", default: self.maxHeaderBytes, range: 1024...(1 << 20))
        self.maxRequestBody = try reader.bytes("max_request_body", default: self.maxRequestBody, range: 0...(1 << 30))
        self.mirrorMaxBody = try reader.bytes("mirror_max_body", default: self.mirrorMaxBody, range: 0...(1 << 30))
        self.coverageAlertPercent = try reader.double("coverage_alert_percent", default: self.coverageAlertPercent, range: 0...100)
        self.http2MaxConcurrentStreams = try reader.int(
            "http2_max_concurrent_streams",
            default: self.http2MaxConcurrentStreams,
            range: 1...10_000
        )
    }
}

extension StorageConfiguration {
    init(reading reader: inout YAMLReader) throws(ConfigurationError) {
        self.init()
        self.path = try reader.string("path") ?? self.path
        guard !self.path.isEmpty else { throw reader.fail("path", "must not be empty") }
        self.queueCapacity = try reader.int("queue_capacity", default: self.queueCapacity, range: 1...1_000_000)
        self.batchSize = try reader.int("batch_size", default: self.batchSize, range: 1...10_000)
        self.flushInterval = try reader.duration("flush_interval", default: self.flushInterval)
        if let text = try reader.string("synchronous") {
            guard let value = Synchronous(rawValue: text.lowercased()) else {
                throw reader.fail("synchronous", "expected normal or full, got '\(text)'")
            }
            self.synchronous = value
        }
        self.maxStoredBody = try reader.bytes("max_stored_body", default: self.maxStoredBody, range: 0...(64 << 20))
        self.storeRequestBodies = try reader.bool("store_request_bodies", default: self.storeRequestBodies)
        self.bodies = try reader.choice("bodies", default: self.bodies)
        if var redact = try reader.object("redact") {
            let paths = try redact.strings("json_paths")
            for (index, path) in paths.enumerated() {
                if case .failure(let failure) = JSONPathPattern.parse(path) {
                    throw ConfigurationError(key: "\(redact.child("json_paths"))[\(index)]", reason: failure.reason)
                }
            }
            self.redaction = RedactionConfiguration(jsonPaths: paths, mode: try redact.choice("mode", default: .hash))
            try redact.finish()
        }
        if var retention = try reader.object("retention") {
            if retention.has("days") {
                let days = try retention.double("days", default: 30, range: 0.001...36_500)
                self.retentionAge = .seconds(days * 86_400)
            }
            if retention.has("max_bytes") {
                self.retentionMaxBytes = try retention.bytes("max_bytes", default: 1 << 30, range: (1 << 20)...(1 << 50))
            }
            self.retentionInterval = try retention.duration("interval", default: self.retentionInterval, minimum: .seconds(1))
            try retention.finish()
        }
    }
}

extension RouteConfiguration {
    init(reading reader: inout YAMLReader, allowedHosts: [String], guardrails defaults: GuardrailConfiguration) throws(ConfigurationError) {
        let name = try reader.name("name")
        let prefix = try reader.requiredString("prefix")
        guard prefix.hasPrefix("/") else { throw reader.fail("prefix", "must start with '/', got '\(prefix)'") }
        guard var baselineReader = try reader.object("baseline") else { throw reader.fail("baseline", "is required") }
        let baseline = try BaselineConfiguration(reading: &baselineReader, allowedHosts: allowedHosts)
        try baselineReader.finish()
        var candidates: [CandidateConfiguration] = []
        var candidateNames: Set<String> = []
        for var candidateReader in try reader.objects("candidates") {
            let candidate = try CandidateConfiguration(reading: &candidateReader, allowedHosts: allowedHosts)
            try candidateReader.finish()
            guard candidateNames.insert(candidate.name).inserted else {
                throw candidateReader.fail("name", "duplicate candidate name '\(candidate.name)'")
            }
            candidates.append(candidate)
        }
        let samplePercent = try reader.double("sample_percent", default: 100, range: 0...100)
        var scorer = ScorerConfiguration()
        if var scorerReader = try reader.object("scorer") {
            scorer = try ScorerConfiguration(reading: &scorerReader)
            try scorerReader.finish()
        }
        var noiseFloor: NoiseFloorConfiguration?
        if var noiseReader = try reader.object("noise_floor") {
            noiseFloor = try NoiseFloorConfiguration(reading: &noiseReader, allowedHosts: allowedHosts)
            try noiseReader.finish()
        }
        if noiseFloor != nil, candidateNames.contains(NoiseFloorConfiguration.replicaName) {
            throw reader.fail("candidates", "'\(NoiseFloorConfiguration.replicaName)' is reserved for the noise floor's replica")
        }
        var segment: RequestKey?
        if var segmentReader = try reader.object("segment") {
            segment = try RequestKey(reading: &segmentReader)
            try segmentReader.finish()
        }
        var sampleKey: RequestKey?
        if var keyReader = try reader.object("sample_key") {
            sampleKey = try RequestKey(reading: &keyReader)
            try keyReader.finish()
        }
        let sampleSalt = try reader.string("sample_salt")
        var gates = GateConfiguration()
        if var gateReader = try reader.object("gates") {
            gates = try GateConfiguration(reading: &gateReader)
            try gateReader.finish()
        }
        var breaker: CircuitBreakerConfiguration?
        if var breakerReader = try reader.object("circuit_breaker") {
            breaker = try CircuitBreakerConfiguration(reading: &breakerReader)
            try breakerReader.finish()
        }
        var rateLimit: RateLimitConfiguration?
        if var limitReader = try reader.object("rate_limit") {
            rateLimit = try RateLimitConfiguration(reading: &limitReader)
            try limitReader.finish()
        }
        var ramp: RampConfiguration?
        if var rampReader = try reader.object("ramp") {
            ramp = try RampConfiguration(reading: &rampReader)
            try rampReader.finish()
        }
        var guardrails = defaults
        if var guardrailReader = try reader.object("guardrails") {
            guardrails = try GuardrailConfiguration(reading: &guardrailReader, defaults: defaults)
            try guardrailReader.finish()
        }
        var experiment: ExperimentConfiguration?
        if var experimentReader = try reader.object("experiment") {
            experiment = try ExperimentConfiguration(reading: &experimentReader, candidates: candidates)
            try experimentReader.finish()
        }
        self.init(
            name: name,
            prefix: prefix,
            baseline: baseline,
            candidates: candidates,
            samplePercent: samplePercent,
            scorer: scorer,
            noiseFloor: noiseFloor,
            segment: segment,
            guardrails: guardrails
        )
        self.sampleKey = sampleKey
        self.sampleSalt = sampleSalt
        self.gates = gates
        self.circuitBreaker = breaker
        self.rateLimit = rateLimit
        self.ramp = ramp
        self.experiment = experiment
    }
}

extension NoiseFloorConfiguration {
    init(reading reader: inout YAMLReader, allowedHosts: [String]) throws(ConfigurationError) {
        var replica: UpstreamURL?
        if reader.has("replica") { replica = try reader.upstreamURL("replica", allowedHosts: allowedHosts) }
        let defaultShare: Double = replica == nil ? 5 : 100
        self.init(
            replica: replica,
            samplePercent: try reader.double("sample_percent", default: defaultShare, range: 0...100),
            maxDisagreement: try reader.double("max_disagreement", default: 0.01, range: 0...1),
            minPairs: try reader.int("min_pairs", default: 50, range: 1...1_000_000),
            autoIgnore: try reader.bool("auto_ignore", default: false)
        )
    }
}

extension BaselineConfiguration {
    init(reading reader: inout YAMLReader, allowedHosts: [String]) throws(ConfigurationError) {
        self.init(url: try reader.upstreamURL("url", allowedHosts: allowedHosts))
        self.version = try reader.string("version") ?? ""
        self.timeout = try reader.duration("timeout", default: self.timeout)
        self.connectTimeout = try reader.duration("connect_timeout", default: self.connectTimeout)
        self.maxIdleConnections = try reader.int("max_idle_connections", default: self.maxIdleConnections, range: 0...10_000)
        self.idleTimeout = try reader.duration("idle_timeout", default: self.idleTimeout)
        self.cost = try reader.cost("cost")
        if var headers = try reader.object("headers") {
            self.headers = try HeaderRewrite(reading: &headers)
            try headers.finish()
        }
        self.tls = try reader.upstreamTLS(for: self.url)
    }
}

extension CandidateConfiguration {
    init(reading reader: inout YAMLReader, allowedHosts: [String]) throws(ConfigurationError) {
        let name = try reader.name("name")
        self.init(name: name, url: try reader.upstreamURL("url", allowedHosts: allowedHosts))
        self.version = try reader.string("version") ?? ""
        self.timeout = try reader.duration("timeout", default: self.timeout)
        self.connectTimeout = try reader.duration("connect_timeout", default: self.connectTimeout)
        self.queueCapacity = try reader.int("queue_capacity", default: self.queueCapacity, range: 0...1_000_000)
        self.maxConcurrency = try reader.int("max_concurrency", default: self.maxConcurrency, range: 1...10_000)
        self.idleTimeout = try reader.duration("idle_timeout", default: self.idleTimeout)
        if reader.has("max_queue_wait") {
            self.maxQueueWait = try reader.duration("max_queue_wait", default: self.timeout, minimum: .milliseconds(1))
        }
        self.cost = try reader.cost("cost")
        if var headers = try reader.object("headers") {
            self.headers = try HeaderRewrite(reading: &headers)
            try headers.finish()
        }
        self.forwardCredentials = try reader.bool("forward_credentials", default: self.forwardCredentials)
        self.tls = try reader.upstreamTLS(for: self.url)
        if var rewrite = try reader.object("rewrite") {
            self.rewrite = try BodyRewrite(reading: &rewrite)
            try rewrite.finish()
        }
    }
}

extension ScorerConfiguration {
    init(reading reader: inout YAMLReader) throws(ConfigurationError) {
        self.init()
        self.kind = try reader.choice("kind", default: self.kind)
        self.outputProtocol = try reader.choice("protocol", default: self.outputProtocol)
        if let path = try reader.string("path") {
            if case .failure(let failure) = JSONPathPattern.parse(path) { throw reader.fail("path", failure.reason) }
            self.path = path
        }
        self.output = try reader.string("output")
        self.ignorePaths = try reader.strings("ignore_paths")
        for (index, pattern) in self.ignorePaths.enumerated() {
            if case .failure(let failure) = JSONPathPattern.parse(pattern) {
                throw ConfigurationError(key: "\(reader.child("ignore_paths"))[\(index)]", reason: failure.reason)
            }
        }
        self.threshold = try reader.double("threshold", default: self.threshold, range: 0...1)
        self.absoluteTolerance = try reader.double("absolute_tolerance", default: 0, range: 0...Double.greatestFiniteMagnitude)
        self.relativeTolerance = try reader.double("relative_tolerance", default: 0, range: 0...Double.greatestFiniteMagnitude)
        self.canonicalizeJSON = try reader.bool("canonicalize_json", default: true)
        self.arrays = try reader.choice("arrays", default: self.arrays)
        self.scale = try reader.double("scale", default: self.scale, range: Double.leastNonzeroMagnitude...Double.greatestFiniteMagnitude)
        self.distributionMetric = try reader.choice("metric", default: self.distributionMetric, when: self.kind == .distribution)
        self.textMetric = try reader.choice("metric", default: self.textMetric, when: self.kind == .text)
        self.k = try reader.int("k", default: self.k, range: 1...10_000)
        self.rboP = try reader.double("rbo_p", default: self.rboP, range: 0.01...0.99)
        self.normalizeText = try reader.bool("normalize", default: self.normalizeText)
        self.maxDocumentBytes = try reader.bytes("max_document_bytes", default: self.maxDocumentBytes, range: 1024...(256 << 20))
        self.maxDepth = try reader.int("max_depth", default: self.maxDepth, range: 2...10_000)
        if [.label, .numeric, .distribution, .ranking, .text].contains(self.kind), self.outputProtocol == .raw, self.path == nil {
            throw reader.fail(
                "kind",
                "the \(self.kind.rawValue) scorer needs 'protocol' (kserve_v2, tf_serving, openai) or a 'path' to the compared value"
            )
        }
    }
}

extension YAMLReader {
    /// One of an enum's raw values; `when: false` leaves the key for another reader.
    mutating func choice<T: RawRepresentable & CaseIterable>(
        _ key: String,
        default fallback: T,
        when applies: Bool = true
    ) throws(ConfigurationError) -> T
    where T.RawValue == String {
        guard applies, let text = try self.string(key) else { return fallback }
        guard let value = T(rawValue: text.lowercased()) else {
            let known = T.allCases.map(\.rawValue).joined(separator: ", ")
            throw self.fail(key, "unknown value '\(text)' (known: \(known))")
        }
        return value
    }
}

extension GuardrailConfiguration {
    init(reading reader: inout YAMLReader, defaults: GuardrailConfiguration) throws(ConfigurationError) {
        self = defaults
        self.maxDivergenceAboveNoise = try reader.double("max_divergence_above_noise", default: self.maxDivergenceAboveNoise, range: 0...1)
        if let limit = try reader.latencyLimit("max_p99_regression") { self.maxP99Regression = limit }
        self.maxErrorRateIncrease = try reader.double("max_error_rate_increase", default: self.maxErrorRateIncrease, range: 0...1)
        if reader.has("max_cost_increase") {
            self.maxCostIncrease = try reader.double("max_cost_increase", default: 0, range: 0...1_000)
        }
        self.minPairs = try reader.int("min_pairs", default: self.minPairs, range: 1...1_000_000_000)
        self.margin = try reader.double("margin", default: self.margin, range: 0.0001...0.5)
    }
}

extension YAMLReader {
    /// A latency allowance: a duration (`25ms`) or a share of the reference p99 (`20%`).
    mutating func latencyLimit(_ key: String) throws(ConfigurationError) -> GuardrailConfiguration.LatencyLimit? {
        guard let text = try self.string(key) else { return nil }
        let trimmed = text.trimmingSpaces()
        if trimmed.hasSuffix("%"), let percent = Double(trimmed.dropLast().trimmingSpaces()), percent >= 0, percent.isFinite {
            return .relative(percent / 100)
        }
        if let duration = Units.parseDuration(trimmed) { return .absolute(duration) }
        throw self.fail(key, "expected a duration such as 25ms or a share of the reference p99 such as 20%, got '\(text)'")
    }
}

extension RequestKey {
    init(reading reader: inout YAMLReader) throws(ConfigurationError) {
        let header = try reader.string("header")
        let field = try reader.string("field")
        switch (header, field) {
        case (let header?, nil):
            guard !header.isEmpty, header.utf8.allSatisfy({ $0 > 32 && $0 < 127 && $0 != UInt8(ascii: ":") }) else {
                throw reader.fail("header", "expected a header name, got '\(header)'")
            }
            guard !["authorization", "proxy-authorization", "cookie", "set-cookie"].contains(header.lowercased()) else {
                throw reader.fail("header", "'\(header)' carries credentials and is never stored")
            }
            self = .header(header)
        case (nil, let field?):
            if case .failure(let failure) = JSONPathPattern.parse(field) { throw reader.fail("field", failure.reason) }
            guard !field.contains("*") else { throw reader.fail("field", "must name one value, without wildcards") }
            self = .field(field)
        default:
            // An unknown key (a typo) is the likelier mistake: name it first.
            try reader.finish()
            throw reader.fail("header", "give exactly one of 'header' or 'field'")
        }
    }
}

extension YAMLReader {
    mutating func cost(_ key: String) throws(ConfigurationError) -> CostConfiguration? {
        guard var reader = try self.object(key) else { return nil }
        let unlimited = 0...Double.greatestFiniteMagnitude
        let cost = CostConfiguration(
            perRequest: try reader.double("per_request", default: 0, range: unlimited),
            per1kPromptTokens: try reader.double("per_1k_prompt_tokens", default: 0, range: unlimited),
            per1kCompletionTokens: try reader.double("per_1k_completion_tokens", default: 0, range: unlimited)
        )
        try reader.finish()
        return cost
    }
}

extension GateConfiguration {
    init(reading reader: inout YAMLReader) throws(ConfigurationError) {
        self.init()
        self.include = try reader.objects("include").map { rule throws(ConfigurationError) in
            var rule = rule
            let parsed = try GateRule(reading: &rule)
            try rule.finish()
            return parsed
        }
        self.exclude = try reader.objects("exclude").map { rule throws(ConfigurationError) in
            var rule = rule
            let parsed = try GateRule(reading: &rule)
            try rule.finish()
            return parsed
        }
    }
}

extension GateRule {
    init(reading reader: inout YAMLReader) throws(ConfigurationError) {
        self.init()
        if reader.has("method") {
            let methods: [String]
            if let single = try? reader.string("method") {
                methods = [single]
            } else {
                methods = try reader.strings("method")
            }
            for method in methods where method.isEmpty || !method.utf8.allSatisfy({ (0x41...0x5A).contains($0) }) {
                throw reader.fail("method", "expected an upper-case HTTP method such as POST, got '\(method)'")
            }
            self.methods = methods
        }
        if let path = try reader.string("path") {
            guard path.hasPrefix("/") else { throw reader.fail("path", "must start with '/', got '\(path)'") }
            self.path = PathGlob(path)
        }
        if let name = try reader.string("header") {
            guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 32 && $0 < 127 && $0 != UInt8(ascii: ":") }) else {
                throw reader.fail("header", "expected a header name, got '\(name)'")
            }
            self.header = (name, try reader.valueTest(numeric: false) ?? .present(true))
        }
        if let text = try reader.string("field") {
            let pattern: JSONPathPattern
            switch JSONPathPattern.parse(text) {
            case .failure(let failure): throw reader.fail("field", failure.reason)
            case .success(let parsed): pattern = parsed
            }
            guard !text.contains("*") else { throw reader.fail("field", "must name one value, without wildcards") }
            if self.header != nil { throw reader.fail("field", "a rule tests one header or one field; use two rules") }
            self.field = (pattern, try reader.valueTest(numeric: true) ?? .present(true))
        } else if self.header == nil, ["equals", "not_equals", "matches", "less_than", "greater_than", "present"].contains(where: reader.has) {
            throw reader.fail("equals", "a value test needs 'header' or 'field'")
        }
        if var bytes = try reader.object("body_bytes") {
            let min = try bytes.bytes("min", default: 0, range: 0...(1 << 40))
            let max = try bytes.bytes("max", default: 1 << 40, range: 0...(1 << 40))
            try bytes.finish()
            guard min <= max else { throw reader.fail("body_bytes", "min (\(min)) is above max (\(max))") }
            self.bodyBytes = min...max
        }
        if self.methods == nil, self.path == nil, self.header == nil, self.field == nil, self.bodyBytes == nil {
            throw reader.fail("", "an empty rule: give method, path, header, field or body_bytes")
        }
    }
}

extension YAMLReader {
    /// At most one of equals / not_equals / matches / less_than / greater_than / present.
    mutating func valueTest(numeric: Bool) throws(ConfigurationError) -> GateRule.ValueTest? {
        var tests: [GateRule.ValueTest] = []
        if let value = try self.string("equals") { tests.append(.equals(value)) }
        if let value = try self.string("not_equals") { tests.append(.notEquals(value)) }
        if let pattern = try self.string("matches") {
            do {
                tests.append(.matches(try CompiledRegex(pattern)))
            } catch {
                throw self.fail("matches", "invalid regular expression '\(pattern)': \(error)")
            }
        }
        if self.has("less_than") {
            tests.append(.lessThan(try self.double("less_than", default: 0, range: -Double.greatestFiniteMagnitude...Double.greatestFiniteMagnitude)))
        }
        if self.has("greater_than") {
            tests.append(
                .greaterThan(try self.double("greater_than", default: 0, range: -Double.greatestFiniteMagnitude...Double.greatestFiniteMagnitude))
            )
        }
        if self.has("present") { tests.append(.present(try self.bool("present", default: true))) }
        guard tests.count <= 1 else {
            throw self.fail("equals", "give one test per rule (equals, not_equals, matches, less_than, greater_than or present)")
        }
        return tests.first
    }
}

extension CircuitBreakerConfiguration {
    init(reading reader: inout YAMLReader) throws(ConfigurationError) {
        self.init()
        self.window = try reader.duration("window", default: self.window, minimum: .seconds(1))
        self.minCalls = try reader.int("min_calls", default: self.minCalls, range: 1...1_000_000)
        self.maxErrorRate = try reader.double("max_error_rate", default: self.maxErrorRate, range: 0...1)
        self.maxTimeoutRate = try reader.double("max_timeout_rate", default: self.maxTimeoutRate, range: 0...1)
        if reader.has("max_p99") { self.maxP99 = try reader.duration("max_p99", default: .seconds(1)) }
        self.coolDown = try reader.duration("cool_down", default: self.coolDown, minimum: .milliseconds(10))
        self.halfOpenPercent = try reader.double("half_open_percent", default: self.halfOpenPercent, range: 0.001...100)
        self.halfOpenCalls = try reader.int("half_open_calls", default: self.halfOpenCalls, range: 1...100_000)
        self.consecutiveFailures = try reader.int("consecutive_failures", default: self.consecutiveFailures, range: 0...1_000_000)
    }
}

extension RateLimitConfiguration {
    init(reading reader: inout YAMLReader) throws(ConfigurationError) {
        self.init()
        if reader.has("per_second") { self.perSecond = try reader.double("per_second", default: 1, range: 0.001...1_000_000) }
        if reader.has("burst") { self.burst = try reader.double("burst", default: 1, range: 1...10_000_000) }
        if reader.has("daily_requests") { self.dailyRequests = try reader.int("daily_requests", default: 1, range: 1...Int(Int32.max)) }
        if reader.has("daily_cost") { self.dailyCost = try reader.double("daily_cost", default: 1, range: 0...Double.greatestFiniteMagnitude) }
        if self.perSecond == nil, self.dailyRequests == nil, self.dailyCost == nil {
            throw reader.fail("per_second", "give per_second, daily_requests, daily_cost or a combination")
        }
    }
}

extension RampConfiguration {
    /// `stages: [1, 5, 20, 50, 100]` with shared `min_duration` / `min_pairs`, or stages as
    /// `{percent, min_duration, min_pairs}`.
    init(reading reader: inout YAMLReader) throws(ConfigurationError) {
        let minDuration = try reader.duration("min_duration", default: .seconds(600))
        let minPairs = try reader.int("min_pairs", default: 500, range: 0...1_000_000_000)
        let fallback: Fallback = try reader.choice("fallback", default: .previous)
        guard let node = reader.value("stages"), case .sequence(let sequence) = node else {
            throw reader.fail("stages", "a ramp needs a list of stages, e.g. [1, 5, 20, 50, 100]")
        }
        var stages: [Stage] = []
        for (index, item) in sequence.enumerated() {
            let key = "stages[\(index)]"
            if case .mapping = item {
                var stage = try YAMLReader(path: reader.child(key), node: item)
                let percent = try stage.double("percent", default: -1, range: -1...100)
                guard percent > 0 else {
                    throw ConfigurationError(key: reader.child(key) + ".percent", reason: "is required, above 0 and at most 100")
                }
                stages.append(
                    Stage(
                        percent: percent,
                        minDuration: try stage.duration("min_duration", default: minDuration),
                        minPairs: try stage.int("min_pairs", default: minPairs, range: 0...1_000_000_000)
                    )
                )
                try stage.finish()
            } else {
                guard let percent = item.float ?? item.int.map(Double.init), percent > 0, percent <= 100 else {
                    throw ConfigurationError(
                        key: reader.child(key),
                        reason: "expected a percentage above 0 and at most 100, got '\(item.string ?? "?")'"
                    )
                }
                stages.append(Stage(percent: percent, minDuration: minDuration, minPairs: minPairs))
            }
        }
        guard !stages.isEmpty else { throw reader.fail("stages", "a ramp needs at least one stage") }
        for index in stages.indices.dropFirst() where stages[index].percent <= stages[index - 1].percent {
            throw ConfigurationError(
                key: reader.child("stages[\(index)]"),
                reason: "stages must grow: \(stages[index].percent) after \(stages[index - 1].percent)"
            )
        }
        self.init(stages: stages, fallback: fallback)
    }
}
