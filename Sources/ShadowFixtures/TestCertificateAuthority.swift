import Crypto
import Foundation
import SwiftASN1
import X509

/// A throwaway certificate authority for tests, fixtures and the demo: certificates are made at
/// run time (none committed to expire later), signed with P-256 keys.
public struct TestCertificateAuthority: Sendable {
    private let key: Certificate.PrivateKey
    private let certificate: Certificate
    private let subject: DistinguishedName

    public init(commonName: String = "shadowd test CA") throws {
        let key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName { CommonName(commonName) }
        self.key = Certificate.PrivateKey(key)
        self.subject = subject
        self.certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: Date() - 3600,
            notValidAfter: Date() + 7 * 86400,
            issuer: subject,
            subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            },
            issuerPrivateKey: Certificate.PrivateKey(key)
        )
    }

    /// The CA certificate, PEM: what a `ca_file` holds.
    public var certificatePEM: String {
        (try? self.certificate.serializeAsPEM().pemString) ?? ""
    }

    /// What an issued certificate is for.
    public enum Usage: Sendable {
        case server
        case client
    }

    /// Issues a leaf certificate for `dnsNames` and `ipAddresses` (IPv4 dotted quads), valid from
    /// `notBefore` to `notAfter` (an expired one for tests: both in the past).
    public func issue(
        commonName: String = "localhost",
        dnsNames: [String] = ["localhost"],
        ipAddresses: [String] = ["127.0.0.1"],
        usage: Usage = .server,
        notBefore: Date = Date() - 3600,
        notAfter: Date = Date() + 86400
    ) throws -> IssuedCertificate {
        let key = P256.Signing.PrivateKey()
        let names: [GeneralName] =
            dnsNames.map { .dnsName($0) }
            + ipAddresses.map { address in
                .ipAddress(ASN1OctetString(contentBytes: ArraySlice(address.split(separator: ".").compactMap { UInt8($0) })))
            }
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: notBefore,
            notValidAfter: notAfter,
            issuer: self.subject,
            subject: try DistinguishedName { CommonName(commonName) },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([usage == .server ? .serverAuth : .clientAuth])
                SubjectAlternativeNames(names)
            },
            issuerPrivateKey: self.key
        )
        return IssuedCertificate(certificatePEM: try certificate.serializeAsPEM().pemString, privateKeyPEM: key.pemRepresentation)
    }
}

/// A leaf certificate and its key, PEM.
public struct IssuedCertificate: Sendable {
    public let certificatePEM: String
    public let privateKeyPEM: String

    /// Writes `NAME.crt` and `NAME.key` into `directory`; returns their paths.
    public func write(to directory: String, name: String) throws -> (certificate: String, key: String) {
        let certificate = directory + "/" + name + ".crt"
        let key = directory + "/" + name + ".key"
        try self.certificatePEM.write(toFile: certificate, atomically: true, encoding: .utf8)
        try self.privateKeyPEM.write(toFile: key, atomically: true, encoding: .utf8)
        return (certificate, key)
    }
}
