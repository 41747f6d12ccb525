/// The parts of gRPC over HTTP/2 the sidecar acts on: telling a gRPC request, its deadline, and
/// how an error the sidecar answers itself is spelled for a gRPC client.
public enum GRPCSemantics {
    /// Whether a `Content-Type` is gRPC's (`application/grpc`, `application/grpc+proto`, …).
    /// Runs on every request: compares bytes in place rather than lowercasing a copy.
    public static func isGRPC(contentType: String?) -> Bool {
        guard let contentType else { return false }
        return HeaderPolicy.hasPrefixLowercased(contentType, "application/grpc")
    }

    /// Whether a whole gRPC request body is not one call's single message, that is the request
    /// of a client-streaming or bidirectional call: anything but one length-prefixed message
    /// (flag byte, 4-byte big-endian length, that many bytes) filling the body exactly. Unary
    /// and server-streaming calls always send exactly one; the wire does not name the kind.
    public static func isStreamingRequest(_ body: some Collection<UInt8>) -> Bool {
        guard body.count >= 5 else { return true }
        let length = body.dropFirst().prefix(4).reduce(0) { $0 << 8 | Int($1) }
        return body.count != 5 + length
    }

    /// A `grpc-timeout` value (`TimeoutValue TimeoutUnit`: at most 8 digits, then H, M, S, m, u
    /// or n) as a duration; nil when absent or malformed.
    public static func timeout(_ value: String?) -> Duration? {
        guard let value, let unit = value.last, (2...9).contains(value.count) else { return nil }
        let digits = value.dropLast()
        guard digits.allSatisfy({ $0.isASCII && $0.isNumber }), let amount = Int64(digits) else { return nil }
        switch unit {
        case "H": return .seconds(amount * 3600)
        case "M": return .seconds(amount * 60)
        case "S": return .seconds(amount)
        case "m": return .milliseconds(amount)
        case "u": return .microseconds(amount)
        case "n": return .nanoseconds(amount)
        default: return nil
        }
    }

    /// Status codes (the `grpc-status` trailer) the sidecar answers with.
    public enum Status: Int, Sendable {
        case internalError = 13
        case deadlineExceeded = 4
        case resourceExhausted = 8
        case unimplemented = 12
        case unavailable = 14
    }

    /// gRPC's mapping of an HTTP status the sidecar would have answered to a gRPC status, with
    /// a timeout as DEADLINE_EXCEEDED.
    public static func status(forHTTP status: Int) -> Status {
        switch status {
        case 404: .unimplemented
        case 413, 429: .resourceExhausted
        case 408, 504: .deadlineExceeded
        case 502, 503: .unavailable
        default: .internalError
        }
    }

    /// A `grpc-message` value: percent-encoded outside printable ASCII, and `%` itself.
    public static func encodeMessage(_ message: String) -> String {
        var encoded = ""
        for byte in message.utf8 {
            if byte >= 0x20, byte <= 0x7E, byte != UInt8(ascii: "%") {
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = String(byte, radix: 16, uppercase: true)
                encoded += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return encoded
    }
}
