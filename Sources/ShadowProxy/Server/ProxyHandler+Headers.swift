import NIOCore
import NIOHTTP1
import ShadowCore

extension ProxyHandler {
    /// The client's `X-Request-Id` when it is safe to store, otherwise a fresh time-ordered one.
    static func requestID(from headers: HTTPHeaders, random: inout FastRandom, atMicros micros: Int64) -> String {
        if let given = headers.first(name: "x-request-id"), HeaderPolicy.isValidRequestID(given) { return given }
        return RequestID.generate(using: &random, atMicros: micros)
    }

    /// Rejects requests whose framing a proxy must not guess at (RFC 9112 §6): both
    /// Content-Length and Transfer-Encoding, several differing lengths, a transfer coding other
    /// than `chunked`, or a declared length above the limit; and targets that are not origin-form.
    static func framingError(_ head: HTTPRequestHead, maxBody: Int) -> SidecarError? {
        guard head.uri.hasPrefix("/") else {
            return .badRequest("request target must be a path (origin-form), got '\(head.uri.prefix(100))'")
        }
        // The common cases in one pass over the names, without `canonicalForm`'s comma splitting
        // (~1% of the event loop): no framing field at all, or one Content-Length of digits only.
        var length: Int?
        var plain = true
        for (name, value) in head.headers {
            var name = name
            switch name.utf8.count {
            case 14 where name.withUTF8({ HeaderPolicy.equalsLowercased($0, "content-length") }):
                var value = value
                let digits = value.withUTF8 { bytes in bytes.count <= 18 && !bytes.isEmpty && bytes.allSatisfy { $0 &- 0x30 < 10 } }
                if length == nil, digits, let parsed = Int(value) { length = parsed } else { plain = false }
            case 17 where name.withUTF8({ HeaderPolicy.equalsLowercased($0, "transfer-encoding") }):
                plain = false
            default:
                continue
            }
        }
        if plain {
            if let length, length > maxBody { return .bodyTooLarge(limit: maxBody) }
            return nil
        }
        let lengths = head.headers[canonicalForm: "content-length"]
        let codings = head.headers[canonicalForm: "transfer-encoding"]
        if !lengths.isEmpty && !codings.isEmpty {
            return .badRequest("both Content-Length and Transfer-Encoding are present")
        }
        if !codings.isEmpty && !(codings.count == 1 && codings[0].lowercased() == "chunked") {
            return .badRequest("only Transfer-Encoding: chunked is accepted")
        }
        if let first = lengths.first {
            guard lengths.allSatisfy({ $0 == first }), let length = Int(first), length >= 0 else {
                return .badRequest("invalid or conflicting Content-Length")
            }
            if length > maxBody { return .bodyTooLarge(limit: maxBody) }
        }
        return nil
    }

    /// The request as an upstream sees it: hop-by-hop headers (and any the client's `Connection`
    /// names) removed, framing set from `framing`, forwarding headers added after the stripping
    /// so a client cannot delete them via `Connection`, and the upstream's own `rewrite` (its
    /// removals made while copying, its fields added last).
    static func upstreamHead(
        _ head: HTTPRequestHead,
        target: UpstreamURL,
        requestID: String,
        peer: String?,
        framing: UpstreamFraming,
        shadow: Bool,
        rewrite: UpstreamHeaders = .none
    ) -> HTTPRequestHead {
        var nominated: Set<String> = []
        // A rewrite removing a field the sidecar sets itself is applied afterwards, as a whole.
        let strip = rewrite.removesSidecarFields ? [] : rewrite.remove
        // Collected as pairs and wrapped once: `HTTPHeaders.add` checks each name for ASCII and
        // for `Connection` (~1% of the event loop for two heads per request). The client's names
        // passed NIO's parser (tokens, so ASCII); the sidecar's own are literals.
        var fields: [(String, String)] = []
        // The client's fields and up to 8 of the sidecar's, without growing the storage.
        fields.reserveCapacity(head.headers.count + 8 + rewrite.set.count)
        var forwardedFor: String?
        var originalHost: String?
        var hasProto = false
        var hasForwardedHost = false
        var trailers = false
        for (name, value) in head.headers {
            var name = name
            // 0: end to end; 1: x-forwarded-for; 2: dropped; 3: x-forwarded-proto; 4: host;
            // 5: te; 6: connection; 7: other hop-by-hop; 8: x-forwarded-host (end to end).
            let kind: Int = name.withUTF8 { bytes in
                switch bytes.count {
                case 2 where HeaderPolicy.equalsLowercased(bytes, "te"): return 5
                case 4 where HeaderPolicy.equalsLowercased(bytes, "host"): return 4
                case 6 where HeaderPolicy.equalsLowercased(bytes, "expect"): return 2
                case 10 where HeaderPolicy.equalsLowercased(bytes, "connection"): return 6
                case 12 where HeaderPolicy.equalsLowercased(bytes, "x-request-id"): return 2
                case 15 where HeaderPolicy.equalsLowercased(bytes, "x-forwarded-for"): return 1
                case 17 where HeaderPolicy.equalsLowercased(bytes, "x-forwarded-proto"): return 3
                default: break
                }
                if HeaderPolicy.isHopByHop(bytes) { return 7 }
                for removed in strip where HeaderPolicy.matchesLowercased(bytes, removed) { return 2 }
                return bytes.count == 16 && HeaderPolicy.equalsLowercased(bytes, "x-forwarded-host") ? 8 : 0
            }
            switch kind {
            case 1:
                forwardedFor = forwardedFor.map { "\($0), \(value)" } ?? value
                continue
            case 2, 7: continue
            case 3: hasProto = true
            case 4:
                originalHost = value  // replaced below, kept as X-Forwarded-Host
                continue
            case 5:
                if HeaderPolicy.listContains(value, "trailers") { trailers = true }
                continue
            case 6:
                if !HeaderPolicy.namesNothing(value) { nominated.formUnion(HeaderPolicy.connectionNominated([value])) }
                continue
            case 8: hasForwardedHost = true
            default: break
            }
            fields.append((name, value))
        }
        if !nominated.isEmpty {
            fields = Self.removing(nominated, from: fields)
            if nominated.contains("x-forwarded-host") { hasForwardedHost = false }
        }
        fields.append(("host", target.hostHeader))
        // The one `te` HTTP/2 allows, which gRPC servers require (a proxy that passes trailers):
        // end to end whenever the upstream gets the request over HTTP/2.
        if trailers, target.speaksHTTP2(forGRPC: GRPCSemantics.isGRPC(contentType: head.headers.first(name: "content-type"))) {
            fields.append(("te", "trailers"))
        }
        if let peer {
            fields.append(("x-forwarded-for", forwardedFor.map { "\($0), \(peer)" } ?? peer))
        } else if let forwardedFor {
            fields.append(("x-forwarded-for", forwardedFor))
        }
        if !hasProto { fields.append(("x-forwarded-proto", "http")) }
        if let originalHost, !hasForwardedHost { fields.append(("x-forwarded-host", originalHost)) }
        fields.append(("x-request-id", requestID))
        if shadow { fields.append(("x-shadow-request", "1")) }
        switch framing {
        case .chunked:
            fields.append(("transfer-encoding", "chunked"))
        case .length(let size) where size > 0 || head.method == .POST || head.method == .PUT || head.method == .PATCH:
            fields.append(("content-length", String(size)))
        case .length:
            break
        }
        var result = HTTPRequestHead(version: .http1_1, method: head.method, uri: target.basePath + head.uri, headers: HTTPHeaders(fields))
        if rewrite.removesSidecarFields {
            rewrite.apply(to: &result)
        } else {
            for (name, value) in rewrite.set { result.headers.add(name: name, value: value) }
        }
        return result
    }

