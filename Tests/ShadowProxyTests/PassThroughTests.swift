import Foundation
import NIOCore
import NIOHTTP1
import ShadowCore
import ShadowFixtures
import ShadowStore
import Testing

@testable import ShadowProxy

/// The client gets the baseline's status, headers and bytes, whatever they are.
@Suite(.timeLimit(.minutes(2))) struct PassThroughTests {
    static let bigBody = randomBytes(5 << 20)

    static let baseline: FixtureServer.Responder = { request in
        switch request.uri {
        case "/created":
            return FixtureResponse(status: 201, headers: [("x-model", "base"), ("content-type", "text/plain")], body: Array("made".utf8))
        case "/binary":
            return FixtureResponse(headers: [("content-type", "application/octet-stream")], body: PassThroughTests.bigBody)
        case "/chunked":
            return FixtureResponse(
                headers: [("content-type", "text/event-stream")],
                mode: .chunked([Array("one ".utf8), Array("two ".utf8), Array("three".utf8)], pause: .milliseconds(30))
            )
        case "/unavailable":
            return FixtureResponse(status: 503, headers: [("retry-after", "7")], body: Array(#"{"error":"overloaded"}"#.utf8))
        case "/missing":
            return FixtureResponse(status: 404, body: Array("no such model".utf8))
        case "/upload":
            return .json(#"{"bytes":\#(request.body.count),"hash":"\#(StableHash.fnv1a64(request.body))"}"#)
        case "/empty":
            return FixtureResponse(status: 204)
        default:
            return .json(#"{"path":"\#(request.uri)"}"#)
        }
    }

    @Test func statusesHeadersAndBodiesPassThroughUnchanged() async throws {
        try await withSidecar(baseline: .responder(Self.baseline), candidates: [("c", .responder { _ in .json(#"{"candidate":true}"#) })]) {
            sidecar,
            _,
            _ in
            let client = try await sidecar.client()
            let created = try await client.send(method: .POST, path: "/created", body: Array("{}".utf8))
            #expect(created.status == 201)
            #expect(created.header("x-model") == "base")
            #expect(created.text == "made")

            let binary = try await client.send(path: "/binary")
            #expect(binary.status == 200)
            #expect(binary.body == Self.bigBody)
            #expect(binary.header("content-length") == String(Self.bigBody.count))

            let unavailable = try await client.send(path: "/unavailable")
            #expect(unavailable.status == 503)
            #expect(unavailable.header("retry-after") == "7")
            #expect(unavailable.text == #"{"error":"overloaded"}"#)

            let missing = try await client.send(path: "/missing")
            #expect(missing.status == 404 && missing.text == "no such model")

            let empty = try await client.send(path: "/empty")
            #expect(empty.status == 204 && empty.body.isEmpty)

            let query = try await client.send(path: "/echo?x=1&y=%20")
            #expect(query.text == #"{"path":"/echo?x=1&y=%20"}"#)
            await client.close()
        }
    }

    /// Requests reach upstreams as bytes, and the answer decoder still hears of each: an answer
    /// to HEAD announces a length but has no body, and the next answer on the same upstream
    /// connection is read from the right place.
    @Test func anAnswerToHEADEndsAtItsHeadAndTheConnectionGoesOn() async throws {
        try await withSidecar(baseline: .responder(Self.baseline), candidates: [("c", .responder(Self.baseline))]) { sidecar, baseline, candidates in
            let client = try await sidecar.client()
            for _ in 0..<3 {
                let head = try await client.send(method: .HEAD, path: "/binary")
                #expect(head.status == 200)
                #expect(head.header("content-length") == String(Self.bigBody.count))
                #expect(head.body.isEmpty)
                let created = try await client.send(method: .POST, path: "/created", body: Array("{}".utf8))
                #expect(created.status == 201)
                #expect(created.text == "made")
            }
            let chunkedUpload = try await client.send(
                method: .POST,
                path: "/upload",
                headers: [("transfer-encoding", "chunked")],
                body: Array(repeating: UInt8(ascii: "a"), count: 70_000)
            )
            #expect(chunkedUpload.text.contains(#""bytes":70000"#))
            #expect(baseline?.recentRequests.filter { $0.method == "HEAD" }.count == 3)
            #expect(try await eventually { candidates[0]!.recentRequests.filter { $0.method == "HEAD" }.count == 3 })
            let connections = baseline?.connectionCount ?? 0
            #expect(connections == 1, "one baseline connection carried every request")
        }
    }

    @Test func chunkedResponsesPassThroughWhole() async throws {
        try await withSidecar(baseline: .responder(Self.baseline)) { sidecar, _, _ in
            let client = try await sidecar.client()
            let response = try await client.send(path: "/chunked")
            #expect(response.text == "one two three")
            #expect(response.header("transfer-encoding") == "chunked")
            await client.close()
        }
    }

    /// Streamed, not buffered, proven by order: the baseline sends its first chunk and holds the
    /// rest until the test opens a gate; the client must have the first chunk while the last is
    /// still held (a buffering sidecar would give it nothing until the gate opened). For a plain
    /// chunked answer and a Server-Sent Events stream, with a candidate mirrored.
    @Test(arguments: ["application/octet-stream", "text/event-stream"])
    func chunksReachTheClientWhileTheBaselineStillHoldsTheRest(contentType: String) async throws {
        let gate = FixtureGate()
        let first = contentType == "text/event-stream" ? "data: {\"n\":1}\n\n" : "first-chunk "
        let last = contentType == "text/event-stream" ? "data: [DONE]\n\n" : "last-chunk"
        let answer: FixtureServer.Responder = { _ in
            FixtureResponse(
                headers: [("content-type", contentType)],
                mode: .gatedChunks(first: [Array(first.utf8)], gate: gate, rest: [Array(last.utf8)])
            )
        }
        try await withSidecar(baseline: .responder(answer), candidates: [("c", .responder { _ in .json("{}") })]) { sidecar, _, _ in
            let connection = try RawConnection(port: sidecar.port, timeout: .seconds(20))
            connection.send("GET /stream HTTP/1.1\r\nhost: x\r\n\r\n")
            var received = ""
            while !received.contains(first) {
                let bytes = await connection.receiveSome()
                guard !bytes.isEmpty else { break }
                received += String(decoding: bytes, as: UTF8.self)
            }
            #expect(received.contains(first), "the first chunk arrived before the gate opened: \(received)")
            #expect(!received.contains(last) && !received.hasSuffix("0\r\n\r\n"))
            gate.open()
            while !received.hasSuffix("0\r\n\r\n") {
                let bytes = await connection.receiveSome()
                guard !bytes.isEmpty else { break }
                received += String(decoding: bytes, as: UTF8.self)
            }
            #expect(received.contains(last) && received.hasSuffix("0\r\n\r\n"))
            connection.hangUp()
        }
    }

    @Test func largeRequestBodiesReachTheBaselineIntact() async throws {
        try await withSidecar(baseline: .responder(Self.baseline), candidates: [("c", .responder { _ in .json("{}") })]) {
            sidecar,
            baseline,
            candidates in
            let client = try await sidecar.client()
            let response = try await client.send(
                method: .POST,
                path: "/upload",
                headers: [("content-type", "application/octet-stream")],
                body: Self.bigBody
            )
            #expect(response.text == #"{"bytes":\#(Self.bigBody.count),"hash":"\#(StableHash.fnv1a64(Self.bigBody))"}"#)
            await client.close()
            await sidecar.stop()
            // Above limits.mirror_max_body (1 MiB): not mirrored, but counted.
            #expect(candidates[0]?.requestCount == 0)
            let store = try sidecar.openStore()
            #expect(try store.coverageTotals()["body_too_large"] == 1)
            try store.close()
        }
    }

    @Test func hopByHopHeadersAreStrippedBothWays() async throws {
        let baseline: FixtureServer.Responder = { _ in
            FixtureResponse(
                headers: [("x-hop", "secret"), ("connection", "x-hop"), ("keep-alive", "timeout=9"), ("x-end", "kept")],
                body: Array("ok".utf8)
            )
        }
        try await withSidecar(baseline: .responder(baseline), candidates: [("c", .responder { _ in .json("{}") })]) { sidecar, baseline, candidates in
            let client = try await sidecar.client()
            let response = try await client.send(
                path: "/x",
                headers: [
                    ("connection", "keep-alive, X-Client-Hop"), ("x-client-hop", "1"), ("keep-alive", "timeout=5"), ("te", "trailers"),
                    ("proxy-authorization", "Basic abc"), ("x-forwarded-for", "10.1.1.1"), ("x-end-to-end", "yes"), ("x-request-id", "req-42"),
                ]
            )
            #expect(response.status == 200)
            #expect(response.header("x-hop") == nil && response.header("keep-alive") == nil)
            #expect(response.header("x-end") == "kept")
            await client.close()
            await sidecar.stop()
            for server in [baseline, candidates[0]] {
                let seen = try #require(server?.recentRequests.last)
                for hop in ["x-client-hop", "keep-alive", "te", "proxy-authorization"] {
                    #expect(seen.header(hop) == nil, "\(hop) was forwarded")
                }
                #expect(seen.header("x-end-to-end") == "yes")
                #expect(seen.header("x-forwarded-for") == "10.1.1.1, 127.0.0.1")
                #expect(seen.header("x-forwarded-proto") == "http")
                #expect(seen.header("x-request-id") == "req-42")
            }
            #expect(candidates[0]?.recentRequests.last?.header("x-shadow-request") == "1")
            #expect(baseline?.recentRequests.last?.header("x-shadow-request") == nil)
            let store = try sidecar.openStore()
            #expect(try store.candidateSummaries().first?.pairs == 1)
            try store.close()
        }
    }

    @Test func aRequestIDIsGeneratedWhenMissingAndSharedByBothArms() async throws {
        try await withSidecar(baseline: .responder { _ in .json("{}") }, candidates: [("c", .responder { _ in .json("{}") })]) {
            sidecar,
            baseline,
            candidates in
            let client = try await sidecar.client()
            _ = try await client.send(path: "/a")
            await client.close()
            await sidecar.stop()
            let id = try #require(baseline?.recentRequests.last?.header("x-request-id"))
            #expect(id.count == 36)
            #expect(candidates[0]?.recentRequests.last?.header("x-request-id") == id)
        }
    }

    @Test func generatedRequestIDsAreTimeOrderedVersion7UUIDs() {
        var random = FastRandom()
        var seen = Set<String>()
        let start: Int64 = 1_764_000_000_000_000
        var previousMillisecond = ""
        for index in 0..<1_000 {
            let micros = start + Int64(index) * 1_000
            let id = RequestID.generate(using: &random, atMicros: micros)
            let uuid = UUID(uuidString: id)
            #expect(uuid?.uuidString.lowercased() == id)
            let characters = Array(id)
            #expect(characters[14] == "7" && "89ab".contains(characters[19]), "\(id) is not a version 7 UUID")
            // The first 48 bits are the Unix time in milliseconds.
            let millisecond = String(id.replacingOccurrences(of: "-", with: "").prefix(12))
            #expect(UInt64(millisecond, radix: 16) == UInt64(micros / 1_000))
            #expect(millisecond > previousMillisecond, "ids of later milliseconds sort after earlier ones")
            previousMillisecond = millisecond
            seen.insert(id)
        }
        #expect(seen.count == 1_000)
        // Within one millisecond the ids still differ.
        let sameMillisecond = Set((0..<1_000).map { _ in RequestID.generate(using: &random, atMicros: start) })
        #expect(sameMillisecond.count == 1_000)
    }

    @Test func unroutedPathsGet404AndAreCounted() async throws {
        try await withSidecar(
            baseline: .responder { _ in .json("{}") },
            configure: { $0.routes[0].prefix = "/v2/" }
        ) { sidecar, baseline, _ in
            let client = try await sidecar.client()
            let response = try await client.send(path: "/other")
            #expect(response.status == 404)
            #expect(response.text.contains(#""code":"no_route""#))
            // The connection stays usable.
            #expect(try await client.send(path: "/v2/x").status == 200)
            await client.close()
            await sidecar.stop()
            #expect(baseline?.requestCount == 1)
            let store = try sidecar.openStore()
            #expect(try store.coverageTotals()["unrouted"] == 1)
            #expect(try store.coverageTotals()["no_candidates"] == 1)
            try store.close()
        }
    }
}
