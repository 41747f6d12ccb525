import Logging
import ServiceLifecycle
import ShadowCore
import UnixSignals

/// Reloads the configuration on SIGHUP (`systemctl reload`): routes, candidates, sampling,
/// scorers, noise floors and limits change atomically per event loop without dropping a
/// connection. An invalid file, or one that changes what only a restart can change, is refused
/// with a logged reason and the running configuration stays in force.
public final class ConfigReloader: Service, Sendable {
    let sidecar: Sidecar
    let load: @Sendable () throws -> Configuration
    let logger: Logger

    /// - Parameter load: reads and validates the configuration file again.
    public init(sidecar: Sidecar, logger: Logger, load: @escaping @Sendable () throws -> Configuration) {
        self.sidecar = sidecar
        self.load = load
        self.logger = logger
    }

    public func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            self.sidecar.notifier.notify("RELOADING=1\nMONOTONIC_USEC=\(SidecarClock.monotonicMicros())\nSTATUS=reloading configuration")
            do {
                let configuration = try self.load()
                try await self.sidecar.apply(configuration)
                self.logger.notice("configuration reloaded", metadata: ["shadow.config.revision": "\(configuration.revision)"])
            } catch {
                self.logger.error("configuration reload refused; the running configuration stays in force", metadata: ["error": "\(error)"])
            }
            self.sidecar.notifier.notify("READY=1\nSTATUS=serving")
        }
    }
}
