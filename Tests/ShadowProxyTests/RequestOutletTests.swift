import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import ShadowProxy

/// The request heads the sidecar writes to HTTP/1.1 upstreams as bytes, against NIO's own
/// request encoder (an independent writer of the same format).
struct RequestOutletTests {
    static func nioEncoded(_ head: HTTPRequestHead) throws -> String {
        let channel = EmbeddedChannel(handler: HTTPRequestEncoder())
        defer { _ = try? channel.finish() }
        try channel.writeOutbound(HTTPClientRequestPart.head(head))
        var bytes = ByteBuffer()
        while var part = try channel.readOutbound(as: ByteBuffer.self) { bytes.writeBuffer(&part) }
        return String(buffer: bytes)
    }

    static func ours(_ head: HTTPRequestHead, reserving capacity: Int) -> String {
        var buffer = ByteBufferAllocator().buffer(capacity: capacity)
        buffer.writeString("before|")
        RequestOutlet.encode(head, into: &buffer)
        return String(buffer: buffer)
    }

    @Test(arguments: [
        HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: [:]),
        HTTPRequestHead(
            version: .http1_1,
            method: .POST,
            uri: "/v2/models/m/infer?x=1&y=%20",
            headers: HTTPHeaders([
                ("Host", "10.0.0.7:8080"), ("Content-Type", "application/json"), ("Content-Length", "12"),
                ("X-Empty", ""), ("X-Unicode", "café ✓"), ("x-request-id", "0190a5f0-7c3e-7000-8000-000000000000"),
            ])
        ),
        HTTPRequestHead(version: .http1_0, method: .HEAD, uri: "/health", headers: HTTPHeaders([("Host", "a")])),
        HTTPRequestHead(version: .http1_1, method: .RAW(value: "PROPFIND"), uri: "/dav", headers: HTTPHeaders([("Depth", "1")])),
        HTTPRequestHead(
            version: .http1_1,
            method: .PUT,
            uri: "/" + String(repeating: "p", count: 3_000),
            // With its framing field: NIO's encoder adds `transfer-encoding: chunked` to a PUT
            // without one, where the sidecar always sets the framing itself.
            headers: HTTPHeaders([("Content-Length", "0")] + (0..<60).map { ("X-Field-\($0)", String(repeating: "v", count: $0 * 7)) })
        ),
    ])
    func headsAreTheBytesNIOsEncoderWrites(head: HTTPRequestHead) throws {
        let expected = try Self.nioEncoded(head)
        // Into a buffer that must grow, and into one with room to spare, after earlier bytes.
        #expect(Self.ours(head, reserving: 8) == "before|" + expected, "\(head.method) \(head.uri.prefix(40))")
        #expect(Self.ours(head, reserving: 64_000) == "before|" + expected, "\(head.method) \(head.uri.prefix(40))")
    }
}
