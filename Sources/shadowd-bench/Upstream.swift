import ArgumentParser
import ShadowFixtures

extension BenchCommand {
    /// A stand-in candidate for the proxy benchmark: answers any method and path with a fixed
    /// JSON after a delay, or never. (`shadowd fixture-model` is a model, with its own paths and
    /// methods; the benchmark needs GET and POST on one path to behave alike.)
    struct Upstream: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Serve a fixed JSON after --delay-ms, or never (--hang).", shouldDisplay: false)

        @Option(help: "Port on 127.0.0.1.")
        var port: Int

        @Option(help: "Milliseconds before each answer.")
        var delayMs: Int = 0

        @Flag(help: "Accept and read requests, never answer.")
        var hang = false

        func run() async throws {
            let delay = Duration.milliseconds(self.delayMs)
            let hang = self.hang
            let server = try await FixtureServer.start(port: self.port) { _ in
                hang ? FixtureResponse(mode: .hang) : .json(#"{"outputs":[{"name":"label","data":["cat"]}]}"#, delay: delay)
            }
            print("bench upstream on 127.0.0.1:\(server.port)")
            // Runs until the benchmark terminates it.
            while true { try await Task.sleep(for: .seconds(3600)) }
        }
    }
}
