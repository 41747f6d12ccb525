/// Everything recorded about one client request: the baseline's answer and each candidate's.
///
/// Built on the request path with copies of the bytes it needs (never the network buffers), then
/// handed to the writer, which scores it and stores one row per candidate.
public struct ExchangeRecord: Sendable {
    public var requestID: String
    public var route: String
    public var configRevision: String
    /// Wall-clock time the request head arrived, microseconds since the Unix epoch.
    public var receivedAtMicros: Int64
    public var method: String
    /// Path and query as the client sent them.
    public var path: String
    public var requestBody: CapturedBody
    public var baseline: ArmResult
    public var candidates: [CandidateResult]
    /// The route's scorer at the time of the request (a reload must not rescore old pairs).
    public var scorer: any Scorer
    /// The value of the route's segment header, if configured and present.
    public var segment: String?
    /// Whether JSON bodies are read for `usage` token counts (OpenAI-compatible or token-priced routes).
    public var readsUsage: Bool = false
    /// `live` for traffic the sidecar saw, `replay` for a backtest of recorded traffic.
    public var source = "live"
    /// Set on a route with an experiment: the request's arm and who answered it. An enrolled
    /// request is recorded even when no copy made a pair (its exposure counts).
    public var exposure: ExperimentExposure?
    /// Reads binary bodies (gRPC tensor messages) as JSON for scoring and storage; set when the
    /// route's scorer names a tensor protocol.
    public var bodyDecoder: (any BodyDecoder)?
    /// The request's `Content-Type` and `Inference-Header-Content-Length`, for the decoder.
    public var requestContentType: String?
    public var requestInferenceHeaderLength: Int?
    /// The request's `grpc-encoding`, for the decoder.
    public var requestGRPCEncoding: String?

    public init(
        requestID: String,
        route: String,
        configRevision: String,
        receivedAtMicros: Int64,
        method: String,
        path: String,
        requestBody: CapturedBody,
        baseline: ArmResult,
        candidates: [CandidateResult],
        scorer: any Scorer,
        segment: String? = nil
    ) {
        self.requestID = requestID
        self.route = route
        self.configRevision = configRevision
        self.receivedAtMicros = receivedAtMicros
        self.method = method
        self.path = path
        self.requestBody = requestBody
        self.baseline = baseline
        self.candidates = candidates
        self.scorer = scorer
        self.segment = segment
    }
}

/// A body as stored: its first bytes up to the storage cap, and whether it was cut.
public struct CapturedBody: Sendable, Equatable {
    public var bytes: [UInt8]
    /// Bytes seen in total, including any beyond the cap.
    public var totalBytes: Int
    /// The bytes are a decoded form (JSON text of a binary tensor message): `totalBytes` is
    /// still the size on the wire, and no longer says whether the bytes were cut.
    public var isDecoded = false
    public var truncated: Bool { !self.isDecoded && self.totalBytes > self.bytes.count }

    public init(bytes: [UInt8] = [], totalBytes: Int? = nil) {
        self.bytes = bytes
        self.totalBytes = totalBytes ?? bytes.count
    }
}

/// What one upstream (baseline or candidate) did with the request.
public struct ArmResult: Sendable, Equatable {
    public var version: String
    /// The HTTP status, when a response head arrived.
    public var status: Int?
    /// Dispatch to last byte (or to the failure), in microseconds.
    public var latencyMicros: Int64?
    /// Dispatch to response head, in microseconds.
    public var timeToHeadMicros: Int64?
    public var contentType: String?
    public var body: CapturedBody
    public var error: ArmError?
    /// Dispatch to the first body byte, in microseconds.
    public var firstByteMicros: Int64?
    /// When each body chunk arrived (up to ``ChunkArrival/limit``), to time streamed events.
    public var arrivals: [ChunkArrival] = []
    /// What a call costs (from the configuration at the time of the request).
    public var price: CostConfiguration?
    /// A gRPC answer's `grpc-status` (in its trailers, or its head for a trailers-only answer).
    public var grpcStatus: Int?
    /// `Inference-Header-Content-Length`: the JSON part of a V2 binary tensor answer.
    public var inferenceHeaderLength: Int?
    /// A gRPC answer's `grpc-encoding` (its compressed messages' compression).
    public var grpcEncoding: String?

