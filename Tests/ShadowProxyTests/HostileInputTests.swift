import Foundation
import ShadowCore
import ShadowFixtures
import ShadowStore
import Synchronization
import Testing

@testable import ShadowProxy

/// Bad HTTP gets a clear 4xx and a closed connection; none of it reaches an upstream.
@Suite(.timeLimit(.minutes(2))) struct HostileInputTests {
    static func request(_ text: String) -> [UInt8] { Array(text.utf8) }

    static let cases: [(name: String, bytes: [UInt8], status: String)] = [
        ("declared body above the limit", request("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n"), "413"),
        (
            "chunked body above the limit",
            request(
                "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n" + String(repeating: "a", count: 2048) + "\r\n0\r\n\r\n"
            ), "413"
        ),
        ("oversized headers", request("GET /x HTTP/1.1\r\nHost: a\r\nX-Big: " + String(repeating: "b", count: 4096) + "\r\n\r\n"), "431"),
        ("garbage request line", request("THIS IS NOT HTTP\r\n\r\n"), "400"),
        (
            "content-length and transfer-encoding",
            request("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), "400"
        ),
        ("conflicting content-lengths", request("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde"), "400"),
        ("unknown transfer coding", request("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"), "400"),
        ("absolute-form target", request("GET http://internal.example/admin HTTP/1.1\r\nHost: a\r\n\r\n"), "400"),
        ("invalid chunk size", request("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n"), "400"),
        ("obs-fold header", request("GET /x HTTP/1.1\r\nHost: a\r\nX-A: one\r\n two\r\n\r\n"), "400"),
        ("NUL in a header value", request("GET /x HTTP/1.1\r\nHost: a\r\nX-A: o\u{0}ne\r\n\r\n"), "400"),
    ]

    @Test(arguments: 0..<cases.count)
    func isRejectedAndNeverForwarded(index: Int) async throws {
        let testCase = Self.cases[index]
        try await withSidecar(
            baseline: .responder { _ in .json("{}") },
            candidates: [("c", .responder { _ in .json("{}") })],
            configure: { configuration in
                configuration.limits.maxRequestBody = 1024
                configuration.limits.mirrorMaxBody = 1024
                configuration.limits.maxHeaderBytes = 2048
            }
        ) { sidecar, baseline, candidates in
            let (response, closed) = await rawExchange(port: sidecar.port, testCase.bytes)
            #expect(response.hasPrefix("HTTP/1.1 \(testCase.status)"), "\(testCase.name): got \(response.prefix(80))")
            #expect(closed, "\(testCase.name): the connection must be closed")
            await sidecar.stop()
            // The baseline call starts when a head is accepted, so counting complete requests
            // would miss a head forwarded and then abandoned: no connection, no byte.
            #expect(baseline?.connectionCount == 0 && baseline?.bodyBytesReceived == 0, "\(testCase.name) reached the baseline")
            #expect(candidates[0]?.connectionCount == 0, "\(testCase.name) reached the candidate")
            // The daemon is still healthy afterwards: it drained and stopped cleanly.
        }
    }

    @Test func theDaemonKeepsServingAfterHostileInput() async throws {
        try await withSidecar(baseline: .responder { _ in .json(#"{"ok":true}"#) }, configure: { $0.limits.maxHeaderBytes = 2048 }) { sidecar, _, _ in
            for testCase in Self.cases { _ = await rawExchange(port: sidecar.port, testCase.bytes, timeout: .seconds(2)) }
            let client = try await sidecar.client()
            #expect(try await client.send(path: "/fine").text == #"{"ok":true}"#)
            await client.close()
        }
    }

    /// A head dribbled one byte every third of the idle timeout is still cut: the timeout
    /// bounds the whole request, it is not re-armed by every byte. The dribbler would go on for
    /// 100 bytes (ten idle timeouts); the cut comes while it is still sending.
    @Test func aClientDribblingHeadersIsCutAtTheIdleTimeout() async throws {
        try await withSidecar(baseline: .responder { _ in .json("{}") }, configure: { $0.server.idleTimeout = .milliseconds(300) }) {
            sidecar,
            baseline,
            _ in
            let connection = try RawConnection(port: sidecar.port, timeout: .seconds(30))
            connection.send("GET /x HTTP/1.1\r\nHost: a\r\nX-Slow: ")
            let dribbled = dribble(connection, every: .milliseconds(100), bytes: 100)
            let (response, closed) = await connection.receiveUntilClosed()
            #expect(closed)
            #expect(dribbled.stop() < 100, "cut while the client was still sending")
            #expect(response.isEmpty || response.hasPrefix("HTTP/1.1 408"), "\(response.prefix(80))")
            #expect(baseline?.connectionCount == 0)
        }
    }

    @Test func expectContinueIsAnswered() async throws {
        try await withSidecar(baseline: .responder { request in .json(#"{"got":\#(request.body.count)}"#) }) { sidecar, _, _ in
            let head = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\nConnection: close\r\n\r\nabc"
            let (response, _) = await rawExchange(port: sidecar.port, Self.request(head))
            #expect(response.hasPrefix("HTTP/1.1 100 Continue"))
            #expect(response.contains(#"{"got":3}"#))
        }
    }
}

@Suite(.timeLimit(.minutes(3))) struct ConnectionLimitTests {
    @Test func connectionsBeyondTheLimitAreClosedAndTheOthersServed() async throws {
        try await withSidecar(
            baseline: .responder({ _ in .json("{}") }),
            configure: { $0.server.maxConnections = 5 }
        ) { sidecar, _, _ in
            var clients: [HTTPTestClient] = []
            for _ in 0..<5 { clients.append(try await HTTPTestClient.connect(port: sidecar.port)) }
            // The sidecar has registered all five before the sixth arrives.
            #expect(try await eventually { sidecar.sidecar.statistics.snapshot.openConnections == 5 })
            // The sixth is closed at once, before any request is answered.
            let extra = await rawExchange(port: sidecar.port, Array("GET /x HTTP/1.1\r\nhost: x\r\n\r\n".utf8), timeout: .seconds(2))
            #expect(extra.closed && extra.response.isEmpty, "\(extra)")
            for client in clients {
                #expect(try await client.send(path: "/x").status == 200)
                await client.close()
            }
            #expect(sidecar.sidecar.shared.statistics.refusedConnections.load(ordering: .relaxed) == 1)
            // Below the limit again: new connections are served.
            // Under a full parallel run the sidecar has been seen to take over 15 s to notice the
            // closes (a known residual: see the closing note); the release itself is what counts.
            #expect(try await eventually(within: .seconds(90)) { sidecar.sidecar.statistics.snapshot.openConnections == 0 })
            let later = try await HTTPTestClient.connect(port: sidecar.port)
            #expect(try await later.send(path: "/x").status == 200)
            await later.close()
            await sidecar.stop()
        }
    }
}
