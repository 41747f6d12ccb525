import Foundation
import GRDB
import ShadowCore
import ShadowFixtures
import ShadowStore
import Testing

@testable import ShadowProxy

/// Request bodies stream to the baseline as they arrive; the candidates get a copy of the whole
/// request (up to `limits.mirror_max_body`) once it has ended.
@Suite(.timeLimit(.minutes(2))) struct UploadStreamingTests {
    /// Answers with the size and hash of the body it received.
    static let echo: FixtureServer.Responder = { request in
        .json(#"{"bytes":\#(request.body.count),"hash":"\#(StableHash.fnv1a64(request.body))"}"#)
    }

    static func chunk(_ bytes: [UInt8]) -> [UInt8] {
        Array((String(bytes.count, radix: 16) + "\r\n").utf8) + bytes + Array("\r\n".utf8)
    }

    static let head = "POST /upload HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"

    /// A JSON document of exactly `size` bytes split in two halves.
    static func document(size: Int) -> (first: [UInt8], second: [UInt8]) {
        let text = #"{"data":""# + String(repeating: "x", count: size - 11) + #""}"#
        let bytes = Array(text.utf8)
        return (Array(bytes[0..<(size / 2)]), Array(bytes[(size / 2)...]))
    }

    @Test func aChunkedUploadReachesTheBaselineBeforeItEndsAndTheCandidateGetsTheWholeCopy() async throws {
        let (first, second) = Self.document(size: 32_768)
        let whole = first + second
        try await withSidecar(baseline: .responder(Self.echo), candidates: [("c", .responder(Self.echo))]) { sidecar, baseline, candidates in
            let connection = try RawConnection(port: sidecar.port)
            connection.send(Array(Self.head.utf8) + Self.chunk(first))
            // The first half is at the baseline while the client still holds the second.
            let streamed = try await eventually { (baseline?.bodyBytesReceived ?? 0) >= first.count }
            #expect(streamed, "the baseline saw \(baseline?.bodyBytesReceived ?? 0) bytes before the upload ended")
            #expect(candidates[0]?.bodyBytesReceived == 0, "the candidate must wait for the whole request")
            connection.send(Self.chunk(second) + Array("0\r\n\r\n".utf8))
            let (response, _) = await connection.receiveUntilClosed()
            #expect(response.hasPrefix("HTTP/1.1 200"))
            #expect(response.hasSuffix(#"{"bytes":32768,"hash":"\#(StableHash.fnv1a64(whole))"}"#))
            await sidecar.stop()

            let baselineRequest = try #require(baseline?.recentRequests.last)
            #expect(baselineRequest.header("transfer-encoding") == "chunked" && baselineRequest.header("content-length") == nil)
            let candidateRequest = try #require(candidates[0]?.recentRequests.last)
            #expect(candidateRequest.body == whole)
            #expect(candidateRequest.header("content-length") == "32768" && candidateRequest.header("transfer-encoding") == nil)
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            try await queue.read { db in
                let row = try #require(
                    try Row.fetchOne(
                        db,
                        sql: "SELECT e.request_body_bytes, p.divergence FROM exchanges e JOIN pairs p ON p.request_id = e.request_id"
                    )
                )
                #expect(row["request_body_bytes"] as Int? == 32_768 && row["divergence"] as Double? == 0)
            }
            try queue.close()
        }
    }

    @Test func anUploadAboveTheMirrorLimitReachesTheBaselineWholeAndIsCountedNotMirrored() async throws {
        let (first, second) = Self.document(size: 32_768)
        try await withSidecar(
            baseline: .responder(Self.echo),
            candidates: [("c", .responder(Self.echo))],
            configure: { $0.limits.mirrorMaxBody = 8_192 }
        ) { sidecar, baseline, candidates in
            let connection = try RawConnection(port: sidecar.port)
            connection.send(Array(Self.head.utf8) + Self.chunk(first) + Self.chunk(second) + Array("0\r\n\r\n".utf8))
            let (response, _) = await connection.receiveUntilClosed()
            #expect(response.hasSuffix(#"{"bytes":32768,"hash":"\#(StableHash.fnv1a64(first + second))"}"#))
            await sidecar.stop()
            #expect(candidates[0]?.requestCount == 0)
            let store = try sidecar.openStore()
            #expect(try store.coverageTotals()["body_too_large"] == 1)
            try store.close()
        }
    }

    @Test func anUploadGrowingPastTheBodyLimitGets413AndTheBaselineNeverSeesItEnd() async throws {
        try await withSidecar(
            baseline: .responder(Self.echo),
            candidates: [("c", .responder(Self.echo))],
            configure: { configuration in
                configuration.limits.maxRequestBody = 16_384
                configuration.limits.mirrorMaxBody = 16_384
            }
        ) { sidecar, baseline, candidates in
            let connection = try RawConnection(port: sidecar.port)
            connection.send(Array(Self.head.utf8) + Self.chunk([UInt8](repeating: 0x61, count: 8_192)))
            #expect(try await eventually { (baseline?.bodyBytesReceived ?? 0) >= 8_192 })
            connection.send(Self.chunk([UInt8](repeating: 0x61, count: 12_000)))
            let (response, closed) = await connection.receiveUntilClosed()
            #expect(response.hasPrefix("HTTP/1.1 413"), "got \(response.prefix(80))")
            #expect(response.contains("max_request_body") || response.contains("body_too_large"))
            #expect(closed)
            await sidecar.stop()
            // The baseline's connection was closed mid-body: it never got a complete request.
            #expect(baseline?.requestCount == 0)
            #expect(candidates[0]?.requestCount == 0)
        }
    }

    @Test func aClientLeavingMidUploadEndsTheBaselineCallAndLeavesNothingBehind() async throws {
        try await withSidecar(baseline: .responder(Self.echo), candidates: [("c", .responder(Self.echo))]) { sidecar, baseline, candidates in
            let connection = try RawConnection(port: sidecar.port)
            connection.send(Array(Self.head.utf8) + Self.chunk([UInt8](repeating: 0x61, count: 4_096)))
            #expect(try await eventually { (baseline?.bodyBytesReceived ?? 0) >= 4_096 })
            connection.hangUp()
            #expect(try await eventually { sidecar.sidecar.shared.statistics.snapshot.openConnections == 0 })
            await sidecar.stop()
            #expect(baseline?.requestCount == 0 && candidates[0]?.requestCount == 0)
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            #expect(try await queue.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM exchanges") } == 0)
            try queue.close()
        }
    }

    @Test func aSlowUploadIsCutAtTheIdleTimeoutWith408() async throws {
        try await withSidecar(
            baseline: .responder(Self.echo),
            configure: { $0.server.idleTimeout = .milliseconds(500) }
        ) { sidecar, baseline, _ in
            let connection = try RawConnection(port: sidecar.port, timeout: .seconds(30))
            connection.send(Array(Self.head.utf8) + Self.chunk(Array("{\"a\":".utf8)))
            // One byte (a one-byte chunk) every third of the timeout: the upload is still cut,
            // while the client keeps sending (the timeout is not re-armed by each read).
            let dribbled = dribble(connection, every: .milliseconds(166), bytes: 60) { _ in Self.chunk(Array(" ".utf8)) }
            let (response, closed) = await connection.receiveUntilClosed()
            #expect(dribbled.stop() < 60, "cut while the client was still sending")
            #expect(response.hasPrefix("HTTP/1.1 408"), "got \(response.prefix(80))")
            #expect(closed)
            await sidecar.stop()
            #expect(baseline?.requestCount == 0)
        }
    }
}

