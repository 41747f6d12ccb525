/// Whether a recorded request can be sent again, and why not: replay must send exactly what the
/// client sent, and must not repeat side effects a configuration has not allowed.
public enum ReplayEligibility {
    /// Why a recorded request is not replayed (shown by count after a run).
    public enum Skip: String, Sendable, Hashable, CaseIterable {
        /// `storage.store_request_bodies: false`: the body was not kept.
        case bodyNotStored = "body_not_stored"
        /// `storage.bodies: hash`: only the body's keyed hash was kept.
        case bodyHashed = "body_hashed"
        /// `storage.redact`: some values were replaced by their hashes or removed.
        case bodyRedacted = "body_redacted"
        /// The body was cut at `storage.max_stored_body`.
        case bodyTruncated = "body_truncated"
        /// A method the replay does not send (by default only POST and GET).
        case methodNotAllowed = "method_not_allowed"
        /// The body is stored decoded (a tensor message as JSON, for scoring), not as sent.
        case bodyDecoded = "body_decoded"
        /// A gRPC call: replay sends HTTP/1.1 requests, and a call's framing, metadata and
        /// deadline are not all recorded to rebuild it.
        case grpc
    }

    /// `nil` when the request may be replayed.
    /// - Parameters:
    ///   - storedBody: the request body as stored (`nil` when none was stored).
    ///   - bodyBytes: the body's size as received.
    ///   - methods: the methods allowed, upper case.
    ///   - decoded: the body is stored decoded (`exchanges.request_body_decoded`).
    ///   - grpc: the exchange was a gRPC call (its baseline answered with a gRPC status).
    public static func skip(
        method: String,
        storedBody: [UInt8]?,
        bodyBytes: Int,
        methods: Set<String>,
        decoded: Bool = false,
        grpc: Bool = false
    ) -> Skip? {
        guard methods.contains(method.uppercased()) else { return .methodNotAllowed }
        if grpc { return .grpc }
        guard bodyBytes > 0 else { return nil }
        if decoded { return .bodyDecoded }
        guard let body = storedBody else { return .bodyNotStored }
        if body.starts(with: Self.hashPrefix) && body.count <= Self.hashPrefix.count + 32 { return .bodyHashed }
        if body.count < bodyBytes { return .bodyTruncated }
        // A redacted value is its keyed hash, written as this prefix: the body is not what was sent.
        if body.count != bodyBytes || Self.contains(body, Self.hashPrefix) { return .bodyRedacted }
        return nil
    }

    static let hashPrefix = Array("hmac-sha256:".utf8)

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard needle.count <= haystack.count else { return false }
        return (0...(haystack.count - needle.count)).contains { start in haystack[start..<(start + needle.count)].elementsEqual(needle) }
    }
}
