import ArgumentParser
import Foundation
import NIOHTTP1
import ShadowCore
import ShadowFixtures

extension ShadowdCommand {
    /// The running daemon's experiments, through its admin listener: status, and the kill switch.
    struct Experiment: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "experiment",
            abstract: "Show, stop or resume the running daemon's experiments (through its admin listener).",
            subcommands: [Status.self, Stop.self, Resume.self]
        )

        struct Target: ParsableArguments {
            @Option(help: "The daemon's configuration (its admin.listen is used).")
            var config: String

            /// Calls the admin listener; `SHADOWD_ADMIN_TOKEN` is sent when set.
            func call(_ method: HTTPMethod, _ path: String) async throws -> (status: Int, body: String) {
                let configuration = try loadConfiguration(self.config)
                guard let listen = configuration.admin.listen else {
                    throw CleanExit.message("error: admin.listen is off in \(self.config): the experiments cannot be reached", code: 1)
                }
                let host = listen.host == "0.0.0.0" || listen.host == "::" ? "127.0.0.1" : listen.host
                var headers: [(String, String)] = []
                if let token = ProcessInfo.processInfo.environment["SHADOWD_ADMIN_TOKEN"], !token.isEmpty {
                    headers.append(("authorization", "Bearer \(token)"))
                }
                do {
                    let client = try await HTTPTestClient.connect(host: host, port: listen.port)
                    let response = try await client.send(method: method, path: path, headers: headers)
                    await client.close()
                    return (response.status, response.text)
                } catch {
                    throw CleanExit.message("error: cannot reach the admin listener at \(listen): \(error) (is shadowd running?)", code: 1)
                }
            }

            func finish(_ result: (status: Int, body: String)) throws {
                print(result.body)
                if result.status != 200 { throw ExitCode(1) }
            }
        }

        struct Status: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Each experiment's state, stage and share per arm (JSON).")
            @OptionGroup var target: Target

            func run() async throws { try self.target.finish(try await self.target.call(.GET, "/experiments")) }
        }

        struct Stop: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Stop exposure now: every user is served by control, also after a restart, until resumed."
            )
            @OptionGroup var target: Target
            @Argument(help: "The experiment's name.") var name: String

            func run() async throws { try self.target.finish(try await self.target.call(.POST, "/experiments/\(self.name)/stop")) }
        }

        struct Resume: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Resume a stopped experiment at the stage it stopped at.")
            @OptionGroup var target: Target
            @Argument(help: "The experiment's name.") var name: String

            func run() async throws { try self.target.finish(try await self.target.call(.POST, "/experiments/\(self.name)/resume")) }
        }
    }
}
