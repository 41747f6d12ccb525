/// Everything recorded about one client request: the baseline's answer and each candidate's.
///
/// Built on the request path with copies of the bytes it needs (never the network buffers), then
/// handed to the writer, which scores it and stores one row per candidate.
///
/// A value with its fields in one reference-counted box: a record passes through the record
/// queue, the scoring stage and the writer, and a copy of the whole struct (two dozen fields,
/// most of them reference-counted) around every non-inlined call cost the scoring thread about a
/// tenth of its time. Copying the box is one retain; a write to a shared box copies it first.
public struct ExchangeRecord: Sendable {
    @usableFromInline var storage: Storage

    @inlinable public var requestID: String {
        _read { yield self.storage.fields.requestID }
        _modify { yield &self.unique.requestID }
    }
    @inlinable public var route: String {
        _read { yield self.storage.fields.route }
        _modify { yield &self.unique.route }
    }
    @inlinable public var configRevision: String {
        _read { yield self.storage.fields.configRevision }
        _modify { yield &self.unique.configRevision }
    }
    /// Wall-clock time the request head arrived, microseconds since the Unix epoch.
    @inlinable public var receivedAtMicros: Int64 {
        _read { yield self.storage.fields.receivedAtMicros }
        _modify { yield &self.unique.receivedAtMicros }
    }
    @inlinable public var method: String {
        _read { yield self.storage.fields.method }
        _modify { yield &self.unique.method }
    }
    /// Path and query as the client sent them.
    @inlinable public var path: String {
        _read { yield self.storage.fields.path }
        _modify { yield &self.unique.path }
    }
    @inlinable public var requestBody: CapturedBody {
        _read { yield self.storage.fields.requestBody }
        _modify { yield &self.unique.requestBody }
    }
    @inlinable public var baseline: ArmResult {
        _read { yield self.storage.fields.baseline }
        _modify { yield &self.unique.baseline }
    }
    @inlinable public var candidates: [CandidateResult] {
        _read { yield self.storage.fields.candidates }
        _modify { yield &self.unique.candidates }
    }
    /// The route's scorer at the time of the request (a reload must not rescore old pairs).
    @inlinable public var scorer: any Scorer {
        _read { yield self.storage.fields.scorer }
        _modify { yield &self.unique.scorer }
    }
    /// The value of the route's segment header, if configured and present.
    @inlinable public var segment: String? {
        _read { yield self.storage.fields.segment }
        _modify { yield &self.unique.segment }
    }
    /// Whether JSON bodies are read for `usage` token counts (OpenAI-compatible or token-priced routes).
    @inlinable public var readsUsage: Bool {
        _read { yield self.storage.fields.readsUsage }
        _modify { yield &self.unique.readsUsage }
    }
    /// `live` for traffic the sidecar saw, `replay` for a backtest of recorded traffic.
    @inlinable public var source: String {
        _read { yield self.storage.fields.source }
        _modify { yield &self.unique.source }
    }
    /// Set on a route with an experiment: the request's arm and who answered it. An enrolled
    /// request is recorded even when no copy made a pair (its exposure counts).
    @inlinable public var exposure: ExperimentExposure? {
        _read { yield self.storage.fields.exposure }
        _modify { yield &self.unique.exposure }
    }
    /// Reads binary bodies (gRPC tensor messages) as JSON for scoring and storage; set when the
    /// route's scorer names a tensor protocol.
    @inlinable public var bodyDecoder: (any BodyDecoder)? {
        _read { yield self.storage.fields.bodyDecoder }
        _modify { yield &self.unique.bodyDecoder }
    }
    /// The request's `Content-Type` and `Inference-Header-Content-Length`, for the decoder.
    @inlinable public var requestContentType: String? {
        _read { yield self.storage.fields.requestContentType }
        _modify { yield &self.unique.requestContentType }
    }
    @inlinable public var requestInferenceHeaderLength: Int? {
        _read { yield self.storage.fields.requestInferenceHeaderLength }
        _modify { yield &self.unique.requestInferenceHeaderLength }
    }
    /// The request's `grpc-encoding`, for the decoder.
    @inlinable public var requestGRPCEncoding: String? {
        _read { yield self.storage.fields.requestGRPCEncoding }
        _modify { yield &self.unique.requestGRPCEncoding }
    }

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
        self.storage = Storage(
            Fields(
                requestID: requestID,
                route: route,
                configRevision: configRevision,
                receivedAtMicros: receivedAtMicros,
                method: method,
                path: path,
                requestBody: requestBody,
                baseline: baseline,
                candidates: candidates,
                scorer: scorer,
                segment: segment
            )
        )
    }

    /// The fields, for writing: the box copied first when another record shares it.
    @inlinable var unique: Fields {
        get { self.storage.fields }
        _modify {
            if !isKnownUniquelyReferenced(&self.storage) { self.storage = Storage(self.storage.fields) }
            yield &self.storage.fields
        }
    }

    /// The record's fields, stored.
    @usableFromInline struct Fields {
        @usableFromInline var requestID: String
        @usableFromInline var route: String
        @usableFromInline var configRevision: String
        @usableFromInline var receivedAtMicros: Int64
        @usableFromInline var method: String
        @usableFromInline var path: String
        @usableFromInline var requestBody: CapturedBody
        @usableFromInline var baseline: ArmResult
        @usableFromInline var candidates: [CandidateResult]
        @usableFromInline var scorer: any Scorer
        @usableFromInline var segment: String?
        @usableFromInline var readsUsage: Bool = false
        @usableFromInline var source: String = "live"
        @usableFromInline var exposure: ExperimentExposure?
        @usableFromInline var bodyDecoder: (any BodyDecoder)?
        @usableFromInline var requestContentType: String?
        @usableFromInline var requestInferenceHeaderLength: Int?
        @usableFromInline var requestGRPCEncoding: String?
    }

    /// Shared between copies of a record until one of them is written to, and only then: a
    /// box is never written while another record holds it, so sending one is safe.
    @usableFromInline final class Storage: @unchecked Sendable {
        @usableFromInline var fields: Fields

        @usableFromInline init(_ fields: Fields) {
            self.fields = fields
        }
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
