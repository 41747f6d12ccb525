import ArgumentParser
import Foundation
import ShadowCore
import ShadowStore

extension ShadowdCommand {
    /// One retention pass by hand (safe while the daemon runs: short transactions, busy timeout).
    struct Prune: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete old pairs and shrink the database file."
        )

        @Option(help: "The database file.")
        var db: String

        @Option(help: "Delete pairs older than this many days.")
        var days: Double?

        @Option(help: "Then delete the oldest pairs while the file is larger than this (e.g. 500MiB).")
        var maxBytes: String?

        func run() async throws {
            guard self.days != nil || self.maxBytes != nil else { throw ValidationError("give --days, --max-bytes or both") }
            var maxBytes: Int?
            if let text = self.maxBytes {
                guard let parsed = Units.parseByteCount(text), parsed >= 1 << 20 else {
                    throw ValidationError("--max-bytes: expected a size such as 500MiB (at least 1MiB), got '\(text)'")
                }
                maxBytes = parsed
            }
            let store: PairStore
            do {
                store = try PairStore(path: self.db)
            } catch {
                throw CleanExit.message("error: \(error)", code: 1)
            }
            let now = Int64(Date().timeIntervalSince1970)
            let cutoff = self.days.map { now * 1_000_000 - Int64($0 * 86_400 * 1_000_000) }
            let result = try store.prune(olderThanMicros: cutoff, maxBytes: maxBytes)
            try store.close()
            print("deleted \(result.exchangesDeleted) exchanges; \(self.db): \(result.bytesBefore) → \(result.bytesAfter) bytes")
        }
    }
}
