import NIOCore
import NIOHTTP1
import ShadowCore

/// An upstream's answer as a record keeps it: status, time to head, chunk arrivals and the body
/// up to a cap. Shared by the serving arm's call, the shadow calls and the replay client.
struct AnswerCapture {
    private(set) var result: ArmResult
    /// Body bytes kept at most (0 keeps none: an answer nobody records).
    var limit: Int
    private(set) var captured: [UInt8] = []
    private var seenBytes = 0
    private var started: NIODeadline = .now()

    init(version: String, price: CostConfiguration?, limit: Int) {
        self.result = ArmResult(version: version)
        self.result.price = price
        self.limit = limit
    }

    /// The call starts now (timings count from here).
    mutating func start() {
        self.started = .now()
    }

    var elapsedMicros: Int64 { (NIODeadline.now() - self.started).nanoseconds / 1000 }

    mutating func head(_ head: HTTPResponseHead) {
        self.result.status = Int(head.status.code)
        self.result.timeToHeadMicros = self.elapsedMicros
        self.result.contentType = head.headers.first(name: "content-type")
        // gRPC's fields only on gRPC answers (every answer passes here, on the event loop). A
        // trailers-only answer (an error before any message) carries its status in the head.
        if GRPCSemantics.isGRPC(contentType: self.result.contentType) {
            if let status = head.headers.first(name: "grpc-status") { self.result.grpcStatus = Int(status) }
            self.result.grpcEncoding = head.headers.first(name: "grpc-encoding")
        } else if let length = head.headers.first(name: "inference-header-content-length") {
            self.result.inferenceHeaderLength = Int(length)
        }
    }

    /// The answer's trailers: gRPC's status is read from them.
    mutating func trailers(_ trailers: HTTPHeaders?) {
        if let status = trailers?.first(name: "grpc-status") { self.result.grpcStatus = Int(status) }
    }

    /// Whether every byte seen so far was kept.
    var capturedAll: Bool { self.captured.count == self.seenBytes }

    /// Keeps the chunk (its arrival time too, when `timed`: streamed events are timed from
    /// them); `false` when it went past the cap (a shadow call is then cut short).
    @discardableResult
    mutating func body(_ buffer: ByteBuffer, timed: Bool = true) -> Bool {
        self.seenBytes += buffer.readableBytes
        if timed { self.result.noteChunk(bytesSoFar: self.seenBytes, micros: self.elapsedMicros) }
        let room = self.limit - self.captured.count
        if buffer.readableBytes > room {
            if room > 0 { self.captured.append(contentsOf: buffer.readableBytesView.prefix(room)) }
            return false
        }
        self.captured.append(contentsOf: buffer.readableBytesView)
        return true
    }

    /// The finished answer (the captured bytes move into it).
    mutating func finish(error: ArmError?) -> ArmResult {
        self.result.latencyMicros = self.elapsedMicros
        self.result.body = CapturedBody(bytes: self.captured, totalBytes: self.seenBytes)
        self.result.error = error
        self.captured = []
        return self.result
    }

    /// Marks an answer that never started (shutdown while queued).
    mutating func abandon(_ error: ArmError) -> ArmResult {
        self.result.error = error
        return self.result
    }
}
