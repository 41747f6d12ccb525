import NIOCore
import NIOHTTP1
import Testing

@testable import ShadowProxy

/// The upstream response parser on its own: framing, the grammar's edges, and every way an
/// answer can arrive split across reads. End to end it is exercised by every proxy test.
@Suite struct ResponseParserTests {
    /// What a parser made of some bytes: heads, bodies and ends as text, in order.
    struct Outcome: Equatable, CustomStringConvertible {
        var events: [String] = []
        var failure: ResponseParser.Failure?
        var description: String { "\(self.events) \(self.failure.map { "\($0)" } ?? "")" }
    }

    static func parse(_ chunks: [String], methods: [HTTPMethod] = [.GET], close: Bool = false) -> Outcome {
        var parser = ResponseParser(maxHeadBytes: 256)
        for method in methods { parser.requestSent(method: method) }
        var outcome = Outcome()
        var body = ""
        func emit(_ event: ResponseParser.Event) {
            switch event {
            case .head(let head):
                let fields = head.headers.map { "\($0.name)=\($0.value)" }.joined(separator: ",")
                outcome.events.append("head \(head.version.minor) \(head.status.code) \(head.status.reasonPhrase) [\(fields)]")
            case .body(let bytes):
                body += String(buffer: bytes)
            case .end(let trailers):
                if !body.isEmpty { outcome.events.append("body \(body)") }
                body = ""
                outcome.events.append("end" + (trailers.map { " " + $0.map { "\($0.name)=\($0.value)" }.joined(separator: ",") } ?? ""))
            }
        }
        do {
            for chunk in chunks {
                parser.feed(ByteBuffer(string: chunk))
                while let event = try parser.next() { emit(event) }
            }
            if close, let event = try parser.finish() { emit(event) }
        } catch {
            outcome.failure = error
        }
        if !body.isEmpty { outcome.events.append("body \(body)") }
        return outcome
    }

    /// The same bytes give the same events however they are split: whole, byte by byte, and
    /// at every single cut.
    static func everySplit(_ text: String, methods: [HTTPMethod] = [.GET], close: Bool = false) -> Outcome {
        let whole = Self.parse([text], methods: methods, close: close)
        let characters = text.map { String($0) }
        #expect(Self.parse(characters, methods: methods, close: close) == whole, "byte by byte")
        for cut in 1..<max(text.count, 2) {
            let split = [String(text.prefix(cut)), String(text.dropFirst(cut))]
            #expect(Self.parse(split, methods: methods, close: close) == whole, "cut at \(cut)")
        }
        return whole
    }

    @Test func aContentLengthBodyEnds() {
        let outcome = Self.everySplit("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\":true}\n")
        #expect(outcome.events == ["head 1 200 OK [Content-Type=application/json,Content-Length=11]", "body {\"a\":true}\n", "end"])
        #expect(outcome.failure == nil)
    }

    @Test func chunkedBodiesWithExtensionsAndTrailers() {
        let outcome = Self.everySplit(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;name=x\r\nhello\r\n7\r\n, world\r\n0\r\ngrpc-status: 0\r\nx-b:  two words \r\n\r\n"
        )
        #expect(outcome.events == ["head 1 200 OK [transfer-encoding=chunked]", "body hello, world", "end grpc-status=0,x-b=two words"])
        #expect(outcome.failure == nil)
    }

    @Test func twoAnswersOnOneConnectionAndABareLF() {
        let outcome = Self.everySplit(
            "HTTP/1.1 200 OK\nContent-Length: 2\n\nabHTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            methods: [.GET, .GET]
        )
        #expect(outcome.events == ["head 1 200 OK [Content-Length=2]", "body ab", "end", "head 1 404 Not Found [content-length=0]", "end"])
        #expect(outcome.failure == nil)
    }

    @Test func answersWithoutABodyEndAtTheirHead() {
        // HEAD keeps its framing fields but has no body; 204 and 304 never have one; 1xx is
        // dropped and the final answer follows.
        let outcome = Self.everySplit(
            "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
            methods: [.HEAD, .GET, .GET]
        )
        #expect(
            outcome.events == [
                "head 1 200 OK [Content-Length=99]", "end", "head 1 204 No Content []", "end", "head 1 304 Not Modified [Content-Length=5]", "end",
            ]
        )
        #expect(outcome.failure == nil)
    }

    @Test func aBodyWithoutFramingEndsWithTheConnection() {
        let outcome = Self.everySplit("HTTP/1.0 200 OK\r\n\r\nall of it", close: true)
        #expect(outcome.events == ["head 0 200 OK []", "body all of it", "end"])
        #expect(outcome.failure == nil)
        // Transfer-Encoding without a final chunked is read the same way, and wins over a length.
        let coded = Self.parse(["HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nabcd"], close: true)
        #expect(coded.events == ["head 1 200 OK [Transfer-Encoding=gzip,Content-Length=2]", "body abcd", "end"])
    }

    @Test func aCloseInTheMiddleOfAnAnswerIsTruncated() {
        for text in ["HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", "HTTP/1.1 200 OK\r\nConte", "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel"] {
            #expect(Self.parse([text], close: true).failure == .truncated, "\(text.debugDescription)")
        }
        // Closed between answers: nothing is wrong.
        #expect(Self.parse(["HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"], close: true).failure == nil)
    }

    @Test(arguments: [
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "ICY 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nName : x\r\n\r\n",
        "HTTP/1.1 200 OK\r\n: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nx: a\r\n folded\r\n\r\n",
        "HTTP/1.1 200 OK\r\nx: a\u{0}b\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1234567890abcdef0\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
        "HTTP/1.1 101 Switching Protocols\r\n\r\n",
    ])
    func malformedAnswersAreRefused(_ text: String) {
        let outcome = Self.parse([text])
        guard case .malformed = outcome.failure else {
            Issue.record("\(text.debugDescription): \(outcome)")
            return
        }
    }

    @Test func bytesNoRequestAskedForAreRefused() {
        #expect(Self.parse(["HTTP/1.1 200 OK\r\n\r\n"], methods: []).failure == .unsolicited)
        // A second answer to one request.
        let twice = Self.parse(["HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n"])
        #expect(twice.events == ["head 1 200 OK [Content-Length=0]", "end"] && twice.failure == .unsolicited)
    }

    @Test func aHeadPastTheLimitIsRefusedBeforeItEnds() {
        let long = "HTTP/1.1 200 OK\r\nx: " + String(repeating: "a", count: 300)
        #expect(Self.parse([long]).failure == .headTooLarge(limit: 256))
        #expect(Self.parse(Array(long.map { String($0) })).failure == .headTooLarge(limit: 256))
    }
}
