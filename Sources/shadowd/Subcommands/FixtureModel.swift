import ArgumentParser
import Foundation
import NIOSSL
import ShadowFixtures
import UnixSignals

extension ShadowdCommand {
    /// Serves a deterministic toy model (KServe V2, TF Serving or OpenAI chat) for demos, tests and benchmarks.
    struct FixtureModel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "fixture-model",
            abstract:
                "Serve a deterministic toy model: KServe V2 (/v2/models/{name}/infer), TF Serving (/v1/models/{name}:predict) or OpenAI chat (/v1/chat/completions, streamed, with tool calls), with injected faults."
        )

        @Option(help: "Model spec YAML (see Fixtures/models/).")
        var spec: String

        @Option(help: "Port (0 picks a free one).")
        var port: Int = 0

        @Option(help: "Address to bind (loopback by default; another address puts the fixture on a network namespace or host).")
        var host: String = "127.0.0.1"

        @Option(help: "Serve HTTPS with this PEM certificate chain (needs --tls-key).")
        var tlsCert: String?

        @Option(help: "The PEM private key of --tls-cert.")
        var tlsKey: String?

        @Option(help: "With TLS: require client certificates issued by this PEM CA (mutual TLS).")
        var tlsClientCa: String?

        @Option(
            help: ArgumentHelp(
                "Serve HTTPS with a throwaway CA and certificate (localhost, 127.0.0.1) written to this directory: ca.pem (a ca_file for shadowd), server.crt, server.key.",
                valueName: "directory"
            )
        )
        var tlsGenerate: String?

        @Flag(
            help:
                "Serve gRPC over h2c (cleartext HTTP/2) instead: KServe V2 inference.GRPCInferenceService/ModelInfer and TF Serving tensorflow.serving.PredictionService/Predict."
        )
        var grpc = false

        func validate() throws {
            if self.grpc && (self.tlsGenerate != nil || self.tlsCert != nil) {
                throw ValidationError("--grpc serves cleartext h2c; it takes no TLS options")
            }
            if self.tlsGenerate != nil && self.tlsCert != nil { throw ValidationError("--tls-generate and --tls-cert exclude each other") }
            if (self.tlsCert == nil) != (self.tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together") }
            if self.tlsClientCa != nil && self.tlsCert == nil { throw ValidationError("--tls-client-ca needs --tls-cert and --tls-key") }
        }

        func run() async throws {
            let spec: ModelSpec
            do {
                spec = try ModelSpec.load(yaml: try String(contentsOfFile: self.spec, encoding: .utf8))
            } catch {
                throw CleanExit.message("error: \(self.spec): \(error)", code: 1)
            }
            var tls: NIOSSLContext?
            var certificateFile = self.tlsCert
            var keyFile = self.tlsKey
            if let directory = self.tlsGenerate {
                do {
                    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                    let authority = try TestCertificateAuthority(commonName: "shadowd fixture CA")
                    try authority.certificatePEM.write(toFile: directory + "/ca.pem", atomically: true, encoding: .utf8)
                    (certificateFile, keyFile) = try authority.issue().write(to: directory, name: "server")
                } catch {
                    throw CleanExit.message("error: cannot write certificates to \(directory): \(error)", code: 1)
                }
            }
            if let certificate = certificateFile, let key = keyFile {
                do {
                    tls = try NIOSSLContext.fixtureServer(
                        certificatePEM: try String(contentsOfFile: certificate, encoding: .utf8),
                        keyPEM: try String(contentsOfFile: key, encoding: .utf8),
                        clientCAPEM: try self.tlsClientCa.map { try String(contentsOfFile: $0, encoding: .utf8) }
                    )
                } catch {
                    throw CleanExit.message("error: cannot load the TLS certificate or key: \(error)", code: 1)
                }
            }
            let server: FixtureServer
            do {
                server = try await ModelFixture(spec: spec).start(host: self.host, port: self.port, tls: tls, grpc: self.grpc)
            } catch {
                throw CleanExit.message("error: cannot listen on \(self.host):\(self.port): \(error)", code: 1)
            }
            let scheme = self.grpc ? "h2c" : tls == nil ? "http" : "https"
            let banner = "fixture model '\(spec.name)' version \(spec.version) listening on \(scheme)://\(self.host):\(server.port)\n"
            FileHandle.standardOutput.write(Data(banner.utf8))
            // Serve until SIGTERM/SIGINT.
            for await _ in await UnixSignalsSequence(trapping: .sigterm, .sigint) { break }
            try await server.stop()
        }
    }
}
