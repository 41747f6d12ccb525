import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import NIOHTTP1
import ShadowCore
import ShadowFixtures
import ShadowTensor
import Testing

import class GRDB.Database
import class GRDB.DatabaseQueue
import class GRDB.Row

@testable import ShadowProxy

/// gRPC to `https://` upstreams: the call takes one multiplexed HTTP/2 connection per upstream,
/// agreed by ALPN in the TLS handshake (grpc-swift servers with certificates made at test time),
/// and an upstream that does not agree to `h2` fails the call by name.
extension HTTP2AndGRPCTests {
    @Suite struct GRPCTLSUpstreamTests {
        typealias PKI = TLSUpstreamTests.PKI

        static func tlsSecurity(_ certificate: IssuedCertificate) -> HTTP2ServerTransport.Posix.TransportSecurity {
            .tls(
                certificateChain: [.bytes(Array(certificate.certificatePEM.utf8), format: .pem)],
                privateKey: .bytes(Array(certificate.privateKeyPEM.utf8), format: .pem)
            )
        }

        /// gRPC's C core refuses a call without `te: trailers` (found by grpcio TLS servers in
        /// `scripts/clients/grpc`): it reaches every upstream the call goes to over HTTP/2, and
        /// only those (HTTP/1.1 has no use for it).
        @Test func teTrailersReachesEveryHTTP2Upstream() throws {
            func forwarded(to url: String, contentType: String) throws -> [String] {
                let head = HTTPRequestHead(
                    version: .http2,
                    method: .POST,
                    uri: "/inference.GRPCInferenceService/ModelInfer",
                    headers: ["content-type": contentType, "te": "trailers"]
                )
                let target = try UpstreamURL.parse(url).get()
                return ProxyHandler.upstreamHead(head, target: target, requestID: "r", peer: nil, framing: .chunked, shadow: false)
                    .headers[canonicalForm: "te"].map(String.init)
            }
            #expect(try forwarded(to: "h2c://127.0.0.1:9001", contentType: "application/grpc") == ["trailers"])
            #expect(try forwarded(to: "https://127.0.0.1:9001", contentType: "application/grpc+proto") == ["trailers"])
            #expect(try forwarded(to: "https://127.0.0.1:9001", contentType: "application/json") == [])
            #expect(try forwarded(to: "http://127.0.0.1:9001", contentType: "application/grpc") == [])
        }

        @Test func aGRPCCallToAnHTTPSUpstreamTakesHTTP2AgreedByALPN() async throws {
            let pki = try PKI()
            defer { pki.remove() }
            let certificate = try pki.authority.issue()
            let baseline = ModelService(version: "1")
            let candidate = ModelService(version: "2", flipped: ["tls-4"])
            try await GRPCSwiftPeers.withServer(baseline, security: Self.tlsSecurity(certificate)) { baselinePort in
                try await GRPCSwiftPeers.withServer(candidate, security: Self.tlsSecurity(certificate)) { candidatePort in
                    try await withSidecar(
                        baseline: .port(baselinePort),
                        candidates: [("v2", .port(candidatePort))],
                        configure: { configuration in
                            TLSUpstreamTests.useTLS(&configuration, UpstreamTLSConfiguration(caFile: .path(pki.caFile)))
                            configuration.routes[0].scorer = ScorerConfiguration(kind: .label, outputProtocol: .kserveV2, output: "label")
                        }
                    ) { sidecar, _, _ in
                        try await GRPCSwiftPeers.withClient(port: sidecar.port) { client in
                            for index in 0..<10 {
                                let seen = try await GRPCSwiftInteropTests.unary(
                                    client,
                                    GRPCSwiftPeers.inferRequest(id: "tls-\(index)", values: [Float(index)])
                                )
                                #expect(GRPCSwiftPeers.label(seen.message) == (index % 2 == 0 ? "cat" : "dog"))
                                #expect(seen.version == ["1"] && seen.servedBy == ["grpc-swift 1"], "metadata and trailers over TLS")
                            }
                        }
                        #expect(try await eventually { candidate.count("ModelInfer") == 10 })
                        // One handshake per upstream: every call was a stream on one connection.
                        #expect(sidecar.sidecar.statistics.snapshot.tlsHandshakes == 2)
                        await sidecar.stop()
                        let queue = try DatabaseQueue(path: sidecar.databasePath)
                        defer { try? queue.close() }
                        try await queue.read { (db: GRDB.Database) throws in
                            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM pairs WHERE outcome = 'compared'") == 10)
                            #expect(
                                try String.fetchAll(db, sql: "SELECT json_extract(request_body, '$.id') FROM pairs WHERE diverged = 1") == ["tls-4"]
                            )
                        }
                    }
                }
            }
        }

        /// An HTTPS server that speaks only HTTP/1.1: REST calls to it work as before, a gRPC
        /// call gets UNAVAILABLE naming the reason, and the pair records a `tls` error.
        @Test func anHTTPSUpstreamWithoutHTTP2FailsGRPCCallsByName() async throws {
            let pki = try PKI()
            defer { pki.remove() }
            let context = try pki.server()
            try await withSidecar(
                baseline: .tls(context, TLSUpstreamTests.answer),
                candidates: [("hosted", .tls(context, TLSUpstreamTests.answer))],
                configure: { TLSUpstreamTests.useTLS(&$0, UpstreamTLSConfiguration(caFile: .path(pki.caFile))) }
            ) { sidecar, _, candidates in
                let rest = try await sidecar.client()
                #expect(try await rest.send(method: .POST, path: "/infer", body: Array("{}".utf8)).status == 200)
                await rest.close()
                let client = try await HTTP2TestClient.connect(port: sidecar.port)
                let answer = try await client.unary(path: "/inference.GRPCInferenceService/ModelInfer", message: [])
                await client.close()
                #expect(answer.grpcStatus == 14, "UNAVAILABLE: \(answer.trailers)")
                let message = answer.trailer("grpc-message")?.removingPercentEncoding ?? ""
                #expect(message.contains("ALPN h2"), "\(message)")
                #expect(try await eventually { sidecar.shadowPending == 0 })
                #expect(candidates[0]?.requestCount == 1, "the REST copy only: the gRPC one never reached an HTTP/1.1 server")
                await sidecar.stop()
                let queue = try DatabaseQueue(path: sidecar.databasePath)
                defer { try? queue.close() }
                try await queue.read { (db: GRDB.Database) throws in
                    let errors = try Row.fetchAll(db, sql: "SELECT baseline_error FROM exchanges ORDER BY received_at_us").map { $0[0] as String? }
                    #expect(errors == [nil, "tls"])
                }
            }
        }
    }
}
