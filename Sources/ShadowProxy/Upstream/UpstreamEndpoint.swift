import NIOCore
import ShadowCore

/// Where and how to connect to one upstream, ready for the request path.
struct UpstreamEndpoint: Sendable {
    let url: UpstreamURL
    /// Built once for an IP literal; nil for a host name, which is resolved at each connect
    /// (hosted endpoints move; NIO resolves off the event loop).
    let address: SocketAddress?
    /// Set for `https://`.
    let tls: UpstreamTLS?
    /// The forward proxy to tunnel through, when `upstreams.proxy` applies to this host.
    let proxy: HostPort?

    /// - Throws: ``ConfigurationError`` when a TLS file cannot be read.
    init(
        url: UpstreamURL,
        tls settings: UpstreamTLSConfiguration?,
        proxy: EgressProxyConfiguration? = nil,
        environment: [String: String]
    ) throws(ConfigurationError) {
        self.url = url
        self.address = url.hostIsAddress ? try? SocketAddress(ipAddress: url.host, port: url.port) : nil
        self.tls = try settings.map { settings throws(ConfigurationError) in try UpstreamTLS(settings, url: url, environment: environment) }
        self.proxy = proxy.flatMap { $0.applies(to: url.host) ? HostPort(host: $0.host, port: $0.port) : nil }
    }

    /// The `CONNECT` request target: `host:port`.
    var authority: String { HostPort(host: self.url.host, port: self.url.port).description }

    /// Whether `other` connects the same way (same TLS context: certificates not re-read since).
    func connectsLike(_ other: UpstreamEndpoint) -> Bool {
        self.url == other.url && self.tls === other.tls && self.proxy == other.proxy
    }
}
