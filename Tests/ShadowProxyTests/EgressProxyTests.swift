import Foundation
import GRDB
import NIOHTTP1
import ShadowCore
import ShadowFixtures
import Testing

@testable import ShadowProxy

/// `upstreams.proxy`: connections to hosted upstreams go through a forward proxy's CONNECT
/// tunnel, TLS end to end inside it; `no_proxy` hosts (loopback by default) go direct.
@Suite(.timeLimit(.minutes(2))) struct EgressProxyTests {
    static let answer: FixtureServer.Responder = { _ in .json(#"{"label":"cat"}"#) }

    @Test func httpsUpstreamsAreReachedThroughTheProxysTunnel() async throws {
        let pki = try TLSUpstreamTests.PKI()
        defer { pki.remove() }
        let proxy = try await ConnectProxy.start()
        let context = try pki.server()
        try await withSidecar(
            baseline: .tls(context, Self.answer),
            candidates: [("hosted", .tls(context, Self.answer))],
            configure: { configuration in
                TLSUpstreamTests.useTLS(&configuration, UpstreamTLSConfiguration(caFile: .path(pki.caFile)))
                // Loopback upstreams stand in for hosted ones: nothing is exempt.
                configuration.egressProxy = EgressProxyConfiguration(host: "127.0.0.1", port: proxy.port, noProxy: [])
            }
        ) { sidecar, baseline, candidates in
            let client = try await sidecar.client()
            for _ in 0..<5 {
                let response = try await client.send(method: .POST, path: "/infer", body: Array("{}".utf8))
                #expect(response.status == 200 && response.text == #"{"label":"cat"}"#, "\(response.text)")
            }
            await client.close()
            #expect(try await eventually { sidecar.shadowPending == 0 })
            let baselinePort = try #require(baseline).port
            let candidatePort = try #require(candidates[0]).port
            let targets = proxy.targets
            #expect(targets.filter { $0 == "127.0.0.1:\(baselinePort)" }.count == 1, "one tunnel for the pooled baseline connection: \(targets)")
            #expect(targets.contains("127.0.0.1:\(candidatePort)"), "\(targets)")
            #expect(try #require(baseline).handshakeCount == 1)
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            let rows = try await waitForRows(queue, count: 5, sql: "SELECT outcome FROM pairs")
            try queue.close()
            #expect(rows.allSatisfy { $0["outcome"] as String? == "compared" }, "\(rows)")
        }
        try await proxy.stop()
    }

    @Test(arguments: [
        (ConnectProxy.Policy.deny, "refused CONNECT 127.0.0.1"),
        (.requireCredentials, "407 Proxy Authentication Required (the proxy wants credentials"),
    ])
    func aProxyThatWillNotTunnelIsNamedInThe502(policy: ConnectProxy.Policy, reason: String) async throws {
        let proxy = try await ConnectProxy.start(policy: policy)
        try await withSidecar(
            baseline: .responder(Self.answer),
            candidates: [("hosted", .responder(Self.answer))],
            configure: { $0.egressProxy = EgressProxyConfiguration(host: "127.0.0.1", port: proxy.port, noProxy: []) }
        ) { sidecar, _, _ in
            let client = try await sidecar.client()
            let response = try await client.send(method: .POST, path: "/infer", body: Array("{}".utf8))
            #expect(response.status == 502 && response.text.contains(reason), "\(response.text)")
            await client.close()
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            let row = try await waitForRow(queue, sql: "SELECT baseline_error, candidate_error FROM pairs")
            try queue.close()
            #expect(row["baseline_error"] as String? == "refused" && row["candidate_error"] as String? == "refused")
        }
        try await proxy.stop()
    }

    @Test func loopbackUpstreamsGoDirectByDefault() async throws {
        let proxy = try await ConnectProxy.start(policy: .deny)
        try await withSidecar(
            baseline: .responder(Self.answer),
            configure: { $0.egressProxy = EgressProxyConfiguration(host: "127.0.0.1", port: proxy.port) }
        ) { sidecar, _, _ in
            let client = try await sidecar.client()
            #expect(try await client.send(method: .POST, path: "/infer", body: Array("{}".utf8)).status == 200)
            await client.close()
        }
        #expect(proxy.targets.isEmpty)
        try await proxy.stop()
    }
}
