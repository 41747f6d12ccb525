/// Which request and response headers a proxy must not forward (RFC 9110 §7.6.1).
public enum HeaderPolicy {
    /// Hop-by-hop headers, lowercased: never forwarded in either direction. Framing headers are
    /// included because the proxy re-derives framing itself.
    public static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authenticate", "proxy-authorization", "content-length", "host",
    ]

    /// The names listed in `Connection` header values, lowercased, other than those already
    /// hop-by-hop (so the common `Connection: keep-alive` yields nothing to look up).
    public static func connectionNominated(_ values: some Sequence<some StringProtocol>) -> Set<String> {
        var names: Set<String> = []
        var token: [UInt8] = []
        func finish() {
            if !token.isEmpty {
                let name = String(decoding: token, as: UTF8.self)
                if !self.hopByHop.contains(name) { names.insert(name) }
                token.removeAll(keepingCapacity: true)
            }
        }
        for value in values {
            for byte in value.utf8 {
                switch byte {
                case UInt8(ascii: ","): finish()
                case UInt8(ascii: " "), UInt8(ascii: "\t"): continue
                case UInt8(ascii: "A")...UInt8(ascii: "Z"): token.append(byte | 0x20)
                default: token.append(byte)
                }
            }
            finish()
        }
        return names
    }

    /// A `Connection` value that is only `keep-alive` or `close` (any case, spaces around):
    /// nearly every message's, and nothing to parse.
    public static func namesNothing(_ value: some StringProtocol) -> Bool {
        var value = String(value)
        return value.withUTF8 { whole in
            let trimmed = Self.trimmingBlanks(whole[...])
            return Self.equalsLowercased(trimmed, "keep-alive") || Self.equalsLowercased(trimmed, "close")
        }
    }

    /// Whether `name` is hop-by-hop, compared case-insensitively without allocating.
    public static func isHopByHop(_ name: String) -> Bool {
        var name = name
        return name.withUTF8 { bytes in Self.isHopByHop(bytes) }
    }

    /// Whether the name in `bytes` is hop-by-hop, compared case-insensitively.
    public static func isHopByHop(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        switch bytes.count {
        case 2: return equalsLowercased(bytes, "te")
        case 4: return equalsLowercased(bytes, "host")
        case 7: return equalsLowercased(bytes, "trailer") || equalsLowercased(bytes, "upgrade")
        case 10: return equalsLowercased(bytes, "connection") || equalsLowercased(bytes, "keep-alive")
        case 14: return equalsLowercased(bytes, "content-length")
        case 16: return equalsLowercased(bytes, "proxy-connection")
        case 17: return equalsLowercased(bytes, "transfer-encoding")
        case 18: return equalsLowercased(bytes, "proxy-authenticate")
        case 19: return equalsLowercased(bytes, "proxy-authorization")
        default: return false
        }
    }

    /// ASCII case-insensitive equality with a lowercase name.
    public static func matchesLowercased(_ bytes: UnsafeBufferPointer<UInt8>, _ lowercase: String) -> Bool {
        guard bytes.count == lowercase.utf8.count else { return false }
        var lowercase = lowercase
        return lowercase.withUTF8 { Self.foldedEqual(bytes, $0) }
    }

    /// ASCII case-insensitive equality with a lowercase literal.
    public static func equalsLowercased(_ bytes: UnsafeBufferPointer<UInt8>, _ lowercase: StaticString) -> Bool {
        Self.foldedEqual(bytes, UnsafeBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount))
    }

    /// Whether `text` starts with a lowercase literal, in any ASCII letter case (a media type such
    /// as `application/grpc+proto` or `Text/Event-Stream; charset=utf-8`), without a lowercased copy.
    public static func hasPrefixLowercased(_ text: String, _ lowercase: StaticString) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            bytes.count >= lowercase.utf8CodeUnitCount
                && Self.equalsLowercased(UnsafeBufferPointer(rebasing: bytes.prefix(lowercase.utf8CodeUnitCount)), lowercase)
        }
    }

    /// Whether a comma-separated field value lists `token` (lowercase), in any case.
    public static func listContains(_ value: String, _ token: StaticString) -> Bool {
        var value = value
        return value.withUTF8 { whole in
            whole.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false).contains { element in
                Self.equalsLowercased(Self.trimmingBlanks(element), token)
            }
        }
    }

    /// `bytes` folded to lowercase equal `expected` (lowercase already).
    private static func foldedEqual(_ bytes: UnsafeBufferPointer<UInt8>, _ expected: UnsafeBufferPointer<UInt8>) -> Bool {
        guard bytes.count == expected.count else { return false }
        for index in 0..<bytes.count {
            let byte = bytes[index]
            if ((UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte | 0x20 : byte) != expected[index] { return false }
        }
        return true
    }

    /// `bytes` without the spaces and tabs around them.
    private static func trimmingBlanks(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) -> UnsafeBufferPointer<UInt8> {
        var bytes = bytes
        while let first = bytes.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") { bytes = bytes.dropFirst() }
        while let last = bytes.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") { bytes = bytes.dropLast() }
        return UnsafeBufferPointer(rebasing: bytes)
    }

    /// Whether a client-supplied request id is safe to forward and store.
    public static func isValidRequestID(_ value: String) -> Bool {
        !value.isEmpty && value.utf8.count <= 128
            && value.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }
    }
}