/// A client that leaves before the baseline answers: the baseline call ends at once, and the
/// shadow copy already sent is still recorded, marked as the client's doing.
@Suite(.timeLimit(.minutes(2))) struct ClientDisconnectTests {
    @Test func aClientLeavingBeforeTheBaselineAnswersCancelsItAndTheShadowCopyIsStillRecorded() async throws {
        try await withSidecar(
            baseline: .responder { _ in .json(#"{"label":"cat"}"#, delay: .seconds(30)) },
            candidates: [("c", .responder { _ in .json(#"{"label":"cat"}"#) })]
        ) { sidecar, baseline, candidates in
            let connection = try RawConnection(port: sidecar.port)
            let body = #"{"inputs":[1]}"#
            connection.send("POST /infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: \(body.utf8.count)\r\n\r\n\(body)")
            #expect(try await eventually { candidates[0]?.requestCount == 1 && baseline?.requestCount == 1 })
            let left = ContinuousClock.now
            connection.hangUp()
            #expect(try await eventually { sidecar.sidecar.shared.statistics.snapshot.openConnections == 0 })
            // The baseline would answer after 30 s; the sidecar let go of it when the client left
            // (the margin is wide: a loaded machine notices the hang-up seconds late).
            #expect(ContinuousClock.now - left < .seconds(20))
            await sidecar.stop()
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            defer { try? queue.close() }
            try await queue.read { db in
                let row = try #require(try Row.fetchOne(db, sql: "SELECT baseline_error, baseline_latency_us, candidate_status, outcome FROM pairs"))
                #expect(row["baseline_error"] as String? == "client_closed" && row["outcome"] as String? == "client_closed")
                #expect(row["candidate_status"] as Int? == 200, "the shadow copy's answer is kept")
                #expect((row["baseline_latency_us"] as Int64? ?? .max) < 20_000_000)
            }
        }
    }
}