    /// `fields` without those `names` (lowercased) lists: the ones a `Connection` field named.
    private static func removing(_ names: Set<String>, from fields: [(String, String)]) -> [(String, String)] {
        fields.filter { name, _ in !names.contains(name.lowercased()) }
    }

    /// The baseline's response headers minus hop-by-hop ones. Content-Length is end-to-end and
    /// kept; Transfer-Encoding is re-applied by the encoder towards the client.
    static func forwardableResponseHeaders(_ source: HTTPHeaders) -> HTTPHeaders {
        var nominated: Set<String> = []
        var fields: [(String, String)] = []
        fields.reserveCapacity(source.count + 2)
        for (name, value) in source {
            if HeaderPolicy.isHopByHop(name) {
                switch name.utf8.count {
                // Content-Length is end-to-end and kept; the rest of the set is hop-by-hop.
                case 14: fields.append((name, value))
                case 10 where !HeaderPolicy.namesNothing(value):
                    var name = name
                    if name.withUTF8({ HeaderPolicy.equalsLowercased($0, "connection") }) {
                        nominated.formUnion(HeaderPolicy.connectionNominated([value]))
                    }
                default: break
                }
                continue
            }
            fields.append((name, value))
        }
        return HTTPHeaders(nominated.isEmpty ? fields : Self.removing(nominated, from: fields))
    }
}

/// How a forwarded request's body is delimited: a known length (a mirror copy, or the client's
/// own Content-Length), or chunks when the client streams one of unknown length.
enum UpstreamFraming {
    case length(Int)
    case chunked
}

/// Request ids in UUID version 7 text form (RFC 9562 §5.7): the millisecond Unix time, then 74
/// random bits. Time-ordered ids land at the end of `exchanges_by_request_id` instead of at random
/// places in it, which keeps the writer's index inserts in cache, and sort like the requests.
enum RequestID {
    /// Written straight into the string's storage: this runs once per request.
    static func generate(using generator: inout some RandomNumberGenerator, atMicros micros: Int64) -> String {
        let milliseconds = UInt64(truncatingIfNeeded: max(0, micros / 1000)) & 0xFFFF_FFFF_FFFF
        let high = milliseconds << 16 | 0x7000 | (generator.next() as UInt64) & 0x0FFF
        let low = (generator.next() as UInt64) & 0x3FFF_FFFF_FFFF_FFFF | 0x8000_0000_0000_0000
        return String(unsafeUninitializedCapacity: 36) { buffer in
            let digits: StaticString = "0123456789abcdef"
            var index = 0
            for nibble in 0..<32 {
                if nibble == 8 || nibble == 12 || nibble == 16 || nibble == 20 {
                    buffer[index] = UInt8(ascii: "-")
                    index += 1
                }
                let word = nibble < 16 ? high : low
                let value = Int((word >> UInt64(60 - 4 * (nibble % 16))) & 0xF)
                buffer[index] = digits.utf8Start[value]
                index += 1
            }
            return index
        }
    }
}
