import NIOCore
import NIOHTTP1

/// HTTP/1.1 pipelining on one client connection: what the client sent while an answer was still
/// going out waits here, in order, and is handed on once that answer ended.
///
/// NIO's `HTTPServerPipelineHandler` does the same, but holds back the channel's reads for
/// every answer in flight: the socket left and rejoined the event loop's interest set around
/// each request (two `epoll_ctl` calls per request). Here reading stops only while too much
/// waits (``isFull``). A value with no I/O: the handler asks it what to do.
struct PipelinedRequests {
    /// What the connection's decoder produced, in the order it did.
    enum Event {
        case part(HTTPServerRequestPart)
        /// A malformed request: it takes its turn like the requests before it.
        case error(HTTPParserError)
    }

    /// At most this many events, or ``maximumBytes`` of body, wait before reading stops.
    static let maximumEvents = 64
    static let maximumBytes = 1 << 20

    private var waiting = CircularBuffer<Event>()
    private var waitingBytes = 0
    /// The current request was read to its end and its answer has not ended yet.
    private(set) var answering = false

    /// What the client sends now must wait: an answer is going out, or other events wait
    /// before it.
    var mustWait: Bool { self.answering || !self.waiting.isEmpty }

    /// Keeps `event` until ``next()`` hands it on (only while ``mustWait``).
    mutating func hold(_ event: Event) {
        if case .part(.body(let buffer)) = event { self.waitingBytes += buffer.readableBytes }
        self.waiting.append(event)
    }

    /// Reading from the client should stop until some of what waits was handled.
    var isFull: Bool { self.waiting.count >= Self.maximumEvents || self.waitingBytes >= Self.maximumBytes }

    var isEmpty: Bool { self.waiting.isEmpty }

    /// The current request ended: what follows waits for its answer.
    mutating func requestEnded() { self.answering = true }

    /// The current answer ended: what waits may go on.
    mutating func answerEnded() { self.answering = false }

    /// The next waiting event, unless an answer is going out (nothing after a request's end
    /// goes on before that request's answer ended).
    mutating func next() -> Event? {
        guard !self.answering, let event = self.waiting.popFirst() else { return nil }
        if case .part(.body(let buffer)) = event { self.waitingBytes -= buffer.readableBytes }
        return event
    }

    /// The connection closes: nothing that waits will be answered.
    mutating func removeAll() {
        self.waiting.removeAll()
        self.waitingBytes = 0
    }
}
