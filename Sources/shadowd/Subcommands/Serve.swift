import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import ShadowCore
import ShadowProxy
import ShadowStore
import UnixSignals

extension ShadowdCommand {
    /// Runs the sidecar until SIGTERM or SIGINT.
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the sidecar: proxy to the baseline, mirror to candidates, record pairs."
        )

        @Option(help: "The YAML configuration file.")
        var config: String

        @Option(help: "Database path; overrides storage.path in the configuration.")
        var db: String?

        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            // A HUP before the reloader is listening must not terminate the daemon.
            signal(SIGHUP, SIG_IGN)
            let logger = try self.logging.makeLogger()
            var configuration = try loadConfiguration(self.config)
            if let db = self.db { configuration.storage.path = db }
            let sidecar: Sidecar
            do {
                sidecar = try await Sidecar(configuration: configuration, logger: logger, environment: ProcessInfo.processInfo.environment)
            } catch {
                throw CleanExit.message("error: \(error)", code: 1)
            }
            logger.info(
                "database open",
                metadata: [
                    "shadow.db": "\(configuration.storage.path)",
                    "shadow.pragmas": "\((try? sidecar.store.pragmas()) ?? [:])",
                    "shadow.config.revision": "\(configuration.revision)",
                ]
            )
            let path = self.config
            let database = self.db
            let reloader = ConfigReloader(sidecar: sidecar, logger: logger) {
                var configuration = try Configuration.load(yaml: String(contentsOfFile: path, encoding: .utf8))
                if let database { configuration.storage.path = database }
                return configuration
            }
            let group = ServiceGroup(
                configuration: .init(
                    services: (sidecar.services + [reloader]).map { .init(service: $0) },
                    gracefulShutdownSignals: [.sigterm, .sigint],
                    logger: logger
                )
            )
            do {
                try await group.run()
            } catch {
                try? await sidecar.shutdown()
                throw CleanExit.message("error: \(error)", code: 1)
            }
            try await sidecar.shutdown()
        }
    }
}
