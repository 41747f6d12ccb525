import Logging
import ServiceLifecycle
import ShadowCore

#if canImport(Glibc)
import Glibc
#endif

/// Runs retention every `storage.retention.interval` while the daemon runs.
public final class RetentionService: Service, Sendable {
    let store: PairStore
    let storage: StorageConfiguration
    let logger: Logger

    public init(store: PairStore, storage: StorageConfiguration, logger: Logger) {
        self.store = store
        self.storage = storage
        self.logger = logger
    }

    public var isEnabled: Bool { self.storage.retentionAge != nil || self.storage.retentionMaxBytes != nil }

    public func run() async throws {
        guard self.isEnabled else {
            try? await gracefulShutdown()
            return
        }
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                self.pass()
                try await Task.sleep(for: self.storage.retentionInterval)
            }
        }
    }

    private func pass() {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        let now = Int64(spec.tv_sec) * 1_000_000
        let cutoff = self.storage.retentionAge.map { now - $0.microseconds }
        do {
            let result = try self.store.prune(olderThanMicros: cutoff, maxBytes: self.storage.retentionMaxBytes)
            if result.exchangesDeleted > 0 {
                self.logger.info(
                    "retention",
                    metadata: [
                        "shadow.retention.deleted": "\(result.exchangesDeleted)",
                        "shadow.db.bytes.before": "\(result.bytesBefore)",
                        "shadow.db.bytes.after": "\(result.bytesAfter)",
                    ]
                )
            }
        } catch {
            self.logger.error("retention failed", metadata: ["error": "\(error)"])
        }
    }
}
