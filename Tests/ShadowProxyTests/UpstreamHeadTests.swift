import NIOHTTP1
import ShadowCore
import Testing

@testable import ShadowProxy

/// The forwarded request head and response headers, built without sockets: what each upstream
/// gets of the client's fields, and what the client gets of the baseline's.
struct UpstreamHeadTests {
    static let target = UpstreamURL(host: "10.0.0.7", port: 8080, basePath: "/base")

    static func rewrite(set: [(String, String)] = [], remove: [String] = [], stripping: [String] = []) throws -> UpstreamHeaders {
        let fields = try set.map { name, value in
            HeaderRewrite.Field(name: name, value: try HeaderRewrite.Template.parse(value).get(), key: name)
        }
        return try UpstreamHeaders(HeaderRewrite(set: fields, remove: remove), stripping: stripping, environment: [:])
    }

    static func head(_ fields: [(String, String)], method: HTTPMethod = .POST) -> HTTPRequestHead {
        HTTPRequestHead(version: .http1_1, method: method, uri: "/v2/infer?x=1", headers: HTTPHeaders(fields))
    }

    /// What the baseline gets for `head`: no body, no known client address, not a copy.
    static func forwarded(_ head: HTTPRequestHead, rewrite: UpstreamHeaders = .none) -> HTTPRequestHead {
        ProxyHandler.upstreamHead(head, target: Self.target, requestID: "rid", peer: nil, framing: .length(0), shadow: false, rewrite: rewrite)
    }

