import NIOCore
import NIOHTTP1

/// Reads an upstream's HTTP/1.1 answers from its bytes: the status line and header fields, then
/// the body framed as RFC 9112 §6.3 says (no body for HEAD, 1xx, 204 and 304; chunked; a
/// content length; or until the connection closes), handed on as slices of the bytes read.
///
/// It replaces NIO's response decoder on upstream connections: that one crossed the pipeline
/// three times per answer and went through llhttp's callbacks, two answers per client request.
/// Informational (1xx) heads are dropped as NIO's decoder drops them; 101 is refused (no
/// upgrade is ever asked for). Bytes no request asked for are an error, so a pooled connection
/// can never pair an answer with the wrong request.
struct ResponseParser {
    /// What a response's bytes amount to, in order.
    enum Event {
        case head(HTTPResponseHead)
        case body(ByteBuffer)
        case end(HTTPHeaders?)
    }

    /// Why the bytes are not an answer. Everything but ``truncated`` means the upstream spoke
    /// something other than HTTP/1.1.
    enum Failure: Error, Equatable, CustomStringConvertible {
        case malformed(String)
        /// The connection ended in the middle of an answer.
        case truncated
        case headTooLarge(limit: Int)
        /// Bytes arrived with no request outstanding.
        case unsolicited

        var description: String {
            switch self {
            case .malformed(let what): "malformed HTTP response: \(what)"
            case .truncated: "the connection closed in the middle of a response"
            case .headTooLarge(let limit): "response head larger than \(limit) bytes"
            case .unsolicited: "bytes with no request outstanding"
            }
        }
    }

    private enum State {
        /// Between answers (a status line comes next).
        case head
        case fixedBody(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        /// The CRLF after a chunk's data.
        case chunkEnd
        case trailers
        case untilClose
        case failed
    }

    /// The largest status line and header block accepted (and of the trailers).
    let maxHeadBytes: Int
    private var state = State.head
    /// Bytes fed and not yet parsed: the rest of a read, or part of a head, chunk-size line or
    /// trailer block waiting for the rest.
    private var input: ByteBuffer?
    /// An event found together with the one returned before it (a head and its end).
    private var queued: Event?
    /// Per request written and not yet answered: whether it was a HEAD (answered without a body).
    private var outstanding = CircularBuffer<Bool>(initialCapacity: 2)

    init(maxHeadBytes: Int = 80 * 1024) {
        self.maxHeadBytes = maxHeadBytes
    }

    /// A request went out on the connection; its answer is the next one unclaimed.
    mutating func requestSent(method: HTTPMethod) {
        self.outstanding.append(method == .HEAD)
    }

    /// Adds bytes read from the connection; ``next()`` then says what they amount to.
    mutating func feed(_ bytes: ByteBuffer) {
        if var input = self.input, input.readableBytes > 0 {
            // Part of a head, chunk-size line or trailer block waits for the rest.
            self.input = nil
            var bytes = bytes
            input.writeBuffer(&bytes)
            self.input = input
        } else {
            self.input = bytes
        }
    }

    /// The next event in the bytes fed so far, or nil until more arrive. Pull, not push: the
    /// caller acts on each event outside this mutation (acting can close the connection, which
    /// calls ``finish()``).
    mutating func next() throws(Failure) -> Event? {
        if let queued = self.queued {
            self.queued = nil
            return queued
        }
        guard var input = self.input else { return nil }
        self.input = nil
        defer { self.input = input.readableBytes > 0 ? input : nil }
        do throws(Failure) {
            while input.readableBytes > 0 {
                switch try self.step(&input) {
                case .event(let event):
                    return event
                case .advanced:
                    continue
                case .needsMore:
                    // An incomplete line or block: kept until more arrives, within the limit.
                    if input.readableBytes > self.maxHeadBytes { throw Failure.headTooLarge(limit: self.maxHeadBytes) }
                    return nil
                }
            }
            return nil
        } catch {
            self.state = .failed
            input.moveReaderIndex(forwardBy: input.readableBytes)
            throw error
        }
    }

