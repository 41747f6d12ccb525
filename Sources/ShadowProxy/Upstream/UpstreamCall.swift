import NIOCore
import NIOHTTP1
import ShadowCore

/// One request in flight on an upstream connection (or waiting for one to connect).
///
/// The request is written part by part as it arrives (a streamed upload reaches the upstream
/// while the client is still sending it); parts written before a connection is ready wait in
/// order and go out when it attaches.
///
/// Loop-bound: created, used and completed on one event loop, so it needs no locks.
final class UpstreamCall {
    /// Held strongly until the call finishes, then let go: a weak reference would give every
    /// delegate (a handler, each shadow copy) a side table, and every retain of it the slow path.
    private(set) var delegate: (any UpstreamResponseDelegate)?
    private(set) var connection: UpstreamConnection?
    private(set) var finished = false
    /// The request's last part has been written (a connection is reusable only after that).
    private(set) var requestEnded = false
    /// Parts written before a connection attached, and their body bytes.
    private var waiting: [HTTPClientRequestPart] = []
    private var waitingBytes = 0
    private var timer: LoopDeadline?
    /// Why the call failed, in words, when the error kind alone does not say (a TLS failure's
    /// reason). Never holds secrets.
    private(set) var failureDetail: String?
    /// A gRPC request (told from its head's content type): over `https://` it takes the
    /// upstream's HTTP/2 connection, since gRPC cannot travel over HTTP/1.1.
    private(set) var isGRPC = false

    init(delegate: any UpstreamResponseDelegate) {
        self.delegate = delegate
    }

    /// Fails the call with `error` unless it finishes within `amount` (a shadow copy's or a
    /// replayed request's own timeout; the serving arm's is its handler's, one per connection).
    /// Armed once per call.
    func arm(timeout amount: TimeAmount, on loop: any EventLoop, error: ArmError) {
        if self.timer == nil {
            // Strong: the call keeps the timer until it finishes, and drops it then.
            self.timer = LoopDeadline(on: loop) { self.cancel(with: error) }
        }
        self.timer?.set(.now() + amount)
    }

    /// Abandons the call: the connection is closed (never reused mid-response) and the delegate
    /// hears `error`, unless the call already finished.
    func cancel(with error: ArmError) {
        guard !self.finished else { return }
        let connection = self.connection
        self.fail(error)
        connection?.close()
    }

    /// Stops reading from the upstream while the client cannot take more (backpressure).
    func pauseReading() {
        self.connection?.setAutoRead(false)
    }

    func resumeReading() {
        self.connection?.setAutoRead(true)
    }

    // MARK: - The request

    /// Writes a request part (queued until a connection attaches). The end of the request is
    /// flushed at once; other parts wait for ``flush()`` so a burst goes out in one write.
    func write(_ part: HTTPClientRequestPart) {
        guard !self.finished, !self.requestEnded else { return }
        switch part {
        case .head(let head): self.isGRPC = GRPCSemantics.isGRPC(contentType: head.headers.first(name: "content-type"))
        case .end: self.requestEnded = true
        case .body: break
        }
        if let connection = self.connection {
            connection.write(part, flush: self.requestEnded)
        } else {
            if case .body(.byteBuffer(let buffer)) = part { self.waitingBytes += buffer.readableBytes }
            self.waiting.append(part)
        }
    }

    /// Writes a whole request: head, body and end.
    func write(head: HTTPRequestHead, body: ByteBuffer?) {
        self.write(.head(head))
        if let body, body.readableBytes > 0 { self.write(.body(.byteBuffer(body))) }
        self.write(.end(nil))
    }

    func flush() {
        self.connection?.flush()
    }

    /// Whether more request bytes can be written without piling up in memory.
    var acceptsMoreRequestBytes: Bool {
        if let connection = self.connection { return connection.channel.isWritable }
        return self.waitingBytes < Self.maxWaitingBytes
    }

    /// Request bytes buffered while connecting before the sender is asked to pause.
    static let maxWaitingBytes = 256 * 1024

    /// A connection is ready: sends what has been written so far. `inReadBurst` says the caller
    /// is inside the sender's read handling, which flushes when the burst ends; an unfinished
    /// request then waits for that flush so head and body leave in one write.
    func attach(_ connection: UpstreamConnection, inReadBurst: Bool) {
        self.connection = connection
        let parts = self.waiting
        self.waiting = []
        self.waitingBytes = 0
        for part in parts { connection.write(part, flush: false) }
        if self.requestEnded || !inReadBurst { connection.flush() }
        self.delegate?.upstreamWritable()
    }

    // MARK: - Events from the connection

    func deliverWritable() {
        guard !self.finished else { return }
        self.delegate?.upstreamWritable()
    }

    func deliverHead(_ head: HTTPResponseHead) {
        guard !self.finished else { return }
        self.delegate?.upstreamHead(head)
    }

    func deliverBody(_ buffer: ByteBuffer) {
        guard !self.finished else { return }
        self.delegate?.upstreamBody(buffer)
    }

    func deliverReadComplete() {
        guard !self.finished else { return }
        self.delegate?.upstreamReadComplete()
    }

    func complete(trailers: HTTPHeaders? = nil) {
        guard !self.finished else { return }
        self.finished = true
        self.stopTimer()
        self.connection = nil
        self.waiting = []
        self.delegate?.upstreamEnd(trailers: trailers)
        self.delegate = nil
    }

    func fail(_ error: ArmError, detail: String? = nil) {
        guard !self.finished else { return }
        self.finished = true
        self.failureDetail = detail
        self.stopTimer()
        self.connection = nil
        self.waiting = []
        self.delegate?.upstreamFailed(error)
        self.delegate = nil
    }

    private func stopTimer() {
        self.timer?.cancel()
        self.timer = nil
    }
}
