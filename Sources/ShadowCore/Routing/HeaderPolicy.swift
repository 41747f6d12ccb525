/// Which request and response headers a proxy must not forward (RFC 9110 §7.6.1).
public enum HeaderPolicy {
    /// Hop-by-hop headers, lowercased: never forwarded in either direction. Framing headers are
    /// included because the proxy re-derives framing itself.
    public static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authenticate", "proxy-authorization", "content-length", "host",
    ]

    /// The names listed in `Connection` header values, lowercased; they are hop-by-hop too.
    public static func connectionNominated(_ values: some Sequence<some StringProtocol>) -> Set<String> {
        var names: Set<String> = []
        for value in values {
            for token in value.split(separator: ",") {
                let name = token.trimmingSpaces().lowercased()
                if !name.isEmpty { names.insert(name) }
            }
        }
        return names
    }

    /// Whether a client-supplied request id is safe to forward and store.
    public static func isValidRequestID(_ value: String) -> Bool {
        !value.isEmpty && value.utf8.count <= 128
            && value.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }
    }
}
