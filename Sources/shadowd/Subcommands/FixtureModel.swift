import ArgumentParser
import Foundation
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

        func run() async throws {
            let spec: ModelSpec
            do {
                spec = try ModelSpec.load(yaml: try String(contentsOfFile: self.spec, encoding: .utf8))
            } catch {
                throw CleanExit.message("error: \(self.spec): \(error)", code: 1)
            }
            let server: FixtureServer
            do {
                server = try await ModelFixture(spec: spec).start(host: self.host, port: self.port)
            } catch {
                throw CleanExit.message("error: cannot listen on \(self.host):\(self.port): \(error)", code: 1)
            }
            let banner = "fixture model '\(spec.name)' version \(spec.version) listening on http://\(self.host):\(server.port)\n"
            FileHandle.standardOutput.write(Data(banner.utf8))
            // Serve until SIGTERM/SIGINT.
            for await _ in await UnixSignalsSequence(trapping: .sigterm, .sigint) { break }
            try await server.stop()
        }
    }
}
