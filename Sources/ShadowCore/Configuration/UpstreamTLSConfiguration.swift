/// How the sidecar speaks TLS to one `https://` upstream.
///
/// Verification is always on: the peer's chain must lead to a trusted root (the system store, or
/// `ca_file` instead) and name the host (or `server_name`). There is deliberately no switch to
/// skip it; a self-signed server is trusted by giving its certificate as `ca_file`.
public struct UpstreamTLSConfiguration: Sendable, Equatable {
    /// Where a certificate or key file is read from.
    public enum FileSource: Sendable, Equatable, CustomStringConvertible {
        case path(String)
        /// A file systemd's `LoadCredential=` placed under `$CREDENTIALS_DIRECTORY`.
        case credential(String)

        public var description: String {
            switch self {
            case .path(let path): path
            case .credential(let name): "${credential:\(name)}"
            }
        }
    }

    public enum MinimumVersion: String, Sendable, Equatable, CaseIterable {
        case v1_2 = "1.2"
        case v1_3 = "1.3"
    }

    /// PEM roots that replace the system trust store for this upstream.
    public var caFile: FileSource?
    /// PEM certificate chain presented to the server (mutual TLS); needs ``clientKey``.
    public var clientCertificate: FileSource?
    /// PEM private key of ``clientCertificate``.
    public var clientKey: FileSource?
    /// The name sent as SNI and checked against the certificate; default: the URL's host
    /// (an IP literal is checked against the certificate's IP addresses and sends no SNI).
    public var serverName: String?
    public var minimumVersion: MinimumVersion
    /// The configuration key these settings came from, for errors raised when the files are read.
    public var key: String

    public init(
        caFile: FileSource? = nil,
        clientCertificate: FileSource? = nil,
        clientKey: FileSource? = nil,
        serverName: String? = nil,
        minimumVersion: MinimumVersion = .v1_2,
        key: String = ""
    ) {
        self.caFile = caFile
        self.clientCertificate = clientCertificate
        self.clientKey = clientKey
        self.serverName = serverName
        self.minimumVersion = minimumVersion
        self.key = key
    }
}

extension UpstreamTLSConfiguration {
    /// Reads `{ca_file, client_certificate, client_key, server_name, min_version}`.
    init(reading reader: inout YAMLReader) throws(ConfigurationError) {
        self.init(key: reader.path)
        self.caFile = try reader.fileSource("ca_file")
        self.clientCertificate = try reader.fileSource("client_certificate")
        self.clientKey = try reader.fileSource("client_key")
        if let name = try reader.string("server_name") {
            guard !name.isEmpty, !name.contains(where: { $0 == " " || $0 == "/" || $0 == ":" }) else {
                throw reader.fail("server_name", "expected a host name, got '\(name)'")
            }
            self.serverName = name
        }
        self.minimumVersion = try reader.choice("min_version", default: self.minimumVersion)
        if (self.clientCertificate == nil) != (self.clientKey == nil) {
            let (missing, present) = self.clientKey == nil ? ("client_key", "client_certificate") : ("client_certificate", "client_key")
            throw ConfigurationError(key: reader.child(missing), reason: "is required with \(present) (mutual TLS needs both)")
        }
    }
}

extension YAMLReader {
    /// A file path, or `${credential:NAME}` for a file under `$CREDENTIALS_DIRECTORY`.
    mutating func fileSource(_ key: String) throws(ConfigurationError) -> UpstreamTLSConfiguration.FileSource? {
        guard let text = try self.string(key) else { return nil }
        if text.hasPrefix("${credential:"), text.hasSuffix("}") {
            let name = String(text.dropFirst("${credential:".count).dropLast())
            guard !name.isEmpty, !name.contains("/") else { throw self.fail(key, "expected ${credential:NAME} with no '/', got '\(text)'") }
            return .credential(name)
        }
        guard !text.isEmpty, !text.contains("${") else {
            throw self.fail(key, "expected a file path or ${credential:NAME}, got '\(text)'")
        }
        return .path(text)
    }
}