    @Test func hopByHopAndNominatedFieldsStayBehindAndTheSidecarsOwnAreAdded() {
        let head = Self.head([
            ("Host", "sidecar.local"), ("Connection", "keep-alive, X-Secret-Hop"), ("X-Secret-Hop", "1"), ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"), ("Expect", "100-continue"), ("X-Request-Id", "client-id"), ("X-Forwarded-For", "1.2.3.4"),
            ("Content-Type", "application/json"), ("Content-Length", "12"), ("X-Kept", "yes"),
        ])
        let forwarded = ProxyHandler.upstreamHead(head, target: Self.target, requestID: "rid", peer: "127.0.0.1", framing: .length(12), shadow: true)
        #expect(forwarded.uri == "/base/v2/infer?x=1")
        let names = forwarded.headers.map { $0.name.lowercased() }
        for gone in ["connection", "x-secret-hop", "keep-alive", "te", "expect"] { #expect(!names.contains(gone), "\(gone)") }
        #expect(forwarded.headers["host"] == ["10.0.0.7:8080"])
        #expect(forwarded.headers["x-forwarded-host"] == ["sidecar.local"])
        #expect(forwarded.headers["x-forwarded-for"] == ["1.2.3.4, 127.0.0.1"])
        #expect(forwarded.headers["x-forwarded-proto"] == ["http"])
        #expect(forwarded.headers["x-request-id"] == ["rid"])
        #expect(forwarded.headers["x-shadow-request"] == ["1"])
        #expect(forwarded.headers["content-length"] == ["12"])
        #expect(forwarded.headers["x-kept"] == ["yes"])
        #expect(forwarded.headers["content-type"] == ["application/json"])
    }

    /// The client's own X-Forwarded-Host (from a proxy in front) goes on as it is; when there is
    /// none (or a `Connection` field named it), the sidecar adds the client's Host in its place. An
    /// upstream whose rewrite removes the field gets none at all.
    @Test(
        arguments: [
            ([("X-Forwarded-Host", "edge.example")], ["edge.example"]),
            ([("x-forwarded-host", "edge.example"), ("X-Forwarded-Host", "second")], ["edge.example", "second"]),
            ([("Connection", "X-Forwarded-Host"), ("X-Forwarded-Host", "edge.example")], ["sidecar.local"]),
            ([("X-Forwarded-Hosts", "not the field")], ["sidecar.local"]),
            ([], ["sidecar.local"]),
        ] as [([(String, String)], [String])]
    )
    func theClientsForwardedHostIsKeptOrTheSidecarsAdded(fields: [(String, String)], expected: [String]) throws {
        let head = Self.head([("Host", "sidecar.local")] + fields)
        #expect(Self.forwarded(head).headers["x-forwarded-host"] == expected, "\(fields)")
        let stripped = Self.forwarded(head, rewrite: try Self.rewrite(stripping: ["x-forwarded-host"]))
        #expect(stripped.headers["x-forwarded-host"].isEmpty, "\(fields)")
    }

    @Test func aRewritesRemovalsAreMadeWhileCopyingAndItsFieldsComeLast() throws {
        let rewrite = try Self.rewrite(set: [("Authorization", "Bearer upstream-key")], remove: ["x-tenant"], stripping: ["cookie", "x-api-key"])
        #expect(!rewrite.removesSidecarFields)
        let head = Self.head([
            ("Authorization", "Bearer client"), ("COOKIE", "a=b"), ("X-Api-Key", "k"), ("X-Tenant", "t"), ("Accept", "*/*"),
        ])
        let forwarded = Self.forwarded(head, rewrite: rewrite)
        #expect(forwarded.headers["authorization"] == ["Bearer upstream-key"])
        for gone in ["cookie", "x-api-key", "x-tenant", "x-shadow-request"] { #expect(forwarded.headers[gone].isEmpty, "\(gone)") }
        #expect(forwarded.headers["accept"] == ["*/*"])
        #expect(forwarded.headers.map(\.name).last == "Authorization")
    }

    @Test func aRewriteOfASidecarFieldAppliesToTheFinishedHead() throws {
        let rewrite = try Self.rewrite(set: [("Host", "api.example.com")], remove: ["x-forwarded-proto"])
        #expect(rewrite.removesSidecarFields)
        let forwarded = ProxyHandler.upstreamHead(
            Self.head([("X-Forwarded-Proto", "https")]),
            target: Self.target,
            requestID: "rid",
            peer: nil,
            framing: .chunked,
            shadow: false,
            rewrite: rewrite
        )
        #expect(forwarded.headers["host"] == ["api.example.com"])
        #expect(forwarded.headers["x-forwarded-proto"].isEmpty)
        #expect(forwarded.headers["transfer-encoding"] == ["chunked"])
    }

    @Test func teTrailersGoesOnlyToHTTP2UpstreamsOfGRPCCalls() {
        let grpc = Self.head([("Content-Type", "application/grpc+proto"), ("TE", "Trailers")])
        let h2c = UpstreamURL(host: "127.0.0.1", port: 9000, usesHTTP2: true)
        let tls = UpstreamURL(host: "127.0.0.1", port: 9443, usesTLS: true)
        func te(_ head: HTTPRequestHead, _ target: UpstreamURL) -> [String] {
            ProxyHandler.upstreamHead(head, target: target, requestID: "r", peer: nil, framing: .chunked, shadow: false).headers["te"]
        }
        #expect(te(grpc, h2c) == ["trailers"])
        #expect(te(grpc, tls) == ["trailers"])
        #expect(te(grpc, Self.target).isEmpty)
        #expect(te(Self.head([("Content-Type", "application/json"), ("TE", "trailers")]), tls).isEmpty)
        #expect(te(Self.head([("Content-Type", "application/grpc"), ("TE", "deflate")]), h2c).isEmpty)
    }

    @Test func responseHeadersLoseHopByHopAndNominatedFieldsButKeepTheirLength() {
        let kept = ProxyHandler.forwardableResponseHeaders(
            HTTPHeaders([
                ("Content-Length", "5"), ("Connection", "close, X-Internal"), ("X-Internal", "1"), ("Keep-Alive", "timeout=5"),
                ("Transfer-Encoding", "chunked"), ("Content-Type", "text/plain"),
            ])
        )
        #expect(kept.map(\.name) == ["Content-Length", "Content-Type"])
        let plain = ProxyHandler.forwardableResponseHeaders(HTTPHeaders([("Connection", "Keep-Alive"), ("X-Model", "m")]))
        #expect(plain.map(\.name) == ["X-Model"])
    }

    /// The request framing rules (RFC 9112 §6), on the one-pass path for the common heads and on
    /// the field-splitting path for the rest: each head gets the same verdict either way.
    @Test(
        arguments: [
            ([], nil),
            ([("Content-Length", "12")], nil),
            ([("content-length", "0012")], nil),
            ([("Content-Length", "100")], "body_too_large"),
            ([("Content-Length", "12"), ("Content-Length", "12")], nil),
            ([("Content-Length", "12, 12")], nil),
            ([("Content-Length", "12"), ("Content-Length", "13")], "bad_request"),
            ([("Content-Length", "12, 13")], "bad_request"),
            ([("Content-Length", "12"), ("Content-Length", "100")], "bad_request"),
            ([("Content-Length", "100, 100")], "body_too_large"),
            ([("Content-Length", "abc")], "bad_request"),
            ([("Content-Length", "-1")], "bad_request"),
            ([("Content-Length", "99999999999999999999999")], "bad_request"),
            ([("Transfer-Encoding", "chunked")], nil),
            ([("Transfer-Encoding", "Chunked")], nil),
            ([("Transfer-Encoding", "gzip, chunked")], "bad_request"),
            ([("Transfer-Encoding", "chunked"), ("Content-Length", "12")], "bad_request"),
            ([("Content-Length", "12"), ("TRANSFER-ENCODING", "chunked")], "bad_request"),
        ] as [([(String, String)], String?)]
    )
    func framingIsCheckedBeforeForwarding(fields: [(String, String)], code: String?) {
        let error = ProxyHandler.framingError(Self.head(fields + [("Content-Type", "application/json")]), maxBody: 99)
        #expect(error?.code == code, "\(fields)")
    }

    @Test func aTargetThatIsNotAPathIsRefused() {
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "http://elsewhere/", headers: [:])
        #expect(ProxyHandler.framingError(head, maxBody: 99)?.code == "bad_request")
    }
}
