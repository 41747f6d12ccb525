import NIOSSL
import ShadowCore

/// Answers Open Inference Protocol requests for one ``ModelSpec``.
///
/// `POST /v2/models/{name}/infer` with `{"id": …, "inputs": [...]}` returns a label and a
/// probability vector; `GET /v2/health/ready` and `GET /v2/models/{name}` answer too.
public struct ModelFixture: Sendable {
    public let spec: ModelSpec

    public init(spec: ModelSpec) {
        self.spec = spec
    }

    /// The server-side responder.
    public var responder: FixtureServer.Responder {
        { request in self.respond(to: request) }
    }

    /// Starts a fixture server for this model; with `grpc`, over h2c (gRPC's transport without
    /// TLS), where it answers the gRPC methods (``grpcModelInfer``, ``grpcPredict``).
    public func start(host: String = "127.0.0.1", port: Int = 0, tls: NIOSSLContext? = nil, grpc: Bool = false) async throws -> FixtureServer {
        try await FixtureServer.start(host: host, port: port, tls: tls, http2: grpc, responder: self.responder)
    }

    public func respond(to request: FixtureRequest) -> FixtureResponse {
        if GRPCSemantics.isGRPC(contentType: request.header("content-type")) { return self.respondGRPC(to: request) }
        let path = request.uri.split(separator: "?").first.map(String.init) ?? request.uri
        if request.method == "GET", path == "/v2/health/ready" || path == "/v2/health/live" || path == "/health" {
            return .json(#"{"ready":true}"#)
        }
        if request.method == "GET", path == "/v2/models/\(self.spec.name)" {
            return .json(
                JSONValue.object([
                    ("name", .string(self.spec.name)), ("versions", .array([.string(self.spec.version)])), ("platform", .string("shadowd-fixture")),
                ]).serialized
            )
        }
        let (inferPath, inputKey) = self.endpoint
        guard path == inferPath else {
            return .json(#"{"error":"unknown path \#(path.prefix(100))"}"#, status: 404)
        }
        guard request.method == "POST" else { return .json(#"{"error":"use POST"}"#, status: 405) }
        let document: JSONValue
        do {
            document = try JSONParser().parse(request.body)
        } catch {
            return .json(JSONValue.object([("error", .string("request body is not JSON: \(error)"))]).serialized, status: 400)
        }
        guard let inputs = document[inputKey] else {
            return .json(#"{"error":"missing '\#(inputKey)'"}"#, status: 400)
        }
        let key = Self.key(inputs, seed: self.spec.seed)
        let delay = self.latency(key)
        switch self.plannedOutcome(forKey: key) {
        case .hang: return FixtureResponse(mode: .hang)
        case .garbage: return FixtureResponse(delay: delay, mode: .garbage)
        case .error: return .json(#"{"error":"injected failure"}"#, status: 500, delay: delay)
        case .agree, .disagree: break
        }
        let (label, probabilities) = self.predict(key)
        let noisy = self.spec.noiseRate > 0 && Double.random(in: 0..<1) < self.spec.noiseRate
        let shown = noisy ? probabilities.map { (($0 + Double.random(in: -0.01...0.01)) * 10_000).rounded() / 10_000 } : probabilities
        switch self.spec.api {
        case .kserveV2:
            var response: [(key: String, value: JSONValue)] = [
                ("model_name", .string(self.spec.name)), ("model_version", .string(self.spec.version)),
            ]
            if let id = document["id"] { response.append(("id", id)) }
            response.append(
                (
                    "outputs",
                    .array([
                        .object([
                            ("name", .string("label")), ("datatype", .string("BYTES")), ("shape", .array([.number(1)])),
                            ("data", .array([.string(label)])),
                        ]),
                        .object([
                            ("name", .string("probabilities")), ("datatype", .string("FP32")),
                            ("shape", .array([.number(Double(shown.count))])), ("data", .array(shown.map { .number($0) })),
                        ]),
                    ])
                )
            )
            return .json(JSONValue.object(response).serialized, delay: delay)
        case .tfServing:
            return .json(JSONValue.object([("predictions", .array([.array(shown.map { .number($0) })]))]).serialized, delay: delay)
        case .openAI:
            return self.chat(document, key: key, label: label, delay: delay)
        case .anthropic:
            return self.messages(document, key: key, label: label, delay: delay)
        }
    }

    /// The inference path and the request field whose value determines the answer.
    var endpoint: (path: String, inputs: String) {
        switch self.spec.api {
        case .kserveV2: ("/v2/models/\(self.spec.name)/infer", "inputs")
        case .tfServing: ("/v1/models/\(self.spec.name):predict", "instances")
        case .openAI: ("/v1/chat/completions", "messages")
        case .anthropic: ("/v1/messages", "messages")
        }
    }

    static let vocabulary = [
        "the", "model", "says", "this", "is", "likely", "a", "picture", "of", "with", "high", "confidence", "given", "shape", "and", "colour",
    ]

    /// What this model does with an input, decided by hashes of it (the same every run).
    public enum PlannedOutcome: Sendable, Equatable {
        case agree, disagree, error, hang, garbage
    }

    /// The planned outcome for a V2 request body, or `nil` when it is not a V2 request.
    public func plannedOutcome(forBody body: [UInt8]) -> PlannedOutcome? {
        guard let document = try? JSONParser().parse(body), let inputs = document[self.endpoint.inputs] else { return nil }
        return self.plannedOutcome(forKey: Self.key(inputs, seed: self.spec.seed))
    }

    func plannedOutcome(forKey key: UInt64) -> PlannedOutcome {
        // Fault choices hash the input with the model's own name, so the same inputs fail every run.
        let draw = Self.unit(StableHash.fnv1a64("\(self.spec.name)/\(self.spec.version)/fault/\(key)".utf8))
        if draw < self.spec.hangRate { return .hang }
        if draw < self.spec.hangRate + self.spec.garbageRate { return .garbage }
        if draw < self.spec.hangRate + self.spec.garbageRate + self.spec.errorRate { return .error }
        return self.disagrees(onKey: key) ? .disagree : .agree
    }

    static func key(_ inputs: JSONValue, seed: UInt64) -> UInt64 {
        StableHash.fnv1a64(inputs.serialized.utf8) ^ seed
    }

    /// Whether this model disagrees with the reference labelling on the input with this key.
    public func disagrees(onKey key: UInt64) -> Bool {
        Self.unit(StableHash.fnv1a64("disagree/\(key)".utf8)) < self.spec.disagreeRate
    }

    func predict(_ key: UInt64) -> (String, [Double]) {
        let count = self.spec.labels.count
        var index = Int(key % UInt64(count))
        if self.disagrees(onKey: key) {
            index = (index + 1 + Int((key >> 16) % UInt64(count - 1))) % count
        }
        let top = 0.5 + Double((key >> 8) % 40) / 100
        let rest = (1 - top) / Double(count - 1)
        let probabilities = (0..<count).map { ($0 == index ? top : rest) }.map { ($0 * 10_000).rounded() / 10_000 }
        return (self.spec.labels[index], probabilities)
    }

    func latency(_ key: UInt64) -> Duration {
        guard self.spec.latencyMax > self.spec.latencyMin else { return self.spec.latencyMin }
        let span = (self.spec.latencyMax - self.spec.latencyMin) / 1
        let fraction = Double.random(in: 0..<1)
        return self.spec.latencyMin + span * fraction
    }

    static func unit(_ hash: UInt64) -> Double {
        Double(hash >> 11) / Double(1 << 53)
    }
}
