import Foundation
import NIOCore
import NIOHTTP1
import ShadowCore
import ShadowFixtures
import ShadowStore
import Testing

@testable import ShadowProxy

/// HTTP/1.1 pipelining: requests a client sends before the answer to the one before them are
/// answered in order, one at a time, each forwarded and recorded like any other.
@Suite(.timeLimit(.minutes(2))) struct PipeliningTests {
    static let echo = Upstream.responder { request in .json(#"{"uri":"\#(request.uri)"}"#) }

    /// The answers' URIs in the order they came back.
    static func answeredURIs(_ response: String) -> [String] {
        response.components(separatedBy: #"{"uri":""#).dropFirst().map { String($0.prefix { $0 != "\"" }) }
    }

    @Test func pipelinedRequestsAreAnsweredInOrderAndEachRecorded() async throws {
        try await withSidecar(baseline: Self.echo, candidates: [("c", Self.echo)]) { sidecar, baseline, candidates in
            let body = #"{"inputs":[1,2,3]}"#
            let requests =
                "GET /p1 HTTP/1.1\r\nHost: a\r\n\r\n"
                + "POST /p2 HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
                + "GET /p3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
            let (response, closed) = await rawExchange(port: sidecar.port, Array(requests.utf8))
            #expect(Self.answeredURIs(response) == ["/p1", "/p2", "/p3"], "\(response)")
            #expect(response.components(separatedBy: "HTTP/1.1 200").count == 4)
            #expect(closed, "closed after the request that asked for it")
            #expect(baseline?.requestCount == 3)
            #expect(baseline?.recentRequests.first { $0.uri == "/p2" }?.body == Array(body.utf8))
            #expect(try await eventually { candidates[0]?.requestCount == 3 })
            await sidecar.stop()
            let store = try sidecar.openStore()
            defer { try? store.close() }
            #expect(try store.candidateSummaries().first?.compared == 3)
        }
    }

    /// The second request is not forwarded while the first one's answer is held at the
    /// baseline: both came in one write, and the first's copy reached the candidate (so the
    /// whole write was read and the first request handled), yet the baseline has seen one
    /// request until the test releases the first answer.
    @Test func aPipelinedRequestWaitsForTheAnswerBeforeIt() async throws {
        let gate = FixtureGate()
        let baselineUpstream = Upstream.responder { request in
            var response = FixtureResponse.json(#"{"uri":"\#(request.uri)"}"#)
            if request.uri == "/first" { response.gate = gate }
            return response
        }
        try await withSidecar(baseline: baselineUpstream, candidates: [("c", Self.echo)]) { sidecar, baseline, candidates in
            let connection = try RawConnection(port: sidecar.port)
            connection.send("GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            #expect(try await eventually { candidates[0]?.requestCount == 1 && baseline?.requestCount == 1 })
            #expect(baseline?.recentRequests.map(\.uri) == ["/first"], "the second waits for the first's answer")
            gate.open()
            let (response, closed) = await connection.receiveUntilClosed()
            #expect(Self.answeredURIs(response) == ["/first", "/second"], "\(response)")
            #expect(closed)
            #expect(baseline?.recentRequests.map(\.uri) == ["/first", "/second"])
        }
    }

    /// More pipelined requests than may wait at once: reading stops and resumes as they are
    /// answered, and every one is answered, in order.
    @Test func aPipelinedFloodIsAnsweredInFullAndInOrder() async throws {
        try await withSidecar(baseline: Self.echo) { sidecar, baseline, _ in
            let count = PipelinedRequests.maximumEvents * 4
            let uris = (0..<count).map { String(format: "/r%04d", $0) }
            let requests = uris.enumerated().map { index, uri in
                "GET \(uri) HTTP/1.1\r\nHost: a\r\n\(index == count - 1 ? "Connection: close\r\n" : "")\r\n"
            }
            let (response, closed) = await rawExchange(port: sidecar.port, Array(requests.joined().utf8))
            #expect(Self.answeredURIs(response) == uris)
            #expect(closed)
            #expect(baseline?.requestCount == count)
        }
    }

    /// A malformed request behind a good one: the good one is answered first, then the 400,
    /// and nothing after the malformed bytes is read.
    @Test func aMalformedRequestBehindAGoodOneIsRejectedAfterItsAnswer() async throws {
        try await withSidecar(baseline: Self.echo) { sidecar, baseline, _ in
            let requests = "GET /ok HTTP/1.1\r\nHost: a\r\n\r\nTHIS IS NOT HTTP\r\n\r\nGET /never HTTP/1.1\r\nHost: a\r\n\r\n"
            let (response, closed) = await rawExchange(port: sidecar.port, Array(requests.utf8))
            let ok = try #require(response.range(of: "HTTP/1.1 200"))
            let rejected = try #require(response.range(of: "HTTP/1.1 400"))
            #expect(ok.lowerBound < rejected.lowerBound)
            #expect(Self.answeredURIs(response) == ["/ok"])
            #expect(closed)
            #expect(baseline?.recentRequests.map(\.uri) == ["/ok"])
        }
    }
}

/// The pipelining state on its own: what waits, in what order, and when reading should stop.
@Suite struct PipelinedRequestsTests {
    @Test func eventsWaitBehindAnAnswerAndGoOnInOrderAfterIt() {
        var pipelined = PipelinedRequests()
        #expect(!pipelined.mustWait, "nothing in flight: handled at once")
        pipelined.requestEnded()
        #expect(pipelined.mustWait)
        pipelined.hold(.part(.end(nil)))
        #expect(pipelined.next() == nil, "an answer is going out")
        pipelined.answerEnded()
        #expect(pipelined.mustWait, "others still wait before what comes now")
        pipelined.hold(.error(.invalidVersion))
        guard case .part(.end) = pipelined.next() else {
            Issue.record("the first event kept goes first")
            return
        }
        guard case .error(.invalidVersion) = pipelined.next() else {
            Issue.record("then the second")
            return
        }
        #expect(pipelined.next() == nil && pipelined.isEmpty)
    }

    @Test func readingStopsAtTheEventOrByteBound() {
        var byEvents = PipelinedRequests()
        byEvents.requestEnded()
        for _ in 0..<PipelinedRequests.maximumEvents - 1 { byEvents.hold(.part(.end(nil))) }
        #expect(!byEvents.isFull)
        byEvents.hold(.part(.end(nil)))
        #expect(byEvents.isFull)
        byEvents.answerEnded()
        _ = byEvents.next()
        #expect(!byEvents.isFull)

        var byBytes = PipelinedRequests()
        byBytes.requestEnded()
        byBytes.hold(.part(.body(ByteBuffer(repeating: 0, count: PipelinedRequests.maximumBytes))))
        #expect(byBytes.isFull)
        byBytes.removeAll()
        #expect(!byBytes.isFull && byBytes.isEmpty)
    }
}