    public init(
        version: String,
        status: Int? = nil,
        latencyMicros: Int64? = nil,
        timeToHeadMicros: Int64? = nil,
        contentType: String? = nil,
        body: CapturedBody = .init(),
        error: ArmError? = nil
    ) {
        self.version = version
        self.status = status
        self.latencyMicros = latencyMicros
        self.timeToHeadMicros = timeToHeadMicros
        self.contentType = contentType
        self.body = body
        self.error = error
    }

    /// A complete response arrived.
    public var succeeded: Bool { self.error == nil && self.status != nil }
}

/// One candidate's side of a pair.
public struct CandidateResult: Sendable, Equatable {
    public var name: String
    public var result: ArmResult

    public init(name: String, result: ArmResult) {
        self.name = name
        self.result = result
    }
}

/// Why an upstream call did not produce a complete response. Raw values are stored.
public enum ArmError: String, Sendable, Equatable, CaseIterable {
    /// The connection was refused or could not be established.
    case refused
    /// Connecting took longer than the connect timeout (name resolution, TCP and TLS handshake).
    case connectTimeout = "connect_timeout"
    /// The upstream's host name did not resolve.
    case dns
    /// The TLS handshake failed: certificate verification, host name, protocol version, a
    /// rejected client certificate, or a peer that does not speak TLS where it should (or does
    /// where it should not).
    case tls
    /// No complete response within the timeout.
    case timeout
    /// The connection closed or reset before the response ended.
    case reset
    /// The response was not valid HTTP.
    case invalidResponse = "invalid_response"
    /// The response body exceeded the capture limit (candidates only; the call is cut short).
    case tooLarge = "too_large"
    /// The client went away before the baseline answered.
    case clientClosed = "client_closed"
    /// The daemon shut down before the call completed.
    case shutdown
}

/// A body chunk's arrival: the body length once it was in, and when (from dispatch).
public struct ChunkArrival: Sendable, Equatable {
    /// Arrivals kept per call; later chunks are not timed.
    public static let limit = 10_000

    public var endOffset: Int
    public var micros: Int64

    public init(endOffset: Int, micros: Int64) {
        self.endOffset = endOffset
        self.micros = micros
    }
}

extension ArmResult {
    /// Whether the model failed the call: a transport error or a 5xx answer. The capture cap
    /// (`too_large`), a client that left and a daemon shutting down are not the model's failures.
    public var modelFailed: Bool {
        switch self.error {
        case nil: (self.status ?? 0) >= 500
        case .tooLarge?, .clientClosed?, .shutdown?: false
        default: true
        }
    }

    /// Notes a body chunk arriving `micros` after dispatch, the body being `bytesSoFar` long.
    /// Arrivals are kept for event streams only (they time the first token); an ordinary answer
    /// costs no allocation here.
    public mutating func noteChunk(bytesSoFar: Int, micros: Int64) {
        if self.firstByteMicros == nil { self.firstByteMicros = micros }
        guard self.arrivals.count < ChunkArrival.limit, let contentType = self.contentType,
            contentType.utf8.count >= 17, zip(contentType.utf8, "text/event-stream".utf8).allSatisfy({ $0 | 0x20 == $1 | 0x20 })
        else { return }
        self.arrivals.append(ChunkArrival(endOffset: bytesSoFar, micros: micros))
    }

    /// When the byte at `offset` (exclusive end) had arrived, if timed.
    public func arrival(ofOffset offset: Int) -> Int64? {
        self.arrivals.first { $0.endOffset >= offset }?.micros
    }
}
