import Foundation
import NIOCore
import NIOSSL
import ShadowCore

/// One `https://` upstream's TLS client context, its certificates and keys read.
///
/// Built when a configuration is applied (at start and on each SIGHUP, so renewed certificates
/// and keys are picked up), never on the request path; pools compare contexts by identity and
/// drop connections made with an older one.
final class UpstreamTLS: Sendable {
    /// Offers HTTP/1.1 by ALPN: for the keep-alive pool.
    let context: NIOSSLContext
    /// Offers only `h2` by ALPN: for the multiplexed connection gRPC calls take (gRPC needs
    /// HTTP/2, and a server that cannot speak it must say so in the handshake).
    let http2Context: NIOSSLContext
    /// Sent as SNI and checked against the certificate; nil for an IP literal without
    /// `server_name`, which is checked against the certificate's IP addresses instead.
    let serverHostname: String?

    /// - Parameter environment: where `$CREDENTIALS_DIRECTORY` comes from.
    /// - Throws: ``ConfigurationError`` naming the key whose file is missing or unreadable.
    init(_ settings: UpstreamTLSConfiguration, url: UpstreamURL, environment: [String: String]) throws(ConfigurationError) {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .fullVerification
        configuration.minimumTLSVersion = settings.minimumVersion == .v1_3 ? .tlsv13 : .tlsv12
        configuration.applicationProtocols = ["http/1.1"]
        let key = settings.key
        if let caFile = settings.caFile {
            let roots: [NIOSSLCertificate]
            do {
                roots = try NIOSSLCertificate.fromPEMBytes(try Self.read(caFile, key: "\(key).ca_file", environment: environment))
            } catch let error as ConfigurationError {
                throw error
            } catch {
                throw ConfigurationError(key: "\(key).ca_file", reason: "no PEM certificate in \(caFile)")
            }
            guard !roots.isEmpty else { throw ConfigurationError(key: "\(key).ca_file", reason: "no PEM certificate in \(caFile)") }
            configuration.trustRoots = .certificates(roots)
        }
        if let certificateFile = settings.clientCertificate, let keyFile = settings.clientKey {
            let chain = try? NIOSSLCertificate.fromPEMBytes(
                try Self.read(certificateFile, key: "\(key).client_certificate", environment: environment)
            )
            guard let chain, !chain.isEmpty else {
                throw ConfigurationError(key: "\(key).client_certificate", reason: "no PEM certificate in \(certificateFile)")
            }
            let keyBytes = try Self.read(keyFile, key: "\(key).client_key", environment: environment)
            // The key's bytes are a secret: the error names the file, never its content.
            guard let privateKey = try? NIOSSLPrivateKey(bytes: keyBytes, format: .pem) else {
                throw ConfigurationError(key: "\(key).client_key", reason: "no PEM private key in \(keyFile)")
            }
            configuration.certificateChain = chain.map { .certificate($0) }
            configuration.privateKey = .privateKey(privateKey)
        }
        do {
            self.context = try NIOSSLContext(configuration: configuration)
            configuration.applicationProtocols = ["h2"]
            self.http2Context = try NIOSSLContext(configuration: configuration)
        } catch {
            throw ConfigurationError(key: key, reason: "TLS settings rejected: \(UpstreamTLS.describe(error))")
        }
        self.serverHostname = settings.serverName ?? (url.hostIsAddress ? nil : url.host)
    }

    private static func read(
        _ source: UpstreamTLSConfiguration.FileSource,
        key: String,
        environment: [String: String]
    ) throws(ConfigurationError) -> [UInt8] {
        let path: String
        switch source {
        case .path(let value):
            path = value
        case .credential(let name):
            guard let directory = environment["CREDENTIALS_DIRECTORY"], !directory.isEmpty else {
                throw ConfigurationError(key: key, reason: "${credential:\(name)} needs $CREDENTIALS_DIRECTORY (systemd's LoadCredential=)")
            }
            path = directory + "/" + name
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(key: key, reason: "cannot read \(path)")
        }
        return Array(data)
    }

    /// Makes the client-side TLS handler for a new connection: HTTP/1.1, or HTTP/2 (`h2`).
    func makeHandler(http2: Bool = false) throws -> NIOSSLClientHandler {
        try NIOSSLClientHandler(context: http2 ? self.http2Context : self.context, serverHostname: self.serverHostname)
    }

    /// BoringSSL's last upper-case reason code in an error's text, e.g. `TLSV1_ALERT_DECODE_ERROR`.
    private static func reasonCode(_ text: String) -> String? {
        let words = text.split { character in character == ":" || character == "]" || character == " " }
        let codes = words.filter { word in
            word.count > 3 && word.allSatisfy { character in character.isUppercase || character == "_" || character.isNumber }
        }
        return codes.last.map { String($0) }
    }

    /// A short reason for a TLS failure, fit for a 502 body, a log line or a test: never key
    /// material, only BoringSSL's reason code and what it usually means.
    static func describe(_ error: any Error) -> String {
        if let extra = error as? NIOSSLExtraError {
            if extra == .failedToValidateHostname { return "the certificate does not match the upstream's host name" }
            return "\(extra)"
        }
        if error is TLSHandshakeWaiter.NoHTTP2 {
            return "the upstream did not agree to HTTP/2 (ALPN h2) in the TLS handshake, and gRPC needs it"
        }
        if error is PlainPeerSniffer.TLSOnPlainConnection {
            return "the upstream answered with TLS on a plain connection; use an https:// URL"
        }
        if let boringError = error as? BoringSSLError {
            // TLS 1.3: the server judges a client certificate after the client's handshake ended,
            // so its alert arrives with the first read.
            return Self.describe(boringSSLText: "\(boringError)")
        }
        guard let sslError = error as? NIOSSLError else { return "\(error)" }
        switch sslError {
        case .handshakeFailed(let inner):
            return Self.describe(boringSSLText: "\(inner)")
        case .uncleanShutdown:
            return "the upstream closed the connection during the TLS handshake"
        case .failedToLoadCertificate, .failedToLoadPrivateKey:
            return "a certificate or key could not be loaded"
        default:
            return "\(sslError)"
        }
    }

    private static func describe(boringSSLText text: String) -> String {
        let known: [(code: String, meaning: String)] = [
            ("CERTIFICATE_VERIFY_FAILED", "certificate verification failed (expired, not yet valid, or not issued by a trusted CA)"),
            ("WRONG_VERSION_NUMBER", "the upstream does not speak TLS (a plain-HTTP server on an https:// URL?)"),
            ("CERTIFICATE_REQUIRED", "the upstream requires a client certificate"),
            ("ALERT_BAD_CERTIFICATE", "the upstream rejected the client certificate"),
            ("ALERT_UNKNOWN_CA", "the upstream rejected the client certificate (unknown CA)"),
            ("ALERT_CERTIFICATE_EXPIRED", "the upstream rejected the client certificate (expired)"),
            ("ALERT_PROTOCOL_VERSION", "no TLS version in common (see tls.min_version)"),
            ("ALERT_HANDSHAKE_FAILURE", "the upstream refused the handshake (no cipher or version in common)"),
            ("NO_PROTOCOLS_AVAILABLE", "no TLS version in common (see tls.min_version)"),
        ]
        if let match = known.first(where: { text.contains($0.code) }) { return match.meaning }
        return "handshake failed (\(Self.reasonCode(text) ?? "unknown reason"))"
    }
}
