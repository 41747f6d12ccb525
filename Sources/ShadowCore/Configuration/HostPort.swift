/// A listen address such as `127.0.0.1:8080` or `[::1]:8080`.
public struct HostPort: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port`; IPv6 hosts go in brackets.
    public init?(parsing text: String) {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else { return nil }
        self.host = String(host)
        self.port = port
    }

    public var description: String {
        self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)"
    }

    /// Whether the host is a loopback name or address.
    public var isLoopback: Bool {
        HostPort.isLoopback(self.host)
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}

/// An upstream base URL: `http://host[:port][/base/path]` or `https://…`.
public struct UpstreamURL: Sendable, Hashable, CustomStringConvertible {
    public var host: String { didSet { self.refreshHostHeader() } }
    public var port: Int { didSet { self.refreshHostHeader() } }
    /// Prepended to the client's path; empty or starting with `/`, never ending with `/`.
    public var basePath: String
    /// `https://`: the connection is TLS, verified against the upstream's trust roots.
    public var usesTLS: Bool { didSet { self.refreshHostHeader() } }
    /// The `Host` header value sent upstream: kept with the fields it is made of, as every
    /// forwarded request and copy sends it.
    public private(set) var hostHeader: String
    /// `h2c://`: cleartext HTTP/2 with prior knowledge (what gRPC servers speak without TLS):
    /// one connection carries many requests at once, each on its own stream.
    public var usesHTTP2: Bool

    public init(host: String, port: Int, basePath: String = "", usesTLS: Bool = false, usesHTTP2: Bool = false) {
        self.host = host
        self.port = port
        self.basePath = basePath
        self.usesTLS = usesTLS
        self.usesHTTP2 = usesHTTP2
        self.hostHeader = ""
        self.refreshHostHeader()
    }

    /// Parses an `http://`, `https://` or `h2c://` URL; says why when it cannot.
    public static func parse(_ text: String) -> Result<UpstreamURL, ParseFailure> {
        let lower = text.lowercased()
        let usesTLS: Bool
        var usesHTTP2 = false
        if lower.hasPrefix("https://") {
            usesTLS = true
        } else if lower.hasPrefix("http://") {
            usesTLS = false
        } else if lower.hasPrefix("h2c://") {
            (usesTLS, usesHTTP2) = (false, true)
        } else {
            return .failure(ParseFailure(reason: "expected an http://, https:// or h2c:// URL, got '\(text)'"))
        }
        let rest = text.drop { $0 != ":" }.dropFirst("://".count)
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        var path = String(rest.dropFirst(authority.count))
        guard !path.contains("?"), !path.contains("#") else {
            return .failure(ParseFailure(reason: "an upstream URL takes no query or fragment, got '\(text)'"))
        }
        while path.hasSuffix("/") { path.removeLast() }
        guard !authority.contains("@") else {
            return .failure(ParseFailure(reason: "credentials in upstream URLs are not supported; use headers.set"))
        }
        let hostPort: HostPort
        if let parsed = HostPort(parsing: String(authority)) {
            hostPort = parsed
        } else if !authority.isEmpty, !authority.contains(":") || (authority.hasPrefix("[") && authority.hasSuffix("]")) {
            let host = authority.hasPrefix("[") ? String(authority.dropFirst().dropLast()) : String(authority)
            hostPort = HostPort(host: host, port: usesTLS ? 443 : 80)
        } else {
            return .failure(ParseFailure(reason: "expected \(lower.prefix { $0 != ":" })://host[:port], got '\(text)'"))
        }
        guard hostPort.port > 0 else { return .failure(ParseFailure(reason: "port must be 1...65535, got 0")) }
        return .success(UpstreamURL(host: hostPort.host, port: hostPort.port, basePath: path, usesTLS: usesTLS, usesHTTP2: usesHTTP2))
    }

    public struct ParseFailure: Error, Sendable {
        public let reason: String
    }

    public var scheme: String { self.usesTLS ? "https" : self.usesHTTP2 ? "h2c" : "http" }

    /// Whether a request goes to this upstream over HTTP/2: every request to `h2c://`, and gRPC
    /// calls to `https://` (agreed by ALPN: gRPC cannot travel over HTTP/1.1).
    public func speaksHTTP2(forGRPC grpc: Bool) -> Bool { self.usesHTTP2 || (self.usesTLS && grpc) }

    public var description: String {
        let hostPart = self.host.contains(":") ? "[\(self.host)]" : self.host
        return "\(self.scheme)://\(hostPart):\(self.port)\(self.basePath)"
    }

    private mutating func refreshHostHeader() {
        let hostPart = self.host.utf8.contains(UInt8(ascii: ":")) ? "[\(self.host)]" : self.host
        self.hostHeader = self.port == (self.usesTLS ? 443 : 80) ? hostPart : hostPart + ":" + String(self.port)
    }

    /// Whether the host is an IPv4 or IPv6 literal (nothing to resolve, no SNI name).
    public var hostIsAddress: Bool {
        if self.host.contains(":") { return true }
        let parts = self.host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { part in UInt8(part) != nil }
    }
}
