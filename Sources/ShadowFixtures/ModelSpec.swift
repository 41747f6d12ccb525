import ShadowCore
import Yams

/// A deterministic toy classifier speaking the Open Inference Protocol (KServe V2), read from
/// `Fixtures/models/*.yaml`.
///
/// Every model built from specs with the same `seed` and `labels` gives the same reference label
/// to the same input; `disagree_rate` of inputs (chosen by a hash of the input, so the same ones
/// every run) get a different label. That makes the true divergence rate of a candidate known.
public struct ModelSpec: Sendable, Equatable {
    public var name: String
    public var version: String
    public var labels: [String]
    public var seed: UInt64
    /// Share of inputs on which this model disagrees with the reference labelling.
    public var disagreeRate: Double
    /// Uniform latency between these bounds.
    public var latencyMin: Duration
    public var latencyMax: Duration
    /// Shares of requests answered with 500, never answered, or answered with non-HTTP bytes.
    public var errorRate: Double
    public var hangRate: Double
    public var garbageRate: Double
    /// Share of calls (drawn per call, not per input) whose probabilities get a small random
    /// jitter: nondeterminism, as a model on a GPU shows. Two calls disagree with probability
    /// `1 - (1 - noise_rate)²`.
    public var noiseRate: Double
    /// Which API the model speaks.
    public var api: API
    /// OpenAI streaming (`"stream": true`): tokens per second after the first.
    public var tokenRate: Double = 200
    /// OpenAI streaming: how long before the first token (default: the latency draw).
    public var firstTokenDelay: Duration?
    /// OpenAI streaming: share of streams cut off halfway (connection closed mid-stream).
    public var streamFailureRate: Double = 0

    /// The fixture's wire protocol.
    public enum API: String, Sendable, Equatable, CaseIterable {
        /// `POST /v2/models/{name}/infer` (Open Inference Protocol).
        case kserveV2 = "kserve_v2"
        /// `POST /v1/models/{name}:predict` with `instances` (TensorFlow Serving REST).
        case tfServing = "tf_serving"
        /// `POST /v1/chat/completions` (OpenAI-compatible; streams Server-Sent Events when the
        /// request says `"stream": true`).
        case openAI = "openai"
        /// `POST /v1/messages` (Anthropic Messages API; streams its events when the request says
        /// `"stream": true`).
        case anthropic
    }

    public init(
        name: String = "classifier",
        version: String = "1",
        labels: [String] = ["cat", "dog", "bird", "fish"],
        seed: UInt64 = 7,
        disagreeRate: Double = 0,
        latencyMin: Duration = .zero,
        latencyMax: Duration = .zero,
        errorRate: Double = 0,
        hangRate: Double = 0,
        garbageRate: Double = 0,
        noiseRate: Double = 0,
        api: API = .kserveV2
    ) {
        self.name = name
        self.version = version
        self.labels = labels
        self.seed = seed
        self.disagreeRate = disagreeRate
        self.latencyMin = latencyMin
        self.latencyMax = latencyMax
        self.errorRate = errorRate
        self.hangRate = hangRate
        self.garbageRate = garbageRate
        self.noiseRate = noiseRate
        self.api = api
    }

    /// Parses a spec file's text.
    public static func load(yaml: String) throws -> ModelSpec {
        guard let node = try Yams.compose(yaml: yaml), let mapping = node.mapping else {
            throw FixtureError("a model spec must be a YAML mapping")
        }
        var spec = ModelSpec()
        let known: Set<String> = [
            "name", "version", "labels", "seed", "disagree_rate", "latency", "error_rate", "hang_rate", "garbage_rate", "noise_rate", "api",
            "token_rate", "first_token_delay", "stream_failure_rate",
        ]
        for (key, _) in mapping {
            guard let name = key.string, known.contains(name) else {
                throw FixtureError("model spec: unknown key '\(key.string ?? "?")' (known: \(known.sorted().joined(separator: ", ")))")
            }
        }
        func rate(_ key: String) throws -> Double {
            guard let node = mapping[key] else { return 0 }
            guard let value = node.float ?? node.int.map(Double.init), (0...1).contains(value) else {
                throw FixtureError("model spec: \(key) must be a number from 0 to 1")
            }
            return value
        }
        if let name = mapping["name"]?.string { spec.name = name }
        if let version = mapping["version"]?.string { spec.version = version }
        if let labels = mapping["labels"]?.array(of: String.self), labels.count >= 2 { spec.labels = labels }
        if let seed = mapping["seed"]?.int { spec.seed = UInt64(truncatingIfNeeded: seed) }
        spec.disagreeRate = try rate("disagree_rate")
        spec.errorRate = try rate("error_rate")
        spec.hangRate = try rate("hang_rate")
        spec.garbageRate = try rate("garbage_rate")
        spec.noiseRate = try rate("noise_rate")
        spec.streamFailureRate = try rate("stream_failure_rate")
        if let node = mapping["token_rate"] {
            guard let value = node.float ?? node.int.map(Double.init), value > 0, value <= 100_000 else {
                throw FixtureError("model spec: token_rate must be tokens per second, above 0")
            }
            spec.tokenRate = value
        }
        if let text = mapping["first_token_delay"]?.string {
            guard let value = Self.parseMilliseconds(text) else { throw FixtureError("model spec: first_token_delay must look like 200ms or 1.5s") }
            spec.firstTokenDelay = value
        }
        if let api = mapping["api"]?.string {
            guard let value = API(rawValue: api) else {
                throw FixtureError("model spec: api must be one of \(API.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            spec.api = value
        }
        if let latency = mapping["latency"]?.mapping {
            func duration(_ key: String) throws -> Duration {
                guard let text = latency[key]?.string else { return .zero }
                guard let value = Self.parseMilliseconds(text) else { throw FixtureError("model spec: latency.\(key) must look like 2ms or 1.5s") }
                return value
            }
            spec.latencyMin = try duration("min")
            spec.latencyMax = max(spec.latencyMin, try duration("max"))
        }
        return spec
    }

    static func parseMilliseconds(_ text: String) -> Duration? {
        if text.hasSuffix("ms"), let value = Double(text.dropLast(2)) { return .microseconds(Int64(value * 1000)) }
        if text.hasSuffix("s"), let value = Double(text.dropLast(1)) { return .microseconds(Int64(value * 1_000_000)) }
        if let value = Double(text) { return .microseconds(Int64(value * 1000)) }
        return nil
    }
}
