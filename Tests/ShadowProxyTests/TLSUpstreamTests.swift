import Foundation
import GRDB
import NIOHTTP1
import NIOSSL
import ShadowCore
import ShadowFixtures
import Testing

@testable import ShadowProxy

/// HTTPS upstreams against real TLS servers on loopback, with certificates made at test time:
/// bytes through unchanged, one handshake per pooled connection, every bad peer named (`tls`
/// or `connect_timeout`) and never felt by the client beyond a 502 for the baseline.
@Suite(.timeLimit(.minutes(3))) struct TLSUpstreamTests {
    static let answer: FixtureServer.Responder = { request in .json(#"{"label":"cat","n":\#(request.body.count)}"#) }

    /// A CA, a server certificate for 127.0.0.1/localhost and the CA written as a `ca_file`.
    struct PKI {
        let authority: TestCertificateAuthority
        let directory: String
        let caFile: String

        init() throws {
            self.authority = try TestCertificateAuthority()
            self.directory = NSTemporaryDirectory() + "shadowd-tls-" + UUID().uuidString
            try FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true)
            self.caFile = self.directory + "/ca.pem"
            try self.authority.certificatePEM.write(toFile: self.caFile, atomically: true, encoding: .utf8)
        }

        func server(_ certificate: IssuedCertificate? = nil, clientCA: String? = nil) throws -> NIOSSLContext {
            let certificate = try certificate ?? self.authority.issue()
            return try .fixtureServer(certificatePEM: certificate.certificatePEM, keyPEM: certificate.privateKeyPEM, clientCAPEM: clientCA)
        }

        func remove() { try? FileManager.default.removeItem(atPath: self.directory) }
    }

    /// Points the baseline and every candidate of route 0 at `https://` with `tls`.
    static func useTLS(_ configuration: inout ShadowCore.Configuration, _ tls: UpstreamTLSConfiguration, candidatesToo: Bool = true) {
        var route = configuration.routes[0]
        route.baseline.url.usesTLS = true
        route.baseline.tls = tls
        // Handshakes on a loaded machine: generous, tests about timeouts set their own.
        route.baseline.connectTimeout = .seconds(10)
        if candidatesToo {
            for index in route.candidates.indices {
                route.candidates[index].url.usesTLS = true
                route.candidates[index].tls = tls
                route.candidates[index].connectTimeout = .seconds(10)
            }
        }
        configuration.routes[0] = route
    }

    @Test func httpsUpstreamsForwardUnchangedAndAPooledConnectionHandshakesOnce() async throws {
        let pki = try PKI()
        defer { pki.remove() }
        let context = try pki.server()
        try await withSidecar(
            baseline: .tls(context, Self.answer),
            candidates: [("hosted", .tls(context, Self.answer))],
            configure: { Self.useTLS(&$0, UpstreamTLSConfiguration(caFile: .path(pki.caFile))) }
        ) { sidecar, baseline, candidates in
            let client = try await sidecar.client()
            for index in 0..<20 {
                let body = Array(String(repeating: "x", count: index).utf8)
                let response = try await client.send(method: .POST, path: "/infer", body: body)
                #expect(response.status == 200 && response.text == #"{"label":"cat","n":\#(index)}"#, "\(response.text)")
            }
            await client.close()
            #expect(try await eventually { sidecar.shadowPending == 0 })
            let baseline = try #require(baseline)
            let candidate = try #require(candidates[0])
            #expect(baseline.requestCount == 20 && candidate.requestCount == 20)
            #expect(baseline.handshakeCount == 1, "one client connection, one pooled upstream connection, one handshake")
            #expect(candidate.handshakeCount == candidate.connectionCount, "copies overlap, so several connections; one handshake each")
            #expect(sidecar.sidecar.statistics.snapshot.tlsHandshakes == baseline.handshakeCount + candidate.handshakeCount)
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            let rows = try await waitForRows(queue, count: 20, sql: "SELECT outcome, diverged FROM pairs")
            try queue.close()
            #expect(rows.allSatisfy { $0["outcome"] as String? == "compared" && $0["diverged"] as Int? == 0 }, "\(rows)")
        }
    }

    /// A host name, as hosted endpoints have: resolved when connecting (not at start), sent as
    /// SNI and checked against the certificate's names; `server_name` overrides what is checked.
    @Test func aHostNameIsResolvedAtConnectAndVerifiedByName() async throws {
        let pki = try PKI()
        defer { pki.remove() }
        let byName = try pki.authority.issue(commonName: "models.internal", dnsNames: ["localhost", "models.internal"], ipAddresses: [])
        try await withSidecar(
            baseline: .tls(try pki.server(byName), Self.answer),
            candidates: [("internal", .tls(try pki.server(byName), Self.answer))],
            configure: { configuration in
                Self.useTLS(&configuration, UpstreamTLSConfiguration(caFile: .path(pki.caFile)))
                configuration.routes[0].baseline.url.host = "localhost"
                // An address in the URL, the certificate's name to check.
                configuration.routes[0].candidates[0].tls?.serverName = "models.internal"
            }
        ) { sidecar, baseline, candidates in
            let client = try await sidecar.client()
            #expect(try await client.send(method: .POST, path: "/infer", body: Array("{}".utf8)).status == 200)
            await client.close()
            #expect(baseline?.recentRequests.last?.header("host")?.hasPrefix("localhost:") == true)
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            let row = try await waitForRow(queue, sql: "SELECT outcome FROM pairs")
            try queue.close()
            #expect(row["outcome"] as String? == "compared")
            #expect(candidates[0]?.handshakeCount == 1)
        }
    }

    /// Mutual TLS to an internal model service: the server only talks to holders of a
    /// certificate its CA issued; the sidecar presents the one configured.
    @Test func aClientCertificateOpensMutualTLSAndAMissingOneIsNamed() async throws {
        let pki = try PKI()
        defer { pki.remove() }
        let clients = try TestCertificateAuthority(commonName: "client CA")
        let context = try pki.server(clientCA: clients.certificatePEM)
        let (certificate, _) = try clients.issue(commonName: "shadowd", usage: .client).write(to: pki.directory, name: "client")
        try await withSidecar(
            baseline: .tls(context, Self.answer),
            candidates: [("internal", .tls(context, Self.answer))],
            configure: { configuration in
                Self.useTLS(&configuration, UpstreamTLSConfiguration(caFile: .path(pki.caFile)))
                configuration.routes[0].baseline.tls?.clientCertificate = .path(certificate)
                configuration.routes[0].baseline.tls?.clientKey = .credential("client.key")
            },
            environment: ["CREDENTIALS_DIRECTORY": pki.directory]
        ) { sidecar, _, _ in
            let client = try await sidecar.client()
            #expect(try await client.send(method: .POST, path: "/infer", body: Array("{}".utf8)).status == 200)
            await client.close()
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            let row = try await waitForRow(queue, sql: "SELECT baseline_status, candidate_error FROM pairs")
            try queue.close()
            #expect(row["baseline_status"] as Int? == 200)
            #expect(row["candidate_error"] as String? == "tls", "the candidate has no client certificate")
        }
    }

    /// One bad peer per case, as baseline and candidate at once.
    struct BadPeer: Sendable, CustomTestStringConvertible {
        let name: String
        /// What the 502 body names.
        let reason: String
        let kind: String
        var alsoKind: String? = nil
        var testDescription: String { self.name }
    }

    static let badPeers = [
        BadPeer(name: "expired certificate", reason: "certificate verification failed", kind: "tls"),
        BadPeer(name: "wrong host name", reason: "does not match the upstream's host name", kind: "tls"),
        BadPeer(name: "unknown CA", reason: "certificate verification failed", kind: "tls"),
        BadPeer(name: "plain HTTP on https", reason: "does not speak TLS", kind: "tls"),
        // BoringSSL, like many TLS servers, closes on a plain request without a byte: the kind
        // stays `reset` (nothing proves it was TLS) and the 502 says what it probably was.
        // Whether an alert arrives before the close depends on timing: then it is named `tls`.
        BadPeer(name: "TLS on http", reason: "https://", kind: "reset", alsoKind: "tls"),
        BadPeer(name: "client certificate rejected", reason: "client certificate", kind: "tls"),
        BadPeer(name: "stalled handshake", reason: "timed out", kind: "connect_timeout"),
    ]

    @Test(arguments: badPeers) func aBadPeerIsNamedAndTheClientOnlySeesA502(_ peer: BadPeer) async throws {
        let pki = try PKI()
        defer { pki.remove() }
        var server: FixtureServer?
        var link: FaultyLink?
        var tlsOnBothArms = true
        switch peer.name {
        case "expired certificate":
            let expired = try pki.authority.issue(notBefore: Date() - 2 * 86400, notAfter: Date() - 86400)
            server = try await FixtureServer.start(tls: try pki.server(expired), responder: Self.answer)
        case "wrong host name":
            let elsewhere = try pki.authority.issue(commonName: "model.example", dnsNames: ["model.example"], ipAddresses: [])
            server = try await FixtureServer.start(tls: try pki.server(elsewhere), responder: Self.answer)
        case "unknown CA":
            let stranger = try TestCertificateAuthority(commonName: "someone else")
            server = try await FixtureServer.start(tls: try pki.server(try stranger.issue()), responder: Self.answer)
        case "plain HTTP on https":
            server = try await FixtureServer.start(responder: Self.answer)
        case "TLS on http":
            server = try await FixtureServer.start(tls: try pki.server(), responder: Self.answer)
            tlsOnBothArms = false
        case "client certificate rejected":
            let clients = try TestCertificateAuthority(commonName: "client CA")
            server = try await FixtureServer.start(tls: try pki.server(clientCA: clients.certificatePEM), responder: Self.answer)
        default:
            // Accepts TCP connections and never says a word: the handshake stalls.
            let target = try await FixtureServer.start(responder: Self.answer)
            link = try await FaultyLink.start(targetPort: target.port, fault: .blackhole)
            server = target
        }
        let port = link?.port ?? server!.port
        try await withSidecar(
            baseline: .port(port),
            candidates: [("hosted", .port(port))],
            configure: { configuration in
                if tlsOnBothArms { Self.useTLS(&configuration, UpstreamTLSConfiguration(caFile: .path(pki.caFile))) }
                // Only the stalling peer needs a short connect timeout (it is the failure under
                // test); a handshake on a loaded machine can take longer than that.
                let connectTimeout: Duration = peer.kind == "connect_timeout" ? .milliseconds(500) : .seconds(10)
                configuration.routes[0].baseline.connectTimeout = connectTimeout
                configuration.routes[0].candidates[0].connectTimeout = connectTimeout
                // A TLS server's answer to plain HTTP (it closes) can take seconds on a loaded
                // machine; only the peer's own failure may end the copy, not its 5 s timeout.
                configuration.routes[0].baseline.timeout = .seconds(30)
                configuration.routes[0].candidates[0].timeout = .seconds(30)
            }
        ) { sidecar, _, _ in
            let client = try await sidecar.client()
            let response = try await client.send(method: .POST, path: "/infer", body: Array("{}".utf8))
            #expect(response.status == 502, "\(response.text)")
            #expect(response.text.contains(peer.reason), "\(response.text)")
            let again = try await client.send(method: .POST, path: "/infer", body: Array("{}".utf8))
            #expect(again.status == 502, "the connection stays usable: \(again.text)")
            await client.close()
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            let rows = try await waitForRows(queue, count: 2, sql: "SELECT baseline_error, candidate_error FROM pairs")
            try queue.close()
            let kinds = Set([peer.kind] + (peer.alsoKind.map { [$0] } ?? []))
            #expect(rows.allSatisfy { kinds.contains($0["baseline_error"] ?? "") && kinds.contains($0["candidate_error"] ?? "") }, "\(rows)")
            if peer.kind == "tls" { #expect(sidecar.sidecar.statistics.snapshot.tlsFailures >= 2) }
        }
        try await link?.stop()
        try await server?.stop()
    }

    /// Certificates are re-read when a configuration is applied (SIGHUP): a `ca_file` that did
    /// not trust the server, replaced on disk, does after the reload.
    @Test func aReloadRereadsCertificates() async throws {
        let pki = try PKI()
        defer { pki.remove() }
        let stranger = try TestCertificateAuthority(commonName: "old CA")
        try stranger.certificatePEM.write(toFile: pki.caFile, atomically: true, encoding: .utf8)
        try await withSidecar(
            baseline: .tls(try pki.server(), Self.answer),
            configure: { Self.useTLS(&$0, UpstreamTLSConfiguration(caFile: .path(pki.caFile))) }
        ) { sidecar, _, _ in
            let client = try await sidecar.client()
            #expect(try await client.send(method: .POST, path: "/infer", body: Array("{}".utf8)).status == 502)
            try pki.authority.certificatePEM.write(toFile: pki.caFile, atomically: true, encoding: .utf8)
            try await sidecar.sidecar.apply(sidecar.sidecar.configuration)
            #expect(try await client.send(method: .POST, path: "/infer", body: Array("{}".utf8)).status == 200)
            await client.close()
        }
    }

    @Test func anUnreadableCertificateFileIsAConfigurationErrorNamingTheKey() throws {
        var configuration = try ShadowCore.Configuration.load(
            yaml: """
                routes:
                  - name: r
                    prefix: /
                    baseline:
                      url: https://127.0.0.1:8443
                      tls: {ca_file: /nonexistent/ca.pem}
                """
        )
        configuration.revision = "t"
        #expect(throws: ConfigurationError.self) {
            _ = try UpstreamEndpoint(url: configuration.routes[0].baseline.url, tls: configuration.routes[0].baseline.tls, environment: [:])
        }
        do {
            _ = try UpstreamEndpoint(url: configuration.routes[0].baseline.url, tls: configuration.routes[0].baseline.tls, environment: [:])
        } catch {
            #expect(error.description == "routes[0].baseline.tls.ca_file: cannot read /nonexistent/ca.pem")
        }
    }
}
