/// A forward proxy that upstream connections go through (`upstreams.proxy`), as enterprises
/// require for hosted APIs: the sidecar opens an HTTP `CONNECT` tunnel per connection and speaks
/// TLS (or plain HTTP) to the upstream inside it, so the proxy never sees the traffic.
public struct EgressProxyConfiguration: Sendable, Equatable {
    public var host: String
    public var port: Int
    /// Hosts reached directly: an exact name or address, `.example.com` / `example.com` for a
    /// domain and its subdomains, or `*` for all.
    public var noProxy: [String]

    /// Loopback is reached directly unless `no_proxy` says otherwise.
    public static let defaultNoProxy = ["localhost", "127.0.0.1", "::1"]

    public init(host: String, port: Int, noProxy: [String] = EgressProxyConfiguration.defaultNoProxy) {
        self.host = host
        self.port = port
        self.noProxy = noProxy
    }

    /// Whether connections to `host` go through the proxy.
    public func applies(to host: String) -> Bool {
        let host = host.lowercased()
        return !self.noProxy.contains { entry in
            let entry = entry.lowercased()
            if entry == "*" || entry == host { return true }
            let domain = entry.hasPrefix(".") ? String(entry.dropFirst()) : entry
            return host == domain || host.hasSuffix("." + domain)
        }
    }
}

extension EgressProxyConfiguration {
    /// Reads `proxy: http://host:port` and `no_proxy: [...]` from the `upstreams` section.
    static func read(from reader: inout YAMLReader, allowedHosts: [String]) throws(ConfigurationError) -> EgressProxyConfiguration? {
        guard reader.has("proxy") else {
            if reader.has("no_proxy") { throw reader.fail("no_proxy", "applies only with upstreams.proxy") }
            return nil
        }
        let url = try reader.upstreamURL("proxy", allowedHosts: allowedHosts)
        guard !url.usesTLS, url.basePath.isEmpty else {
            throw reader.fail("proxy", "expected http://host:port (a CONNECT proxy; TLS to the proxy itself is not supported)")
        }
        var proxy = EgressProxyConfiguration(host: url.host, port: url.port)
        if reader.has("no_proxy") { proxy.noProxy = try reader.strings("no_proxy") }
        return proxy
    }
}