    /// The connection ended: an answer framed by the close ends here; any other unfinished one
    /// is truncated.
    mutating func finish() throws(Failure) -> Event? {
        let waiting = self.input.map { $0.readableBytes > 0 } ?? false
        self.input = nil
        switch self.state {
        case .untilClose:
            self.state = .head
            return .end(nil)
        case .head where !waiting, .failed:
            return nil
        default:
            self.state = .failed
            throw .truncated
        }
    }

    /// What one step of the state machine did.
    private enum Step {
        case event(Event)
        /// Consumed bytes without an event (a chunk-size line, a 1xx head).
        case advanced
        /// `input` holds only part of what comes next; nothing was consumed.
        case needsMore
    }

    private mutating func step(_ input: inout ByteBuffer) throws(Failure) -> Step {
        switch self.state {
        case .head:
            guard let isHEAD = self.outstanding.first else { throw .unsolicited }
            guard let end = Self.endOfBlock(in: input) else { return .needsMore }
            let block = input.readSlice(length: end)!
            let head = try Self.parseHead(block)
            let status = head.status.code
            if status == 101 { throw .malformed("101 Switching Protocols was not asked for") }
            if (100..<200).contains(status) { return .advanced }
            self.outstanding.removeFirst()
            if let end = try self.startBody(head, isHEAD: isHEAD) { self.queued = end }
            return .event(.head(head))
        case .fixedBody(let remaining):
            let slice = input.readSlice(length: min(remaining, input.readableBytes))!
            if remaining == slice.readableBytes {
                self.state = .head
                self.queued = .end(nil)
            } else {
                self.state = .fixedBody(remaining: remaining - slice.readableBytes)
            }
            return .event(.body(slice))
        case .chunkSize:
            guard let lineEnd = Self.endOfLine(in: input) else {
                if input.readableBytes > 1024 { throw .malformed("chunk size line too long") }
                return .needsMore
            }
            let size = try Self.chunkSize(input.readSlice(length: lineEnd)!)
            self.state = size == 0 ? .trailers : .chunkData(remaining: size)
            return .advanced
        case .chunkData(let remaining):
            let slice = input.readSlice(length: min(remaining, input.readableBytes))!
            self.state = remaining == slice.readableBytes ? .chunkEnd : .chunkData(remaining: remaining - slice.readableBytes)
            return .event(.body(slice))
        case .chunkEnd:
            guard let lineEnd = Self.endOfLine(in: input) else {
                if input.readableBytes >= 2 { throw .malformed("chunk data longer than its size") }
                return .needsMore
            }
            guard lineEnd <= 2, input.readSlice(length: lineEnd)!.readableBytesView.allSatisfy({ $0 == 13 || $0 == 10 }) else {
                throw .malformed("chunk data longer than its size")
            }
            self.state = .chunkSize
            return .advanced
        case .trailers:
            guard let end = Self.endOfBlock(in: input, startsWithLine: false) else { return .needsMore }
            let fields = try Self.parseFields(input.readSlice(length: end)!)
            self.state = .head
            return .event(.end(fields.isEmpty ? nil : fields))
        case .untilClose:
            return .event(.body(input.readSlice(length: input.readableBytes)!))
        case .failed:
            input.moveReaderIndex(forwardBy: input.readableBytes)
            return .advanced
        }
    }

    /// How the body after `head` is framed (RFC 9112 §6.3), and its end when it has none.
    /// - Returns: the answer's end when it has no body.
    private mutating func startBody(_ head: HTTPResponseHead, isHEAD: Bool) throws(Failure) -> Event? {
        let status = head.status.code
        if isHEAD || status == 204 || status == 304 {
            self.state = .head
            return .end(nil)
        }
        let codings = head.headers[canonicalForm: "transfer-encoding"]
        if !codings.isEmpty {
            // Transfer-Encoding overrides Content-Length; only a final chunked has an end of its own.
            self.state = codings.last?.lowercased() == "chunked" ? .chunkSize : .untilClose
            return nil
        }
        let lengths = head.headers[canonicalForm: "content-length"]
        guard let first = lengths.first else {
            self.state = .untilClose
            return nil
        }
        guard first.utf8.count <= 18, first.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let length = Int(first),
            lengths.allSatisfy({ $0 == first })
        else { throw .malformed("content-length \(lengths.joined(separator: ", "))") }
        if length == 0 {
            self.state = .head
            return .end(nil)
        }
        self.state = .fixedBody(remaining: length)
        return nil
    }
}
