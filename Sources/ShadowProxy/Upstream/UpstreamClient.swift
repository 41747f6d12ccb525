import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ShadowCore

/// Sends requests to one upstream through the sidecar's own machinery (keep-alive pool, TLS,
/// egress proxy, the upstream's headers and body rewrite, connect and call timeouts) and keeps
/// each answer as a record would: for `shadowd replay`, which backtests a candidate on recorded
/// traffic exactly as the live sidecar would have called it.
public final class UpstreamClient: Sendable {
    private let pool: NIOLoopBound<UpstreamPool>
    private let candidate: CandidateConfiguration
    private let headers: UpstreamHeaders
    private let captureLimit: Int

    private init(pool: NIOLoopBound<UpstreamPool>, candidate: CandidateConfiguration, headers: UpstreamHeaders, captureLimit: Int) {
        self.pool = pool
        self.candidate = candidate
        self.headers = headers
        self.captureLimit = captureLimit
    }

    /// - Parameters:
    ///   - configuration: for the egress proxy and the size answers are kept to.
    ///   - environment: where the candidate's header secrets and TLS credentials are read.
    /// - Throws: ``ConfigurationError`` when a TLS file or a header secret cannot be read.
    public static func make(
        candidate: CandidateConfiguration,
        configuration: Configuration,
        environment: [String: String],
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger
    ) async throws -> UpstreamClient {
        let endpoint = try UpstreamEndpoint(url: candidate.url, tls: candidate.tls, proxy: configuration.egressProxy, environment: environment)
        let headers = try UpstreamHeaders(candidate.headers, environment: environment)
        let loop = group.next()
        let statistics = ProxyStatistics()
        let pool = try await loop.submit {
            NIOLoopBound(
                UpstreamPool(
                    loop: loop,
                    endpoint: endpoint,
                    maxIdle: candidate.maxConcurrency,
                    maxIdleTime: TimeAmount(candidate.idleTimeout),
                    statistics: statistics,
                    logger: logger
                ),
                eventLoop: loop
            )
        }.get()
        return UpstreamClient(pool: pool, candidate: candidate, headers: headers, captureLimit: configuration.storage.maxStoredBody)
    }

    /// Sends one request and returns the answer as recorded (status, timings, body up to the
    /// storage cap, or the error kind). Never throws: a failure is an answer too.
    public func send(method: String, path: String, contentType: String?, body: [UInt8], requestID: String) async -> ArmResult {
        var payload = body
        if !self.candidate.rewrite.isEmpty, let document = try? JSONParser(maximumDepth: 64).parse(body) {
            payload = Array(self.candidate.rewrite.apply(to: document).serialized.utf8)
        }
        var incoming = HTTPHeaders()
        if let contentType { incoming.add(name: "content-type", value: contentType) }
        let head = ProxyHandler.upstreamHead(
            HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: method), uri: path, headers: incoming),
            target: self.candidate.url,
            requestID: requestID,
            peer: nil,
            framing: .length(payload.count),
            shadow: true,
            rewrite: self.headers
        )
        let pool = self.pool
        let candidate = self.candidate
        let limit = self.captureLimit
        let promise = pool.eventLoop.makePromise(of: ArmResult.self)
        let request = head
        let bytes = payload.isEmpty ? nil : ByteBuffer(bytes: payload)
        pool.eventLoop.execute {
            let call = ReplayCall(candidate: candidate, limit: limit, promise: promise)
            call.start(pool: pool.value, head: request, body: bytes)
        }
        return (try? await promise.futureResult.get()) ?? ArmResult(version: candidate.version, error: .shutdown)
    }

    /// Closes the pool's connections.
    public func shutdown() async {
        let pool = self.pool
        try? await pool.eventLoop.submit { pool.value.closeAll() }.get()
    }
}

/// One replayed request's call: its answer captured, delivered to a promise.
final class ReplayCall: UpstreamResponseDelegate {
    private var answer: AnswerCapture
    private let candidate: CandidateConfiguration
    private let promise: EventLoopPromise<ArmResult>
    private var call: UpstreamCall?
    /// Nothing else is sure to hold a replayed request while its call waits for a connection:
    /// it keeps itself alive until its answer is in.
    private var retainedUntilFinished: ReplayCall?

    init(candidate: CandidateConfiguration, limit: Int, promise: EventLoopPromise<ArmResult>) {
        self.candidate = candidate
        self.promise = promise
        self.answer = AnswerCapture(version: candidate.version, price: candidate.cost, limit: limit)
    }

    func start(pool: UpstreamPool, head: HTTPRequestHead, body: ByteBuffer?) {
        self.retainedUntilFinished = self
        self.answer.start()
        let call = UpstreamCall(delegate: self)
        self.call = call
        call.arm(timeout: TimeAmount(self.candidate.timeout), on: pool.loop, error: .timeout)
        call.write(head: head, body: body)
        pool.execute(call, connectTimeout: TimeAmount(self.candidate.connectTimeout))
    }

    func upstreamHead(_ head: HTTPResponseHead) { self.answer.head(head) }

    func upstreamBody(_ buffer: ByteBuffer) {
        if !self.answer.body(buffer) { self.call?.cancel(with: .tooLarge) }
    }

    func upstreamReadComplete() {}

    func upstreamEnd(trailers: HTTPHeaders?) {
        self.answer.trailers(trailers)
        self.finish(nil)
    }

    func upstreamFailed(_ error: ArmError) { self.finish(error) }

    private func finish(_ error: ArmError?) {
        self.call = nil
        self.promise.succeed(self.answer.finish(error: error))
        self.retainedUntilFinished = nil
    }
}
