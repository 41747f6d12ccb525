import Foundation
import GRDB
import NIOHTTP1
import ShadowCore
import ShadowFixtures
import Testing

@testable import ShadowProxy

#if canImport(Glibc)
import Glibc
#endif

/// OpenAI-compatible streams through the sidecar: pass-through, timing, tokens, cost, faults.
@Suite(.timeLimit(.minutes(3))) struct StreamingEndToEndTests {
    static let request = Array(
        #"{"model":"assistant","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"tell me"}]}"#.utf8
    )

    static func llm(version: String, firstTokenDelay: Duration? = nil) -> ModelFixture {
        var spec = ModelSpec(name: "assistant", version: version, seed: 11, api: .openAI)
        spec.tokenRate = 50
        spec.firstTokenDelay = firstTokenDelay
        return ModelFixture(spec: spec)
    }

    static func configureChat(_ configuration: inout ShadowCore.Configuration) {
        configuration.routes[0].scorer = ScorerConfiguration(kind: .text, outputProtocol: .openAI)
        configuration.routes[0].baseline.cost = CostConfiguration(per1kPromptTokens: 0.15, per1kCompletionTokens: 0.6)
        for index in configuration.routes[0].candidates.indices {
            configuration.routes[0].candidates[index].cost = CostConfiguration(perRequest: 0.001, per1kCompletionTokens: 0.4)
        }
    }

    @Test func aStreamPassesThroughChunkByChunkAndIsRecordedWithTimingTokensAndCost() async throws {
        let baseline = Self.llm(version: "1")
        try await withSidecar(
            baseline: .responder(baseline.responder),
            candidates: [("next", .responder(Self.llm(version: "1", firstTokenDelay: .milliseconds(100)).responder))],
            configure: Self.configureChat
        ) { sidecar, baselineServer, _ in
            let client = try await HTTPTestClient.connect(port: sidecar.port)
            let response = try await client.send(
                method: .POST,
                path: "/v1/chat/completions",
                headers: [("content-type", "application/json")],
                body: Self.request
            )
            await client.close()
            let direct = try await HTTPTestClient.connect(port: try #require(baselineServer?.port))
            let expected = try await direct.send(
                method: .POST,
                path: "/v1/chat/completions",
                headers: [("content-type", "application/json")],
                body: Self.request
            )
            await direct.close()
            #expect(response.status == 200 && response.body == expected.body, "the client gets the baseline's stream byte for byte")
            #expect(response.headers.contains { $0.name.lowercased() == "content-type" && $0.value == "text/event-stream" })
            // Streamed, not buffered, is proven by order in
            // PassThroughTests.chunksReachTheClientWhileTheBaselineStillHoldsTheRest.
            #expect(response.bodyParts > 5)
            await sidecar.stop()
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            try await queue.read { db in
                let row = try #require(try Row.fetchOne(db, sql: "SELECT * FROM pairs"))
                let events = String(decoding: expected.body, as: UTF8.self).components(separatedBy: "\n\n").filter { !$0.isEmpty }.count
                #expect(row["baseline_events"] as Int? == events && row["candidate_events"] as Int? == events)
                let firstToken = try #require(row["baseline_first_token_us"] as Int64?)
                let total = try #require(row["baseline_latency_us"] as Int64?)
                #expect(firstToken > 0 && firstToken < total - 100_000)
                #expect((row["candidate_first_token_us"] as Int64? ?? 0) >= 100_000, "the candidate's slower first token")
                let prompt = try #require(row["baseline_prompt_tokens"] as Double?)
                let completion = try #require(row["baseline_completion_tokens"] as Double?)
                #expect(abs((row["baseline_cost"] as Double? ?? -1) - (prompt * 0.15 + completion * 0.6) / 1000) < 1e-12)
                #expect(
                    abs((row["candidate_cost"] as Double? ?? -1) - (0.001 + (row["candidate_completion_tokens"] as Double? ?? 0) * 0.4 / 1000))
                        < 1e-12
                )
                // Paced at 50 tokens/s by the fixture: never faster (a loaded machine makes it slower).
                let rate = row["baseline_tokens_per_second"] as Double? ?? 0
                #expect(rate > 0 && rate < 75, "\(rate) tokens/s")
                #expect(row["divergence"] as Double? == 0, "the same answer streamed: \(row["explanation"] as String? ?? "")")
            }
            try queue.close()
        }
    }

    @Test func aCandidateStreamThatStallsIsBoundedByItsTimeoutAndNeverSlowsTheClient() async throws {
        let stalled: FixtureServer.Responder = { _ in
            FixtureResponse(
                headers: [("content-type", "text/event-stream")],
                mode: .chunked(
                    [Array("data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n".utf8), Array("data: [DONE]\n\n".utf8)],
                    pause: .seconds(3600)
                )
            )
        }
        try await withSidecar(
            baseline: .responder(Self.llm(version: "1").responder),
            candidates: [("stalls", .responder(stalled))],
            configure: {
                Self.configureChat(&$0)
                // Long enough that a loaded machine answers the client well before it.
                $0.routes[0].candidates[0].timeout = .seconds(10)
            }
        ) { sidecar, _, _ in
            let client = try await HTTPTestClient.connect(port: sidecar.port)
            let response = try await client.send(method: .POST, path: "/v1/chat/completions", body: Self.request)
            await client.close()
            // The client's answer never waits for the candidate's 10 s timeout: it is in while the
            // candidate's copy is still pending.
            #expect(response.status == 200)
            #expect(sidecar.shadowPending == 1, "the copy was still waiting when the client had its answer")
            #expect(try await eventually(within: .seconds(30)) { sidecar.shadowPending == 0 })
            await sidecar.stop()
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            try await queue.read { db in
                let row = try #require(try Row.fetchOne(db, sql: "SELECT candidate_error, candidate_first_byte_us, candidate_latency_us FROM pairs"))
                #expect(row["candidate_error"] as String? == "timeout")
                #expect(row["candidate_first_byte_us"] as Int64? != nil, "its first event did arrive")
                #expect((row["candidate_latency_us"] as Int64? ?? 0) >= 10_000_000)
            }
            try queue.close()
        }
    }

    @Test func aMalformedCandidateStreamIsScoredAndSaysSo() async throws {
        let malformed: FixtureServer.Responder = { _ in
            FixtureResponse(
                headers: [("content-type", "text/event-stream")],
                body: Array("data: {\"choices\":[{\"delta\":{\"content\":\"hi\"\n\ndata: not json either\n\n".utf8)
            )
        }
        try await withSidecar(
            baseline: .responder(Self.llm(version: "1").responder),
            candidates: [("broken", .responder(malformed))],
            configure: Self.configureChat
        ) { sidecar, _, _ in
            let client = try await HTTPTestClient.connect(port: sidecar.port)
            #expect(try await client.send(method: .POST, path: "/v1/chat/completions", body: Self.request).status == 200)
            await client.close()
            await sidecar.stop()
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            try await queue.read { db in
                let row = try #require(try Row.fetchOne(db, sql: "SELECT divergence, diverged, explanation, candidate_events FROM pairs"))
                #expect(row["diverged"] as Int? == 1 && row["candidate_events"] as Int? == 2)
                #expect((row["explanation"] as String? ?? "").contains(#""candidate_stream":"2 event(s) not JSON; no [DONE] event""#))
            }
            try queue.close()
        }
    }

    /// The official `openai` client closes the connection as soon as it has read `data: [DONE]`,
    /// before the response's terminating chunk. The baseline here holds that chunk (a gate the
    /// test never opens) and the client hangs up right after `[DONE]`: the pair is complete and
    /// compared, priced, and a candidate whose stream was cut halfway is a candidate error.
    @Test(arguments: [false, true])
    func aClientClosingRightAfterDoneLeavesAComparedPair(candidateCut: Bool) async throws {
        let events = [
            #"{"object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"the"}}]}"#,
            #"{"object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":" cat"}}]}"#,
            #"{"object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            #"{"object":"chat.completion.chunk","model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#,
            "[DONE]",
        ].map { Array("data: \($0)\n\n".utf8) }
        let held = FixtureGate()
        let baseline: FixtureServer.Responder = { _ in
            FixtureResponse(headers: [("content-type", "text/event-stream")], mode: .gatedChunks(first: events, gate: held, rest: []))
        }
        let candidate: FixtureServer.Responder = { _ in
            FixtureResponse(
                headers: [("content-type", "text/event-stream")],
                mode: candidateCut ? .chunkedThenClose(Array(events.prefix(2)), pause: .zero) : .chunked(events, pause: .zero)
            )
        }
        try await withSidecar(baseline: .responder(baseline), candidates: [("next", .responder(candidate))], configure: Self.configureChat) {
            sidecar,
            _,
            _ in
            let connection = try RawConnection(port: sidecar.port, timeout: .seconds(20))
            let head =
                "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: \(Self.request.count)\r\n\r\n"
            connection.send(Array(head.utf8) + Self.request)
            var received = ""
            while !received.contains("data: [DONE]\n\n") {
                let bytes = await connection.receiveSome()
                guard !bytes.isEmpty else { break }
                received += String(decoding: bytes, as: UTF8.self)
            }
            #expect(received.contains("data: [DONE]\n\n") && !received.hasSuffix("0\r\n\r\n"), "the terminating chunk is still held")
            connection.hangUp()
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            let row = try await waitForRow(
                queue,
                sql: """
                    SELECT outcome, baseline_error, candidate_error, diverged, baseline_cost, baseline_events, baseline_completion_tokens
                    FROM pairs
                    """
            )
            try queue.close()
            #expect(row["baseline_error"] as String? == nil, "the client had the whole answer")
            #expect(row["outcome"] as String? == (candidateCut ? "candidate_error" : "compared"))
            #expect(row["candidate_error"] as String? == (candidateCut ? "reset" : nil))
            #expect(row["baseline_events"] as Int? == 5 && row["baseline_completion_tokens"] as Double? == 2)
            #expect(abs((row["baseline_cost"] as Double? ?? -1) - (5 * 0.15 + 2 * 0.6) / 1000) < 1e-12, "priced: the usage was read")
            if !candidateCut { #expect(row["diverged"] as Int? == 0) }
            held.open()
        }
    }

    @Test func aClientLeavingMidStreamEndsTheBaselineCallAndTheRecordSaysSo() async throws {
        let slow: FixtureServer.Responder = { _ in
            FixtureResponse(
                headers: [("content-type", "text/event-stream")],
                mode: .chunked(
                    (0..<100).map { Array("data: {\"choices\":[{\"delta\":{\"content\":\"w\($0) \"}}]}\n\n".utf8) },
                    pause: .milliseconds(100)
                )
            )
        }
        try await withSidecar(baseline: .responder(slow), candidates: [("c", .responder(slow))], configure: Self.configureChat) {
            sidecar,
            baselineServer,
            _ in
            // A raw client: send, read the first bytes of the stream, hang up.
            let connection = try RawConnection(port: sidecar.port)
            let head =
                "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: \(Self.request.count)\r\n\r\n"
            connection.send(Array(head.utf8) + Self.request)
            let first = await connection.receiveSome()
            #expect(!first.isEmpty)
            connection.hangUp()
            // The baseline would take 10 s; the sidecar drops its call when the client leaves.
            #expect(try await eventually { sidecar.sidecar.shared.statistics.snapshot.openConnections == 0 })
            await sidecar.stop()
            #expect((baselineServer?.requestCount ?? 0) == 1)
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            try await queue.read { db in
                let row = try #require(try Row.fetchOne(db, sql: "SELECT baseline_error, outcome, baseline_latency_us FROM pairs"))
                #expect(row["baseline_error"] as String? == "client_closed" && row["outcome"] as String? == "client_closed")
                // Well before the stream's end (a loaded machine notices the hang-up late).
                #expect((row["baseline_latency_us"] as Int64? ?? .max) < 8_000_000)
            }
            try queue.close()
        }
    }
}
